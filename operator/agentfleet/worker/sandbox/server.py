"""`agentfleet sandbox`: the process of a worker Pod's sandbox container.

It listens on a Unix socket (on a volume shared with the worker container only) and runs
each `CommandRequest` it receives in the shared workspace: the working directory must
resolve inside the workspace root, the environment is scrubbed, output and time are
bounded, and everything the command started dies with it. The container itself has no
credentials, no ServiceAccount token, its own user, a read-only root file system and no
capabilities; this process adds the per-command limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path

from pydantic import ValidationError

from agentfleet.worker.sandbox.protocol import CommandRequest, CommandResult, execute

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 1_000_000
SOCKET_MODE = 0o660
"""The worker container's user reaches the socket through the Pod's shared group."""


def inside(root: Path, candidate: str) -> Path | None:
    """`candidate` resolved, if it is the root or below it (symlinks followed)."""
    path = Path(os.path.realpath(candidate))
    return path if path == root or path.is_relative_to(root) else None


class SandboxServer:
    def __init__(self, socket_path: Path, root: Path, home: Path, max_concurrent: int = 4) -> None:
        self.socket_path = socket_path
        self.root = root.resolve()
        self.home = home
        self._slots = asyncio.Semaphore(max_concurrent)
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(
            self._serve, path=str(self.socket_path), limit=MAX_REQUEST_BYTES
        )
        os.chmod(self.socket_path, SOCKET_MODE)
        log.info("sandbox serving %s on %s", self.root, self.socket_path)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.socket_path.unlink(missing_ok=True)

    async def answer(self, raw: bytes) -> CommandResult:
        try:
            request = CommandRequest.model_validate_json(raw)
        except ValidationError as exc:
            return CommandResult(error=f"malformed request: {exc.errors()[0]['msg']}")
        try:
            cwd = inside(self.root, request.cwd)
            usable = cwd is not None and cwd.is_dir() and os.access(cwd, os.R_OK | os.X_OK)
        except OSError as exc:
            return CommandResult(error=f"{request.cwd}: {exc.strerror}")
        if cwd is None or not usable:
            return CommandResult(error=f"{request.cwd}: not a directory of the workspace")
        async with self._slots:
            return await execute(request, cwd, self.home)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            raw = await reader.readline()
            result = await self.answer(raw)
            writer.write(result.model_dump_json().encode() + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError) as exc:
            log.warning("dropped a sandbox request: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def serve(socket_path: Path, root: Path, home: Path) -> None:
    """Serve until SIGTERM (the Pod stops)."""
    # Files the commands create stay writable for the worker container (same group).
    os.umask(0o002)
    server = SandboxServer(socket_path, root, home)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await server.close()
