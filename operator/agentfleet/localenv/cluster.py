"""A long-lived local control plane for people: `make cluster-up` / `make cluster-down`.

`cluster-up` starts a detached supervisor process that owns the control plane (its
children die with it) and returns once the API server is ready; `cluster-down` sends the
supervisor SIGTERM and waits until every component has exited.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from agentfleet.localenv.controlplane import ControlPlane
from agentfleet.localenv.waiting import wait_for

DEFAULT_DIR = Path(".cache") / "cluster"


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


def up(directory: Path = DEFAULT_DIR, timeout: float = 120.0) -> Path:
    """Start the supervisor (if not running) and return the admin kubeconfig path."""
    directory = directory.resolve()
    kubeconfig = directory / "state" / "admin.kubeconfig"
    if running_pid(directory) is not None and (directory / "ready").exists():
        return kubeconfig
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ready").unlink(missing_ok=True)
    (directory / "failed").unlink(missing_ok=True)
    log = (directory / "supervisor.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentfleet.localenv.cluster", str(directory)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # survives the `make` that started it
    )
    log.close()

    def settled() -> bool:
        if (directory / "failed").exists() or proc.poll() is not None:
            raise RuntimeError(
                "local control plane failed to start:\n"
                + (directory / "supervisor.log").read_text(errors="replace")[-4000:]
            )
        return (directory / "ready").exists()

    wait_for(settled, timeout, "the local control plane", interval=0.2)
    return kubeconfig


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
    plane = ControlPlane(workdir=state)
    (directory / "supervisor.pid").write_text(str(os.getpid()))
    try:
        plane.start()
    except Exception as exc:
        (directory / "failed").write_text(str(exc))
        raise
    (directory / "ready").write_text(plane.server)
    print(f"control plane ready at {plane.server}; kubeconfig {plane.kubeconfig}", flush=True)
    try:
        while not stop.wait(1.0):
            if not plane.healthy():
                print("a component exited; shutting down:\n" + plane.logs(), flush=True)
                break
    finally:
        plane.stop()
        (directory / "ready").unlink(missing_ok=True)
        print("control plane stopped", flush=True)


if __name__ == "__main__":
    _serve(Path(sys.argv[1]))
