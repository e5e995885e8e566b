"""A real Kubernetes node on this machine: containerd, kubelet, kube-proxy, CoreDNS and a
NetworkPolicy enforcer, in a sandbox of Linux namespaces.

The node runs in its own PID, mount, network and UTS namespaces (see
`agentfleet.dev.localenv.nodeinit`, its PID 1), joined to the host by a veth pair:

    host                                      node sandbox
    afnode<slot> 10.250.<slot>.1/30  <---->   eth0 10.250.<slot>.2/30
    route 10.244.<slot>.0/24 via .2           cni0 bridge -> Pods 10.244.<slot>.0/24
    route 10.96.<slot>.0/24 via .2            kube-proxy: Services 10.96.<slot>.0/24

The API server listens on the host end, where kubelet, kube-proxy, CoreDNS and Pods (via
the `kubernetes` Service) reach it; the host reaches Pod and Service IPs through the
routes. Pods reach the host's end too (the test servers for GitHub and Anthropic listen
there) but not the internet: that would need forwarding and NAT on the host, a change to
the machine the node does not make.

NetworkPolicy is enforced, by kube-network-policies (sigs.k8s.io/kube-network-policies,
the enforcer kind runs), as one more host process of the node. It gets the in-cluster
credentials it insists on (a ServiceAccount token from the TokenRequest API and the CA,
bound at /run/secrets/kubernetes.io/serviceaccount inside the sandbox only) and the API
server's address in its environment. It fails closed: while it is not running, new
connections of Pods that a policy selects are dropped. Its nftables hooks are in the
node's POSTROUTING (and PREROUTING for UDP DNS), so it judges what the node forwards:
Pod to Pod, Pod to the host end (API server, Redis, test servers) and Pod to the
stand-in metadata server (`agentfleet.dev.localenv.metadata`, 169.254.169.254, in a network
namespace of its own inside the sandbox). What a Pod sends to the node's own address is
delivered locally and not judged, with one exception that matters: UDP DNS, judged
after kube-proxy has translated the `kube-dns` Service address to the node's address,
where CoreDNS listens. CoreDNS is not a Pod here, so a `kube-dns` podSelector matches
nothing; a policy lets Pods resolve names on this node with an ipBlock of the node's
address (`<node_ip>/32`) on UDP 53 (TCP 53 to the node is not judged).

Nothing outlives the sandbox: when its PID 1 dies the kernel kills every process in it
(containerd shims and containers included), and its mounts, links, routes and firewall
rules go with its namespaces. What the host keeps is the node's cgroups (removed by
`stop()`, and on the next start after a killed run) and, in the cache, containerd's image
store, so images are imported once per cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import yaml

from agentfleet.dev.localenv.binaries import (
    BinaryNotFoundError,
    cache_dir,
    find_binary,
    pinned_versions,
)
from agentfleet.dev.localenv.controlplane import ControlPlane, write_kubeconfig
from agentfleet.dev.localenv.lifecycle import Service
from agentfleet.dev.localenv.network import CLUSTER_DOMAIN, METADATA_PORT, NODE_NAME, ClusterNetwork
from agentfleet.dev.localenv.nodeinit import Component, SandboxPlan
from agentfleet.dev.localenv.pki import CertPair
from agentfleet.dev.localenv.processes import ManagedProcess, ProcessFailedError

CNI_BIN_DIR = Path("/usr/lib/cni")
CGROUP_FS = Path("/sys/fs/cgroup")
# The global kernel tunables kubelet sets on start; the sandbox gives it private copies.
KUBELET_TUNABLES = (
    "/proc/sys/vm/overcommit_memory",
    "/proc/sys/vm/panic_on_oom",
    "/proc/sys/kernel/panic",
    "/proc/sys/kernel/panic_on_oops",
    "/proc/sys/kernel/keys/root_maxkeys",
    "/proc/sys/kernel/keys/root_maxbytes",
)
# Directories the sandbox replaces with private tmpfs: nothing of the node may live there.
SANDBOX_TMPFS = ("/run", "/var/lib", "/var/log")
KUBELET_PORT = 10250
# The NetworkPolicy enforcer: its ServiceAccount (kube-system) and the nftables table
# it owns in the node's network namespace.
ENFORCER = "kube-network-policies"
# Where `rest.InClusterConfig()` looks for its credentials: /var/run/secrets/... on the
# host (where /var/run is /run), private to the sandbox because /run is its own tmpfs.
SERVICE_ACCOUNT_MOUNT = "/run/secrets/kubernetes.io/serviceaccount"
# In the node's network namespace, so every slot has its own.
ENFORCER_METRICS = "127.0.0.1:9080"
# Long enough for any cluster's life; the token dies with the cluster's signing key.
ENFORCER_TOKEN_DURATION = "8760h"


class NodeUnavailableError(RuntimeError):
    """This machine cannot run the local node; the message says what is missing."""


def image_archives() -> Path:
    return cache_dir() / "images" / "archives"


def sandbox_image() -> str:
    return f"localhost/agentfleet/pause:{pinned_versions().get('PAUSE_VERSION', '3.10.1')}"


# ----------------------------------------------------------------- preflight


def preflight() -> None:
    """Fail with one message naming everything this machine lacks to run the node."""
    problems: list[str] = []
    if os.geteuid() != 0:
        problems.append(
            "not root: the node needs root for namespaces, mounts, cgroups and networking "
            "(run as root, or use `make kind-up` with Docker)"
        )
    filesystems = Path("/proc/filesystems").read_text()
    if "overlay" not in filesystems:
        problems.append("no overlayfs in /proc/filesystems (containerd's snapshotter needs it)")
    if not _cgroups_writable():
        problems.append(f"{CGROUP_FS} is not writable (kubelet and runc need writable cgroups)")
    if not Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists():
        problems.append("br_netfilter is not loaded (modprobe br_netfilter): Services need it")
    if Path("/var/run").resolve() != Path("/run"):
        problems.append(
            "/var/run is not /run: the NetworkPolicy enforcer's credentials are bound under "
            "/run inside the node's sandbox, where it looks for them at /var/run"
        )
    tools = {
        "unshare": "util-linux",
        "ip": "iproute2",
        "iptables": "iptables",
        "nft": "nftables",
        "containerd": "containerd",
        "containerd-shim-runc-v2": "containerd",
        "ctr": "containerd",
        "runc": "runc",
    }
    missing = sorted({pkg for tool, pkg in tools.items() if shutil.which(tool) is None})
    if missing:
        problems.append(f"missing packages {', '.join(missing)}: run `make servers`")
    for plugin in ("bridge", "host-local", "portmap", "loopback"):
        if not (CNI_BIN_DIR / plugin).exists():
            problems.append(
                f"CNI plugin {CNI_BIN_DIR / plugin} missing: run `make servers` "
                "(containernetworking-plugins)"
            )
            break
    for binary in ("kubelet", "kube-proxy", "coredns", "crictl", ENFORCER):
        try:
            find_binary(binary)
        except BinaryNotFoundError as exc:
            problems.append(str(exc))
    archives = image_archives()
    if not (archives / "pause.tar").exists():
        problems.append(f"no node images in {archives}: run `make images`")
    if problems:
        raise NodeUnavailableError(
            "this machine cannot run the local node:\n  - " + "\n  - ".join(problems)
        )


def _cgroups_writable() -> bool:
    probe = CGROUP_FS / "memory" if (CGROUP_FS / "memory").is_dir() else CGROUP_FS
    return os.access(probe, os.W_OK)


# ----------------------------------------------------------------- pure builders


@dataclass(frozen=True)
class NodePaths:
    """Where the node keeps its files. `workdir` is per run; `slot_dir` (containerd's
    image store) outlives runs."""

    workdir: Path
    slot_dir: Path

    @property
    def config(self) -> Path:
        return self.workdir / "config"

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    @property
    def pod_logs(self) -> Path:
        return self.logs / "pods"

    @property
    def kubelet_root(self) -> Path:
        return self.workdir / "kubelet"

    @property
    def containerd_root(self) -> Path:
        return self.slot_dir / "containerd"

    @property
    def containerd_socket(self) -> Path:
        return self.slot_dir / "containerd.sock"

    @property
    def ready_file(self) -> Path:
        return self.workdir / "node-ready"

    @property
    def service_account(self) -> Path:
        """The enforcer's in-cluster credentials (token, ca.crt, namespace)."""
        return self.workdir / "serviceaccount"

    @property
    def metadata_log(self) -> Path:
        """One line per request the stand-in metadata server answered."""
        return self.logs / "metadata.log"


def build_containerd_config(paths: NodePaths, sandbox: str) -> str:
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return "\n".join(
        [
            "version = 2",
            f'root = "{paths.containerd_root}"',
            'state = "/run/containerd"',
            # Plugins that would touch host paths (/opt/containerd) or are unused here.
            'disabled_plugins = ["io.containerd.internal.v1.opt", '
            '"io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", '
            '"io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", '
            '"io.containerd.tracing.processor.v1.otlp"]',
            "[grpc]",
            f'  address = "{paths.containerd_socket}"',
            f"[{cri}]",
            f'  sandbox_image = "{sandbox}"',
            # Root here may lack CAP_SYS_RESOURCE: runc cannot lower oom_score_adj below
            # its own, and without this every sandbox fails ("can't get final child's PID").
            "  restrict_oom_score_adj = true",
            "  netns_mounts_under_state_dir = true",
            "  enable_selinux = false",
            f"[{cri}.containerd]",
            '  snapshotter = "overlayfs"',
            '  default_runtime_name = "runc"',
            f"[{cri}.containerd.runtimes.runc]",
            '  runtime_type = "io.containerd.runc.v2"',
            f"[{cri}.containerd.runtimes.runc.options]",
            "  SystemdCgroup = false",
            f"[{cri}.cni]",
            f'  bin_dir = "{CNI_BIN_DIR}"',
            f'  conf_dir = "{paths.config / "cni"}"',
            "",
        ]
    )


def build_cni_config(network: ClusterNetwork) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "agentfleet",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": network.pod_cidr}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def build_kubelet_config(
    network: ClusterNetwork, paths: NodePaths, ca: Path, serving: CertPair
) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": network.node_ip,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(serving.cert),
        "tlsPrivateKeyFile": str(serving.key),
        "containerRuntimeEndpoint": f"unix://{paths.containerd_socket}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": network.cgroup_root,
        # cgroup v1 is in maintenance mode; this machine has it and nothing else.
        "failCgroupV1": False,
        "failSwapOn": False,
        "clusterDNS": [network.dns_service_ip],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": "/etc/resolv.conf",
        "podLogsDir": "/var/log/pods",
        "serializeImagePulls": False,
        # Images are imported, not pulled: never garbage-collect them, and evict only when
        # the machine is really out of room.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "maxPods": 110,
        "shutdownGracePeriod": "0s",
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "registerNode": True,
        "nodeStatusReportFrequency": "10s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "20s",
        "volumeStatsAggPeriod": "0s",
    }


def build_kube_proxy_config(network: ClusterNetwork, kubeconfig: Path) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables",
        "clusterCIDR": network.pod_cidr,
        "hostnameOverride": NODE_NAME,
        "bindAddress": network.node_ip,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        # Leave every conntrack sysctl as the kernel has it.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
    }


def build_corefile(network: ClusterNetwork, kubeconfig: Path) -> str:
    # No `forward`: names outside the cluster do not resolve, as Pods cannot reach the
    # internet from this node anyway.
    return (
        f".:53 {{\n"
        f"    bind {network.node_ip}\n"
        f"    errors\n"
        f"    health 127.0.0.1:8080\n"
        f"    ready 127.0.0.1:8181\n"
        f"    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{\n"
        f"        kubeconfig {kubeconfig} agentfleet-local\n"
        f"        pods insecure\n"
        f"        fallthrough in-addr.arpa ip6.arpa\n"
        f"        ttl 5\n"
        f"    }}\n"
        f"    cache 5\n"
        f"}}\n"
    )


def build_enforcer_manifests() -> list[dict[str, Any]]:
    """The NetworkPolicy enforcer's ServiceAccount and what it reads (its install.yaml:
    it lists and watches Pods, Namespaces and NetworkPolicies, nothing else without the
    AdminNetworkPolicy flags)."""
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": ENFORCER, "namespace": "kube-system"},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": ENFORCER},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["networking.k8s.io"],
                    "resources": ["networkpolicies"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": ENFORCER},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": ENFORCER,
            },
            "subjects": [{"kind": "ServiceAccount", "name": ENFORCER, "namespace": "kube-system"}],
        },
    ]


def build_enforcer_component(
    network: ClusterNetwork, apiserver_port: int, binary: str
) -> Component:
    """kube-network-policies as a host process of the node: in-cluster configuration
    (the API server's address in its environment, its credentials at
    SERVICE_ACCOUNT_MOUNT), the node's name, no NRI (containerd 1.6 has none), metrics on
    the node's loopback, and fail-closed (no --fail-open). Ready once its nftables table
    exists, which it creates after its caches have synced."""
    return Component(
        name=ENFORCER,
        argv=[
            binary,
            f"--hostname-override={NODE_NAME}",
            "--disable-nri",
            f"--metrics-bind-address={ENFORCER_METRICS}",
            "--v=2",
        ],
        env={
            "KUBERNETES_SERVICE_HOST": network.host_ip,
            "KUBERNETES_SERVICE_PORT": str(apiserver_port),
        },
        ready_argv=["nft", "list", "table", "inet", ENFORCER],
    )


def build_dns_egress_rule(network: ClusterNetwork) -> dict[str, Any]:
    """The NetworkPolicy egress rule that lets Pods of this node resolve names.

    CoreDNS runs on the node's address, not in a Pod, so a `k8s-app: kube-dns` podSelector
    matches nothing (the enforcer ignores host-network addresses), and an ipBlock of the
    `kube-dns` Service address does not match either (UDP DNS is judged after kube-proxy
    has translated it to the node's address). TCP 53 to the node is delivered locally and
    never judged; it is listed so the rule reads as what a cluster with CoreDNS Pods needs.
    """
    return {
        "to": [{"ipBlock": {"cidr": f"{network.node_ip}/32"}}],
        "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
    }


def build_metadata_component(network: ClusterNetwork) -> Component:
    """The stand-in metadata server (`agentfleet.dev.localenv.metadata`); ready once the node
    reaches it."""
    probe = (
        "import socket; "
        f"socket.create_connection(({network.metadata_ip!r}, {METADATA_PORT}), 2).close()"
    )
    return Component(
        name="metadata",
        argv=[
            sys.executable,
            "-m",
            "agentfleet.dev.localenv.metadata",
            network.metadata_ip,
            str(METADATA_PORT),
        ],
        ready_argv=[sys.executable, "-c", probe],
    )


def build_cluster_manifests(network: ClusterNetwork) -> list[dict[str, Any]]:
    """What the node's host-process add-ons need in the API: RBAC for CoreDNS and the
    NetworkPolicy enforcer, and the `kube-dns` Service with an EndpointSlice pointing at
    the node's address."""
    dns_ports = [
        {"name": "dns", "port": 53, "protocol": "UDP"},
        {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
    ]
    return [
        *build_enforcer_manifests(),
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:coredns"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:coredns"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:coredns",
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:coredns"}
            ],
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "kube-dns",
                "namespace": "kube-system",
                "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"},
            },
            "spec": {"clusterIP": network.dns_service_ip, "ports": dns_ports},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "kube-dns-node",
                "namespace": "kube-system",
                "labels": {
                    "kubernetes.io/service-name": "kube-dns",
                    "endpointslice.kubernetes.io/managed-by": "agentfleet-localenv",
                },
            },
            "addressType": "IPv4",
            "ports": dns_ports,
            "endpoints": [
                {
                    "addresses": [network.node_ip],
                    "conditions": {"ready": True},
                    "nodeName": NODE_NAME,
                }
            ],
        },
    ]


def build_sandbox_plan(
    network: ClusterNetwork, paths: NodePaths, components: list[Component], drain: list[list[str]]
) -> SandboxPlan:
    return SandboxPlan(
        hostname=NODE_NAME,
        log_dir=str(paths.logs),
        binds={
            "/var/lib/kubelet": str(paths.kubelet_root),
            "/var/log/pods": str(paths.pod_logs),
            SERVICE_ACCOUNT_MOUNT: str(paths.service_account),
        },
        tunables=list(KUBELET_TUNABLES),
        link=network.node_link,
        address=f"{network.node_ip}/{network.link_prefix}",
        gateway=network.host_ip,
        sysctls={
            "/proc/sys/net/ipv4/ip_forward": "1",
            "/proc/sys/net/bridge/bridge-nf-call-iptables": "1",
            "/proc/sys/net/bridge/bridge-nf-call-ip6tables": "1",
        },
        components=components,
        drain=drain,
        ready_file=str(paths.ready_file),
    )


def check_paths_outside_tmpfs(paths: Iterable[Path]) -> None:
    """The sandbox hides /run, /var/lib and /var/log behind private tmpfs, so nothing the
    node uses may live there."""
    for path in paths:
        resolved = path.resolve()
        for hidden in SANDBOX_TMPFS:
            if resolved == Path(hidden) or Path(hidden) in resolved.parents:
                raise NodeUnavailableError(
                    f"{resolved} is under {hidden}, which the node's sandbox replaces; "
                    "set AGENTFLEET_CACHE or the work directory elsewhere"
                )


# ----------------------------------------------------------------- cgroups


def cgroup_dirs(root: str) -> list[Path]:
    """The node's cgroup directory in every mounted hierarchy (v1, plus the unified one)."""
    found = []
    for hierarchy in sorted(CGROUP_FS.iterdir()) if CGROUP_FS.is_dir() else []:
        if hierarchy.is_dir() and not hierarchy.is_symlink():
            found.append(hierarchy / root.lstrip("/"))
    return found


def create_cgroups(root: str) -> None:
    for path in cgroup_dirs(root):
        path.mkdir(exist_ok=True)
        if path.parent.name == "cpuset":
            # A new cpuset is empty; tasks cannot join it until it has CPUs and memory nodes.
            for knob in ("cpuset.cpus", "cpuset.mems"):
                (path / knob).write_text((path.parent / knob).read_text())


def remove_cgroups(root: str) -> list[str]:
    """Remove the node's cgroups bottom-up; returns what could not be removed."""
    left = []
    for top in cgroup_dirs(root):
        try:
            # Directories vanish under the walk while the kernel and the janitor clean up.
            below = [p for p in top.rglob("*") if p.is_dir()]
        except FileNotFoundError:
            continue
        for directory in sorted(below, key=lambda p: len(p.parts), reverse=True):
            try:
                directory.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                left.append(str(directory))
        try:
            top.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            left.append(str(top))
    return left


# ----------------------------------------------------------------- the node


class Node(Service):
    """Two steps, because the API server listens on the node link's host end:
    `create_sandbox()` (namespaces and link), then, with the control plane up,
    `start(controlplane)`."""

    def __init__(self, network: ClusterNetwork, workdir: Path | None = None) -> None:
        self.network = network
        self._owns_workdir = workdir is None
        workdir = workdir or Path(tempfile.mkdtemp(prefix="agentfleet-node-"))
        self.paths = NodePaths(workdir, cache_dir() / "node" / f"slot-{network.slot}")
        self.sandbox: ManagedProcess | None = None
        self.init_pid: int | None = None
        self.timings: dict[str, float] = {}
        self._kubectl: list[str] = []

    # ------------------------------------------------------------- lifecycle
    def create_sandbox(self, timeout: float = 30.0) -> None:
        preflight()
        started = time.monotonic()
        check_paths_outside_tmpfs(
            [self.paths.workdir, self.paths.slot_dir, Path(sys.executable), find_binary("kubelet")]
        )
        if len(str(self.paths.containerd_socket)) > 100:
            raise NodeUnavailableError(
                f"{self.paths.containerd_socket} is too long for a Unix socket; "
                "set AGENTFLEET_CACHE to a shorter path"
            )
        for directory in (self.paths.config, self.paths.logs, self.paths.slot_dir):
            directory.mkdir(parents=True, exist_ok=True)
        # A run that was killed leaves its (empty) cgroups; they are ours to remove.
        remove_cgroups(self.network.cgroup_root)
        self.paths.containerd_socket.unlink(missing_ok=True)
        self.paths.ready_file.unlink(missing_ok=True)
        # The host end must not exist (a stale one would mean a live node on this slot).
        subprocess.run(
            ["ip", "link", "del", self.network.host_link], capture_output=True, check=False
        )
        plan_path = self.paths.config / "sandbox.json"
        self.sandbox = ManagedProcess(
            "node-sandbox",
            [
                "unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--mount",
                "--net", "--uts", "--propagation", "private",
                sys.executable, "-m", "agentfleet.dev.localenv.nodeinit", str(plan_path),
            ],
            self.paths.logs,
            stdin_pipe=True,
        )  # fmt: skip
        self._plan_path = plan_path
        # The plan is written in full by start(); the sandbox reads it only at its start,
        # so write a provisional one now with no components.
        self._write_plan([], [])
        self.sandbox.start()
        # Removes the cgroups when the sandbox dies, even if this process is killed.
        subprocess.Popen(
            [sys.executable, "-m", "agentfleet.dev.localenv.janitor", str(self.sandbox.pid),
             self.network.cgroup_root],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        self.init_pid = self._wait_init_pid(timeout)
        net = self.network
        _ip("link", "add", net.host_link, "type", "veth", "peer", "name", net.node_link,
            "netns", str(self.init_pid))  # fmt: skip
        _ip("addr", "add", f"{net.host_ip}/{net.link_prefix}", "dev", net.host_link)
        _ip("link", "set", net.host_link, "up")
        _ip("route", "add", net.pod_cidr, "via", net.node_ip)
        _ip("route", "add", net.service_cidr, "via", net.node_ip)
        self.sandbox.wait_until(
            lambda: "waiting for start" in self.sandbox_log(), timeout, "sandbox ready"
        )
        self.timings["sandbox"] = time.monotonic() - started

    def start(self, controlplane: ControlPlane | None = None, timeout: float = 180.0) -> Self:
        if controlplane is None:
            raise ProcessFailedError("Node.start needs the control plane it joins")
        if self.sandbox is None:
            raise ProcessFailedError("Node.start before create_sandbox()")
        started = time.monotonic()
        self._kubectl = [str(find_binary("kubectl")), f"--kubeconfig={controlplane.kubeconfig}"]
        components = self._write_configs(controlplane)
        self._apply(build_cluster_manifests(self.network))
        self._write_enforcer_credentials(controlplane)
        create_cgroups(self.network.cgroup_root)
        self._write_plan(components, [[*self._crictl(), "rmp", "--all", "--force"]])
        self.sandbox.write("start")
        self.sandbox.wait_until(
            self.paths.ready_file.exists, timeout, "every node component started"
        )
        self.timings["components"] = time.monotonic() - started
        self.sandbox.wait_until(self._node_ready, timeout, f"Node {NODE_NAME} Ready")
        self.timings["node-ready"] = time.monotonic() - started
        return self

    def stop(self) -> None:
        sandbox = self.sandbox
        if sandbox is not None:
            sandbox.close_stdin()
            deadline = time.monotonic() + 90
            while sandbox.running() and time.monotonic() < deadline:
                time.sleep(0.1)
            sandbox.kill()
            sandbox.stop()
        self.sandbox = None
        # The veth pair goes with the network namespace; this covers a sandbox that never
        # took its end.
        subprocess.run(
            ["ip", "link", "del", self.network.host_link], capture_output=True, check=False
        )
        deadline = time.monotonic() + 10
        while remove_cgroups(self.network.cgroup_root) and time.monotonic() < deadline:
            time.sleep(0.2)
        if self._owns_workdir:
            shutil.rmtree(self.paths.workdir, ignore_errors=True)

    # ------------------------------------------------------------- helpers
    def healthy(self) -> bool:
        return self.sandbox is not None and self.sandbox.running()

    def sandbox_log(self) -> str:
        return self.sandbox.log_tail(200) if self.sandbox else ""

    def logs(self, lines: int = 40) -> str:
        parts = [f"----- node-sandbox -----\n{self.sandbox_log()}"]
        for log in sorted(self.paths.logs.glob("*.log")):
            if log.name == "node-sandbox.log":
                continue
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
            parts.append(f"----- {log.stem} ({log}) -----\n{tail}")
        return "\n".join(parts)

    def _crictl(self) -> list[str]:
        socket = f"unix://{self.paths.containerd_socket}"
        return [str(find_binary("crictl")), f"--runtime-endpoint={socket}"]

    def crictl(self, *args: str) -> str:
        result = subprocess.run(
            [*self._crictl(), *args], capture_output=True, text=True, timeout=60, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"crictl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def _node_ready(self) -> bool:
        result = subprocess.run(
            [*self._kubectl, "get", "node", NODE_NAME, "-o", "json"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            return False
        conditions = json.loads(result.stdout).get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _apply(self, manifests: list[dict[str, Any]]) -> None:
        subprocess.run(
            [*self._kubectl, "apply", "--server-side", "--force-conflicts", "-f", "-"],
            input=yaml.safe_dump_all(manifests), capture_output=True, text=True, check=True,
            timeout=60,
        )  # fmt: skip

    def _write_enforcer_credentials(self, controlplane: ControlPlane) -> None:
        """What `rest.InClusterConfig()` reads: a token of the enforcer's ServiceAccount
        (from the TokenRequest API), the cluster CA and the namespace."""
        token = subprocess.run(
            [*self._kubectl, "create", "token", ENFORCER, "--namespace=kube-system",
             f"--duration={ENFORCER_TOKEN_DURATION}"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout.strip()  # fmt: skip
        directory = self.paths.service_account
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name, content in (
            ("token", token),
            ("ca.crt", controlplane.pki.ca.cert.read_text()),
            ("namespace", "kube-system"),
        ):
            path = directory / name
            path.write_text(content)
            path.chmod(0o600)

    def _wait_init_pid(self, timeout: float) -> int:
        if self.sandbox is None:
            raise ProcessFailedError("no sandbox process")
        children = Path(f"/proc/{self.sandbox.pid}/task/{self.sandbox.pid}/children")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.sandbox.running():
                raise ProcessFailedError(f"node sandbox exited:\n{self.sandbox_log()}")
            pids = children.read_text().split() if children.exists() else []
            if pids:
                return int(pids[0])
            time.sleep(0.01)
        raise ProcessFailedError("node sandbox did not start its init process")

    def _write_plan(self, components: list[Component], drain: list[list[str]]) -> None:
        plan = build_sandbox_plan(self.network, self.paths, components, drain)
        self._plan_path.write_text(plan.model_dump_json(indent=2))

    def _write_configs(self, controlplane: ControlPlane) -> list[Component]:
        pki = controlplane.pki
        config = self.paths.config
        net = self.network

        def kubeconfig(name: str, user: str, group: str | None = None) -> Path:
            pair = pki.client(name, user, group)
            return write_kubeconfig(
                config / f"{name}.kubeconfig", controlplane.server, pki.ca.cert, pair.cert,
                pair.key, user,
            )  # fmt: skip

        kubelet_kubeconfig = kubeconfig("kubelet", f"system:node:{NODE_NAME}", "system:nodes")
        proxy_kubeconfig = kubeconfig("kube-proxy", "system:kube-proxy")
        dns_kubeconfig = kubeconfig("coredns", "system:coredns")
        serving = pki.serving("kubelet-serving", NODE_NAME, [net.node_ip], [NODE_NAME])

        (config / "cni").mkdir(exist_ok=True)
        (config / "cni" / "10-agentfleet.conflist").write_text(
            json.dumps(build_cni_config(net), indent=2)
        )
        (config / "containerd.toml").write_text(
            build_containerd_config(self.paths, sandbox_image())
        )
        (config / "kubelet.yaml").write_text(
            yaml.safe_dump(build_kubelet_config(net, self.paths, pki.ca.cert, serving))
        )
        (config / "kube-proxy.yaml").write_text(
            yaml.safe_dump(build_kube_proxy_config(net, proxy_kubeconfig))
        )
        (config / "Corefile").write_text(build_corefile(net, dns_kubeconfig))

        crictl = self._crictl()
        return [
            Component(
                name="containerd",
                argv=["containerd", f"--config={config / 'containerd.toml'}", "--log-level=warn"],
                ready_path=str(self.paths.containerd_socket),
                # The socket comes before the CRI plugin is serving.
                ready_argv=[*crictl, "info"],
            ),
            # Sandboxes left by a killed run (their processes are gone; their records not).
            Component(name="cleanup", argv=[*crictl, "rmp", "--all", "--force"], oneshot=True),
            Component(
                name="images",
                argv=[
                    sys.executable,
                    "-m",
                    "agentfleet.dev.localenv.images",
                    "import",
                    str(self.paths.containerd_socket),
                    str(image_archives()),
                ],
                oneshot=True,
            ),
            build_metadata_component(net),
            Component(
                name="kubelet",
                argv=[
                    str(find_binary("kubelet")),
                    f"--config={config / 'kubelet.yaml'}",
                    f"--kubeconfig={kubelet_kubeconfig}",
                    f"--hostname-override={NODE_NAME}",
                    f"--node-ip={net.node_ip}",
                    f"--v={os.environ.get('AGENTFLEET_KUBELET_VERBOSITY', '1')}",
                ],
            ),
            Component(
                name="kube-proxy",
                argv=[
                    str(find_binary("kube-proxy")),
                    f"--config={config / 'kube-proxy.yaml'}",
                    "--v=1",
                ],
            ),
            Component(
                name="coredns",
                argv=[str(find_binary("coredns")), "-conf", str(config / "Corefile")],
            ),
            build_enforcer_component(net, controlplane.apiserver_port, str(find_binary(ENFORCER))),
        ]


def _ip(*args: str, check: bool = True) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise ProcessFailedError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
