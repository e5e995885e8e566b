"""PID 1 of the local node's sandbox.

`agentfleet.dev.localenv.node.Node` starts this module under `unshare` in new PID, mount,
network and UTS namespaces. Everything the node runs (containerd and its shims, every
container, kubelet, kube-proxy, CoreDNS, the NetworkPolicy enforcer) is a descendant of
this process, so the kernel kills all of it when this process dies, and the node's
mounts, network namespace, links, routes and iptables/nftables rules vanish with the
namespaces: a killed test run cannot leave any of them behind on the host.

It reads its plan (a JSON `SandboxPlan`, written by the host side) and then:
1. makes the node's private file-system view: fresh tmpfs on /run, /var/lib and /var/log,
   the node's state directories bound into them, and private copies of the global kernel
   tunables kubelet insists on changing (vm.overcommit_memory, kernel.panic, ...), so the
   host's values stay as they were;
2. brings up loopback, waits for the host to move its end of the veth pair in, and
   configures addresses, the default route and the node's own sysctls;
3. waits for "start" on stdin, then starts the components in order, each after the path
   the previous one creates exists, and supervises them;
4. on SIGTERM, EOF on stdin or a component exiting: runs the drain commands (stop every
   Pod's containers), stops the components in reverse order and exits.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from agentfleet.dev.localenv.processes import ManagedProcess


class Component(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    argv: list[str]
    env: dict[str, str] = {}
    ready_path: str | None = None
    """Started in order; the next waits until this path exists..."""
    ready_argv: list[str] | None = None
    """...and this command succeeds."""
    oneshot: bool = False
    """Runs to completion (exit 0) before the next starts."""


class SandboxPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    hostname: str
    log_dir: str
    binds: dict[str, str]
    """Mount point inside the sandbox -> host directory bound there."""
    tunables: list[str]
    """/proc/sys paths that get a private copy (kubelet's global kernel tunables)."""
    link: str
    address: str
    """CIDR of the node's end of the veth pair."""
    gateway: str
    sysctls: dict[str, str]
    """Per-network-namespace sysctls of the node (/proc/sys paths)."""
    components: list[Component]
    drain: list[list[str]]
    """Commands run on shutdown once every component after the container runtime has
    stopped, before the runtime itself stops (remove every Pod sandbox)."""
    runtime: str = "containerd"
    """The component the drain commands talk to."""
    ready_file: str
    """Written once every component is started."""


def _succeeds(argv: list[str]) -> bool:
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)


def _mount(*args: str) -> None:
    _run("mount", *args)


def prepare_filesystem(plan: SandboxPlan) -> None:
    # Propagation inside the sandbox only: kubelet needs shared mounts for its own root and
    # Pod volumes, and unshare has made every mount private to this namespace first.
    _mount("--make-rshared", "/")
    private = Path("/run/agentfleet-sandbox")
    # Keep the tunables' values before /run is replaced.
    values = {path: Path(path).read_text() for path in plan.tunables}
    for point in ("/run", "/var/lib", "/var/log"):
        _mount("-t", "tmpfs", "-o", "mode=755", "tmpfs", point)
    private.mkdir(parents=True)
    for index, (path, value) in enumerate(values.items()):
        copy = private / f"tunable-{index}"
        copy.write_text(value)
        _mount("--bind", str(copy), path)
    for point, source in plan.binds.items():
        Path(point).mkdir(parents=True, exist_ok=True)
        Path(source).mkdir(parents=True, exist_ok=True)
        _mount("--bind", source, point)


def prepare_network(plan: SandboxPlan, timeout: float = 30.0) -> None:
    socket.sethostname(plan.hostname)
    _run("ip", "link", "set", "lo", "up")
    deadline = time.monotonic() + timeout
    while not Path(f"/sys/class/net/{plan.link}").exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the host did not move {plan.link} into the sandbox")
        time.sleep(0.02)
    _run("ip", "addr", "add", plan.address, "dev", plan.link)
    _run("ip", "link", "set", plan.link, "up")
    _run("ip", "route", "add", "default", "via", plan.gateway)
    for path, value in plan.sysctls.items():
        Path(path).write_text(value)


class Sandbox:
    def __init__(self, plan: SandboxPlan) -> None:
        self.plan = plan
        self.processes: list[ManagedProcess] = []
        self.stopping = False

    def start_components(self) -> None:
        for component in self.plan.components:
            started = time.monotonic()
            self._start(component)
            print(f"{component.name} ready in {time.monotonic() - started:.1f}s", flush=True)
        Path(self.plan.ready_file).write_text("ready\n")

    def _start(self, component: Component) -> None:
        if component.oneshot:
            result = subprocess.run(
                component.argv,
                env={**os.environ, **component.env},
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            log = Path(self.plan.log_dir) / f"{component.name}.log"
            log.write_text(result.stdout + result.stderr)
            if result.returncode != 0:
                raise RuntimeError(
                    f"{component.name} failed ({result.returncode}):\n{result.stderr[-2000:]}"
                )
            return
        process = ManagedProcess(
            component.name,
            component.argv,
            Path(self.plan.log_dir),
            env={**os.environ, **component.env},
        )
        process.start()
        self.processes.append(process)
        if component.ready_path is not None:
            ready = Path(component.ready_path)
            process.wait_until(ready.exists, 60, f"ready ({ready} exists)")
        if component.ready_argv is not None:
            process.wait_until(
                functools.partial(_succeeds, component.ready_argv),
                60,
                f"ready ({' '.join(component.ready_argv)} succeeds)",
            )

    def reap(self) -> None:
        """PID 1 adopts every orphan (containerd's shims among them) and must reap them;
        managed processes are reaped by their own poll()."""
        for process in self.processes:
            process.running()
        mine = {p.pid for p in self.processes}
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None or info.si_pid in mine:
                return
            with contextlib.suppress(ChildProcessError):
                os.waitpid(info.si_pid, 0)

    def failed(self) -> ManagedProcess | None:
        return next((p for p in self.processes if not p.running()), None)

    def shutdown(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        for process in reversed(self.processes):
            started = time.monotonic()
            if process.name == self.plan.runtime:
                for argv in self.plan.drain:
                    with contextlib.suppress(Exception):
                        subprocess.run(argv, capture_output=True, timeout=60, check=False)
                print(f"drained in {time.monotonic() - started:.1f}s", flush=True)
            process.stop(grace=15)
            self.reap()
            print(f"stopped {process.name} in {time.monotonic() - started:.1f}s", flush=True)


def main(plan_path: str) -> int:
    plan = SandboxPlan.model_validate_json(Path(plan_path).read_text())
    sandbox = Sandbox(plan)
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    prepare_filesystem(plan)
    prepare_network(plan)
    print("sandbox ready; waiting for start", flush=True)
    if sys.stdin.readline().strip() != "start":
        return 0
    # The host has written the components into the plan meanwhile.
    sandbox.plan = plan = SandboxPlan.model_validate_json(Path(plan_path).read_text())
    # From here on, EOF on stdin (the host side went away) stops the node too.
    os.set_blocking(sys.stdin.fileno(), False)
    code = 0
    try:
        sandbox.start_components()
        print("components started", flush=True)
        while not stop:
            sandbox.reap()
            failed = sandbox.failed()
            if failed is not None:
                print(f"{failed.name} exited; stopping the node:\n{failed.log_tail()}", flush=True)
                code = 1
                break
            with contextlib.suppress(BlockingIOError, OSError):
                if sys.stdin.buffer.read() == b"":
                    break
            time.sleep(0.2)
    except Exception as exc:
        print(f"node start failed: {exc}", flush=True)
        code = 1
    finally:
        sandbox.shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
