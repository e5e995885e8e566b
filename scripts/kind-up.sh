#!/usr/bin/env bash
# agentfleet on a kind cluster, for people with Docker: the same images as the local node
# (built here with `docker build` on the default python:3.11-slim base), loaded into kind,
# and the chart installed with the same values as the local path
# (examples/helm/values-local.yaml). Needs docker, kind and helm on PATH.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cluster=${KIND_CLUSTER_NAME:-agentfleet}
namespace=${AGENTFLEET_NAMESPACE:-agentfleet-system}
version=$("$here/scripts/version.sh")
registry=ghcr.io/agentfleet

for tool in docker kind helm kubectl; do
  command -v "$tool" >/dev/null || { echo "error: $tool is not installed (needed by make kind-up)" >&2; exit 1; }
done
docker info >/dev/null 2>&1 || { echo "error: the Docker daemon is not running" >&2; exit 1; }

echo ">> building the images with docker"
docker build -f "$here/worker-image/Dockerfile" -t "$registry/agentfleet-worker:$version" "$here"
docker build -f "$here/worker-image/Dockerfile.operator" -t "$registry/agentfleet-operator:$version" "$here"
docker build -f "$here/scripts/images/redis.Dockerfile" --build-arg BASE_IMAGE=debian:bookworm-slim \
  -t localhost/agentfleet/redis:7.0 "$here"

if ! kind get clusters | grep -qx "$cluster"; then
  echo ">> creating kind cluster $cluster"
  kind create cluster --name "$cluster" --wait 120s
fi
echo ">> loading the images into kind"
kind load docker-image --name "$cluster" \
  "$registry/agentfleet-worker:$version" "$registry/agentfleet-operator:$version" \
  localhost/agentfleet/redis:7.0

echo ">> installing the chart"
# No Prometheus in a bare kind cluster: pass --set prometheus.url=... to autoscale.
helm upgrade --install agentfleet "$here/charts/agentfleet" \
  --kube-context "kind-$cluster" --namespace "$namespace" --create-namespace \
  -f "$here/examples/helm/values-local.yaml" \
  --set prometheus.url="${AGENTFLEET_PROMETHEUS_URL:-}" \
  --wait --timeout 5m "$@"
kubectl --context "kind-$cluster" -n "$namespace" get pods -o wide
echo "agentfleet is installed in kind-$cluster (namespace $namespace)."
echo "next: kubectl --context kind-$cluster create namespace team-a && kubectl --context kind-$cluster apply -n team-a -f examples/"
