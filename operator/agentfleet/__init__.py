"""agentfleet: a Kubernetes operator that runs autoscaling fleets of Claude coding agents."""

__version__ = "0.1.0"
