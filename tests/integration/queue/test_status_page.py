"""The live status page in a real browser: Debian's chromium, headless, driven through its
chromedriver, opens the page the read API serves (uvicorn on a free port, over the real
Redis) and must show a queue change within 2 s of the item being enqueued, with no
request leaving for anywhere but the operator (the page is self-contained).

With AGENTFLEET_STATUS_SCREENSHOT=<path> the test also saves what the browser shows
(the README's screenshot is made this way).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from agentfleet.core.api import Stage
from agentfleet.core.github import WebhookServer
from agentfleet.core.queue import Subscription, WorkItem, WorkQueue
from agentfleet.dev.localenv import free_port
from agentfleet.dev.testing.browser import cell, wait_for_cell
from agentfleet.operator.context import OperatorContext
from agentfleet.operator.index import PoolEntry
from agentfleet.operator.logic import ScalingRecord
from agentfleet.operator.readapi import ReadApi, create_app
from agentfleet.operator.statuspage import StatusPage, StatusSnapshot, status_router

pytestmark = pytest.mark.integration

NAMESPACE = "team-a"
SECRET = "s3cr3t-payload-value"
SHOWN_WITHIN_SECONDS = 2.0


def pool(name: str, stage: str, replicas: int, reason: str, depth: int) -> PoolEntry:
    return PoolEntry.from_body(
        {
            "metadata": {"namespace": NAMESPACE, "name": name, "uid": f"uid-{name}"},
            "spec": {"stage": stage, "minReplicas": 1, "maxReplicas": 6},
            "status": {
                "replicas": replicas,
                "readyReplicas": replicas,
                "desiredReplicas": replicas,
                "lastScaleReason": reason,
                "lastScaleTime": datetime.now(UTC).isoformat(),
                "metrics": {"queueDepth": depth},
            },
        }
    )


POOLS = [
    pool("planners", "genesis", 1, "ScaledDown 2→1: queue_depth=0 < 3, utilization=0.00", 0),
    pool("developers", "development", 4, "ScaledUp 2→4: queue_depth=14 > 10", 14),
    pool("writers", "content", 1, "minReplicas=1", 0),
]


@dataclass
class Served:
    url: str
    queue: WorkQueue
    context: OperatorContext


@pytest.fixture
async def served(queue: WorkQueue, read_api_context: OperatorContext) -> AsyncIterator[Served]:
    api = ReadApi(read_api_context)
    page = StatusPage(api, lambda namespace: [p for p in POOLS if p.namespace == namespace])
    port = free_port()
    async with WebhookServer(create_app(api, routers=[status_router(page)]), port=port):
        yield Served(f"http://127.0.0.1:{port}", queue, read_api_context)


def item(number: int, stage: Stage) -> WorkItem:
    return WorkItem(
        id=f"web/issue-{number}/{stage.value}",
        namespace=NAMESPACE,
        project="web",
        stage=stage,
        payload={"issue": number, "token": SECRET},
    )


async def test_the_page_renders_and_shows_a_queue_change_within_two_seconds(
    served: Served, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    queue = served.queue
    # Some history: two development items finished (one dead-lettered), one held.
    await queue.enqueue(*(item(n, Stage.DEVELOPMENT) for n in range(1, 4)))
    for outcome in ("done", "dead", "held"):
        claim = await queue.claim(
            Subscription(namespace=NAMESPACE, stage=Stage.DEVELOPMENT, consumer=f"dev-{outcome}")
        )
        assert claim is not None
        if outcome == "done":
            await queue.complete(claim, follow_ups=[])
        elif outcome == "dead":
            await queue.fail(claim, "tests failed three times", retryable=False)
    served.context.scaling_log.append(
        ScalingRecord(
            time=datetime.now(UTC) - timedelta(minutes=3),
            namespace=NAMESPACE,
            pool="developers",
            from_replicas=2,
            to_replicas=4,
            reason="queue_depth=14 > 10",
            queue_depth=14,
        )
    )
    page = f"{served.url}/v1/namespaces/{NAMESPACE}/status"
    await asyncio.to_thread(browser.get, page)
    await wait_for_cell(browser, "development", "activeWorkers", "1", 10)

    # The rendered page: stages, pools, the scaling decision and no Prometheus.
    text = await asyncio.to_thread(lambda: browser.find_element(By.TAG_NAME, "main").text)
    assert cell(browser, "development", "completedToday") == "2"
    assert cell(browser, "development", "successRateToday") == "50 %"
    assert "developers" in text and "ScaledUp 2→4: queue_depth=14 > 10" in text
    assert "2 → 4" in text and "no Prometheus configured" in text
    assert SECRET not in await asyncio.to_thread(lambda: browser.page_source)

    # A queue change reaches the open page through its event stream within 2 s.
    before = cell(browser, "genesis", "waiting")
    assert before in ("", "0")
    await queue.enqueue(item(10, Stage.GENESIS), item(11, Stage.GENESIS))
    took = await wait_for_cell(browser, "genesis", "waiting", "2", SHOWN_WITHIN_SECONDS)
    print(f"queue change shown in the browser {took:.2f}s after the enqueue")

    # Nothing was fetched from anywhere but the operator (no CDN: works air-gapped).
    logs: list[dict[str, Any]] = await asyncio.to_thread(browser.get_log, "performance")
    urls = {
        entry["message"].split('"url":"')[1].split('"')[0]
        for entry in logs
        if '"Network.requestWillBeSent"' in entry["message"] and '"url":"' in entry["message"]
    }
    assert urls and all(u.startswith(served.url) for u in urls), urls

    shot = tmp_path / "status.png"
    assert await asyncio.to_thread(browser.save_screenshot, str(shot))
    target = os.environ.get("AGENTFLEET_STATUS_SCREENSHOT")
    if target:
        shutil.copyfile(shot, target)


async def test_the_snapshot_is_the_pages_data_and_unserved_namespaces_are_refused(
    served: Served,
) -> None:
    await served.queue.enqueue(item(1, Stage.CONTENT))
    async with httpx.AsyncClient(base_url=served.url) as http:
        snapshot = await http.get(f"/v1/namespaces/{NAMESPACE}/status/snapshot")
        unserved = await http.get("/v1/namespaces/kube-system/status")
        stream = await http.get("/v1/namespaces/kube-system/status/events")
    assert snapshot.status_code == 200
    data = StatusSnapshot.model_validate(snapshot.json())
    content = next(s for s in data.stages if s.stage is Stage.CONTENT)
    assert (content.waiting, content.active_workers) == (1, 0)
    assert [p.name for p in data.pools] == ["developers", "planners", "writers"]
    assert SECRET not in snapshot.text and "redis://" not in snapshot.text
    assert unserved.status_code == 404 and stream.status_code == 404
    assert unserved.json() == {"error": "namespace kube-system is not served by this operator"}
