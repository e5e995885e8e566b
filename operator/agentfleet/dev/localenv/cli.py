"""`agentfleet dev ...`: the local environment for people (cluster-up/down, demo)."""

from __future__ import annotations

from pathlib import Path

import typer

from agentfleet.dev.localenv import cluster
from agentfleet.dev.localenv.binaries import controlplane_bin_dir
from agentfleet.dev.localenv.node import NodeUnavailableError

dev_app = typer.Typer(help="Local development environment (real servers, no Docker).")


@dev_app.command("cluster-up")
def cluster_up(
    directory: Path = typer.Option(cluster.DEFAULT_DIR, help="State and log directory."),
) -> None:
    """Start a local cluster in the background: the control plane and one real node."""
    try:
        kubeconfig = cluster.up(directory)
    except (NodeUnavailableError, cluster.ClusterStartError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    bin_dir = controlplane_bin_dir()
    typer.echo("local cluster is up (control plane and one node). Use it with:")
    typer.echo(f"  export KUBECONFIG={kubeconfig}")
    typer.echo(f"  export PATH={bin_dir}:$PATH   # kubectl, helm, crictl")
    typer.echo("  kubectl get nodes,pods -A -o wide")
    typer.echo(f"component logs: {directory.resolve() / 'state'}")
    typer.echo("stop it with: make cluster-down")


@dev_app.command("cluster-down")
def cluster_down(
    directory: Path = typer.Option(cluster.DEFAULT_DIR, help="State and log directory."),
) -> None:
    """Stop the cluster started by cluster-up (no process, mount or link is left behind)."""
    if cluster.down(directory):
        typer.echo("local cluster stopped")
    else:
        typer.echo("no local cluster was running")


@dev_app.command("demo")
def demo(
    burst: int = typer.Option(60, help="Items enqueued at once."),
    work_seconds: float = typer.Option(1.0, help="Seconds of work per item."),
    max_replicas: int = typer.Option(6, help="The pool's maxReplicas."),
    out_dir: Path = typer.Option(Path("out/demo"), help="Where the plot and CSV go."),
) -> None:
    """Local stack + operator + sample project; a burst scales the pool up and back down."""
    from agentfleet.dev.localenv.demo import Demo

    Demo(burst=burst, work_seconds=work_seconds, max_replicas=max_replicas, out_dir=out_dir).run()
