"""The operator's read API served for real (uvicorn on a free port) over a real Redis:
what each read endpoint answers, that no answer carries a payload or the queue's URL,
and the refusals that need no Kubernetes (a namespace not served, an action without a
token). `retry` with a token is proven end to end in tests/e2e/operator/test_cli.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from kubernetes import client

from agentfleet.core.api import Stage
from agentfleet.core.fleetapi import InFlightReport, QueueReport, ThroughputReport
from agentfleet.core.github import WebhookServer
from agentfleet.core.queue import Subscription, WorkItem, WorkQueue
from agentfleet.ctl.kube import CliError, Target
from agentfleet.ctl.operatorapi import OperatorApi
from agentfleet.dev.localenv import free_port
from agentfleet.operator.context import OperatorContext
from agentfleet.operator.readapi import ReadApi, create_app

pytestmark = pytest.mark.integration

NAMESPACE = "team-a"
SECRET = "s3cr3t-payload-value"


@dataclass
class Served:
    url: str
    queue: WorkQueue


@pytest.fixture
async def served(queue: WorkQueue, read_api_context: OperatorContext) -> AsyncIterator[Served]:
    port = free_port()
    async with WebhookServer(create_app(ReadApi(read_api_context)), port=port):
        yield Served(f"http://127.0.0.1:{port}", queue)


async def test_the_reads_answer_from_the_queue_and_carry_no_secret(served: Served) -> None:
    queue = served.queue
    items = [
        WorkItem(
            id=f"issue-{n}", namespace=NAMESPACE, project="shop", stage=Stage.GENESIS,
            payload={"token": SECRET},
        )
        for n in range(3)
    ]  # fmt: skip
    await queue.enqueue(*items)
    claim = await queue.claim(Subscription(namespace=NAMESPACE, stage=Stage.GENESIS, consumer="p"))
    assert claim is not None
    done = await queue.claim(Subscription(namespace=NAMESPACE, stage=Stage.GENESIS, consumer="q"))
    assert done is not None
    await queue.complete(done, follow_ups=[])

    async with httpx.AsyncClient(base_url=served.url) as http:
        answers = {
            path: await http.get(f"/v1/namespaces/{NAMESPACE}/{path}")
            for path in ("queues", "workers", "throughput", "projects/shop/deadletters")
        }
        alerts = await http.get("/v1/alerts")
    for path, answer in answers.items():
        assert answer.status_code == 200, (path, answer.text)
        assert SECRET not in answer.text and "redis://" not in answer.text, path
    lanes = QueueReport.model_validate(answers["queues"].json()).lanes
    assert [
        (r.project, r.stage, r.waiting, r.in_flight) for r in lanes if r.waiting or r.in_flight
    ] == [("shop", Stage.GENESIS, 1, 1)]
    held = InFlightReport.model_validate(answers["workers"].json()).items
    assert [(h.worker, h.item_id) for h in held] == [("p", claim.item.id)]
    (stage,) = ThroughputReport.model_validate(answers["throughput"].json()).stages
    assert (stage.stage, stage.succeeded) == (Stage.GENESIS, 1)
    assert alerts.json() == {"prometheus": False, "alerts": []}
    async with httpx.AsyncClient(base_url=served.url) as http:
        scope = (await http.get("/v1/scope")).json()
    assert scope == {"allNamespaces": False, "namespaces": ["team-*"]}


async def test_refusals_are_one_line_json(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url) as http:
        unserved = await http.get("/v1/namespaces/kube-system/queues")
        no_token = await http.post(f"/v1/namespaces/{NAMESPACE}/projects/shop/retry", json={})
        bad_window = await http.get(
            f"/v1/namespaces/{NAMESPACE}/throughput", params={"windowSeconds": "-5"}
        )
    assert (unserved.status_code, unserved.json()) == (
        404,
        {"error": "namespace kube-system is not served by this operator"},
    )
    assert no_token.status_code == 401
    assert "X-Agentfleet-Token" in no_token.json()["error"]
    assert "\n" not in json.dumps(no_token.json())
    assert bad_window.status_code == 400
    assert bad_window.json()["error"].startswith("query.windowSeconds: ")
    unknown = await http_get(served, "/v1/nothing")
    assert (unknown.status_code, unknown.json()) == (404, {"error": "Not Found"})


async def http_get(served: Served, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=served.url) as http:
        return await http.get(path)


async def test_the_cli_reads_it_at_a_port_forwards_url(served: Served) -> None:
    """`--operator-url` (after `kubectl port-forward`): the same models, the same one-line
    errors, no API server on the way."""
    await served.queue.enqueue(
        WorkItem(id="issue-1", namespace=NAMESPACE, project="shop", stage=Stage.CONTENT)
    )
    target = Target(client.ApiClient(), NAMESPACE)
    api = OperatorApi.connect(target, None, served.url)
    report = await asyncio.to_thread(api.get, f"/v1/namespaces/{NAMESPACE}/queues", QueueReport)
    assert [(r.stage, r.waiting) for r in report.lanes if r.waiting] == [(Stage.CONTENT, 1)]
    with pytest.raises(CliError, match=r"^operator: namespace other is not served"):
        await asyncio.to_thread(api.get, "/v1/namespaces/other/queues", QueueReport)
    gone = OperatorApi.connect(target, None, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(CliError, match=r"^the operator's read API at http://127\.0\.0\.1:\d+ is"):
        await asyncio.to_thread(gone.get, "/v1/alerts", QueueReport)
