"""A whole agentfleet pipeline on one machine: the real Redis queue and worker runtime,
the real stage handlers, the fake model and the fake GitHub (backed by bare git repos)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from github import Auth, Github
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from agentfleet.core.api import Stage
from agentfleet.core.api.workerpool import AgentRuntime
from agentfleet.core.github import GitHubCredentials, ProjectIntake
from agentfleet.core.podenv import WorkerSettings
from agentfleet.core.queue import RetryPolicy, WorkItem, WorkQueue
from agentfleet.dev.localenv import RedisServer
from agentfleet.dev.localenv.waiting import async_wait_for
from agentfleet.dev.testing import FakeAnthropic, FakeGitHub
from agentfleet.worker.agents import AgentMetrics, AgentSettings, Redactor
from agentfleet.worker.handlers import HandlerContext, HandlerResult
from agentfleet.worker.metrics import WorkerMetrics
from agentfleet.worker.runtime import Worker
from agentfleet.worker.stages import HANDLERS, StageConfig, StageEnvironment

BOT_TOKEN = "ghp_" + "pipel1ne" * 5
HUMAN_TOKEN = "ghp_" + "0wner" * 8
NAMESPACE = "team-a"
MODEL = "claude-sonnet-4-6"
APP_ID = 31337


@dataclass
class Pipeline:
    redis_url: str
    prefix: str
    fake_github: FakeGitHub
    fake_anthropic: FakeAnthropic
    env: StageEnvironment
    project: ProjectIntake
    human: Github
    workdir: Path
    retry_policy: RetryPolicy
    agent_registry: CollectorRegistry
    queues: list[WorkQueue] = field(default_factory=list)
    workers: list[tuple[Worker, asyncio.Task[None]]] = field(default_factory=list)

    @property
    def queue(self) -> WorkQueue:
        assert self.env.queue is not None
        return self.env.queue

    def new_queue(self) -> WorkQueue:
        queue = WorkQueue.from_url(
            self.redis_url, prefix=self.prefix, retry_policy=self.retry_policy, poll_interval=0.2
        )
        self.queues.append(queue)
        return queue

    def start_workers(self, stage: Stage, count: int = 1) -> None:
        for index in range(count):
            name = f"{stage.value}-{index}-{uuid.uuid4().hex[:4]}"
            settings = WorkerSettings(
                redis_url=self.redis_url,
                namespace=NAMESPACE,
                pool=f"{stage.value}-pool",
                stage=stage,
                pod_name=name,
                handler=stage.value,
                metrics_port=0,
                heartbeat_interval=2.0,
                heartbeat_timeout=60.0,
                workspace_root=self.workdir / "workspaces",
            )
            worker = Worker(
                settings,
                self.new_queue(),
                HANDLERS[stage.value](self.env),
                WorkerMetrics(NAMESPACE, settings.pool, name, stage),
            )
            self.workers.append((worker, asyncio.create_task(worker.run(), name=name)))

    async def redeliver(self, item: WorkItem) -> HandlerResult:
        """Run an item's handler again, as a worker that reclaimed it after a crash would."""
        workspace = self.workdir / "redelivery" / uuid.uuid4().hex[:8]
        workspace.mkdir(parents=True)
        private = self.workdir / "redelivery-private" / workspace.name
        private.mkdir(parents=True)
        context = HandlerContext(
            workspace=workspace,
            private=private,
            logger=logging.LoggerAdapter(logging.getLogger("agentfleet.test"), {}),
            settings=WorkerSettings(namespace=NAMESPACE, pool="redelivery", stage=item.stage),
            pipeline=item.pipeline,
            next_stage=_next(item),
            max_attempts=3,
        )
        return await HANDLERS[item.stage.value](self.env).handle(item, context)

    async def completion(self, item_id: str, timeout: float = 60) -> Any:
        async def done() -> Any:
            return await self.queue.completion(NAMESPACE, item_id)

        return await async_wait_for(done, timeout, f"completion of {item_id}")

    def push_files(self, branch: str, files: dict[str, str], base: str | None = None) -> None:
        """Commit `files` on `branch` (started from `base`, or empty) and push it, as the
        repository's owner would, straight to the fake's bare repository."""
        git_dir = self.fake_github.repos["acme/shop"].git_dir
        work = self.workdir / "pushes" / uuid.uuid4().hex[:8]
        subprocess.run(["git", "clone", "-q", str(git_dir), str(work)], check=True)
        env = {
            "GIT_AUTHOR_NAME": "acme",
            "GIT_AUTHOR_EMAIL": "acme@example.com",
            "GIT_COMMITTER_NAME": "acme",
            "GIT_COMMITTER_EMAIL": "acme@example.com",
            "PATH": "/usr/bin:/bin",
        }
        start = (
            ["checkout", "-q", "-b", branch, f"origin/{base}"]
            if base
            else ["checkout", "-q", "--orphan", branch]
        )
        subprocess.run(["git", *start], cwd=work, check=True, env=env)
        for path, content in files.items():
            (work / path).parent.mkdir(parents=True, exist_ok=True)
            (work / path).write_text(content)
        for command in (
            ["add", "."],
            ["commit", "-qm", f"{branch}"],
            ["push", "-q", "origin", f"HEAD:{branch}"],
        ):
            subprocess.run(["git", *command], cwd=work, check=True, env=env)

    def seed_main(self) -> None:
        """A repository with a main branch and a passing test suite, as a project has."""
        self.push_files("main", {"tests/__init__.py": "", "README.md": "# shop\n"})

    def github_state(self) -> dict[str, Any]:
        """Everything a duplicate would show up in: issues, pull requests, branches, comments."""
        repo = self.fake_github.repos["acme/shop"]
        return {
            "issues": sorted(self.fake_github.issue_titles("acme/shop")),
            "pulls": sorted(self.fake_github.pull_heads("acme/shop")),
            "branches": sorted(self.fake_github.branches("acme/shop")),
            "comments": {n: len(i.comment_ids) for n, i in repo.issues.items()},
        }

    async def stop(self) -> None:
        for worker, _ in self.workers:
            worker.request_stop()
        for _, task in self.workers:
            await asyncio.wait_for(task, 30)
        for queue in self.queues:
            await queue.close()


def _app_keys() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem.decode()


def shop_item(stage: Stage, key: str, payload: dict[str, object]) -> WorkItem:
    """An item of project `shop` (repository acme/shop) as intake or a stage makes it."""
    return WorkItem(
        id=f"{NAMESPACE}/shop/{key}/{stage.value}",
        namespace=NAMESPACE,
        project="shop",
        stage=stage,
        payload={"repository": "acme/shop", **payload},
    )


def _next(item: WorkItem) -> Stage | None:
    position = item.pipeline.index(item.stage) if item.stage in item.pipeline else -1
    return item.pipeline[position + 1] if 0 <= position < len(item.pipeline) - 1 else None


@pytest.fixture(params=list(AgentRuntime), ids=[runtime.value for runtime in AgentRuntime])
def runtime(request: pytest.FixtureRequest) -> AgentRuntime:
    """Every pipeline test runs once per agent runtime: the builtin loop and Claude Code."""
    chosen: AgentRuntime = request.param
    return chosen


@pytest.fixture
async def pipeline(
    redis_server: RedisServer,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    runtime: AgentRuntime,
) -> AsyncIterator[Pipeline]:
    options = getattr(request, "param", {})
    fake_github = FakeGitHub(tmp_path / "github").start()
    fake_anthropic = FakeAnthropic().start()
    fake_github.create_repo("acme", "shop")
    fake_github.add_token(BOT_TOKEN, "agentfleet-bot")
    fake_github.add_token(HUMAN_TOKEN, "acme")
    human = Github(
        base_url=fake_github.base_url,
        auth=Auth.Token(HUMAN_TOKEN),
        seconds_between_requests=None,
        seconds_between_writes=None,
    )
    credentials = GitHubCredentials(token=SecretStr(BOT_TOKEN))
    if options.get("app"):
        # A GitHub App instead of a token: every item gets its own installation token.
        private_pem, public_pem = _app_keys()
        fake_github.register_app(APP_ID, "agentfleet-app", public_pem, installation_id=7)
        credentials = GitHubCredentials(app_id=str(APP_ID), private_key=SecretStr(private_pem))
    retry_policy = RetryPolicy(
        default_max_attempts=options.get("max_attempts", 2), base_delay_seconds=0.0
    )
    prefix = f"p{uuid.uuid4().hex[:8]}"
    orchestrator_queue = WorkQueue.from_url(
        redis_server.url, prefix=prefix, retry_policy=retry_policy, poll_interval=0.2
    )
    agent_registry = CollectorRegistry()
    env = StageEnvironment(
        config=StageConfig(
            github_api_url=fake_github.base_url,
            github_pacing=False,
            test_command=("python", "-m", "unittest", "-q"),
            max_workers=options.get("max_workers", 5),
            task_timeout_seconds=60,
        ),
        agent_settings=AgentSettings(
            model=MODEL,
            max_turns=12,
            token_budget=200_000,
            runtime=runtime,
        ),
        model_client=anthropic.AsyncAnthropic(
            api_key=fake_anthropic.api_key, base_url=fake_anthropic.base_url, max_retries=0
        ),
        credentials=lambda namespace, project: credentials,
        redactor=Redactor([fake_anthropic.api_key, BOT_TOKEN, HUMAN_TOKEN]),
        queue=orchestrator_queue,
        metrics=AgentMetrics(agent_registry),
    )
    built = Pipeline(
        redis_url=redis_server.url,
        prefix=prefix,
        fake_github=fake_github,
        fake_anthropic=fake_anthropic,
        env=env,
        project=ProjectIntake(
            namespace=NAMESPACE,
            name="shop",
            repository="acme/shop",
            draft_pulls=options.get("draft", False),
        ),
        human=human,
        workdir=tmp_path,
        retry_policy=retry_policy,
        agent_registry=agent_registry,
        queues=[orchestrator_queue],
    )
    try:
        yield built
    finally:
        await built.stop()
        human.close()
        fake_anthropic.stop()
        fake_github.stop()
        assert not fake_github.errors and not fake_anthropic.errors, "a fake server raised"
