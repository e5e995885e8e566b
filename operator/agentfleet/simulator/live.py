"""The live drain forecast of `agentfleet forecast`: the operator's observations of a
namespace (`agentfleet.core.forecastapi.ForecastObservations`) turned into the
simulator's `ProjectLoad`s, forecast per pool with `agentfleet.simulator.forecast`, and
the answer turned into `ForecastRow`s. Pure: the command fetches and prints.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from agentfleet.core.forecastapi import (
    DrainFigures,
    ForecastObservations,
    ForecastRow,
    PoolObservation,
    ProjectObservation,
)
from agentfleet.simulator.forecast import Drain, ProjectLoad, forecast

STARTUP_SECONDS = 60.0
"""How long a new worker Pod takes to take work (the engine's default)."""


def project_load(pool: PoolObservation, project: ProjectObservation) -> ProjectLoad | None:
    """What the engine needs of one Project; None without a service time."""
    if pool.service_seconds is None or pool.service_seconds <= 0:
        return None
    return ProjectLoad(
        project=project.project,
        queued=project.queued,
        in_progress=project.in_progress,
        arrival_rate=project.arrival_rate,
        service_seconds=pool.service_seconds,
        service_samples=pool.service_samples,
    )


def why_not(pool: PoolObservation, project: ProjectObservation) -> str | None:
    """Why a Project of the pool cannot be forecast at all, or None."""
    if pool.stage is None:
        return "the pool's spec does not parse"
    if project.held:
        return "the Project is paused: its queued work is held until it is resumed"
    if pool.service_seconds is None or pool.service_seconds <= 0:
        return "no item finished in the window: no service time observed yet"
    if pool.pinned and pool.replicas == 0:
        return "the pool is pinned at 0 replicas: nothing serves the work"
    return None


def figures(drain: Drain, now: datetime) -> DrainFigures:
    """Seconds from now (to a tenth) and the moments they fall at."""
    done = None if drain.done_seconds is None else round(drain.done_seconds, 1)
    drained = None if drain.drained_seconds is None else round(drain.drained_seconds, 1)
    return DrainFigures(
        replicas=drain.replicas,
        done_seconds=done,
        done_at=None if done is None else now + timedelta(seconds=done),
        drained_seconds=drained,
        drained_at=None if drained is None else now + timedelta(seconds=drained),
    )


def _partial(current: Drain, maximum: Drain) -> str | None:
    if maximum.drained_seconds is None:
        return (
            f"the arrivals outrun even the maximum capacity ({maximum.replicas} replicas): "
            "the queue does not empty"
        )
    if current.drained_seconds is None:
        return (
            f"the arrivals outrun the current capacity ({current.replicas} replicas): the "
            "queue empties only with more workers"
        )
    return None


def forecast_rows(
    observed: ForecastObservations, *, runs: int = 25, seed: int = 1
) -> list[ForecastRow]:
    """One row per pool and Project it serves: the observations and, for the Projects
    that can be forecast, when their work is done and their queue empty at the pool's
    current replicas and at its maximum."""
    rows = []
    now = observed.generated_at
    for pool in observed.pools:
        loads = [
            load
            for project in pool.projects
            if why_not(pool, project) is None and (load := project_load(pool, project)) is not None
        ]
        found = {
            f.project: f
            for f in forecast(
                loads,
                replicas=pool.replicas,
                max_replicas=pool.max_replicas,
                startup_seconds=STARTUP_SECONDS,
                poll_seconds=pool.poll_seconds,
                runs=runs,
                seed=seed,
            )
        }
        for project in pool.projects:
            result = found.get(project.project)
            rows.append(
                ForecastRow(
                    namespace=observed.namespace,
                    pool=pool.pool,
                    stage=pool.stage,
                    project=project.project,
                    queued=project.queued,
                    in_progress=project.in_progress,
                    arrivals_per_hour=round(project.arrival_rate * 3600, 3),
                    service_seconds=pool.service_seconds,
                    service_samples=pool.service_samples,
                    source=observed.source,
                    current=None if result is None else figures(result.current, now),
                    maximum=None if result is None else figures(result.maximum, now),
                    cannot_forecast=(
                        why_not(pool, project)
                        if result is None
                        else _partial(result.current, result.maximum)
                    ),
                )
            )
    return rows
