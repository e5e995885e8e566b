#!/usr/bin/env bash
# Build the images the local node runs, with no Docker daemon and no registry:
#   1. a Debian base image (bookworm: python3, venv, git, CA certificates, tini) made from Debian
#      packages with mmdebstrap, once (cached until its recipe below changes);
#   2. the pod sandbox ("pause") image: Kubernetes' own pause.c, linked statically;
#   3. worker-image/Dockerfile and worker-image/Dockerfile.operator built with buildah on
#      that base, with its layer cache (a source change rebuilds only the top layers);
#   4. an archive of each image, which the local node imports into containerd at start.
# Also a Redis image from Debian's redis-server for the chart's bundled Redis on the local
# node (scripts/images/redis.Dockerfile), which has no registry to pull redis:7.2 from.
# Everything lives in the git-ignored cache ($AGENTFLEET_CACHE or .cache/images).
# Images are tagged with the names a release publishes (ghcr.io/agentfleet/...:<version>),
# as `kind load docker-image` would, so the chart and WorkerPool defaults work unchanged.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/controlplane.env
source "$here/scripts/controlplane.env"
cache=${AGENTFLEET_CACHE:-$here/.cache}
images="$cache/images"
archives="$images/archives"
mirror=${AGENTFLEET_DEBIAN_MIRROR:-http://deb.debian.org/debian}
version=$("$here/scripts/version.sh")
registry=ghcr.io/agentfleet

die() { echo "error: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "building images without Docker needs root (buildah and mmdebstrap in root mode); run as root, or use 'make kind-up' with Docker"
for tool in buildah mmdebstrap gcc go; do
  command -v "$tool" >/dev/null || die "$tool is missing: run 'make servers' (apt-get install buildah mmdebstrap gcc) or install Go"
done

mkdir -p "$images" "$archives"
bah=(buildah --root "$images/storage" --runroot "/run/agentfleet-buildah-$(id -u)" --storage-driver overlay)
have_image() { "${bah[@]}" inspect --type image "$1" >/dev/null 2>&1; }
image_id() { "${bah[@]}" inspect --type image --format '{{.FromImageID}}' "$1"; }

# ----------------------------------------------------------------- 1. the Debian base
base_packages="python3,python3-venv,git,ca-certificates,passwd,tini"
base_recipe="bookworm minbase $base_packages nodocs-v1"
base_tag="localhost/agentfleet/base:bookworm-$(printf '%s' "$base_recipe" | sha256sum | cut -c1-12)"
if ! have_image "$base_tag"; then
  echo ">> building the Debian base image $base_tag (mmdebstrap, about a minute)"
  rootfs="$images/base-rootfs.tar"
  # shellcheck disable=SC2016 # "$1" is the root mmdebstrap hands its hook's shell
  mmdebstrap --quiet --mode=root --variant=minbase --include="$base_packages" \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
    bookworm "$rootfs" "$mirror"
  ctr=$("${bah[@]}" from scratch)
  "${bah[@]}" add --quiet "$ctr" "$rootfs" / >/dev/null
  "${bah[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd /bin/bash "$ctr"
  "${bah[@]}" commit --quiet --rm "$ctr" "$base_tag" >/dev/null
  rm -f "$rootfs"
fi

# ----------------------------------------------------------------- 2. the sandbox image
pause_tag="localhost/agentfleet/pause:$PAUSE_VERSION"
if ! have_image "$pause_tag"; then
  echo ">> building the pause image $pause_tag from Kubernetes $KUBERNETES_VERSION's pause.c"
  src=$(cd "$images" && GOFLAGS='' go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  work=$(mktemp -d)
  gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION-agentfleet" \
    -o "$work/pause" "$src/build/pause/linux/pause.c"
  ctr=$("${bah[@]}" from scratch)
  "${bah[@]}" copy --quiet "$ctr" "$work/pause" /pause >/dev/null
  "${bah[@]}" config --entrypoint '["/pause"]' --user 65535:65535 "$ctr"
  "${bah[@]}" commit --quiet --rm "$ctr" "$pause_tag" >/dev/null
  rm -rf "$work"
fi

# ----------------------------------------------------------------- 3. the product images
build() {  # $1: Dockerfile, $2: image name, $3: tag (default: the release's)
  local tag=${3:-"$registry/$2:$version"}
  echo ">> building $tag from $1"
  local args=(--build-arg "BASE_IMAGE=$base_tag")
  # A TLS-intercepting proxy's CA (pip on this machine trusts it through PIP_CERT).
  if [[ -n "${PIP_CERT:-}" && -f "$PIP_CERT" ]]; then
    args+=(--volume "$PIP_CERT:/run/agentfleet-pip-ca.crt:ro" --build-arg PIP_CERT=/run/agentfleet-pip-ca.crt)
  fi
  "${bah[@]}" bud --quiet --layers --isolation chroot --network host "${args[@]}" \
    -f "$here/$1" -t "$tag" "$here" >/dev/null
}
pip_cert=$(pip3 config get global.cert 2>/dev/null || true)
export PIP_CERT=${PIP_CERT:-$pip_cert}
build worker-image/Dockerfile agentfleet-worker
build worker-image/Dockerfile.operator agentfleet-operator
# The chart's bundled Redis, for the local node only (values-local.yaml points at it).
redis_tag=localhost/agentfleet/redis:7.0
build scripts/images/redis.Dockerfile redis "$redis_tag"

# ----------------------------------------------------------------- 4. archives for the node
export_archive() {  # $1: image reference, $2: archive name
  local id; id=$(image_id "$1")
  if [[ -f "$archives/$2.tar" && "$(cat "$archives/$2.id" 2>/dev/null)" == "$id" ]]; then
    return
  fi
  echo ">> exporting $1 for the node"
  rm -f "$archives/$2.tar"
  "${bah[@]}" push --quiet "$1" "docker-archive:$archives/$2.tar:$1"
  echo "$id" >"$archives/$2.id"
}
export_archive "$pause_tag" pause
export_archive "$registry/agentfleet-worker:$version" agentfleet-worker
export_archive "$registry/agentfleet-operator:$version" agentfleet-operator
export_archive "$redis_tag" redis
# Dangling layers of earlier builds.
"${bah[@]}" rmi --prune >/dev/null 2>&1 || true
echo "images ready in $archives"
