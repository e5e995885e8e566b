"""Where kopf keeps its bookkeeping: a WorkerPool's in this process's memory, a Project's
in annotations under our prefix.

kopf remembers, per object, the last spec it handled (the diff base, to tell a change from
a status write) and the progress of handlers that are retrying. Kept in annotations, as
kopf does by default, each new object costs a PATCH (and the watch event it causes)
after its first successful handling, only to write that record; at a thousand new pools
that is a thousand writes of the whole WorkerPool, each through admission, CEL and
managed fields.

A WorkerPool needs no record that outlives the process: the pool handler compares the
whole desired state with what exists on every call, so after a restart (or when a peer
takes over) an empty memory makes kopf treat every pool as new and reconcile it once,
which is what resuming does anyway. A Project keeps its record in annotations:
`project_priority` acts on the old value of `spec.priority`, which must survive a
restart.

A handler that is retrying still wakes itself through kopf's "touch" annotation, a
real change of the object, so retries after a delay work as before.

The essence kopf compares (spec, labels, annotations) is built as kopf builds it, from a
copy of only those parts: kopf copies the whole object, managed fields and status
included, for every watch event of every kind it handles.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, cast

import kopf

IN_MEMORY_KINDS = frozenset({"WorkerPool"})
"""Kinds whose kopf records live in memory."""

_NOT_ESSENCE = frozenset({"metadata", "status"})
_KEPT_META = frozenset({"labels", "annotations", "ownerReferences"})
"""What kopf's essence takes from metadata (labels, annotations), and what it reads to
name its keys (ownerReferences)."""


def _in_memory(body: Mapping[str, Any]) -> bool:
    return body.get("kind") in IN_MEMORY_KINDS


def _uid(body: kopf.Body) -> str:
    return str(body.metadata.uid)


def _encoded(value: object) -> str:
    # A compact string, as the annotation would hold: a thousand pools' specs in ~1 MB.
    return json.dumps(value, separators=(",", ":"))


class DiffBaseInMemory(kopf.AnnotationsDiffBaseStorage):
    """kopf's diff base: WorkerPools' in memory, other kinds' in an annotation."""

    def __init__(self, *, prefix: str, key: str) -> None:
        super().__init__(prefix=prefix, key=key)
        self._essences: dict[str, str] = {}

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[kopf.FieldSpec] | None = None
    ) -> kopf.BodyEssence:
        """kopf's essence (spec, labels, annotations but kopf's), from a copy of only what
        it keeps. kopf deep-copies the whole object for every watch event, then drops
        status and metadata; their managed fields are most of a pool's or a
        Deployment's size, and copying them was 7 % of the operator's CPU in a burst."""
        if extra_fields:
            # Fields picked back from anywhere in the object: copy it all, as kopf does.
            return super().build(body=body, extra_fields=extra_fields)
        light = {key: value for key, value in body.items() if key not in _NOT_ESSENCE}
        light["metadata"] = {
            key: value for key, value in body.get("metadata", {}).items() if key in _KEPT_META
        }
        return super().build(body=kopf.Body(cast(kopf.RawBody, light)))

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        if not _in_memory(body):
            return super().fetch(body=body)
        encoded = self._essences.get(_uid(body))
        return None if encoded is None else cast(kopf.BodyEssence, json.loads(encoded))

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        if not _in_memory(body):
            super().store(body=body, patch=patch, essence=essence)
            return
        self._essences[_uid(body)] = _encoded(essence)

    def forget(self, uid: str) -> None:
        """The object is gone: drop its record."""
        self._essences.pop(uid, None)

    def __len__(self) -> int:
        return len(self._essences)


class ProgressInMemory(kopf.AnnotationsProgressStorage):
    """kopf's handler progress: WorkerPools' in memory, other kinds' in annotations. The
    touch that wakes a delayed retry is always an annotation (it must change the object
    to cause a watch event)."""

    def __init__(self, *, prefix: str) -> None:
        super().__init__(prefix=prefix)
        self._records: dict[tuple[str, str], str] = {}

    def fetch(self, *, key: kopf.HandlerId, body: kopf.Body) -> kopf.ProgressRecord | None:
        if not _in_memory(body):
            return super().fetch(key=key, body=body)
        encoded = self._records.get((_uid(body), key))
        return None if encoded is None else cast(kopf.ProgressRecord, json.loads(encoded))

    def store(
        self,
        *,
        key: kopf.HandlerId,
        record: kopf.ProgressRecord,
        body: kopf.Body,
        patch: kopf.Patch,
    ) -> None:
        if not _in_memory(body):
            super().store(key=key, record=record, body=body, patch=patch)
            return
        self._records[(_uid(body), key)] = _encoded(dict(record))

    def purge(self, *, key: kopf.HandlerId, body: kopf.Body, patch: kopf.Patch) -> None:
        if _in_memory(body):
            self._records.pop((_uid(body), key), None)
        # Also removes a record an earlier version left in the annotations (a no-op when
        # there is none).
        super().purge(key=key, body=body, patch=patch)

    def forget(self, uid: str) -> None:
        """The object is gone: drop its records."""
        for record in [record for record in self._records if record[0] == uid]:
            del self._records[record]

    def __len__(self) -> int:
        return len(self._records)
