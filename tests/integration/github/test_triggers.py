"""Mentions, `/agentfleet` commands and assignments, from people and bots on the fake
GitHub, through its webhook to the real receiver and the real Redis queue. The receiver
answers through a real RepoClient: the permission lookup, the reaction and the reply are
GitHub API calls the fake serves as GitHub does."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass

import pytest
from github import Auth, Github
from prometheus_client import CollectorRegistry

from agentfleet.core.github import (
    ProjectIntake,
    RepoClient,
    TriggerUnanswerable,
    WebhookServer,
    WebhookTarget,
    create_webhook_app,
)
from agentfleet.core.queue import WorkItem, WorkQueue
from agentfleet.dev.localenv import free_port
from agentfleet.dev.localenv.waiting import async_wait_for
from agentfleet.dev.testing import Delivery, FakeGitHub

pytestmark = pytest.mark.integration

SECRET = b"trigger-secret"
PEOPLE = {
    "ghp_" + "wr1ter" * 6: ("wendy", "write"),
    "ghp_" + "re4der" * 6: ("rita", "read"),
    "ghp_" + "str4ng" * 6: ("mallory", None),
    "ghp_" + "dep3nd" * 6: ("dependabot[bot]", None),
    "ghp_" + "ren0va" * 6: ("renovate[bot]", None),
}


@dataclass
class Triggers:
    fake: FakeGitHub
    queue: WorkQueue
    url: str
    enqueued: list[list[str]]
    github_down: list[bool]

    def as_(self, login: str) -> Github:
        token = next(t for t, (who, _) in PEOPLE.items() if who == login)
        return Github(
            base_url=self.fake.base_url,
            auth=Auth.Token(token),
            seconds_between_requests=None,
            seconds_between_writes=None,
        )

    async def answered(self, event: str, count: int) -> list[Delivery]:
        async def done() -> list[Delivery] | None:
            found = [d for d in self.fake.deliveries if d.event == event]
            if len(found) >= count and all(d.status_code for d in found[:count]):
                return found
            return None

        found: list[Delivery] = await async_wait_for(done, 15, f"{count} {event} deliveries")
        return found


@pytest.fixture
def people(fake_github: FakeGitHub) -> Iterator[None]:
    for token, (login, permission) in PEOPLE.items():
        fake_github.add_token(token, login)
        if permission is not None:
            fake_github.add_collaborator("acme/shop", login, permission)
    yield


@pytest.fixture
async def triggers(
    fake_github: FakeGitHub, queue: WorkQueue, repo_client: RepoClient, people: None
) -> AsyncIterator[Triggers]:
    project = ProjectIntake(
        namespace="team-a",
        name="shop",
        repository="acme/shop",
        allowed_bots=("renovate[bot]",),
    )
    enqueued: list[list[str]] = []
    github_down = [False]

    async def resolve(namespace: str, name: str) -> WebhookTarget | None:
        return WebhookTarget(project=project, secret=SECRET)

    async def enqueue(items: Sequence[WorkItem]) -> list[str]:
        enqueued.append([item.id for item in items])
        return await queue.enqueue(*items)

    async def repo_for(namespace: str, name: str) -> RepoClient:
        if github_down[0]:
            raise TriggerUnanswerable("the credentials Secret is missing")
        return repo_client

    app = create_webhook_app(resolve, enqueue, registry=CollectorRegistry(), repo_for=repo_for)
    async with WebhookServer(app, port=free_port()) as server:
        url = f"{server.url}/webhooks/github/team-a/shop"
        yield Triggers(fake_github, queue, url, enqueued, github_down)


def hook(human: Github, url: str) -> None:
    human.get_repo("acme/shop").create_hook(
        "web",
        {"url": url, "content_type": "json", "secret": SECRET.decode()},
        events=["issues", "issue_comment"],
        active=True,
    )


async def test_a_writers_mention_is_acknowledged_and_enqueued_once(
    triggers: Triggers, human: Github
) -> None:
    issue = human.get_repo("acme/shop").create_issue("Add a cart", body="no label")
    hook(human, triggers.url)
    writer = triggers.as_("wendy").get_repo("acme/shop").get_issue(issue.number)
    first = writer.create_comment("@agentfleet please take this one")
    second = writer.create_comment("Also, @agentfleet: use sqlite.")
    deliveries = await triggers.answered("issue_comment", 2)
    assert [d.status_code for d in deliveries] == [202, 202]

    item_id = f"team-a/shop/issue-{issue.number}/genesis"
    item = await triggers.queue.get("team-a", item_id)
    assert item is not None and item.payload["issue"] == issue.number
    # Both mentions asked for the issue's one item: the second is coalesced into it.
    assert triggers.enqueued == [[item_id], [item_id]]
    for comment in (first, second):
        assert triggers.fake.reactions("acme/shop", issue.number, comment.id) == [
            ("agentfleet-bot", "eyes")
        ]
    # Nothing was said: an accepted trigger is answered with the reaction alone.
    assert triggers.fake.comment_bodies("acme/shop", issue.number)[2:] == []


async def test_strangers_readers_and_unlisted_bots_are_refused_once_with_a_reply(
    triggers: Triggers, human: Github
) -> None:
    issue = human.get_repo("acme/shop").create_issue("Add a cart")
    hook(human, triggers.url)
    for login in ("mallory", "rita", "dependabot[bot]"):
        gh = triggers.as_(login)
        gh.get_repo("acme/shop").get_issue(issue.number).create_comment("@agentfleet do it")
    # The three trigger comments, then agentfleet's three replies (its own words).
    deliveries = await triggers.answered("issue_comment", 6)
    assert triggers.enqueued == []
    assert await triggers.queue.get("team-a", f"team-a/shop/issue-{issue.number}/genesis") is None
    replies = triggers.fake.comment_bodies("acme/shop", issue.number)[3:]
    assert len(replies) == 3
    assert replies[0].startswith("@mallory agentfleet did not start: only people with write")
    assert replies[1].startswith("@rita agentfleet did not start: only people with write")
    assert replies[2].startswith("@dependabot[bot] agentfleet did not start: bots may ask only")

    # GitHub's "Redeliver" of a refused trigger: no second reply.
    triggers.fake.redeliver(deliveries[0])
    await triggers.answered("issue_comment", 7)
    assert len(triggers.fake.comment_bodies("acme/shop", issue.number)) == 6


async def test_listed_bots_assignment_and_master_commands(
    triggers: Triggers, human: Github
) -> None:
    repo = human.get_repo("acme/shop")
    plain = repo.create_issue("Bump lockfile")
    master = repo.create_issue("Epic", labels=["agentfleet:master"])
    assigned = repo.create_issue("Assigned work")
    hook(human, triggers.url)

    bot = triggers.as_("renovate[bot]").get_repo("acme/shop")
    bot.get_issue(plain.number).create_comment("/agentfleet run")
    retry = (
        triggers.as_("wendy")
        .get_repo("acme/shop")
        .get_issue(master.number)
        .create_comment("/agentfleet retry")
    )
    await triggers.answered("issue_comment", 2)
    repo.get_issue(assigned.number).add_to_assignees("agentfleet-bot")
    repo.get_issue(assigned.number).add_to_assignees("wendy")  # someone else: ignored
    await triggers.answered("issues", 2)

    assert triggers.enqueued == [
        [f"team-a/shop/issue-{plain.number}/genesis"],
        [f"team-a/shop/issue-{master.number}/genesis/retry-failed-{retry.id}"],
        [f"team-a/shop/issue-{assigned.number}/genesis"],
    ]
    # The assignment is acknowledged on the issue itself.
    assert triggers.fake.reactions("acme/shop", assigned.number) == [("agentfleet-bot", "eyes")]


async def test_an_unanswerable_trigger_is_a_503_and_enqueues_nothing(
    triggers: Triggers, human: Github
) -> None:
    issue = human.get_repo("acme/shop").create_issue("Add a cart")
    hook(human, triggers.url)
    triggers.github_down[0] = True
    gh = triggers.as_("wendy")
    gh.get_repo("acme/shop").get_issue(issue.number).create_comment("@agentfleet go")
    deliveries = await triggers.answered("issue_comment", 1)
    assert deliveries[0].status_code == 503
    assert triggers.enqueued == []
    # Once the Project's credentials are back, GitHub's "Redeliver" takes it in.
    triggers.github_down[0] = False
    triggers.fake.redeliver(deliveries[0])
    again = await triggers.answered("issue_comment", 2)
    assert again[1].status_code == 202
    assert triggers.enqueued == [[f"team-a/shop/issue-{issue.number}/genesis"]]
