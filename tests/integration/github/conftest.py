from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import uvicorn
from fastapi import FastAPI
from github import Auth, Github
from pydantic import SecretStr

from agentfleet.github import GitHubCredentials, Pacing, RepoClient
from agentfleet.localenv import RedisServer, free_port
from agentfleet.localenv.waiting import async_wait_for
from agentfleet.queue import WorkQueue
from agentfleet.testing import FakeGitHub

BOT_TOKEN = "ghp_" + "b0t" * 12
HUMAN_TOKEN = "ghp_" + "hum4n" * 8


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.create_repo("acme", "shop")
        fake.add_token(BOT_TOKEN, "agentfleet-bot")
        fake.add_token(HUMAN_TOKEN, "acme")
        fake.add_collaborator("acme/shop", "agentfleet-bot")
        yield fake


@pytest.fixture
def repo_client(fake_github: FakeGitHub) -> Iterator[RepoClient]:
    client = RepoClient(
        GitHubCredentials(token=SecretStr(BOT_TOKEN)),
        "acme/shop",
        fake_github.base_url,
        Pacing.none(),
    )
    yield client
    client.close()


@pytest.fixture
def human(fake_github: FakeGitHub) -> Iterator[Github]:
    """The repository owner, acting through PyGithub as a person would."""
    github = Github(
        base_url=fake_github.base_url,
        auth=Auth.Token(HUMAN_TOKEN),
        seconds_between_requests=None,
        seconds_between_writes=None,
    )
    yield github
    github.close()


@pytest.fixture
async def queue(redis_server: RedisServer) -> AsyncIterator[WorkQueue]:
    work_queue = WorkQueue.from_url(redis_server.url, prefix=f"t{uuid.uuid4().hex[:8]}")
    yield work_queue
    await work_queue.close()


class LocalServer:
    """An ASGI app served by uvicorn on a free port, in the test's event loop."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
            )
        )
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LocalServer:
        self._task = asyncio.create_task(self._server.serve())
        await async_wait_for(self._started, 10, "uvicorn to start")
        return self

    async def _started(self) -> bool:
        return self._server.started

    async def __aexit__(self, *exc: object) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
