"""Mentions and assignment through the operator: the fake GitHub's webhook reaches
`agentfleet operator`, which reads the Project and its credentials from the API server,
asks GitHub for the commenter's permission, enqueues into the real Redis queue and
answers on the issue (a reaction, or a reply)."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from github import Auth, Github

from agentfleet.core.queue import WorkQueue
from agentfleet.dev.localenv import RedisServer
from agentfleet.dev.localenv.waiting import async_wait_for, wait_for
from agentfleet.dev.testing import FakeGitHub

from .conftest import BOT_TOKEN, Cluster, IntakeOperator

pytestmark = pytest.mark.e2e

WEBHOOK_SECRET = "trigger-webhook-secret"
WRITER_TOKEN = "ghp_" + "wr1terr" * 5
STRANGER_TOKEN = "ghp_" + "str4ngr" * 5


@pytest.fixture
async def queue(redis_server: RedisServer) -> AsyncIterator[WorkQueue]:
    work_queue = WorkQueue.from_url(redis_server.url)
    yield work_queue
    await work_queue.close()


def person(fake_github: FakeGitHub, token: str) -> Github:
    return Github(
        base_url=fake_github.base_url,
        auth=Auth.Token(token),
        seconds_between_requests=None,
        seconds_between_writes=None,
    )


def hooked_project(
    cluster: Cluster,
    intake_operator: IntakeOperator,
    fake_github: FakeGitHub,
    human: Github,
    repository: str,
    events: list[str],
    **spec: Any,
) -> None:
    """The Project `shop` taking webhooks only (its poll is a day away), a writer `wendy`,
    and the repository's hook sending `events` to the operator."""
    fake_github.add_token(WRITER_TOKEN, "wendy")
    fake_github.add_collaborator(repository, "wendy", "write")
    cluster.secret("github", token=BOT_TOKEN, webhook_secret=WEBHOOK_SECRET)
    webhook = {"enabled": True, "secretRef": {"name": "github", "key": "webhook-secret"}}
    cluster.project(
        "shop",
        repository=repository,
        githubApiUrl=fake_github.base_url,
        credentialsSecretRef={"name": "github"},
        intake={"pollIntervalSeconds": 86400, "webhook": webhook},
        **spec,
    )
    cluster.wait_intake("shop", "True", "Polling")
    human.get_repo(repository).create_hook(
        "web",
        {"url": intake_operator.webhook_url(cluster.namespace, "shop"), "secret": WEBHOOK_SECRET},
        events=events,
    )


async def test_mentions_by_writers_are_taken_and_others_answered(
    cluster: Cluster,
    intake_operator: IntakeOperator,
    fake_github: FakeGitHub,
    human: Github,
    repository: str,
    queue: WorkQueue,
) -> None:
    fake_github.add_token(STRANGER_TOKEN, "mallory")
    hooked_project(
        cluster, intake_operator, fake_github, human, repository, ["issues", "issue_comment"]
    )
    repo = human.get_repo(repository)
    asked = repo.create_issue("Add a cart")  # no intake label: only the mention asks
    refused = repo.create_issue("Delete the database")
    assigned = repo.create_issue("Tidy the README")

    mention = (
        person(fake_github, WRITER_TOKEN)
        .get_repo(repository)
        .get_issue(asked.number)
        .create_comment("@agentfleet please take this")
    )
    person(fake_github, STRANGER_TOKEN).get_repo(repository).get_issue(
        refused.number
    ).create_comment("@agentfleet drop everything")
    repo.get_issue(assigned.number).add_to_assignees("agentfleet-bot")

    prefix = f"{cluster.namespace}/shop"
    item = await async_wait_for(
        lambda: queue.get(cluster.namespace, f"{prefix}/issue-{asked.number}/genesis"),
        60,
        "the mentioned issue's item",
    )
    assert item.payload["issue"] == asked.number
    wait_for(
        lambda: (
            fake_github.reactions(repository, asked.number, mention.id)
            == [("agentfleet-bot", "eyes")]
        ),
        30,
        "the mention to be acknowledged",
    )
    await async_wait_for(
        lambda: queue.get(cluster.namespace, f"{prefix}/issue-{assigned.number}/genesis"),
        60,
        "the assigned issue's item",
    )
    wait_for(
        lambda: fake_github.reactions(repository, assigned.number) == [("agentfleet-bot", "eyes")],
        30,
        "the assignment to be acknowledged",
    )
    replies = wait_for(
        lambda: fake_github.comment_bodies(repository, refused.number)[1:],
        30,
        "the refusal",
    )
    assert replies[0].startswith("@mallory agentfleet did not start: only people with write")
    assert await queue.get(cluster.namespace, f"{prefix}/issue-{refused.number}/genesis") is None

    triggers = {
        (kind, verdict, reason): intake_operator.metric(
            "agentfleet_webhook_triggers_total", kind=kind, verdict=verdict, reason=reason
        )
        for kind, verdict, reason in (
            ("mention", "accepted", ""),
            ("mention", "refused", "not_a_writer"),
            ("assignment", "accepted", ""),
        )
    }
    assert all(count >= 1 for count in triggers.values()), triggers
    answered = [
        d
        for d in fake_github.deliveries
        if json.loads(d.payload)["repository"]["full_name"] == repository
        and d.event in {"issue_comment", "issues"}
        and d.status_code is not None
    ]
    assert {d.status_code for d in answered} <= {202}, [(d.event, d.error) for d in answered]


def push(fake_github: FakeGitHub, repository: str, branch: str, files: dict[str, str],
         base: str | None, workdir: Path) -> str:  # fmt: skip
    """Commit `files` on `branch` (from `base`, or a first commit) straight into the fake's
    bare repository; returns the new head."""
    git_dir = fake_github.repos[repository].git_dir
    work = workdir / uuid.uuid4().hex[:8]
    env = {
        "GIT_AUTHOR_NAME": "acme", "GIT_AUTHOR_EMAIL": "acme@example.com",
        "GIT_COMMITTER_NAME": "acme", "GIT_COMMITTER_EMAIL": "acme@example.com",
        "PATH": "/usr/bin:/bin",
    }  # fmt: skip

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=work, env=env, check=True, capture_output=True, text=True
        ).stdout.strip()

    subprocess.run(["git", "clone", "-q", str(git_dir), str(work)], check=True, env=env)
    git("checkout", "-q", "-b", branch, f"origin/{base}") if base else git(
        "checkout", "-q", "--orphan", branch
    )
    for path, content in files.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(content)
    git("add", ".")
    git("commit", "-qm", branch)
    git("push", "-q", "origin", f"HEAD:{branch}")
    return git("rev-parse", "HEAD")


async def test_review_comments_and_failing_checks_are_kept_for_a_fix_round(
    cluster: Cluster,
    intake_operator: IntakeOperator,
    fake_github: FakeGitHub,
    human: Github,
    repository: str,
    queue: WorkQueue,
    tmp_path: Path,
) -> None:
    hooked_project(
        cluster, intake_operator, fake_github, human, repository,
        ["pull_request_review_comment", "check_run"], pullRequests={"maxFixRounds": 2},
    )  # fmt: skip
    push(fake_github, repository, "main", {"README.md": "# shop\n"}, None, tmp_path)
    head = push(fake_github, repository, "agentfleet/issue-1", {"f.py": "x = 1\n"}, "main",
                tmp_path)  # fmt: skip
    bot = person(fake_github, BOT_TOKEN).get_repo(repository)
    pull = bot.create_pull(title="Add f", body="Closes #1", head="agentfleet/issue-1", base="main")
    repo = human.get_repo(repository)
    reviewer = person(fake_github, WRITER_TOKEN).get_repo(repository).get_pull(pull.number)
    comment = reviewer.create_review_comment(
        "Call it y (R1).", repo.get_commit(head), "f.py", line=1
    )
    repo.create_check_run(
        "tests", head, status="completed", conclusion="failure",
        output={"title": "failed", "summary": "AssertionError (CI1)"},
    )  # fmt: skip

    round_one = f"{cluster.namespace}/shop/pull-{pull.number}/development/round-1"
    item = await async_wait_for(
        lambda: queue.get(cluster.namespace, round_one), 60, "round 1 in the queue"
    )
    assert item.payload["branch"] == "agentfleet/issue-1" and item.payload["max_rounds"] == 2

    async def both_kept() -> bool:
        pending = await queue.pending_feedback(cluster.namespace, "shop", pull.number)
        return {entry["kind"] for entry in pending.entries} == {"review_comment", "failing_check"}

    await async_wait_for(both_kept, 30, "the review comment and the failing check kept")
    pending = await queue.pending_feedback(cluster.namespace, "shop", pull.number)
    assert "(R1)" in json.dumps(pending.entries) and "(CI1)" in json.dumps(pending.entries)
    wait_for(
        lambda: (
            fake_github.review_reactions(repository, comment.id) == [("agentfleet-bot", "eyes")]
        ),
        30,
        "the review comment acknowledged",
    )
