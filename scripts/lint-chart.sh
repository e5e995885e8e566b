#!/usr/bin/env bash
# `make lint` for charts/agentfleet: helm lint --strict, kube-score and checkov, each on two
# renders: the default values (with the one value a queue needs) and every feature on.
# A remaining finding fails the run; the accepted ones are waived in the chart's templates
# with their reason (annotations kube-score/ignore and checkov.io/skipN), plus one flag
# here: --ignore-container-cpu-limit (no CPU limit on purpose; values.yaml says why).
#
# kube-score is built from its Go module by scripts/build-controlplane.sh (`make
# controlplane`); checkov is installed from PyPI into a venv of its own under .cache/tools,
# once per pinned version. Nothing is skipped: a missing tool is an error with its fix.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/controlplane.env
source "$here/scripts/controlplane.env"
cache=${AGENTFLEET_CACHE:-$here/.cache}
bin="$cache/controlplane/k8s-$KUBERNETES_VERSION-etcd-$ETCD_VERSION/bin"
chart="$here/charts/agentfleet"

for tool in helm kube-score; do
  if [[ ! -x "$bin/$tool" ]]; then
    echo "error: $bin/$tool is missing: run 'make controlplane' (builds it from its Go module)" >&2
    exit 1
  fi
done

checkov_venv="$cache/tools/checkov-$CHECKOV_VERSION"
if [[ ! -x "$checkov_venv/bin/checkov" ]]; then
  echo ">> installing checkov $CHECKOV_VERSION into $checkov_venv"
  rm -rf "$checkov_venv"
  python3 -m venv "$checkov_venv"
  if ! "$checkov_venv/bin/pip" install -q --disable-pip-version-check "checkov==$CHECKOV_VERSION"; then
    rm -rf "$checkov_venv"
    echo "error: could not install checkov $CHECKOV_VERSION from PyPI (see above)" >&2
    exit 1
  fi
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
minimal=(--set redis.url=redis://redis.example:6379/0)
every=(--set redis.deploy=true --set serviceMonitor.enabled=true --set podMonitor.enabled=true
  --set prometheusRule.enabled=true --set grafanaDashboard.enabled=true)

echo ">> helm lint --strict (default values, every feature on)"
"$bin/helm" lint --strict --quiet "$chart" "${minimal[@]}"
"$bin/helm" lint --strict --quiet "$chart" "${every[@]}"

# Rendered into the namespace people install into (not `default`, which checkov flags).
render() {
  "$bin/helm" template agentfleet "$chart" --namespace agentfleet-system \
    --kube-version "$KUBERNETES_VERSION" "$@"
}
render "${minimal[@]}" >"$out/default.yaml"
render "${every[@]}" >"$out/every-feature.yaml"

for file in "$out/default.yaml" "$out/every-feature.yaml"; do
  name=$(basename "$file")
  echo ">> kube-score $name"
  if ! report=$("$bin/kube-score" score "$file" --output-format ci \
    --ignore-container-cpu-limit \
    --enable-optional-test container-seccomp-profile); then
    grep -v '^\[OK\]\|^\[SKIPPED\]' <<<"$report" >&2 || true
    echo "error: kube-score found the above in $name: fix them, or waive each in the chart with its reason" >&2
    exit 1
  fi
  echo ">> checkov $name"
  # --skip-download: no Prisma Cloud guideline lookups (no network needed, none sent).
  if ! "$checkov_venv/bin/checkov" --quiet --compact --skip-download \
    --framework kubernetes -f "$file" >"$out/checkov.txt" 2>&1; then
    cat "$out/checkov.txt" >&2
    echo "error: checkov found the above in $name: fix them, or waive each in the chart with its reason" >&2
    exit 1
  fi
  grep -h '^Passed checks' "$out/checkov.txt" || true
done
echo "chart lint: helm lint, kube-score and checkov pass on both renders"
