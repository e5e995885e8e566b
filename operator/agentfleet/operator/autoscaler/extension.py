"""The autoscaler as an operator extension: the kopf registrations that run the
`AutoscalerLoop` in the operator process with the `KubernetesScaler`, and the activation
of pools at zero when the queue announces an arrival.

Which pools the loop sees: those this operator currently serves. A kopf daemon per
WorkerPool adds the pool to the set while it runs; kopf stops every daemon when the
operator pauses for a peer with a higher priority (and on shutdown and deletion), and
starts them again on resume, so only the active replica of a peered deployment scales.
The pools themselves come from the operator's one WorkerPool index (`pool_index`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf
from redis.exceptions import RedisError

from agentfleet.core.api.base import API_GROUP, API_VERSION
from agentfleet.core.queue import Arrival, WorkQueue
from agentfleet.operator.autoscaler.loop import AutoscalerLoop
from agentfleet.operator.autoscaler.pools import PoolKey
from agentfleet.operator.autoscaler.prometheus import PrometheusSource
from agentfleet.operator.autoscaler.reporting import PAUSED_REPLICAS_ANNOTATION
from agentfleet.operator.autoscaler.scaler import KubernetesScaler, PoolDirectory
from agentfleet.operator.config import OperatorConfig
from agentfleet.operator.context import context_of
from agentfleet.operator.index import PoolEntry, PoolIndexKey
from agentfleet.operator.logic import ProjectInfo

log = logging.getLogger("agentfleet.operator.autoscaler")

WORKERPOOLS = (API_GROUP, API_VERSION, "workerpools")


async def activate_on_arrivals(
    queue: WorkQueue, loop: AutoscalerLoop, stop: asyncio.Event, batch_seconds: float = 0.05
) -> None:
    """Scale pools at zero the moment the queue reports an item for them. Arrivals that
    come together (a burst) are handled as one batch; a lost Redis connection is retried
    (what arrives meanwhile is picked up by the pools' regular polls)."""
    while not stop.is_set():
        try:
            arrivals = queue.arrivals()
            batch: list[Arrival] = []
            pending = asyncio.ensure_future(anext(arrivals))
            while not stop.is_set():
                done, _ = await asyncio.wait(
                    {pending}, timeout=None if not batch else batch_seconds
                )
                if pending in done:
                    batch.append(pending.result())
                    pending = asyncio.ensure_future(anext(arrivals))
                    continue
                await loop.activate(batch)
                batch = []
        except (RedisError, OSError) as exc:
            log.warning("arrivals from the queue lost (%s); listening again in 1 s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


def install_autoscaler(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    """Register the autoscaler on the operator's registry (an operator `Extension`).

    The loop runs as a background task from startup to cleanup. It scales the pools whose
    `autoscaler_member` daemon runs; kopf runs daemons only while this operator is active
    (not paused for a peer with a higher priority), so a standby replica lists no pools
    and neither patches nor posts anything.
    """
    if config.prometheus_url is None:
        raise ValueError("the autoscaler needs a Prometheus URL")
    prometheus_url = config.prometheus_url
    active: set[PoolKey] = set()
    running: dict[str, Any] = {}

    @kopf.daemon(*WORKERPOOLS, id="autoscaler_member", cancellation_timeout=5.0, registry=registry)
    async def autoscaler_member(
        *, namespace: str | None, name: str, stopped: kopf.DaemonStopped, **_: Any
    ) -> None:
        key = (namespace or "", name)
        active.add(key)
        try:
            await stopped.wait()
        finally:
            active.discard(key)

    # Change handlers, not a watch-event handler: they run once per change of the spec or
    # the annotations, never again for the stale events still in flight after the pin.
    @kopf.on.resume(
        *WORKERPOOLS,
        id="autoscaler_pin",
        annotations={PAUSED_REPLICAS_ANNOTATION: kopf.PRESENT},
        registry=registry,
    )
    @kopf.on.create(
        *WORKERPOOLS,
        id="autoscaler_pin",
        annotations={PAUSED_REPLICAS_ANNOTATION: kopf.PRESENT},
        registry=registry,
    )
    @kopf.on.update(
        *WORKERPOOLS,
        id="autoscaler_pin",
        annotations={PAUSED_REPLICAS_ANNOTATION: kopf.PRESENT},
        registry=registry,
    )
    async def autoscaler_pin(*, body: kopf.Body, **_: Any) -> None:
        scaler: KubernetesScaler | None = running.get("scaler")
        if scaler is not None:
            await scaler.pin(PoolEntry.from_body(body))

    @kopf.on.startup(id="autoscaler_start", registry=registry)
    async def autoscaler_start(memo: kopf.Memo, **kwargs: Any) -> None:
        context = context_of(memo)
        pools: kopf.Index[PoolIndexKey, PoolEntry] = kwargs["pool_index"]
        projects: kopf.Index[str, ProjectInfo] = kwargs["project_index"]
        source = PrometheusSource(prometheus_url)
        directory = PoolDirectory(pools, projects, active)
        scaler = KubernetesScaler(context, source, directory)
        # Its metrics join the default registry, which the operator's /metrics serves.
        loop = AutoscalerLoop(source, scaler)
        stop = asyncio.Event()
        running.update(
            scaler=scaler,
            source=source,
            stop=stop,
            task=asyncio.create_task(loop.run(stop), name="autoscaler loop"),
        )
        if context.queue is not None:
            running.update(
                activation=asyncio.create_task(
                    activate_on_arrivals(context.queue, loop, stop), name="activation on arrival"
                ),
            )
        log.info("autoscaler started: Prometheus %s", prometheus_url)

    @kopf.on.cleanup(id="autoscaler_stop", registry=registry)
    async def autoscaler_stop(**_: Any) -> None:
        if "task" not in running:
            return
        running["stop"].set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(running["task"], timeout=10)
        if "activation" in running:
            running["activation"].cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running["activation"]
        await running["source"].aclose()
