"""Stage handlers (genesis, development, content, review) for the worker runtime.

Each is an entry point of the group `agentfleet.handlers` (pyproject.toml) under its stage
name, so `AGENTFLEET_HANDLER=development` (or `--handler development`) runs it; `claude`
(a WorkerPool's default `spec.handler`) runs the handler of the worker's own stage. A
handler built by `handler_factory` takes everything it needs from the worker's
environment.
"""

from __future__ import annotations

from collections.abc import Callable

from agentfleet.core.podenv import StageConfig, WorkerSettings
from agentfleet.worker.handlers import Handler
from agentfleet.worker.stages.base import StageHandler
from agentfleet.worker.stages.content import ContentHandler
from agentfleet.worker.stages.development import DevelopmentHandler
from agentfleet.worker.stages.environment import StageEnvironment
from agentfleet.worker.stages.genesis import GenesisHandler
from agentfleet.worker.stages.review import ReviewHandler

HANDLERS: dict[str, type[StageHandler]] = {
    "genesis": GenesisHandler,
    "development": DevelopmentHandler,
    "content": ContentHandler,
    "review": ReviewHandler,
}


def handler_factory(name: str) -> Callable[[WorkerSettings], Handler]:
    handler_class = HANDLERS[name]

    def build(settings: WorkerSettings) -> Handler:
        return handler_class(StageEnvironment.from_worker_settings(settings))

    return build


def claude_handler(settings: WorkerSettings) -> Handler:
    """The Claude handler of the worker's own stage (`handler: claude`, the default)."""
    return handler_factory(settings.stage.value)(settings)


def genesis_handler(settings: WorkerSettings) -> Handler:
    return handler_factory("genesis")(settings)


def development_handler(settings: WorkerSettings) -> Handler:
    return handler_factory("development")(settings)


def content_handler(settings: WorkerSettings) -> Handler:
    return handler_factory("content")(settings)


def review_handler(settings: WorkerSettings) -> Handler:
    return handler_factory("review")(settings)


__all__ = [
    "HANDLERS",
    "ContentHandler",
    "DevelopmentHandler",
    "GenesisHandler",
    "ReviewHandler",
    "StageConfig",
    "StageEnvironment",
    "StageHandler",
    "claude_handler",
    "content_handler",
    "development_handler",
    "genesis_handler",
    "handler_factory",
    "review_handler",
]
