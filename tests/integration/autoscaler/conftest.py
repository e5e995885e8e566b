"""An exporter publishing the queue and worker metrics the autoscaler reads, scraped by a
real Prometheus; and a Prometheus of our own for tests that stop it."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import pytest

from agentfleet.dev.localenv import PrometheusServer
from agentfleet.operator.autoscaler.synthetic import SyntheticQueueMetrics


@pytest.fixture(scope="session")
def exporter(prometheus_server: PrometheusServer) -> Iterator[SyntheticQueueMetrics]:
    """An exporter the shared Prometheus scrapes every second.

    One for the whole run: Prometheus applies target changes at most every 5 s, so a new
    target per test would cost that each time. Tests keep apart by namespace label.
    """
    published = SyntheticQueueMetrics()
    prometheus_server.add_target(published.address)
    yield published
    prometheus_server.remove_target(published.address)
    published.close()


@pytest.fixture
def test_namespace() -> str:
    """A namespace label no other test publishes, so series from parallel areas never match."""
    return f"as-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def own_exporter() -> Iterator[SyntheticQueueMetrics]:
    """The exporter `own_prometheus` scrapes."""
    published = SyntheticQueueMetrics()
    yield published
    published.close()


@pytest.fixture(scope="session")
def _own_prometheus_session(
    tmp_path_factory: pytest.TempPathFactory, own_exporter: SyntheticQueueMetrics
) -> Iterator[PrometheusServer]:
    server = PrometheusServer(workdir=tmp_path_factory.mktemp("own-prometheus"))
    # Registered before start, so there is a single target-discovery delay for the run.
    server.set_targets({own_exporter.address: {}})
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_prometheus(_own_prometheus_session: PrometheusServer) -> Iterator[PrometheusServer]:
    """A Prometheus (scraping `own_exporter`) this test may stop and start again, with the
    same port and data; running again after every test."""
    yield _own_prometheus_session
    process = _own_prometheus_session.process
    if process is None or not process.running():
        _own_prometheus_session.start()


@pytest.fixture
def silent_listener() -> Iterator[str]:
    """A TCP port that accepts connections and never answers: a hung Prometheus."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
