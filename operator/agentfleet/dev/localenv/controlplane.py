"""A real Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager and
kube-scheduler.

On its own (no `network`) it serves on 127.0.0.1 and has no node: objects, RBAC,
admission, garbage collection and the workload controllers behave as in a cluster while
Pods stay Pending. Given a `ClusterNetwork`, it serves on the host end of the node's
link, where the local node (`agentfleet.dev.localenv.node`) and its Pods reach it; see
`agentfleet.dev.localenv.cluster.LocalCluster`.
"""

from __future__ import annotations

import base64
import ipaddress
import shutil
import ssl
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Self

import yaml

from agentfleet.dev.localenv import pki
from agentfleet.dev.localenv.binaries import find_binary
from agentfleet.dev.localenv.lifecycle import Service
from agentfleet.dev.localenv.network import ClusterNetwork
from agentfleet.dev.localenv.processes import ManagedProcess, ProcessFailedError, free_port

# Without a node network: loopback only, and a Service range nothing routes to.
SERVICE_CIDR = "10.0.0.0/24"


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, server: str, ca: Path, cert: Path, key: Path, user: str) -> Path:
    """A self-contained kubeconfig (certificates embedded, so the file can be copied)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "agentfleet-local",
                "cluster": {"server": server, "certificate-authority-data": _b64(ca)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate-data": _b64(cert), "client-key-data": _b64(key)},
            }
        ],
        "contexts": [
            {"name": "agentfleet-local", "context": {"cluster": "agentfleet-local", "user": user}}
        ],
        "current-context": "agentfleet-local",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


def write_token_kubeconfig(path: Path, server: str, ca: Path, token: str, user: str) -> Path:
    """A self-contained kubeconfig whose user authenticates with a bearer token (a
    ServiceAccount's, from a TokenRequest), as OIDC and cloud exec-plugin users do."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "agentfleet-local",
                "cluster": {"server": server, "certificate-authority-data": _b64(ca)},
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {"name": "agentfleet-local", "context": {"cluster": "agentfleet-local", "user": user}}
        ],
        "current-context": "agentfleet-local",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


class ControlPlane(Service):
    """Start with `start()` (or as a context manager); `kubeconfig` is the admin config."""

    def __init__(
        self,
        workdir: Path | None = None,
        keep_workdir: bool = False,
        network: ClusterNetwork | None = None,
    ) -> None:
        self._owns_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="agentfleet-cp-"))
        self.keep_workdir = keep_workdir
        self.network = network
        self.log_dir = self.workdir / "logs"
        self.etcd_port = free_port()
        self.apiserver_port = free_port()
        self.controller_manager_port = free_port()
        self.scheduler_port = free_port()
        self.address = network.host_ip if network else "127.0.0.1"
        self.service_cidr = network.service_cidr if network else SERVICE_CIDR
        self.server = f"https://{self.address}:{self.apiserver_port}"
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.processes: list[ManagedProcess] = []
        self._pki: pki.ClusterPki | None = None
        # Seconds from start() until each component was ready (for benchmarks).
        self.timings: dict[str, float] = {}

    # ----------------------------------------------------------------- lifecycle
    def start(self, timeout: float = 120.0) -> Self:
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, timeout: float) -> None:
        started = time.monotonic()
        deadline = started + timeout
        service_ip = str(ipaddress.ip_network(self.service_cidr)[1])
        self._pki = pki.generate(self.workdir / "pki", ("127.0.0.1", self.address, service_ip))
        write_kubeconfig(
            self.kubeconfig,
            self.server,
            self._pki.ca.cert,
            self._pki.admin.cert,
            self._pki.admin.key,
            "agentfleet-admin",
        )
        etcd = self._etcd()
        etcd.start()
        self.processes.append(etcd)
        client_url = f"http://127.0.0.1:{self.etcd_port}"
        etcd.wait_until(
            lambda: (
                b'"health":"true"'
                in urllib.request.urlopen(f"{client_url}/health", timeout=2).read()
            ),
            max(1.0, deadline - time.monotonic()),
            "healthy",
        )
        self.timings["etcd"] = time.monotonic() - started

        apiserver = self._apiserver(client_url)
        apiserver.start()
        self.processes.append(apiserver)
        apiserver.wait_until(
            lambda: self._https_ok(self.server + "/readyz"),
            max(1.0, deadline - time.monotonic()),
            "ready (/readyz)",
        )
        self.timings["kube-apiserver"] = time.monotonic() - started

        controller_manager = self._controller_manager()
        controller_manager.start()
        self.processes.append(controller_manager)
        controller_manager.wait_until(
            lambda: self._https_ok(
                f"https://127.0.0.1:{self.controller_manager_port}/healthz", verify=False
            ),
            max(1.0, deadline - time.monotonic()),
            "healthy (/healthz)",
        )
        self.timings["kube-controller-manager"] = time.monotonic() - started

        scheduler = self._scheduler()
        scheduler.start()
        self.processes.append(scheduler)
        scheduler.wait_until(
            lambda: self._https_ok(
                f"https://127.0.0.1:{self.scheduler_port}/healthz", verify=False
            ),
            max(1.0, deadline - time.monotonic()),
            "healthy (/healthz)",
        )
        self.timings["kube-scheduler"] = time.monotonic() - started

    def stop(self) -> None:
        for proc in reversed(self.processes):
            # The API server's graceful shutdown waits for connections of clients that may
            # be gone without a word (a node sandbox torn down first): this cluster is
            # thrown away, so it gets two seconds.
            proc.stop(grace=2.0 if proc.name == "kube-apiserver" else 10.0)
        self.processes.clear()
        if self._owns_workdir and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # ----------------------------------------------------------------- helpers
    def logs(self, lines: int = 40) -> str:
        """The last log lines of every component, for failure reports."""
        return "\n".join(
            f"----- {proc.name} ({proc.log_path}) -----\n{proc.log_tail(lines)}"
            for proc in self.processes
        )

    @property
    def pki(self) -> pki.ClusterPki:
        if self._pki is None:
            raise ProcessFailedError("the control plane is not started")
        return self._pki

    def healthy(self) -> bool:
        return bool(self.processes) and all(p.running() for p in self.processes)

    def _https_ok(self, url: str, verify: bool = True) -> bool:
        if verify:
            ctx = ssl.create_default_context(cafile=str(self.pki.ca.cert))
            ctx.load_cert_chain(str(self.pki.admin.cert), str(self.pki.admin.key))
        else:
            ctx = ssl._create_unverified_context()
        with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
            return bool(resp.status == 200)

    def _etcd(self) -> ManagedProcess:
        peer = free_port()
        data = self.workdir / "etcd"
        return ManagedProcess(
            "etcd",
            [
                str(find_binary("etcd")),
                "--name=agentfleet",
                f"--data-dir={data}",
                f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=agentfleet=http://127.0.0.1:{peer}",
                # A throwaway cluster: fsync buys durability we do not need and costs
                # seconds of start-up on slow disks.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
            self.log_dir,
        )

    def _apiserver(self, etcd_url: str) -> ManagedProcess:
        p = self.pki
        # The API server's own client certificate towards kubelets (logs, exec, port-forward).
        kubelet_client = p.client("apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                                  "system:masters")  # fmt: skip
        return ManagedProcess(
            "kube-apiserver",
            [
                str(find_binary("kube-apiserver")),
                f"--etcd-servers={etcd_url}",
                f"--bind-address={self.address}",
                f"--advertise-address={self.address}",
                f"--secure-port={self.apiserver_port}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={p.apiserver.cert}",
                f"--tls-private-key-file={p.apiserver.key}",
                f"--client-ca-file={p.ca.cert}",
                # Front-proxy (aggregation) settings as kubeadm sets them; without them every
                # delegating component logs a missing requestheader CA bundle forever.
                f"--requestheader-client-ca-file={p.ca.cert}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--kubelet-client-certificate={kubelet_client.cert}",
                f"--kubelet-client-key={kubelet_client.key}",
                f"--kubelet-certificate-authority={p.ca.cert}",
                "--kubelet-preferred-address-types=InternalIP",
                # Node: kubelets may touch only their own Node and its Pods' objects.
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={p.service_account_pub}",
                f"--service-account-signing-key-file={p.service_account_key}",
                f"--service-cluster-ip-range={self.service_cidr}",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=1",
            ],
            self.log_dir,
        )

    def _controller_manager(self) -> ManagedProcess:
        p = self.pki
        kubeconfig = write_kubeconfig(
            self.workdir / "controller-manager.kubeconfig",
            self.server,
            p.ca.cert,
            p.controller_manager.cert,
            p.controller_manager.key,
            "system:kube-controller-manager",
        )
        return ManagedProcess(
            "kube-controller-manager",
            [
                str(find_binary("kube-controller-manager")),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.controller_manager_port}",
                f"--cert-dir={self.workdir / 'controller-manager-certs'}",
                f"--service-account-private-key-file={p.service_account_key}",
                f"--root-ca-file={p.ca.cert}",
                f"--cluster-signing-cert-file={p.ca.cert}",
                f"--cluster-signing-key-file={p.ca.key}",
                # Each controller acts as its own ServiceAccount, as in a kubeadm cluster.
                "--use-service-account-credentials=true",
                f"--service-cluster-ip-range={self.service_cidr}",
                "--leader-elect=false",
                "--kube-api-qps=100",
                "--kube-api-burst=200",
                "--v=1",
            ],
            self.log_dir,
        )

    def _scheduler(self) -> ManagedProcess:
        p = self.pki
        kubeconfig = write_kubeconfig(
            self.workdir / "scheduler.kubeconfig",
            self.server,
            p.ca.cert,
            p.scheduler.cert,
            p.scheduler.key,
            "system:kube-scheduler",
        )
        return ManagedProcess(
            "kube-scheduler",
            [
                str(find_binary("kube-scheduler")),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.scheduler_port}",
                f"--cert-dir={self.workdir / 'scheduler-certs'}",
                "--leader-elect=false",
                "--kube-api-qps=100",
                "--kube-api-burst=200",
                "--v=1",
            ],
            self.log_dir,
        )


__all__ = ["ControlPlane", "ProcessFailedError", "write_kubeconfig"]
