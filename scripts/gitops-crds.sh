#!/usr/bin/env bash
# The CRDs of Argo CD and Flux, from their Go modules on the module proxy, so that
# examples/gitops is validated against the schemas those projects publish (a server-side
# dry run in tests/e2e/test_gitops.py). Written to a git-ignored cache, once per pinned
# version set (scripts/controlplane.env):
#
# - Argo CD: manifests/crds/ of github.com/argoproj/argo-cd/v3 (Application, AppProject,
#   ApplicationSet), as published.
# - Flux source-controller and kustomize-controller: config/crd/bases/ of their modules
#   (GitRepository, HelmRepository, OCIRepository, HelmChart, Bucket; Kustomization).
# - Flux helm-controller: its root module is not served by the module proxy (403), so the
#   HelmRelease CRD is generated from its API module (github.com/fluxcd/helm-controller/api)
#   with controller-gen (sigs.k8s.io/controller-tools), as helm-controller's own Makefile
#   generates config/crd/bases.
#
# Prints the folder. A second run with the cache in place returns at once.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/controlplane.env
source "$here/scripts/controlplane.env"
cache=${AGENTFLEET_CACHE:-$here/.cache}
key="argocd-$ARGOCD_VERSION-source-$FLUX_SOURCE_CONTROLLER_VERSION"
key+="-kustomize-$FLUX_KUSTOMIZE_CONTROLLER_VERSION-helm-$FLUX_HELM_CONTROLLER_API_VERSION"
out="$cache/gitops-crds/$key"
if [[ -f "$out/.complete" ]]; then
  echo "$out"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "error: Go is needed (as a build tool) to fetch the Argo CD and Flux CRDs from their modules" >&2
  exit 127
fi

export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0
work="$cache/gitops-crds/src"
mkdir -p "$work" "$out"
module_dir() {  # $1: module@version -> its extracted (read-only) folder in the module cache
  (cd "$work" && go mod download -json "$1" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(d["Error"]) if "Error" in d else print(d["Dir"])')
}

echo ">> Argo CD $ARGOCD_VERSION CRDs" >&2
argocd=$(module_dir "github.com/argoproj/argo-cd/v3@$ARGOCD_VERSION")
cp "$argocd"/manifests/crds/*-crd.yaml "$out/"

echo ">> Flux source-controller $FLUX_SOURCE_CONTROLLER_VERSION CRDs" >&2
source_controller=$(module_dir "github.com/fluxcd/source-controller@$FLUX_SOURCE_CONTROLLER_VERSION")
cp "$source_controller"/config/crd/bases/*.yaml "$out/"

echo ">> Flux kustomize-controller $FLUX_KUSTOMIZE_CONTROLLER_VERSION CRDs" >&2
kustomize_controller=$(module_dir "github.com/fluxcd/kustomize-controller@$FLUX_KUSTOMIZE_CONTROLLER_VERSION")
cp "$kustomize_controller"/config/crd/bases/*.yaml "$out/"

echo ">> Flux helm-controller/api $FLUX_HELM_CONTROLLER_API_VERSION: HelmRelease CRD (controller-gen $CONTROLLER_TOOLS_VERSION)" >&2
tools="$cache/gitops-crds/bin"
controller_gen="$tools/controller-gen-$CONTROLLER_TOOLS_VERSION"
if [[ ! -x "$controller_gen" ]]; then
  mkdir -p "$tools"
  gobin=$(mktemp -d)
  GOBIN="$gobin" go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/controller-tools/cmd/controller-gen@$CONTROLLER_TOOLS_VERSION"
  mv "$gobin/controller-gen" "$controller_gen" && rmdir "$gobin"
fi
api=$(module_dir "github.com/fluxcd/helm-controller/api@$FLUX_HELM_CONTROLLER_API_VERSION")
copy="$work/helm-controller-api-$FLUX_HELM_CONTROLLER_API_VERSION"
rm -rf "$copy" && cp -r "$api" "$copy" && chmod -R u+w "$copy"
(cd "$copy" && "$controller_gen" crd paths=./... output:crd:dir="$out")

touch "$out/.complete"
echo "$out"
