"""Child processes that never outlive their parent and keep their logs for post-mortems."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self

from agentfleet.dev.localenv.lifecycle import Service

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    # The kernel sends SIGKILL to the child when the parent dies, so a crashed or
    # SIGKILLed test run cannot leave an etcd or apiserver behind.
    with contextlib.suppress(OSError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    os.setpgrp()


class ProcessFailedError(RuntimeError):
    """A managed process exited early or never became ready."""


class ManagedProcess(Service):
    """One long-running server process with its output captured to a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_dir: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        stdin_pipe: bool = False,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_dir / f"{name}.log"
        self._env = env
        self._cwd = cwd
        self._stdin_pipe = stdin_pipe
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise ProcessFailedError(f"{self.name} is not started")
        return self._proc.pid

    def start(self) -> Self:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE if self._stdin_pipe else subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env,
                cwd=self._cwd,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only async-signal-safe calls
            )
        finally:
            log.close()
        return self

    def write(self, line: str) -> None:
        """A line to the process's standard input (started with `stdin_pipe=True`)."""
        if self._proc is None or self._proc.stdin is None:
            raise ProcessFailedError(f"{self.name} has no standard input pipe")
        self._proc.stdin.write(line.encode() + b"\n")
        self._proc.stdin.flush()

    def close_stdin(self) -> None:
        if self._proc is not None and self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_until(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll `check` until it holds, failing fast if the process exits meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running():
                code = self._proc.returncode if self._proc else None
                raise ProcessFailedError(
                    f"{self.name} exited with code {code} before {what}; "
                    f"last log lines ({self.log_path}):\n{self.log_tail()}"
                )
            with contextlib.suppress(Exception):
                if check():
                    return
            if time.monotonic() > deadline:
                raise ProcessFailedError(
                    f"{self.name} not {what} after {timeout:.0f}s; "
                    f"last log lines ({self.log_path}):\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def signal(self, signum: int) -> None:
        if self.running() and self._proc is not None:
            self._proc.send_signal(signum)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; also reaps its process group."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def kill(self) -> None:
        """SIGKILL at once (crash simulation)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=10)
