"""What stage handlers share: settings, the model client, GitHub access, the redactor.

In a worker pod everything comes from the environment the operator sets (see ENV_VARS,
`agentfleet.core.podenv.ENV_VARS`, and the SDK's own ANTHROPIC_API_KEY /
ANTHROPIC_BASE_URL); tests, benchmarks and the demo build a `StageEnvironment` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import anthropic
from pydantic import SecretStr

from agentfleet.core.api.workerpool import AgentRuntime
from agentfleet.core.github import (
    CredentialsError,
    GitCheckout,
    GitHubApp,
    GitHubCredentials,
    Pacing,
    Permissions,
    RepoClient,
    credentials_from_directory,
    repository_endpoint,
)
from agentfleet.core.github.tokens import Clock, utc_now
from agentfleet.core.pipeline import ProjectCarried
from agentfleet.core.podenv import StageConfig, WorkerSettings
from agentfleet.core.queue import RetryPolicy, WorkItem, WorkQueue
from agentfleet.worker.agents import (
    AgentMetrics,
    AgentRunner,
    AgentSettings,
    Redactor,
    default_metrics,
)
from agentfleet.worker.agents.loop import ModelRunner, SpendGate
from agentfleet.worker.agents.tools import Tool, WorkspaceTools
from agentfleet.worker.agents.workspace import Workspace
from agentfleet.worker.sandbox import CommandRequest, CommandResult, CommandRunner, LocalRunner
from agentfleet.worker.sandbox.client import SandboxRunner

if TYPE_CHECKING:
    from agentfleet.worker.agents.claude_code import ClaudeCodeRunner

TOKEN_ENV = "AGENTFLEET_GITHUB_TOKEN"
"""A single token for every project, when no credentials are mounted (local runs)."""


def claude_code_runner() -> type[ClaudeCodeRunner]:
    """The `claude-code` runtime's runner, imported when a pool runs that runtime:
    claude-agent-sdk and the MCP SDK it loads cost a `builtin` worker about 0.5 s of CPU
    at every Pod start for a runtime it never uses."""
    from agentfleet.worker.agents.claude_code import ClaudeCodeRunner

    return ClaudeCodeRunner


CredentialsSource = Callable[[str, str], GitHubCredentials]
"""(namespace, project) -> that project's GitHub credentials."""


def mounted_credentials(directory: Path, environ: Mapping[str, str]) -> CredentialsSource:
    def lookup(namespace: str, project: str) -> GitHubCredentials:
        mounted = directory / project
        if mounted.is_dir():
            return credentials_from_directory(mounted)
        token = environ.get(TOKEN_ENV)
        if token:
            return GitHubCredentials(token=SecretStr(token))
        raise CredentialsError(
            f"no GitHub credentials for {namespace}/{project}: nothing mounted at {mounted} "
            f"and {TOKEN_ENV} is unset"
        )

    return lookup


class StageEnvironment:
    def __init__(
        self,
        config: StageConfig,
        agent_settings: AgentSettings,
        model_client: anthropic.AsyncAnthropic,
        credentials: CredentialsSource,
        redactor: Redactor,
        queue: WorkQueue | None = None,
        metrics: AgentMetrics | None = None,
        pool: tuple[str, str] = ("", ""),
        commands: CommandRunner | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.config = config
        self.commands: CommandRunner = commands or LocalRunner()
        """Where the model's commands and the repository's tests run: the sandbox
        container in a worker Pod."""
        self.pool = pool
        """(namespace, pool) of the worker: the agents' model responses are counted under
        it, so the autoscaler can see a pool being rate-limited."""
        self.agent_settings = agent_settings
        if agent_settings.runtime is AgentRuntime.CLAUDE_CODE:
            claude_code_runner()  # at start-up, not in the first item's time
        self.model_client = model_client
        self.credentials = credentials
        self.redactor = redactor
        self.queue = queue
        self.metrics = metrics or default_metrics()
        self.clock = clock
        """The time installation tokens expire by."""
        self._shared: dict[tuple[str, str, str, str], tuple[GitHubCredentials, RepoClient]] = {}
        self._apps: dict[tuple[str, ...], GitHubApp] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_worker_settings(cls, settings: WorkerSettings) -> StageEnvironment:
        environ = os.environ
        config = StageConfig.from_env(environ)
        # The SDK reads ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL itself; its retries are
        # off because the agent loop retries (and counts) on its own.
        client = anthropic.AsyncAnthropic(max_retries=0)
        redactor = Redactor.from_environment(environ)
        queue = WorkQueue.from_url(
            settings.redis_url,
            heartbeat_timeout=settings.heartbeat_timeout,
            retry_policy=RetryPolicy(
                default_max_attempts=settings.max_attempts,
                base_delay_seconds=settings.retry_base_delay,
            ),
        )
        return cls(
            config=config,
            agent_settings=AgentSettings.from_env(environ),
            model_client=client,
            credentials=mounted_credentials(config.credentials_dir, environ),
            redactor=redactor,
            queue=queue,
            pool=(settings.namespace, settings.pool),
            commands=(
                SandboxRunner(settings.sandbox_socket)
                if settings.sandbox_socket is not None
                else LocalRunner()
            ),
        )

    @contextlib.asynccontextmanager
    async def github(self, item: WorkItem, permissions: Permissions) -> AsyncIterator[RepoClient]:
        """The GitHub client one item works with, at the Project's API URL when the item
        carries one, else at `github_api_url`.

        With a GitHub App the client is the item's own: its installation token is minted
        for the item's repository and `permissions` only (a stage's are
        `STAGE_PERMISSIONS`) when first needed, taught to the redactor before it is used,
        replaced shortly before it expires, and revoked when the item ends (when this
        context exits). A personal access token cannot be narrowed: its client is shared
        by the project's items, as the token itself is, and `permissions` change nothing.
        """
        client, owned = await asyncio.to_thread(self._client, item, permissions)
        try:
            yield client
        finally:
            if owned:
                await asyncio.to_thread(client.close)

    def _client(self, item: WorkItem, permissions: Permissions) -> tuple[RepoClient, bool]:
        carried = ProjectCarried.of(item)
        repository = carried.repository
        api_url = carried.api_url or self.config.github_api_url
        endpoint, full_name = repository_endpoint(repository, api_url)
        credentials = self.credentials(item.namespace, item.project)
        for secret in credentials.secret_values():
            self.redactor.add(secret)
        pacing = Pacing() if self.config.github_pacing else Pacing.none()
        if credentials.is_app:
            client = RepoClient(
                credentials,
                repository,
                api_url,
                pacing,
                permissions=permissions,
                redactor=self.redactor,
                app=self._app(credentials, endpoint, pacing),
                clock=self.clock,
            )
            return client, True
        key = (item.namespace, item.project, full_name, endpoint)
        with self._lock:
            shared = self._shared.get(key)
            if shared is None or shared[0] != credentials:  # new, or the Secret changed
                shared = (credentials, RepoClient(credentials, repository, api_url, pacing))
                self._shared[key] = shared
            return shared[1], False

    def _app(self, credentials: GitHubCredentials, api_url: str, pacing: Pacing) -> GitHubApp:
        """The App's identity at `api_url`, shared by items (it holds no installation
        token: only the installations and slug it has looked up)."""
        if credentials.app_id is None or credentials.private_key is None:
            raise CredentialsError("a GitHub App needs `app-id` and `private-key`")
        private_key = credentials.private_key.get_secret_value()
        key = (api_url, credentials.app_id, private_key, str(credentials.installation_id))
        with self._lock:
            app = self._apps.get(key)
            if app is None:
                app = GitHubApp(
                    credentials.app_id,
                    private_key,
                    api_url,
                    credentials.installation_id,
                    pacing,
                )
                self._apps[key] = app
            return app

    def runner(
        self,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
        tokens: int | None,
        budget: SpendGate | None = None,
        cost_usd: float | None = None,
    ) -> ModelRunner:
        """The agent runner of this pool's runtime (`builtin` or `claude-code`), its token
        budget the pool's lowered to `tokens` if set, its cost capped at `cost_usd` if set
        (the item's), held to the project's daily `budget` (the handler context's)."""
        settings = self.agent_settings.with_budget_cap(tokens, cost_usd)
        if settings.runtime is AgentRuntime.CLAUDE_CODE:
            return claude_code_runner()(
                self.model_client,
                settings,
                self.redactor,
                logger=logger,
                metrics=self.metrics,
                pool=self.pool,
                budget=budget,
            )
        return AgentRunner(
            self.model_client,
            settings,
            self.redactor,
            logger=logger,
            metrics=self.metrics,
            pool=self.pool,
            budget=budget,
        )

    def checkout(self, repo: RepoClient, directory: Path, git_dir: Path) -> GitCheckout:
        """A checkout whose work tree is `directory` (shared with the sandbox) and whose
        git directory is `git_dir` (which must be out of the sandbox's reach: the item's
        private directory)."""
        return GitCheckout(
            directory,
            repo.clone_url,
            self.redactor,
            token=repo.git_token,
            author=(self.config.git_author_name, self.config.git_author_email),
            git_dir=git_dir,
        )

    def tools(
        self, workspace: Workspace, settings: AgentSettings, read_only: bool = False
    ) -> list[Tool]:
        """The model's tools on `workspace`; commands run where this environment runs them."""
        return WorkspaceTools(workspace, settings, read_only, self.commands).tools()

    async def run_tests(self, checkout: GitCheckout) -> CommandResult:
        """The repository's tests (`test_command`) in the checkout, where the model's
        commands run: they are the repository's code."""
        return await self.commands.run(
            CommandRequest(
                argv=self.config.test_command,
                cwd=str(checkout.path),
                timeout_seconds=self.config.test_timeout_seconds,
                max_output_chars=20_000,
            )
        )
