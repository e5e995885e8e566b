"""What the worker asks of the sandbox, and the two ways of running it.

The request is one JSON line, the answer one JSON line, one request per connection. The
sandbox enforces every limit itself (path, time, output), so a worker that was lied to
cannot ask for more than these models allow.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import sys
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

MAX_OUTPUT_CHARS = 1_000_000
MAX_TIMEOUT_SECONDS = 3600.0


class SandboxUnavailableError(RuntimeError):
    """The sandbox container did not answer (not started, crashed, socket gone)."""


class CommandRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    argv: tuple[str, ...] = Field(min_length=1, max_length=1000)
    """Program and arguments; no shell."""
    cwd: str = Field(min_length=1, max_length=4096)
    """Absolute path of the working directory: inside the sandbox's workspace root."""
    timeout_seconds: float = Field(gt=0, le=MAX_TIMEOUT_SECONDS)
    max_output_chars: int = Field(default=20_000, ge=1, le=MAX_OUTPUT_CHARS)
    """Longer output is cut; its end is kept (that is where errors are)."""


class CommandResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    exit_code: int | None = None
    """None when the command did not run to an end (refused, not found, timed out)."""
    output: str = ""
    """stdout and stderr, interleaved, cut to the request's limit."""
    error: str | None = None
    """Why it did not run or did not finish: not found, refused path, timed out."""

    def text(self) -> str:
        """What a model or a log sees: "exit code N" and the output, or the error."""
        if self.error is not None:
            return f"error: {self.error}" + (f"\n{self.output}" if self.output else "")
        return f"exit code {self.exit_code}\n{self.output}"


class CommandRunner(Protocol):
    async def run(self, request: CommandRequest) -> CommandResult: ...


def command_environment(home: Path) -> dict[str, str]:
    """The environment of commands the model runs: nothing inherited but PATH, which
    puts this interpreter first."""
    interpreter_bin = str(Path(sys.executable).parent)
    return {
        "PATH": os.pathsep.join([interpreter_bin, os.environ.get("PATH", os.defpath)]),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "NO_COLOR": "1",
    }


def cut_tail(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"[... {len(text) - limit} characters cut ...]\n" + text[-limit:]


async def execute(request: CommandRequest, cwd: Path, home: Path) -> CommandResult:
    """Run the request in `cwd` (already checked) with a scrubbed environment, in its own
    process group, killed with it at the timeout."""
    environment = command_environment(home)
    executable = shutil.which(request.argv[0], path=environment["PATH"])
    if executable is None:
        return CommandResult(error=f"{request.argv[0]!r} is not installed")
    process = await asyncio.create_subprocess_exec(
        executable,
        *request.argv[1:],
        cwd=cwd,
        env=environment,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), request.timeout_seconds)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        return CommandResult(
            error=f"{shlex.join(request.argv)} timed out after {request.timeout_seconds:g} s"
        )
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        raise
    finally:
        # Anything the command left running in its group goes with it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    return CommandResult(
        exit_code=process.returncode,
        output=cut_tail(output.decode(errors="replace"), request.max_output_chars),
    )


class LocalRunner:
    """Runs commands in this process tree: a worker without a sandbox container (run by
    hand, or in tests). Commands then share the worker's user and file system: the
    credentials the worker can read, they can read too."""

    async def run(self, request: CommandRequest) -> CommandResult:
        cwd = Path(request.cwd)
        return await execute(request, cwd, cwd)
