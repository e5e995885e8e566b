"""Work-item ids: the queue's idempotency keys, made and read in one place.

The queue stores nothing new for an id it has seen, so every maker of the same work must
spell the same id; items already waiting in Redis keep the ids they were made with, so
the grammar below is fixed:

    <namespace>/<project>/issue-<n>/<stage>[/<qualifier>][/master-summary]{/<follow-up stage>}
    <namespace>/<project>/pull-<n>/<stage>{/<follow-up stage>}

- `issue-<n>` / `pull-<n>`: the GitHub issue or pull request the work is about.
- `<stage>`: the stage the item was made for (intake's first stage, genesis's follow-ups,
  a master issue's sub-tasks, content for a merged pull request).
- `<qualifier>`: `attempt-<k>` (a master issue's sub-task run again, k > 1),
  `retry-failed-<comment>` or `dry-run-<comment>` (a command in a comment on a master
  issue: one item per comment).
- `/master-summary`: the one item that summarises a master issue's fan-out, made from
  the item that fanned out (`master_summary_id`): the last sub-task to finish (or to time
  out) enqueues it.
- `/<follow-up stage>`: appended by the queue for the default next-stage follow-up and
  for the dead-letter review item (`follow_up_id`), which works on any id.
"""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentfleet.core.api import Stage
from agentfleet.core.pipeline.items import Name


class Subject(StrEnum):
    """What on GitHub the work is about."""

    ISSUE = "issue"
    PULL = "pull"


class QualifierKind(StrEnum):
    ATTEMPT = "attempt"
    """A master issue's sub-task run again (`/agentfleet retry`): attempt k > 1."""
    RETRY_FAILED = "retry-failed"
    """`/agentfleet retry` on a master issue; the number is the comment's id."""
    DRY_RUN = "dry-run"
    """`/agentfleet dry-run` on a master issue; the number is the comment's id."""
    ROUND = "round"
    """A pull request's feedback round (review comments, mentions, failing checks); the
    number counts the rounds, from 1."""


class Qualifier(BaseModel):
    """What tells apart several items for the same issue and stage."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: QualifierKind
    number: int = Field(ge=0)

    def __str__(self) -> str:
        return f"{self.kind.value}-{self.number}"


MASTER_SUMMARY = "master-summary"
"""The segment of a master-summary item's id."""


class ItemIdError(ValueError):
    """Text that is not an id of this grammar."""


_STAGES = "|".join(stage.value for stage in Stage)
_KINDS = "|".join(kind.value for kind in QualifierKind)
_NUMBER = r"0|[1-9]\d*"
_GRAMMAR = re.compile(
    rf"^(?P<namespace>[^/\s]+)/(?P<project>[^/\s]+)"
    rf"/(?P<subject>{'|'.join(s.value for s in Subject)})-(?P<number>{_NUMBER})"
    rf"/(?P<stage>{_STAGES})"
    rf"(?:/(?P<kind>{_KINDS})-(?P<qualifier>{_NUMBER}))?"
    rf"(?P<summary>/{MASTER_SUMMARY})?"
    rf"(?P<follow_ups>(?:/(?:{_STAGES}))*)$"
)


class ItemKey(BaseModel):
    """The fields an id is made of; `str(key)` is the id, `ItemKey.parse` reads one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    namespace: Name
    project: Name
    subject: Subject
    number: int = Field(ge=0)
    stage: Stage
    qualifier: Qualifier | None = None
    master_summary: bool = False
    """The summary of the fan-out made by the item without it (`/master-summary`)."""
    follow_ups: tuple[Stage, ...] = ()
    """Stages the queue's follow-ups appended, in order."""

    def __str__(self) -> str:
        base = f"{self.namespace}/{self.project}/{self.subject.value}-{self.number}"
        text = f"{base}/{self.stage.value}"
        if self.qualifier is not None:
            text = f"{text}/{self.qualifier}"
        if self.master_summary:
            text = f"{text}/{MASTER_SUMMARY}"
        for stage in self.follow_ups:
            text = follow_up_id(text, stage)
        return text

    def follow_up(self, stage: Stage) -> ItemKey:
        return self.model_copy(update={"follow_ups": (*self.follow_ups, stage)})

    @classmethod
    def parse(cls, text: str) -> ItemKey:
        """The fields of `text`; ItemIdError for text that is not in the grammar."""
        match = _GRAMMAR.match(text)
        if match is None:
            raise ItemIdError(f"not a work-item id: {text!r}")
        kind = match["kind"]
        try:
            return cls(
                namespace=match["namespace"],
                project=match["project"],
                subject=Subject(match["subject"]),
                number=int(match["number"]),
                stage=Stage(match["stage"]),
                qualifier=(
                    Qualifier(kind=QualifierKind(kind), number=int(match["qualifier"]))
                    if kind
                    else None
                ),
                master_summary=bool(match["summary"]),
                follow_ups=tuple(Stage(s) for s in match["follow_ups"].split("/")[1:]),
            )
        except ValidationError as exc:
            raise ItemIdError(f"not a work-item id: {text!r}: {exc}") from exc


def issue_item_id(
    namespace: str,
    project: str,
    number: int,
    stage: Stage,
    qualifier: Qualifier | None = None,
) -> str:
    """`<namespace>/<project>/issue-<n>/<stage>[/<qualifier>]`."""
    return str(
        ItemKey(
            namespace=namespace,
            project=project,
            subject=Subject.ISSUE,
            number=number,
            stage=stage,
            qualifier=qualifier,
        )
    )


def attempt_qualifier(attempt: int) -> Qualifier | None:
    """The first attempt keeps the plain id; later ones are `attempt-<k>`."""
    return None if attempt == 1 else Qualifier(kind=QualifierKind.ATTEMPT, number=attempt)


def pull_item_id(
    namespace: str, project: str, number: int, stage: Stage, qualifier: Qualifier | None = None
) -> str:
    """`<namespace>/<project>/pull-<n>/<stage>[/<qualifier>]`."""
    return str(
        ItemKey(
            namespace=namespace,
            project=project,
            subject=Subject.PULL,
            number=number,
            stage=stage,
            qualifier=qualifier,
        )
    )


def follow_up_id(parent_id: str, stage: Stage) -> str:
    """The id of the item `stage` makes from `parent_id` (next stage, or review):
    deterministic, so a repeated completion cannot enqueue a second follow-up. Works on
    any id, including ones outside the grammar above."""
    return f"{parent_id}/{stage.value}"


def master_summary_id(fanned_out: str) -> str:
    """The id of the master-summary item of the fan-out made by item `fanned_out` (a
    master issue's genesis item, or its `/agentfleet retry` item): one per fan-out, so a
    join enqueues it once however often its last child is finished."""
    key = ItemKey.parse(fanned_out)
    if key.master_summary or key.follow_ups:
        raise ItemIdError(f"{fanned_out!r} is not an item that fans out a master issue")
    return str(key.model_copy(update={"master_summary": True}))
