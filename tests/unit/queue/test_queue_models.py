"""Work items are validated where they enter the queue."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentfleet.core.api import Stage
from agentfleet.core.queue import LANES_BY_PRIORITY, Lane, WorkItem

pytestmark = pytest.mark.unit


def test_lanes_rank_from_urgent_to_low() -> None:
    assert [lane.rank for lane in LANES_BY_PRIORITY] == [0, 1, 2, 3]
    assert sorted(Lane, key=lambda lane: lane.rank) == list(LANES_BY_PRIORITY)


@pytest.mark.parametrize("project", ["Shop", "a:b", "{x}", "a b", "", "-x"])
def test_names_that_would_break_the_key_layout_are_rejected(project: str) -> None:
    with pytest.raises(ValidationError):
        WorkItem(id="1", namespace="ns", project=project, stage=Stage.GENESIS)


def test_item_ids_must_have_no_whitespace() -> None:
    with pytest.raises(ValidationError):
        WorkItem(id="a b", namespace="ns", project="p", stage=Stage.GENESIS)


def test_item_round_trips_through_json() -> None:
    item = WorkItem(
        id="gh-1",
        namespace="ns",
        project="p",
        stage=Stage.DEVELOPMENT,
        specialty="tdd",
        lane=Lane.URGENT,
        payload={"list": [], "nested": {"empty": {}}},
    )
    assert WorkItem.model_validate_json(item.model_dump_json()) == item
    assert item.routing_specialty == "tdd"
    assert item.model_copy(update={"specialty": None}).routing_specialty == "general"
