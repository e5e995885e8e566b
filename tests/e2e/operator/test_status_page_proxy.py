"""The live status page reached as a user reaches it, holding nothing but a kubeconfig:
`kubectl proxy`, the API server's service proxy, the Service in front of the operator's
read API, and the running operator with its real Redis. Debian's chromium (headless)
opens it there and must see a queue change within 2 s: the page's event stream is not
held back anywhere on that path (a proxy that buffered it would leave the page at its
first snapshot)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from agentfleet.core.api import Stage
from agentfleet.core.queue import WorkItem, WorkQueue
from agentfleet.dev.localenv import ManagedProcess, RedisServer, find_binary, free_port
from agentfleet.dev.localenv.waiting import wait_for
from agentfleet.dev.testing.browser import cell, wait_for_cell

if TYPE_CHECKING:
    from .conftest import ExposeReadApi, Objects, RunningOperator

pytestmark = pytest.mark.e2e

SHOWN_WITHIN_SECONDS = 2.0


@pytest.fixture
async def queue(redis_server: RedisServer) -> AsyncIterator[WorkQueue]:
    work_queue = WorkQueue.from_url(redis_server.url)
    yield work_queue
    await work_queue.close()


@pytest.fixture
def kubectl_proxy(kubeconfig: Path, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    process = ManagedProcess(
        "kubectl-proxy",
        [str(find_binary("kubectl")), f"--kubeconfig={kubeconfig}", "proxy", f"--port={port}"],
        tmp_path / "logs",
    )
    process.start()
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: httpx.get(f"{url}/readyz", timeout=2).status_code == 200, 20, "kubectl proxy")
    yield url
    process.stop()


async def test_the_page_streams_through_the_api_servers_service_proxy(
    objects: Objects,
    operator: RunningOperator,
    expose: ExposeReadApi,
    kubectl_proxy: str,
    queue: WorkQueue,
    browser: webdriver.Chrome,
) -> None:
    ns = objects.namespace
    service = expose(ns, "agentfleet-api", operator.api_port)
    service_ns, rest = service.split("/")
    name = rest.split(":")[0]
    page = (
        f"{kubectl_proxy}/api/v1/namespaces/{service_ns}/services/{name}:api/proxy"
        f"/v1/namespaces/{ns}/status"
    )
    answer = await asyncio.to_thread(httpx.get, page, timeout=10)
    assert answer.status_code == 200 and "agentfleet status" in answer.text, answer.text[:300]

    await asyncio.to_thread(browser.get, page)
    wait_for(
        lambda: browser.find_element(By.ID, "state").text.startswith("live"),
        30,
        "the page's first snapshot",
    )
    assert cell(browser, "genesis", "waiting") == ""  # nothing queued, no pool: no card

    await queue.enqueue(
        *(
            WorkItem(id=f"issue-{n}", namespace=ns, project="widgets", stage=Stage.GENESIS)
            for n in range(3)
        )
    )
    took = await wait_for_cell(browser, "genesis", "waiting", "3", SHOWN_WITHIN_SECONDS)
    print(f"queue change shown through the service proxy {took:.2f}s after the enqueue")
