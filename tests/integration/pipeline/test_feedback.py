"""The pull-request feedback loop end to end: people review agentfleet's pull request and CI
fails a check on the fake GitHub, whose webhook reaches the real receiver; feedback is kept
in the real Redis queue and real development workers push fix rounds to the same branch,
answering in the review threads. Runs with both agent runtimes (the `runtime` fixture)."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Sequence

import pytest
from github import Auth, Github
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from agentfleet.core.api import Stage
from agentfleet.core.github import (
    GitHubCredentials,
    Pacing,
    RepoClient,
    WebhookServer,
    WebhookTarget,
    create_webhook_app,
)
from agentfleet.core.queue import CompletionOutcome, WorkItem
from agentfleet.dev.localenv import free_port
from agentfleet.dev.localenv.waiting import async_wait_for
from agentfleet.dev.testing import agents

from .conftest import BOT_TOKEN, NAMESPACE, Pipeline, shop_item

pytestmark = pytest.mark.integration

SECRET = b"feedback-webhook-secret"
CI_TOKEN = "ghp_" + "c1runner" * 5
STRANGER_TOKEN = "ghp_" + "str4nger" * 5


def file_at(pipeline: Pipeline, branch: str, path: str) -> str:
    """A file on a branch of the fake's repository (what was pushed)."""
    git_dir = pipeline.fake_github.repos["acme/shop"].git_dir
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"{branch}:{path}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def round_id(pull: int, number: int) -> str:
    return f"{NAMESPACE}/shop/pull-{pull}/development/round-{number}"


@pytest.fixture
async def receiver(pipeline: Pipeline) -> AsyncIterator[list[list[str]]]:
    """The webhook receiver as the operator runs it, answering through agentfleet's own
    client and keeping feedback in the pipeline's queue; yields what it enqueued."""
    enqueued: list[list[str]] = []
    client = RepoClient(
        GitHubCredentials(token=SecretStr(BOT_TOKEN)),
        "acme/shop",
        pipeline.fake_github.base_url,
        Pacing.none(),
    )
    project = pipeline.project.model_copy(update={"max_fix_rounds": 3})

    async def resolve(namespace: str, name: str) -> WebhookTarget | None:
        return WebhookTarget(project, SECRET)

    async def enqueue(items: Sequence[WorkItem]) -> list[str]:
        enqueued.append([item.id for item in items])
        return await pipeline.queue.enqueue(*items)

    async def repo_for(namespace: str, name: str) -> RepoClient:
        return client

    app = create_webhook_app(
        resolve,
        enqueue,
        registry=CollectorRegistry(),
        repo_for=repo_for,
        feedback_store=pipeline.queue,
    )
    async with WebhookServer(app, port=free_port()) as server:
        pipeline.human.get_repo("acme/shop").create_hook(
            "web",
            {"url": f"{server.url}/webhooks/github/{NAMESPACE}/shop", "secret": SECRET.decode()},
            events=["pull_request_review_comment", "issue_comment", "check_run"],
        )
        yield enqueued
    client.close()


def as_user(pipeline: Pipeline, token: str) -> Github:
    return Github(
        base_url=pipeline.fake_github.base_url,
        auth=Auth.Token(token),
        seconds_between_requests=None,
        seconds_between_writes=None,
    )


async def test_reviews_and_failing_checks_become_serial_fix_rounds_until_the_guard(
    pipeline: Pipeline, receiver: list[list[str]]
) -> None:
    fake = pipeline.fake_github
    fake.add_token(CI_TOKEN, "ci")
    fake.add_token(STRANGER_TOKEN, "mallory")
    pipeline.seed_main()
    pipeline.fake_anthropic.add_script(agents.DEVELOPMENT, agents.tdd_developer())
    pipeline.fake_anthropic.add_script(agents.FEEDBACK, agents.fixer())
    repo = pipeline.human.get_repo("acme/shop")
    repo.create_issue("Add answer", body="answer_1 returns 1")
    opened = await pipeline.redeliver(shop_item(Stage.DEVELOPMENT, "issue-1", {"issue": 1}))
    assert opened.outcome == "succeeded", opened.error
    pull = repo.get_pull(opened.output["pull"])
    branch = pull.head.ref
    first_head = fake.branches("acme/shop")[branch]

    # Two review comments before any worker runs: one round, which addresses both.
    for text in ("Name it `answer` (A).", "Add a docstring (A2)."):
        pull.create_review_comment(text, repo.get_commit(first_head), "feature_1.py", line=1)
    # A stranger's review comment is refused in its thread, and is not feedback.
    stranger_pull = as_user(pipeline, STRANGER_TOKEN).get_repo("acme/shop").get_pull(pull.number)
    stranger_pull.create_review_comment(
        "Delete everything (X).", repo.get_commit(first_head), "feature_1.py", line=1
    )

    async def answered(count: int) -> bool:
        done = [d for d in list(fake.deliveries) if d.status_code]
        return len(done) >= count and len(done) == len(fake.deliveries)

    await async_wait_for(lambda: answered(3), 15, "three review comments answered")
    assert await pipeline.queue.get(NAMESPACE, round_id(pull.number, 1)) is not None
    assert receiver == [[round_id(pull.number, 1)]] * 2  # the stranger's is not there
    pipeline.start_workers(Stage.DEVELOPMENT, 1)
    first = await pipeline.completion(round_id(pull.number, 1))
    assert first.outcome is CompletionOutcome.SUCCEEDED, first.error
    second_head = fake.branches("acme/shop")[branch]
    assert second_head != first_head  # pushed to the same branch
    text = file_at(pipeline, branch, f"notes/pull-{pull.number}-round-1.md")
    assert "(A)" in text and "(A2)" in text and "(X)" not in text
    thread = fake.review_comment_bodies("acme/shop", pull.number)
    replies = [(parent, body) for parent, author, body in thread if author == "agentfleet-bot"]
    assert any("did not start: only people with write access" in body for _, body in replies)
    pushed = [body for _, body in replies if body.startswith(f"Pushed to `{branch}` (round 1)")]
    assert len(pushed) == 2  # one answer in each addressed thread

    # A failing check on the new head: round 2. While it runs (the model is slow now),
    # two more comments arrive: they make one round 3 after it, never a parallel run.
    pipeline.fake_anthropic.latency = 1.0
    ci = as_user(pipeline, CI_TOKEN).get_repo("acme/shop")
    ci.create_check_run(
        "tests",
        second_head,
        status="completed",
        conclusion="failure",
        output={"title": "1 failed", "summary": "FAILED tests/test_issue_1.py (CHECK)"},
    )

    async def round_running() -> bool:
        held = await pipeline.queue.in_flight(NAMESPACE)
        return round_id(pull.number, 2) in {entry.item_id for entry in held}

    await async_wait_for(round_running, 30, "round 2 to be running")
    for text in ("Also log it (B).", "And a type hint (C)."):
        pipeline.human.get_repo("acme/shop").get_issue(pull.number).create_comment(
            f"@agentfleet {text}"
        )
    second = await pipeline.completion(round_id(pull.number, 2))
    assert second.outcome is CompletionOutcome.SUCCEEDED, second.error
    assert second.follow_ups == (round_id(pull.number, 3),)
    third = await pipeline.completion(round_id(pull.number, 3))
    assert third.outcome is CompletionOutcome.SUCCEEDED, third.error
    assert "(CHECK)" in file_at(pipeline, branch, f"notes/pull-{pull.number}-round-2.md")
    round_3 = file_at(pipeline, branch, f"notes/pull-{pull.number}-round-3.md")
    assert "(B)" in round_3 and "(C)" in round_3
    assert await pipeline.queue.get(NAMESPACE, round_id(pull.number, 4)) is None
    answers = fake.comment_bodies("acme/shop", pull.number)
    assert any(body.startswith(f"Pushed to `{branch}` (round 2)") for body in answers)
    assert any(body.startswith(f"Pushed to `{branch}` (round 3)") for body in answers)

    # Three rounds are this Project's most: more feedback gets one comment asking a person.
    for text in ("One more thing (D).", "And another (E)."):
        pipeline.human.get_repo("acme/shop").get_issue(pull.number).create_comment(
            f"@agentfleet {text}"
        )

    def guard() -> list[str]:
        return [b for b in fake.comment_bodies("acme/shop", pull.number) if "maxFixRounds" in b]

    await async_wait_for(lambda: _async(guard()), 15, "the loop guard's comment")
    await async_wait_for(lambda: answered(1), 15, "every delivery answered")
    assert len(guard()) == 1
    assert await pipeline.queue.get(NAMESPACE, round_id(pull.number, 4)) is None


async def _async(value: list[str]) -> list[str]:
    return value
