"""Scripted stage agents for the fake model: what a competent Claude would do, turn by turn.

Each function returns a `Script` for `FakeAnthropic.add_script`, matched on the stage's
system prompt. They produce real work (files that the handlers commit, tests that pass),
so the pipeline around them is exercised for real; only the model's judgement is canned.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from agentfleet.dev.testing.fake_anthropic import Conversation, ToolCall, Turn, call, calls, say

GENESIS_PLAN = "agentfleet's genesis agent: you plan"
GENESIS_SCAFFOLD = "agentfleet's genesis agent: you scaffold"
DEVELOPMENT = "agentfleet's development agent"
CONTENT = "agentfleet's content agent"
FEEDBACK = "agentfleet's feedback agent"
REVIEW = "agentfleet's review agent"

_ISSUE = re.compile(r"issue #(\d+)")
_CONTINUE = "already holds work from an earlier attempt"

TEST_TEMPLATE = """\
import unittest

from feature_{n} import answer_{n}


class Issue{n}Test(unittest.TestCase):
    def test_answer(self):
        self.assertEqual(answer_{n}(), {n})
"""


def _issue_number(conversation: Conversation) -> int:
    match = _ISSUE.search(conversation.first_user_text)
    if match is None:
        raise ValueError("the task names no issue")
    return int(match.group(1))


def scaffolder() -> Callable[[Conversation], Turn]:
    turns = [
        calls(
            ToolCall("write_file", {"path": "README.md", "content": "# Project\n"}),
            ToolCall(
                "write_file",
                {
                    "path": "tests/test_smoke.py",
                    "content": "import unittest\n\n\nclass Smoke(unittest.TestCase):\n"
                    "    def test_truth(self):\n        self.assertTrue(True)\n",
                },
            ),
        ),
        say("Scaffolded a README and a smoke test."),
    ]
    return lambda conversation: turns[min(conversation.turn, len(turns) - 1)]


def planner(
    tasks: list[dict[str, object]], summary: str = "Split into parts."
) -> Callable[[Conversation], Turn]:
    """Looks around once, then submits `tasks` as the plan."""

    def script(conversation: Conversation) -> Turn:
        if conversation.turn == 0:
            return call("list_files", text="Reading the repository first.")
        return call("submit_plan", summary=summary, tasks=tasks)

    return script


def tdd_developer(
    failing: Callable[[Conversation], bool] = lambda conversation: False,
    run_tests: bool = False,
    reading_turns: int = 0,
) -> Callable[[Conversation], Turn]:
    """Writes `tests/test_issue_<n>.py`, then `feature_<n>.py`, for the issue it is given.

    `reading_turns` list the repository first (more model turns per task). When
    `failing(conversation)` is true the implementation returns a wrong value, so the tests
    fail; an attempt that continues an earlier one's branch always fixes it.
    """

    def script(conversation: Conversation) -> Turn:
        n = _issue_number(conversation)
        broken = failing(conversation) and _CONTINUE not in conversation.first_user_text
        value = -1 if broken else n
        steps = [call("list_files", text="Reading the repository.")] * reading_turns
        steps += [
            call(
                "write_file",
                text="Tests first.",
                path=f"tests/test_issue_{n}.py",
                content=TEST_TEMPLATE.format(n=n),
            ),
            call(
                "write_file",
                path=f"feature_{n}.py",
                content=f"def answer_{n}():\n    return {value}\n",
            ),
        ]
        if run_tests:
            steps.append(call("run_command", command=["python", "-m", "unittest", "-q"]))
        steps.append(say(f"Added answer_{n}() with its test."))
        return steps[min(conversation.turn, len(steps) - 1)]

    return script


def technical_writer() -> Callable[[Conversation], Turn]:
    def script(conversation: Conversation) -> Turn:
        n = _issue_number(conversation)
        steps = [
            calls(
                ToolCall(
                    "write_file",
                    {"path": f"docs/issue-{n}.md", "content": f"# Issue {n}\n\nHow to use it.\n"},
                ),
                ToolCall(
                    "write_file",
                    {
                        "path": "CHANGELOG.md",
                        "content": f"# Changelog\n\n- Issue #{n} delivered.\n",
                    },
                ),
            ),
            say("Documented the feature and added a changelog entry."),
        ]
        return steps[min(conversation.turn, len(steps) - 1)]

    return script


def reviewer(verdict: str = "diagnosis") -> Callable[[Conversation], Turn]:
    def script(conversation: Conversation) -> Turn:
        if conversation.turn == 0:
            return call("list_files")
        return call(
            "submit_review",
            verdict=verdict,
            summary="The implementation returns the wrong value; its own test says so.",
            findings=["feature module: return value does not match the test"],
        )

    return script


_ROUND = re.compile(r"pull request #(\d+) .*fix round (\d+)")


def fixer() -> Callable[[Conversation], Turn]:
    """Addresses a pull request's feedback: writes `notes/pull-<n>-round-<k>.md` quoting
    what it was asked (so tests can see which feedback a round got), then summarises."""

    def script(conversation: Conversation) -> Turn:
        match = _ROUND.search(conversation.first_user_text)
        if match is None:
            raise ValueError("the task names no pull request round")
        pull, round_number = match.groups()
        asked = conversation.first_user_text.split("fix round", 1)[1]
        steps = [
            call(
                "write_file",
                text="Addressing the feedback.",
                path=f"notes/pull-{pull}-round-{round_number}.md",
                content=asked,
            ),
            say(f"Round {round_number}: addressed every piece of feedback."),
        ]
        return steps[min(conversation.turn, len(steps) - 1)]

    return script
