"""The drain forecast on the wire: what the operator observes per WorkerPool and Project
(`GET /v1/namespaces/{ns}/forecast` answers `ForecastObservations`), and what
`agentfleet forecast` prints (`ForecastRow`s, in a `Listing` of kind `ForecastList`).

The operator observes; the command forecasts. The forecast runs the simulator's engine
(`agentfleet.simulator.forecast`), which belongs on a user's machine (the import
contracts keep `agentfleet.simulator` out of everything that runs in a cluster), and
dozens of seeded simulations per pool would hold up the operator's event loop.

Pure pydantic models, like `agentfleet.core.fleetapi`: camelCase on the wire, unknown
keys refused when read back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from agentfleet.core.api.base import Stage
from agentfleet.core.fleetapi import WireModel

RateSource = Literal["prometheus", "completionLog"]
"""Where the arrival rate and service time come from: Prometheus' counters
(`agentfleet_queue_enqueued_total`, `agentfleet_worker_processing_seconds`) when the
operator has a `--prometheus-url` that answers, else the queue's completion log."""


class ProjectObservation(WireModel):
    """One Project's work for one pool, as observed now and over the window."""

    project: str
    queued: int
    """Items waiting in the lanes the pool reads (its stage; its specialties and the
    general lane)."""
    in_progress: int
    """Items of those lanes a worker holds now."""
    held: bool
    """The Project is paused: its queued items are not delivered."""
    arrival_rate: float
    """New items per second over the window, counted per quarter hour with a burst damped
    (each quarter at most twice the median one)."""


class PoolObservation(WireModel):
    pool: str
    stage: Stage | None
    """None when the pool's spec does not parse."""
    replicas: int
    """Worker Pods now (the pool's status)."""
    max_replicas: int
    """`spec.maxReplicas`; the current replicas when the pool is pinned (autoscaling off,
    or the paused-replicas annotation)."""
    pinned: bool
    poll_seconds: float
    """The autoscaler's poll interval: a scale-up to the maximum is asked at the next poll."""
    service_seconds: float | None
    """Mean seconds a worker of the pool spends on an item over the window; None: no item
    finished in it."""
    service_samples: int
    """How many finished items that mean is taken from."""
    projects: list[ProjectObservation]


class ForecastObservations(WireModel):
    namespace: str
    generated_at: datetime
    window_seconds: float
    source: RateSource
    source_note: str
    """How the rates were measured (and, for the completion log, why not from Prometheus)."""
    pools: list[PoolObservation]


class DrainFigures(WireModel):
    """When the Project's work is done at one capacity."""

    replicas: int
    done_seconds: float | None
    """Until the work queued or running now is finished; None: not within the horizon."""
    done_at: datetime | None
    drained_seconds: float | None
    """Until nothing of the Project waits, arrivals meanwhile included; None: the arrivals
    outrun this capacity (the queue does not empty within the horizon)."""
    drained_at: datetime | None


class ForecastRow(WireModel):
    """One Project served by one pool: what was observed and the forecast from it."""

    namespace: str
    pool: str
    stage: Stage | None
    project: str
    queued: int
    in_progress: int
    arrivals_per_hour: float
    service_seconds: float | None
    service_samples: int
    source: RateSource
    current: DrainFigures | None
    """At the pool's current replicas; None when it cannot be forecast."""
    maximum: DrainFigures | None
    """With the pool raised to its maximum now."""
    cannot_forecast: str | None
    """Why there is no forecast (no service time observed yet, the Project is paused...),
    or why part of it is missing (arrivals outrun even the maximum capacity)."""
