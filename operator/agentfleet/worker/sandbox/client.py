"""The worker's side: hand a command to the sandbox container and wait for its answer."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from pydantic import ValidationError

from agentfleet.worker.sandbox.protocol import (
    CommandRequest,
    CommandResult,
    SandboxUnavailableError,
)
from agentfleet.worker.sandbox.server import MAX_REQUEST_BYTES

# The answer comes when the command ends; beyond its own timeout, allow this much for the
# sandbox to kill it and reply.
_REPLY_SLACK_SECONDS = 30.0


class SandboxRunner:
    def __init__(self, socket_path: Path, connect_timeout: float = 60.0) -> None:
        self.socket_path = socket_path
        self.connect_timeout = connect_timeout

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The sandbox container may still be starting: wait for its socket, bounded."""
        deadline = time.monotonic() + self.connect_timeout
        while True:
            try:
                return await asyncio.open_unix_connection(
                    str(self.socket_path), limit=MAX_REQUEST_BYTES * 2
                )
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                if time.monotonic() > deadline:
                    raise SandboxUnavailableError(
                        f"the sandbox at {self.socket_path} does not answer: {exc}"
                    ) from exc
                await asyncio.sleep(0.2)

    async def run(self, request: CommandRequest) -> CommandResult:
        reader, writer = await self._connect()
        try:
            writer.write(request.model_dump_json().encode() + b"\n")
            await writer.drain()
            raw = await asyncio.wait_for(
                reader.readline(), request.timeout_seconds + _REPLY_SLACK_SECONDS
            )
        except (TimeoutError, ConnectionError) as exc:
            raise SandboxUnavailableError(f"the sandbox did not answer: {exc!r}") from exc
        finally:
            writer.close()
        try:
            return CommandResult.model_validate_json(raw)
        except ValidationError as exc:
            raise SandboxUnavailableError(f"the sandbox answered nonsense: {raw[:200]!r}") from exc
