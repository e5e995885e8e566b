"""NetworkPolicy is enforced on the local node (kube-network-policies in the node's
sandbox), not only stored: a client Pod's connections to another Pod, to a listener on
the host end of the node's link (where the API server, Redis and the test servers
listen), to the stand-in metadata address and to cluster DNS, with no policy, with a
default-deny egress policy and with allow rules.

Every check polls with a deadline: the enforcer applies a policy a moment after the API
server accepts it. Each probe runs from inside the client Pod and reports, per
destination, whether a TCP connection (or a name lookup) succeeded within a few seconds.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agentfleet.core.api.workerpool import DEFAULT_WORKER_IMAGE
from agentfleet.dev.localenv import find_binary
from agentfleet.dev.localenv.cluster import LocalCluster
from agentfleet.dev.localenv.metadata import CONNECTION_MARK as METADATA_MARK
from agentfleet.dev.localenv.network import METADATA_PORT
from agentfleet.dev.localenv.node import build_dns_egress_rule
from agentfleet.dev.localenv.waiting import wait_for

pytestmark = pytest.mark.e2e

SERVER_PORT = 8080
ENFORCEMENT_DEADLINE = 30.0
DNS_NAME = "kubernetes.default.svc.cluster.local."  # absolute: no search-list detours

# Runs in the client Pod: every destination at once, each given a few seconds; prints
# {destination: "ok" | why not}. Threads that are still blocked are abandoned (os._exit).
PROBE = """
import concurrent.futures, json, os, socket, sys
def probe(target):
    kind, _, rest = target.partition(":")
    if kind == "dns":
        return "ok " + socket.getaddrinfo(rest, 443, socket.AF_INET)[0][4][0]
    host, port = rest.rsplit(":", 1)
    socket.create_connection((host, int(port)), 3).close()
    return "ok"
pool = concurrent.futures.ThreadPoolExecutor(len(sys.argv) - 1)
futures = {t: pool.submit(probe, t) for t in sys.argv[1:]}
done, _ = concurrent.futures.wait(futures.values(), timeout=4)
result = {}
for target, future in futures.items():
    if future not in done:
        result[target] = "timeout"
    elif future.exception() is not None:
        result[target] = type(future.exception()).__name__
    else:
        result[target] = future.result()
print(json.dumps(result), flush=True)
os._exit(0)
"""


@dataclass
class HostListener:
    """A TCP listener on the host end of the node's link; counts accepted connections."""

    address: str
    port: int = 0
    accepted: int = 0
    _sock: socket.socket = field(init=False, repr=False)

    def start(self) -> HostListener:
        self._sock = socket.create_server((self.address, 0))
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._sock.close()


@dataclass
class Scene:
    cluster: LocalCluster
    namespace: str
    kubeconfig: Path
    server_ip: str
    host: HostListener

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [str(find_binary("kubectl")), f"--kubeconfig={self.kubeconfig}",
             f"--namespace={self.namespace}", *args],
            input=stdin, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
        return result.stdout

    def apply(self, *manifests: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", stdin=json.dumps({"kind": "List", "apiVersion": "v1",
                                                           "items": list(manifests)}))  # fmt: skip

    @property
    def targets(self) -> dict[str, str]:
        net = self.cluster.network
        assert net is not None
        return {
            "pod": f"tcp:{self.server_ip}:{SERVER_PORT}",
            "host": f"tcp:{net.host_ip}:{self.host.port}",
            "apiserver": f"tcp:{net.host_ip}:{self.cluster.controlplane.apiserver_port}",
            "metadata": f"tcp:{net.metadata_ip}:{METADATA_PORT}",
            "dns": f"dns:{DNS_NAME}",
        }

    def probe(self) -> dict[str, bool]:
        """Which destinations the client Pod reaches right now."""
        names = {target: name for name, target in self.targets.items()}
        out = self.kubectl("exec", "client", "--", "python3", "-c", PROBE, *names)
        return {names[t]: verdict.startswith("ok") for t, verdict in json.loads(out).items()}

    def wait_reach(self, expected: dict[str, bool], what: str) -> float:
        """Poll until the probe gives `expected`. Returns the seconds from the call to the
        start of the first probe that saw it (enforcement took at most that long)."""
        started = time.monotonic()
        seen: list[dict[str, bool]] = []

        def matches() -> float | None:
            probe_started = time.monotonic() - started
            seen.append(self.probe())
            return max(probe_started, 1e-6) if seen[-1] == expected else None

        try:
            return wait_for(matches, ENFORCEMENT_DEADLINE, what, interval=0.2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; expected {expected}, last probes {seen[-3:]}") from exc


def _pod(name: str, labels: dict[str, str], command: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": name,
                    "image": DEFAULT_WORKER_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": command,
                    **extra,
                }
            ],
        },
    }


def _policy(name: str, egress: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name},
        "spec": {
            "podSelector": {"matchLabels": {"app": "client"}},
            "policyTypes": ["Egress"],
            "egress": egress,
        },
    }


@pytest.fixture
def scene(local_cluster: LocalCluster, namespace: str, kubeconfig: Path) -> Iterator[Scene]:
    network = local_cluster.network
    assert network is not None
    host = HostListener(network.host_ip).start()
    scene = Scene(local_cluster, namespace, kubeconfig, "", host)
    scene.apply(
        _pod(
            "server", {"app": "server"},
            ["python3", "-m", "http.server", str(SERVER_PORT)],
            readinessProbe={"tcpSocket": {"port": SERVER_PORT}, "periodSeconds": 1},
        ),
        _pod("client", {"app": "client"}, ["sleep", "3600"]),
    )  # fmt: skip
    scene.kubectl("wait", "--for=condition=Ready", "pod/server", "pod/client", "--timeout=90s")
    scene.server_ip = scene.kubectl("get", "pod", "server", "-o", "jsonpath={.status.podIP}")
    yield scene
    host.close()


ALL = {"pod": True, "host": True, "apiserver": True, "metadata": True, "dns": True}
NONE = dict.fromkeys(ALL, False)


def test_without_a_policy_a_pod_reaches_pods_the_host_metadata_and_dns(scene: Scene) -> None:
    metadata_log = scene.cluster.node.paths.metadata_log
    before = metadata_log.read_text().count(METADATA_MARK)
    scene.wait_reach(ALL, "every destination reachable with no policy")
    assert scene.host.accepted >= 1
    assert metadata_log.read_text().count(METADATA_MARK) > before


def test_default_deny_egress_blocks_all_and_allow_rules_reopen_only_theirs(scene: Scene) -> None:
    scene.wait_reach(ALL, "every destination reachable before any policy")
    scene.apply(_policy("deny-egress", []))
    denied_in = scene.wait_reach(NONE, "nothing reachable under default-deny egress")
    print(f"default-deny enforced within {denied_in:.1f}s of its creation")

    accepted = scene.host.accepted
    metadata_log = scene.cluster.node.paths.metadata_log
    requests = metadata_log.read_text().count(METADATA_MARK)
    assert scene.probe() == NONE
    assert scene.host.accepted == accepted, "a denied connection reached the host listener"
    assert metadata_log.read_text().count(METADATA_MARK) == requests

    net = scene.cluster.network
    assert net is not None
    scene.apply(
        _policy(
            "allow-server-and-host",
            [
                {
                    "to": [{"podSelector": {"matchLabels": {"app": "server"}}}],
                    "ports": [{"port": SERVER_PORT, "protocol": "TCP"}],
                },
                {
                    "to": [{"ipBlock": {"cidr": f"{net.host_ip}/32"}}],
                    "ports": [{"port": scene.host.port, "protocol": "TCP"}],
                },
            ],
        )
    )
    allowed_in = scene.wait_reach(
        {**NONE, "pod": True, "host": True}, "only the allowed Pod and host port reachable"
    )
    print(f"allow rules enforced within {allowed_in:.1f}s of their creation")
    assert scene.host.accepted > accepted


def test_dns_resolves_under_a_policy_only_with_udp_53_to_the_node(scene: Scene) -> None:
    """CoreDNS is a process on the node's address here, not a Pod: a `kube-dns` Pod
    selector (what a cluster with CoreDNS Pods needs) allows nothing on this node, and
    neither does the Service address (UDP DNS is judged after kube-proxy translated it).
    An ipBlock of the node's address on UDP 53 does."""
    net = scene.cluster.network
    assert net is not None
    dns_ports = [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    scene.apply(
        _policy(
            "dns-by-selector",
            [
                {
                    "to": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                            },
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                        },
                        {"ipBlock": {"cidr": f"{net.dns_service_ip}/32"}},
                    ],
                    "ports": dns_ports,
                }
            ],
        )
    )
    scene.wait_reach(NONE, "no name resolution with a kube-dns selector alone")
    scene.apply(_policy("dns-on-the-node", [build_dns_egress_rule(net)]))
    scene.wait_reach({**NONE, "dns": True}, "names resolve with UDP 53 to the node allowed")
