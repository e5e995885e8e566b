# agentfleet developer entry points. `make demo` and `make test` do all the set-up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv controlplane servers images deps kind-up kind-down lint typecheck check test test-unit crds chart-schema docs \
        demo cluster-up cluster-down benchmarks clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) (3.11+) is required" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

venv: $(BIN)/.installed ## the Python environment (.venv) with dev extras

controlplane: ## build the local cluster (control plane, kubelet, kube-proxy, CoreDNS, ...) into .cache/
	@bash scripts/build-controlplane.sh
	@bash scripts/gitops-crds.sh >/dev/null

servers: ## install Redis, Prometheus, containerd, runc, CNI, buildah, ... (Debian packages) when missing
	@bash scripts/install-servers.sh

images: servers controlplane ## build the Debian base, worker and operator images without Docker (buildah)
	@bash scripts/build-images.sh

deps: venv controlplane servers images ## everything tests and the demo need

CACHE_BIN = $(shell bash -c 'source scripts/controlplane.env; echo .cache/controlplane/k8s-$$KUBERNETES_VERSION-etcd-$$ETCD_VERSION/bin')

lint: venv controlplane servers ## ruff, shellcheck, actionlint; helm lint, kube-score and checkov on the chart
	$(BIN)/ruff check operator tests benchmarks
	$(BIN)/ruff format --check operator tests benchmarks
	$(BIN)/lint-imports
	shellcheck -x scripts/*.sh .ci/run
	$(CACHE_BIN)/actionlint .github/workflows/*.yml
	bash scripts/lint-chart.sh

typecheck: venv ## mypy --strict on the package, the tests and the benchmarks
	$(BIN)/mypy

check: lint typecheck ## lint + typecheck

test: deps check ## lint, typecheck and the whole test suite against real servers
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: venv ## the pure tests only (no servers)
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

crds: venv ## regenerate crds/, the chart's copy and docs/crds.md from the pydantic models
	$(BIN)/python -m agentfleet.core.api.generate
	rm -f charts/agentfleet/files/crds/*.yaml && cp crds/*.yaml charts/agentfleet/files/crds/

chart-schema: venv ## regenerate charts/agentfleet/values.schema.json from the values models
	$(BIN)/python -m agentfleet.dev.chartvalues

cluster-up: deps ## start a local cluster (control plane + one node) in the background; prints KUBECONFIG
	@$(BIN)/agentfleet dev cluster-up

cluster-down: venv ## stop the local cluster started by cluster-up (nothing is left behind)
	@$(BIN)/agentfleet dev cluster-down

demo: deps ## control plane + Redis + Prometheus + operator + sample project + live scaling
	$(BIN)/agentfleet dev demo

kind-up: ## with Docker: build the images, create a kind cluster, load them, install the chart
	@bash scripts/kind-up.sh

kind-down: ## delete the kind cluster kind-up created
	kind delete cluster --name $${KIND_CLUSTER_NAME:-agentfleet}

benchmarks: deps ## run every benchmark script and print its figures
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean: ## remove the venv and build outputs (keeps the control-plane cache)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache out
