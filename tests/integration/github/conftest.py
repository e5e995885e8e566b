from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from github import Auth, Github
from pydantic import SecretStr

from agentfleet.core.github import GitHubCredentials, Pacing, RepoClient
from agentfleet.core.queue import WorkQueue
from agentfleet.dev.localenv import RedisServer
from agentfleet.dev.testing import FakeGitHub

BOT_TOKEN = "ghp_" + "b0t" * 12
HUMAN_TOKEN = "ghp_" + "hum4n" * 8
APP_ID = 4242
INSTALLATION_ID = 77


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


@dataclass(frozen=True)
class AppKeys:
    private_pem: str
    public_pem: str


def new_app_keys() -> AppKeys:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return AppKeys(private_pem, public_pem)


@pytest.fixture(scope="session")
def app_keys() -> AppKeys:
    return new_app_keys()


@pytest.fixture
def app_credentials(fake_github: FakeGitHub, app_keys: AppKeys) -> GitHubCredentials:
    """A GitHub App installed on every repository of the fake, with contents, issues and
    pull requests to write: what agentfleet's App asks for at installation."""
    fake_github.register_app(APP_ID, "agentfleet-app", app_keys.public_pem, INSTALLATION_ID)
    return GitHubCredentials(app_id=str(APP_ID), private_key=SecretStr(app_keys.private_pem))
