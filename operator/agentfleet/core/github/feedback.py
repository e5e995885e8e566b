"""Feedback on pull requests (pure): what becomes a fix round, and what is refused.

Three kinds of delivery are feedback on a pull request:

- a **review comment** (`pull_request_review_comment` `created`): a comment on a line of
  the diff, with its file, line and diff hunk;
- a **comment on the pull request** (`issue_comment` `created` on a pull request) that
  mentions `@agentfleet` or starts with `/agentfleet`;
- a **failing check** (`check_run` `completed` with conclusion `failure` or `timed_out`),
  with the check's output (title, summary, text), trimmed.

On pull requests agentfleet opened (an `agentfleet/` branch), review comments and failing
checks are feedback as they come; on anyone else's, only a comment or review comment that
explicitly asks `@agentfleet` is, and never from a fork (agentfleet cannot push there).
People need write access (asked of GitHub, as for triggers); bots must be listed in
`spec.intake.allowedBots`; agentfleet's own comments are never feedback. A failing check
is GitHub's own report and needs no permission.

Accepted feedback is kept in the queue per pull request and asks for fix round k+1 (k the
rounds finished): a development item with one id per round, so feedback that arrives
while round k+1 waits is coalesced into it, and feedback that arrives while it runs makes
round k+2 once it finishes: never two rounds on one branch at once. After
`spec.pullRequests.maxFixRounds` rounds agentfleet stops and asks a person.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentfleet.core.github.events import ProjectIntake, _Payload, _User
from agentfleet.core.github.triggers import (
    Accept,
    Ignore,
    Refuse,
    Verdict,
    may_not_ask,
    mentions,
    parse_command,
    refusal,
)
from agentfleet.core.pipeline import BRANCH_PREFIX, feedback_item

LOOP_GUARD_MARKER = "loop-guard"
"""The marker kind of the one comment that asks a person to take a pull request over."""
MAX_CHECK_OUTPUT = 4000
"""Characters of a failing check's output kept (its end: where errors are)."""
FAILED_CONCLUSIONS = frozenset({"failure", "timed_out"})


class FeedbackKind(StrEnum):
    REVIEW_COMMENT = "review_comment"
    COMMENT = "comment"
    FAILING_CHECK = "failing_check"


class Feedback(BaseModel):
    """One delivery's feedback on a pull request, as read from its payload."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: FeedbackKind
    pull: int
    branch: str | None
    """The pull request's head branch (None until looked up, for a plain comment)."""
    fork: bool = False
    actor: str
    actor_is_bot: bool = False
    addressed: bool = False
    """The text mentions `@agentfleet` or starts with `/agentfleet`."""
    key: str
    """Unique per piece of feedback: a redelivery is kept once."""
    entry: dict[str, Any] = Field(default_factory=dict)
    """What the fix round reads (kind, author, body, path, line, diff_hunk, check...)."""
    comment_id: int | None = None
    """The comment to acknowledge (and answer in its thread, for a review comment)."""


class _Head(_Payload):
    ref: str
    repo: dict[str, Any] | None = None


class _PullRef(_Payload):
    number: int
    head: _Head
    base: _Head
    user: _User | None = None


class _ReviewComment(_Payload):
    id: int
    body: str
    user: _User
    path: str = ""
    line: int | None = None
    original_line: int | None = None
    diff_hunk: str = ""
    in_reply_to_id: int | None = None


class _ReviewCommentEvent(_Payload):
    action: str
    comment: _ReviewComment
    pull_request: _PullRef


class _CheckOutput(_Payload):
    title: str | None = None
    summary: str | None = None
    text: str | None = None


class _CheckPull(_Payload):
    number: int
    head: _Head


class _CheckRun(_Payload):
    id: int
    name: str
    conclusion: str | None = None
    head_sha: str = ""
    html_url: str = ""
    output: _CheckOutput = Field(default_factory=_CheckOutput)
    pull_requests: list[_CheckPull] = Field(default_factory=list)


class _CheckRunEvent(_Payload):
    action: str
    check_run: _CheckRun


class _CommentUser(_Payload):
    id: int
    body: str
    user: _User


class _IssueRef(_Payload):
    number: int
    pull_request: dict[str, Any] | None = None


class _PullCommentEvent(_Payload):
    action: str
    issue: _IssueRef
    comment: _CommentUser


def _is_bot(user: _User) -> bool:
    return user.type == "Bot" or user.login.lower().endswith("[bot]")


def _addressed(body: str) -> bool:
    return parse_command(body) is not None or mentions(body)


def _fork(pull: _PullRef) -> bool:
    head, base = pull.head.repo or {}, pull.base.repo or {}
    return bool(head) and bool(base) and head.get("full_name") != base.get("full_name")


def _tail(text: str, limit: int) -> str:
    return text if len(text) <= limit else "…" + text[-limit:]


def read_feedback(event: str, payload: object) -> list[Feedback]:
    """The feedback in one verified delivery (a failing check can be on several pull
    requests); raises pydantic's ValidationError for a payload that does not fit."""
    if event == "pull_request_review_comment":
        review = _ReviewCommentEvent.model_validate(payload)
        if review.action != "created":
            return []
        comment, pull = review.comment, review.pull_request
        return [
            Feedback(
                kind=FeedbackKind.REVIEW_COMMENT,
                pull=pull.number,
                branch=pull.head.ref,
                fork=_fork(pull),
                actor=comment.user.login,
                actor_is_bot=_is_bot(comment.user),
                addressed=_addressed(comment.body),
                key=f"review-comment-{comment.id}",
                comment_id=comment.id,
                entry={
                    "kind": FeedbackKind.REVIEW_COMMENT.value,
                    "author": comment.user.login,
                    "body": comment.body,
                    "path": comment.path,
                    "line": comment.line or comment.original_line,
                    "diff_hunk": _tail(comment.diff_hunk, MAX_CHECK_OUTPUT),
                    "comment_id": comment.id,
                },
            )
        ]
    if event == "issue_comment":
        said = _PullCommentEvent.model_validate(payload)
        if said.action != "created" or said.issue.pull_request is None:
            return []
        remark = said.comment
        return [
            Feedback(
                kind=FeedbackKind.COMMENT,
                pull=said.issue.number,
                branch=None,
                actor=remark.user.login,
                actor_is_bot=_is_bot(remark.user),
                addressed=_addressed(remark.body),
                key=f"comment-{remark.id}",
                comment_id=remark.id,
                entry={
                    "kind": FeedbackKind.COMMENT.value,
                    "author": remark.user.login,
                    "body": remark.body,
                    "comment_id": remark.id,
                },
            )
        ]
    if event == "check_run":
        checked = _CheckRunEvent.model_validate(payload)
        run = checked.check_run
        if checked.action != "completed" or run.conclusion not in FAILED_CONCLUSIONS:
            return []
        output = "\n\n".join(
            part for part in (run.output.title, run.output.summary, run.output.text) if part
        )
        return [
            Feedback(
                kind=FeedbackKind.FAILING_CHECK,
                pull=pull.number,
                branch=pull.head.ref,
                actor="github",
                key=f"check-run-{run.id}",
                entry={
                    "kind": FeedbackKind.FAILING_CHECK.value,
                    "check": run.name,
                    "conclusion": run.conclusion,
                    "head_sha": run.head_sha,
                    "url": run.html_url,
                    "output": _tail(output, MAX_CHECK_OUTPUT),
                },
            )
            for pull in run.pull_requests
        ]
    return []


def needs_permission(feedback: Feedback, self_login: str) -> bool:
    return (
        feedback.kind is not FeedbackKind.FAILING_CHECK
        and feedback.actor.lower() != self_login.lower()
        and not feedback.actor_is_bot
    )


def decide_feedback(
    project: ProjectIntake,
    feedback: Feedback,
    self_login: str,
    permission: str | None,
    rounds_done: int,
) -> Verdict:
    """Accept (the item of the next round), refuse (with the reply) or ignore."""
    if feedback.actor.lower() == self_login.lower():
        return Ignore(reason="own_words")
    ours = (feedback.branch or "").startswith(BRANCH_PREFIX)
    if feedback.kind is FeedbackKind.COMMENT and not feedback.addressed:
        return Ignore(reason="not_addressed")
    if not ours and not feedback.addressed:
        return Ignore(reason="not_agentfleets_pull_request")
    refuse = refusal(feedback.actor)
    # A failing check is GitHub's own report (not a bot's): no permission to ask for.
    check = feedback.kind is FeedbackKind.FAILING_CHECK
    refused = may_not_ask(
        project, feedback.actor, feedback.actor_is_bot, "write" if check else permission
    )
    if refused is not None:
        return refused
    if feedback.fork or feedback.branch is None:
        return refuse("fork", "agentfleet cannot push to a branch of a fork.")
    if rounds_done >= project.max_fix_rounds:
        return Refuse(
            reason="loop_guard",
            reply=(
                f"agentfleet has made {rounds_done} fix round(s) on this pull request, the "
                f"most this Project allows (`spec.pullRequests.maxFixRounds`). A person "
                "should take it from here."
            ),
        )
    asker = project.asker(feedback.actor, feedback.actor_is_bot)
    if feedback.kind is FeedbackKind.FAILING_CHECK:
        asker = None
    item = feedback_item(
        project,
        feedback.pull,
        feedback.branch,
        rounds_done + 1,
        project.max_fix_rounds,
        requested_by=asker,
    )
    return Accept(item=item)
