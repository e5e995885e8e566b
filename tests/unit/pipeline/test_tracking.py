"""The tracking comment's model and text (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agentfleet.core.api import Stage
from agentfleet.core.pipeline.tracking import StageRun, Tracking, render

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
URL = "https://github.com/acme/shop"


def run(stage: Stage, item: str, minutes: int = 0, **fields: object) -> StageRun:
    return StageRun(
        item=f"team-a/shop/{item}/{stage.value}",
        stage=stage,
        worker="dev-7f9c",
        started_at=T0 + timedelta(minutes=minutes),
        **fields,
    )


def test_a_new_issue_is_queued_and_nothing_else() -> None:
    text = render(Tracking(issue=5), URL)
    assert text.splitlines()[:3] == ["## agentfleet is tracking #5", "", "- [x] queued"]
    assert "- [ ] planned" in text and "- [ ] documented" in text
    assert "0 turns, 0 tokens, $0.00, 0 s." in text


def test_the_whole_path_with_links_holder_and_totals() -> None:
    planned = run(
        Stage.GENESIS, "issue-1", state="succeeded", finished_at=T0 + timedelta(minutes=1),
        turns=2, tokens=1000, cost_usd=0.01, sub_issues=(2, 3),
    )  # fmt: skip
    tracking = Tracking(issue=1).with_run(planned)
    docs = run(
        Stage.CONTENT, "pull-4", 30, state="succeeded", finished_at=T0 + timedelta(minutes=62),
        turns=3, tokens=2500, cost_usd=0.02, pull=6,
    )  # fmt: skip
    text = render(tracking.with_run(docs), URL)
    assert "- [x] planned: 2 sub-issue(s), #2, #3" in text
    assert f"- [x] documented: {URL}/pull/6" in text
    assert "5 turns, 3,500 tokens, $0.03, 1 h 2 min." in text

    developing = Tracking(issue=2, planned_in=1).with_run(run(Stage.DEVELOPMENT, "issue-2"))
    text = render(developing, URL)
    assert "- [x] planned: part of the plan for #1" in text
    assert "- [x] in development (by `dev-7f9c`)" in text
    assert "Now: development on `dev-7f9c`." in text


def test_a_redelivered_item_replaces_its_run_and_adds_its_spending() -> None:
    first = run(Stage.DEVELOPMENT, "issue-2", state="failed", turns=4, tokens=100, cost_usd=0.5,
                error="tests fail after the agent finished:\nboom", retried=True)  # fmt: skip
    tracking = Tracking(issue=2).with_run(first)
    text = render(tracking, URL)
    assert "**development failed** (`team-a/shop/issue-2/development`): tests fail" in text
    assert "The queue retries it on its own." in text
    second = run(Stage.DEVELOPMENT, "issue-2", 5, state="succeeded", turns=3, tokens=50,
                 cost_usd=0.25, pull=9)  # fmt: skip
    tracking = tracking.with_run(second)
    assert len(tracking.runs) == 1
    assert (tracking.turns, tracking.tokens, tracking.cost_usd) == (7, 150, 0.75)
    assert tracking.runs[0].started_at == T0
    text = render(tracking, URL)
    assert f"- [x] pull request open: {URL}/pull/9" in text and "failed" not in text


def test_a_final_failure_says_how_to_run_it_again() -> None:
    spent = run(Stage.DEVELOPMENT, "issue-2", state="budget_exhausted",
                error="budget exhausted: a cost cap of $1.00 reached")  # fmt: skip
    text = render(Tracking(issue=2).with_run(spent), URL)
    assert "**development ran out of budget**" in text
    assert "`agentfleet retry shop --item team-a/shop/issue-2/development -n team-a`" in text
