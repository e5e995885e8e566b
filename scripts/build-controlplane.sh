#!/usr/bin/env bash
# Build the pinned local cluster from Go modules into a git-ignored cache, so tests and
# `make cluster-up` run a real cluster without Docker: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler and kubectl; the node's kubelet and kube-proxy,
# CoreDNS, kube-network-policies (the NetworkPolicy enforcer) and crictl; Prometheus and
# promtool (with Kubernetes service discovery); helm for the chart tests; actionlint and
# kube-score for `make lint`.
#
# k8s.io/kubernetes and etcd's server module cannot be `go install`ed: their go.mod files
# replace sibling modules with relative paths that only exist in a full git checkout. We
# build each from a small generated "tools" module that requires the main module and maps
# every replaced sibling to its published version on the module proxy.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/controlplane.env
source "$here/scripts/controlplane.env"

cache=${AGENTFLEET_CACHE:-$here/.cache}
bin="$cache/controlplane/k8s-$KUBERNETES_VERSION-etcd-$ETCD_VERSION/bin"
stamp="$bin/.complete"

# kube-network-policies is built with a patch (scripts/patches); this records which.
knp_patch="$here/scripts/patches/kube-network-policies-xt-nfqueue.patch"
knp_mark="$bin/kube-network-policies.patch-sha256"
knp_built() {
  [[ -x "$bin/kube-network-policies" && -f "$knp_mark" ]] &&
    [[ "$(cat "$knp_mark")" == "$(sha256sum <"$knp_patch" | cut -d' ' -f1)" ]]
}

if [[ -f "$stamp" ]]; then
  for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy \
    helm coredns crictl kube-network-policies prometheus promtool actionlint kube-score; do
    [[ -x "$bin/$b" ]] || { rm -f "$stamp"; break; }
  done
  knp_built || rm -f "$stamp"
fi
if [[ -f "$stamp" ]]; then
  echo "control plane binaries up to date in $bin"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  cat >&2 <<MSG
error: the Go toolchain is not installed, and it is needed (as a build tool only) to
build the local Kubernetes control plane ($KUBERNETES_VERSION, etcd $ETCD_VERSION).
Install Go 1.24 or newer (https://go.dev/doc/install, or 'apt-get install golang-go'
on a recent Debian/Ubuntu) and run 'make controlplane' again.
MSG
  exit 127
fi

mkdir -p "$bin"
work="$cache/controlplane/src"
mkdir -p "$work"
export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0

# Emit "replace X => X vVERSION" for every relative-path replace in a module's go.mod.
# $1: path of that go.mod, $2: version to pin, $3: regexp of module paths to map.
relative_replaces() {
  awk -v ver="$2" -v pat="$3" '
    /^replace[ \t]*\(/ { inblock=1; next }
    inblock && /^\)/ { inblock=0; next }
    {
      line=$0
      sub(/^[ \t]+/, "", line)
      if (!inblock) { if (line !~ /^replace /) next; sub(/^replace[ \t]+/, "", line) }
      n=split(line, f, /[ \t]+/)
      # forms: "mod => ./path" or "mod v => ./path"
      for (i=1; i<=n; i++) if (f[i]=="=>") arrow=i
      if (f[arrow+1] ~ /^\.\.?\// && f[1] ~ pat) print "\t" f[1] " => " f[1] " " ver
    }' "$1"
}

gomod_of() { go mod download -json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])'; }

build_kubernetes() {
  local dir="$work/kubernetes-$KUBERNETES_VERSION" staging_ver="v0.${KUBERNETES_VERSION#v1.}"
  mkdir -p "$dir"
  local upstream; upstream=$(cd "$dir" && GOFLAGS='' gomod_of "k8s.io/kubernetes@$KUBERNETES_VERSION")
  {
    echo "module agentfleet.local/controlplane-kubernetes"
    echo
    echo "go 1.24"
    echo
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    echo
    echo "replace ("
    relative_replaces "$upstream" "$staging_ver" '^k8s\.io/'
    echo ")"
  } >"$dir/go.mod"
  local minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
  local ldflags="-s -w \
    -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION \
    -X k8s.io/component-base/version.gitMajor=1 \
    -X k8s.io/component-base/version.gitMinor=$minor \
    -X k8s.io/component-base/version.gitTreeState=clean \
    -X k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES_VERSION"
  for cmd in "$@"; do
    [[ -x "$bin/$cmd" ]] && continue
    echo ">> building $cmd $KUBERNETES_VERSION"
    (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$bin/$cmd" "k8s.io/kubernetes/cmd/$cmd")
  done
}

build_etcd() {
  local dir="$work/etcd-$ETCD_VERSION"
  mkdir -p "$dir"
  local upstream; upstream=$(cd "$dir" && GOFLAGS='' gomod_of "go.etcd.io/etcd/server/v3@$ETCD_VERSION")
  {
    echo "module agentfleet.local/controlplane-etcd"
    echo
    echo "go 1.24"
    echo
    echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
    echo
    echo "replace ("
    relative_replaces "$upstream" "$ETCD_VERSION" '^go\.etcd\.io/etcd/'
    echo ")"
  } >"$dir/go.mod"
  echo ">> building etcd $ETCD_VERSION"
  (cd "$dir" && go build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3)
}

build_helm() {
  # helm's module has no relative replaces, so a plain `go install` works. Like helm's own
  # Makefile, tell it which Kubernetes version to assume when no cluster is asked (else
  # `helm template` checks a chart's kubeVersion against v1.20).
  echo ">> building helm $HELM_VERSION"
  local minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
  GOBIN="$bin" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
      -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 \
      -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor \
      -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 \
      -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
}

# Modules without relative replaces install directly.
# $1: binary, $2: package@version, $3: extra ldflags.
go_install() {
  [[ -x "$bin/$1" ]] && return
  echo ">> building $1 ${2##*@}"
  local out; out=$(mktemp -d)
  GOBIN="$out" go install -trimpath -ldflags "-s -w ${3:-}" "$2"
  mv "$out"/* "$bin/$1" && rmdir "$out"
}
prometheus_version() {  # v0.316.0 -> 3.16.0
  local v=${PROMETHEUS_VERSION#v0.}
  echo "${v:0:1}.$((10#${v:1:2})).${v#*.}"
}

[[ -x "$bin/etcd" ]] || build_etcd
[[ -x "$bin/helm" ]] || build_helm
go_install coredns "github.com/coredns/coredns@$COREDNS_VERSION"
prom_ldflags="-X github.com/prometheus/common/version.Version=$(prometheus_version) \
  -X github.com/prometheus/common/version.Branch=release \
  -X github.com/prometheus/common/version.Revision=$PROMETHEUS_VERSION"
go_install prometheus "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION" "$prom_ldflags"
go_install promtool "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION" "$prom_ldflags"
go_install actionlint "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
go_install kube-score "github.com/zegl/kube-score/cmd/kube-score@$KUBE_SCORE_VERSION" \
  "-X main.version=${KUBE_SCORE_VERSION#v}"
go_install crictl "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
build_kube_network_policies() {
  # Its module source, patched (see the patch's header for why), built like go install.
  knp_built && return
  echo ">> building kube-network-policies $KUBE_NETWORK_POLICIES_VERSION (patched)"
  local module="sigs.k8s.io/kube-network-policies@$KUBE_NETWORK_POLICIES_VERSION"
  local upstream; upstream=$(cd "$work" && GOFLAGS='' go mod download -json "$module" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  local dir="$work/kube-network-policies-$KUBE_NETWORK_POLICIES_VERSION"
  rm -rf "$dir" && cp -r "$upstream" "$dir" && chmod -R u+w "$dir"
  (cd "$dir" && git apply -p1 "$knp_patch")
  (cd "$dir" && go build -trimpath -ldflags "-s -w" -o "$bin/kube-network-policies" ./cmd)
  sha256sum <"$knp_patch" | cut -d' ' -f1 >"$knp_mark"
}
build_kube_network_policies
build_kubernetes kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy
touch "$stamp"
echo "control plane binaries ready in $bin"
