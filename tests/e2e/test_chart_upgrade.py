"""The CRD upgrade path, against the real API server: the previous chart (0.1.0, whose
CRDs sat in crds/, which Helm installs once and never upgrades) is installed, objects are
created, and `helm upgrade` to this chart, whose CRDs are templates, serves a field added
to a CRD while the existing objects survive; `helm uninstall` keeps the CRDs and so the
objects (helm.sh/resource-policy: keep).

The release runs no Pod that matters here: the operator has zero replicas and the image
does not exist, so the node only sees the exporter's Pod waiting for its image."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentfleet.dev.chartcrds import CHART_CRDS, adopt_crds
from agentfleet.dev.localenv import ControlPlane, find_binary
from agentfleet.dev.localenv.waiting import wait_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "agentfleet"
PREVIOUS = Path(__file__).resolve().parent / "charts" / "agentfleet-0.1.0.tgz"
CRDS = CHART_CRDS
# No queue and no Pods to speak of: only the API objects matter.
QUIET = [
    "--set", "redis.url=redis://redis.invalid:6379/0",
    "--set", "replicaCount=0",
    "--set", "image.repository=localhost/agentfleet/absent",
    "--set", "prometheus.url=",
]  # fmt: skip


def _run(*argv: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0, f"{' '.join(argv[:5])} ...:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _next_chart(tmp_path: Path) -> Path:
    """This chart as the next release: its WorkerPool CRD gains an optional field."""
    chart = tmp_path / "agentfleet"
    shutil.copytree(CHART, chart)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    meta["version"] = "0.2.0-next"
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta))
    path = chart / "files" / "crds" / "workerpools.agentfleet.dev.yaml"
    crd = yaml.safe_load(path.read_text())
    for version in crd["spec"]["versions"]:
        spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
        spec["properties"]["upgradeMarker"] = {
            "type": "string",
            "description": "A field only the next chart's CRD has.",
        }
    path.write_text(yaml.safe_dump(crd, sort_keys=False))
    return chart


def test_helm_upgrade_serves_a_new_crd_field_and_existing_objects_survive(
    controlplane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    kubectl = [str(find_binary("kubectl")), "--kubeconfig", str(controlplane.kubeconfig)]
    helm = [str(find_binary("helm")), "--kubeconfig", str(controlplane.kubeconfig)]
    release = f"up{uuid.uuid4().hex[:6]}"
    try:
        _run(*helm, "install", release, str(PREVIOUS), "-n", namespace, *QUIET)
        jsonpath = '{.status.conditions[?(@.type=="Established")].status}'
        wait_for(
            lambda: all(_established(kubectl, crd, jsonpath) for crd in CRDS),
            60,
            "0.1.0's CRDs Established",
        )
        _run(
            *kubectl, "-n", namespace, "apply", "-f", "-",
            stdin=yaml.safe_dump_all([
                {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gh"},
                 "stringData": {"token": "t"}},
                {"apiVersion": "agentfleet.dev/v1alpha1", "kind": "Project",
                 "metadata": {"name": "shop"},
                 "spec": {"repository": "acme/shop", "credentialsSecretRef": {"name": "gh"}}},
                {"apiVersion": "agentfleet.dev/v1alpha1", "kind": "WorkerPool",
                 "metadata": {"name": "devs"},
                 "spec": {"stage": "development", "minReplicas": 1, "maxReplicas": 2}},
            ]),
        )  # fmt: skip
        before = _uids(kubectl, namespace)
        with_marker = _pool_with_marker()
        # 0.1.0's CRD does not know the field: strict field validation refuses it.
        refused = subprocess.run(
            [*kubectl, "-n", namespace, "apply", "--dry-run=server", "-f", "-"],
            input=yaml.safe_dump(with_marker), capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert refused.returncode != 0 and "upgradeMarker" in refused.stderr, refused.stderr

        # The one-time step of docs/install.md: hand the CRDs to the release.
        assert adopt_crds(kubectl, release, namespace) == list(CRDS)
        _run(*helm, "upgrade", release, str(_next_chart(tmp_path)), "-n", namespace, *QUIET)

        crd = yaml.safe_load(
            _run(*kubectl, "get", "crd", "workerpools.agentfleet.dev", "-o", "yaml")
        )
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        # The new field is served: accepted and stored, not pruned.
        _run(*kubectl, "-n", namespace, "apply", "-f", "-", stdin=yaml.safe_dump(with_marker))
        stored = _run(
            *kubectl, "-n", namespace, "get", "workerpool", "devs",
            "-o", "jsonpath={.spec.upgradeMarker}",
        )  # fmt: skip
        assert stored == "served"
        # The objects made under 0.1.0 are the same objects.
        assert _uids(kubectl, namespace) == before

        # Uninstall keeps the CRDs, so no one's Projects and WorkerPools go with a release.
        _run(*helm, "uninstall", release, "-n", namespace)
        _run(*kubectl, "get", "crd", *CRDS)
        assert _uids(kubectl, namespace) == before
    finally:
        subprocess.run(
            [*helm, "uninstall", release, "-n", namespace], capture_output=True, check=False
        )
        # Back to the generated CRDs (without the field), which other tests apply.
        _run(*kubectl, "replace", "-f", str(REPO / "crds"))


def _established(kubectl: list[str], crd: str, jsonpath: str) -> bool:
    result = subprocess.run(
        [*kubectl, "get", "crd", crd, "-o", f"jsonpath={jsonpath}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return result.stdout == "True"


def _pool_with_marker() -> dict[str, Any]:
    return {
        "apiVersion": "agentfleet.dev/v1alpha1",
        "kind": "WorkerPool",
        "metadata": {"name": "devs"},
        "spec": {
            "stage": "development",
            "minReplicas": 1,
            "maxReplicas": 2,
            "upgradeMarker": "served",
        },
    }


def _uids(kubectl: list[str], namespace: str) -> dict[str, str]:
    listing = yaml.safe_load(
        _run(*kubectl, "-n", namespace, "get", "projects,workerpools", "-o", "yaml")
    )
    return {
        f"{item['kind']}/{item['metadata']['name']}": item["metadata"]["uid"]
        for item in listing["items"]
    }
