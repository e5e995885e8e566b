"""Mentions, `/agentfleet` commands and assignments: reading deliveries and deciding (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from agentfleet.core.api import Stage
from agentfleet.core.github import ProjectIntake
from agentfleet.core.github.triggers import (
    Accept,
    Ignore,
    Refuse,
    Trigger,
    TriggerKind,
    decide,
    mentions,
    needs_permission,
    parse_command,
    read_trigger,
)

pytestmark = pytest.mark.unit

PROJECT = ProjectIntake(namespace="team-a", name="shop", repository="acme/shop")
SELF = "agentfleet-app[bot]"


def issue(number: int = 5, labels: tuple[str, ...] = (), state: str = "open") -> dict[str, Any]:
    return {
        "number": number,
        "title": "Add cart",
        "state": state,
        "labels": [{"name": name} for name in labels],
    }


def comment_event(
    body: str, login: str = "alice", user_type: str = "User", **issue_fields: Any
) -> dict[str, Any]:
    return {
        "action": "created",
        "issue": issue(**issue_fields),
        "comment": {"id": 77, "body": body, "user": {"login": login, "type": user_type}},
        "repository": {"full_name": "acme/shop"},
        "sender": {"login": login, "type": user_type},
    }


def trigger(body: str, login: str = "alice", **issue_fields: Any) -> Trigger:
    user_type = "Bot" if login.endswith("[bot]") else "User"
    found = read_trigger(
        PROJECT, "issue_comment", comment_event(body, login, user_type, **issue_fields)
    )
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("body", "addressed"),
    [
        ("@agentfleet please add a cart", True),
        ("Thanks!\n\nCC @agentfleet.", True),
        ("@AgentFleet take this", True),
        ("@agentfleet-bot take this", False),
        ("mail me at me@agentfleet.dev", False),
        ("> @agentfleet did it\n\nthanks", False),
        ("```\n@agentfleet in a code block\n```", False),
        ("see `@agentfleet` in the docs", False),
        ("nothing here", False),
    ],
)
def test_mentions_are_the_comments_own_words(body: str, addressed: bool) -> None:
    assert mentions(body) is addressed


@pytest.mark.parametrize(
    ("body", "command"),
    [
        ("/agentfleet retry", "retry"),
        ("\n  /agentfleet dry-run \nbecause", "dry-run"),
        ("/agentfleet", "run"),
        ("/AgentFleet RUN", "run"),
        ("/agentfleet frobnicate", "frobnicate"),
        ("please /agentfleet retry", None),
        ("/agentfleetx retry", None),
        ("", None),
    ],
)
def test_a_command_is_the_first_line(body: str, command: str | None) -> None:
    assert parse_command(body) == command


def test_reading_deliveries() -> None:
    mention = trigger("@agentfleet please")
    assert (mention.kind, mention.actor, mention.comment_id) == (TriggerKind.MENTION, "alice", 77)
    assert not mention.actor_is_bot
    command = trigger("/agentfleet retry")
    assert (command.kind, command.command) == (TriggerKind.COMMAND, "retry")
    bot = trigger("@agentfleet bump", login="dependabot[bot]")
    assert bot.actor_is_bot

    assert read_trigger(PROJECT, "issue_comment", comment_event("lgtm")) is None
    edited = {**comment_event("@agentfleet"), "action": "edited"}
    assert read_trigger(PROJECT, "issue_comment", edited) is None
    on_pull = comment_event("@agentfleet")
    on_pull["issue"]["pull_request"] = {"url": "x"}
    assert read_trigger(PROJECT, "issue_comment", on_pull) is None

    assigned = {
        "action": "assigned",
        "issue": issue(),
        "assignee": {"login": SELF, "type": "Bot"},
        "sender": {"login": "alice", "type": "User"},
        "repository": {"full_name": "acme/shop"},
    }
    found = read_trigger(PROJECT, "issues", assigned)
    assert found is not None and found.kind is TriggerKind.ASSIGNMENT
    assert (found.actor, found.assignee) == ("alice", SELF)
    assert read_trigger(PROJECT, "issues", {**assigned, "action": "labeled"}) is None
    assert read_trigger(PROJECT, "push", {}) is None
    with pytest.raises(ValidationError):
        read_trigger(PROJECT, "issue_comment", {"action": "created"})


def test_writers_are_accepted_and_get_the_issues_item() -> None:
    mention = trigger("@agentfleet please")
    assert needs_permission(PROJECT, mention, SELF)
    for permission in ("write", "maintain", "admin"):
        verdict = decide(PROJECT, mention, SELF, permission)
        assert isinstance(verdict, Accept)
        # The id intake gives the issue: a mention of a queued issue is coalesced into it.
        assert verdict.item.id == "team-a/shop/issue-5/genesis"
        assert verdict.item.stage is Stage.GENESIS
    run = decide(PROJECT, trigger("/agentfleet run"), SELF, "write")
    assert isinstance(run, Accept) and run.item.id == "team-a/shop/issue-5/genesis"


@pytest.mark.parametrize("permission", ["read", "triage", "none", None])
def test_people_without_write_access_are_refused_with_a_reply(permission: str | None) -> None:
    verdict = decide(PROJECT, trigger("@agentfleet please"), SELF, permission)
    assert isinstance(verdict, Refuse) and verdict.reason == "not_a_writer"
    assert verdict.reply.startswith("@alice agentfleet did not start")
    assert "write access to acme/shop" in verdict.reply


def test_bots_need_to_be_listed() -> None:
    bot = trigger("@agentfleet fix the lockfile", login="dependabot[bot]")
    assert not needs_permission(PROJECT, bot, SELF)
    refused = decide(PROJECT, bot, SELF, None)
    assert isinstance(refused, Refuse) and refused.reason == "bot_not_allowed"
    assert "spec.intake.allowedBots" in refused.reply
    listed = PROJECT.model_copy(update={"allowed_bots": ("Dependabot[bot]",)})
    assert isinstance(decide(listed, bot, SELF, None), Accept)


def test_agentfleets_own_words_and_other_assignees_are_ignored() -> None:
    own = trigger("Done. Ask @agentfleet again with /agentfleet retry", login=SELF)
    assert not needs_permission(PROJECT, own, SELF)
    assert decide(PROJECT, own, SELF, None) == Ignore(reason="own_words")
    other = Trigger(
        kind=TriggerKind.ASSIGNMENT,
        actor="alice",
        actor_is_bot=False,
        issue=trigger("x @agentfleet").issue,
        assignee="bob",
    )
    assert not needs_permission(PROJECT, other, SELF)
    assert decide(PROJECT, other, SELF, None) == Ignore(reason="assigned_to_someone_else")
    mine = other.model_copy(update={"assignee": SELF})
    assert needs_permission(PROJECT, mine, SELF)
    assert isinstance(decide(PROJECT, mine, SELF, "admin"), Accept)
    assert isinstance(decide(PROJECT, mine, SELF, "read"), Refuse)


@pytest.mark.parametrize(
    ("body", "fields", "reason"),
    [
        ("@agentfleet", {"state": "closed"}, "closed"),
        ("@agentfleet", {"labels": ("agentfleet:sub-task",)}, "generated_issue"),
        ("/agentfleet retry", {}, "not_a_master_issue"),
        ("/agentfleet frobnicate", {}, "unknown_command"),
    ],
)
def test_what_cannot_be_done_is_refused(body: str, fields: dict[str, Any], reason: str) -> None:
    verdict = decide(PROJECT, trigger(body, **fields), SELF, "write")
    assert isinstance(verdict, Refuse) and verdict.reason == reason
    assert "\n" not in verdict.reply


def test_a_paused_project_refuses() -> None:
    paused = PROJECT.model_copy(update={"paused": True})
    verdict = decide(paused, trigger("@agentfleet"), SELF, "write")
    assert isinstance(verdict, Refuse) and verdict.reason == "paused"


def test_master_issue_commands_are_one_item_per_comment() -> None:
    master = ("agentfleet:master",)
    retry = decide(PROJECT, trigger("/agentfleet retry", labels=master), SELF, "write")
    assert isinstance(retry, Accept)
    assert retry.item.id == "team-a/shop/issue-5/genesis/retry-failed-77"
    dry = decide(PROJECT, trigger("/agentfleet dry-run", labels=master), SELF, "write")
    assert isinstance(dry, Accept) and dry.item.payload["dry_run"] is True
    fan_out = PROJECT.model_copy(update={"parallelism": {"maxConcurrent": 3}})
    run = decide(fan_out, trigger("@agentfleet", labels=master), SELF, "write")
    assert isinstance(run, Accept) and run.item.payload["parallelism"] == {"maxConcurrent": 3}


def test_accepted_work_records_who_asked_unless_a_bot_or_the_project_says_not_to() -> None:
    verdict = decide(PROJECT, trigger("@agentfleet please"), SELF, "write")
    assert isinstance(verdict, Accept) and verdict.item.payload["requested_by"] == "alice"
    quiet = PROJECT.model_copy(update={"request_review": False})
    verdict = decide(quiet, trigger("@agentfleet please"), SELF, "write")
    assert isinstance(verdict, Accept) and "requested_by" not in verdict.item.payload
    bots = PROJECT.model_copy(update={"allowed_bots": ("renovate[bot]",)})
    verdict = decide(bots, trigger("/agentfleet", login="renovate[bot]"), SELF, None)
    assert isinstance(verdict, Accept) and "requested_by" not in verdict.item.payload
    drafts = PROJECT.model_copy(update={"draft_pulls": True})
    verdict = decide(drafts, trigger("@agentfleet"), SELF, "write")
    assert isinstance(verdict, Accept) and verdict.item.payload["draft_pulls"] is True
