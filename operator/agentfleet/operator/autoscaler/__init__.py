"""Prometheus-driven autoscaling of WorkerPools: a pure decision core, metric sources and
the loop that ties them to an injected scaler."""

from agentfleet.operator.autoscaler.decision import Decision, Direction, ScaleState, Signals, decide

__all__ = ["Decision", "Direction", "ScaleState", "Signals", "decide"]
