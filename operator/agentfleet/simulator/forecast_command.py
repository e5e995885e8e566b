"""`agentfleet forecast`: when each Project's queued work will be done, at its pool's
current capacity and at its maximum, from the arrival and service rates the operator
observes (its read API, `GET /v1/namespaces/{ns}/forecast`), by running the simulator's
engine here, on the user's machine (`agentfleet.simulator.live`).

It lives with the simulator, not in `agentfleet.ctl`: the fleet CLI's package may not
import the simulator (which builds on the operator's decision function), while the
simulator may use the CLI's client and output helpers."""

from __future__ import annotations

from datetime import datetime

import typer
from rich.console import Console

from agentfleet.core.fleetapi import API_PREFIX, Scope
from agentfleet.core.forecastapi import DrainFigures, ForecastObservations, ForecastRow
from agentfleet.ctl.commands import (
    ALL_NAMESPACES,
    CONTEXT,
    KUBECONFIG,
    NAMESPACE,
    OPERATOR_SERVICE,
    OPERATOR_URL,
    OUTPUT,
    one_line_errors,
)
from agentfleet.ctl.kube import CliError, Target
from agentfleet.ctl.operatorapi import OperatorApi
from agentfleet.ctl.output import (
    Format,
    duration,
    emit,
    machine,
    make_table,
    number,
    parse_duration,
)
from agentfleet.simulator.live import forecast_rows

HEADERS = [
    "NAMESPACE", "POOL", "PROJECT", "QUEUED", "RUNNING", "ARRIVALS/H", "SERVICE", "REPLICAS",
    "DONE NOW", "DRAINED NOW", "DONE AT MAX", "DRAINED AT MAX", "NOTE",
]  # fmt: skip


def _when(figures: DrainFigures | None, done: bool) -> str:
    if figures is None:
        return "-"
    seconds, at = (
        (figures.done_seconds, figures.done_at)
        if done
        else (figures.drained_seconds, figures.drained_at)
    )
    if seconds is None or at is None:
        return "never"
    return f"{duration(seconds)} ({_clock(at)})"


def _clock(at: datetime) -> str:
    """The moment in local time: the hour today, else the date too."""
    local = at.astimezone()
    today = datetime.now(local.tzinfo).date()
    return local.strftime("%H:%M" if local.date() == today else "%m-%d %H:%M")


def cells(row: ForecastRow, observed_pools: dict[tuple[str, str], tuple[int, int]]) -> list[str]:
    replicas, maximum = observed_pools[row.namespace, row.pool]
    return [
        row.namespace, row.pool, row.project, str(row.queued), str(row.in_progress),
        number(row.arrivals_per_hour, 1),
        "-" if row.service_seconds is None else duration(row.service_seconds),
        f"{replicas}/{maximum}",
        _when(row.current, True), _when(row.current, False),
        _when(row.maximum, True), _when(row.maximum, False),
        row.cannot_forecast or "",
    ]  # fmt: skip


@one_line_errors
def forecast(
    window: str = typer.Option(
        "1h", "--window", help="How far back the rates are measured: 30m, 1h, 1d, ..."
    ),
    kubeconfig: str | None = KUBECONFIG,
    context: str | None = CONTEXT,
    namespace: str | None = NAMESPACE,
    all_namespaces: bool = ALL_NAMESPACES,
    output: Format = OUTPUT,
    operator_service: str | None = OPERATOR_SERVICE,
    operator_url: str | None = OPERATOR_URL,
) -> None:
    """When each Project's queued work will be done, at its pool's current replicas and
    at its maximum, from the arrival and service rates observed over the window (the
    simulator's engine, run on the operator's observations)."""
    try:
        seconds = parse_duration(window)
    except ValueError as exc:
        raise CliError(f"--window: {exc}") from None
    target = Target.connect(kubeconfig, context, namespace, all_namespaces)
    api = OperatorApi.connect(target, operator_service, operator_url)
    if target.namespace is not None:
        namespaces = [target.namespace]
    else:
        # Every namespace with a WorkerPool that the operator serves (`/v1/scope`): a pool
        # elsewhere has no queue this operator knows.
        scope = api.get(f"{API_PREFIX}/scope", Scope)
        found = {p["metadata"]["namespace"] for p in target.objects("WorkerPool")}
        namespaces = sorted(ns for ns in found if scope.serves(ns))
    rows: list[ForecastRow] = []
    pools: dict[tuple[str, str], tuple[int, int]] = {}
    sources: set[str] = set()
    for ns in namespaces:
        observed = api.get(
            f"{API_PREFIX}/namespaces/{ns}/forecast",
            ForecastObservations,
            windowSeconds=str(seconds),
        )
        sources.add(observed.source_note)
        for pool in observed.pools:
            pools[ns, pool.pool] = (pool.replicas, pool.max_replicas)
        rows += forecast_rows(observed)
    console = Console()

    def table() -> None:
        if not rows:
            console.print("No Project has work for a pool here.")
            return
        out = make_table(None, HEADERS)
        for row in rows:
            out.add_row(*cells(row, pools))
        console.print(out)
        for note in sorted(sources):
            console.print(f"rates over the last {window}: {note}", highlight=False)

    emit(console, output, machine(rows, "Forecast"), table)
