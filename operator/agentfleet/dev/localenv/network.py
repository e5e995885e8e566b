"""Addresses of one local cluster: its node's network, Pod and Service ranges.

Each running local cluster holds a *slot* (0..63), an exclusive lock on a file under
/run/lock, and takes its addresses from it, so `make cluster-up`, a test session and a
benchmark can run side by side on one machine:

    host end of the node's veth  10.250.<slot>.1   (the API server is reached here)
    the node (kubelet's nodeIP)  10.250.<slot>.2
    Pods                         10.244.<slot>.0/24
    Services                     10.96.<slot>.0/24 (.1 is `kubernetes`, .10 is DNS)
    a stand-in metadata server   169.254.169.254 (inside the node's sandbox; see
                                 `agentfleet.dev.localenv.metadata`)

The lock is released by the kernel when its holder exits, however it exits.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

SLOTS = 64
LOCK_DIR = Path("/run/lock")
CLUSTER_DOMAIN = "cluster.local"
NODE_NAME = "agentfleet-node"
# Where clouds serve instance metadata (and credentials); every node sandbox serves a
# stand-in there that Pods reach unless a NetworkPolicy forbids it. The host's own
# metadata server (if any) stays untouched: the address is never added on the host.
METADATA_IP = "169.254.169.254"
METADATA_PORT = 80


class NoFreeSlotError(RuntimeError):
    """Every slot is held by a running local cluster."""


@dataclass(frozen=True)
class ClusterNetwork:
    slot: int
    lock_fd: int = field(default=-1, compare=False, repr=False)

    @property
    def host_ip(self) -> str:
        return f"10.250.{self.slot}.1"

    @property
    def node_ip(self) -> str:
        return f"10.250.{self.slot}.2"

    @property
    def metadata_ip(self) -> str:
        """The stand-in metadata server Pods reach (port `METADATA_PORT`), forwarded by the
        node like any destination off the node, so NetworkPolicy applies to it."""
        return METADATA_IP

    @property
    def link_prefix(self) -> int:
        return 30

    @property
    def pod_cidr(self) -> str:
        return f"10.244.{self.slot}.0/24"

    @property
    def service_cidr(self) -> str:
        return f"10.96.{self.slot}.0/24"

    @property
    def kubernetes_service_ip(self) -> str:
        return str(ipaddress.ip_network(self.service_cidr)[1])

    @property
    def dns_service_ip(self) -> str:
        return str(ipaddress.ip_network(self.service_cidr)[10])

    @property
    def host_link(self) -> str:
        """The host's end of the veth pair to the node (at most 15 characters)."""
        return f"afnode{self.slot}"

    @property
    def node_link(self) -> str:
        """The node's end, inside its network namespace."""
        return "eth0"

    @property
    def cgroup_root(self) -> str:
        """kubelet's cgroupRoot: every Pod's cgroup lives below it, in every hierarchy."""
        return f"/agentfleet-node{self.slot}"

    def release(self) -> None:
        if self.lock_fd >= 0:
            os.close(self.lock_fd)


def allocate(lock_dir: Path = LOCK_DIR) -> ClusterNetwork:
    """Take the first free slot; keep the returned object (its lock) for the cluster's life."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    for slot in range(SLOTS):
        fd = os.open(lock_dir / f"agentfleet-node-{slot}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        os.set_inheritable(fd, False)
        return ClusterNetwork(slot=slot, lock_fd=fd)
    raise NoFreeSlotError(f"all {SLOTS} local cluster slots are in use (locks in {lock_dir})")
