"""Redis and Prometheus started by the fixtures are the real servers."""

from __future__ import annotations

import pytest
import redis
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from agentfleet.dev.localenv import PrometheusServer, RedisServer, free_port
from agentfleet.dev.localenv.waiting import wait_for

pytestmark = pytest.mark.integration


def test_redis_round_trip(redis_server: RedisServer) -> None:
    conn = redis.Redis.from_url(redis_server.url)
    conn.set("smoke:key", b"value")
    assert conn.get("smoke:key") == b"value"
    entry_id = conn.xadd("smoke:stream", {"field": "x"})
    assert conn.xrange("smoke:stream")[0][0] == entry_id
    conn.delete("smoke:key", "smoke:stream")


def test_prometheus_scrapes_a_local_exporter(prometheus_server: PrometheusServer) -> None:
    registry = CollectorRegistry()
    gauge = Gauge("agentfleet_smoke_value", "A value the smoke test sets.", registry=registry)
    gauge.set(42)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        prometheus_server.add_target(f"127.0.0.1:{port}", test="smoke")
        result = wait_for(
            lambda: prometheus_server.query('agentfleet_smoke_value{test="smoke"}'),
            30,
            "Prometheus to scrape the exporter",
        )
        assert float(result[0]["value"][1]) == 42.0
    finally:
        prometheus_server.remove_target(f"127.0.0.1:{port}")
        server.shutdown()
        thread.join(timeout=5)
