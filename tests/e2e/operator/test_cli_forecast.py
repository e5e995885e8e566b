"""`agentfleet forecast` against the real cluster, Redis and operator, holding nothing but
a kubeconfig: the operator's read API observes (through the API server's service proxy,
as the chart's Service is reached), the command forecasts, and its `-o json` is read back
strictly by the published models.

The session's operator has no Prometheus, so the rates come from the queue's completion
log; the test plays the content stage's workers (its pool has no replicas) on a clock of
its own, so each item took a minute."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict

from agentfleet.core.api import Stage
from agentfleet.core.forecastapi import ForecastRow
from agentfleet.core.queue import ManualClock, Subscription, WorkItem, WorkQueue
from agentfleet.dev.localenv import RedisServer, free_port
from agentfleet.dev.localenv.cluster import LocalCluster

from .conftest import role_kubeconfig

if TYPE_CHECKING:
    from .conftest import Kubectl

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
SERVICE_SECONDS = 60.0


class ForecastList(BaseModel):
    """What `agentfleet forecast -o json` prints; unknown or missing keys fail."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["ForecastList"]
    items: list[ForecastRow]


def cli(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "agentfleet", *args, "--kubeconfig", str(kubeconfig)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**env, "COLUMNS": "250"},
    )


def ok(kubeconfig: Path, *args: str) -> str:
    result = cli(kubeconfig, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
async def queues(
    redis_server: RedisServer,
) -> AsyncIterator[tuple[WorkQueue, WorkQueue, ManualClock]]:
    """The queue on the system clock, and the same queue on a clock 10 minutes behind it
    that the test advances (finished items that took a minute each)."""
    now = WorkQueue.from_url(redis_server.url)
    clock = ManualClock(datetime.now(UTC) - timedelta(minutes=10))
    played = WorkQueue.from_url(redis_server.url, clock=clock)
    yield now, played, clock
    await played.close()
    await now.close()


@pytest.fixture
def reader(local_cluster: LocalCluster, kubectl: Kubectl, fleet: str, tmp_path: Path) -> Path:
    """A kubeconfig for a user who may read agentfleet's resources and the read API (the
    chart's `api-reader` Role), and change nothing."""
    rules = [
        {
            "apiGroups": ["agentfleet.dev"],
            "resources": ["projects", "workerpools"],
            "verbs": ["get", "list", "watch"],
        },
        {"apiGroups": [""], "resources": ["services/proxy"], "verbs": ["get"]},
    ]
    user = f"reader-{fleet[-8:]}"
    return role_kubeconfig(
        local_cluster, kubectl, fleet, user, rules, tmp_path / "reader.kubeconfig"
    )


async def test_forecast_reads_the_operators_observations_and_forecasts_the_drain(
    fleet: str,
    kubeconfig: Path,
    kubectl: Kubectl,
    reader: Path,
    queues: tuple[WorkQueue, WorkQueue, ManualClock],
) -> None:
    queue, played, clock = queues
    await queue.enqueue(
        *(
            WorkItem(id=f"issue-{n}", namespace=fleet, project="widgets", stage=Stage.CONTENT)
            for n in range(10)
        )
    )
    worker = Subscription(namespace=fleet, stage=Stage.CONTENT, consumer="widgets-content-5d-a")
    for _ in range(4):
        claim = await played.claim(worker)
        assert claim is not None
        clock.advance(SERVICE_SECONDS)
        await played.complete(claim, follow_ups=[])
    held = await queue.claim(
        Subscription(namespace=fleet, stage=Stage.CONTENT, consumer="widgets-content-5d-b")
    )
    assert held is not None

    out: dict[str, Any] = json.loads(ok(kubeconfig, "forecast", "-n", fleet, "-o", "json"))
    listing = ForecastList.model_validate(out)
    rows = {row.pool: row for row in listing.items}
    content = rows["widgets-content"]
    assert (content.namespace, content.stage, content.project) == (
        fleet, Stage.CONTENT, "widgets",
    )  # fmt: skip
    assert (content.queued, content.in_progress) == (5, 1)
    assert content.source == "completionLog"
    # three gaps of a minute between the played worker's four completions
    assert (content.service_seconds, content.service_samples) == (SERVICE_SECONDS, 3)
    # four finished in the last quarter hour, none before: a burst, damped to two
    assert content.arrivals_per_hour == 2.0
    assert content.cannot_forecast is None
    assert content.current is not None and content.maximum is not None
    # the pool has no replicas: forecast with the one a first item activates; maximum 2
    assert (content.current.replicas, content.maximum.replicas) == (1, 2)
    done, faster = content.current.done_seconds, content.maximum.done_seconds
    assert done is not None and faster is not None
    assert 0.5 * 6 * SERVICE_SECONDS < done < 1.5 * 6 * SERVICE_SECONDS
    assert faster < done
    assert content.current.done_at is not None and content.current.done_at > datetime.now(UTC)
    # a pool whose stage has nothing finished says why it cannot forecast
    assert all(
        row.current is None and "no service time" in (row.cannot_forecast or "")
        for name, row in rows.items()
        if name != "widgets-content"
    ), rows

    table = ok(kubeconfig, "forecast", "-n", fleet)
    assert "widgets-content" in table and "DONE AT MAX" in table
    assert "rates over the last 1h: the operator has no Prometheus URL" in table
    # -A: every namespace with a pool that the operator serves; a pool in a namespace it
    # does not serve (no queue it knows) is left out, not an error
    elsewhere = f"unserved-{fleet[-8:]}"
    kubectl("create", "namespace", elsewhere)
    try:
        stray = {
            "apiVersion": "agentfleet.dev/v1alpha1", "kind": "WorkerPool",
            "metadata": {"name": "stray", "namespace": elsewhere}, "spec": {"stage": "content"},
        }  # fmt: skip
        kubectl("apply", "-f", "-", stdin=json.dumps(stray))
        everywhere = ForecastList.model_validate(
            json.loads(ok(kubeconfig, "forecast", "-A", "-o", "json"))
        )
        seen = {(row.namespace, row.pool) for row in everywhere.items}
        assert (fleet, "widgets-content") in seen
        assert elsewhere not in {namespace for namespace, _ in seen}
    finally:
        kubectl("delete", "namespace", elsewhere, "--wait=false")

    # a read: the read-only user forecasts the same (the figures are deterministic)
    read = ForecastList.model_validate(
        json.loads(ok(reader, "forecast", "-n", fleet, "-o", "json"))
    )
    (again,) = [row for row in read.items if row.pool == "widgets-content"]
    assert (again.queued, again.in_progress, again.service_seconds) == (5, 1, SERVICE_SECONDS)
    assert again.current is not None and again.current.done_seconds == done

    gone = f"http://127.0.0.1:{free_port()}"
    line = one_line_error(cli(kubeconfig, "forecast", "-n", fleet, "--operator-url", gone))
    assert line.startswith(f"error: the operator's read API at {gone} is"), line
    line = one_line_error(cli(kubeconfig, "forecast", "-n", fleet, "--window", "soon"))
    assert line.startswith("error: --window: 'soon' is not a positive duration"), line
