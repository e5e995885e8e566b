"""The operator takes GitHub issues in: by polling each Project, and by signed webhooks.

Work lands in the real Redis queue; the repository host is the fake GitHub, reached at
the URL each Project names in `spec.githubApiUrl`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from github import Github

from agentfleet.core.api import Stage
from agentfleet.core.queue import WorkItem, WorkQueue
from agentfleet.dev.localenv import RedisServer
from agentfleet.dev.localenv.waiting import async_wait_for, wait_for
from agentfleet.dev.testing import Delivery, FakeGitHub

from .conftest import BOT_TOKEN, Cluster, IntakeOperator

pytestmark = pytest.mark.e2e

WEBHOOK_SECRET = "intake-webhook-secret"


@pytest.fixture
async def queue(redis_server: RedisServer) -> AsyncIterator[WorkQueue]:
    work_queue = WorkQueue.from_url(redis_server.url)
    yield work_queue
    await work_queue.close()


def project_spec(fake_github: FakeGitHub, repository: str, **intake: Any) -> dict[str, Any]:
    return {
        "repository": repository,
        "githubApiUrl": fake_github.base_url,
        "credentialsSecretRef": {"name": "github"},
        "intake": {"labels": ["agentfleet"], "pollIntervalSeconds": 30, **intake},
    }


async def genesis_item(
    queue: WorkQueue, namespace: str, issue: int, project: str = "shop"
) -> WorkItem:
    item_id = f"{namespace}/{project}/issue-{issue}/{Stage.GENESIS.value}"
    # The deadline covers the operator noticing a namespace it finds by pattern (`afin-*`)
    # and its first poll. On a loaded two-core machine kopf has been seen to take 30 s to
    # start watching a new namespace (cold CI run, 2026-11-30), so 30 s was too tight, and
    # a fresh-clone run later the same day needed more than 90 s.
    found: WorkItem = await async_wait_for(
        lambda: queue.get(namespace, item_id), 180, f"{item_id} in the queue", interval=0.2
    )
    return found


async def queued(queue: WorkQueue, namespace: str, project: str = "shop") -> int:
    stats = await queue.stats(namespace, project)
    figures = stats.stages.get(Stage.GENESIS)
    return 0 if figures is None else figures.pending + figures.held


def polls(operator: IntakeOperator, namespace: str, result: str, project: str = "shop") -> float:
    return float(
        operator.metric(
            "agentfleet_intake_polls_total", namespace=namespace, project=project, result=result
        )
    )


async def test_a_labelled_issue_is_polled_in_once(
    cluster: Cluster,
    intake_operator: IntakeOperator,
    fake_github: FakeGitHub,
    human: Github,
    repository: str,
    queue: WorkQueue,
) -> None:
    repo = human.get_repo(repository)
    repo.create_issue("Add a checkout", labels=["agentfleet"])
    repo.create_issue("Not for the agents")
    cluster.secret("github", token=BOT_TOKEN)
    cluster.project("shop", **project_spec(fake_github, repository))

    item = await genesis_item(queue, cluster.namespace, 1)
    assert item.payload["repository"] == repository
    # Workers talk to the API the Project names, which the item carries.
    assert item.payload["github_api_url"] == fake_github.base_url
    ready = cluster.wait_intake("shop", "True", "Polling")
    assert repository in ready["message"]
    wait_for(lambda: "IntakeStarted" in cluster.event_reasons("shop"), 15, "IntakeStarted Event")

    # A spec change makes the operator look again at once; the issue is not taken twice.
    before = polls(intake_operator, cluster.namespace, "ok")
    cluster.patch("shop", {"intake": {"labels": ["agentfleet", "triage"]}})
    wait_for(lambda: polls(intake_operator, cluster.namespace, "ok") > before, 30, "another poll")
    assert await queued(queue, cluster.namespace) == 1
    assert await queue.get(cluster.namespace, f"{cluster.namespace}/shop/issue-2/genesis") is None
    new_items = intake_operator.metric(
        "agentfleet_intake_items_total",
        namespace=cluster.namespace,
        project="shop",
        source="poll",
    )
    assert new_items == 1


async def test_pausing_stops_intake_and_resuming_takes_in_what_waited(
    cluster: Cluster,
    intake_operator: IntakeOperator,
    fake_github: FakeGitHub,
    human: Github,
    repository: str,
    queue: WorkQueue,
) -> None:
    repo = human.get_repo(repository)
    cluster.secret("github", token=BOT_TOKEN)
    cluster.project("shop", **project_spec(fake_github, repository))
    cluster.wait_intake("shop", "True", "Polling")

    cluster.patch("shop", {"paused": True})
    paused = cluster.wait_intake("shop", "False", "Paused")
    assert "emergency stop" in paused["message"]
    wait_for(lambda: "IntakePaused" in cluster.event_reasons("shop"), 15, "IntakePaused Event")

    repo.create_issue("Arrives during the stop", labels=["agentfleet"])
    # A change while paused makes the operator look again; it still takes nothing in.
    before = polls(intake_operator, cluster.namespace, "paused")
    cluster.patch("shop", {"intake": {"labels": ["agentfleet", "later"]}})
    wait_for(
        lambda: polls(intake_operator, cluster.namespace, "paused") > before,
        30,
        "a poll skipped for the stop",
    )
    assert await queued(queue, cluster.namespace) == 0

    cluster.patch("shop", {"paused": False})
    await genesis_item(queue, cluster.namespace, 1)
    cluster.wait_intake("shop", "True", "Polling")


def deliveries(fake_github: FakeGitHub, repository: str) -> list[Delivery]:
    """Finished deliveries of `issues` events from `repository`, oldest first."""
    return [
        d
        for d in list(fake_github.deliveries)
        if d.event == "issues" and json.loads(d.payload)["repository"]["full_name"] == repository
    ]


def _signed(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def test_signed_webhooks_enqueue_and_forged_ones_are_refused(
    cluster: Cluster,
    intake_operator: IntakeOperator,
    fake_github: FakeGitHub,
    human: Github,
    repository: str,
    queue: WorkQueue,
) -> None:
    cluster.secret("github", token=BOT_TOKEN, webhook_secret=WEBHOOK_SECRET)
    webhook = {"enabled": True, "secretRef": {"name": "github", "key": "webhook-secret"}}
    # Polled once on creation, then not for a day: whatever arrives later came by webhook.
    spec = project_spec(fake_github, repository, pollIntervalSeconds=86400, webhook=webhook)
    cluster.project("shop", **spec)
    ready = cluster.wait_intake("shop", "True", "Polling")
    assert f"/webhooks/github/{cluster.namespace}/shop" in ready["message"]

    repo = human.get_repo(repository)
    repo.create_hook(
        "web",
        {"url": intake_operator.webhook_url(cluster.namespace, "shop"), "secret": WEBHOOK_SECRET},
        events=["issues"],
    )
    repo.create_issue("Ship it", labels=["agentfleet"])
    item = await genesis_item(queue, cluster.namespace, 1)
    assert item.payload["github_api_url"] == fake_github.base_url
    delivery = wait_for(lambda: deliveries(fake_github, repository), 15, "the delivery")[0]
    assert delivery.status_code == 202
    by_webhook = {"namespace": cluster.namespace, "project": "shop", "source": "webhook"}
    assert intake_operator.metric("agentfleet_intake_items_total", **by_webhook) == 1

    # GitHub's "Redeliver": accepted, and still one item.
    fake_github.redeliver(delivery)
    again = wait_for(lambda: deliveries(fake_github, repository)[1:], 15, "the redelivery")
    assert again[0].guid == delivery.guid and again[0].status_code == 202
    assert await queued(queue, cluster.namespace) == 1

    # A delivery for another issue, signed with the wrong secret or not at all.
    forged = json.loads(delivery.payload)
    forged["issue"]["number"] = 99
    body = json.dumps(forged).encode()
    url = intake_operator.webhook_url(cluster.namespace, "shop")
    async with httpx.AsyncClient(timeout=10) as http:
        for signature in (_signed("guessed", body), None):
            headers = {"X-GitHub-Event": "issues", "Content-Type": "application/json"}
            if signature is not None:
                headers["X-Hub-Signature-256"] = signature
            response = await http.post(url, content=body, headers=headers)
            assert response.status_code == 401
    assert await queue.get(cluster.namespace, f"{cluster.namespace}/shop/issue-99/genesis") is None
    assert await queued(queue, cluster.namespace) == 1


async def test_credential_problems_are_conditions_and_spare_other_projects(
    cluster: Cluster,
    fake_github: FakeGitHub,
    human: Github,
    repository: str,
    queue: WorkQueue,
) -> None:
    human.get_repo(repository).create_issue("Works anyway", labels=["agentfleet"])
    cluster.secret("github", token=BOT_TOKEN)
    cluster.secret("no-token", webhook_secret=WEBHOOK_SECRET)
    cluster.secret("revoked", token="ghp_" + "revoked0" * 5)
    spec = project_spec(fake_github, repository)
    cluster.project("broken", **{**spec, "credentialsSecretRef": {"name": "no-token"}})
    cluster.project("revoked", **{**spec, "credentialsSecretRef": {"name": "revoked"}})
    cluster.project("shop", **spec)

    incomplete = cluster.wait_intake("broken", "False", "CredentialsIncomplete")
    assert "no-token" in incomplete["message"] and "'token'" in incomplete["message"]
    refused = cluster.wait_intake("revoked", "False", "GitHubUnauthorized")
    assert "401" in refused["message"] and repository in refused["message"]
    wait_for(
        lambda: "CredentialsIncomplete" in cluster.event_reasons("broken"),
        15,
        "a Warning Event on the broken Project",
    )

    await genesis_item(queue, cluster.namespace, 1)
    cluster.wait_intake("shop", "True", "Polling")
    for project in ("broken", "revoked"):
        assert await queued(queue, cluster.namespace, project) == 0
