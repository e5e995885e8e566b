"""The worker Pod's environment contract, defined once.

The operator writes a worker Pod's environment (`agentfleet.operator.children`) and the
worker container reads it; both take the names from the models here. Each model is a
pydantic-settings section of the one worker process's settings: `WorkerSettings` (the
runtime: queue, pool, heartbeats, drain), `AgentSettings` (what one agent run may do) and
`StageConfig` (what the stage handlers need). A field's variable is its section's prefix
plus its name in capitals, unless the field names another (`validation_alias`);
`env_names` gives the table, and docs/worker.md lists it. People running a worker by hand
use `agentfleet worker` flags, which win over the environment.
"""

from __future__ import annotations

import os
import shlex
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import AliasChoices, BeforeValidator, Field, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from agentfleet.core.api import Stage
from agentfleet.core.api.workerpool import DEFAULT_MODEL, AgentRuntime
from agentfleet.core.queue.models import Name

PROJECTS_DIR = "/var/run/agentfleet/projects"
"""Where a worker pod finds each served Project's credentials Secret, mounted read-only
at `<PROJECTS_DIR>/<project>/` (one file per key: `token`, or `app-id` and
`private-key`)."""

WORKSPACE_DIR = "/workspace"
"""The volume both containers of a worker Pod mount: each item's checkout lives here."""

PRIVATE_DIR = "/var/lib/agentfleet/private"
"""A volume only the worker container mounts: each item's git directory (its config and
hooks decide what git runs with the worker's credentials, so the sandbox must not write
them)."""

SANDBOX_SOCKET = "/run/agentfleet/sandbox/sandbox.sock"
"""The sandbox container's Unix socket, on a volume both containers mount."""

SANDBOX_UID = 10002
"""The sandbox container's user; it shares the worker's group (10001) for the checkout."""


def _comma_separated(value: object) -> object:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _shell_words(value: object) -> object:
    return tuple(shlex.split(value)) if isinstance(value, str) else value


Csv = Annotated[tuple[Name, ...], NoDecode, BeforeValidator(_comma_separated)]
"""A comma-separated list in the environment (`a, b`), a tuple in code."""


class _MappingSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of
    `os.environ` (tests read a built Deployment's environment this way)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {
            name if self.case_sensitive else name.lower(): value
            for name, value in self._environ.items()
            if not (self.env_ignore_empty and value == "")
        }


class PodSettings(BaseSettings):
    """A section of the worker Pod's settings, read from the environment."""

    model_config = SettingsConfigDict(
        frozen=True, extra="forbid", env_ignore_empty=True, populate_by_name=True
    )

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        overrides: Mapping[str, object | None] | None = None,
    ) -> Self:
        """The section from `environ` (default: this process's), with the non-None
        `overrides` (flags) winning. Values given in code (`Section(field=...)`) are used
        as they are: only this method reads an environment."""
        values: dict[str, Any] = _MappingSource(cls, os.environ if environ is None else environ)()
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls.model_validate(values)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Constructing a section in code never reads the environment: `from_env` does.
        return (init_settings,)


def env_names(section: type[PodSettings]) -> dict[str, str]:
    """Field name -> the environment variable it is read from."""
    prefix = str(section.model_config.get("env_prefix", ""))
    names: dict[str, str] = {}
    for name, field in section.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names[name] = str(alias.choices[-1])
        elif isinstance(alias, str):
            names[name] = alias
        else:
            names[name] = f"{prefix}{name}".upper()
    return names


class WorkerSettings(PodSettings):
    """The worker runtime's settings (`AGENTFLEET_<NAME>`; `agentfleet worker` flags win)."""

    model_config = SettingsConfigDict(env_prefix="AGENTFLEET_")

    redis_url: str = "redis://127.0.0.1:6379/0"
    namespace: Name
    pool: Name
    """The WorkerPool this worker belongs to (a metric label)."""
    stage: Stage
    specialties: Csv = ()
    projects: Csv = ()
    """Empty: every project of the namespace."""
    handler: str = "command"
    """A name in the handler registry, or `module:factory`."""
    command: str | None = None
    """Shell command the `command` handler runs once per item."""
    metrics_port: int = Field(default=9090, ge=0, le=65535)
    """0 turns the metrics endpoint off."""
    pod_name: str = Field(
        default_factory=socket.gethostname,
        min_length=1,
        validation_alias=AliasChoices("pod_name", "POD_NAME"),
    )
    """The Pod's name (the downward API's `metadata.name`)."""
    heartbeat_interval: float = Field(default=30.0, gt=0)
    heartbeat_timeout: float = Field(default=300.0, gt=0)
    """An item whose worker has not heartbeated for this long is taken over by another."""
    drain_grace_seconds: float = Field(default=25.0, ge=0)
    """On SIGTERM the current item may finish within this long; then it is released."""
    max_attempts: int = Field(default=3, ge=1)
    retry_base_delay: float = Field(default=5.0, ge=0)
    workspace_root: Path | None = None
    """Where per-item workspaces are created (the system temp dir when unset)."""
    private_root: Path | None = None
    """Where per-item private directories are created (git directories): a volume the
    sandbox cannot reach (the system temp dir when unset)."""
    sandbox_socket: Path | None = None
    """The sandbox container's socket: commands chosen by the model and the repository's
    tests run there. Unset: in this process's own tree (a worker run by hand)."""

    @model_validator(mode="after")
    def _heartbeats_fit_in_timeout(self) -> WorkerSettings:
        if self.heartbeat_interval >= self.heartbeat_timeout:
            raise ValueError("heartbeat_interval must be shorter than heartbeat_timeout")
        return self


class AgentSettings(PodSettings):
    """What one agent run may do: model, turns, tokens, commands, retries.

    Model, max turns and token budget come from the WorkerPool's `agent` spec (the
    operator writes them); a Project's `budgets.tokensPerItem` lowers the token budget
    further. Everything else has a safe default and an `AGENTFLEET_AGENT_*` override.
    """

    model_config = SettingsConfigDict(env_prefix="AGENTFLEET_AGENT_")

    runtime: AgentRuntime = AgentRuntime.BUILTIN
    """What drives the model: the builtin loop or Claude Code (the WorkerPool's
    `spec.agent.runtime`)."""
    model: str = Field(
        default=DEFAULT_MODEL, validation_alias=AliasChoices("model", "AGENTFLEET_MODEL")
    )
    max_turns: int = Field(
        default=40, ge=1, validation_alias=AliasChoices("max_turns", "AGENTFLEET_MAX_TURNS")
    )
    """Model calls one run may make."""
    token_budget: int = Field(
        default=200_000,
        ge=1,
        validation_alias=AliasChoices("token_budget", "AGENTFLEET_TOKEN_BUDGET"),
    )
    """Input plus output tokens one run may use; the run stops once it is spent."""
    max_tokens: int = Field(default=8192, ge=1)
    """Output tokens per model call (capped by what is left of the budget)."""
    allowed_commands: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_comma_separated)] = (
        "python",
        "python3",
        "pytest",
        "ruff",
    )
    """Programs `run_command` may start (by name, no path); nothing runs through a shell."""
    command_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        validation_alias=AliasChoices(
            "command_timeout_seconds", "AGENTFLEET_AGENT_COMMAND_TIMEOUT"
        ),
    )
    max_output_chars: int = Field(default=20_000, ge=1000)
    """Longer tool output is cut (its end is kept: that is where errors are)."""
    max_retries: int = Field(default=6, ge=0)
    """Retries of one model call on 429, 529/overloaded, 5xx and connection errors."""
    retry_base_delay_seconds: float = Field(default=1.0, ge=0)
    max_retry_wait_seconds: float = Field(
        default=120.0,
        gt=0,
        validation_alias=AliasChoices("max_retry_wait_seconds", "AGENTFLEET_AGENT_MAX_RETRY_WAIT"),
    )
    """A retry-after longer than this fails the call: the work queue retries the item later
    instead of a worker sleeping on it."""

    cost_budget_usd: float | None = Field(default=None, gt=0)
    """Estimated cost (USD, list prices) one item's agent run may reach: the Project's
    `budgets.costPerItemUsd`, carried by the item (`with_budget_cap`); None: no cap."""

    def with_budget_cap(self, tokens: int | None, cost_usd: float | None = None) -> AgentSettings:
        """These settings with the token budget lowered to `tokens` and the cost capped at
        `cost_usd` (a project's per-item limits)."""
        update: dict[str, object] = {}
        if tokens is not None and tokens < self.token_budget:
            update["token_budget"] = tokens
        if cost_usd is not None:
            update["cost_budget_usd"] = cost_usd
        return self.model_copy(update=update) if update else self


class StageConfig(PodSettings):
    """What the stage handlers need besides the model and the queue (`AGENTFLEET_*`)."""

    model_config = SettingsConfigDict(env_prefix="AGENTFLEET_")

    github_api_url: str | None = None
    """Overrides the API endpoint derived from each Project's repository (a Project's own
    `spec.githubApiUrl`, carried in its items, wins over this)."""
    credentials_dir: Path = Field(
        default=Path(PROJECTS_DIR),
        validation_alias=AliasChoices("credentials_dir", "AGENTFLEET_PROJECTS_DIR"),
    )
    """Holds one directory per project (its credentials Secret mounted as files), where
    the operator mounts them."""
    github_pacing: bool = True
    """Space API calls as GitHub advises; off only against a local fake."""
    test_command: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_shell_words)] = (
        "python",
        "-m",
        "pytest",
        "-q",
    )
    """How development runs the repository's tests before it opens a pull request (shell
    words in the environment)."""
    test_timeout_seconds: float = Field(
        default=900.0,
        gt=0,
        validation_alias=AliasChoices("test_timeout_seconds", "AGENTFLEET_TEST_TIMEOUT"),
    )
    git_author_name: str = "agentfleet"
    git_author_email: str = "agentfleet@users.noreply.github.com"
    max_workers: int = Field(
        default=5,
        ge=1,
        validation_alias=AliasChoices("max_workers", "AGENTFLEET_PARALLEL_MAX_WORKERS"),
    )
    """Master-issue defaults when the work item does not carry the Project's values."""
    success_threshold: float = Field(
        default=0.8,
        gt=0,
        le=1,
        validation_alias=AliasChoices("success_threshold", "AGENTFLEET_PARALLEL_SUCCESS_THRESHOLD"),
    )
    task_timeout_seconds: float = Field(
        default=1800.0,
        gt=0,
        validation_alias=AliasChoices("task_timeout_seconds", "AGENTFLEET_PARALLEL_TASK_TIMEOUT"),
    )


ENV_VARS: dict[str, str] = env_names(WorkerSettings)
"""WorkerSettings field -> environment variable."""

AGENT_ENV_VARS: dict[str, str] = env_names(AgentSettings)
"""AgentSettings field -> environment variable (the operator writes `runtime`, `model`,
`max_turns` and `token_budget` from the WorkerPool's `spec.agent`)."""

STAGE_ENV_VARS: dict[str, str] = env_names(StageConfig)
"""StageConfig field -> environment variable."""

PROJECTS_DIR_ENV = STAGE_ENV_VARS["credentials_dir"]
"""The variable the operator sets to PROJECTS_DIR; the stage handlers read their
credentials from the directory it names."""


def current_settings(overrides: Mapping[str, object | None] | None = None) -> WorkerSettings:
    """This process's worker settings: flags (non-None `overrides`) over the environment."""
    return WorkerSettings.from_env(None, overrides)
