"""CustomResourceDefinitions built from the models (the models are the single source).

`make crds` writes these to `crds/`; a unit test fails when the committed files differ.
The kopf peering CRDs are here too: two operator replicas coordinate through them so that
only one is active.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from agentfleet.core.api.base import API_GROUP, API_VERSION
from agentfleet.core.api.project import ProjectSpec, ProjectStatus
from agentfleet.core.api.schema import Schema, normalise_description, structural_schema
from agentfleet.core.api.workerpool import WorkerPoolSpec, WorkerPoolStatus

CATEGORY = "agentfleet"

# The metrics Service is named `<pool>-metrics` and must be a DNS-1035 label (<= 63).
WORKERPOOL_NAME_MAX_LENGTH = 55


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    type: str
    json_path: str
    description: str
    priority: int = 0

    def to_wire(self) -> dict[str, Any]:
        column: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "jsonPath": self.json_path,
            "description": self.description,
        }
        if self.priority:
            column["priority"] = self.priority
        return column


AGE_COLUMN = PrinterColumn(
    "Age", "date", ".metadata.creationTimestamp", "Time since the object was created."
)


@dataclass(frozen=True)
class ResourceDefinition:
    kind: str
    plural: str
    short_names: tuple[str, ...]
    description: str
    spec_model: type[BaseModel]
    status_model: type[BaseModel]
    printer_columns: tuple[PrinterColumn, ...]
    scale: bool = False
    root_validations: tuple[dict[str, str], ...] = field(default_factory=tuple)

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def name(self) -> str:
        return f"{self.plural}.{API_GROUP}"

    def open_api_schema(self) -> Schema:
        spec = structural_schema(self.spec_model)
        status = structural_schema(self.status_model)
        root: Schema = {
            "description": normalise_description(self.description),
            "type": "object",
            "required": ["spec"],
            "properties": {
                "apiVersion": {
                    "description": "Versioned schema of this representation of an object.",
                    "type": "string",
                },
                "kind": {
                    "description": "REST resource this object represents.",
                    "type": "string",
                },
                # The API server supplies metadata's schema and refuses anything more here.
                "metadata": {"type": "object"},
                "spec": spec,
                "status": status,
            },
        }
        if self.root_validations:
            root["x-kubernetes-validations"] = list(self.root_validations)
        return root

    def to_wire(self) -> dict[str, Any]:
        subresources: dict[str, Any] = {"status": {}}
        if self.scale:
            subresources["scale"] = {
                "specReplicasPath": ".spec.replicas",
                "statusReplicasPath": ".status.replicas",
                "labelSelectorPath": ".status.selector",
            }
        return {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {
                "name": self.name,
                "labels": {"app.kubernetes.io/part-of": "agentfleet"},
            },
            "spec": {
                "group": API_GROUP,
                "scope": "Namespaced",
                "names": {
                    "kind": self.kind,
                    "listKind": f"{self.kind}List",
                    "plural": self.plural,
                    "singular": self.singular,
                    "shortNames": list(self.short_names),
                    "categories": [CATEGORY],
                },
                "versions": [
                    {
                        "name": API_VERSION,
                        "served": True,
                        "storage": True,
                        "schema": {"openAPIV3Schema": self.open_api_schema()},
                        "subresources": subresources,
                        "additionalPrinterColumns": [c.to_wire() for c in self.printer_columns],
                    }
                ],
            },
        }


PROJECT = ResourceDefinition(
    kind="Project",
    plural="projects",
    short_names=("proj", "afp"),
    description="""A GitHub repository whose labelled issues flow through the agent pipeline
    (genesis -> development -> content, review for failures).""",
    spec_model=ProjectSpec,
    status_model=ProjectStatus,
    printer_columns=(
        PrinterColumn("Repo", "string", ".spec.repository", "GitHub repository."),
        PrinterColumn("Phase", "string", ".status.phase", "Summary of the project's state."),
        PrinterColumn("Queued", "integer", ".status.queued", "Items waiting or held."),
        PrinterColumn("Paused", "boolean", ".spec.paused", "Emergency stop is on.", priority=1),
        AGE_COLUMN,
    ),
)

WORKERPOOL = ResourceDefinition(
    kind="WorkerPool",
    plural="workerpools",
    short_names=("wp", "pool"),
    description="""A Deployment of Claude agent workers serving one pipeline stage for a
    selection of Projects, scaled from Prometheus metrics of its queue.""",
    spec_model=WorkerPoolSpec,
    status_model=WorkerPoolStatus,
    printer_columns=(
        PrinterColumn("Stage", "string", ".spec.stage", "Pipeline stage served."),
        PrinterColumn(
            "Desired", "integer", ".status.desiredReplicas", "Replicas set on the Deployment."
        ),
        PrinterColumn("Ready", "integer", ".status.readyReplicas", "Ready worker pods."),
        PrinterColumn(
            "Queue", "integer", ".status.metrics.queueDepth", "Items waiting for this pool."
        ),
        PrinterColumn(
            "Reason", "string", ".status.lastScaleReason", "Why replicas last changed.", 1
        ),
        AGE_COLUMN,
    ),
    scale=True,
    root_validations=(
        {
            "rule": f"self.metadata.name.size() <= {WORKERPOOL_NAME_MAX_LENGTH} && "
            "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
            "message": "WorkerPool names must be DNS-1035 labels (lowercase letters, digits "
            f"and '-', starting with a letter) of at most {WORKERPOOL_NAME_MAX_LENGTH} "
            "characters: the pool's metrics Service is named <name>-metrics",
        },
    ),
)

RESOURCES: tuple[ResourceDefinition, ...] = (PROJECT, WORKERPOOL)

PEERING_GROUP = "kopf.dev"


def _peering_crd(kind: str, plural: str, scope: str) -> dict[str, Any]:
    """kopf's own peering resource: its status maps operator ids to keep-alives."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{PEERING_GROUP}",
            "labels": {"app.kubernetes.io/part-of": "agentfleet"},
        },
        "spec": {
            "group": PEERING_GROUP,
            "scope": scope,
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "description": "Operator replicas announce themselves here; "
                            "the one with the highest priority is active, the others wait.",
                            "type": "object",
                            "properties": {
                                "status": {
                                    "description": "Operator id -> priority and last keep-alive.",
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                }
                            },
                        }
                    },
                }
            ],
        },
    }


PEERING_CRDS: tuple[dict[str, Any], ...] = (
    _peering_crd("ClusterKopfPeering", "clusterkopfpeerings", "Cluster"),
    _peering_crd("KopfPeering", "kopfpeerings", "Namespaced"),
)


def all_crds() -> list[dict[str, Any]]:
    return [r.to_wire() for r in RESOURCES] + list(PEERING_CRDS)
