"""The operator's two status writers, the reconciler and the autoscaler, each own their own
fields of a WorkerPool's status, so each can trust what it last wrote over kopf's index:
the index is fed by a watch, and in a burst (a thousand new pools) its events queue up
far behind the writes. Here the index is a snapshot that never catches up, the worst
case, and the API server is the real one.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from prometheus_client import CollectorRegistry

from agentfleet.core.api.autoscaling import AutoscalingSpec
from agentfleet.core.api.base import Stage
from agentfleet.dev.localenv.waiting import wait_for
from agentfleet.operator.autoscaler.decision import ScaleState, Signals, decide
from agentfleet.operator.autoscaler.loop import AutoscalerLoop
from agentfleet.operator.autoscaler.pools import PoolKey, PoolTarget
from agentfleet.operator.autoscaler.prometheus import PrometheusSource
from agentfleet.operator.autoscaler.reporting import FIRST_METRICS_GRACE_SECONDS
from agentfleet.operator.autoscaler.scaler import KubernetesScaler, PoolDirectory
from agentfleet.operator.children import WorkerEnvironment
from agentfleet.operator.config import OperatorConfig
from agentfleet.operator.context import OperatorContext
from agentfleet.operator.events import EventRecorder
from agentfleet.operator.index import (
    PoolEntry,
    PoolIndexKey,
    deployment_observation,
    pool_index_entries,
    pool_observation,
)
from agentfleet.operator.kube import Kube
from agentfleet.operator.logic import ScaleNote
from agentfleet.operator.reconciler import Reconciler

GROUP, VERSION = "agentfleet.dev", "v1alpha1"
POOL = "remembered"


@pytest.fixture
async def context(
    kubeconfig: Path, garbage_collector_knows_crds: None
) -> AsyncIterator[OperatorContext]:
    """The plumbing of an operator process, in a namespace no operator of the session
    serves (`namespace`: t-*): this test is the only writer."""
    kube = Kube.connect(str(kubeconfig), 30.0, 10.0)
    events = EventRecorder(kube)
    events.start()
    built = OperatorContext(
        config=OperatorConfig(kubeconfig=str(kubeconfig), all_namespaces=True),
        kube=kube,
        queue=None,
        events=events,
    )
    yield built
    await built.close()


def _create_pool(api_client: client.ApiClient, namespace: str, name: str = POOL) -> dict[str, Any]:
    custom = client.CustomObjectsApi(api_client)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkerPool",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"stage": "development", "minReplicas": 0, "maxReplicas": 3},
    }
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "workerpools", body)
    return _read_pool(api_client, namespace, name)


def _read_pool(api_client: client.ApiClient, namespace: str, name: str = POOL) -> dict[str, Any]:
    pool: dict[str, Any] = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "workerpools", name
    )
    return pool


def _event_count(api_client: client.ApiClient, namespace: str, reason: str) -> int:
    items = (
        client.CoreV1Api(api_client)
        .list_namespaced_event(namespace, field_selector=f"involvedObject.name={POOL}")
        .items
    )
    return sum((event.count or 1) for event in items if event.reason == reason)


async def test_the_autoscaler_writes_a_decision_once_while_its_index_lags(
    api_client: client.ApiClient, namespace: str, context: OperatorContext
) -> None:
    body = _create_pool(api_client, namespace)
    # Made an hour ago: a new pool's missing metrics are not news (the next test).
    scaler = _scaler(context, body, made_ago=timedelta(hours=1))
    target = _target(namespace)
    unavailable = decide(
        AutoscalingSpec(), STATE, Signals.unavailable("Prometheus unreachable"), time.time()
    )

    await scaler.apply(target, unavailable)
    first = _read_pool(api_client, namespace)
    conditions = {c["type"]: c for c in first["status"]["conditions"]}
    assert conditions["MetricsAvailable"]["status"] == "False"

    # The next polls decide the same; the index still shows the pool as created.
    for _ in range(2):
        await scaler.apply(target, unavailable)
    again = _read_pool(api_client, namespace)
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"], (
        "the same decision was written again"
    )
    await context.events.close()
    assert _event_count(api_client, namespace, "MetricsUnavailable") == 1


def _index(
    body: dict[str, Any], made_ago: timedelta | None = None
) -> dict[PoolIndexKey, list[PoolEntry]]:
    """The pool as kopf's index holds it (a list per key), optionally made earlier."""
    entries = pool_index_entries(body)
    if made_ago is not None:
        entry = next(iter(entries.values()))
        assert entry.created is not None
        older = dataclasses.replace(entry, created=entry.created - made_ago)
        entries = {key: older for key in entries}
    return {key: [entry] for key, entry in entries.items()}


def _scaler(
    context: OperatorContext, body: dict[str, Any], made_ago: timedelta | None = None
) -> KubernetesScaler:
    """The autoscaler's Kubernetes side for one pool, listed from a snapshot of kopf's
    index that never catches up (the watch is behind)."""
    meta = body["metadata"]
    directory = PoolDirectory(_index(body, made_ago), {}, {(meta["namespace"], meta["name"])})
    return KubernetesScaler(context, PrometheusSource("http://127.0.0.1:9"), directory)


def _target(namespace: str, name: str = POOL) -> PoolTarget:
    return PoolTarget(
        namespace=namespace, name=name, stage=Stage.DEVELOPMENT, current_replicas=0,
        min_replicas=0, max_replicas=3,
    )  # fmt: skip


STATE = ScaleState(current_replicas=0, min_replicas=0, max_replicas=3)


async def test_a_new_pool_waits_for_its_first_metrics_without_a_warning(
    api_client: client.ApiClient, namespace: str, context: OperatorContext
) -> None:
    """Prometheus has not scraped a new pool's lanes yet: the autoscaler writes nothing
    and posts no MetricsUnavailable; the first metrics are written once, with no
    MetricsAvailable Event (nothing was lost)."""
    body = _create_pool(api_client, namespace)
    scaler = _scaler(context, body)
    target = _target(namespace)
    missing = Signals.unavailable("no agentfleet_queue_depth series")
    for _ in range(2):
        await scaler.apply(target, decide(AutoscalingSpec(), STATE, missing, time.time()))
    untouched = _read_pool(api_client, namespace)
    assert untouched["metadata"]["resourceVersion"] == body["metadata"]["resourceVersion"]

    read = Signals(queue_depth=0, oldest_wait_seconds=0, utilization=0)
    await scaler.apply(target, decide(AutoscalingSpec(), STATE, read, time.time()))
    written = _read_pool(api_client, namespace)
    conditions = {c["type"]: c for c in written["status"]["conditions"]}
    assert conditions["MetricsAvailable"]["status"] == "True"
    await context.events.close()
    assert _event_count(api_client, namespace, "MetricsUnavailable") == 0
    assert _event_count(api_client, namespace, "MetricsAvailable") == 0

    # Past its grace, a pool whose metrics never came says so.
    other = _create_pool(api_client, namespace, name="late")
    late = _scaler(context, other, made_ago=timedelta(seconds=FIRST_METRICS_GRACE_SECONDS))
    await late.apply(
        _target(namespace, "late"), decide(AutoscalingSpec(), STATE, missing, time.time())
    )
    conditions = {
        c["type"]: c for c in _read_pool(api_client, namespace, "late")["status"]["conditions"]
    }
    assert conditions["MetricsAvailable"]["reason"] == "MetricsUnavailable"


async def test_the_reconciler_mirrors_a_deployment_from_what_it_wrote(
    api_client: client.ApiClient, namespace: str, context: OperatorContext
) -> None:
    body = _create_pool(api_client, namespace)
    uid = body["metadata"]["uid"]
    reconciler = Reconciler(context, WorkerEnvironment(redis_url=None))
    assert await reconciler.reconcile_pool(namespace, POOL, [], trigger="create") is None
    reconciled = _read_pool(api_client, namespace)
    assert reconciler.mirrored(namespace, POOL, uid) == pool_observation(reconciled["status"])

    # The controller manager fills in the Deployment's status after the reconciler wrote
    # the pool's; the index (a watch) would still show the pool as created.
    apps = client.AppsV1Api(api_client)

    def available() -> dict[str, Any] | None:
        listed = apps.list_namespaced_deployment(namespace).items
        assert len(listed) == 1, listed
        found: dict[str, Any] = api_client.sanitize_for_serialization(listed[0])
        conditions = (found.get("status") or {}).get("conditions") or []
        return found if any(c["type"] == "Available" for c in conditions) else None

    deployment = wait_for(available, 60, "the Deployment's Available condition")
    await reconciler.mirror_pool_status(namespace, POOL, deployment)
    mirrored = _read_pool(api_client, namespace)
    assert pool_observation(mirrored["status"]) == deployment_observation(deployment)
    assert reconciler.mirrored(namespace, POOL, uid) == deployment_observation(deployment)
    # What the reconciler wrote before (Ready and its reason, the projects) is kept.
    before = {c["type"]: c for c in reconciled["status"]["conditions"]}
    after = {c["type"]: c for c in mirrored["status"]["conditions"]}
    assert after["Ready"] == before["Ready"]
    assert mirrored["status"]["selector"] == reconciled["status"]["selector"]

    # The same Deployment status again: nothing to write.
    await reconciler.mirror_pool_status(namespace, POOL, deployment)
    again = _read_pool(api_client, namespace)
    assert again["metadata"]["resourceVersion"] == mirrored["metadata"]["resourceVersion"]
    # A Deployment controlled by another object (a pool deleted and made again under the
    # name) is not mirrored from the record.
    assert reconciler.mirrored(namespace, POOL, "another-uid") is None


class Waiting:
    """A MetricsSource reporting five items waiting for every pool (what Prometheus would
    answer is tested against the real server in tests/integration/autoscaler)."""

    async def fetch(self, pools: Sequence[PoolTarget]) -> Mapping[PoolKey, Signals]:
        return {
            pool.key: Signals(queue_depth=5, oldest_wait_seconds=20, utilization=0.0)
            for pool in pools
        }


async def test_the_autoscaler_scales_once_while_its_index_lags(
    api_client: client.ApiClient, namespace: str, context: OperatorContext
) -> None:
    """Polls that see the pool at zero replicas after the autoscaler scaled it to one
    (kopf's index behind its own write) neither scale it again nor post ScaledUp again."""
    body = _create_pool(api_client, namespace)
    loop = AutoscalerLoop(Waiting(), _scaler(context, body), registry=CollectorRegistry())

    start = time.time()
    for poll in range(3):
        await loop.run_once(now=start + 15 * poll)
    scaled = _read_pool(api_client, namespace)
    assert scaled["spec"]["replicas"] == 1
    assert scaled["metadata"]["generation"] == body["metadata"]["generation"] + 1, (
        "spec.replicas was written more than once"
    )
    await context.events.close()
    assert _event_count(api_client, namespace, "ScaledUp") == 1


def _scale_pool(api_client: client.ApiClient, namespace: str, replicas: int) -> dict[str, Any]:
    client.CustomObjectsApi(api_client).patch_namespaced_custom_object_scale(
        GROUP, VERSION, namespace, "workerpools", POOL, {"spec": {"replicas": replicas}}
    )
    return _read_pool(api_client, namespace)


async def test_the_reconciler_reads_a_pool_whose_handed_body_was_overtaken(
    api_client: client.ApiClient, namespace: str, context: OperatorContext
) -> None:
    """kopf hands the pool it saw to the reconciler, which saves a read, but a body that
    was overtaken while its reconcile waited (scaled since) is not applied: its older
    spec.replicas would take the new Pods away until the next event."""
    created = _create_pool(api_client, namespace)
    reconciler = Reconciler(context, WorkerEnvironment(redis_url=None))
    reads: list[str] = []
    get_custom = context.kube.get_custom

    async def counted(namespace: str, plural: str, name: str) -> dict[str, Any] | None:
        reads.append(name)
        return await get_custom(namespace, plural, name)

    context.kube.get_custom = counted  # type: ignore[method-assign]
    apps = client.AppsV1Api(api_client)

    def deployed_replicas() -> int:
        replicas: int = apps.read_namespaced_deployment(POOL, namespace).spec.replicas
        return replicas

    assert await reconciler.reconcile_pool(namespace, POOL, [], "create", body=created) is None
    assert reads == [], "the body kopf handed in was read again"
    assert deployed_replicas() == 0

    # Scaled to 2; a reconcile without a body reads it and learns its generation.
    _scale_pool(api_client, namespace, 2)
    await reconciler.reconcile_pool(namespace, POOL, [], "drift")
    assert deployed_replicas() == 2
    # The body of the create event, still queued behind the scale: read, not applied.
    await reconciler.reconcile_pool(namespace, POOL, [], "create", body=created)
    assert reads == [POOL, POOL]
    assert deployed_replicas() == 2

    # The autoscaler has scaled the pool and its note is pending: a body from before
    # (here the one at 2 replicas) is read again, whatever generation it shows.
    at_two = _read_pool(api_client, namespace)
    context.scale_notes[(namespace, POOL)] = ScaleNote(3, "queue_depth=14 > 10", datetime.now(UTC))
    _scale_pool(api_client, namespace, 3)
    await reconciler.reconcile_pool(namespace, POOL, [], "update", body=at_two)
    assert reads == [POOL, POOL, POOL]
    assert deployed_replicas() == 3
    # The current body is used as it is.
    current = _read_pool(api_client, namespace)
    await reconciler.reconcile_pool(namespace, POOL, [], "update", body=current)
    assert reads == [POOL, POOL, POOL]
    assert deployed_replicas() == 3
