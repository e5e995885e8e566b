"""Scaling-policy simulator: replay an arrival trace through a WorkerPool's policy (the
operator's own decision function) and compare it with static provisioning and a
queue-length target (`agentfleet simulate`); forecast when queued work will be done."""

from agentfleet.simulator.compare import Comparison, PoolPolicy, compare
from agentfleet.simulator.engine import RateLimit, SimulationResult, simulate
from agentfleet.simulator.forecast import Drain, ProjectForecast, ProjectLoad, forecast
from agentfleet.simulator.trace import (
    Arrival,
    bursty_trace,
    daily_trace,
    load_csv,
    spike_trace,
    steady_trace,
)

__all__ = [
    "Arrival",
    "Comparison",
    "Drain",
    "PoolPolicy",
    "ProjectForecast",
    "ProjectLoad",
    "RateLimit",
    "SimulationResult",
    "bursty_trace",
    "compare",
    "daily_trace",
    "forecast",
    "load_csv",
    "simulate",
    "spike_trace",
    "steady_trace",
]
