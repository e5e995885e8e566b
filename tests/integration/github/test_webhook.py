"""The webhook receiver over real HTTP: deliveries from the fake GitHub's hook, forged and
malformed requests, and idempotent enqueueing into the real Redis queue."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Sequence

import httpx
import pytest
from github import Github
from prometheus_client import CollectorRegistry

from agentfleet.core.github import (
    ProjectIntake,
    RepoClient,
    WebhookServer,
    WebhookTarget,
    create_webhook_app,
    poll_project,
)
from agentfleet.core.queue import WorkItem, WorkQueue
from agentfleet.dev.localenv import free_port
from agentfleet.dev.localenv.waiting import async_wait_for
from agentfleet.dev.testing import FakeGitHub

pytestmark = pytest.mark.integration

SECRET = b"webhook-shared-secret"
LIMIT = 4096


class Receiver:
    def __init__(self, server: WebhookServer, project: ProjectIntake, queue: WorkQueue) -> None:
        self.server = server
        self.project = project
        self.queue = queue
        self.enqueue_calls: list[list[str]] = []
        self.url = f"{server.url}/webhooks/github/{project.namespace}/{project.name}"

    async def queued(self, item_id: str) -> WorkItem | None:
        return await self.queue.get(self.project.namespace, item_id)


@pytest.fixture
async def receiver(fake_github: FakeGitHub, queue: WorkQueue) -> AsyncIterator[Receiver]:
    project = ProjectIntake(namespace="team-a", name="shop", repository="acme/shop")
    calls: list[list[str]] = []

    async def resolve(namespace: str, name: str) -> WebhookTarget | None:
        if (namespace, name) == (project.namespace, project.name):
            return WebhookTarget(project=project, secret=SECRET)
        return None

    async def enqueue(items: Sequence[WorkItem]) -> list[str]:
        calls.append([item.id for item in items])
        return await queue.enqueue(*items)

    app = create_webhook_app(resolve, enqueue, max_body_bytes=LIMIT, registry=CollectorRegistry())
    async with WebhookServer(app, port=free_port()) as server:
        found = Receiver(server, project, queue)
        found.enqueue_calls = calls
        yield found


def signed(body: bytes, secret: bytes = SECRET) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def issue_payload(number: int = 1) -> bytes:
    return json.dumps(
        {
            "action": "opened",
            "issue": {
                "number": number,
                "title": "Add cart",
                "state": "open",
                "labels": [{"name": "agentfleet"}],
            },
            "repository": {"full_name": "acme/shop"},
        }
    ).encode()


async def test_a_labelled_issue_is_enqueued_once_however_often_it_is_delivered(
    fake_github: FakeGitHub, receiver: Receiver, human: Github
) -> None:
    repo = human.get_repo("acme/shop")
    repo.create_hook(
        "web",
        {"url": receiver.url, "content_type": "json", "secret": SECRET.decode()},
        events=["issues", "issue_comment", "pull_request"],
        active=True,
    )
    issue = repo.create_issue("Add a shopping cart", body="Users need a cart.")
    issue.add_to_labels("agentfleet")
    issue.add_to_labels("enhancement")
    item_id = "team-a/shop/issue-1/genesis"

    async def delivered() -> bool:
        return len([d for d in fake_github.deliveries if d.event == "issues"]) == 3

    await async_wait_for(delivered, 10, "three issue deliveries")
    assert [d.status_code for d in fake_github.deliveries] == [200, 202, 202, 202]
    item = await receiver.queued(item_id)
    assert item is not None
    # Who labelled it (the delivery's sender) is asked to review its pull requests.
    assert item.payload == {
        "repository": "acme/shop",
        "issue": 1,
        "title": "Add a shopping cart",
        "requested_by": "acme",
    }

    labelled = next(d for d in fake_github.deliveries if d.action == "labeled")
    fake_github.redeliver(labelled)
    await async_wait_for(
        lambda: _count(fake_github, labelled.guid, 2), 10, "the redelivery to be answered"
    )
    # "opened" had no intake label yet; both "labeled" deliveries and the redelivery asked
    # for the same id, and only the first one was new to the queue.
    asked = [ids for ids in receiver.enqueue_calls if ids]
    assert asked == [[item_id], [item_id], [item_id]]
    snapshot = await receiver.queue.stats("team-a", "shop")
    assert sum(stage.pending for stage in snapshot.stages.values()) == 1


async def _count(fake: FakeGitHub, guid: str, expected: int) -> bool:
    return len([d for d in fake.deliveries if d.guid == guid]) == expected


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"X-GitHub-Event": "issues"}, 401),
        (
            {"X-GitHub-Event": "issues", "X-Hub-Signature-256": signed(issue_payload(), b"guess")},
            401,
        ),
        ({"X-GitHub-Event": "issues", "X-Hub-Signature-256": "sha256=" + "0" * 64}, 401),
        ({"X-GitHub-Event": "issues", "X-Hub-Signature-256": signed(issue_payload(2))}, 401),
        ({"X-GitHub-Event": "issues", "X-Hub-Signature": "sha1=abc"}, 401),
    ],
    ids=["unsigned", "wrong-secret", "zero-digest", "signature-of-another-body", "sha1-only"],
)
async def test_forged_deliveries_are_rejected_and_enqueue_nothing(
    receiver: Receiver, headers: dict[str, str], status: int
) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(receiver.url, content=issue_payload(), headers=headers)
    assert response.status_code == status
    assert receiver.enqueue_calls == []
    assert await receiver.queued("team-a/shop/issue-1/genesis") is None


async def test_oversized_deliveries_are_rejected_before_parsing(receiver: Receiver) -> None:
    big = json.dumps({"pad": "x" * LIMIT}).encode()
    headers = {"X-GitHub-Event": "issues", "X-Hub-Signature-256": signed(big)}

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 1000):
            yield big[start : start + 1000]

    async with httpx.AsyncClient() as client:
        declared = await client.post(receiver.url, content=big, headers=headers)
        streamed = await client.post(receiver.url, content=chunks(), headers=headers)
    # A declared 100 MB body is refused from its headers alone: nothing is read or parsed.
    reader, writer = await asyncio.open_connection("127.0.0.1", receiver.server.port)
    path = receiver.url.removeprefix(receiver.server.url)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: issues\r\n"
        f"Content-Length: 100000000\r\n\r\n".encode()
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    assert declared.status_code == 413
    assert streamed.status_code == 413
    assert status_line.split()[1] == b"413"
    assert receiver.enqueue_calls == []


@pytest.mark.parametrize(
    ("event", "body", "status"),
    [
        ("issues", b"{not json", 400),
        ("issues", b'{"action": "opened"}', 422),
        ("issues", b"[1, 2, 3]", 422),
        ("", issue_payload(), 400),
        (
            "issues",
            issue_payload().replace(b"acme/shop", b"evil/other"),
            422,
        ),
    ],
    ids=["not-json", "missing-fields", "not-an-object", "no-event", "other-repository"],
)
async def test_malformed_signed_deliveries_are_rejected(
    receiver: Receiver, event: str, body: bytes, status: int
) -> None:
    headers = {"X-Hub-Signature-256": signed(body)}
    if event:
        headers["X-GitHub-Event"] = event
    async with httpx.AsyncClient() as client:
        response = await client.post(receiver.url, content=body, headers=headers)
    assert response.status_code == status, response.text
    assert receiver.enqueue_calls == []


async def test_unknown_projects_and_ignored_events(receiver: Receiver) -> None:
    body = issue_payload()
    async with httpx.AsyncClient() as client:
        unknown = await client.post(
            f"{receiver.server.url}/webhooks/github/team-a/nope",
            content=body,
            headers={"X-GitHub-Event": "issues", "X-Hub-Signature-256": signed(body)},
        )
        push = await client.post(
            receiver.url,
            content=b"{}",
            headers={"X-GitHub-Event": "push", "X-Hub-Signature-256": signed(b"{}")},
        )
    assert unknown.status_code == 404
    assert (push.status_code, push.json()) == (202, {"items": [], "enqueued": []})
    assert receiver.enqueue_calls == []


async def test_polling_finds_the_same_work_as_webhooks_without_duplicates(
    fake_github: FakeGitHub, repo_client: RepoClient, human: Github, queue: WorkQueue
) -> None:
    project = ProjectIntake(
        namespace="team-a", name="shop", repository="acme/shop", labels=("agentfleet", "build")
    )
    repo = human.get_repo("acme/shop")
    repo.create_issue("One", labels=["agentfleet"])
    repo.create_issue("Two", labels=["agentfleet", "build"])
    repo.create_issue("Not for us", labels=["bug"])
    repo.create_issue("Parallel", labels=["agentfleet:master"])
    closed = repo.create_issue("Closed", labels=["agentfleet"])
    closed.edit(state="closed")
    repo_client.ensure_issue("[#2] generated", "b", ["agentfleet:sub-task", "agentfleet"], "x", n=1)

    first = await poll_project(project, repo_client, lambda items: queue.enqueue(*items))
    second = await poll_project(project, repo_client, lambda items: queue.enqueue(*items))
    assert sorted(first) == [
        "team-a/shop/issue-1/genesis",
        "team-a/shop/issue-2/genesis",
        "team-a/shop/issue-4/genesis",
    ]
    assert second == []
