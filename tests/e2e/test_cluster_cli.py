"""`make cluster-up` / `make cluster-down` as a person uses them (through the CLI): a
cluster with a Ready node that runs Pods, and nothing left on the machine afterwards,
also when the supervisor is killed instead of stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agentfleet.core.api.workerpool import DEFAULT_WORKER_IMAGE
from agentfleet.dev.localenv import find_binary
from agentfleet.dev.localenv.cluster import running_pid
from agentfleet.dev.localenv.network import NODE_NAME
from agentfleet.dev.localenv.waiting import wait_for

pytestmark = pytest.mark.e2e

NODE_PROCESSES = ("containerd", "kubelet", "kube-proxy", "coredns", "pause", "sleep")


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentfleet", "dev", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _kubectl(kubeconfig: Path, *args: str) -> str:
    return subprocess.run(
        [str(find_binary("kubectl")), "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout


def _leftovers(state: Path, slot_link: str, cgroup: str) -> dict[str, list[str]]:
    """Everything a cluster could leave on the host: processes, mounts, links, cgroups."""
    mounts = [
        line
        for line in Path("/proc/mounts").read_text().splitlines()
        if str(state) in line or "kubelet" in line or "containerd" in line
    ]
    links = subprocess.run(
        ["ip", "-o", "link", "show"], capture_output=True, text=True, check=True
    ).stdout
    cgroups = [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/{cgroup.lstrip('/')}")]
    return {
        "processes": _processes_mentioning(str(state)),
        "mounts": mounts,
        "links": [line for line in links.splitlines() if f" {slot_link}@" in line],
        "cgroups": cgroups,
    }


def _start_a_pod(kubeconfig: Path) -> str:
    _kubectl(
        kubeconfig, "run", "probe", f"--image={DEFAULT_WORKER_IMAGE}", "--restart=Never",
        "--command", "--", "sleep", "3600",
    )  # fmt: skip
    _kubectl(kubeconfig, "wait", "--for=condition=Ready", "pod/probe", "--timeout=60s")
    pod = json.loads(_kubectl(kubeconfig, "get", "pod", "probe", "-o", "json"))
    assert pod["spec"]["nodeName"] == NODE_NAME
    ip: str = pod["status"]["podIP"]
    return ip


def _slot(kubeconfig: Path) -> tuple[str, str]:
    node = json.loads(_kubectl(kubeconfig, "get", "node", NODE_NAME, "-o", "json"))
    address = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    slot = address.split(".")[2]
    return f"afnode{slot}", f"/agentfleet-node{slot}"


def test_cluster_up_runs_pods_and_down_leaves_nothing(tmp_path: Path) -> None:
    state = tmp_path / "cluster"
    up = _cli("cluster-up", "--directory", str(state))
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        kubeconfig = Path(up.stdout.split("export KUBECONFIG=")[1].split()[0])
        assert kubeconfig.is_file()

        # A second cluster-up is a no-op on the running cluster.
        again = _cli("cluster-up", "--directory", str(state))
        assert again.returncode == 0, again.stderr
        assert f"export KUBECONFIG={kubeconfig}" in again.stdout

        nodes = _kubectl(kubeconfig, "get", "nodes", "-o", "wide")
        assert NODE_NAME in nodes and " Ready " in nodes
        pod_ip = _start_a_pod(kubeconfig)
        assert pod_ip.startswith("10.244.")
        link, cgroup = _slot(kubeconfig)
        running = " ".join(_processes_mentioning(str(state)))
        for component in ("etcd", "kube-apiserver", "kubelet", "kube-proxy", "coredns"):
            assert component in running
    finally:
        down = _cli("cluster-down", "--directory", str(state))
    assert down.returncode == 0, down.stdout + down.stderr
    assert "stopped" in down.stdout
    assert _leftovers(state, link, cgroup) == {
        "processes": [], "mounts": [], "links": [], "cgroups": []
    }  # fmt: skip
    assert "no local cluster was running" in _cli("cluster-down", "--directory", str(state)).stdout


def test_a_killed_supervisor_leaves_nothing_behind(tmp_path: Path) -> None:
    """SIGKILL gives no chance to clean up: the kernel does it (namespaces, PDEATHSIG), and
    the node's janitor removes its cgroups."""
    state = tmp_path / "cluster"
    up = _cli("cluster-up", "--directory", str(state))
    assert up.returncode == 0, up.stdout + up.stderr
    kubeconfig = Path(up.stdout.split("export KUBECONFIG=")[1].split()[0])
    _start_a_pod(kubeconfig)
    link, cgroup = _slot(kubeconfig)
    pid = running_pid(state)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: (
            _leftovers(state, link, cgroup)
            == {"processes": [], "mounts": [], "links": [], "cgroups": []}
        ),
        30,
        "nothing of the cluster left",
    )
