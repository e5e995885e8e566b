"""The kopf operator: handler registration, settings, and `run`.

Handlers are thin: they pick the right objects out of kopf's indexes and call the
`Reconciler`. Everything is registered on a private registry (not kopf's global one), so
importing this module has no side effects and the autoscaler can add its handlers to the
same registry (`create_registry(config, extensions=...)`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
import prometheus_client
import urllib3
from kubernetes.client.exceptions import ApiException

from agentfleet.core.api.base import API_GROUP, API_VERSION, LABEL_POOL
from agentfleet.core.queue import WorkQueue
from agentfleet.operator.children import (
    FIELD_MANAGER,
    LABEL_MANAGED_BY,
    WorkerEnvironment,
    queue_egress_rules,
)
from agentfleet.operator.config import OperatorConfig
from agentfleet.operator.intake import install_intake
from agentfleet.operator.kube import ConflictError, Kube, api_message, new_api_client
from agentfleet.operator.logic import ProjectInfo
from agentfleet.operator.memory import limit_arenas, trim_periodically
from agentfleet.operator.reconciler import PoolEntry, Reconciler, deployment_observation
from agentfleet.operator.scaling import install_autoscaler

log = logging.getLogger("agentfleet.operator")

WORKERPOOLS = (API_GROUP, API_VERSION, "workerpools")
PROJECTS = (API_GROUP, API_VERSION, "projects")
DEPLOYMENTS = ("apps", "v1", "deployments")
RETRY_DELAY_SECONDS = 5.0
# Reconciles run their Kubernetes calls in threads; the default pool (cores + 4) would
# serialise a start-up with hundreds of pools.
API_THREADS = 32

Extension = Callable[[kopf.OperatorRegistry, OperatorConfig], None]
"""Registers more handlers on the operator's registry (the autoscaler does)."""


def _projects(kwargs: Mapping[str, Any], namespace: str | None) -> list[ProjectInfo]:
    """The namespace's Projects from the `project_index` kopf passes to every handler."""
    index: kopf.Index[str, ProjectInfo] = kwargs["project_index"]
    return list(index.get(namespace or "", []))


def _pools(kwargs: Mapping[str, Any], namespace: str | None) -> list[PoolEntry]:
    index: kopf.Index[str, PoolEntry] = kwargs["pool_index"]
    return list(index.get(namespace or "", []))


async def _retrying(action: Awaitable[Any]) -> Any:
    """Outages become kopf.TemporaryError: kopf retries the handler after a delay."""
    try:
        return await action
    except ApiException as error:
        raise kopf.TemporaryError(
            f"Kubernetes API {error.status}: {api_message(error)}", delay=RETRY_DELAY_SECONDS
        ) from error
    except (ConflictError, OSError, urllib3.exceptions.HTTPError) as error:
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
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(id="start", registry=registry)
    async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        # kopf's own bookkeeping goes into annotations under our prefix, not into status
        # (whose schema is ours).
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=API_GROUP, key="last-handled-configuration"
        )
        # Events are posted explicitly; kopf's per-handler INFO chatter stays in the log.
        settings.posting.level = logging.WARNING
        # Every network wait has a deadline (dask-kubernetes sets all four, citing watches
        # that hang silently): the API server ends a watch after server_timeout, the
        # client gives up on it a little later, and connects and single requests fail
        # fast and are retried instead of stalling a handler or an index.
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.watching.connect_timeout = 10
        settings.networking.connect_timeout = 10
        settings.networking.request_timeout = 60
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(API_THREADS, thread_name_prefix="kube-api")
        )
        kube = Kube(new_api_client(config.kubeconfig))
        if config.peering is not None:
            scopes: Iterable[str | None] = config.namespaces or [None]
            for namespace in scopes:
                if await asyncio.to_thread(kube.ensure_peering, config.peering, namespace):
                    log.info("created peering object %s in %s", config.peering, namespace or "*")
        queue = WorkQueue.from_url(config.redis_url) if config.redis_url else None
        environment = WorkerEnvironment(
            redis_url=config.redis_url,
            queue_egress=(
                await asyncio.to_thread(
                    queue_egress_rules, config.redis_url, kube.service_body, resolve_host
                )
                if config.redis_url
                else ()
            ),
            blocked_cidrs=config.blocked_cidrs,
            dns_cidrs=config.dns_cidrs,
        )
        if config.redis_url and not environment.queue_egress:
            log.warning(
                "the work queue's address could not be found: worker Pods' NetworkPolicy "
                "will not let them reach it"
            )
        memo["reconciler"] = Reconciler(kube, environment, queue)
        if config.metrics_port:
            prometheus_client.start_http_server(config.metrics_port)
        memo["trimmer"] = asyncio.create_task(trim_periodically(), name="malloc-trim")
        log.info(
            "operator started: namespaces=%s redis=%s peering=%s",
            "*" if config.all_namespaces else ",".join(config.namespaces),
            "on" if queue else "off",
            config.peering or "standalone",
        )

    @kopf.on.cleanup(id="stop", registry=registry)
    async def stop(memo: kopf.Memo, **_: Any) -> None:
        trimmer = memo.get("trimmer")
        if trimmer is not None:
            trimmer.cancel()
        reconciler = memo.get("reconciler")
        if reconciler is not None and reconciler.queue is not None:
            await reconciler.queue.close()

    # --------------------------------------------------------------- indexes
    @kopf.index(*PROJECTS, id="project_index", registry=registry)
    def project_index(
        *, body: kopf.Body, namespace: str | None, **_: Any
    ) -> dict[str, ProjectInfo]:
        return {namespace or "": ProjectInfo.from_body(body)}

    @kopf.index(*WORKERPOOLS, id="pool_index", registry=registry)
    def pool_index(*, body: kopf.Body, namespace: str | None, **_: Any) -> dict[str, PoolEntry]:
        return {namespace or "": PoolEntry.from_body(body)}

    # ----------------------------------------------------------- WorkerPools
    @kopf.on.resume(*WORKERPOOLS, id="pool_changed", registry=registry)
    @kopf.on.create(*WORKERPOOLS, id="pool_changed", registry=registry)
    @kopf.on.update(*WORKERPOOLS, id="pool_changed", registry=registry)
    async def pool_changed(
        *, name: str, namespace: str | None, reason: str, memo: Any, **kwargs: Any
    ) -> None:
        await _retrying(
            _reconciler(memo).reconcile_pool(
                namespace or "", name, _projects(kwargs, namespace), trigger=str(reason)
            )
        )

    @kopf.timer(
        *WORKERPOOLS,
        id="pool_resync",
        interval=config.resync_seconds,
        initial_delay=config.resync_seconds,
        registry=registry,
    )
    async def pool_resync(*, name: str, namespace: str | None, memo: Any, **kwargs: Any) -> None:
        await _retrying(
            _reconciler(memo).reconcile_pool(
                namespace or "", name, _projects(kwargs, namespace), trigger="resync"
            )
        )

    @kopf.on.event(*WORKERPOOLS, id="pool_event", registry=registry)
    async def pool_event(
        *, type: str, name: str, namespace: str | None, memo: Any, **_: Any
    ) -> None:
        if type == "DELETED":
            _reconciler(memo).forget("WorkerPool", namespace or "", name)

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
            if deployment_observation(body) != entry.observed:
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


def resolve_host(host: str) -> list[str]:
    """The addresses a host name resolves to (none when it does not)."""
    try:
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return []
    return list(dict.fromkeys(str(entry[4][0]) for entry in found))


def run(config: OperatorConfig, extensions: Sequence[Extension] = ()) -> None:
    """Run the operator until SIGTERM/SIGINT (blocking)."""
    limit_arenas()  # before kopf and the API thread pool start any thread
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
        # kopf's login and the client library both read it from here.
        os.environ["KUBECONFIG"] = config.kubeconfig
    priority = config.priority if config.priority is not None else random.randint(1, 2**30)
    if config.prometheus_url is not None:
        # The autoscaler loop runs in this process, from startup to cleanup.
        extensions = [*extensions, install_autoscaler]
    # GitHub intake (polling every Project, and webhooks on --webhook-port) always runs.
    extensions = [*extensions, install_intake]
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
