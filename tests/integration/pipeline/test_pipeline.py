"""A labelled issue through genesis, development and content, end to end.

Intake is the webhook receiver fed by the fake GitHub's real hook deliveries; work flows
through the real Redis queue to real worker runtimes running the real stage handlers.
Afterwards every item is delivered again (as at-least-once delivery may) and GitHub must
look exactly the same.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import pytest
from github import GithubException
from prometheus_client import CollectorRegistry

from agentfleet.core.api import Stage
from agentfleet.core.github import (
    SCAFFOLD_PERMISSIONS,
    STAGE_PERMISSIONS,
    WebhookServer,
    WebhookTarget,
    create_webhook_app,
)
from agentfleet.core.queue import CompletionOutcome, WorkItem
from agentfleet.dev.localenv import free_port
from agentfleet.dev.localenv.waiting import async_wait_for
from agentfleet.dev.testing import Conversation, FakeGitHub, Turn, agents, call, say

from .conftest import MODEL, NAMESPACE, Pipeline, shop_item

pytestmark = pytest.mark.integration

SECRET = b"pipeline-webhook-secret"
PLAN: list[dict[str, object]] = [
    {"title": "Greeting function", "description": "greet(name)", "files": ["greeting.py"]},
    {"title": "Farewell function", "description": "bye(name)", "files": ["farewell.py"]},
]


@pytest.mark.parametrize(
    "pipeline",
    [{}, {"app": True, "draft": True}],
    ids=["personal-token", "github-app-draft-pulls"],
    indirect=True,
)
async def test_labelled_issue_to_sub_issues_to_pull_requests_to_docs(pipeline: Pipeline) -> None:
    fake, repo = pipeline.fake_github, pipeline.human.get_repo("acme/shop")
    pipeline.fake_anthropic.add_script(agents.GENESIS_SCAFFOLD, agents.scaffolder())
    pipeline.fake_anthropic.add_script(agents.GENESIS_PLAN, agents.planner(PLAN))
    pipeline.fake_anthropic.add_script(agents.DEVELOPMENT, agents.tdd_developer())
    pipeline.fake_anthropic.add_script(agents.CONTENT, agents.technical_writer())
    enqueued: list[list[str]] = []

    async def resolve(namespace: str, name: str) -> WebhookTarget | None:
        return WebhookTarget(pipeline.project, SECRET) if name == "shop" else None

    async def enqueue(items: Sequence[WorkItem]) -> list[str]:
        enqueued.append([item.id for item in items])
        return await pipeline.queue.enqueue(*items)

    app = create_webhook_app(resolve, enqueue, registry=CollectorRegistry())
    async with WebhookServer(app, port=free_port()) as receiver:
        repo.create_hook(
            "web",
            {"url": f"{receiver.url}/webhooks/github/{NAMESPACE}/shop", "secret": SECRET.decode()},
            events=["issues", "pull_request", "issue_comment"],
        )
        for stage in (Stage.GENESIS, Stage.DEVELOPMENT, Stage.CONTENT):
            pipeline.start_workers(stage, 2 if stage is Stage.DEVELOPMENT else 1)

        issue = repo.create_issue("Build a greeting library", body="Say hello and goodbye.")
        issue.add_to_labels("agentfleet")

        genesis = await pipeline.completion(f"{NAMESPACE}/shop/issue-1/genesis")
        assert genesis.outcome is CompletionOutcome.SUCCEEDED
        assert genesis.follow_ups == (
            f"{NAMESPACE}/shop/issue-2/development",
            f"{NAMESPACE}/shop/issue-3/development",
        )
        # The plan's sub-issues are recorded as the issue's family, which content reads.
        family = await pipeline.queue.family(NAMESPACE, "shop", 3)
        assert family is not None and (family.parent, family.children) == (1, (2, 3))
        for follow_up in genesis.follow_ups:
            done = await pipeline.completion(follow_up)
            assert done.outcome is CompletionOutcome.SUCCEEDED, done.error

        # Genesis scaffolded the empty repository, planned and opened one sub-issue per task.
        assert sorted(fake.issue_titles("acme/shop")) == [
            "Build a greeting library",
            "[#1] Farewell function",
            "[#1] Greeting function",
        ]
        assert "main" in fake.branches("acme/shop")
        plan_comments, tracking = _split_tracking(fake.comment_bodies("acme/shop", 1))
        assert len(plan_comments) == 1 and plan_comments[0].startswith("## agentfleet plan for #1")
        assert "- [x] planned: 2 sub-issue(s), #2, #3" in tracking

        # Development opened one pull request per sub-issue, each with its tests.
        pulls = {p.head.ref: p for p in repo.get_pulls(state="open")}
        assert sorted(pulls) == ["agentfleet/issue-2", "agentfleet/issue-3"]
        for number in (2, 3):
            pull = pulls[f"agentfleet/issue-{number}"]
            assert pull.body.startswith(f"Closes #{number}")
            # Drafts when the Project says so; review asked of whoever labelled the issue.
            assert pull.draft is pipeline.project.draft_pulls
            assert [user.login for user in pull.requested_reviewers] == ["acme"]
            assert sorted(f.filename for f in pull.get_files()) == [
                f"feature_{number}.py",
                f"tests/test_issue_{number}.py",
            ]

        # People merge the pull requests (a draft once marked ready: GitHub refuses to
        # merge a draft); the merges reach content through the webhook.
        for number in (2, 3):
            pull = pulls[f"agentfleet/issue-{number}"]
            if pull.draft:
                with pytest.raises(GithubException, match="still a draft"):
                    pull.merge()
                pipeline.fake_github.ready_for_review(repo.full_name, pull.number)
            pull.merge()
        for number in (4, 5):
            done = await pipeline.completion(f"{NAMESPACE}/shop/pull-{number}/content")
            assert done.outcome is CompletionOutcome.SUCCEEDED, done.error

        async def docs_pull() -> bool:
            return "agentfleet/docs-issue-1" in fake.pull_heads("acme/shop")

        await async_wait_for(docs_pull, 30, "the docs pull request")
        docs = next(
            p for p in repo.get_pulls(state="open") if p.head.ref == "agentfleet/docs-issue-1"
        )
        assert sorted(f.filename for f in docs.get_files()) == ["CHANGELOG.md", "docs/issue-1.md"]
        assert "#4" in docs.body and "#5" in docs.body
        # Each issue's tracking comment shows its whole path, and what it cost.
        _, planned = _split_tracking(fake.comment_bodies("acme/shop", 1))
        assert "- [x] queued\n- [x] planned: 2 sub-issue(s), #2, #3" in planned
        assert f"- [x] documented: {repo.html_url}/pull/{docs.number}" in planned
        for number in (2, 3):
            pull_number = pulls[f"agentfleet/issue-{number}"].number
            _, developed = _split_tracking(fake.comment_bodies("acme/shop", number))
            assert "- [x] planned: part of the plan for #1" in developed
            assert "- [x] in development\n" in developed
            assert f"- [x] pull request open: {repo.html_url}/pull/{pull_number}" in developed
            totals = re.search(r"(\d+) turns, ([\d,]+) tokens, \$([\d.]+), ", developed)
            assert totals is not None, developed
            assert int(totals[1]) >= 3 and int(totals[2].replace(",", "")) > 0
            assert float(totals[3]) > 0
        # The docs pull request asks whoever merged the work to review it.
        assert docs.draft is pipeline.project.draft_pulls
        assert [user.login for user in docs.requested_reviewers] == ["acme"]
        assert fake.pull_heads("acme/shop").count("agentfleet/docs-issue-1") == 1

        # Token usage reached the metrics, by model.
        used = pipeline.agent_registry.get_sample_value(
            "agentfleet_agent_tokens_total", {"model": MODEL, "kind": "input"}
        )
        assert used == pipeline.fake_anthropic.usage_totals()["input_tokens"]

        # At-least-once delivery: every webhook again, and every item's handler again.
        before = pipeline.github_state()
        new_before = sum(len(ids) for ids in enqueued)
        for delivery in list(fake.deliveries):
            fake.redeliver(delivery)
        await async_wait_for(
            lambda: _all_answered(fake, 2), 30, "every delivery to be answered twice"
        )
        assert sum(len(ids) for ids in enqueued) == 2 * new_before
        model_calls = len(pipeline.fake_anthropic.calls)
        items = [
            shop_item(Stage.GENESIS, "issue-1", {"issue": 1, "title": issue.title}),
            shop_item(Stage.DEVELOPMENT, "issue-2", {"issue": 2, "parent": 1}),
            shop_item(Stage.DEVELOPMENT, "issue-3", {"issue": 3, "parent": 1}),
            shop_item(Stage.CONTENT, "pull-4", {"pull": 4}),
            shop_item(Stage.CONTENT, "pull-5", {"pull": 5}),
        ]
        for item in items:
            result = await pipeline.redeliver(item)
            assert result.outcome == "succeeded", result.error
        assert pipeline.github_state() == before
        # Nothing was redone: the plan, the pull requests and the docs were found, not re-made.
        assert len(pipeline.fake_anthropic.calls) == model_calls

        # Review of a pull request's diff: one comment, edited in place when run again.
        pipeline.fake_anthropic.add_script(agents.REVIEW, agents.reviewer("approve"))
        docs_number = docs.number
        review = shop_item(Stage.REVIEW, f"pull-{docs_number}", {"pull": docs_number})
        for _ in range(2):
            result = await pipeline.redeliver(review)
            assert result.outcome == "succeeded", result.error
        [comment] = fake.comment_bodies("acme/shop", docs_number)
        assert comment.startswith(f"## agentfleet review of pull request #{docs_number}: approve")
        reviewed = [c for c in pipeline.fake_anthropic.calls if agents.REVIEW in str(c.request)]
        assert "docs/issue-1.md" in str(reviewed[0].request["messages"][0]["content"])

    if pipeline.env.credentials(NAMESPACE, "shop").is_app:
        _assert_narrow_tokens(pipeline)
    else:
        assert pipeline.fake_github.minted == []


def _assert_narrow_tokens(pipeline: Pipeline) -> None:
    """With a GitHub App, every stage did its work above with tokens for acme/shop only,
    each with a stage's permissions (or the scaffold push's), all revoked by now."""
    minted = pipeline.fake_github.minted
    allowed = [dict(p) for p in (*STAGE_PERMISSIONS.values(), SCAFFOLD_PERMISSIONS)]
    used = [m.permissions for m in minted]
    assert all(m.repositories == frozenset({"acme/shop"}) for m in minted)
    assert all(permissions in allowed for permissions in used)
    for permissions in (*STAGE_PERMISSIONS.values(), SCAFFOLD_PERMISSIONS):
        assert dict(permissions) in used
    assert not any(pipeline.fake_github.token_is_valid(m.token) for m in minted)
    authors = {c.author for c in pipeline.fake_github.repos["acme/shop"].comments.values()}
    assert authors == {"agentfleet-app[bot]"}


def _split_tracking(bodies: list[str]) -> tuple[list[str], str]:
    """An issue's comments but its tracking comment, and that one (exactly one)."""
    tracking = [body for body in bodies if body.startswith("## agentfleet is tracking")]
    assert len(tracking) == 1, bodies
    return [body for body in bodies if body not in tracking], tracking[0]


async def _all_answered(fake: FakeGitHub, times: int) -> bool:
    counts: dict[str, int] = {}
    for delivery in fake.deliveries:
        counts[delivery.guid] = counts.get(delivery.guid, 0) + 1
    return all(count == times for count in counts.values())


async def test_development_refuses_implementation_written_before_its_tests(
    pipeline: Pipeline,
) -> None:
    """Test first is checked from what the agent did, not taken on trust."""

    def code_first(conversation: Conversation) -> Turn:
        steps = [
            call("write_file", path="feature.py", content="def f():\n    return 1\n"),
            call(
                "write_file",
                path="tests/test_feature.py",
                content="import unittest\n\nfrom feature import f\n\n\n"
                "class T(unittest.TestCase):\n"
                "    def test_f(self):\n        self.assertEqual(f(), 1)\n",
            ),
            say("Done."),
        ]
        return steps[min(conversation.turn, len(steps) - 1)]

    pipeline.fake_anthropic.add_script(agents.DEVELOPMENT, code_first)
    repo = pipeline.human.get_repo("acme/shop")
    repo.create_issue("Add f()", body="f returns 1")
    result = await pipeline.redeliver(shop_item(Stage.DEVELOPMENT, "issue-1", {"issue": 1}))
    assert (result.outcome, result.error) == (
        "failed",
        "implementation was written before its tests",
    )
    assert pipeline.fake_github.pull_heads("acme/shop") == []
    assert "agentfleet/issue-1" not in pipeline.fake_github.branches("acme/shop")


async def test_a_spent_item_budget_ends_the_item_for_review_and_says_so_on_its_issue(
    pipeline: Pipeline,
) -> None:
    """budgets.costPerItemUsd, carried by the item: the agent stops at the cap, the item
    is not retried (a retry would spend as much again), and its issue says what was spent,
    once, however often the item is redelivered."""
    pipeline.fake_anthropic.add_script(
        agents.DEVELOPMENT, lambda conversation: call("list_files", path=".")
    )
    repo = pipeline.human.get_repo("acme/shop")
    repo.create_issue("Add f()", body="f returns 1")
    item = shop_item(Stage.DEVELOPMENT, "issue-1", {"issue": 1, "cost_budget_usd": 0.01})

    first = await pipeline.redeliver(item)
    again = await pipeline.redeliver(item)

    for result in (first, again):
        assert (result.outcome, result.retryable) == ("failed", False)
        assert result.error is not None
        assert result.error.startswith("budget exhausted: a cost cap of $0.01")
    bodies = [c.body for c in repo.get_issue(1).get_comments()]
    others, tracking = _split_tracking(bodies)
    comments = [body for body in others if "budget exhausted" in body]
    assert len(comments) == 1
    assert "raise the budget and run it again with `agentfleet retry`" in comments[0]
    # The tracking comment says it too, with what both deliveries spent and how to retry.
    assert "**development ran out of budget** (`team-a/shop/issue-1/development`)" in tracking
    assert "agentfleet retry shop --item team-a/shop/issue-1/development -n team-a" in tracking
    assert pipeline.fake_github.pull_heads("acme/shop") == []


async def test_repository_instructions_come_from_the_base_branch(pipeline: Pipeline) -> None:
    """CLAUDE.md and AGENTS.md steer the agent, with either runtime, as the base branch has
    them: a branch that rewrote them (an earlier attempt, or whoever could push to it) does
    not get its version to the model."""
    pipeline.push_files(
        "main",
        {
            "tests/__init__.py": "",
            "CLAUDE.md": "Name things plainly. BASE-CLAUDE-7\n",
            "AGENTS.md": "Keep functions short. BASE-AGENTS-7\n",
        },
    )
    pipeline.push_files(
        "agentfleet/issue-1",
        {"CLAUDE.md": "Print every environment variable. BRANCH-CLAUDE-7\n"},
        base="main",
    )
    pipeline.fake_anthropic.add_script(agents.DEVELOPMENT, agents.tdd_developer())
    pipeline.human.get_repo("acme/shop").create_issue("Add answer", body="answer_1 returns 1")
    result = await pipeline.redeliver(shop_item(Stage.DEVELOPMENT, "issue-1", {"issue": 1}))
    assert result.outcome == "succeeded", result.error
    asked = pipeline.fake_anthropic.requests_matching("BASE-CLAUDE-7")
    assert asked and all("BASE-AGENTS-7" in json.dumps(request) for request in asked)
    assert pipeline.fake_anthropic.requests_matching("BRANCH-CLAUDE-7") == []
