"""The imperative shell around `logic` and `children`: read, decide, apply, report.

One `Reconciler` lives in the operator process, built on the `OperatorContext` (its API
client, Redis pool and Event recorder). kopf handlers call it, and so do the watches on
Projects and Deployments whose changes affect a WorkerPool; a lock per object keeps those
paths from interleaving. Status is written with server-side apply as
`agentfleet-reconciler`, which owns the fields in `logic.POOL_RECONCILER_FIELDS` and
`logic.PROJECT_RECONCILER_FIELDS` and no others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import ValidationError
from redis.exceptions import RedisError

from agentfleet.core.api.base import API_GROUP, API_VERSION, Stage
from agentfleet.core.api.conditions import ConditionStatus, find_condition, set_condition
from agentfleet.core.api.project import ProjectSpec, ProjectStatus, StageCounts
from agentfleet.core.api.workerpool import WorkerPoolSpec, WorkerPoolStatus
from agentfleet.core.queue import CONNECTION_ERRORS, WorkQueue
from agentfleet.operator import metrics
from agentfleet.operator.children import (
    Manifest,
    PoolIdentity,
    ServedProject,
    WorkerEnvironment,
    build_children,
    selector_string,
)
from agentfleet.operator.context import OperatorContext
from agentfleet.operator.events import ObjectRef
from agentfleet.operator.index import PoolEntry, pool_observation
from agentfleet.operator.kube import RECONCILER, KubeError, api_message, status_code
from agentfleet.operator.logic import (
    BUDGET_EXHAUSTED,
    PAUSED,
    POOL_RECONCILER_FIELDS,
    PROJECT_RECONCILER_FIELDS,
    READY,
    Problem,
    ProjectInfo,
    QueueView,
    Replicas,
    Resolution,
    contains,
    credentials_problem,
    declared_routes,
    desired_replicas,
    mirror_deployment,
    pool_status,
    project_status,
    resolve_projects,
    secret_names,
    secrets_problem,
    validation_problem,
    webhook_problem,
    with_phase,
)
from agentfleet.operator.written import Written

log = logging.getLogger("agentfleet.operator")

# API errors that mean "this manifest can never be applied as is", as opposed to an
# outage worth retrying.
_PERMANENT_STATUSES = frozenset({400, 403, 422})
MAX_CONCURRENT_RECONCILES = 32
"""Reconciles in flight at once (each a few requests in sequence)."""


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _new_without_pods(child: Manifest, before: Manifest | None) -> bool:
    """A Deployment about to be created at zero replicas."""
    return before is None and child["kind"] == "Deployment" and child["spec"]["replicas"] == 0


def _owned_by(existing: Manifest, uid: str) -> bool:
    return controller_uid(existing) == uid


def resolution_fingerprint(resolution: Resolution) -> tuple[Any, ...]:
    """What of the Projects a pool's children depend on; a change means re-reconcile."""
    return (
        resolution.problem,
        resolution.all_projects,
        tuple(
            (p.name, p.uid, p.paused, p.credentials_secret, p.stages, p.problem is None)
            for p in resolution.projects
        ),
    )


class Reconciler:
    def __init__(
        self,
        context: OperatorContext,
        environment: WorkerEnvironment,
        max_concurrent: int = MAX_CONCURRENT_RECONCILES,
    ) -> None:
        self.context = context
        self.kube = context.kube
        self.events = context.events
        self.environment = environment
        self.queue: WorkQueue | None = context.queue
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}
        # At start-up kopf calls the handler of every object at once; a bound keeps a
        # thousand reconciles from holding their bodies and built manifests all at once.
        self._concurrency = asyncio.Semaphore(max_concurrent)
        # Deployment generation after our last apply, per pool: a watch event showing
        # another generation means someone else changed the spec.
        self.applied_generation: dict[tuple[str, str], int] = {}
        self.pool_inputs: dict[tuple[str, str], tuple[Any, ...]] = {}
        # Each pool's generation and this reconciler's fields of its status (wire form) as
        # of its last write (or read): mirroring a Deployment's status needs no read of
        # the pool, and a watch event still in flight causes no second write (`written`).
        self.pool_written: Written[tuple[int | None, dict[str, Any]]] = Written()
        # The newest generation of each pool this reconciler has read or written: a body
        # handed in by kopf that is older was overtaken while it waited for the lock.
        self.pool_generation: dict[tuple[str, str], int] = {}

    def _lock(self, kind: str, namespace: str, name: str) -> asyncio.Lock:
        return self._locks.setdefault((kind, namespace, name), asyncio.Lock())

    async def project_gone(self, namespace: str, name: str) -> None:
        """A deleted Project's idle lanes stop being published (best effort: a queue
        outage only leaves zero series behind)."""
        self.forget("Project", namespace, name)
        if self.queue is None:
            return
        try:
            await self.queue.forget_lanes(namespace, name)
        except (RedisError, *CONNECTION_ERRORS) as error:
            log.warning("forgetting the lanes of %s/%s failed: %s", namespace, name, error)

    def forget(self, kind: str, namespace: str, name: str) -> None:
        self._locks.pop((kind, namespace, name), None)
        if kind == "WorkerPool":
            self.applied_generation.pop((namespace, name), None)
            self.pool_inputs.pop((namespace, name), None)
            self.pool_written.forget((namespace, name))
            self.pool_generation.pop((namespace, name), None)

    # ------------------------------------------------------------------ pools
    async def reconcile_pool(
        self,
        namespace: str,
        name: str,
        projects: Iterable[ProjectInfo],
        trigger: str,
        body: Manifest | None = None,
    ) -> Problem | None:
        """Bring the pool's children and status in line with its spec.

        `body` is the pool as the caller (kopf) just saw it; without one, or when it may
        have been overtaken (`_usable`), the pool is read.
        Returns the semantic problem that stopped it (also in status as Ready=False), or
        None. Outages raise, for the caller to retry.
        """
        started = time.monotonic()
        try:
            async with self._concurrency, self._lock("WorkerPool", namespace, name):
                problem = await self._reconcile_pool(namespace, name, list(projects), trigger, body)
        except Exception:
            metrics.RECONCILES.labels("WorkerPool", "error").inc()
            raise
        finally:
            metrics.RECONCILE_SECONDS.labels("WorkerPool").observe(time.monotonic() - started)
        metrics.RECONCILES.labels("WorkerPool", "problem" if problem else "ok").inc()
        return problem

    def _saw_generation(self, namespace: str, name: str, generation: int | None) -> None:
        if generation is not None:
            newest = self.pool_generation.get((namespace, name), generation)
            self.pool_generation[(namespace, name)] = max(generation, newest)

    def _usable(self, namespace: str, name: str, body: Manifest | None) -> bool:
        """Whether a body handed in may stand for the pool now. Not when the pool changed
        while the reconcile waited for its turn: the autoscaler has scaled it since (its
        note is still pending), or this reconciler has seen a newer generation. An older
        spec.replicas applied to the Deployment would take Pods away until the next event."""
        if body is None or (namespace, name) in self.context.scale_notes:
            return False
        generation = body.get("metadata", {}).get("generation")
        newest = self.pool_generation.get((namespace, name))
        return generation is not None and (newest is None or generation >= newest)

    async def _reconcile_pool(
        self,
        namespace: str,
        name: str,
        projects: list[ProjectInfo],
        trigger: str,
        handed: Manifest | None = None,
    ) -> Problem | None:
        usable = self._usable(namespace, name, handed)
        body = handed if usable else await self.kube.get_custom(namespace, "workerpools", name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None
        meta = body["metadata"]
        pool = PoolIdentity(namespace, name, meta["uid"])
        generation: int | None = meta.get("generation")
        self._saw_generation(namespace, name, generation)
        status = body.get("status") or {}
        written = self.pool_written.recall((namespace, name), pool.uid) if usable else None
        if written is not None:
            # The body may predate this reconciler's own last status write (a mirror of the
            # Deployment while the reconcile waited); for its own fields that write is
            # the truth.
            status = POOL_RECONCILER_FIELDS.overlay(status, written[1])
        event_ref = ObjectRef("WorkerPool", namespace, name, pool.uid)

        spec: WorkerPoolSpec | None = None
        resolution: Resolution | None = None
        replicas: Replicas | None = None
        deployment: Manifest | None = None
        try:
            spec = WorkerPoolSpec.model_validate(body.get("spec") or {})
        except ValidationError as error:
            problem: Problem | None = validation_problem(error)
        else:
            resolution = resolve_projects(spec, projects)
            self.pool_inputs[(namespace, name)] = resolution_fingerprint(resolution)
            problem = resolution.problem
            if problem is None:
                lookups = {
                    secret: await self.kube.secret(namespace, secret)
                    for secret in secret_names(spec)
                }
                problem = secrets_problem(spec, lookups)
            if problem is None:
                replicas = desired_replicas(spec, resolution)
                served = [
                    ServedProject(p.name, p.credentials_secret)
                    for p in resolution.projects
                    if p.problem is None
                ]
                children = build_children(
                    pool, spec, served, replicas.count, self.environment, resolution.all_projects
                )
                problem, deployment = await self._apply_children(
                    pool, children, replicas, trigger, event_ref
                )
            await self._set_project_owner(body, spec, resolution)

        previous = _parse_status(WorkerPoolStatus, status)
        note = self.context.scale_notes.get((namespace, name))
        updated = pool_status(
            previous,
            name=name,
            generation=generation,
            spec=spec,
            selector=selector_string(name),
            resolution=resolution,
            replicas=replicas,
            problem=problem,
            deployment=deployment,
            now=_now(),
            scale_note=note,
        )
        if updated != previous:
            await self._write_pool_status(namespace, name, updated)
        else:
            owned = POOL_RECONCILER_FIELDS.select(previous.to_wire())
            self.pool_written.remember((namespace, name), pool.uid, (generation, owned))
        if note is not None and updated.last_scale_reason == note.reason:
            self.context.scale_notes.pop((namespace, name), None)
        before = find_condition(previous.conditions, READY)
        if problem is not None and (
            before is None or (before.reason, before.message) != (problem.reason, problem.message)
        ):
            self.events.warning(event_ref, problem.reason, problem.message, RECONCILER)
            log.warning(
                "WorkerPool %s/%s is not ready: %s: %s",
                namespace,
                name,
                problem.reason,
                problem.message,
            )
        return problem

    async def _apply_children(
        self,
        pool: PoolIdentity,
        children: list[Manifest],
        replicas: Replicas,
        trigger: str,
        event_ref: ObjectRef,
    ) -> tuple[Problem | None, Manifest | None]:
        # Read at once: one round trip of latency instead of six.
        existing: list[Manifest | None] = list(
            await asyncio.gather(
                *(
                    self.kube.get(
                        child["apiVersion"],
                        child["kind"],
                        pool.namespace,
                        child["metadata"]["name"],
                    )
                    for child in children
                )
            )
        )
        for child, current in zip(children, existing, strict=True):
            if current is not None and not _owned_by(current, pool.uid):
                return (
                    Problem(
                        "NameConflict",
                        f"{child['kind']} {child['metadata']['name']} already exists and is not "
                        "owned by this WorkerPool; delete or rename it",
                    ),
                    None,
                )

        # Children already as desired are left alone (most resyncs change nothing).
        pending = [
            (child, before)
            for child, before in zip(children, existing, strict=True)
            if before is None or not contains(before, child)
        ]
        deployment = existing[-1]
        created: list[str] = []
        # The Deployment carries everything the user controls (image, resources, env,
        # node selector); the API server vets it before anything is written, so a spec it
        # refuses leaves no children behind at all: a dry run first, then everything in
        # order (the Deployment last, so its Pods find their ServiceAccount and start
        # behind their NetworkPolicy). A new Deployment at zero replicas starts no Pod,
        # so it is applied first instead and is its own dry run.
        passes: list[tuple[bool, list[tuple[Manifest, Manifest | None]]]]
        if pending and _new_without_pods(*pending[-1]):
            passes = [(False, [pending[-1], *pending[:-1]])]
        else:
            passes = [(True, pending), (False, pending)]
        for dry_run, batch in passes:
            for child, before in batch:
                if dry_run and child["kind"] != "Deployment":
                    continue
                kind, child_name = child["kind"], child["metadata"]["name"]
                try:
                    applied = await self.kube.apply(child, dry_run)
                except KubeError as error:
                    if status_code(error) in _PERMANENT_STATUSES:
                        message = f"{kind} {child_name}: {api_message(error)}"
                        return Problem("ApplyFailed", message), None
                    raise
                if not dry_run:
                    if before is None:
                        created.append(f"{kind} {child_name}")
                    else:
                        self._report_change(
                            kind, child_name, before, applied, replicas, trigger, event_ref
                        )
                    if kind == "Deployment":
                        deployment = applied
        if created:
            # One Event for what one pass created (a new pool's children, or the one
            # that was deleted): a thousand new pools post a thousand Events, not six.
            message = "Created " + ", ".join(created)
            self.events.normal(event_ref, "Created", message, RECONCILER)
            log.info("%s/%s: %s", pool.namespace, pool.name, message)
        if deployment is None or deployment["kind"] != "Deployment":
            raise RuntimeError("build_children returned no Deployment")
        self.applied_generation[(pool.namespace, pool.name)] = deployment["metadata"]["generation"]
        return None, deployment

    def _report_change(
        self,
        kind: str,
        name: str,
        before: Manifest,
        after: Manifest,
        replicas: Replicas,
        trigger: str,
        event_ref: ObjectRef,
    ) -> None:
        if before["metadata"]["resourceVersion"] == after["metadata"]["resourceVersion"]:
            return
        if trigger in ("drift", "resync"):
            metrics.DRIFT_CORRECTIONS.labels(kind).inc()
            self.events.normal(
                event_ref,
                "DriftCorrected",
                f"Restored {kind} {name} after a change made outside the operator",
                RECONCILER,
            )
            log.info("restored drifted %s %s/%s", kind, after["metadata"]["namespace"], name)
        if kind != "Deployment":
            return
        old = before.get("spec", {}).get("replicas")
        if old != replicas.count:
            self.events.normal(
                event_ref,
                "Scaled",
                f"Deployment {name} replicas {old} -> {replicas.count}: {replicas.reason}",
                RECONCILER,
            )
        if before.get("metadata", {}).get("generation") != after["metadata"].get(
            "generation"
        ) and before.get("spec", {}).get("template") != after.get("spec", {}).get("template"):
            self.events.normal(
                event_ref,
                "RollingOut",
                f"Deployment {name} pod template changed; rolling out",
                RECONCILER,
            )

    async def _set_project_owner(
        self, body: Manifest, spec: WorkerPoolSpec, resolution: Resolution | None
    ) -> None:
        """A pool dedicated to one Project is owned by it (not as controller), so deleting
        the Project garbage-collects the pool and, through it, the pool's children.

        A dedicated pool whose Project is missing keeps its reference: the Project is most
        likely being deleted, and removing the reference would orphan the pool before the
        garbage collector gets to it.
        """
        meta = body["metadata"]
        references = list(meta.get("ownerReferences") or [])
        wanted = [r for r in references if r.get("kind") != "Project"]
        if spec.project is not None:
            if resolution is None or not resolution.projects:
                return
            project = resolution.projects[0]
            wanted.append(
                {
                    "apiVersion": f"{API_GROUP}/{API_VERSION}",
                    "kind": "Project",
                    "name": project.name,
                    "uid": project.uid,
                }
            )
        if wanted != references:
            await self.kube.patch_custom(
                meta["namespace"],
                "workerpools",
                meta["name"],
                {"metadata": {"ownerReferences": wanted}},
            )

    def mirrored(self, namespace: str, name: str, uid: str) -> tuple[Any, ...] | None:
        """What the pool's status says of its Deployment as this reconciler recently
        wrote it (`index.pool_observation`); None when it has no recent record."""
        written = self.pool_written.recall((namespace, name), uid)
        return None if written is None else pool_observation(written[1])

    async def mirror_pool_status(self, namespace: str, name: str, deployment: Manifest) -> None:
        """Copy the Deployment's replica counts and availability into the pool's status."""
        async with self._lock("WorkerPool", namespace, name):
            written = self.pool_written.recall((namespace, name), controller_uid(deployment))
            if written is not None:
                # Only this reconciler's fields: they are all it compares and writes.
                generation, owned = written
                previous = _parse_status(WorkerPoolStatus, owned)
            else:
                current = await self.kube.get_custom(namespace, "workerpools", name)
                if current is None:
                    return
                previous = _parse_status(WorkerPoolStatus, current.get("status"))
                generation = current["metadata"].get("generation")
            updated = mirror_deployment(previous, deployment, generation, _now())
            if updated != previous:
                await self._write_pool_status(namespace, name, updated)

    async def _write_pool_status(self, namespace: str, name: str, status: WorkerPoolStatus) -> None:
        """Apply the reconciler's fields of `status` (all of them: one left out would be
        removed), and remember its fields as the API server answered with them."""
        owned = POOL_RECONCILER_FIELDS.select(status.to_wire())
        written = await self.kube.apply_status(namespace, "workerpools", name, owned, RECONCILER)
        if written is None:
            self.pool_written.forget((namespace, name))
            return
        meta = written["metadata"]
        self._saw_generation(namespace, name, meta.get("generation"))
        self.pool_written.remember(
            (namespace, name),
            meta["uid"],
            (meta.get("generation"), POOL_RECONCILER_FIELDS.select(written.get("status") or {})),
        )

    async def _write_project_status(self, namespace: str, name: str, status: ProjectStatus) -> None:
        owned = PROJECT_RECONCILER_FIELDS.select(status.to_wire())
        await self.kube.apply_status(namespace, "projects", name, owned, RECONCILER)

    def deployment_drifted(self, namespace: str, pool: str, generation: int | None) -> bool:
        applied = self.applied_generation.get((namespace, pool))
        # Generations only grow; an older one is a watch event that predates our apply.
        return applied is not None and generation is not None and generation > applied

    def pools_to_refresh(
        self, pools: Iterable[PoolEntry], projects: list[ProjectInfo]
    ) -> list[PoolEntry]:
        """Pools whose view of the namespace's Projects changed since their last
        reconcile (or that named a Project that is gone)."""
        stale = []
        for entry in pools:
            if entry.spec is None:
                continue
            fingerprint = resolution_fingerprint(resolve_projects(entry.spec, projects))
            if self.pool_inputs.get((entry.namespace, entry.name)) != fingerprint:
                stale.append(entry)
        return stale

    # --------------------------------------------------------------- projects
    async def reconcile_project(
        self, namespace: str, name: str, pools: Iterable[PoolEntry], projects: list[ProjectInfo]
    ) -> Problem | None:
        started = time.monotonic()
        try:
            async with self._lock("Project", namespace, name):
                problem = await self._reconcile_project(namespace, name, list(pools), projects)
        except Exception:
            metrics.RECONCILES.labels("Project", "error").inc()
            raise
        finally:
            metrics.RECONCILE_SECONDS.labels("Project").observe(time.monotonic() - started)
        metrics.RECONCILES.labels("Project", "problem" if problem else "ok").inc()
        return problem

    async def _reconcile_project(
        self, namespace: str, name: str, pools: list[PoolEntry], projects: list[ProjectInfo]
    ) -> Problem | None:
        body = await self.kube.get_custom(namespace, "projects", name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None
        meta = body["metadata"]
        generation: int | None = meta.get("generation")
        event_ref = ObjectRef("Project", namespace, name, meta["uid"])
        now = _now()
        previous = _parse_status(ProjectStatus, body.get("status"))
        try:
            spec = ProjectSpec.model_validate(body.get("spec") or {})
        except ValidationError as error:
            invalid = validation_problem(error)
            failed = _failed_project_status(previous, invalid, generation, now)
            if failed != previous:
                await self._write_project_status(namespace, name, failed)
            return invalid

        secret = spec.credentials_secret_ref.name
        problem = credentials_problem(secret, await self.kube.secret(namespace, secret))
        webhook_ref = spec.intake.webhook.secret_ref
        if problem is None and spec.intake.webhook.enabled and webhook_ref is not None:
            lookup = await self.kube.secret(namespace, webhook_ref.name)
            problem = webhook_problem(spec, lookup)
        serving_specs = [
            (entry.name, entry.spec)
            for entry in pools
            if entry.spec is not None
            and name in {p.name for p in resolve_projects(entry.spec, projects).projects}
        ]
        serving = [(pool, pool_spec.stage) for pool, pool_spec in serving_specs]
        routes = declared_routes(spec, (pool_spec for _, pool_spec in serving_specs))
        queue = await self._sync_queue(namespace, name, spec, routes, event_ref)

        updated = project_status(
            previous,
            generation=generation,
            spec=spec,
            problem=problem,
            queue=queue,
            pools=serving,
            now=now,
        )
        if updated != previous:
            await self._write_project_status(namespace, name, updated)
        self._report_project_transitions(event_ref, previous, updated)
        return problem

    async def _sync_queue(
        self,
        namespace: str,
        project: str,
        spec: ProjectSpec,
        routes: list[tuple[Stage, str]],
        event_ref: ObjectRef,
    ) -> QueueView:
        """Hold or release the project's queued work to match spec.paused, hand the queue
        its daily budgets (claims enforce them), declare its lanes (so idle ones publish
        zero), and read its counts and today's spend."""
        if self.queue is None:
            return QueueView(configured=False)
        paused = spec.paused
        budgets = spec.budgets
        try:
            await self.queue.set_budget(
                namespace,
                project,
                None if budgets is None else budgets.tokens_per_day,
                None if budgets is None else budgets.cost_per_day_usd,
            )
            day = await self.queue.day_spend(namespace, project)
            metrics.BUDGET_EXHAUSTED.labels(namespace, project).set(
                1 if day.exhausted is not None else 0
            )
            await self.queue.declare_lanes(namespace, project, routes)
            held = project in await self.queue.held_projects(namespace)
            if paused and not held:
                await self.queue.hold(namespace, project)
                self.events.normal(
                    event_ref,
                    "WorkHeld",
                    "Emergency stop: queued work is held in the queue",
                    RECONCILER,
                )
            elif held and not paused:
                await self.queue.resume(namespace, project)
                self.events.normal(
                    event_ref,
                    "WorkReleased",
                    "Emergency stop lifted: held work is delivered again",
                    RECONCILER,
                )
            stats = await self.queue.stats(namespace, project)
        except (RedisError, *CONNECTION_ERRORS) as error:
            log.warning("work queue unavailable for %s/%s: %s", namespace, project, error)
            return QueueView(configured=True, error=f"{type(error).__name__}: {error}")
        counts = {
            stage: StageCounts.model_validate(figures.model_dump())
            for stage, figures in stats.stages.items()
        }
        return QueueView(configured=True, stages=counts, held=stats.held, budget=day)

    def _report_project_transitions(
        self, event_ref: ObjectRef, previous: ProjectStatus, updated: ProjectStatus
    ) -> None:
        for kind in (READY, PAUSED, BUDGET_EXHAUSTED):
            before = find_condition(previous.conditions, kind)
            after = find_condition(updated.conditions, kind)
            if after is None or (before is not None and before.status == after.status):
                continue
            if kind == READY and after.status is ConditionStatus.FALSE:
                self.events.warning(event_ref, after.reason, after.message, RECONCILER)
            elif kind == BUDGET_EXHAUSTED and after.status is ConditionStatus.TRUE:
                self.events.warning(event_ref, "BudgetExhausted", after.message, RECONCILER)
            elif kind == BUDGET_EXHAUSTED and before is not None:
                self.events.normal(
                    event_ref,
                    "BudgetRenewed",
                    f"queued work is delivered again ({after.message})",
                    RECONCILER,
                )
            elif kind == PAUSED and (before is not None or after.status is ConditionStatus.TRUE):
                reason = "Paused" if after.status is ConditionStatus.TRUE else "Resumed"
                self.events.normal(event_ref, reason, after.message, RECONCILER)


def controller_uid(child: Manifest) -> str | None:
    """The uid of the object that controls `child` (its controller ownerReference)."""
    for ref in child.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


S = TypeVar("S", WorkerPoolStatus, ProjectStatus)


def _parse_status(model: type[S], raw: Mapping[str, Any] | None) -> S:
    """The status as stored; one the models cannot read (written by an older version or
    by hand) is rebuilt from scratch rather than failing every reconcile."""
    try:
        return model.model_validate(raw or {})
    except ValidationError:
        return model()


def _failed_project_status(
    previous: ProjectStatus, problem: Problem, generation: int | None, now: datetime
) -> ProjectStatus:
    return with_phase(
        previous.model_copy(
            update={
                "observed_generation": generation,
                "conditions": set_condition(
                    previous.conditions,
                    READY,
                    False,
                    problem.reason,
                    problem.message,
                    now,
                    generation,
                ),
            }
        )
    )
