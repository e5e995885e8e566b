"""The worker runtime (`agentfleet worker`): pulls its pool's lanes and runs a handler."""

from agentfleet.core.podenv import ENV_VARS, WorkerSettings
from agentfleet.worker.handlers import (
    Handler,
    HandlerContext,
    HandlerFactory,
    HandlerResult,
    UnknownHandlerError,
    build_handler,
    register_handler,
    registered_handlers,
)

__all__ = [
    "ENV_VARS",
    "Handler",
    "HandlerContext",
    "HandlerFactory",
    "HandlerResult",
    "UnknownHandlerError",
    "WorkerSettings",
    "build_handler",
    "register_handler",
    "registered_handlers",
]
