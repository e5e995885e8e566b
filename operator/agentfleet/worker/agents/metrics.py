"""Prometheus metrics of the agent runtime: tokens and cost by model, calls, retries, runs,
and the model API's answers per pool (the autoscaler's rate-limit signal).

The process-wide instance (`default_metrics`) records to the default registry, which a
worker's /metrics serves next to its own metrics; tests pass their own registry to see
only their own counts.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from agentfleet.worker.agents.pricing import cost_usd
from agentfleet.worker.agents.retry import rate_limit_headroom

PoolLabels = tuple[str, str]
"""(namespace, pool) of the worker whose agent made the call; ("", "") outside a pool."""


class AgentMetrics:
    def __init__(
        self, registry: CollectorRegistry = REGISTRY, clock: Callable[[], float] = time.time
    ) -> None:
        self._clock = clock
        self._headroom: dict[tuple[str, str, str], tuple[float, float | None]] = {}
        self.tokens = Counter(
            "agentfleet_agent_tokens",
            "Tokens used by agents, by model and kind (input, output, cache_read, cache_creation).",
            ["model", "kind"],
            registry=registry,
        )
        self.cost = Counter(
            "agentfleet_agent_cost_usd",
            "Estimated model cost in US dollars at list prices, by model.",
            ["model"],
            registry=registry,
        )
        self.calls = Counter(
            "agentfleet_agent_model_calls",
            "Model calls by model and outcome (ok, retried, failed).",
            ["model", "outcome"],
            registry=registry,
        )
        self.retries = Counter(
            "agentfleet_agent_retries",
            "Retried model calls by model and reason (rate_limited, overloaded, "
            "server_error, connection).",
            ["model", "reason"],
            registry=registry,
        )
        self.runs = Counter(
            "agentfleet_agent_runs",
            "Finished agent runs by model and stop reason.",
            ["model", "stop_reason"],
            registry=registry,
        )
        self.call_seconds = Histogram(
            "agentfleet_agent_model_call_seconds",
            "Latency of successful model calls.",
            ["model"],
            buckets=(0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320),
            registry=registry,
        )
        self.responses = Counter(
            "agentfleet_agent_model_responses",
            "Model API responses by pool, model and status (ok, rate_limited = 429, "
            "overloaded = 529, server_error, client_error, connection). The autoscaler "
            "holds scale-ups while the rate_limited and overloaded share is high.",
            ["namespace", "pool", "model", "status"],
            registry=registry,
        )
        self.headroom = Gauge(
            "agentfleet_agent_ratelimit_headroom",
            "Share of the model API's rate-limit budget left, as the last response's "
            "anthropic-ratelimit-* headers said (the lowest of requests, tokens, input and "
            "output tokens; 1 once that budget's reset time has passed).",
            ["namespace", "pool", "model"],
            registry=registry,
        )

    def record_response(
        self, pool: PoolLabels, model: str, status: str, headers: Mapping[str, str]
    ) -> None:
        """Count one model API response and keep the rate-limit headroom it reported."""
        namespace, name = pool
        self.responses.labels(namespace, name, model, status).inc()
        reported = rate_limit_headroom(headers)
        if reported is None:
            return
        key = (namespace, name, model)
        if key not in self._headroom:
            self.headroom.labels(*key).set_function(lambda: self._current_headroom(key))
        self._headroom[key] = reported

    def _current_headroom(self, key: tuple[str, str, str]) -> float:
        share, reset = self._headroom[key]
        # A budget refills by its reset time: an old low reading must not hold scale-ups
        # after the limit has cleared.
        if reset is not None and self._clock() >= reset:
            return 1.0
        return share

    def record_usage(
        self,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cache_creation_tokens: int,
        cache_read_tokens: int,
    ) -> None:
        for kind, count in (
            ("input", input_tokens),
            ("output", output_tokens),
            ("cache_creation", cache_creation_tokens),
            ("cache_read", cache_read_tokens),
        ):
            if count:
                self.tokens.labels(model=model, kind=kind).inc(count)
        cost = cost_usd(
            model, input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens
        )
        if cost is not None:
            self.cost.labels(model=model).inc(cost)


@functools.cache
def default_metrics() -> AgentMetrics:
    """The process-wide metrics on the default registry (created on first use)."""
    return AgentMetrics()
