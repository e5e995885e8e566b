"""Work items' one home: ids round-trip and stay idempotent, payloads fail clearly, branch
names read back, and every maker spells ids exactly as items already in Redis have them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentfleet.core.api import Stage
from agentfleet.core.github import IssueFacts, ProjectIntake, issue_work
from agentfleet.core.github.client import PullInfo
from agentfleet.core.github.events import command_work, merged_pull_work
from agentfleet.core.pipeline import (
    MASTER_SUMMARY,
    DeadLetterReview,
    IssuePayload,
    ItemIdError,
    ItemKey,
    Lane,
    MasterSummary,
    MasterSummaryPayload,
    PayloadError,
    ProjectCarried,
    PullPayload,
    Qualifier,
    QualifierKind,
    Subject,
    WorkItem,
    docs_branch,
    follow_up_id,
    is_work_branch,
    issue_branch,
    issue_item,
    issue_item_id,
    issue_of_branch,
    master_summary_id,
    master_summary_item,
    pull_item_id,
    review_payload,
    stage_item,
    stage_payload,
    sub_task_item,
)
from agentfleet.core.queue.routing import default_follow_ups, review_item
from agentfleet.worker.stages.master import TaskRecord, development_item

pytestmark = pytest.mark.unit

AT = datetime(2026, 1, 1, tzinfo=UTC)

names = st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,30}[a-z0-9])?", fullmatch=True)
stages = st.sampled_from(list(Stage))
numbers = st.integers(min_value=0, max_value=10**12)
qualifiers = st.none() | st.builds(
    Qualifier, kind=st.sampled_from(list(QualifierKind)), number=numbers
)
keys = st.builds(
    ItemKey,
    namespace=names,
    project=names,
    subject=st.sampled_from(list(Subject)),
    number=numbers,
    stage=stages,
    qualifier=qualifiers,
    master_summary=st.booleans(),
    follow_ups=st.lists(stages, max_size=4).map(tuple),
)
projects = st.builds(
    ProjectIntake,
    namespace=names,
    name=names,
    repository=st.just("acme/shop"),
    api_url=st.none() | st.just("https://git.corp.example/api/v3"),
    lane=st.sampled_from(list(Lane)),
    tokens_per_item=st.none() | st.integers(min_value=1, max_value=10**6),
    cost_per_item_usd=st.none() | st.floats(min_value=0.01, max_value=1000),
    parallelism=st.just({"maxWorkers": 3}),
)
titles = st.text(max_size=40)


# ---------------------------------------------------------------------- ids


@given(keys)
def test_an_id_parses_back_to_the_fields_it_was_made_from(key: ItemKey) -> None:
    text = str(key)
    parsed = ItemKey.parse(text)
    assert parsed == key
    assert str(parsed) == text


@given(names, names, numbers, stages, qualifiers)
def test_issue_ids_keep_the_format_items_in_redis_already_have(
    namespace: str, project: str, number: int, stage: Stage, qualifier: Qualifier | None
) -> None:
    legacy = f"{namespace}/{project}/issue-{number}/{stage.value}"
    if qualifier is not None:
        legacy += f"/{qualifier.kind.value}-{qualifier.number}"
    assert issue_item_id(namespace, project, number, stage, qualifier) == legacy
    assert pull_item_id(namespace, project, number, stage) == (
        f"{namespace}/{project}/pull-{number}/{stage.value}"
    )
    assert follow_up_id(legacy, Stage.REVIEW) == f"{legacy}/review"


def test_the_spellings_the_makers_used_before_are_the_spellings_they_use_now() -> None:
    assert str(ItemKey.parse("team-a/shop/issue-5/genesis")) == "team-a/shop/issue-5/genesis"
    attempt = ItemKey.parse("team-a/shop/issue-6/development/attempt-2")
    assert (attempt.number, attempt.stage, attempt.qualifier) == (
        6,
        Stage.DEVELOPMENT,
        Qualifier(kind=QualifierKind.ATTEMPT, number=2),
    )
    command = ItemKey.parse("team-a/shop/issue-5/genesis/retry-failed-99")
    assert command.qualifier == Qualifier(kind=QualifierKind.RETRY_FAILED, number=99)
    chained = ItemKey.parse("team-a/shop/pull-7/content/review")
    assert (chained.subject, chained.stage, chained.follow_ups) == (
        Subject.PULL,
        Stage.CONTENT,
        (Stage.REVIEW,),
    )
    genesis_dev = ItemKey.parse("team-a/shop/issue-5/genesis/development/content/review")
    assert genesis_dev.follow_ups == (Stage.DEVELOPMENT, Stage.CONTENT, Stage.REVIEW)


@pytest.mark.parametrize(
    "text",
    [
        "gh-7",
        "team-a/shop/issue-5",
        "team-a/shop/issue-05/genesis",
        "team-a/shop/issue-5/planning",
        "team-a/shop/ticket-5/genesis",
        "team-a/shop/issue-5/genesis/attempt-x",
        "team-a/shop/issue-5/genesis/review/attempt-2",
        "Team-A/shop/issue-5/genesis",
        "team-a/shop/issue-5/genesis/",
    ],
)
def test_text_outside_the_grammar_is_refused(text: str) -> None:
    with pytest.raises(ItemIdError, match="not a work-item id"):
        ItemKey.parse(text)


def test_follow_up_ids_work_on_any_id() -> None:
    assert follow_up_id("gh-7", Stage.DEVELOPMENT) == "gh-7/development"


# ---------------------------------------------------------------- idempotency


def _same(first: WorkItem, second: WorkItem) -> bool:
    """The same item, made at two moments (only `enqueued_at` may differ)."""
    return first.model_dump(exclude={"enqueued_at"}) == second.model_dump(exclude={"enqueued_at"})


@given(projects, st.integers(min_value=1, max_value=10**9), titles, st.booleans())
def test_intake_makes_the_same_item_id_however_often_an_issue_is_seen(
    project: ProjectIntake, number: int, title: str, master: bool
) -> None:
    labels = ("agentfleet:master",) if master else ("agentfleet",)
    facts = IssueFacts(number=number, title=title, labels=labels)
    first, second = issue_work(project, facts), issue_work(project, facts)
    assert first is not None and second is not None
    assert first.id == second.id == f"{project.namespace}/{project.name}/issue-{number}/genesis"
    assert first.payload == second.payload
    assert IssuePayload.of(first) == IssuePayload(
        issue=number, title=title, parallelism={"maxWorkers": 3} if master else None
    )
    key = ItemKey.parse(first.id)
    assert (key.namespace, key.project, key.number, key.stage) == (
        project.namespace,
        project.name,
        number,
        Stage.GENESIS,
    )


@given(projects, st.integers(min_value=1, max_value=10**9), st.integers(min_value=1))
def test_a_command_and_a_merged_pull_make_one_item_each(
    project: ProjectIntake, number: int, comment: int
) -> None:
    master = IssueFacts(number=number, title="m", labels=("agentfleet:master",))
    made = [command_work(project, master, comment, QualifierKind.DRY_RUN) for _ in range(2)]
    assert made[0] is not None and made[1] is not None
    assert made[0].id == made[1].id
    assert (
        made[0].id == f"{project.namespace}/{project.name}/issue-{number}/genesis/dry-run-{comment}"
    )
    assert IssuePayload.of(made[0]).dry_run and not IssuePayload.of(made[0]).retry_failed
    pull = PullInfo(number, "t", "", "closed", True, "agentfleet/issue-3", "main", "", "bot")
    pulls = [merged_pull_work(project, pull) for _ in range(2)]
    assert pulls[0] is not None and pulls[1] is not None
    assert pulls[0].id == pulls[1].id == f"{project.namespace}/{project.name}/pull-{number}/content"
    assert PullPayload.of(pulls[0]).pull == number


@given(projects, st.integers(min_value=1, max_value=10**9), st.integers(min_value=1, max_value=9))
def test_items_made_from_items_are_idempotent_and_inherit_the_project(
    project: ProjectIntake, issue: int, attempt: int
) -> None:
    parent = issue_work(project, IssueFacts(number=1, title="t", labels=("agentfleet",)))
    assert parent is not None
    base = f"{project.namespace}/{project.name}/issue-{issue}/development"
    planned = [stage_item(parent, Stage.DEVELOPMENT, issue, planned_from=1) for _ in range(2)]
    assert _same(*planned) and planned[0].id == base
    record = TaskRecord(index=4, title="x", issue=issue, attempt=attempt)
    sub_tasks = [development_item(parent, record, master=1) for _ in range(2)]
    assert _same(*sub_tasks)
    assert sub_tasks[0].id == (base if attempt == 1 else f"{base}/attempt-{attempt}")
    assert _same(sub_tasks[0], sub_task_item(parent, issue, 1, 4, attempt))
    carried = {k: v for k, v in parent.payload.items() if k not in ("issue", "title")}
    assert planned[0].payload == {**carried, "issue": issue, "parent": 1}
    assert sub_tasks[0].payload == {**carried, "issue": issue, "parent": 1, "task": 4}
    for made in (*planned, *sub_tasks):
        assert (made.lane, made.pipeline, made.trace) == (parent.lane, parent.pipeline, ())
        assert ProjectCarried.of(made) == ProjectCarried.of(parent)


@given(keys)
def test_the_queues_follow_ups_are_idempotent_and_parse(key: ItemKey) -> None:
    item = WorkItem(id=str(key), namespace=key.namespace, project=key.project, stage=key.stage)
    nexts = [default_follow_ups(item, "w", AT) for _ in range(2)]
    assert [i.id for i in nexts[0]] == [i.id for i in nexts[1]]
    for follow_up in nexts[0]:
        assert ItemKey.parse(follow_up.id) == key.follow_up(follow_up.stage)
    reviews = [review_item(item, "boom", "w", AT) for _ in range(2)]
    if key.stage is Stage.REVIEW:
        assert reviews == [None, None]
    else:
        assert reviews[0] is not None and reviews[1] is not None
        assert reviews[0].id == reviews[1].id
        assert ItemKey.parse(reviews[0].id) == key.follow_up(Stage.REVIEW)


@given(projects, numbers, qualifiers)
def test_a_master_summary_is_one_item_per_fan_out_and_reads_back(
    project: ProjectIntake, master: int, qualifier: Qualifier | None
) -> None:
    fanned_out = issue_item(
        project,
        Stage.GENESIS,
        IssuePayload(issue=master),
        qualifier.kind if qualifier else None,
        qualifier.number if qualifier else 0,
    )
    run = MasterSummary(
        join=fanned_out.id,
        records=[{"index": 1, "title": "x", "issue": 7}],
        success_threshold=0.8,
        task_timeout_seconds=60,
    )
    made = [master_summary_item(fanned_out, master, run) for _ in range(2)]
    assert _same(*made)
    summary = made[0]
    assert summary.id == f"{fanned_out.id}/{MASTER_SUMMARY}" == master_summary_id(fanned_out.id)
    key = ItemKey.parse(summary.id)
    assert key.master_summary and key.stage is Stage.GENESIS and key.number == master
    assert (summary.stage, summary.lane, summary.pipeline) == (
        Stage.GENESIS,
        fanned_out.lane,
        fanned_out.pipeline,
    )
    read = stage_payload(summary)
    assert isinstance(read, MasterSummaryPayload)
    assert (read.issue, read.master_summary) == (master, run)
    assert isinstance(stage_payload(fanned_out), IssuePayload)
    assert ProjectCarried.of(summary) == ProjectCarried.of(fanned_out)
    # A summary does not fan out, nor does a follow-up.
    for not_fanning_out in (summary.id, f"{fanned_out.id}/review"):
        with pytest.raises(ItemIdError):
            master_summary_id(not_fanning_out)


# ---------------------------------------------------------------- branches


@given(numbers)
def test_branch_names_read_back(number: int) -> None:
    assert issue_branch(number) == f"agentfleet/issue-{number}"
    assert docs_branch(number) == f"agentfleet/docs-issue-{number}"
    assert issue_of_branch(issue_branch(number)) == number
    assert issue_of_branch(docs_branch(number)) is None
    assert is_work_branch(issue_branch(number)) and not is_work_branch(docs_branch(number))


def test_other_branches_are_not_issue_branches() -> None:
    for branch in ("main", "feature/x", "agentfleet/issue-", "agentfleet/issue-3x"):
        assert issue_of_branch(branch) is None
    assert not is_work_branch("feature/x")


# ---------------------------------------------------------------- payloads


def _item(stage: Stage, payload: dict[str, object]) -> WorkItem:
    return WorkItem(
        id="team-a/shop/issue-5/" + stage.value,
        namespace="team-a",
        project="shop",
        stage=stage,
        payload=payload,
    )


@pytest.mark.parametrize(
    ("stage", "payload", "field"),
    [
        (Stage.GENESIS, {"title": "no number"}, "issue: Field required"),
        (Stage.DEVELOPMENT, {"issue": "five"}, "issue: Input should be a valid integer"),
        (Stage.CONTENT, {"issue": 5}, "pull: Field required"),
        (Stage.REVIEW, {"issue": 5}, "pull: Field required"),
        (Stage.REVIEW, {"dead_letter": {"error": "x"}}, "issue: Field required"),
        (Stage.REVIEW, {"dead_letter": {"attempts": "many"}, "issue": 5}, "dead_letter.attempts"),
    ],
)
def test_a_malformed_payload_is_a_clear_error_not_a_key_error(
    stage: Stage, payload: dict[str, object], field: str
) -> None:
    item = _item(stage, payload)
    with pytest.raises(PayloadError) as raised:
        stage_payload(item)
    assert not isinstance(raised.value, KeyError)
    message = str(raised.value)
    assert message.startswith(f"work item {item.id} ({stage.value}): malformed payload")
    assert field in message


def test_a_payload_without_the_projects_repository_is_a_clear_error() -> None:
    with pytest.raises(PayloadError, match="`repository` is missing"):
        ProjectCarried.of(_item(Stage.GENESIS, {"issue": 5}))


def test_payloads_are_read_as_the_stages_always_read_them() -> None:
    # Flags were read for their truth, a non-object `parallelism` was ignored, a budget
    # that is not a whole number was no budget, and unknown keys were carried along.
    read = IssuePayload.of(
        _item(Stage.GENESIS, {"issue": "5", "dry_run": 1, "parallelism": "x", "extra": True})
    )
    assert (read.issue, read.dry_run, read.retry_failed, read.parallelism) == (5, True, False, None)
    carried = ProjectCarried.of(
        _item(
            Stage.GENESIS, {"repository": "acme/shop", "token_budget": "lots", "github_api_url": ""}
        )
    )
    assert carried == ProjectCarried(repository="acme/shop", api_url=None, token_budget=None)
    costs = [
        ProjectCarried.of(
            _item(Stage.GENESIS, {"repository": "acme/shop", "cost_budget_usd": value})
        ).cost_budget_usd
        for value in (2.5, "0.75", "lots", -1, 0, float("nan"), float("inf"), True, None)
    ]
    assert costs == [2.5, 0.75, None, None, None, None, None, None, None]
    review = review_payload(_item(Stage.REVIEW, {"dead_letter": "not an object", "pull": 7}))
    assert review == PullPayload(pull=7)
    dead = review_payload(_item(Stage.REVIEW, {"dead_letter": {"item_id": "a"}, "issue": 5}))
    assert isinstance(dead, DeadLetterReview) and dead.dead_letter.item_id == "a"


def test_the_dead_letter_the_queue_writes_is_the_one_review_reads() -> None:
    failed = _item(Stage.DEVELOPMENT, {"repository": "acme/shop", "issue": 5})
    review = review_item(failed.model_copy(update={"attempts": 3}), "tests failed", "w", AT)
    assert review is not None
    assert review.payload["dead_letter"] == {
        "item_id": failed.id,
        "stage": "development",
        "specialty": None,
        "attempts": 3,
        "error": "tests failed",
    }
    read = review_payload(review)
    assert isinstance(read, DeadLetterReview)
    assert (read.issue, read.dead_letter.attempts, read.dead_letter.error) == (
        5,
        3,
        "tests failed",
    )


def test_an_item_made_with_a_malformed_payload_is_refused_where_it_is_made() -> None:
    with pytest.raises(ValueError, match="issue"):
        IssuePayload.model_validate({"issue": "five"})
