"""`agentfleet dispatch`'s requirements: from text and batch files (no I/O)."""

from __future__ import annotations

import pytest

from agentfleet.core.fleetapi import Requirement
from agentfleet.ctl.commands import _requirement, requirements_from
from agentfleet.ctl.kube import CliError

pytestmark = pytest.mark.unit


def test_plain_text_is_one_requirement_per_paragraph() -> None:
    text = "Add a cart\nUsers keep what they pick.\n\n\nDark mode\r\n\r\nSearch\n"
    assert requirements_from(text, "reqs.txt") == [
        Requirement(title="Add a cart", body="Users keep what they pick."),
        Requirement(title="Dark mode", body=""),
        Requirement(title="Search", body=""),
    ]


def test_yaml_and_json_lists_of_objects_or_strings() -> None:
    yaml_text = "- title: Dark mode\n  body: Toggle\n- Search\n"
    assert requirements_from(yaml_text, "reqs.yaml") == [
        Requirement(title="Dark mode", body="Toggle"),
        Requirement(title="Search"),
    ]
    assert requirements_from('["A", {"title": "B"}]', "reqs.json") == [
        Requirement(title="A"),
        Requirement(title="B"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("title: not a list\n", "reqs.yaml: expected a list of requirements"),
        ("- {body: no title}\n", "reqs.yaml: requirement 1 is not {title, body}"),
        ("- [unclosed\n", "reqs.yaml: not YAML or JSON"),
    ],
)
def test_bad_batch_files_are_one_line(text: str, message: str) -> None:
    with pytest.raises(CliError) as raised:
        requirements_from(text, "reqs.yaml")
    assert str(raised.value).startswith(message)


def test_a_text_is_one_requirement_whatever_its_blank_lines() -> None:
    assert _requirement("Add a cart\n\nUsers keep\n\nwhat they pick.\n") == Requirement(
        title="Add a cart", body="Users keep\n\nwhat they pick."
    )
