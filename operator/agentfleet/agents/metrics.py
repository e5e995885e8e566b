"""Prometheus metrics of the agent runtime: tokens and cost by model, calls, retries, runs.

The process-wide instance (`default_metrics`) records to the default registry, which a
worker's /metrics serves next to its own metrics; tests pass their own registry to see
only their own counts.
"""

from __future__ import annotations

import functools

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from agentfleet.agents.pricing import cost_usd


class AgentMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
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
