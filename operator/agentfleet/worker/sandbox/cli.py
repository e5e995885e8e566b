"""`agentfleet sandbox`: the command of a worker Pod's sandbox container."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import typer

from agentfleet.core.podenv import SANDBOX_SOCKET, WORKSPACE_DIR
from agentfleet.worker.sandbox.server import serve


def sandbox(
    socket: Path = typer.Option(Path(SANDBOX_SOCKET), help="Unix socket to listen on."),
    root: Path = typer.Option(
        Path(WORKSPACE_DIR), help="Workspace root: commands run only in directories below it."
    ),
    home: Path = typer.Option(Path("/tmp"), help="HOME of the commands (scratch space)."),
    log_level: str = typer.Option("INFO", help="Python log level."),
) -> None:
    """Run the commands the worker container hands over, in the shared workspace, with
    no credentials (the sandbox container of a worker Pod)."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not root.is_dir():
        typer.echo(f"error: the workspace root {root} is not a directory", err=True)
        raise typer.Exit(2)
    asyncio.run(serve(socket, root, home))
