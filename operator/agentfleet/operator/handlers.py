"""The kopf operator: handler registration, settings, and `run`.

Handlers are thin: they pick the right objects out of kopf's indexes and call the
`Reconciler`. Everything is registered on a private registry (not kopf's global one), so
importing this module has no side effects and the autoscaler and intake add their
handlers to the same registry (`create_registry(config, extensions=...)`).

The first startup handler builds the `OperatorContext` (one API client, one Redis pool,
one Event recorder) into `memo["context"]`; every handler and extension uses it. kopf
runs startup handlers in the order they are registered, so extensions find it there.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import kopf
import prometheus_client

from agentfleet.core.api.base import API_GROUP, API_VERSION, LABEL_POOL
from agentfleet.core.queue import Lane
from agentfleet.operator.children import (
    FIELD_MANAGER,
    LABEL_MANAGED_BY,
    Manifest,
    WorkerEnvironment,
    queue_egress_rules,
)
from agentfleet.operator.config import OperatorConfig
from agentfleet.operator.context import (
    CONNECT_TIMEOUT_SECONDS,
    REQUEST_TIMEOUT_SECONDS,
    OperatorContext,
    context_of,
)
from agentfleet.operator.events import ObjectRef
from agentfleet.operator.index import (
    PoolEntry,
    PoolIndexKey,
    deployment_observation,
    namespace_pools,
    namespace_projects,
    pool_index_entries,
)
from agentfleet.operator.intake import install_intake
from agentfleet.operator.kube import (
    RECONCILER,
    TRANSPORT_ERRORS,
    KubeError,
    api_message,
    status_code,
)
from agentfleet.operator.logic import ProjectInfo
from agentfleet.operator.namespaces import serve_namespaces_listed_on_watch
from agentfleet.operator.persistence import DiffBaseInMemory, ProgressInMemory
from agentfleet.operator.reconciler import Reconciler
from agentfleet.operator.session import bounded_session, connection_limit

log = logging.getLogger("agentfleet.operator")

WORKERPOOLS = (API_GROUP, API_VERSION, "workerpools")
PROJECTS = (API_GROUP, API_VERSION, "projects")
DEPLOYMENTS = ("apps", "v1", "deployments")
RETRY_DELAY_SECONDS = 5.0
WATCH_SERVER_TIMEOUT_SECONDS = 300
"""The API server ends each watch after this long; kopf starts a new one."""
WATCH_CLIENT_TIMEOUT_SECONDS = 330
"""kopf gives up on a watch that outlives the server's end by this much."""

Extension = Callable[[kopf.OperatorRegistry, OperatorConfig], None]
"""Registers more handlers on the operator's registry (the autoscaler does)."""


def _projects(kwargs: Mapping[str, Any], namespace: str | None) -> list[ProjectInfo]:
    """The namespace's Projects from the `project_index` kopf passes to every handler."""
    index: kopf.Index[str, ProjectInfo] = kwargs["project_index"]
    return namespace_projects(index, namespace or "")


def _pools(kwargs: Mapping[str, Any], namespace: str | None) -> list[PoolEntry]:
    index: kopf.Index[PoolIndexKey, PoolEntry] = kwargs["pool_index"]
    return namespace_pools(index, namespace or "")


async def _retrying(action: Awaitable[Any]) -> Any:
    """Outages become kopf.TemporaryError: kopf retries the handler after a delay."""
    try:
        return await action
    except KubeError as error:
        raise kopf.TemporaryError(
            f"Kubernetes API {status_code(error)}: {api_message(error)}", delay=RETRY_DELAY_SECONDS
        ) from error
    except TRANSPORT_ERRORS as error:
        raise kopf.TemporaryError(str(error), delay=RETRY_DELAY_SECONDS) from error


def _reconciler(memo: Any) -> Reconciler:
    reconciler: Reconciler = memo["reconciler"]
    return reconciler


def create_registry(
    config: OperatorConfig, extensions: Sequence[Extension] = ()
) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    # ------------------------------------------------------------- lifecycle
    @kopf.on.login(id="login", registry=registry)
    async def login(**kwargs: Any) -> kopf.AiohttpSession | None:
        # kopf's own readers of the pod's token or $KUBECONFIG (run() sets it from
        # --kubeconfig); no client library involved. The session they describe gets a
        # bound on its connections (agentfleet/operator/session.py).
        info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
        return None if info is None else bounded_session(info, connection_limit(config))

    @kopf.on.startup(id="start", registry=registry)
    async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        # kopf's own bookkeeping never goes into status, whose fields our writers own
        # (docs/operator.md, "Who writes what"): WorkerPools' records stay in memory,
        # Projects' in annotations under our prefix (persistence.py), so a new pool
        # costs no PATCH of kopf's own.
        progress = ProgressInMemory(prefix=API_GROUP)
        diffbase = DiffBaseInMemory(prefix=API_GROUP, key="last-handled-configuration")
        settings.persistence.progress_storage = progress
        settings.persistence.diffbase_storage = diffbase
        memo["kopf_records"] = (progress, diffbase)
        # Events are posted explicitly; kopf's per-handler INFO chatter stays in the log.
        settings.posting.level = logging.WARNING
        # Every network wait has a deadline (dask-kubernetes sets all four, citing watches
        # that hang silently): the API server ends a watch after server_timeout, the
        # client gives up on it a little later, and connects and single requests fail
        # fast and are retried instead of stalling a handler or an index.
        # Our own client uses the same request and connect deadlines.
        settings.watching.server_timeout = WATCH_SERVER_TIMEOUT_SECONDS
        settings.watching.client_timeout = WATCH_CLIENT_TIMEOUT_SECONDS
        settings.watching.connect_timeout = CONNECT_TIMEOUT_SECONDS
        settings.networking.connect_timeout = CONNECT_TIMEOUT_SECONDS
        settings.networking.request_timeout = REQUEST_TIMEOUT_SECONDS
        context = OperatorContext.create(config)
        memo["context"] = context
        kube = context.kube
        if config.peering is not None:
            scopes: Iterable[str | None] = config.namespaces or [None]
            for namespace in scopes:
                if await kube.ensure_peering(config.peering, namespace):
                    log.info("created peering object %s in %s", config.peering, namespace or "*")
        queue = context.queue
        environment = WorkerEnvironment(
            redis_url=config.redis_url,
            queue_egress=(
                await _queue_egress(config.redis_url, context) if config.redis_url else ()
            ),
            blocked_cidrs=config.blocked_cidrs,
            dns_cidrs=config.dns_cidrs,
        )
        if config.redis_url and not environment.queue_egress:
            log.warning(
                "the work queue's address could not be found: worker Pods' NetworkPolicy "
                "will not let them reach it"
            )
        memo["reconciler"] = Reconciler(context, environment)
        if config.metrics_port:
            prometheus_client.start_http_server(config.metrics_port)
        log.info(
            "operator started: namespaces=%s redis=%s peering=%s",
            "*" if config.all_namespaces else ",".join(config.namespaces),
            "on" if queue else "off",
            config.peering or "standalone",
        )

    # --------------------------------------------------------------- indexes
    # One per kind, each object parsed once per change. Coroutines, so kopf calls them
    # on the event loop: a plain function would be sent to a thread for every watch event.
    @kopf.index(*PROJECTS, id="project_index", registry=registry)
    async def project_index(
        *, body: kopf.Body, namespace: str | None, **_: Any
    ) -> dict[str, ProjectInfo]:
        return {namespace or "": ProjectInfo.from_body(body)}

    @kopf.index(*WORKERPOOLS, id="pool_index", registry=registry)
    async def pool_index(*, body: kopf.Body, **_: Any) -> dict[PoolIndexKey, PoolEntry]:
        return pool_index_entries(body)

    # ----------------------------------------------------------- WorkerPools
    @kopf.on.resume(*WORKERPOOLS, id="pool_changed", registry=registry)
    @kopf.on.create(*WORKERPOOLS, id="pool_changed", registry=registry)
    @kopf.on.update(*WORKERPOOLS, id="pool_changed", registry=registry)
    async def pool_changed(
        *,
        name: str,
        namespace: str | None,
        reason: str,
        body: kopf.Body,
        memo: Any,
        **kwargs: Any,
    ) -> None:
        await _retrying(
            _reconciler(memo).reconcile_pool(
                namespace or "",
                name,
                _projects(kwargs, namespace),
                trigger=str(reason),
                body=dict(body),
            )
        )

    @kopf.timer(
        *WORKERPOOLS,
        id="pool_resync",
        interval=config.resync_seconds,
        initial_delay=config.resync_seconds,
        registry=registry,
    )
    async def pool_resync(
        *, name: str, namespace: str | None, body: kopf.Body, memo: Any, **kwargs: Any
    ) -> None:
        await _retrying(
            _reconciler(memo).reconcile_pool(
                namespace or "",
                name,
                _projects(kwargs, namespace),
                trigger="resync",
                body=dict(body),
            )
        )

    @kopf.on.event(*WORKERPOOLS, id="pool_event", registry=registry)
    async def pool_event(
        *, type: str, name: str, namespace: str | None, uid: str, memo: Any, **_: Any
    ) -> None:
        if type == "DELETED":
            _reconciler(memo).forget("WorkerPool", namespace or "", name)
            for records in memo.get("kopf_records", ()):
                records.forget(uid)

    @kopf.on.event(
        *DEPLOYMENTS,
        labels={LABEL_MANAGED_BY: FIELD_MANAGER},
        id="deployment_event",
        registry=registry,
    )
    async def deployment_event(
        *,
        type: str,
        body: kopf.Body,
        namespace: str | None,
        labels: Mapping[str, str],
        memo: Any,
        **kwargs: Any,
    ) -> None:
        """Restore a hand-edited or deleted Deployment at once, and mirror its status."""
        pool = labels.get(LABEL_POOL)
        ns = namespace or ""
        entry = next((p for p in _pools(kwargs, ns) if p.name == pool), None)
        if pool is None or entry is None:
            return
        reconciler = _reconciler(memo)
        generation = body.get("metadata", {}).get("generation")
        if type == "DELETED":
            trigger = "deleted"
        elif reconciler.deployment_drifted(ns, pool, generation):
            trigger = "drift"
        else:
            # What the reconciler last wrote is newer than the index while watch events
            # queue up (a burst of new pools); either way, only a change is written.
            mirrored = reconciler.mirrored(ns, pool, entry.uid)
            seen = entry.observed if mirrored is None else mirrored
            if deployment_observation(body) != seen:
                await _retrying(reconciler.mirror_pool_status(ns, pool, dict(body)))
            return
        log.info("Deployment %s/%s was %s; reconciling its pool", ns, pool, trigger)
        await _retrying(reconciler.reconcile_pool(ns, pool, _projects(kwargs, ns), trigger=trigger))

    # -------------------------------------------------------------- Projects
    async def reconcile_project_and_pools(
        name: str | None, namespace: str, memo: Any, kwargs: Mapping[str, Any]
    ) -> None:
        reconciler = _reconciler(memo)
        projects = _projects(kwargs, namespace)
        pools = _pools(kwargs, namespace)
        # Pools first: a pause takes their workers away before the status says so.
        for entry in reconciler.pools_to_refresh(pools, projects):
            await _retrying(
                reconciler.reconcile_pool(namespace, entry.name, projects, trigger="project")
            )
        if name is not None:
            await _retrying(reconciler.reconcile_project(namespace, name, pools, projects))

    @kopf.on.resume(*PROJECTS, id="project_changed", registry=registry)
    @kopf.on.create(*PROJECTS, id="project_changed", registry=registry)
    @kopf.on.update(*PROJECTS, id="project_changed", registry=registry)
    async def project_changed(
        *, name: str, namespace: str | None, memo: Any, **kwargs: Any
    ) -> None:
        await reconcile_project_and_pools(name, namespace or "", memo, kwargs)

    @kopf.timer(
        *PROJECTS,
        id="project_status_refresh",
        interval=config.project_status_seconds,
        initial_delay=config.project_status_seconds,
        registry=registry,
    )
    async def project_status_refresh(
        *, name: str, namespace: str | None, memo: Any, **kwargs: Any
    ) -> None:
        await reconcile_project_and_pools(name, namespace or "", memo, kwargs)

    @kopf.on.field(*PROJECTS, field="spec.priority", id="project_priority", registry=registry)
    async def project_priority(
        *, name: str, namespace: str | None, old: Any, new: Any, body: Any, memo: Any, **_: Any
    ) -> None:
        """A Project raised to a higher lane takes its queued work with it (`agentfleet
        priority`); lowering it applies to new items only."""
        context = context_of(memo)
        if context.queue is None or old is None or new is None or old == new:
            return
        try:
            lane = Lane(str(new))
        except ValueError:
            return  # the schema refuses it; nothing to move
        moved = await context.queue.boost(namespace or "", name, lane)
        context.events.normal(
            ObjectRef("Project", namespace or "", name, str(body["metadata"]["uid"])),
            "PriorityChanged",
            f"priority {old} -> {new}: {moved} queued item(s) moved up to the {new} lane"
            if moved
            else f"priority {old} -> {new}: new items go to the {new} lane",
            RECONCILER,
        )

    @kopf.on.event(*PROJECTS, id="project_deleted", registry=registry)
    async def project_deleted(
        *, type: str, name: str, namespace: str | None, memo: Any, **kwargs: Any
    ) -> None:
        """Pools that served a deleted Project stop listing it (the index no longer has
        it by the time this runs)."""
        if type != "DELETED":
            return
        await _reconciler(memo).project_gone(namespace or "", name)
        await reconcile_project_and_pools(None, namespace or "", memo, kwargs)

    for extend in extensions:
        extend(registry, config)

    # Registered after the extensions' cleanups, so it runs after them (kopf runs them in
    # order): the client, the pool and the Event posters close once nobody uses them.
    @kopf.on.cleanup(id="stop", registry=registry)
    async def stop(memo: kopf.Memo, **_: Any) -> None:
        context: OperatorContext | None = memo.get("context")
        if context is not None:
            await context.close()

    return registry


# Handlers that run on every watch event or timer tick; their per-call "succeeded" lines
# would drown the log (failures are still logged).
_CHATTY_HANDLERS = (
    "pool_event",
    "deployment_event",
    "project_deleted",
    "pool_resync",
    "project_status_refresh",
    "intake_wake",
)


class _QuietRoutineSuccess(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (
            record.levelno <= logging.INFO
            and message.endswith("succeeded.")
            and any(f"'{name}'" in message for name in _CHATTY_HANDLERS)
        )


async def _queue_egress(redis_url: str, context: OperatorContext) -> tuple[Manifest, ...]:
    """The NetworkPolicy egress rules to the work queue (`children.queue_egress_rules`),
    with the Service a `<svc>.<namespace>.svc` host names read first; a name is resolved
    in a thread (once, at start-up)."""
    host = urlsplit(redis_url).hostname or ""
    parts = host.split(".")
    service = None
    if len(parts) >= 3 and parts[2] == "svc":
        service = await context.kube.service_body(parts[1], parts[0])
    return await asyncio.to_thread(
        queue_egress_rules, redis_url, lambda _namespace, _name: service, resolve_host
    )


def resolve_host(host: str) -> list[str]:
    """The addresses a host name resolves to (none when it does not)."""
    try:
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return []
    return list(dict.fromkeys(str(entry[4][0]) for entry in found))


def run(config: OperatorConfig, extensions: Sequence[Extension] = ()) -> None:
    """Run the operator until SIGTERM/SIGINT (blocking)."""
    kopf.configure(
        verbose=config.verbose,
        log_format={
            "json": kopf.LogFormat.JSON,
            "plain": kopf.LogFormat.PLAIN,
            "full": kopf.LogFormat.FULL,
        }[config.log_format],
    )
    logging.getLogger("kopf.objects").addFilter(_QuietRoutineSuccess())
    if config.kubeconfig:
        # kopf's login reads it from here.
        os.environ["KUBECONFIG"] = config.kubeconfig
    priority = config.priority if config.priority is not None else random.randint(1, 2**30)
    if config.prometheus_url is not None:
        from agentfleet.operator.autoscaler.extension import install_autoscaler

        # The autoscaler loop runs in this process, from startup to cleanup.
        extensions = [*extensions, install_autoscaler]
    # GitHub intake (polling every Project, and webhooks on --webhook-port) always runs.
    extensions = [*extensions, install_intake]
    serve_namespaces_listed_on_watch()
    kopf.run(
        registry=create_registry(config, extensions),
        standalone=config.peering is None,
        peering_name=config.peering,
        priority=priority,
        clusterwide=config.all_namespaces,
        namespaces=list(config.namespaces),
        liveness_endpoint=(
            f"http://0.0.0.0:{config.health_port}/healthz" if config.health_port else None
        ),
    )
