"""`agentfleet queue-exporter`: the queue's Prometheus metrics on their own endpoint."""

from __future__ import annotations

import logging
import signal
import threading

import typer
from prometheus_client import CollectorRegistry, start_http_server
from redis import Redis

from agentfleet.core.queue.metrics import QueueCollector
from agentfleet.core.redaction import display_url


def queue_exporter(
    redis_url: str = typer.Option(
        "redis://127.0.0.1:6379/0", envvar="AGENTFLEET_REDIS_URL", help="Redis URL."
    ),
    port: int = typer.Option(9100, envvar="AGENTFLEET_METRICS_PORT", help="HTTP port."),
    address: str = typer.Option("0.0.0.0", help="Address to listen on."),
    heartbeat_timeout: float = typer.Option(
        300.0,
        envvar="AGENTFLEET_HEARTBEAT_TIMEOUT",
        help="Must match the workers': silent items count as waiting after this.",
    ),
    namespace: list[str] = typer.Option(
        [], help="Only these namespaces (repeatable; default: every namespace seen)."
    ),
) -> None:
    """Serve queue depth, oldest wait, in-flight, held and completion metrics."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    redis: Redis[str] = Redis.from_url(redis_url, decode_responses=True)
    registry = CollectorRegistry()
    registry.register(
        QueueCollector(redis, heartbeat_timeout=heartbeat_timeout, namespaces=namespace)
    )
    server, _ = start_http_server(port, addr=address, registry=registry)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    typer.echo(
        f"serving queue metrics of {display_url(redis_url)} on http://{address}:{port}/metrics"
    )
    stop.wait()
    server.shutdown()
    redis.close()
