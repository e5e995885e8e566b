"""`agentfleet simulate`: replay a trace through a WorkerPool's policy, compare, plot."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from agentfleet.simulator.compare import PoolPolicy, compare
from agentfleet.simulator.report import LEGEND, decisions_table, results_table, write_plot
from agentfleet.simulator.trace import TraceError, bursty_trace, load_csv


def simulate(
    trace: Path | None = typer.Option(
        None,
        exists=True,
        dir_okay=False,
        help="CSV of arrival_seconds[,service_seconds]. Default: the built-in bursty trace.",
    ),
    pool: Path | None = typer.Option(
        None,
        exists=True,
        dir_okay=False,
        help="WorkerPool manifest whose policy to replay. Default: a WorkerPool's defaults.",
    ),
    min_replicas: int | None = typer.Option(None, min=0, help="Override spec.minReplicas."),
    max_replicas: int | None = typer.Option(None, min=1, help="Override spec.maxReplicas."),
    seed: int = typer.Option(7, help="Seed of the bursty trace and of drawn service times."),
    hours: float = typer.Option(6.0, min=0.1, help="Length of the bursty trace."),
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
    plot: Path = typer.Option(Path("simulation.png"), help="Where to write the PNG."),
    explain: bool = typer.Option(False, help="Also list agentfleet's scale decisions."),
) -> None:
    """Replay an arrival trace through a WorkerPool's autoscaling policy and compare it with
    static provisioning and a queue-length target: waits, pod-hours, scale events, plot."""
    console = Console()
    try:
        arrivals = (
            load_csv(trace, service_mean, seed)
            if trace is not None
            else bursty_trace(
                seed=seed,
                duration_seconds=hours * 3600,
                bursts=bursts,
                service_mean_seconds=service_mean,
            )
        )
        policy = (PoolPolicy.from_yaml(pool) if pool else PoolPolicy.defaults()).with_bounds(
            min_replicas, max_replicas
        )
    except (TraceError, ValueError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from exc

    source = str(trace) if trace else f"bursty generator (seed {seed}, {hours:g}h, {bursts} bursts)"
    spec = policy.autoscaling
    console.print(
        f"trace: {source}: {len(arrivals)} items\n"
        f"pool: replicas {policy.min_replicas}..{policy.max_replicas}, "
        f"poll {spec.poll_interval_seconds}s, up step {spec.scale_up.step} "
        f"(stabilization {spec.scale_up.stabilization_seconds}s), down step "
        f"{spec.scale_down.step} (cooldown {spec.scale_down.cooldown_seconds}s); "
        f"pod start-up {startup_seconds:g}s"
    )
    comparison = compare(
        arrivals,
        policy,
        static_replicas=static_replicas or policy.max_replicas,
        queue_target=queue_target,
        startup_seconds=startup_seconds,
        tail_seconds=tail_seconds,
    )
    console.print(results_table(comparison))
    console.print(LEGEND, style="dim")
    if explain:
        console.print(decisions_table(comparison))
    console.print(f"plot: {write_plot(comparison, plot)}")
