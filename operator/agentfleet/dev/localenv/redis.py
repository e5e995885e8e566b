"""A real redis-server on a free port with its own data directory.

It listens on loopback, and also on `extra_address` when given: the host end of the local
node's link, so Pods reach it at `pod_url`."""

from __future__ import annotations

import shutil
import socket
import tempfile
from pathlib import Path
from typing import Self

from agentfleet.dev.localenv.binaries import find_binary
from agentfleet.dev.localenv.lifecycle import Service
from agentfleet.dev.localenv.processes import ManagedProcess, free_port


def _ping(port: int, password: str | None) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        if password is not None:
            sock.sendall(f"AUTH {password}\r\n".encode())
            if not sock.recv(16).startswith(b"+OK"):
                return False
        sock.sendall(b"PING\r\n")
        return sock.recv(16).startswith(b"+PONG")


class RedisServer(Service):
    """`appendonly=True` turns on the AOF with fsync on every write, for crash tests.
    `password` makes it refuse every command before AUTH (the Redis that Pods reach has
    one, as a production queue would: the sandbox beside a worker can reach it but holds no
    password); it goes in a config file readable by root only, never on a command line."""

    def __init__(
        self,
        workdir: Path | None = None,
        port: int | None = None,
        appendonly: bool = False,
        extra_address: str | None = None,
        password: str | None = None,
    ) -> None:
        self._owns_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="agentfleet-redis-"))
        self.port = port or free_port()
        self.appendonly = appendonly
        self.extra_address = extra_address
        self.password = password
        auth = f":{password}@" if password else ""
        self.url = f"redis://{auth}127.0.0.1:{self.port}/0"
        self.pod_url = f"redis://{auth}{extra_address or '127.0.0.1'}:{self.port}/0"
        self.process: ManagedProcess | None = None

    def _argv(self) -> list[str]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "redis.conf"
        config.touch(mode=0o600)
        config.write_text(f"requirepass {self.password}\n" if self.password else "")
        argv = [
            str(find_binary("redis-server")),
            str(config),
            "--bind",
            "127.0.0.1",
            *([self.extra_address] if self.extra_address else []),
            "--port",
            str(self.port),
            "--dir",
            str(self.workdir),
            "--save",
            "",
            "--protected-mode",
            "no",
            "--daemonize",
            "no",
        ]
        if self.appendonly:
            argv += ["--appendonly", "yes", "--appendfsync", "always"]
        return argv

    def start(self, timeout: float = 20.0) -> Self:
        self.process = ManagedProcess("redis-server", self._argv(), self.workdir / "logs")
        self.process.start()
        self.process.wait_until(lambda: _ping(self.port, self.password), timeout, "answering PING")
        return self

    def restart(self, timeout: float = 20.0) -> None:
        """Stop (SIGTERM) and start again on the same port and data directory."""
        if self.process is not None:
            self.process.stop()
        self.start(timeout)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
