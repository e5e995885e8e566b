"""The operator's read API (`--api-port`): queue lanes, the items workers hold, throughput,
dead letters and firing alerts, for the fleet CLI, which reaches it through the API
server's service proxy (`/api/v1/namespaces/<ns>/services/<svc>:api/proxy/v1/...`) or a
port-forward, holding nothing but a kubeconfig. The wire models are
`agentfleet.core.fleetapi`.

Who may read is decided by the API server before a request gets here (`get` on
`services/proxy` of the operator's Service); the answers carry no secret (no queue URL,
payload or token). The one action, `retry`, is authorised here, from the caller's own
identity: the CLI sends its bearer token in `X-Agentfleet-Token` (the API server strips
`Authorization` before proxying and vouches for nobody), the operator asks the API server
whose token it is (TokenReview) and whether that user may `patch` the Project
(SubjectAccessReview). Identity headers such as `X-Remote-User` are never trusted: the
service proxy passes whatever the client set.

Every replica serves it (standbys read the same queue). The report builders below are
pure and unit-tested; the app only fetches and hands over.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import httpx
import kopf
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from github import GithubException
from pydantic import BaseModel
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException

from agentfleet.core.api.base import API_GROUP, Stage
from agentfleet.core.api.project import ProjectSpec
from agentfleet.core.fleetapi import (
    API_PREFIX,
    DEFAULT_WINDOW_SECONDS,
    IDENTITY_HEADER,
    Alert,
    AlertReport,
    ApiError,
    DeadLetter,
    DeadLetterReport,
    Dispatched,
    DispatchRequest,
    DispatchResult,
    HeldItem,
    InFlightReport,
    LaneReport,
    QueueReport,
    RetryRequest,
    RetryResult,
    Scope,
    StageThroughput,
    StageTotals,
    ThroughputReport,
)
from agentfleet.core.github import (
    MASTER_LABEL,
    CredentialsError,
    ProjectIntake,
    RepoClient,
    WebhookServer,
)
from agentfleet.core.pipeline import IssuePayload, issue_item
from agentfleet.core.queue import (
    CompletionOutcome,
    InFlight,
    NamespaceSnapshot,
    WorkItem,
    WorkQueue,
)
from agentfleet.operator.config import OperatorConfig
from agentfleet.operator.context import OperatorContext, context_of
from agentfleet.operator.events import ObjectRef
from agentfleet.operator.index import PoolEntry, PoolIndexKey, namespace_pools
from agentfleet.operator.intake import (
    project_client,
    project_credentials,
    serves_namespace,
)
from agentfleet.operator.kube import TRANSPORT_ERRORS, KubeError, api_message

WireT = TypeVar("WireT", bound=BaseModel)

log = logging.getLogger("agentfleet.readapi")

COMPONENT = "agentfleet-readapi"
"""The Events' source and the log's name for what the read API does."""
PROMETHEUS_TIMEOUT_SECONDS = 5.0
API_FAILURES: tuple[type[Exception], ...] = (KubeError, *TRANSPORT_ERRORS)
"""The API server refused (an error status) or did not answer."""
RETRY_ACCESS = {"verb": "patch", "group": API_GROUP, "resource": "projects"}
"""What a caller must be allowed on the Project to retry its dead letters: what pausing
it takes (`agentfleet pause`)."""


class Refused(Exception):
    """An answer other than 200: the status and the one line the CLI prints."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --------------------------------------------------------------- pure reports


def queue_report(snapshot: NamespaceSnapshot, now: datetime) -> QueueReport:
    """Every lane of the namespace (declared idle ones too), and each project stage's
    finished counts."""
    now_ms = now.timestamp() * 1000
    lanes = [
        LaneReport(
            project=lane.project,
            stage=lane.stage,
            specialty=lane.specialty,
            lane=lane.lane,
            waiting=lane.waiting,
            held=lane.project in snapshot.held_projects,
            in_flight=lane.in_flight,
            retrying=snapshot.retrying_lanes.get(
                (lane.project, lane.stage, lane.specialty, lane.lane), 0
            ),
            oldest_wait_seconds=(
                None
                if lane.oldest_waiting_ms is None
                else round(max(0.0, now_ms - lane.oldest_waiting_ms) / 1000, 3)
            ),
        )
        for lane in snapshot.lanes
    ]
    seen = {(lane.project, lane.stage, lane.specialty, lane.lane) for lane in snapshot.lanes}
    # Retries whose lane has no stream (nothing ever waited there): still a lane.
    for (project, stage, specialty, lane_name), count in snapshot.retrying_lanes.items():
        if (project, stage, specialty, lane_name) not in seen:
            lanes.append(
                LaneReport(
                    project=project,
                    stage=stage,
                    specialty=specialty,
                    lane=lane_name,
                    waiting=0,
                    held=project in snapshot.held_projects,
                    in_flight=0,
                    retrying=count,
                    oldest_wait_seconds=None,
                )
            )
    totals: dict[tuple[str, Stage], list[int]] = defaultdict(lambda: [0, 0])
    for (project, stage, outcome), count in snapshot.completed.items():
        totals[project, stage][outcome is not CompletionOutcome.SUCCEEDED] += count
    order = list(Stage)
    return QueueReport(
        namespace=snapshot.namespace,
        lanes=sorted(
            lanes,
            key=lambda r: (r.project, order.index(r.stage), r.specialty, r.lane.rank),
        ),
        stages=[
            StageTotals(project=project, stage=stage, completed=done, dead_lettered=dead)
            for (project, stage), (done, dead) in sorted(
                totals.items(), key=lambda kv: (kv[0][0], order.index(kv[0][1]))
            )
        ],
    )


def in_flight_report(
    namespace: str, held: Sequence[InFlight], now: datetime, heartbeat_timeout: float
) -> InFlightReport:
    return InFlightReport(
        namespace=namespace,
        heartbeat_timeout_seconds=heartbeat_timeout,
        items=[
            HeldItem(
                worker=h.worker,
                item_id=h.item_id,
                project=h.project,
                stage=h.stage,
                specialty=h.specialty,
                lane=h.lane,
                heartbeat_age_seconds=round(max(0.0, (now - h.heartbeat_at).total_seconds()), 3),
                deliveries=h.deliveries,
            )
            for h in held
        ],
    )


def throughput_report(
    namespace: str, events: Iterable[Mapping[str, str]], window_seconds: float
) -> ThroughputReport:
    """Per project stage, from the completion events of the window: finished, succeeded,
    dead-lettered, retried (more than one attempt), per hour and the rates, and the mean
    stage and pipeline times of the successes that recorded them."""
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    times: dict[tuple[str, str], tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for event in events:
        stage = event.get("stage", "")
        if stage not in {s.value for s in Stage}:
            continue
        key = (event.get("project", ""), stage)
        row = counts[key]
        row[0] += 1
        if event.get("outcome") == CompletionOutcome.SUCCEEDED.value:
            row[1] += 1
            in_stage, since_start = times[key]
            at = _millis(event.get("at"))
            enqueued, started = _millis(event.get("enqueued")), _millis(event.get("started"))
            if at is not None and enqueued is not None:
                in_stage.append(max(0.0, (at - enqueued) / 1000))
            if at is not None and started is not None:
                since_start.append(max(0.0, (at - started) / 1000))
        else:
            row[2] += 1
        if int(event.get("attempts") or "0") > 1:
            row[3] += 1
    order = [s.value for s in Stage]
    stages = []
    for (project, stage), (finished, succeeded, dead, retried) in sorted(
        counts.items(), key=lambda kv: (kv[0][0], order.index(kv[0][1]))
    ):
        in_stage, since_start = times.get((project, stage), ([], []))
        stages.append(
            StageThroughput(
                project=project,
                stage=Stage(stage),
                finished=finished,
                succeeded=succeeded,
                dead_lettered=dead,
                retried=retried,
                per_hour=round(finished * 3600 / window_seconds, 3),
                success_rate=round(succeeded / finished, 4) if finished else None,
                rework_rate=round(retried / finished, 4) if finished else None,
                stage_seconds=_mean(in_stage),
                pipeline_seconds=_mean(since_start),
            )
        )
    return ThroughputReport(namespace=namespace, window_seconds=window_seconds, stages=stages)


def _millis(value: str | None) -> int | None:
    """A completion event's time field (milliseconds); None when absent or unreadable
    (events logged before the field existed)."""
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None


def dead_letter_report(
    namespace: str, project: str, dead: Mapping[str, WorkItem | None]
) -> DeadLetterReport:
    return DeadLetterReport(
        namespace=namespace,
        project=project,
        items=[
            DeadLetter(
                item_id=item_id,
                stage=None if item is None else item.stage,
                attempts=0 if item is None else item.attempts,
                error=None if item is None else item.last_error,
            )
            for item_id, item in dead.items()
        ],
    )


def alerts_from_prometheus(payload: Mapping[str, Any], namespace: str | None) -> list[Alert]:
    """The alerts of Prometheus' `/api/v1/alerts` answer, firing first; with `namespace`,
    those labelled with it and those with no namespace (fleet-wide)."""
    found = []
    for raw in (payload.get("data") or {}).get("alerts") or []:
        labels = {str(k): str(v) for k, v in (raw.get("labels") or {}).items()}
        annotations = raw.get("annotations") or {}
        if namespace is not None and labels.get("namespace", namespace) != namespace:
            continue
        found.append(
            Alert(
                name=labels.get("alertname", "?"),
                state=str(raw.get("state", "")),
                severity=labels.get("severity"),
                namespace=labels.get("namespace"),
                summary=str(annotations.get("summary") or annotations.get("description") or ""),
                active_at=raw.get("activeAt"),
                labels=labels,
            )
        )
    return sorted(found, key=lambda a: (a.state != "firing", a.name, a.namespace or ""))


def access_decision(
    token_status: Mapping[str, Any], access_status: Mapping[str, Any] | None, what: str
) -> str | None:
    """Why the caller may not do `what` (one line), or None when it may. `access_status`
    is None when no access review was made (the token was not accepted)."""
    if not token_status.get("authenticated"):
        error = token_status.get("error") or "unknown or expired token"
        return f"the API server did not accept the caller's token: {error}"
    user = (token_status.get("user") or {}).get("username", "?")
    if access_status is None or not access_status.get("allowed"):
        reason = (access_status or {}).get("reason") or "no RBAC rule allows it"
        return f'user "{user}" may not {what} ({reason})'
    return None


# ------------------------------------------------------------------ the service


@dataclass
class ReadApi:
    context: OperatorContext

    @property
    def config(self) -> OperatorConfig:
        return self.context.config

    def served(self, namespace: str) -> None:
        if not serves_namespace(self.config, namespace):
            raise Refused(404, f"namespace {namespace} is not served by this operator")

    def queue(self) -> WorkQueue:
        if self.context.queue is None:
            raise Refused(503, "the operator has no work queue (it runs without --redis-url)")
        return self.context.queue

    async def action(
        self, namespace: str, project: str, request: Request, model: type[WireT], name: str
    ) -> tuple[str, WireT, dict[str, Any]]:
        """What every action on a Project starts with: the namespace served, the caller
        allowed (`caller`), the request read as `model`, the Project read; or Refused."""
        self.served(namespace)
        user = await self.caller(request.headers.get(IDENTITY_HEADER), namespace, project)
        try:
            body = model.model_validate_json((await request.body()) or b"{}")
        except ValueError as exc:
            raise Refused(400, f"the {name} request is malformed: {exc}") from exc
        try:
            found = await self.context.kube.get_custom(namespace, "projects", project)
        except API_FAILURES as exc:
            raise Refused(503, f"the Project could not be read: {exc}") from exc
        if found is None:
            raise Refused(404, f"project {namespace}/{project} not found")
        return user, body, found

    async def caller(self, token: str | None, namespace: str, project: str) -> str:
        """The username of a caller allowed to act on the Project, else Refused."""
        if not token:
            raise Refused(
                401,
                f"this action needs the caller's bearer token in the {IDENTITY_HEADER} "
                "header, to check its RBAC (a kubeconfig user with a client certificate "
                "has none)",
            )
        what = (
            f'{RETRY_ACCESS["verb"]} {RETRY_ACCESS["resource"]}.{API_GROUP} "{project}" '
            f"in namespace {namespace}"
        )
        try:
            token_status = await self.context.kube.review_token(token)
            access = None
            if token_status.get("authenticated"):
                access = await self.context.kube.review_access(
                    token_status.get("user") or {},
                    {**RETRY_ACCESS, "namespace": namespace, "name": project},
                )
        except API_FAILURES as exc:
            detail = api_message(exc) if isinstance(exc, KubeError) else str(exc)
            raise Refused(503, f"the operator could not check the caller's RBAC: {detail}") from exc
        refusal = access_decision(token_status, access, what)
        if refusal is not None:
            log.warning("retry refused in %s/%s: %s", namespace, project, refusal)
            raise Refused(403 if access is not None else 401, refusal)
        return str((token_status.get("user") or {}).get("username", "?"))

    async def alerts(self, namespace: str | None) -> AlertReport:
        url = self.config.prometheus_url
        if url is None:
            return AlertReport(prometheus=False, alerts=[])
        try:
            async with httpx.AsyncClient(timeout=PROMETHEUS_TIMEOUT_SECONDS) as client:
                response = await client.get(f"{url.rstrip('/')}/api/v1/alerts")
                response.raise_for_status()
                payload = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise Refused(503, f"Prometheus at {url} did not answer: {exc}") from exc
        return AlertReport(prometheus=True, alerts=alerts_from_prometheus(payload, namespace))


DISPATCH_MARKER = "dispatch"
"""The marker kind of an issue opened by `agentfleet dispatch` (`key=<hash of its text>`):
dispatching the same requirement again finds it instead of opening another."""


def _dispatch_on_github(
    repo: RepoClient, project: ProjectIntake, request: DispatchRequest
) -> list[tuple[Dispatched, WorkItem | None]]:
    """The issues of a dispatch, found or opened, with their first-stage items (blocking:
    PyGithub)."""
    found: list[tuple[Dispatched, WorkItem | None]] = []
    label = project.labels[0]
    for number in request.issues:
        try:
            issue = repo.issue(number)
        except GithubException as exc:
            status = exc.status
            reason = "no such issue" if status == 404 else f"GitHub answered {status}"
            found.append((Dispatched(issue=number, title="", error=reason), None))
            continue
        if issue.is_pull:
            found.append(
                (Dispatched(issue=number, title=issue.title, error="a pull request"), None)
            )
        elif issue.state != "open":
            closed = Dispatched(issue=number, title=issue.title, error="the issue is closed")
            found.append((closed, None))
        else:
            found.append(_item_for(project, issue.number, issue.title, issue.labels))
    for requirement in request.requirements:
        key = hashlib.sha256(f"{requirement.title}\n{requirement.body}".encode()).hexdigest()[:16]
        issue, created = repo.ensure_issue(
            requirement.title, requirement.body, [label], DISPATCH_MARKER, key=key
        )
        entry, item = _item_for(project, issue.number, issue.title, issue.labels)
        found.append((entry.model_copy(update={"created": created}), item))
    return found


def _item_for(
    project: ProjectIntake, number: int, title: str, labels: tuple[str, ...]
) -> tuple[Dispatched, WorkItem]:
    master = MASTER_LABEL in labels
    payload = IssuePayload(
        issue=number, title=title, parallelism=(project.parallelism or None) if master else None
    )
    item = issue_item(project, project.stages[0], payload)
    return Dispatched(issue=number, title=title, item_id=item.id), item


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(ApiError(error=message).wire(), status_code=status)


def create_app(api: ReadApi, routers: Sequence[APIRouter] = ()) -> FastAPI:
    """The read API, with `routers` (the status page) served alongside."""
    app = FastAPI(title="agentfleet operator read API", docs_url=None, redoc_url=None)
    for router in routers:
        app.include_router(router)

    @app.exception_handler(Refused)
    async def refused(_: Request, exc: Refused) -> JSONResponse:
        return _error(exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return _error(
            400, f"{where}: {first.get('msg', 'invalid')}" if where else "invalid request"
        )

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RedisError)
    async def queue_down(_: Request, exc: RedisError) -> JSONResponse:
        return _error(503, f"the work queue cannot be read: {exc}")

    @app.exception_handler(OSError)
    async def queue_unreachable(_: Request, exc: OSError) -> JSONResponse:
        return _error(503, f"the work queue cannot be reached: {exc}")

    ns_path = f"{API_PREFIX}/namespaces/{{namespace}}"

    @app.get(f"{ns_path}/queues")
    async def queues(namespace: str) -> dict[str, object]:
        api.served(namespace)
        queue = api.queue()
        snapshot = await queue.snapshot(namespace)
        return queue_report(snapshot, queue.clock()).wire()

    @app.get(f"{ns_path}/workers")
    async def workers(namespace: str) -> dict[str, object]:
        api.served(namespace)
        queue = api.queue()
        held = await queue.in_flight(namespace)
        return in_flight_report(namespace, held, queue.clock(), queue.heartbeat_timeout).wire()

    @app.get(f"{ns_path}/throughput")
    async def throughput(
        namespace: str,
        window_seconds: float = Query(
            DEFAULT_WINDOW_SECONDS, alias="windowSeconds", gt=0, le=30 * 86400
        ),
    ) -> dict[str, object]:
        api.served(namespace)
        queue = api.queue()
        since = queue.clock() - timedelta(seconds=window_seconds)
        events = await queue.completions_since(namespace, since)
        return throughput_report(namespace, events, window_seconds).wire()

    @app.get(f"{ns_path}/projects/{{project}}/deadletters")
    async def dead_letters(namespace: str, project: str) -> dict[str, object]:
        api.served(namespace)
        dead = await api.queue().dead_letters(namespace, project)
        return dead_letter_report(namespace, project, dead).wire()

    @app.post(f"{ns_path}/projects/{{project}}/retry")
    async def retry(namespace: str, project: str, request: Request) -> dict[str, object]:
        user, body, found = await api.action(namespace, project, request, RetryRequest, "retry")
        requeued = await api.queue().requeue_dead_letters(namespace, project, body.item_ids)
        meta = found["metadata"]
        message = f"{user} retried {len(requeued)} dead-lettered item(s)"
        log.info("%s in %s/%s: %s", message, namespace, project, ", ".join(requeued) or "-")
        api.context.events.normal(
            ObjectRef("Project", namespace, project, meta.get("uid", "")),
            "DeadLettersRetried",
            message,
            COMPONENT,
        )
        return RetryResult(
            namespace=namespace, project=project, requeued=requeued, user=user
        ).wire()

    @app.post(f"{ns_path}/projects/{{project}}/dispatch")
    async def dispatch(namespace: str, project: str, request: Request) -> dict[str, object]:
        user, body, found = await api.action(
            namespace, project, request, DispatchRequest, "dispatch"
        )
        if not body.issues and not body.requirements:
            raise Refused(400, "nothing to dispatch: name issues or requirements")
        try:
            spec = ProjectSpec.model_validate(found.get("spec") or {})
        except ValueError as exc:
            raise Refused(409, f"project {namespace}/{project} is invalid: {exc}") from exc
        if spec.paused:
            raise Refused(409, f"project {namespace}/{project} is paused: resume it first")
        queue = api.queue()
        try:
            credentials = await project_credentials(api.context.kube, namespace, spec)
        except API_FAILURES as exc:
            raise Refused(503, f"the Project's credentials could not be read: {exc}") from exc
        if not isinstance(credentials, tuple):
            raise Refused(409, f"project {namespace}/{project}: {credentials.message}")
        intake = ProjectIntake.from_spec(namespace, project, spec)
        repo = project_client(credentials[1], spec)
        try:
            dispatched = await asyncio.to_thread(_dispatch_on_github, repo, intake, body)
        except (GithubException, CredentialsError, OSError) as exc:
            raise Refused(502, f"GitHub refused the dispatch: {exc}") from exc
        finally:
            await asyncio.to_thread(repo.close)
        items = [item for _, item in dispatched if item is not None]
        fresh = set(await queue.enqueue(*items)) if items else set()
        report = [d.model_copy(update={"new": d.item_id in fresh}) for d, _ in dispatched]
        meta = found["metadata"]
        message = f"{user} dispatched {len(items)} issue(s), {len(fresh)} new to the queue"
        log.info("%s in %s/%s", message, namespace, project)
        api.context.events.normal(
            ObjectRef("Project", namespace, project, meta.get("uid", "")),
            "WorkDispatched",
            message,
            COMPONENT,
        )
        return DispatchResult(
            namespace=namespace, project=project, user=user, dispatched=report
        ).wire()

    @app.get(f"{API_PREFIX}/scope")
    async def scope() -> dict[str, object]:
        config = api.config
        return Scope(
            all_namespaces=config.all_namespaces, namespaces=list(config.namespaces)
        ).wire()

    @app.get(f"{API_PREFIX}/alerts")
    async def alerts(namespace: str | None = None) -> dict[str, object]:
        return (await api.alerts(namespace)).wire()

    return app


def install_read_api(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    """Serve the read API on `--api-port` from startup to cleanup (an operator
    `Extension`). A port that cannot be bound is logged; the operator keeps running."""
    running: dict[str, WebhookServer] = {}

    @kopf.on.startup(id="readapi_start", registry=registry)
    async def readapi_start(memo: kopf.Memo, **kwargs: Any) -> None:
        if not config.api_port:
            return
        # Here, not at the top: the status page builds on this module's reports.
        from agentfleet.operator.forecastapi import forecast_router
        from agentfleet.operator.statuspage import StatusPage, status_router

        api = ReadApi(context_of(memo))
        pool_index: kopf.Index[PoolIndexKey, PoolEntry] = kwargs["pool_index"]
        page = StatusPage(api, lambda namespace: namespace_pools(pool_index, namespace))
        app = create_app(api, routers=[status_router(page), forecast_router(api, page.pools)])
        # Every interface: the API server's proxy reaches the Pod on its IP.
        server = WebhookServer(app, host="0.0.0.0", port=config.api_port)
        try:
            await server.start()
        except (OSError, RuntimeError, TimeoutError, SystemExit) as exc:
            log.error("the read API could not listen on :%d: %s", config.api_port, exc)
            return
        running["server"] = server
        log.info("serving the read API on :%d%s", config.api_port, API_PREFIX)

    @kopf.on.cleanup(id="readapi_stop", registry=registry)
    async def readapi_stop(**_: Any) -> None:
        server = running.pop("server", None)
        if server is not None:
            await server.stop()
