"""`agentfleet simulate`: replay a trace through a WorkerPool's policy, compare, plot."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from agentfleet.core.api.autoscaling import AutoscalingSpec
from agentfleet.simulator.compare import PoolPolicy, compare
from agentfleet.simulator.engine import RateLimit
from agentfleet.simulator.forecast import replay
from agentfleet.simulator.report import (
    LEGEND,
    decisions_table,
    forecast_table,
    results_table,
    write_plot,
)
from agentfleet.simulator.trace import (
    Arrival,
    TraceError,
    bursty_trace,
    daily_trace,
    load_csv,
    spike_trace,
    steady_trace,
)


class Shape(StrEnum):
    """The built-in trace generators."""

    BURSTY = "bursty"
    DAILY = "daily"
    SPIKE = "spike"
    STEADY = "steady"


DEFAULT_HOURS = {Shape.BURSTY: 6.0, Shape.DAILY: 72.0, Shape.SPIKE: 6.0, Shape.STEADY: 24.0}
DEFAULT_SEEDS = {Shape.BURSTY: 7, Shape.DAILY: 11, Shape.SPIKE: 13, Shape.STEADY: 17}


def describe_policy(spec: AutoscalingSpec) -> str:
    """The scaling options in one line: steps, timers, prediction, rate limits."""
    up, down, prediction = spec.scale_up, spec.scale_down, spec.prediction
    if up.sizing == "backlog":
        rise = f"up sized to drain in {up.drain_seconds}s (step {up.step} until a service time)"
    else:
        rise = f"up step {up.step}"
    fall = "down to the busy workers" if down.sizing == "backlog" else f"down step {down.step}"
    parts = [
        f"{rise} (stabilization {up.stabilization_seconds}s)",
        f"{fall} (cooldown {down.cooldown_seconds}s)",
    ]
    if not up.utilization_needs_backlog:
        parts.append("utilization alone scales up")
    if prediction.enabled:
        seasonal = f", period {prediction.period_seconds}s" if prediction.period_seconds else ""
        parts.append(
            f"prediction (window {prediction.window_seconds}s{seasonal},"
            f" wait p {prediction.wait_probability:g})"
        )
    parts.append("rate limits hold scale-ups" if spec.rate_limit.enabled else "rate limits ignored")
    return ", ".join(parts)


def generated_trace(
    shape: Shape, seed: int, hours: float, bursts: int, service_mean: float
) -> tuple[list[Arrival], str]:
    """A built-in trace and how to describe it."""
    seconds = hours * 3600
    makers: dict[Shape, tuple[Callable[[], list[Arrival]], str]] = {
        Shape.BURSTY: (
            lambda: bursty_trace(
                seed=seed,
                duration_seconds=seconds,
                bursts=bursts,
                service_mean_seconds=service_mean,
            ),
            f"bursty generator (seed {seed}, {hours:g}h, {bursts} bursts)",
        ),
        Shape.DAILY: (
            lambda: daily_trace(seed=seed, days=hours / 24, service_mean_seconds=service_mean),
            f"daily cycle (seed {seed}, {hours:g}h, 0.5/h at night to 8/h mid-day)",
        ),
        Shape.SPIKE: (
            lambda: spike_trace(
                seed=seed, duration_seconds=seconds, service_mean_seconds=service_mean
            ),
            f"one spike (seed {seed}, {hours:g}h, 80 items at 1h on 2/h)",
        ),
        Shape.STEADY: (
            lambda: steady_trace(
                seed=seed, duration_seconds=seconds, service_mean_seconds=service_mean
            ),
            f"steady trickle (seed {seed}, {hours:g}h, 2/h)",
        ),
    }
    make, description = makers[shape]
    return make(), description


def simulate(
    trace: Path | None = typer.Option(
        None,
        exists=True,
        dir_okay=False,
        help="CSV of arrival_seconds[,service_seconds[,project]]. Default: a built-in shape.",
    ),
    pool: Path | None = typer.Option(
        None,
        exists=True,
        dir_okay=False,
        help="WorkerPool manifest whose policy to replay. Default: a WorkerPool's defaults.",
    ),
    min_replicas: int | None = typer.Option(None, min=0, help="Override spec.minReplicas."),
    max_replicas: int | None = typer.Option(None, min=1, help="Override spec.maxReplicas."),
    shape: Shape = typer.Option(
        Shape.BURSTY, help="Built-in trace to generate when no --trace is given."
    ),
    seed: int | None = typer.Option(
        None,
        help="Seed of the generated trace and of drawn service times. Default: the shape's "
        "(bursty 7, daily 11, spike 13, steady 17).",
    ),
    hours: float | None = typer.Option(
        None,
        min=0.1,
        help="Length of the generated trace. Default: the shape's (6, 72, 6, 24).",
    ),
    bursts: int = typer.Option(4, min=0, help="Bursts in the bursty trace."),
    service_mean: float = typer.Option(
        600.0, min=1, help="Mean seconds per item where the trace gives none."
    ),
    startup_seconds: float = typer.Option(
        60.0, min=0, help="Seconds from scale-up until a new pod takes work."
    ),
    static_replicas: int | None = typer.Option(
        None, min=1, help="Replicas of the static policy. Default: maxReplicas."
    ),
    queue_target: int = typer.Option(
        5, min=1, help="Items per replica of the queue-length-target (KEDA-style) policy."
    ),
    tail_seconds: float = typer.Option(
        3600.0, min=0, help="Simulated time after the last arrival."
    ),
    rate_limit_sessions: float | None = typer.Option(
        None,
        min=0.1,
        help="Simulate a model-API rate limit: the API serves this many agent sessions at "
        "full speed; more busy workers share it and are answered 429.",
    ),
    forecast_at: float | None = typer.Option(
        None,
        min=0,
        help="Also forecast, at this second of the trace, when each Project's queued work "
        "is done at the pool's replicas then and at maxReplicas, and compare with what the "
        "simulation then measures.",
    ),
    plot: Path = typer.Option(Path("simulation.png"), help="Where to write the PNG."),
    explain: bool = typer.Option(False, help="Also list agentfleet's scale decisions."),
) -> None:
    """Replay an arrival trace through a WorkerPool's autoscaling policy and compare it with
    static provisioning and a queue-length target: waits, pod-hours, scale events, plot."""
    console = Console()
    seed = DEFAULT_SEEDS[shape] if seed is None else seed
    hours = DEFAULT_HOURS[shape] if hours is None else hours
    try:
        if trace is not None:
            arrivals, source = load_csv(trace, service_mean, seed), str(trace)
        else:
            arrivals, source = generated_trace(shape, seed, hours, bursts, service_mean)
        policy = (PoolPolicy.from_yaml(pool) if pool else PoolPolicy.defaults()).with_bounds(
            min_replicas, max_replicas
        )
    except (TraceError, ValueError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from exc

    limit = None if rate_limit_sessions is None else RateLimit(rate_limit_sessions)
    spec = policy.autoscaling
    console.print(
        f"trace: {source}: {len(arrivals)} items\n"
        f"pool: replicas {policy.min_replicas}..{policy.max_replicas}, "
        f"poll {spec.poll_interval_seconds}s, {describe_policy(spec)}; "
        f"pod start-up {startup_seconds:g}s"
        + ("" if limit is None else f"; model API serves {limit.sessions:g} sessions")
    )
    comparison = compare(
        arrivals,
        policy,
        static_replicas=static_replicas or policy.max_replicas,
        queue_target=queue_target,
        startup_seconds=startup_seconds,
        tail_seconds=tail_seconds,
        rate_limit=limit,
    )
    console.print(results_table(comparison))
    console.print(LEGEND, style="dim")
    if explain:
        console.print(decisions_table(comparison))
    if forecast_at is not None:
        console.print(
            forecast_table(
                replay(
                    arrivals,
                    spec,
                    min_replicas=policy.min_replicas,
                    max_replicas=policy.max_replicas,
                    start_replicas=policy.start_replicas,
                    at_seconds=forecast_at,
                    startup_seconds=startup_seconds,
                    rate_limit=limit,
                )
            )
        )
    console.print(f"plot: {write_plot(comparison, plot)}")
