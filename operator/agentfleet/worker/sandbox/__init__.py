"""The sandbox: where code runs on an agent's behalf, away from every credential.

A worker Pod has two containers. The worker container holds the queue connection, the
model and GitHub credentials and runs `git push`; the sandbox container (`agentfleet
sandbox`) holds nothing secret and runs what the model chooses (`run_command`) and the
repository's tests, in the checkout on the volume the two share. They talk over a Unix
socket on another shared volume: the worker sends a `CommandRequest`, the sandbox answers
with a `CommandResult`. Without a sandbox socket configured (a worker run by hand, the
tests), `LocalRunner` runs commands in the worker's own process tree instead.
"""

from agentfleet.worker.sandbox.protocol import (
    CommandRequest,
    CommandResult,
    CommandRunner,
    LocalRunner,
    SandboxUnavailableError,
)

__all__ = [
    "CommandRequest",
    "CommandResult",
    "CommandRunner",
    "LocalRunner",
    "SandboxUnavailableError",
]
