"""Triggers people address to agentfleet on GitHub (pure): who asked, for what, and the answer.

Besides the intake label (`agentfleet.core.github.events.issue_work`), work is asked for by

- an **`@agentfleet` mention** anywhere in a new issue comment (not in a quoted line or a
  code block, so quoting agentfleet's own words asks for nothing);
- a **`/agentfleet <command>`** first line of a new issue comment: `run` (the same as a
  mention), and on a master issue `retry` and `dry-run`;
- **assigning** the issue to the login agentfleet works as (its App's `<slug>[bot]`, or the
  machine user of a token).

Reading a delivery (`read_trigger`) needs no I/O. Deciding (`decide`) needs two facts the
shell asks GitHub for: the login agentfleet works as, and the actor's permission on the
repository (`GET /repos/{o}/{r}/collaborators/{login}/permission`; only people with
write, maintain or admin may trigger, whatever their author association says). Bots are
refused unless the Project lists them in `spec.intake.allowedBots`. agentfleet's own
comments and assignments are never triggers.

An accepted trigger's item has the id intake gives the issue anyway, so a mention of an
issue that is already queued or running is acknowledged and coalesced into that item,
never a second run on the same branch.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

from agentfleet.core.github.events import (
    GENERATED_LABELS,
    MASTER_LABEL,
    IssueCommentEvent,
    IssueFacts,
    IssuesEvent,
    ProjectIntake,
    command_work,
)
from agentfleet.core.pipeline import IssuePayload, QualifierKind, WorkItem, issue_item

HANDLE = "agentfleet"
"""What people write: `@agentfleet` and `/agentfleet`."""
MENTION = "@" + HANDLE
COMMAND_PREFIX = "/" + HANDLE
WRITE_PERMISSIONS = frozenset({"admin", "maintain", "write"})
"""`permission` values of GitHub's collaborator-permission endpoint that may trigger."""
ACKNOWLEDGEMENT = "eyes"
"""The reaction on an accepted trigger (GitHub's reaction content names)."""

_MENTION = re.compile(r"(?<![A-Za-z0-9_/-])@" + HANDLE + r"(?![A-Za-z0-9_-])", re.IGNORECASE)
_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE_CODE = re.compile(r"`[^`\n]*`")


class TriggerKind(StrEnum):
    MENTION = "mention"
    COMMAND = "command"
    ASSIGNMENT = "assignment"


class Command(StrEnum):
    RUN = "run"
    """Take the issue in (the same as a mention)."""
    RETRY = "retry"
    """On a master issue: run the failed or timed-out sub-tasks again."""
    DRY_RUN = "dry-run"
    """On a master issue: validate the checklist and report, create nothing."""


class Trigger(BaseModel):
    """One delivery that asks agentfleet for work, as read from its payload."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: TriggerKind
    actor: str
    """Who commented or assigned (the delivery's `sender`)."""
    actor_is_bot: bool
    issue: IssueFacts
    comment_id: int | None = None
    """The comment that asked (None for an assignment)."""
    command: str | None = None
    """The word after `/agentfleet` (lower case; `run` when there is none)."""
    assignee: str | None = None


class Accept(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    verdict: Literal["accepted"] = "accepted"
    item: WorkItem


class Refuse(BaseModel):
    """Answered with a short reply on the issue (once per trigger)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    verdict: Literal["refused"] = "refused"
    reason: str
    """A metric label: `not_a_writer`, `bot_not_allowed`, `paused`, `closed`,
    `generated_issue`, `not_a_master_issue`, `unknown_command`."""
    reply: str


class Ignore(BaseModel):
    """Not a trigger after all (agentfleet's own words, an assignment to someone else)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    verdict: Literal["ignored"] = "ignored"
    reason: str


Verdict = Accept | Refuse | Ignore


def _spoken_lines(body: str) -> list[str]:
    """The comment's own lines: without quoted lines, fenced blocks and inline code."""
    lines: list[str] = []
    fenced = False
    for line in body.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if fenced or line.lstrip().startswith(">"):
            continue
        lines.append(_INLINE_CODE.sub("", line))
    return lines


def parse_command(body: str) -> str | None:
    """The command word of a comment whose first non-empty line is `/agentfleet ...`
    (`run` for a bare `/agentfleet`), else None."""
    for line in body.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0].lower() != COMMAND_PREFIX:
            return None
        return words[1].lower() if len(words) > 1 else Command.RUN.value
    return None


def mentions(body: str) -> bool:
    """Whether the comment addresses `@agentfleet` in its own words."""
    return any(_MENTION.search(line) for line in _spoken_lines(body))


def _is_bot(login: str, user_type: str) -> bool:
    return user_type == "Bot" or login.lower().endswith("[bot]")


def read_trigger(project: ProjectIntake, event: str, payload: object) -> Trigger | None:
    """The trigger in one verified delivery, if it holds one (raises pydantic's
    ValidationError for a payload that does not fit its event)."""
    del project  # every Project reads triggers alike; kept for symmetry with webhook_work
    if event == "issue_comment":
        comment_event = IssueCommentEvent.model_validate(payload)
        comment = comment_event.comment
        if comment_event.action != "created" or comment_event.issue.pull_request is not None:
            return None
        command = parse_command(comment.body)
        if command is None and not mentions(comment.body):
            return None
        return Trigger(
            kind=TriggerKind.COMMAND if command is not None else TriggerKind.MENTION,
            actor=comment.user.login,
            actor_is_bot=_is_bot(comment.user.login, comment.user.type),
            issue=comment_event.issue.facts(),
            comment_id=comment.id,
            command=command,
        )
    if event == "issues":
        issues_event = IssuesEvent.model_validate(payload)
        if issues_event.action != "assigned" or issues_event.assignee is None:
            return None
        if issues_event.issue.pull_request is not None:
            return None
        sender = issues_event.sender
        if sender is None:
            return None
        return Trigger(
            kind=TriggerKind.ASSIGNMENT,
            actor=sender.login,
            actor_is_bot=_is_bot(sender.login, sender.type),
            issue=issues_event.issue.facts(),
            assignee=issues_event.assignee.login,
        )
    return None


def is_self(trigger: Trigger, self_login: str) -> bool:
    return trigger.actor.lower() == self_login.lower()


def needs_permission(project: ProjectIntake, trigger: Trigger, self_login: str) -> bool:
    """Whether `decide` needs the actor's permission (not for agentfleet itself, bots or
    assignments to someone else)."""
    if is_self(trigger, self_login) or trigger.actor_is_bot:
        return False
    if trigger.kind is TriggerKind.ASSIGNMENT:
        return (trigger.assignee or "").lower() == self_login.lower()
    return True


def refusal(actor: str) -> Callable[[str, str], Refuse]:
    """Makes refusals addressed to `actor`: `refuse(reason, why)`."""

    def refuse(reason: str, why: str) -> Refuse:
        return Refuse(reason=reason, reply=f"@{actor} agentfleet did not start: {why}")

    return refuse


def may_not_ask(
    project: ProjectIntake, actor: str, actor_is_bot: bool, permission: str | None
) -> Refuse | None:
    """Why `actor` may not ask this Project for work (a bot the Project does not list,
    a person without write access, a paused Project), or None when they may."""
    refuse = refusal(actor)
    if actor_is_bot:
        if actor.lower() not in {bot.lower() for bot in project.allowed_bots}:
            return refuse(
                "bot_not_allowed",
                "bots may ask only when the Project lists them in `spec.intake.allowedBots`.",
            )
    elif permission not in WRITE_PERMISSIONS:
        return refuse(
            "not_a_writer",
            f"only people with write access to {project.full_name} can ask for work.",
        )
    if project.paused:
        return refuse("paused", "intake is paused for this repository (`spec.paused`).")
    return None


def decide(
    project: ProjectIntake, trigger: Trigger, self_login: str, permission: str | None
) -> Verdict:
    """Accept, refuse (with the reply) or ignore a trigger. `permission` is the actor's
    collaborator permission (`admin`, `maintain`, `write`, `triage`, `read`, `none`)."""
    if is_self(trigger, self_login):
        return Ignore(reason="own_words")
    if trigger.kind is TriggerKind.ASSIGNMENT and (
        (trigger.assignee or "").lower() != self_login.lower()
    ):
        return Ignore(reason="assigned_to_someone_else")
    refuse = refusal(trigger.actor)
    refused = may_not_ask(project, trigger.actor, trigger.actor_is_bot, permission)
    if refused is not None:
        return refused
    issue = trigger.issue
    if issue.state != "open":
        return refuse("closed", "the issue is closed.")
    if any(label in GENERATED_LABELS for label in issue.labels):
        return refuse(
            "generated_issue",
            "agentfleet opened this issue itself; ask on the issue it was planned from.",
        )
    command = trigger.command or Command.RUN.value
    asker = project.asker(trigger.actor, trigger.actor_is_bot)
    if command == Command.RUN.value:
        master = MASTER_LABEL in issue.labels
        payload = IssuePayload(
            issue=issue.number,
            title=issue.title,
            parallelism=(project.parallelism or None) if master else None,
        )
        return Accept(item=issue_item(project, project.stages[0], payload, requested_by=asker))
    kinds = {
        Command.RETRY.value: QualifierKind.RETRY_FAILED,
        Command.DRY_RUN.value: QualifierKind.DRY_RUN,
    }
    if command not in kinds:
        known = ", ".join(f"`{COMMAND_PREFIX} {c.value}`" for c in Command)
        return refuse(
            "unknown_command", f"`{COMMAND_PREFIX} {command}` is not a command ({known})."
        )
    if MASTER_LABEL not in issue.labels:
        return refuse(
            "not_a_master_issue",
            f"`{COMMAND_PREFIX} {command}` works on master issues (label `{MASTER_LABEL}`).",
        )
    kind = kinds[command]
    return Accept(item=command_work(project, issue, trigger.comment_id or 0, kind, asker))
