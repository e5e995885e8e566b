"""The local cluster: a real control plane and one real node, and the long-lived copy
people start with `make cluster-up` / `make cluster-down`.

`LocalCluster` is what the test fixtures, the benchmarks and the demo start: a network
slot (`agentfleet.dev.localenv.network`), the node's sandbox, the control plane listening on
the node link's host end, then the node's components, until the Node is Ready.

`cluster-up` starts a detached supervisor process that owns a `LocalCluster` (its
children die with it) and returns once the node is Ready; `cluster-down` sends the
supervisor SIGTERM and waits until every component has exited.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Self

from agentfleet.dev.localenv.controlplane import ControlPlane
from agentfleet.dev.localenv.lifecycle import Service
from agentfleet.dev.localenv.network import ClusterNetwork, allocate
from agentfleet.dev.localenv.node import Node, preflight
from agentfleet.dev.localenv.waiting import wait_for

DEFAULT_DIR = Path(".cache") / "cluster"


class ClusterStartError(RuntimeError):
    """`cluster-up` could not bring the cluster up; the message holds the log tail."""


class LocalCluster(Service):
    def __init__(self, workdir: Path | None = None, keep_workdir: bool = False) -> None:
        self._owns_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="agentfleet-cluster-"))
        self.keep_workdir = keep_workdir
        self.network: ClusterNetwork | None = None
        self._controlplane: ControlPlane | None = None
        self._node: Node | None = None
        self.timings: dict[str, float] = {}

    @property
    def controlplane(self) -> ControlPlane:
        if self._controlplane is None:
            raise RuntimeError("the local cluster is not started")
        return self._controlplane

    @property
    def node(self) -> Node:
        if self._node is None:
            raise RuntimeError("the local cluster is not started")
        return self._node

    @property
    def kubeconfig(self) -> Path:
        return self.controlplane.kubeconfig

    @property
    def server(self) -> str:
        return self.controlplane.server

    def start(self) -> Self:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        started = time.monotonic()
        self.network = allocate()
        self._node = Node(self.network, self.workdir / "node")
        self._controlplane = ControlPlane(self.workdir / "controlplane", network=self.network)
        self._node.create_sandbox()
        self._controlplane.start()
        self._node.start(self._controlplane)
        self.timings = {
            **{f"controlplane/{k}": v for k, v in self._controlplane.timings.items()},
            **{f"node/{k}": v for k, v in self._node.timings.items()},
            "total": time.monotonic() - started,
        }

    def stop(self) -> None:
        if self._node is not None:
            self._node.stop()
        if self._controlplane is not None:
            self._controlplane.stop()
        if self.network is not None:
            self.network.release()
            self.network = None
        if self._owns_workdir and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def healthy(self) -> bool:
        return (
            self._controlplane is not None
            and self._controlplane.healthy()
            and self._node is not None
            and self._node.healthy()
        )

    def logs(self, lines: int = 40) -> str:
        parts = []
        if self._controlplane is not None:
            parts.append(self._controlplane.logs(lines))
        if self._node is not None:
            parts.append(self._node.logs(lines))
        return "\n".join(parts)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as gone.
    with contextlib.suppress(FileNotFoundError):
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return False
    return True


def running_pid(directory: Path) -> int | None:
    pid_file = directory / "supervisor.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def up(directory: Path = DEFAULT_DIR, timeout: float = 300.0) -> Path:
    """Start the supervisor (if not running) and return the admin kubeconfig path."""
    directory = directory.resolve()
    ready = directory / "ready"
    if running_pid(directory) is not None and ready.exists():
        return Path(ready.read_text().strip())
    preflight()  # what this machine lacks, as one message, before anything starts
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ready").unlink(missing_ok=True)
    (directory / "failed").unlink(missing_ok=True)
    log = (directory / "supervisor.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentfleet.dev.localenv.cluster", str(directory)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # survives the `make` that started it
    )
    log.close()

    deadline = time.monotonic() + timeout
    while not ready.exists():
        if (directory / "failed").exists() or proc.poll() is not None:
            raise ClusterStartError(
                "local cluster failed to start:\n"
                + (directory / "supervisor.log").read_text(errors="replace")[-4000:]
            )
        if time.monotonic() > deadline:
            raise ClusterStartError(f"local cluster not ready after {timeout:.0f}s")
        time.sleep(0.2)
    return Path(ready.read_text().strip())


def down(directory: Path = DEFAULT_DIR, timeout: float = 60.0) -> bool:
    """Stop the supervisor and its components; False when nothing was running."""
    directory = directory.resolve()
    pid = running_pid(directory)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not _pid_alive(pid), timeout, f"supervisor {pid} to exit", interval=0.2)
    (directory / "supervisor.pid").unlink(missing_ok=True)
    (directory / "ready").unlink(missing_ok=True)
    return True


def _serve(directory: Path) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    state = directory / "state"
    shutil.rmtree(state, ignore_errors=True)
    local = LocalCluster(workdir=state, keep_workdir=True)
    (directory / "supervisor.pid").write_text(str(os.getpid()))
    try:
        local.start()
    except Exception as exc:
        (directory / "failed").write_text(str(exc))
        raise
    (directory / "ready").write_text(str(local.kubeconfig))
    print(
        f"cluster ready in {local.timings['total']:.1f}s: API server {local.server}, "
        f"kubeconfig {local.kubeconfig}, logs in {state}",
        flush=True,
    )
    try:
        while not stop.wait(1.0):
            if not local.healthy():
                print("a component exited; shutting down:\n" + local.logs(), flush=True)
                break
    finally:
        local.stop()
        (directory / "ready").unlink(missing_ok=True)
        print("cluster stopped", flush=True)


if __name__ == "__main__":
    _serve(Path(sys.argv[1]))
