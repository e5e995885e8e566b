"""The handler interface: how a stage's work plugs into the worker runtime.

A handler is an object with one async method, `handle(item, context)`, returning a
`HandlerResult`. Handlers are built by factories found by name: entry points of the group
`agentfleet.handlers` (agentfleet's own are declared in pyproject.toml), or factories
registered at run time; the worker's `--handler` / `AGENTFLEET_HANDLER` picks one. An
unregistered `module:attribute` path works too.

Cancellation: the runtime cancels the handler's task (asyncio.CancelledError) when the
item is lost to another worker or the drain grace period runs out; handlers must let
that exception propagate. `context.draining` is set as soon as a drain starts, and
`context.deadline` says when cancellation will come, so long work can checkpoint.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from agentfleet.core.api import Stage
from agentfleet.core.podenv import WorkerSettings
from agentfleet.core.queue.models import WorkItem

if TYPE_CHECKING:  # the agent loop needs the worker extra (anthropic); handlers do not
    from agentfleet.worker.agents.loop import SpendGate


@dataclass
class HandlerContext:
    workspace: Path
    """An empty directory for this item only, removed after the handler returns. In a
    worker Pod it is on the volume the sandbox container shares."""
    private: Path
    """Another, on a volume only this container mounts (git directories): nothing the
    sandbox runs can write here."""
    logger: logging.LoggerAdapter[logging.Logger]
    settings: WorkerSettings
    pipeline: tuple[Stage, ...]
    """The item's pipeline; `next_stage` is where the default follow-up goes."""
    next_stage: Stage | None
    max_attempts: int
    """The item's attempt number is `item.attempts`; the last one is `max_attempts`."""
    draining: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the worker has been asked to stop (SIGTERM)."""
    deadline: datetime | None = None
    """Once draining: when the handler will be cancelled and the item released."""
    budget: SpendGate | None = None
    """The item's project's daily budget (`agentfleet.worker.budget`), for the agent
    runner: it raises `BudgetExhausted` once the day is spent, and the runtime releases
    the item."""


class HandlerResult(BaseModel):
    """`HandlerResult.succeeded(...)` or `HandlerResult.failed(...)`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    outcome: Literal["succeeded", "failed"]
    error: str | None = None
    retryable: bool = True
    """For failures: False sends the item straight to review (dead-letter)."""
    output: dict[str, Any] = Field(default_factory=dict)
    """Merged into the payload of the default next-stage follow-up."""
    follow_ups: tuple[WorkItem, ...] | None = None
    """None: the default next-stage follow-up. Otherwise exactly these items (may be
    empty), enqueued atomically with the completion."""

    @classmethod
    def succeeded(
        cls,
        output: Mapping[str, Any] | None = None,
        follow_ups: tuple[WorkItem, ...] | list[WorkItem] | None = None,
    ) -> HandlerResult:
        return cls(
            outcome="succeeded",
            output=dict(output or {}),
            follow_ups=None if follow_ups is None else tuple(follow_ups),
        )

    @classmethod
    def failed(cls, error: str, retryable: bool = True) -> HandlerResult:
        return cls(outcome="failed", error=error, retryable=retryable)


class Handler(Protocol):
    async def handle(self, item: WorkItem, context: HandlerContext) -> HandlerResult: ...


HandlerFactory = Callable[[WorkerSettings], Handler]

HANDLER_ENTRY_POINTS = "agentfleet.handlers"
"""The entry-point group handlers are found in. agentfleet's own (`command`, `claude` and
one per stage) are declared in its pyproject.toml; a separate distribution adds its own
handlers the same way, without a change here."""

_REGISTERED: dict[str, HandlerFactory | str] = {}
"""Handlers registered at run time (tests, embedding), over the entry points."""


def _entry_points() -> dict[str, str]:
    return {point.name: point.value for point in entry_points(group=HANDLER_ENTRY_POINTS)}


class UnknownHandlerError(LookupError):
    pass


def register_handler(name: str, factory: HandlerFactory | str) -> None:
    """Register a factory, or a lazy `"module:attribute"` path to one, under `name`."""
    _REGISTERED[name] = factory


def registered_handlers() -> list[str]:
    return sorted({*_entry_points(), *_REGISTERED})


def build_handler(name: str, settings: WorkerSettings) -> Handler:
    """The handler `name` names: registered, an entry point, or a `module:attribute` path.

    Entry points are loaded lazily: a worker imports only the handler it runs (the stage
    handlers pull in the Anthropic and GitHub clients, which a `command` worker does not
    need)."""
    target = _REGISTERED.get(name) or _entry_points().get(name, name)
    factory = _import(target) if isinstance(target, str) else target
    return factory(settings)


def _import(path: str) -> HandlerFactory:
    module_name, _, attribute = path.partition(":")
    if not attribute:
        raise UnknownHandlerError(
            f"unknown handler {path!r}: not one of {registered_handlers()} "
            "and not a module:attribute path"
        )
    try:
        factory: HandlerFactory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise UnknownHandlerError(f"cannot load handler {path!r}: {exc}") from exc
    return factory
