"""An exporter publishing the queue and worker metrics the autoscaler reads, scraped by a
real Prometheus; and a Prometheus of our own for tests that stop it."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import pytest
from autoscaler_exporter import OwnPrometheus, QueueExporter

from agentfleet.localenv import PrometheusServer


@pytest.fixture(scope="session")
def exporter(prometheus_server: PrometheusServer) -> Iterator[QueueExporter]:
    """An exporter the shared Prometheus scrapes every second.

    One for the whole run: Prometheus applies target changes at most every 5 s, so a new
    target per test would cost that each time. Tests keep apart by namespace label.
    """
    published = QueueExporter()
    prometheus_server.add_target(published.address)
    yield published
    prometheus_server.remove_target(published.address)
    published.close()


@pytest.fixture
def test_namespace() -> str:
    """A namespace label no other test publishes, so series from parallel areas never match."""
    return f"as-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def _own_prometheus_session(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OwnPrometheus]:
    exporter = QueueExporter()
    workdir = tmp_path_factory.mktemp("own-prometheus")
    server = PrometheusServer(workdir=workdir, scrape_interval="1s")
    # Registered before start, so there is a single target-discovery delay for the run.
    server.set_targets({exporter.address: {}})
    server.start()
    yield OwnPrometheus(server, exporter)
    server.stop()
    exporter.close()


@pytest.fixture
def own_prometheus(_own_prometheus_session: OwnPrometheus) -> Iterator[OwnPrometheus]:
    """A Prometheus this test may stop and start again (same port, same data), scraping an
    exporter of its own; running again after every test."""
    yield _own_prometheus_session
    server = _own_prometheus_session.server
    if server.process is None or not server.process.running():
        server.start()


@pytest.fixture
def silent_listener() -> Iterator[str]:
    """A TCP port that accepts connections and never answers: a hung Prometheus."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
