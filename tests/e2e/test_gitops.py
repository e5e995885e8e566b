"""The GitOps examples, proven against the projects' own schemas on the real API server:
Argo CD's and Flux's CRDs (from their Go modules, scripts/gitops-crds.sh) are installed,
and examples/gitops/argocd and examples/gitops/flux pass a server-side dry run with strict
field validation; the chart values they carry pass the chart's values.schema.json; the
kustomize base for a team's Projects and WorkerPools renders with `kubectl kustomize` and
its output passes a server-side dry run against agentfleet's CRDs."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentfleet.dev.localenv import ControlPlane, find_binary
from agentfleet.dev.localenv.binaries import pinned_versions
from agentfleet.dev.localenv.waiting import wait_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
GITOPS = REPO / "examples" / "gitops"
CHART = REPO / "charts" / "agentfleet"
EXPECTED_CRDS = (
    "applications.argoproj.io",
    "gitrepositories.source.toolkit.fluxcd.io",
    "helmreleases.helm.toolkit.fluxcd.io",
    "kustomizations.kustomize.toolkit.fluxcd.io",
)


def _run(
    *argv: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=300, check=False
    )
    if check:
        assert result.returncode == 0, (
            f"{' '.join(argv[:6])} ...:\n{result.stdout}\n{result.stderr}"
        )
    return result


@pytest.fixture(scope="module")
def gitops_crds() -> Path:
    """Argo CD's and Flux's CRDs, fetched once per pinned version set (cached)."""
    result = _run("bash", str(REPO / "scripts" / "gitops-crds.sh"), check=False)
    assert result.returncode == 0, (
        "scripts/gitops-crds.sh could not provide the Argo CD and Flux CRDs "
        f"(`make controlplane` runs it):\n{result.stderr}"
    )
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def kubectl(controlplane: ControlPlane, gitops_crds: Path) -> list[str]:
    command = [str(find_binary("kubectl")), "--kubeconfig", str(controlplane.kubeconfig)]
    _run(*command, "apply", "--server-side", "--force-conflicts", "-f", str(gitops_crds))
    _run(*command, "apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    jsonpath = '{.status.conditions[?(@.type=="Established")].status}'

    def established() -> bool:
        return all(
            _run(*command, "get", "crd", name, "-o", f"jsonpath={jsonpath}", check=False).stdout
            == "True"
            for name in (*EXPECTED_CRDS, "workerpools.agentfleet.dev")
        )

    wait_for(established, 60, "the Argo CD, Flux and agentfleet CRDs Established")
    for namespace in ("argocd", "flux-system", "agentfleet-system", "team-a"):
        manifest = _run(
            *command, "create", "namespace", namespace, "--dry-run=client", "-o", "yaml"
        ).stdout
        _run(*command, "apply", "-f", "-", stdin=manifest)
    return command


def _dry_run(kubectl: list[str], manifest: str) -> subprocess.CompletedProcess[str]:
    return _run(
        *kubectl, "apply", "--dry-run=server", "--validate=strict", "-f", "-",
        stdin=manifest, check=False,
    )  # fmt: skip


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _chart_accepts(values: dict[str, Any], tmp_path: Path) -> None:
    file = tmp_path / "values.yaml"
    file.write_text(yaml.safe_dump(values))
    _run(
        str(find_binary("helm")), "template", "agentfleet", str(CHART), "-f", str(file),
        "--kube-version", pinned_versions()["KUBERNETES_VERSION"],
    )  # fmt: skip


@pytest.mark.parametrize("example", ["argocd/agentfleet.yaml", "flux/agentfleet.yaml"])
def test_the_gitops_example_passes_a_server_side_dry_run_against_its_projects_crds(
    kubectl: list[str], example: str, tmp_path: Path
) -> None:
    path = GITOPS / example
    result = _dry_run(kubectl, path.read_text())
    assert result.returncode == 0, result.stderr
    kinds = {d["kind"] for d in _documents(path)}
    created = result.stdout.count("(server dry run)")
    assert created == len(_documents(path)), result.stdout
    # The chart values inside them are the chart's (values.schema.json).
    for document in _documents(path):
        if document["kind"] == "Application" and "helm" in document["spec"]["source"]:
            _chart_accepts(document["spec"]["source"]["helm"]["valuesObject"], tmp_path)
        if document["kind"] == "HelmRelease":
            _chart_accepts(document["spec"]["values"], tmp_path)
    assert kinds & {"Application", "HelmRelease"}


def test_the_dry_run_refuses_what_the_schemas_refuse(kubectl: list[str]) -> None:
    """A control: the dry run checks the examples against the CRDs' schemas, field by field."""
    application = _documents(GITOPS / "argocd" / "agentfleet.yaml")[0]
    application["spec"]["syncPolicy"]["automatic"] = {"prune": True}  # Argo CD says automated
    result = _dry_run(kubectl, yaml.safe_dump(application))
    assert result.returncode != 0 and 'unknown field "spec.syncPolicy.automatic"' in result.stderr
    release = next(
        d for d in _documents(GITOPS / "flux" / "agentfleet.yaml") if d["kind"] == "HelmRelease"
    )
    release["spec"]["interval"] = 600  # a duration string in Flux's schema
    result = _dry_run(kubectl, yaml.safe_dump(release))
    assert result.returncode != 0 and "spec.interval" in result.stderr, result.stderr


def test_the_kustomize_base_renders_a_teams_objects_that_the_api_server_accepts(
    kubectl: list[str],
) -> None:
    overlay = GITOPS / "kustomize" / "overlays" / "team-a"
    rendered = _run(*kubectl, "kustomize", str(overlay)).stdout
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in documents}
    assert set(by_kind) == {
        ("Project", "app"),
        ("WorkerPool", "app-development"),
        ("WorkerPool", "app-review"),
    }
    assert {d["metadata"]["namespace"] for d in documents} == {"team-a"}
    assert by_kind["Project", "app"]["spec"]["repository"] == "acme/widgets"
    assert by_kind["WorkerPool", "app-development"]["spec"]["maxReplicas"] == 8
    # The autoscaler owns spec.replicas: the base leaves it out.
    assert not [d for d in documents if "replicas" in d["spec"]]
    result = _dry_run(kubectl, rendered)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("(server dry run)") == 3, result.stdout
