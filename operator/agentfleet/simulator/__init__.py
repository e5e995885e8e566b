"""Scaling-policy simulator: replay an arrival trace through a WorkerPool's policy (the
operator's own decision function) and compare it with static provisioning and a
queue-length target (`agentfleet simulate`)."""

from agentfleet.simulator.compare import Comparison, PoolPolicy, compare
from agentfleet.simulator.engine import SimulationResult, simulate
from agentfleet.simulator.trace import Arrival, bursty_trace, load_csv

__all__ = [
    "Arrival",
    "Comparison",
    "PoolPolicy",
    "SimulationResult",
    "bursty_trace",
    "compare",
    "load_csv",
    "simulate",
]
