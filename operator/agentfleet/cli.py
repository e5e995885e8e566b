"""The `agentfleet` command line. Each subsystem owns its commands; this file wires them."""

from __future__ import annotations

from importlib.util import find_spec

import typer

from agentfleet import __version__
from agentfleet.core.queue.cli import queue_exporter
from agentfleet.ctl.commands import register as register_fleet_commands
from agentfleet.operator.cli import operator
from agentfleet.simulator.cli import simulate
from agentfleet.simulator.forecast_command import forecast
from agentfleet.worker.cli import worker
from agentfleet.worker.sandbox.cli import sandbox

app = typer.Typer(
    name="agentfleet",
    help="Autoscaling fleets of Claude coding agents on Kubernetes.",
    no_args_is_help=True,
    add_completion=False,
)
# `agentfleet dev` (the local cluster, the demo) lives in agentfleet.dev, which only a
# source checkout has: the wheel and the images leave it out.
if find_spec("agentfleet.dev") is not None:
    from agentfleet.dev.localenv.cli import dev_app

    app.add_typer(dev_app, name="dev")
register_fleet_commands(app)
app.command("worker")(worker)
app.command("queue-exporter")(queue_exporter)
app.command("operator")(operator)
app.command("sandbox")(sandbox)
app.command("simulate")(simulate)
app.command("forecast")(forecast)


@app.command()
def version() -> None:
    """Print the agentfleet version."""
    typer.echo(__version__)


def main() -> None:
    app()


def kubectl_plugin() -> None:
    """`kubectl-agentfleet` on $PATH: kubectl runs it as `kubectl agentfleet ...`."""
    app(prog_name="kubectl agentfleet")
