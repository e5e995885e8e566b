"""Parallel orchestration of a master issue through the real queue and worker runtime.

The master item only fans out (a join in the queue) and completes at once; its
master-summary item (`<master item id>/master-summary`), enqueued by the last sub-task to
finish, carries the verdict."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from agentfleet.core.api import Stage
from agentfleet.core.github import (
    GitHubCredentials,
    IssueFacts,
    Pacing,
    RepoClient,
    issue_work,
    poll_project,
)
from agentfleet.core.github.events import command_work
from agentfleet.core.pipeline import QualifierKind
from agentfleet.core.queue import CompletionOutcome
from agentfleet.dev.localenv.waiting import async_wait_for
from agentfleet.dev.testing import Conversation, agents

from .conftest import BOT_TOKEN, NAMESPACE, Pipeline

pytestmark = pytest.mark.integration

TASKS = [
    "Cart model (files: shop/cart.py)",
    "Catalogue listing (files: shop/catalogue.py)",
    "Price formatting (files: shop/shared/prices.py)",
    "Search index (files: shop/search.py)",
    "Wishlist (files: shop/wishlist.py)",
    "Order history (files: shop/orders.py)",
    "Currency helpers (files: shop/shared)",
    "Ratings (files: shop/ratings.py)",
    "Discount rules, deliberately broken (files: shop/discounts.py)",
    "Gift cards (files: shop/giftcards.py)",
]
MASTER_BODY = "Build the shop in parallel.\n\n" + "\n".join(f"- [ ] {t}" for t in TASKS)


def broken(conversation: Conversation) -> bool:
    return "deliberately broken" in conversation.first_user_text


def genesis_busy(pipeline: Pipeline) -> list[float]:
    """agentfleet_worker_busy of every genesis worker (the pool's utilization)."""
    return [
        sample.value
        for worker, _ in pipeline.workers
        if worker.settings.stage is Stage.GENESIS
        for metric in worker.metrics.registry.collect()
        for sample in metric.samples
        if sample.name == "agentfleet_worker_busy"
    ]


def summaries(pipeline: Pipeline, number: int) -> list[str]:
    return [
        body
        for body in pipeline.fake_github.comment_bodies("acme/shop", number)
        if body.startswith(f"## agentfleet parallel run for #{number}")
    ]


@pytest.mark.parametrize("pipeline", [{"max_attempts": 1, "max_workers": 5}], indirect=True)
async def test_ten_sub_tasks_with_one_failure_succeed_and_retry_reruns_only_it(
    pipeline: Pipeline,
) -> None:
    pipeline.fake_anthropic.add_script(agents.DEVELOPMENT, agents.tdd_developer(failing=broken))
    pipeline.fake_anthropic.add_script(agents.REVIEW, agents.reviewer())
    repo = pipeline.human.get_repo("acme/shop")
    pipeline.seed_main()
    master = repo.create_issue("Shop, in parallel", body=MASTER_BODY, labels=["agentfleet:master"])
    bot = RepoClient(
        GitHubCredentials(token=SecretStr(BOT_TOKEN)),
        "acme/shop",
        pipeline.fake_github.base_url,
        Pacing.none(),
    )
    new = await poll_project(pipeline.project, bot, lambda items: pipeline.queue.enqueue(*items))
    master_id = f"{NAMESPACE}/shop/issue-{master.number}/genesis"
    assert new == [master_id]
    pipeline.start_workers(Stage.GENESIS)
    pipeline.start_workers(Stage.DEVELOPMENT, 4)
    pipeline.start_workers(Stage.REVIEW)

    fanned_out = await pipeline.completion(master_id, timeout=90)
    assert fanned_out.outcome is CompletionOutcome.SUCCEEDED, fanned_out.error
    # The genesis worker is idle while the sub-tasks run: it holds no claim and its busy
    # gauge (the pool's utilization) reads 0 once it has settled the master item, and the
    # join still has open sub-tasks after that, so it was idle while they ran, not
    # because they were over.

    async def genesis_idle() -> bool:
        return genesis_busy(pipeline) == [0.0]

    await async_wait_for(genesis_idle, 10, "the genesis worker idle after the fan-out")
    genesis = (await pipeline.queue.snapshot(NAMESPACE)).project_stats("shop").stages
    join = await pipeline.queue.join(NAMESPACE, master_id)
    assert join is not None and join.open > 0 and join.summarised_at is None
    assert genesis[Stage.GENESIS].in_flight == 0 and genesis[Stage.GENESIS].completed == 1
    done = await pipeline.completion(f"{master_id}/master-summary", timeout=90)
    assert done.outcome is CompletionOutcome.SUCCEEDED, done.error

    fake = pipeline.fake_github
    titles = fake.issue_titles("acme/shop")
    subs = [
        t for t in titles if t.startswith(f"[Master #{master.number}] ") and "Diagnostic" not in t
    ]
    assert len(subs) == 10
    heads = fake.pull_heads("acme/shop")
    assert len(heads) == 9 and len(set(heads)) == 9
    failing_title = f"[Master #{master.number}] Discount rules, deliberately broken"
    failing_issue = next(i.number for i in repo.get_issues(state="all") if i.title == failing_title)
    assert f"agentfleet/issue-{failing_issue}" not in heads

    [summary] = summaries(pipeline, master.number)
    assert f"parallel run for #{master.number}: succeeded: 9/10 sub-tasks" in summary
    assert "9 succeeded, 1 failed, 0 unfinished" in summary
    assert "| 9 | Discount rules, deliberately broken |" in summary and "❌ failed" in summary
    assert "3 and 7: `shop/shared/prices.py <-> shop/shared`" in summary
    assert summary.count("✅ succeeded") == 9
    diagnostics = [t for t in titles if t.startswith(f"[Master #{master.number}] Diagnostic: ")]
    assert diagnostics == [
        f"[Master #{master.number}] Diagnostic: Discount rules, deliberately broken"
    ]
    diagnostic = next(i for i in repo.get_issues(state="all") if i.title == diagnostics[0])
    assert "tests fail after the agent finished" in diagnostic.body

    failed_item = f"{NAMESPACE}/shop/issue-{failing_issue}/development"
    failed = await pipeline.completion(failed_item)
    assert failed.outcome is CompletionOutcome.DEAD_LETTERED
    review = await pipeline.completion(f"{failed_item}/review")
    assert review.outcome is CompletionOutcome.SUCCEEDED, review.error
    review_comments = [
        body
        for body in fake.comment_bodies("acme/shop", failing_issue)
        if not body.startswith("## agentfleet is tracking")
    ]
    assert len(review_comments) == 1 and review_comments[0].startswith("## agentfleet review")

    # "/agentfleet retry": only the failed sub-task runs again, continuing its branch.
    comment = master.create_comment("/agentfleet retry")
    facts = IssueFacts(number=master.number, title=master.title, labels=("agentfleet:master",))
    retry = command_work(pipeline.project, facts, comment.id, QualifierKind.RETRY_FAILED)
    assert await pipeline.queue.enqueue(retry) == [retry.id]
    retried = await pipeline.completion(retry.id, timeout=60)
    assert retried.outcome is CompletionOutcome.SUCCEEDED, retried.error
    retried = await pipeline.completion(f"{retry.id}/master-summary", timeout=60)
    assert retried.outcome is CompletionOutcome.SUCCEEDED, retried.error
    again = await pipeline.completion(f"{failed_item}/attempt-2")
    assert again.outcome is CompletionOutcome.SUCCEEDED
    others = [
        i for i in repo.get_issues(state="all") if i.title in subs and i.number != failing_issue
    ]
    for issue in others:
        assert (
            await pipeline.queue.completion(
                NAMESPACE, f"{NAMESPACE}/shop/issue-{issue.number}/development/attempt-2"
            )
            is None
        )
    [summary] = summaries(pipeline, master.number)
    assert "succeeded: 10/10 sub-tasks" in summary
    heads = fake.pull_heads("acme/shop")
    assert len(heads) == 10 and heads.count(f"agentfleet/issue-{failing_issue}") == 1
    fixed = next(p for p in repo.get_pulls() if p.head.ref == f"agentfleet/issue-{failing_issue}")
    assert fixed.commits == 2, "the retry continued the failed attempt's branch"
    bot.close()


async def test_dry_run_reports_conflicts_and_creates_nothing(pipeline: Pipeline) -> None:
    repo = pipeline.human.get_repo("acme/shop")
    master = repo.create_issue(
        "Shop, dry run", body=MASTER_BODY, labels=["agentfleet:master", "agentfleet:dry-run"]
    )
    item = issue_work(
        pipeline.project,
        IssueFacts(number=master.number, title=master.title, labels=("agentfleet:master",)),
    )
    assert item is not None
    result = await pipeline.redeliver(item)
    assert result.outcome == "succeeded" and result.output["dry_run"] is True
    assert result.output == {"dry_run": True, "tasks": 10, "conflicts": 1}
    [report] = pipeline.fake_github.comment_bodies("acme/shop", master.number)
    assert report.startswith(f"## agentfleet dry run for #{master.number}")
    assert "10 sub-task(s), 1 conflict(s)" in report
    assert pipeline.fake_github.issue_titles("acme/shop") == ["Shop, dry run"]
    # Running it again edits the same report instead of adding another.
    await pipeline.redeliver(item)
    assert len(pipeline.fake_github.comment_bodies("acme/shop", master.number)) == 1


async def test_max_workers_caps_sub_tasks_in_flight(pipeline: Pipeline) -> None:
    pipeline.fake_anthropic.latency = 0.15
    pipeline.fake_anthropic.add_script(agents.DEVELOPMENT, agents.tdd_developer())
    pipeline.seed_main()
    repo = pipeline.human.get_repo("acme/shop")
    body = "\n".join(f"- [ ] Part {n} (files: part{n}.py)" for n in range(1, 6))
    master = repo.create_issue("Capped", body=body, labels=["agentfleet:master"])
    item = issue_work(
        pipeline.project,
        IssueFacts(number=master.number, title=master.title, labels=("agentfleet:master",)),
    )
    assert item is not None
    item = item.model_copy(update={"payload": {**item.payload, "parallelism": {"maxWorkers": 2}}})
    await pipeline.queue.enqueue(item)
    pipeline.start_workers(Stage.GENESIS)
    pipeline.start_workers(Stage.DEVELOPMENT, 4)
    fanned_out = await pipeline.completion(item.id, timeout=60)
    assert fanned_out.outcome is CompletionOutcome.SUCCEEDED, fanned_out.error
    done = await pipeline.completion(f"{item.id}/master-summary", timeout=60)
    assert done.outcome is CompletionOutcome.SUCCEEDED, done.error

    spans: dict[int, list[float]] = {}
    for recorded in pipeline.fake_anthropic.calls:
        text = str(recorded.request["messages"][0]["content"])
        number = int(text.split("Resolve issue #", 1)[1].split(" ", 1)[0])
        spans.setdefault(number, []).append(recorded.received_at)
    assert len(spans) == 5
    intervals = [(min(times), max(times)) for times in spans.values()]
    most = max(sum(1 for s, e in intervals if s <= start <= e) for start, _ in intervals)
    assert most <= 2, f"{most} sub-tasks ran at once with maxWorkers 2"


@pytest.mark.parametrize("pipeline", [{"max_attempts": 1}], indirect=True)
async def test_sub_tasks_past_their_timeout_fail_the_master_issue(pipeline: Pipeline) -> None:
    repo = pipeline.human.get_repo("acme/shop")
    body = "\n".join(f"- [ ] Slow {n} (files: slow{n}.py)" for n in range(1, 4))
    master = repo.create_issue("Nobody works", body=body, labels=["agentfleet:master"])
    item = issue_work(
        pipeline.project,
        IssueFacts(number=master.number, title=master.title, labels=("agentfleet:master",)),
    )
    assert item is not None
    item = item.model_copy(
        update={"payload": {**item.payload, "parallelism": {"taskTimeoutSeconds": 0.5}}}
    )
    await pipeline.queue.enqueue(item)
    pipeline.start_workers(Stage.GENESIS)  # and no development workers at all
    fanned_out = await pipeline.completion(item.id, timeout=30)
    assert fanned_out.outcome is CompletionOutcome.SUCCEEDED, fanned_out.error
    # Nobody waits for them: the queue times them out (any worker's claim looks) and the
    # last one enqueues the summary, which fails the master issue.
    done = await pipeline.completion(f"{item.id}/master-summary", timeout=30)
    assert done.outcome is CompletionOutcome.DEAD_LETTERED
    assert "0/3 sub-tasks" in (done.error or "")
    [summary] = summaries(pipeline, master.number)
    assert summary.count("⌛ timed out") == 3
    diagnostics = [t for t in pipeline.fake_github.issue_titles("acme/shop") if "Diagnostic" in t]
    assert len(diagnostics) == 3
