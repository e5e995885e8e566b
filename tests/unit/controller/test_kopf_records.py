"""kopf's records (diff base, handler progress) of WorkerPools live in memory and cost no
PATCH; a Project's stay in annotations, where `project_priority` needs the old value
after a restart."""

from __future__ import annotations

from typing import Any, cast

import kopf

from agentfleet.operator.persistence import DiffBaseInMemory, ProgressInMemory

PREFIX = "agentfleet.dev"


def _body(kind: str, uid: str = "u-1", annotations: dict[str, str] | None = None) -> kopf.Body:
    raw: dict[str, Any] = {
        "apiVersion": f"{PREFIX}/v1alpha1",
        "kind": kind,
        "metadata": {"name": "n", "namespace": "ns", "uid": uid, "annotations": annotations or {}},
        "spec": {"stage": "development", "maxReplicas": 3},
    }
    return kopf.Body(cast(kopf.RawBody, raw))


def _diffbase() -> DiffBaseInMemory:
    return DiffBaseInMemory(prefix=PREFIX, key="last-handled-configuration")


def test_a_pool_diff_base_is_kept_in_memory_and_writes_nothing() -> None:
    storage = _diffbase()
    body = _body("WorkerPool")
    assert storage.fetch(body=body) is None
    essence = storage.build(body=body)
    patch = kopf.Patch()
    storage.store(body=body, patch=patch, essence=essence)
    assert not patch, "a WorkerPool's diff base was written to the object"
    assert storage.fetch(body=body) == essence
    # Another pool (another uid, e.g. one made again under the name) has no record.
    assert storage.fetch(body=_body("WorkerPool", uid="u-2")) is None
    storage.forget("u-1")
    assert storage.fetch(body=body) is None
    assert len(storage) == 0


def test_a_project_diff_base_stays_in_its_annotation() -> None:
    storage = _diffbase()
    body = _body("Project")
    essence = storage.build(body=body)
    patch = kopf.Patch()
    storage.store(body=body, patch=patch, essence=essence)
    annotations = patch["metadata"]["annotations"]
    assert f"{PREFIX}/last-handled-configuration" in annotations
    stored = _body("Project", annotations=dict(annotations))
    assert storage.fetch(body=stored) == essence
    assert len(storage) == 0


def test_a_pool_handler_progress_is_kept_in_memory() -> None:
    storage = ProgressInMemory(prefix=PREFIX)
    body = _body("WorkerPool")
    key = kopf.HandlerId("pool_changed")
    record: kopf.ProgressRecord = {"started": "2026-12-01T00:00:00", "retries": 1}
    patch = kopf.Patch()
    storage.store(key=key, record=record, body=body, patch=patch)
    assert not patch, "a WorkerPool's handler progress was written to the object"
    assert storage.fetch(key=key, body=body) == record
    storage.purge(key=key, body=body, patch=patch)
    assert not patch
    assert storage.fetch(key=key, body=body) is None

    storage.store(key=key, record=record, body=body, patch=patch)
    storage.forget("u-1")
    assert storage.fetch(key=key, body=body) is None
    assert len(storage) == 0


def test_a_retry_still_wakes_itself_through_an_annotation() -> None:
    """kopf wakes a delayed retry by touching the object: that must stay a real change."""
    storage = ProgressInMemory(prefix=PREFIX)
    patch = kopf.Patch()
    storage.touch(body=_body("WorkerPool"), patch=patch, value="2026-12-01T00:00:05")
    assert patch["metadata"]["annotations"], "the touch wrote nothing: a retry would never run"


def test_a_project_handler_progress_stays_in_annotations() -> None:
    storage = ProgressInMemory(prefix=PREFIX)
    key = kopf.HandlerId("project_changed")
    patch = kopf.Patch()
    storage.store(key=key, record={"retries": 2}, body=_body("Project"), patch=patch)
    assert f"{PREFIX}/project_changed" in patch["metadata"]["annotations"]
    assert len(storage) == 0


def test_a_record_an_earlier_version_left_in_annotations_is_purged() -> None:
    storage = ProgressInMemory(prefix=PREFIX)
    key = kopf.HandlerId("pool_changed")
    body = _body("WorkerPool", annotations={f"{PREFIX}/pool_changed": '{"retries":1}'})
    patch = kopf.Patch()
    storage.purge(key=key, body=body, patch=patch)
    assert patch["metadata"]["annotations"] == {f"{PREFIX}/pool_changed": None}


def _heavy(kind: str) -> dict[str, Any]:
    """An object as a watch delivers it: managed fields, status, kopf's and kubectl's
    annotations besides the user's."""
    return {
        "apiVersion": "apps/v1" if kind != "WorkerPool" else f"{PREFIX}/v1alpha1",
        "kind": kind,
        "metadata": {
            "name": "n",
            "namespace": "ns",
            "uid": "u-1",
            "resourceVersion": "42",
            "generation": 3,
            "labels": {"team": "web"},
            "annotations": {
                "note": "kept",
                f"{PREFIX}/last-handled-configuration": '{"spec":{}}',
                f"{PREFIX}/pool_changed": '{"retries":1}',
                "kopf.zalando.org/last-handled-configuration": "{}",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
            },
            "ownerReferences": [{"kind": "Deployment", "name": "d", "uid": "u-0"}],
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}] * 20,
        },
        "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "w"}]}}},
        "status": {"replicas": 2, "conditions": [{"type": "Available", "status": "True"}]},
    }


def test_the_essence_is_kopfs_own_built_from_less() -> None:
    ours = _diffbase()
    kopfs = kopf.AnnotationsDiffBaseStorage(prefix=PREFIX, key="last-handled-configuration")
    for kind in ("WorkerPool", "Deployment", "ReplicaSet"):
        body = kopf.Body(cast(kopf.RawBody, _heavy(kind)))
        assert ours.build(body=body) == kopfs.build(body=body), kind
        extra = ["status.replicas"]
        assert ours.build(body=body, extra_fields=extra) == kopfs.build(
            body=body, extra_fields=extra
        )
    essence = ours.build(body=kopf.Body(cast(kopf.RawBody, _heavy("WorkerPool"))))
    assert "status" not in essence
    # (A handler's progress annotation is taken out later, by the progress storage.)
    assert essence["metadata"] == {
        "labels": {"team": "web"},
        "annotations": {"note": "kept", f"{PREFIX}/pool_changed": '{"retries":1}'},
    }
