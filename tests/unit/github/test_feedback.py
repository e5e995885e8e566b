"""Pull-request feedback: reading deliveries and deciding (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from agentfleet.core.github import ProjectIntake
from agentfleet.core.github.feedback import (
    MAX_CHECK_OUTPUT,
    FeedbackKind,
    decide_feedback,
    needs_permission,
    read_feedback,
)
from agentfleet.core.github.triggers import Accept, Ignore, Refuse

pytestmark = pytest.mark.unit

PROJECT = ProjectIntake(namespace="team-a", name="shop", repository="acme/shop")
SELF = "agentfleet-bot"


def review(body: str, login: str = "wendy", branch: str = "agentfleet/issue-1") -> dict[str, Any]:
    repo = {"full_name": "acme/shop"}
    return {
        "action": "created",
        "comment": {
            "id": 9, "body": body, "user": {"login": login, "type": "User"},
            "path": "calc.py", "line": 3, "diff_hunk": "@@ -1 +1 @@\n-a\n+b",
        },
        "pull_request": {
            "number": 4,
            "head": {"ref": branch, "repo": repo},
            "base": {"ref": "main", "repo": repo},
        },
        "repository": repo,
    }  # fmt: skip


def check(conclusion: str = "failure", text: str = "boom") -> dict[str, Any]:
    return {
        "action": "completed",
        "check_run": {
            "id": 77, "name": "tests", "conclusion": conclusion, "head_sha": "a" * 40,
            "output": {"title": "1 failed", "summary": "FAILED", "text": text},
            "pull_requests": [{"number": 4, "head": {"ref": "agentfleet/issue-1"}}],
        },
        "repository": {"full_name": "acme/shop"},
    }  # fmt: skip


def test_a_writers_review_comment_on_our_pull_request_is_round_one() -> None:
    [feedback] = read_feedback("pull_request_review_comment", review("Rename it"))
    assert feedback.kind is FeedbackKind.REVIEW_COMMENT and feedback.key == "review-comment-9"
    assert feedback.entry["path"] == "calc.py" and feedback.entry["line"] == 3
    assert needs_permission(feedback, SELF)
    verdict = decide_feedback(PROJECT, feedback, SELF, "write", rounds_done=0)
    assert isinstance(verdict, Accept)
    assert verdict.item.id == "team-a/shop/pull-4/development/round-1"
    assert verdict.item.payload["branch"] == "agentfleet/issue-1"
    assert verdict.item.payload["requested_by"] == "wendy"
    later = decide_feedback(PROJECT, feedback, SELF, "admin", rounds_done=2)
    assert isinstance(later, Accept) and later.item.id.endswith("/round-3")


def test_the_loop_guard_refuses_after_the_projects_rounds() -> None:
    [feedback] = read_feedback("pull_request_review_comment", review("Again"))
    verdict = decide_feedback(PROJECT, feedback, SELF, "write", rounds_done=3)
    assert isinstance(verdict, Refuse) and verdict.reason == "loop_guard"
    assert "maxFixRounds" in verdict.reply


def test_other_peoples_pull_requests_only_when_asked_and_never_from_forks() -> None:
    [plain] = read_feedback("pull_request_review_comment", review("nit", branch="feature/x"))
    assert decide_feedback(PROJECT, plain, SELF, "write", 0) == Ignore(
        reason="not_agentfleets_pull_request"
    )
    [asked] = read_feedback("pull_request_review_comment", review("@agentfleet fix", branch="x"))
    assert isinstance(decide_feedback(PROJECT, asked, SELF, "write", 0), Accept)
    forked = review("@agentfleet fix", branch="x")
    forked["pull_request"]["head"]["repo"] = {"full_name": "mallory/shop"}
    [fork] = read_feedback("pull_request_review_comment", forked)
    verdict = decide_feedback(PROJECT, fork, SELF, "write", 0)
    assert isinstance(verdict, Refuse) and verdict.reason == "fork"


def test_readers_bots_and_our_own_words() -> None:
    [feedback] = read_feedback("pull_request_review_comment", review("Rename it"))
    refused = decide_feedback(PROJECT, feedback, SELF, "read", 0)
    assert isinstance(refused, Refuse) and refused.reason == "not_a_writer"
    [own] = read_feedback("pull_request_review_comment", review("Pushed.", login=SELF))
    assert decide_feedback(PROJECT, own, SELF, None, 0) == Ignore(reason="own_words")


def test_failing_checks_need_no_permission_and_keep_the_outputs_end() -> None:
    long = "x" * (MAX_CHECK_OUTPUT * 2) + "THE ERROR"
    [feedback] = read_feedback("check_run", check(text=long))
    assert feedback.kind is FeedbackKind.FAILING_CHECK and not needs_permission(feedback, SELF)
    assert feedback.entry["output"].endswith("THE ERROR")
    assert len(feedback.entry["output"]) <= MAX_CHECK_OUTPUT + 1
    verdict = decide_feedback(PROJECT, feedback, SELF, None, 0)
    assert isinstance(verdict, Accept) and "requested_by" not in verdict.item.payload
    assert read_feedback("check_run", check(conclusion="success")) == []


def test_pull_request_comments_count_only_when_addressed() -> None:
    comment: dict[str, Any] = {
        "action": "created",
        "issue": {"number": 4, "pull_request": {"url": "x"}},
        "comment": {"id": 5, "body": "lgtm", "user": {"login": "wendy", "type": "User"}},
        "repository": {"full_name": "acme/shop"},
    }
    [quiet] = read_feedback("issue_comment", comment)
    assert decide_feedback(PROJECT, quiet.model_copy(update={"branch": "agentfleet/issue-1"}),
                           SELF, "write", 0) == Ignore(reason="not_addressed")  # fmt: skip
    comment["comment"]["body"] = "@agentfleet handle the review"
    [asked] = read_feedback("issue_comment", comment)
    assert asked.branch is None  # looked up by the receiver
    filled = asked.model_copy(update={"branch": "agentfleet/issue-1"})
    assert isinstance(decide_feedback(PROJECT, filled, SELF, "write", 0), Accept)
    on_issue = {**comment, "issue": {"number": 4}}
    assert read_feedback("issue_comment", on_issue) == []
