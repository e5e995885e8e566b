"""What one agent run may do: model, turns, tokens, commands, retries.

Model, max turns and token budget come from the WorkerPool's `agent` spec (the operator
puts them in the worker's environment under the names in
`agentfleet.core.podenv.AGENT_ENV_VARS`); a Project's `budgets.tokensPerItem` lowers the
token budget further. Everything else has a safe default and an environment override.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from agentfleet.core.api.workerpool import DEFAULT_MODEL
from agentfleet.core.podenv import AGENT_ENV_VARS

ENV_VARS: dict[str, str] = {
    # Set by the operator from the WorkerPool's spec.agent; the names are its contract.
    **AGENT_ENV_VARS,
    "max_tokens": "AGENTFLEET_AGENT_MAX_TOKENS",
    "allowed_commands": "AGENTFLEET_AGENT_ALLOWED_COMMANDS",
    "command_timeout_seconds": "AGENTFLEET_AGENT_COMMAND_TIMEOUT",
    "max_retries": "AGENTFLEET_AGENT_MAX_RETRIES",
    "max_retry_wait_seconds": "AGENTFLEET_AGENT_MAX_RETRY_WAIT",
}
"""Setting name -> environment variable."""


class AgentSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = DEFAULT_MODEL
    max_turns: int = Field(default=40, ge=1)
    """Model calls one run may make."""
    token_budget: int = Field(default=200_000, ge=1)
    """Input plus output tokens one run may use; the run stops once it is spent."""
    max_tokens: int = Field(default=8192, ge=1)
    """Output tokens per model call (capped by what is left of the budget)."""
    allowed_commands: tuple[str, ...] = ("python", "python3", "pytest", "ruff")
    """Programs `run_command` may start (by name, no path); nothing runs through a shell."""
    command_timeout_seconds: float = Field(default=300.0, gt=0)
    max_output_chars: int = Field(default=20_000, ge=1000)
    """Longer tool output is cut (its end is kept: that is where errors are)."""
    max_retries: int = Field(default=6, ge=0)
    """Retries of one model call on 429, 529/overloaded, 5xx and connection errors."""
    retry_base_delay_seconds: float = Field(default=1.0, ge=0)
    max_retry_wait_seconds: float = Field(default=120.0, gt=0)
    """A retry-after longer than this fails the call: the work queue retries the item later
    instead of a worker sleeping on it."""

    def with_budget_cap(self, tokens: int | None) -> AgentSettings:
        """These settings with the token budget lowered to `tokens` (a project's limit)."""
        if tokens is None or tokens >= self.token_budget:
            return self
        return self.model_copy(update={"token_budget": tokens})

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> AgentSettings:
        values: dict[str, object] = {}
        for name, variable in ENV_VARS.items():
            raw = environ.get(variable, "")
            if not raw:
                continue
            if name == "allowed_commands":
                values[name] = tuple(part.strip() for part in raw.split(",") if part.strip())
            else:
                values[name] = raw
        return cls.model_validate(values)
