"""The one-time step that hands existing CRDs to a Helm release (docs/install.md,
"Upgrading from 0.1.0"), as the tests run it.

Helm manages only objects that carry its ownership: the label
`app.kubernetes.io/managed-by=Helm` and the annotations `meta.helm.sh/release-name` and
`meta.helm.sh/release-namespace`. CRDs installed from chart 0.1.0's crds/ folder, or
applied with kubectl, have none, so `helm install`/`upgrade` of a chart that renders them
would stop with "invalid ownership metadata". These labels and annotations adopt them.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

CHART_CRDS = (
    "projects.agentfleet.dev",
    "workerpools.agentfleet.dev",
    "kopfpeerings.kopf.dev",
    "clusterkopfpeerings.kopf.dev",
)


def _kubectl(kubectl: Sequence[str], *args: str) -> str:
    result = subprocess.run(
        [*kubectl, *args], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def adopt_crds(kubectl: Sequence[str], release: str, namespace: str) -> list[str]:
    """Label and annotate those of the chart's CRDs that exist for `release` in
    `namespace`; returns their names. `kubectl` is the command (with --kubeconfig)."""
    existing = set(_kubectl(kubectl, "get", "crd", "-o", "name").split())
    adopted = []
    for crd in CHART_CRDS:
        if f"customresourcedefinition.apiextensions.k8s.io/{crd}" not in existing:
            continue
        _kubectl(kubectl, "label", "crd", crd, "--overwrite", "app.kubernetes.io/managed-by=Helm")
        _kubectl(
            kubectl, "annotate", "crd", crd, "--overwrite",
            f"meta.helm.sh/release-name={release}", f"meta.helm.sh/release-namespace={namespace}",
        )  # fmt: skip
        adopted.append(crd)
    return adopted
