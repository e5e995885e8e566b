"""Pure rules of the stage handlers: test paths, test-first order, plans, reviews."""

from __future__ import annotations

from typing import Any

import pytest

from agentfleet.worker.agents import AgentResult, ToolCallRecord, Usage
from agentfleet.worker.stages.base import is_test_path
from agentfleet.worker.stages.development import wrote_tests_first
from agentfleet.worker.stages.genesis import PlanError, plan_from_submission
from agentfleet.worker.stages.review import render_review

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("tests/test_cart.py", True),
        ("pkg/tests/helpers.py", True),
        ("test_cart.py", True),
        ("cart_test.py", True),
        ("web/cart.spec.ts", True),
        ("web/__tests__/cart.js", True),
        ("cart.py", False),
        ("src/testing_utils.py", False),
        ("docs/tests.md", False),
    ],
)
def test_test_paths(path: str, expected: bool) -> None:
    assert is_test_path(path) is expected


def run(*writes: tuple[str, str, bool]) -> AgentResult:
    calls = [ToolCallRecord(name=name, input={"path": path}, ok=ok) for name, path, ok in writes]
    return AgentResult(stop_reason="end_turn", turns=len(calls), usage=Usage(), tool_calls=calls)


def test_tests_first_is_judged_on_the_first_successful_write() -> None:
    assert wrote_tests_first(
        run(("write_file", "tests/test_a.py", True), ("write_file", "a.py", True))
    )
    assert not wrote_tests_first(
        run(("write_file", "a.py", True), ("write_file", "tests/test_a.py", True))
    )
    assert wrote_tests_first(
        run(("write_file", "a.py", False), ("edit_file", "tests/test_a.py", True))
    ), "a refused write does not count"
    assert wrote_tests_first(run(("read_file", "a.py", True)))


def test_plans_from_the_model_are_validated_and_normalised() -> None:
    summary, tasks = plan_from_submission(
        {
            "summary": "two",
            "tasks": [
                {"title": "  Cart   API ", "files": ["./src/cart.py", "src/cart.py", " "]},
                {"title": "Docs", "description": "write them"},
            ],
        }
    )
    assert summary == "two"
    assert [(t.index, t.title, t.files) for t in tasks] == [
        (1, "Cart API", ("src/cart.py",)),
        (2, "Docs", ()),
    ]
    bad: dict[str, Any]
    for bad in ({"tasks": []}, {"tasks": [{"description": "no title"}]}, {"summary": "x"}):
        with pytest.raises(PlanError):
            plan_from_submission(bad)


def test_review_comment_rendering() -> None:
    text = render_review(
        {"verdict": "changes_requested", "summary": "Off by one.", "findings": ["a.py:3"]},
        "pull request #4",
    )
    assert text.splitlines()[0] == "## agentfleet review of pull request #4: changes requested"
    assert "- a.py:3" in text
