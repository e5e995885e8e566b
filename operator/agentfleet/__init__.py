"""agentfleet: a Kubernetes operator that runs autoscaling fleets of Claude coding agents."""

from importlib.metadata import PackageNotFoundError, version

try:
    # One source: pyproject.toml's version, as installed. The chart's version and
    # appVersion and the published image tags are checked against it (tests, release).
    __version__ = version("agentfleet")
except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
    __version__ = "0.0.0+unknown"
