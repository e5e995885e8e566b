"""What the operator's indexes keep: one index per kind, each object parsed once per
change, read by the reconciler, the autoscaler and intake alike.

- `pool_index`: every WorkerPool as a `PoolEntry`, under two keys: its namespace (the
  reconciler's view: the pools of a namespace) and `(namespace, name)` (the autoscaler's
  view: one pool).
- `project_index`: every Project as a `ProjectInfo` (`logic`), under its namespace.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from agentfleet.core.api.base import API_GROUP
from agentfleet.core.api.workerpool import WorkerPoolSpec, WorkerPoolStatus
from agentfleet.operator.logic import AVAILABLE, ProjectInfo

PoolKey = tuple[str, str]
"""(namespace, name)."""
PoolIndexKey = str | PoolKey
"""A namespace, or (namespace, name)."""

PAUSED_REPLICAS_ANNOTATION = f"autoscaling.{API_GROUP}/paused-replicas"
"""Like KEDA's `autoscaling.keda.sh/paused-replicas`: pin the pool at this many replicas
and stop autoscaling it until the annotation is removed."""


def parse_pool_status(raw: Mapping[str, Any] | None) -> WorkerPoolStatus:
    """The status as stored; one the model cannot read (written by an older version or by
    hand) is treated as empty and rebuilt by the next writes."""
    try:
        return WorkerPoolStatus.model_validate(raw or {})
    except ValidationError:
        return WorkerPoolStatus()


def pool_observation(status: Mapping[str, Any]) -> tuple[Any, ...]:
    available = next(
        (c.get("status") for c in status.get("conditions") or [] if c.get("type") == AVAILABLE),
        None,
    )
    return (status.get("replicas"), status.get("readyReplicas"), available)


def deployment_observation(deployment: Mapping[str, Any]) -> tuple[Any, ...]:
    """The Deployment status fields a WorkerPool mirrors, in `pool_observation` form; when
    both agree there is nothing to write."""
    status = deployment.get("status") or {}
    available = next(
        (c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Available"),
        None,
    )
    return (status.get("replicas", 0), status.get("readyReplicas", 0), available)


@dataclass(frozen=True)
class PoolEntry:
    """A WorkerPool as the operator's index keeps it (parsed once per change)."""

    namespace: str
    name: str
    uid: str
    generation: int | None
    resource_version: str
    spec: WorkerPoolSpec | None
    """None when the spec does not parse; the reconciler reports why."""
    status: WorkerPoolStatus
    paused_replicas: str | None
    """The raw value of the paused-replicas annotation; None when absent."""
    observed: tuple[Any, ...]
    """What the status says of the Deployment (see `deployment_observation`)."""
    created: datetime | None = None
    """metadata.creationTimestamp (None when absent or unreadable)."""

    @property
    def key(self) -> PoolKey:
        return (self.namespace, self.name)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> PoolEntry:
        meta = body.get("metadata") or {}
        try:
            spec: WorkerPoolSpec | None = WorkerPoolSpec.model_validate(body.get("spec") or {})
        except ValidationError:
            spec = None
        raw_status = body.get("status") or {}
        return cls(
            namespace=meta.get("namespace", ""),
            name=meta.get("name", ""),
            uid=meta.get("uid", ""),
            generation=meta.get("generation"),
            resource_version=meta.get("resourceVersion", ""),
            spec=spec,
            status=parse_pool_status(raw_status),
            paused_replicas=(meta.get("annotations") or {}).get(PAUSED_REPLICAS_ANNOTATION),
            observed=pool_observation(raw_status),
            created=_timestamp(meta.get("creationTimestamp")),
        )

    @property
    def replicas(self) -> int:
        """What the pool asks for now: spec.replicas, minReplicas while unset."""
        if self.spec is None:
            raise RuntimeError("the pool's spec is read before it is scaled")
        return self.spec.min_replicas if self.spec.replicas is None else self.spec.replicas


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def pool_index_entries(body: Mapping[str, Any]) -> dict[PoolIndexKey, PoolEntry]:
    """The keys of one WorkerPool in `pool_index`: one parse, two ways to find it."""
    entry = PoolEntry.from_body(body)
    return {entry.namespace: entry, entry.key: entry}


def namespace_pools(
    index: Mapping[PoolIndexKey, Iterable[PoolEntry]], namespace: str
) -> list[PoolEntry]:
    return list(index.get(namespace) or ())


def namespace_projects(
    index: Mapping[str, Iterable[ProjectInfo]], namespace: str
) -> list[ProjectInfo]:
    return list(index.get(namespace) or ())
