"""Finding the server binaries the local environment runs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# Where `make controlplane` puts its builds, relative to a source checkout.
REPO_ROOT = Path(__file__).resolve().parents[4]
"""The source checkout this package runs from (it is not shipped: see agentfleet.dev)."""
_VERSIONS_FILE = REPO_ROOT / "scripts" / "controlplane.env"

_INSTALL_HINTS = {
    "etcd": "run `make controlplane` (builds etcd and Kubernetes from their Go modules)",
    "kube-apiserver": "run `make controlplane`",
    "kube-controller-manager": "run `make controlplane`",
    "kubectl": "run `make controlplane`",
    "redis-server": "run `make servers` (apt-get install redis-server)",
    "kube-scheduler": "run `make controlplane`",
    "kubelet": "run `make controlplane`",
    "kube-proxy": "run `make controlplane`",
    "coredns": "run `make controlplane`",
    "crictl": "run `make controlplane`",
    "kube-network-policies": "run `make controlplane`",
    "helm": "run `make controlplane`",
    "prometheus": "run `make controlplane` (builds Prometheus from its Go module)",
    "promtool": "run `make controlplane` (builds promtool from Prometheus' Go module)",
}


class BinaryNotFoundError(FileNotFoundError):
    """A server binary the local environment needs is not installed."""


def pinned_versions() -> dict[str, str]:
    """The control-plane versions pinned in scripts/controlplane.env."""
    versions: dict[str, str] = {}
    if _VERSIONS_FILE.is_file():
        for line in _VERSIONS_FILE.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.lstrip().startswith("#"):
                versions[key.strip()] = value.strip()
    return versions


def cache_dir() -> Path:
    """The git-ignored cache of builds and images (`.cache`, or $AGENTFLEET_CACHE), as
    the scripts under scripts/ use it."""
    return Path(os.environ.get("AGENTFLEET_CACHE", REPO_ROOT / ".cache"))


def controlplane_bin_dir() -> Path:
    """The cache folder `make controlplane` builds into (or $AGENTFLEET_BIN_DIR)."""
    override = os.environ.get("AGENTFLEET_BIN_DIR")
    if override:
        return Path(override)
    versions = pinned_versions()
    cache = cache_dir()
    tag = f"k8s-{versions.get('KUBERNETES_VERSION', '')}-etcd-{versions.get('ETCD_VERSION', '')}"
    return cache / "controlplane" / tag / "bin"


def find_binary(name: str) -> Path:
    """The control-plane cache first, then $PATH; a clear error when absent."""
    candidate = controlplane_bin_dir() / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which(name)
    if found:
        return Path(found)
    hint = _INSTALL_HINTS.get(name, "install it")
    raise BinaryNotFoundError(f"{name} not found in {controlplane_bin_dir()} or $PATH: {hint}")
