#!/usr/bin/env bash
# Install what tests and the demo run, from Debian packages, when missing:
#   - the real Redis server (Prometheus is built from its Go module by
#     scripts/build-controlplane.sh: Debian's lacks Kubernetes service discovery);
#   - the local node's runtime: containerd (with ctr and the runc shim), runc, the CNI
#     plugins, iptables and conntrack for kube-proxy, nft (the node checks the
#     NetworkPolicy enforcer's table with it);
#   - the daemonless image tools: buildah (builds worker-image/), mmdebstrap (the Debian
#     base image), gcc (the static pause binary);
#   - shellcheck for `make lint`;
#   - chromium and its chromedriver: the status page's test runs it headless.
# Nothing is mocked; nothing is started here (the node starts containerd itself).
set -euo pipefail

declare -A wanted=(
  [redis-server]=redis-server
  [containerd]=containerd
  [ctr]=containerd
  [containerd-shim-runc-v2]=containerd
  [runc]=runc
  [iptables]=iptables
  [nft]=nftables
  [conntrack]=conntrack
  [buildah]=buildah
  [mmdebstrap]=mmdebstrap
  [gcc]=gcc
  [shellcheck]=shellcheck
  [chromium]=chromium
  [chromedriver]=chromium-driver
)
missing=()
for tool in "${!wanted[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${wanted[$tool]}")
done
[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/portmap ]] \
  || missing+=(containernetworking-plugins)
# libc6-dev provides the static libc the pause binary links against.
[[ -f /usr/lib/x86_64-linux-gnu/libc.a || -f /usr/lib/aarch64-linux-gnu/libc.a ]] || missing+=(libc6-dev)
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "servers, node runtime and image tools present"
  exit 0
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "error: ${missing[*]} missing and not root (no sudo): apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: ${missing[*]} missing and apt-get is unavailable; install them with your package manager" >&2
  exit 1
fi
echo ">> installing ${missing[*]} from Debian packages"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
