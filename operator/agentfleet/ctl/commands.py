"""The fleet commands, wired into the `agentfleet` command line (and `kubectl agentfleet`).

`status`, `pools`, `bottlenecks` and the actions on resources read and change the custom
resources and Pods; `queues`, `workers`, `metrics`, `alerts`, `retry` and `dispatch` need the
operator's read API too (queue and Prometheus data live inside the cluster), and fail
with one line when it cannot be reached rather than print partial data."""

from __future__ import annotations

import functools
import inspect
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer
import yaml
from rich.console import Console

from agentfleet.core.api.base import LABEL_POOL
from agentfleet.core.api.project import Priority
from agentfleet.core.fleetapi import (
    API_PREFIX,
    AlertReport,
    DeadLetterReport,
    DispatchRequest,
    DispatchResult,
    HeldItem,
    InFlightReport,
    QueueReport,
    Requirement,
    RetryRequest,
    RetryResult,
    Scope,
    ThroughputReport,
)
from agentfleet.ctl.kube import CliError, Target
from agentfleet.ctl.operatorapi import DEFAULT_SERVICE, OperatorApi
from agentfleet.ctl.output import (
    Format,
    duration,
    emit,
    machine,
    make_table,
    number,
    parse_duration,
)
from agentfleet.ctl.views import (
    AlertRow,
    LaneRow,
    PoolRow,
    Queues,
    RowT,
    StageMetricsRow,
    StageRow,
    WorkerRow,
    alert_rows,
    dead_letter_rows,
    dispatch_rows,
    metrics_rows,
    pool_row,
    queue_rows,
    summary,
    worker_row,
)
from agentfleet.ctl.views import (
    bottlenecks as find_bottlenecks,
)

P = ParamSpec("P")
R = TypeVar("R")

KUBECONFIG = typer.Option(None, "--kubeconfig", envvar="KUBECONFIG", help="Kubeconfig file.")
CONTEXT = typer.Option(None, "--context", help="Kubeconfig context (default: the current one).")
NAMESPACE = typer.Option(
    None, "--namespace", "-n", help="Namespace (default: the context's, else default)."
)
ALL_NAMESPACES = typer.Option(False, "--all-namespaces", "-A", help="Every namespace.")
OUTPUT = typer.Option(Format.TABLE, "--output", "-o", help="table, json or yaml.")
OPERATOR_SERVICE = typer.Option(
    None,
    "--operator-service",
    envvar="AGENTFLEET_OPERATOR_SERVICE",
    help=f"The operator's read API Service, NAMESPACE/NAME:PORT (default {DEFAULT_SERVICE}), "
    "reached through the API server's service proxy.",
)
OPERATOR_URL = typer.Option(
    None,
    "--operator-url",
    envvar="AGENTFLEET_OPERATOR_URL",
    help="The read API's URL instead (a `kubectl port-forward`), e.g. http://127.0.0.1:8083.",
)


def one_line_errors(command: Callable[P, R]) -> Callable[P, R]:
    """A CliError becomes `error: <message>` on stderr and exit code 1, never a traceback."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except CliError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(1) from None

    return run


def _target(
    kubeconfig: str | None, context: str | None, namespace: str | None, all_namespaces: bool
) -> Target:
    return Target.connect(kubeconfig, context, namespace, all_namespaces)


def _pool_columns(row: PoolRow) -> list[str]:
    return [
        row.namespace,
        row.name,
        row.stage,
        f"{number(row.ready_replicas)}/{number(row.replicas)}",
        f"{row.min_replicas}..{row.max_replicas}",
        row.mode,
        number(row.queue),
        duration(row.oldest_wait_seconds),
        "-" if row.utilization is None else f"{row.utilization:.0%}",
        row.ready,
        row.last_scale_reason or "-",
    ]


def _print_rows(
    output: Format,
    rows: Sequence[RowT],
    kind: str,
    headers: Sequence[str],
    cells: Callable[[RowT], list[str]],
    empty: str,
) -> None:
    """A list command's output: a table of `cells(row)`, or the rows as JSON or YAML."""
    console = Console()

    def table() -> None:
        out = make_table(None, headers)
        for row in rows:
            out.add_row(*cells(row))
        console.print(out if rows else empty)

    emit(console, output, machine(rows, kind), table)


POOL_HEADERS = [
    "NAMESPACE", "POOL", "STAGE", "READY", "RANGE", "MODE", "QUEUE", "OLDEST", "BUSY",
    "OK", "LAST SCALING",
]  # fmt: skip


LIVE_WINDOW_SECONDS = 3600.0
"""The window of the throughput `status` and `bottlenecks` show."""


@dataclass(frozen=True)
class Live:
    """What `status` and `bottlenecks` add from the operator's read API when it answers."""

    throughput: list[StageMetricsRow]
    alerts: list[AlertRow]
    error: str | None


def _live(target: Target, service: str | None, url: str | None, alerts: bool = True) -> Live:
    """The last hour's throughput per Project stage and the firing alerts, or why not:
    `status` and `bottlenecks` still show the custom resources when the operator is down
    (that is when they are needed most)."""
    try:
        api = OperatorApi.connect(target, service, url)
        throughput = _throughput(target, api, LIVE_WINDOW_SECONDS)
        if not alerts:
            return Live(throughput, [], None)
        query = {} if target.namespace is None else {"namespace": target.namespace}
        report = api.get(f"{API_PREFIX}/alerts", AlertReport, **query)
    except CliError as exc:
        return Live([], [], str(exc))
    if not report.prometheus:
        return Live(throughput, [], "alerts: the operator has no Prometheus to read them from")
    return Live(throughput, alert_rows(report), None)


@one_line_errors
def status(
    kubeconfig: str | None = KUBECONFIG,
    context: str | None = CONTEXT,
    namespace: str | None = NAMESPACE,
    all_namespaces: bool = ALL_NAMESPACES,
    output: Format = OUTPUT,
    operator_service: str | None = OPERATOR_SERVICE,
    operator_url: str | None = OPERATOR_URL,
) -> None:
    """The fleet at a glance: Projects, their stages' queues, pools, the last hour's
    throughput and success rate, firing alerts, and what needs a look."""
    target = _target(kubeconfig, context, namespace, all_namespaces)
    live = _live(target, operator_service, operator_url)
    fleet = summary(target.objects("Project"), target.objects("WorkerPool")).model_copy(
        update={"throughput": live.throughput, "alerts": live.alerts, "live_error": live.error}
    )
    console = Console()

    def table() -> None:
        console.print(
            f"[bold]{len(fleet.projects)} project(s)[/bold]: {fleet.queued} queued, "
            f"{fleet.in_flight} in flight, {fleet.completed} completed, "
            f"{fleet.dead_lettered} dead-lettered; [bold]{len(fleet.pools)} pool(s)[/bold]: "
            f"{fleet.workers_ready}/{fleet.workers} workers ready"
        )
        projects = make_table(
            "Projects",
            ["NAMESPACE", "PROJECT", "PHASE", "QUEUED", "IN FLIGHT", "DONE", "DEAD", "POOLS"],
        )
        for p in fleet.projects:
            projects.add_row(
                p.namespace, p.name, p.phase + (" (paused)" if p.paused else ""),
                number(p.queued), str(p.in_flight), str(p.completed), str(p.dead_lettered),
                ", ".join(p.pools) or "-",
            )  # fmt: skip
        console.print(projects)
        pools = make_table("Pools", POOL_HEADERS)
        for row in fleet.pools:
            pools.add_row(*_pool_columns(row))
        console.print(pools)
        if fleet.throughput:
            hour = make_table(
                "Last hour",
                ["NAMESPACE", "PROJECT", "STAGE", "FINISHED", "PER HOUR", "GOAL", "SUCCESS",
                 "PIPELINE"],
            )  # fmt: skip
            for r in fleet.throughput:
                hour.add_row(
                    r.namespace, r.project, r.stage, str(r.finished), number(r.per_hour, 1),
                    _goal(r), _percent(r.success_rate), duration(r.pipeline_seconds),
                )  # fmt: skip
            console.print(hour)
        elif fleet.live_error is None:
            console.print("Nothing finished in the last hour.")
        firing = [a for a in fleet.alerts if a.state == "firing"]
        for a in fleet.alerts:
            console.print(
                f"[bold]{a.state.upper()}[/bold] {a.name}"
                f"{f' ({a.namespace})' if a.namespace else ''}: {a.summary}"
            )
        if fleet.live_error is None and not firing:
            console.print("No alert is firing.")
        if fleet.live_error is not None:
            console.print(
                f"Throughput and alerts not shown: {fleet.live_error}", highlight=False,
                markup=False,
            )  # fmt: skip
        if fleet.attention:
            console.print("[bold]Needs a look[/bold]")
            for line in fleet.attention:
                console.print(f"  - {line}", highlight=False, markup=False)
        else:
            console.print("Nothing needs a look.")

    emit(console, output, machine(fleet, "FleetStatus"), table)


def _namespaces(target: Target, api: OperatorApi) -> list[str]:
    """The namespace asked for, or with -A every namespace with a Project that the
    operator serves (a Project elsewhere has no queue this operator knows)."""
    if target.namespace is not None:
        return [target.namespace]
    scope = api.get(f"{API_PREFIX}/scope", Scope)
    found = {p["metadata"]["namespace"] for p in target.objects("Project")}
    return sorted(ns for ns in found if scope.serves(ns))


def _path(namespace: str, *parts: str) -> str:
    return "/".join([f"{API_PREFIX}/namespaces/{namespace}", *parts])


def _throughput(target: Target, api: OperatorApi, seconds: float) -> list[StageMetricsRow]:
    """What each Project stage finished over the last `seconds`, in every namespace asked."""
    return [
        row
        for ns in _namespaces(target, api)
        for row in metrics_rows(
            api.get(_path(ns, "throughput"), ThroughputReport, windowSeconds=str(seconds))
        )
    ]


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share:.0%}"


@one_line_errors
def queues(
    kubeconfig: str | None = KUBECONFIG,
    context: str | None = CONTEXT,
    namespace: str | None = NAMESPACE,
    all_namespaces: bool = ALL_NAMESPACES,
    output: Format = OUTPUT,
    operator_service: str | None = OPERATOR_SERVICE,
    operator_url: str | None = OPERATOR_URL,
) -> None:
    """Each Project stage's work (pending, in flight, held, retrying, done, dead), and
    every lane behind it (specialty and priority: waiting, oldest wait, in flight,
    retrying), live from the queue through the operator's read API."""
    target = _target(kubeconfig, context, namespace, all_namespaces)
    api = OperatorApi.connect(target, operator_service, operator_url)
    stages: list[StageRow] = []
    lanes: list[LaneRow] = []
    for ns in _namespaces(target, api):
        found = queue_rows(api.get(_path(ns, "queues"), QueueReport))
        stages += found.stages
        lanes += found.lanes
    result = Queues(stages=stages, lanes=lanes)
    console = Console()

    def table() -> None:
        if not stages and not lanes:
            console.print("No queued or finished work here.")
            return
        out = make_table(
            "Stages",
            ["NAMESPACE", "PROJECT", "STAGE", "PENDING", "IN FLIGHT", "HELD", "RETRYING", "DONE",
             "DEAD"],
        )  # fmt: skip
        for r in stages:
            out.add_row(
                r.namespace, r.project, r.stage, str(r.pending), str(r.in_flight), str(r.held),
                str(r.retrying), str(r.completed), str(r.dead_lettered),
            )  # fmt: skip
        console.print(out)
        busy = [r for r in lanes if r.waiting or r.in_flight or r.retrying]
        out = make_table(
            "Lanes",
            ["NAMESPACE", "PROJECT", "STAGE", "SPECIALTY", "LANE", "WAITING", "OLDEST",
             "IN FLIGHT", "RETRYING"],
        )  # fmt: skip
        for lane in busy:
            out.add_row(
                lane.namespace, lane.project, lane.stage, lane.specialty, lane.lane,
                f"{lane.waiting}{' (held)' if lane.held and lane.waiting else ''}",
                duration(lane.oldest_wait_seconds), str(lane.in_flight), str(lane.retrying),
            )  # fmt: skip
        console.print(out if busy else "Every lane is empty.")

    emit(console, output, machine(result, "Queues"), table)


@one_line_errors
def bottlenecks(
    kubeconfig: str | None = KUBECONFIG,
    context: str | None = CONTEXT,
    namespace: str | None = NAMESPACE,
    all_namespaces: bool = ALL_NAMESPACES,
    output: Format = OUTPUT,
    operator_service: str | None = OPERATOR_SERVICE,
    operator_url: str | None = OPERATOR_URL,
) -> None:
    """Which stages have work waiting, what limits them, and what to do about it; with
    the operator's read API also the last hour's throughput, so failing and stalled
    stages are told from short-handed ones."""
    target = _target(kubeconfig, context, namespace, all_namespaces)
    live = _live(target, operator_service, operator_url, alerts=False)
    finished = (
        None
        if live.error is not None
        else {(r.namespace, r.project, r.stage): r for r in live.throughput}
    )
    rows = find_bottlenecks(target.objects("Project"), target.objects("WorkerPool"), finished)
    _print_rows(
        output, rows, "Bottleneck",
        ["NAMESPACE", "PROJECT", "STAGE", "WAITING", "PER HOUR", "POOLS", "CAUSE", "SUGGESTION"],
        lambda b: [
            b.namespace, b.project, b.stage, str(b.waiting), number(b.per_hour, 1),
            ", ".join(b.pools) or "-", b.cause, b.suggestion,
        ],
        "Nothing waits: no bottleneck.",
    )  # fmt: skip
    if live.error is not None and output is Format.TABLE:
        Console(stderr=True).print(
            f"Failures and stalls not judged: {live.error}", highlight=False, markup=False
        )


@one_line_errors
def pools(
    kubeconfig: str | None = KUBECONFIG,
    context: str | None = CONTEXT,
    namespace: str | None = NAMESPACE,
    all_namespaces: bool = ALL_NAMESPACES,
    output: Format = OUTPUT,
) -> None:
    """WorkerPools: replicas, range, scaling mode, the signals and the last scaling reason."""
    target = _target(kubeconfig, context, namespace, all_namespaces)
    rows = [pool_row(pool) for pool in target.objects("WorkerPool")]
    _print_rows(output, rows, "Pool", POOL_HEADERS, _pool_columns, "No WorkerPools here.")


@one_line_errors
def workers(
    pool: str | None = typer.Argument(None, help="Only this pool's workers."),
    kubeconfig: str | None = KUBECONFIG,
    context: str | None = CONTEXT,
    namespace: str | None = NAMESPACE,
    all_namespaces: bool = ALL_NAMESPACES,
    output: Format = OUTPUT,
    operator_service: str | None = OPERATOR_SERVICE,
    operator_url: str | None = OPERATOR_URL,
) -> None:
    """The worker Pods of each pool: phase, readiness, restarts, age, node, and the item
    each holds with its heartbeat's age (from the operator's read API)."""
    target = _target(kubeconfig, context, namespace, all_namespaces)
    api = OperatorApi.connect(target, operator_service, operator_url)
    found = [target.get("WorkerPool", pool)] if pool else target.objects("WorkerPool")
    now = datetime.now(UTC)
    held: dict[str, list[HeldItem]] = {}
    rows: list[WorkerRow] = []
    for item in found:
        selector = (item.get("status") or {}).get("selector")
        if not selector:
            continue
        ns, name = item["metadata"]["namespace"], item["metadata"]["name"]
        if ns not in held:
            held[ns] = api.get(_path(ns, "workers"), InFlightReport).items
        rows += [worker_row(pod, name, now, held[ns]) for pod in target.pods(ns, selector)]
    _print_rows(
        output, rows, "Worker",
        ["NAMESPACE", "POOL", "WORKER", "PHASE", "READY", "RESTARTS", "AGE", "NODE", "ITEM",
         "HEARTBEAT"],
        lambda r: [
            r.namespace, r.pool, r.name, r.phase + (" (terminating)" if r.deleting else ""),
            "yes" if r.ready else "no", str(r.restarts), duration(r.age_seconds), r.node or "-",
            ", ".join(r.items) or "idle", duration(r.heartbeat_age_seconds),
        ],
        "No workers running.",
    )  # fmt: skip


@one_line_errors
def metrics(
    window: str = typer.Option("1h", "--window", help="How far back: 30m, 1h, 1d, ..."),
    kubeconfig: str | None = KUBECONFIG,
    context: str | None = CONTEXT,
    namespace: str | None = NAMESPACE,
    all_namespaces: bool = ALL_NAMESPACES,
    output: Format = OUTPUT,
    operator_service: str | None = OPERATOR_SERVICE,
    operator_url: str | None = OPERATOR_URL,
) -> None:
    """Throughput per Project stage over a window (finished per hour) next to the seeds'
    goal, success rate, dead letters, rework (items that needed more than one attempt),
    the mean time in the stage and since the work entered the pipeline (at the last
    stage: the pipeline time)."""
    try:
        seconds = parse_duration(window)
    except ValueError as exc:
        raise CliError(f"--window: {exc}") from None
    target = _target(kubeconfig, context, namespace, all_namespaces)
    rows = _throughput(target, OperatorApi.connect(target, operator_service, operator_url), seconds)
    _print_rows(
        output, rows, "StageMetrics",
        ["NAMESPACE", "PROJECT", "STAGE", "FINISHED", "PER HOUR", "GOAL", "SUCCESS", "DEAD",
         "REWORK", "IN STAGE", "PIPELINE"],
        lambda r: [
            r.namespace, r.project, r.stage, str(r.finished), number(r.per_hour, 1),
            _goal(r), _percent(r.success_rate), str(r.dead_lettered), _percent(r.rework_rate),
            duration(r.stage_seconds), duration(r.pipeline_seconds),
        ],
        f"Nothing finished in the last {duration(seconds)}.",
    )  # fmt: skip


def _goal(row: StageMetricsRow) -> str:
    if row.target_per_hour is None:
        return "-"
    return f">={row.target_per_hour:g}/h" + (" per worker" if row.target_per_worker else "")


@one_line_errors
def alerts(
    kubeconfig: str | None = KUBECONFIG,
    context: str | None = CONTEXT,
    namespace: str | None = NAMESPACE,
    all_namespaces: bool = ALL_NAMESPACES,
    output: Format = OUTPUT,
    operator_service: str | None = OPERATOR_SERVICE,
    operator_url: str | None = OPERATOR_URL,
) -> None:
    """The fleet's alerts that fire (or are about to) in Prometheus, read by the operator:
    those of the namespace and the fleet-wide ones (-A: all)."""
    target = _target(kubeconfig, context, namespace, all_namespaces)
    api = OperatorApi.connect(target, operator_service, operator_url)
    query = {} if target.namespace is None else {"namespace": target.namespace}
    report = api.get(f"{API_PREFIX}/alerts", AlertReport, **query)
    if not report.prometheus:
        raise CliError(
            "the operator has no Prometheus to read alerts from (operator --prometheus-url, "
            "chart value prometheus.url)"
        )
    _print_rows(
        output, alert_rows(report), "Alert",
        ["NAME", "STATE", "SEVERITY", "NAMESPACE", "SINCE", "SUMMARY"],
        lambda a: [
            a.name, a.state, a.severity or "-", a.namespace or "-", a.active_at or "-", a.summary,
        ],
        "No alert is firing.",
    )  # fmt: skip


@one_line_errors
def retry(
    project: str = typer.Argument(..., help="The Project whose dead letters to retry."),
    item: list[str] = typer.Option(
        [], "--item", help="Only this dead-lettered item (repeatable); default: all of them."
    ),
    list_only: bool = typer.Option(
        False, "--list", help="Only list the Project's dead letters (reading is enough)."
    ),
    kubeconfig: str | None = KUBECONFIG,
    context: str | None = CONTEXT,
    namespace: str | None = NAMESPACE,
    output: Format = OUTPUT,
    operator_service: str | None = OPERATOR_SERVICE,
    operator_url: str | None = OPERATOR_URL,
) -> None:
    """Put a Project's dead-lettered items back in the queue (attempts reset). The
    operator checks that you may patch the Project (a SubjectAccessReview of your
    identity). With --list, show them instead."""
    target = _target(kubeconfig, context, namespace, False)
    ns = target.require_namespace()
    api = OperatorApi.connect(target, operator_service, operator_url)
    if list_only:
        report = api.get(_path(ns, "projects", project, "deadletters"), DeadLetterReport)
        _print_rows(
            output, dead_letter_rows(report), "DeadLetter",
            ["NAMESPACE", "PROJECT", "ITEM", "STAGE", "ATTEMPTS", "ERROR"],
            lambda d: [
                d.namespace, d.project, d.item_id, d.stage or "(unreadable)", str(d.attempts),
                d.error or "-",
            ],
            f"No dead-lettered item in project {ns}/{project}.",
        )  # fmt: skip
        return
    result = api.post(
        _path(ns, "projects", project, "retry"),
        RetryResult,
        RetryRequest(item_ids=list(item) or None),
    )
    if not result.requeued:
        typer.echo(f"project {ns}/{project}: no dead-lettered item to retry")
        return
    typer.echo(
        f"project {ns}/{project}: {len(result.requeued)} dead-lettered item(s) queued again "
        f"({', '.join(result.requeued)})"
    )


def requirements_from(text: str, name: str) -> list[Requirement]:
    """A batch file's requirements: a YAML or JSON list of `{title, body}` objects or of
    strings, or plain text with one requirement per paragraph (its first line the title)."""
    if name.endswith((".yaml", ".yml", ".json")):
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise CliError(f"{name}: not YAML or JSON: {exc}") from exc
        if not isinstance(loaded, list):
            raise CliError(f"{name}: expected a list of requirements")
        found = []
        for index, entry in enumerate(loaded, 1):
            raw = {"title": entry} if isinstance(entry, str) else entry
            try:
                found.append(Requirement.model_validate(raw))
            except ValueError as exc:
                raise CliError(f"{name}: requirement {index} is not {{title, body}}") from exc
        return found
    paragraphs = [p.strip() for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    return [_requirement(p) for p in paragraphs]


def _requirement(text: str) -> Requirement:
    """A requirement from text: its first line is the title, the rest the body."""
    lines = text.strip().splitlines()
    return Requirement(title=lines[0].strip()[:256], body="\n".join(lines[1:]).strip())


@one_line_errors
def dispatch(
    project: str = typer.Argument(..., help="The Project to start work in."),
    issue: list[int] = typer.Option(
        [], "--issue", help="An existing GitHub issue to start (repeatable)."
    ),
    text: list[str] = typer.Option(
        [], "--text", help="A requirement: its first line is the new issue's title (repeatable)."
    ),
    file: str | None = typer.Option(
        None,
        "--file",
        "-f",
        help="A batch of requirements: YAML/JSON list, or one paragraph each ('-': stdin).",
    ),
    kubeconfig: str | None = KUBECONFIG,
    context: str | None = CONTEXT,
    namespace: str | None = NAMESPACE,
    output: Format = OUTPUT,
    operator_service: str | None = OPERATOR_SERVICE,
    operator_url: str | None = OPERATOR_URL,
) -> None:
    """Start genesis work now: existing issues by number, new ones from text (opened with
    the Project's intake label, once: the same text again finds its issue). The operator
    checks that you may patch the Project, as for retry."""
    requirements = [_requirement(t) for t in text if t.strip()]
    if file is not None:
        try:
            content = sys.stdin.read() if file == "-" else Path(file).read_text()
        except OSError as exc:
            raise CliError(f"{file}: {exc.strerror or exc}") from exc
        requirements += requirements_from(content, file)
    if not issue and not requirements:
        raise CliError("nothing to dispatch: give --issue, --text or --file")
    target = _target(kubeconfig, context, namespace, False)
    ns = target.require_namespace()
    api = OperatorApi.connect(target, operator_service, operator_url)
    result = api.post(
        _path(ns, "projects", project, "dispatch"),
        DispatchResult,
        DispatchRequest(issues=list(issue), requirements=requirements),
    )
    _print_rows(
        output, dispatch_rows(result), "Dispatch",
        ["ISSUE", "TITLE", "ITEM", "QUEUED"],
        lambda d: [
            f"#{d.issue}" if d.issue is not None else "-", d.title[:60] or "-",
            d.item_id or "-",
            d.error or ("new" if d.new else "already queued or done")
            + (" (issue opened)" if d.created else ""),
        ],
        f"Nothing dispatched in project {ns}/{project}.",
    )  # fmt: skip


def _act(
    kind: str, name: str, patch: dict[str, Any], done: str, kubeconfig: str | None,
    context: str | None, namespace: str | None,
) -> None:  # fmt: skip
    target = _target(kubeconfig, context, namespace, False)
    target.patch(kind, name, patch)
    typer.echo(f"{kind.lower()} {target.namespace}/{name} {done}")


@one_line_errors
def pause(
    project: str = typer.Argument(..., help="The Project to stop."),
    kubeconfig: str | None = KUBECONFIG,
    context: str | None = CONTEXT,
    namespace: str | None = NAMESPACE,
) -> None:
    """Emergency stop: the Project's work is held (never dropped), its pools scale down."""
    _act(
        "Project", project, {"spec": {"paused": True}},
        "paused: its queued work is held, never dropped; `agentfleet resume` releases it",
        kubeconfig, context, namespace,
    )  # fmt: skip


@one_line_errors
def resume(
    project: str = typer.Argument(..., help="The Project to resume."),
    kubeconfig: str | None = KUBECONFIG,
    context: str | None = CONTEXT,
    namespace: str | None = NAMESPACE,
) -> None:
    """Release a paused Project: its held work is queued again."""
    _act(
        "Project", project, {"spec": {"paused": False}}, "resumed: its held work is queued again",
        kubeconfig, context, namespace,
    )  # fmt: skip


@one_line_errors
def priority(
    project: str = typer.Argument(..., help="The Project."),
    lane: Priority = typer.Argument(..., help="urgent, high, normal or low."),
    kubeconfig: str | None = KUBECONFIG,
    context: str | None = CONTEXT,
    namespace: str | None = NAMESPACE,
) -> None:
    """Move a Project to a lane: raised, its queued work moves up with it; lowered, its
    new work goes to the lower lane."""
    _act(
        "Project", project, {"spec": {"priority": lane.value}},
        f"now in the {lane.value} lane (the operator moves its queued work up; an Event "
        "PriorityChanged says how many items)",
        kubeconfig, context, namespace,
    )  # fmt: skip


@one_line_errors
def scale(
    pool: str = typer.Argument(..., help="The WorkerPool."),
    replicas: int | None = typer.Argument(None, min=0, help="Pin the pool at this many workers."),
    auto: bool = typer.Option(False, "--auto", help="Give the replicas back to the autoscaler."),
    kubeconfig: str | None = KUBECONFIG,
    context: str | None = CONTEXT,
    namespace: str | None = NAMESPACE,
) -> None:
    """Pin a pool's workers (autoscaling off), or hand them back to the autoscaler (--auto)."""
    if auto == (replicas is not None):
        raise CliError("give either a number of replicas or --auto")
    if auto:
        patch: dict[str, Any] = {"spec": {"replicas": None, "autoscaling": {"enabled": True}}}
        done = "scaled by the autoscaler again"
    else:
        patch = {"spec": {"replicas": replicas, "autoscaling": {"enabled": False}}}
        done = f"pinned at {replicas} worker(s); `agentfleet scale {pool} --auto` undoes it"
    _act("WorkerPool", pool, patch, done, kubeconfig, context, namespace)


@one_line_errors
def restart(
    worker: str = typer.Argument(..., help="The worker Pod (see `agentfleet workers`)."),
    kubeconfig: str | None = KUBECONFIG,
    context: str | None = CONTEXT,
    namespace: str | None = NAMESPACE,
) -> None:
    """Restart a stuck worker: its Pod is deleted (it drains: the item it holds is
    finished or released) and the pool's Deployment starts another."""
    target = _target(kubeconfig, context, namespace, False)
    pod = target.pod(worker)
    pool = (pod["metadata"].get("labels") or {}).get(LABEL_POOL)
    if not pool:
        raise CliError(
            f"pod {target.namespace}/{worker} is not an agentfleet worker (no {LABEL_POOL} label)"
        )
    target.delete_pod(worker)
    typer.echo(
        f"worker {target.namespace}/{worker} of pool {pool} restarting: its item is finished or "
        "released to another worker, and the pool starts a new Pod"
    )


def watchable(command: Callable[..., None]) -> Callable[..., None]:
    """`command` with `--watch/-w` and `--interval`: run again every interval until Ctrl-C
    (a table redrawn in place; with -o json or yaml, one document per interval)."""
    signature = inspect.signature(command)
    extra = [
        inspect.Parameter(
            "watch", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
            default=typer.Option(False, "--watch", "-w", help="Show it again every interval."),
        ),
        inspect.Parameter(
            "interval", inspect.Parameter.KEYWORD_ONLY, annotation=float,
            default=typer.Option(2.0, "--interval", min=0.5, help="Seconds between two views."),
        ),
    ]  # fmt: skip

    @functools.wraps(command)
    def run(*args: Any, watch: bool = False, interval: float = 2.0, **kwargs: Any) -> None:
        if not watch:
            command(*args, **kwargs)
            return
        console = Console()
        table = kwargs.get("output", Format.TABLE) is Format.TABLE
        try:
            while True:
                if table:
                    console.clear()
                command(*args, **kwargs)
                if table:
                    at = datetime.now(UTC).strftime("%H:%M:%S")
                    console.print(f"[dim]{at} UTC, every {interval:g} s; Ctrl-C stops[/dim]")
                elif kwargs.get("output") is Format.YAML:
                    typer.echo("---")
                sys.stdout.flush()
                time.sleep(interval)
        except KeyboardInterrupt:
            return

    params = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    run.__signature__ = signature.replace(parameters=[*params, *extra])  # type: ignore[attr-defined]
    return run


WATCHABLE = ("status", "queues", "pools", "workers", "bottlenecks", "metrics")
"""Commands that take --watch: the ones that show state."""


def register(app: typer.Typer) -> None:
    """Add the fleet commands to the `agentfleet` command line."""
    for command in (
        status, queues, bottlenecks, pools, workers, metrics, alerts, pause, resume, priority,
        scale, restart, retry, dispatch,
    ):  # fmt: skip
        name = command.__name__
        app.command(name)(watchable(command) if name in WATCHABLE else command)
