"""Master-issue parsing, independence, verdicts, retries and the summary (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentfleet.core.github.markers import embed_state, extract_state
from agentfleet.core.queue import ChildState, JoinChild
from agentfleet.worker.stages.master import (
    TaskRecord,
    TaskState,
    apply_join,
    overlaps,
    parse_subtasks,
    render_report,
    render_summary,
    tasks_to_run,
    validate,
    verdict,
)

pytestmark = pytest.mark.unit

MASTER = """\
We need a shop. Context paragraph with a list that is not a checklist:

1. this numbered item is ignored because the issue has checkboxes

- [ ] Cart API (files: src/cart/api.py, tests/test_cart_api.py)
- [x] Product catalogue
  files: `src/catalogue/`, tests/test_catalogue.py
  Serve products from the database.
* [ ] Checkout page
  modules: shop.checkout
- [ ] Catalogue search (files: src/catalogue/search.py)

```
- [ ] inside a code block: not a task
```
"""


def test_checkbox_tasks_with_declarations_and_descriptions() -> None:
    tasks = parse_subtasks(MASTER)
    assert [t.title for t in tasks] == [
        "Cart API",
        "Product catalogue",
        "Checkout page",
        "Catalogue search",
    ]
    assert [t.index for t in tasks] == [1, 2, 3, 4]
    assert tasks[0].files == ("src/cart/api.py", "tests/test_cart_api.py")
    assert tasks[1].files == ("src/catalogue", "tests/test_catalogue.py")
    assert tasks[1].done and not tasks[0].done
    assert tasks[1].description == "Serve products from the database."
    assert tasks[2].modules == ("shop.checkout",)
    assert tasks[2].resources == ("shop/checkout",)


def test_numbered_tasks_when_there_are_no_checkboxes() -> None:
    tasks = parse_subtasks("Plan:\n\n1. First thing\n2) Second thing files: a.py\n   more words\n")
    assert [(t.index, t.title, t.files) for t in tasks] == [
        (1, "First thing", ()),
        (2, "Second thing", ("a.py",)),
    ]
    assert tasks[1].description == "more words"
    assert parse_subtasks("") == [] and parse_subtasks("just prose") == []


def test_overlapping_declarations_are_conflicts() -> None:
    report = validate(parse_subtasks(MASTER))
    assert [(c.first, c.second) for c in report.conflicts] == [(2, 4)]
    assert report.conflicts[0].shared == ("src/catalogue <-> src/catalogue/search.py",)
    assert not report.independent
    assert report.conflicting() == {2, 4}
    assert report.undeclared == ()


def test_independent_tasks_and_warnings() -> None:
    report = validate(parse_subtasks("- [ ] a (files: x.py)\n- [ ] b\n- [ ] A\n"))
    assert report.independent
    assert report.undeclared == (2, 3)
    assert any("duplicate" in w for w in report.warnings)
    assert any("cannot be checked" in w for w in report.warnings)
    two = validate(parse_subtasks("- [ ] a\n- [ ] b\n"))
    assert any("below 3" in w for w in two.warnings)
    assert "no sub-tasks" in validate([]).warnings[0]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("src/a.py", "src/a.py", True),
        ("src", "src/a.py", True),
        ("src/a.py", "src", True),
        ("src/a", "src/ab.py", False),
        ("shop/checkout", "shop/checkout/views", True),
        ("a.py", "b.py", False),
    ],
)
def test_overlap(a: str, b: str, expected: bool) -> None:
    assert overlaps(a, b) is expected


def test_dry_run_report_lists_tasks_and_conflicts() -> None:
    text = render_report(validate(parse_subtasks(MASTER)), 7)
    assert text.startswith("## agentfleet dry run for #7")
    assert "4 sub-task(s), 1 conflict(s)" in text
    assert "| 2 | Product catalogue | `src/catalogue`, `tests/test_catalogue.py` |" in text
    assert "2 and 4 both touch" in text


def records(states: list[TaskState]) -> list[TaskRecord]:
    return [TaskRecord(index=i, title=f"t{i}", state=s) for i, s in enumerate(states, 1)]


def test_nine_out_of_ten_meets_the_eighty_percent_threshold() -> None:
    outcome = verdict(records([TaskState.SUCCEEDED] * 9 + [TaskState.FAILED]), 0.8)
    assert (outcome.succeeded, outcome.failed, outcome.ratio, outcome.success) == (9, 1, 0.9, True)
    exactly = verdict(records([TaskState.SUCCEEDED] * 4 + [TaskState.TIMED_OUT]), 0.8)
    assert exactly.success, "80% is enough for an 80% threshold"
    below = verdict(records([TaskState.SUCCEEDED] * 7 + [TaskState.FAILED] * 3), 0.8)
    assert not below.success
    unfinished = verdict(records([TaskState.SUCCEEDED] * 9 + [TaskState.RUNNING]), 0.8)
    assert not unfinished.complete and not unfinished.success
    assert not verdict([], 0.8).success


@given(st.lists(st.sampled_from(list(TaskState)), max_size=30), st.floats(0.05, 1.0))
def test_verdict_counts_add_up(states: list[TaskState], threshold: float) -> None:
    outcome = verdict(records(states), threshold)
    assert outcome.succeeded + outcome.failed + outcome.unfinished == outcome.total
    assert outcome.success == (
        outcome.complete
        and outcome.total > 0
        and outcome.succeeded >= threshold * outcome.total - 1e-6
    )


def test_retry_reruns_only_failed_tasks_under_a_new_attempt() -> None:
    batch = records([TaskState.SUCCEEDED, TaskState.FAILED, TaskState.TIMED_OUT, TaskState.PENDING])
    batch[1].error = "tests fail"
    assert [r.index for r in tasks_to_run(batch, retry_failed=False)] == [4]
    chosen = tasks_to_run(batch, retry_failed=True)
    assert [r.index for r in chosen] == [2, 3, 4]
    assert [r.attempt for r in batch] == [1, 2, 2, 1]
    assert batch[1].state is TaskState.PENDING and batch[1].error is None
    assert batch[0].state is TaskState.SUCCEEDED


def test_summary_shows_prs_failures_durations_and_round_trips_its_state() -> None:
    batch = records([TaskState.SUCCEEDED, TaskState.FAILED])
    batch[0].pull, batch[0].issue, batch[0].duration_seconds = 31, 12, 75.4
    batch[1].error = "tests fail after the agent finished:\nE assert 1 == 2"
    report = validate(parse_subtasks("- [ ] a (files: x)\n- [ ] b (files: x)\n"))
    text = render_summary(9, batch, verdict(batch, 0.8), report.conflicts, 80.0)
    assert text.startswith("## agentfleet parallel run for #9: failed: 1/2 sub-tasks")
    assert "| 1 | t1 | #12 | ✅ succeeded | #31 | 1m 15s | 1 |" in text
    assert "- 2. t2: tests fail after the agent finished:" in text
    assert "/agentfleet retry" in text
    assert "1 and 2: `x`" in text
    hidden = embed_state({"records": [r.model_dump(mode="json") for r in batch]})
    assert "-->" not in hidden[:-3]
    state = extract_state(f"{text}\n\n{hidden}")
    assert [TaskRecord.model_validate(r) for r in state["records"]] == batch
    assert extract_state("no state") is None
    assert extract_state("<!-- agentfleet-state:!!! -->") is None


def test_a_join_updates_the_records_of_its_own_sub_tasks_only() -> None:
    at = datetime(2030, 1, 1, tzinfo=UTC)
    records = [
        TaskRecord(index=1, title="a", issue=11, state=TaskState.SUCCEEDED, pull=5),
        TaskRecord(index=2, title="b", issue=12, state=TaskState.RUNNING, attempt=2),
        TaskRecord(index=3, title="c", issue=13, state=TaskState.RUNNING),
        TaskRecord(index=4, title="d", issue=14, state=TaskState.PENDING),
    ]
    ids = {2: "ns/p/issue-12/development/attempt-2", 3: "ns/p/issue-13/development", 4: "x"}
    children = {
        ids[2]: JoinChild(
            state=ChildState.DEAD_LETTERED,
            released_at=at,
            finished_at=at + timedelta(seconds=12.5),
            error="tests fail",
        ),
        ids[3]: JoinChild(
            state=ChildState.TIMED_OUT, released_at=at, finished_at=at + timedelta(seconds=60)
        ),
        # Task 1 ran in an earlier fan-out: an id of another run changes nothing.
        "ns/p/issue-11/development": JoinChild(state=ChildState.DEAD_LETTERED),
        "x": JoinChild(state=ChildState.SUCCEEDED, released_at=at, finished_at=at),
    }
    apply_join(records, children, ids, timeout_seconds=60)
    assert [(r.state, r.error, r.duration_seconds) for r in records] == [
        (TaskState.SUCCEEDED, None, None),
        (TaskState.FAILED, "tests fail", 12.5),
        (TaskState.TIMED_OUT, "no result within the task timeout of 60s", 60.0),
        (TaskState.SUCCEEDED, None, 0.0),
    ]
    assert records[0].pull == 5 and records[1].attempt == 2
    outcome = verdict(records, 0.5)
    assert outcome.complete and outcome.success and (outcome.succeeded, outcome.failed) == (2, 2)
