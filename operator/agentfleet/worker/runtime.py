"""The worker loop: claim, run the handler while heartbeating, settle, repeat; drain on stop.

One item at a time per worker process: a pod is the unit the autoscaler adds and removes,
and "busy" must mean one agent at work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from prometheus_client import start_http_server

from agentfleet.core.podenv import WorkerSettings
from agentfleet.core.queue import (
    CONNECTION_ERRORS,
    Claim,
    FailOutcome,
    RetryPolicy,
    Subscription,
    WorkQueue,
    next_stage,
)
from agentfleet.core.queue.models import BudgetExhausted, utcnow
from agentfleet.worker.budget import ProjectBudget
from agentfleet.worker.handlers import Handler, HandlerContext, HandlerResult
from agentfleet.worker.metrics import WorkerMetrics, exposition_registry

log = logging.getLogger("agentfleet.worker")

T = TypeVar("T")

_FAIL_OUTCOMES = {
    FailOutcome.RETRY_SCHEDULED: "retried",
    FailOutcome.DEAD_LETTERED: "dead_lettered",
    FailOutcome.STALE: "lost",
}


def _item_directory(root: Path | None, shared: bool = False) -> Path:
    """A fresh directory for one item under `root` (the system temp dir when unset), the
    owner's alone, or with `shared` also the group's: the sandbox container runs as
    another user in the Pod's group (fsGroup) and works in the item's workspace."""
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="agentfleet-item-", dir=root))
    if shared:
        directory.chmod(0o2770)  # setgid: what is made inside keeps the Pod's group
    return directory


class Worker:
    def __init__(
        self,
        settings: WorkerSettings,
        queue: WorkQueue,
        handler: Handler,
        metrics: WorkerMetrics,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.handler = handler
        self.metrics = metrics
        self.subscription = Subscription(
            namespace=settings.namespace,
            stage=settings.stage,
            consumer=settings.pod_name,
            specialties=settings.specialties,
            projects=settings.projects,
        )
        self._stopping = asyncio.Event()

    def request_stop(self) -> None:
        """Stop claiming; the current item gets the drain grace period (SIGTERM)."""
        if not self._stopping.is_set():
            log.info("drain requested: no new claims")
        self._stopping.set()

    async def run(self) -> None:
        """Process items until asked to stop; returns once drained."""
        log.info(
            "worker %s serving %s/%s (specialties %s, projects %s)",
            self.settings.pod_name,
            self.settings.namespace,
            self.settings.stage.value,
            ",".join(self.settings.specialties) or "-",
            ",".join(self.settings.projects) or "all",
        )
        while not self._stopping.is_set():
            try:
                claim = await self.queue.claim(self.subscription, wait=self.queue.poll_interval)
            except CONNECTION_ERRORS as exc:
                log.warning("cannot reach Redis (%s); retrying", exc)
                await self._pause(1.0)
                continue
            if claim is None:
                continue
            if self._stopping.is_set():
                await self._release(claim)
                break
            await self._process(claim)
        log.info("drained; exiting")

    async def _release(self, claim: Claim) -> None:
        await self._settle(lambda: self.queue.release(claim))
        self.metrics.processed("released")

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _process(self, claim: Claim) -> None:
        item = claim.item
        self.metrics.busy.set(1)
        self.metrics.wait_seconds.observe(claim.wait_seconds)
        logger = logging.LoggerAdapter(log, {"item": item.id})
        logger.info(
            "claimed %s (%s, attempt %d%s)",
            item.id,
            item.lane.value,
            item.attempts,
            ", reclaimed" if claim.reclaimed else "",
        )
        workspace = _item_directory(self.settings.workspace_root, shared=True)
        private = _item_directory(self.settings.private_root)
        draining = asyncio.Event()
        context = HandlerContext(
            workspace=workspace,
            private=private,
            logger=logger,
            settings=self.settings,
            pipeline=item.pipeline,
            next_stage=next_stage(item),
            max_attempts=self.queue.retry_policy.attempts_for(item.stage),
            draining=draining,
            budget=ProjectBudget(self.queue, item.namespace, item.project),
        )
        started = time.monotonic()
        work = asyncio.create_task(self.handler.handle(item, context))
        keep_alive = asyncio.create_task(self._keep_alive(claim, work))
        try:
            outcome = await self._see_through(claim, work, context)
        finally:
            keep_alive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keep_alive
            shutil.rmtree(workspace, ignore_errors=True)
            shutil.rmtree(private, ignore_errors=True)
            self.metrics.busy.set(0)
        self.metrics.processing_seconds.observe(time.monotonic() - started)
        self.metrics.processed(outcome)
        logger.info("%s: %s", item.id, outcome)

    async def _see_through(
        self, claim: Claim, work: asyncio.Task[HandlerResult], context: HandlerContext
    ) -> str:
        stop = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if not work.done():
            grace = self.settings.drain_grace_seconds
            context.deadline = utcnow() + timedelta(seconds=grace)
            context.draining.set()
            log.info("draining: %s may run %.0fs more", claim.item.id, grace)
            await asyncio.wait({work}, timeout=grace)
            if not work.done():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work
                await self._settle(lambda: self.queue.release(claim))
                return "released"
        if work.cancelled():
            return "lost"
        error = work.exception()
        if isinstance(error, BudgetExhausted):
            # Not a failure: the project's day is spent. The item waits in the queue, which
            # delivers none of the project's items until the day turns.
            log.warning("%s released: %s", claim.item.id, error)
            await self._settle(lambda: self.queue.release(claim))
            return "budget_exhausted"
        if error is not None:
            log.error("handler raised on %s", claim.item.id, exc_info=error)
        result = HandlerResult.failed(f"handler raised {error!r}") if error else work.result()
        if result.outcome == "succeeded":
            completed = await self._settle(
                lambda: self.queue.complete(claim, result.follow_ups, result.output)
            )
            return "succeeded" if completed.recorded else "lost"
        failed = await self._settle(
            lambda: self.queue.fail(claim, result.error or "failed", result.retryable)
        )
        return _FAIL_OUTCOMES[failed.outcome]

    async def _keep_alive(self, claim: Claim, work: asyncio.Task[HandlerResult]) -> None:
        while not work.done():
            await asyncio.sleep(self.settings.heartbeat_interval)
            try:
                owned = await self.queue.heartbeat(claim)
            except CONNECTION_ERRORS as exc:
                log.warning("heartbeat for %s failed (%s); retrying", claim.item.id, exc)
                continue
            if not owned:
                log.warning("%s was taken over or completed elsewhere; stopping it", claim.item.id)
                work.cancel()
                return

    async def _settle(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Retry through a Redis outage: every settling script is idempotent.

        Past the heartbeat timeout the item belongs to someone else anyway, so the error
        propagates and the process exits for its pod to restart.
        """
        deadline = time.monotonic() + self.settings.heartbeat_timeout
        delay = 0.05
        while True:
            try:
                return await operation()
            except CONNECTION_ERRORS as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning("cannot settle with Redis (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)


async def serve(settings: WorkerSettings, handler: Handler) -> None:
    """Run a worker process until SIGTERM/SIGINT, serving its metrics meanwhile."""
    # The checkout is shared with the sandbox container, whose user is in this one's
    # group: what either writes, the other may change.
    os.umask(0o002)
    queue = WorkQueue.from_url(
        settings.redis_url,
        heartbeat_timeout=settings.heartbeat_timeout,
        retry_policy=RetryPolicy(
            default_max_attempts=settings.max_attempts,
            base_delay_seconds=settings.retry_base_delay,
        ),
    )
    metrics = WorkerMetrics(settings.namespace, settings.pool, settings.pod_name, settings.stage)
    server = None
    if settings.metrics_port:
        server, _ = start_http_server(
            settings.metrics_port, registry=exposition_registry(metrics.registry)
        )
    worker = Worker(settings, queue, handler, metrics)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, worker.request_stop)
    try:
        await worker.run()
    finally:
        await queue.close()
        if server is not None:
            server.shutdown()
