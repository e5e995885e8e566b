"""`make cluster-up` / `make cluster-down` as a person uses them (through the CLI)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentfleet.localenv import find_binary

pytestmark = pytest.mark.e2e


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
        timeout=180,
        check=False,
    )


def test_cluster_up_serves_kubectl_and_down_leaves_nothing(tmp_path: Path) -> None:
    state = tmp_path / "cluster"
    up = _cli("cluster-up", "--directory", str(state))
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        kubeconfig = state / "state" / "admin.kubeconfig"
        assert f"export KUBECONFIG={kubeconfig}" in up.stdout

        # A second cluster-up is a no-op on the running cluster.
        again = _cli("cluster-up", "--directory", str(state))
        assert again.returncode == 0, again.stderr

        namespaces = subprocess.run(
            [str(find_binary("kubectl")), "--kubeconfig", str(kubeconfig), "get", "ns"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        assert "default" in namespaces.split()
        assert len(_processes_mentioning(str(state))) >= 3  # etcd, apiserver, kcm (+supervisor)
    finally:
        down = _cli("cluster-down", "--directory", str(state))
    assert down.returncode == 0, down.stdout + down.stderr
    assert "stopped" in down.stdout
    assert _processes_mentioning(str(state)) == []
    assert (
        "no local control plane was running"
        in _cli("cluster-down", "--directory", str(state)).stdout
    )
