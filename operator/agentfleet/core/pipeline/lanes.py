"""Lanes: the priority lanes an item waits in, and the specialty lane it is routed to."""

from __future__ import annotations

from enum import StrEnum

from agentfleet.core.api.project import Priority

GENERAL_SPECIALTY = "general"
"""The label value (and routing lane) for items that need no particular specialty."""


class Lane(StrEnum):
    """Priority lanes; workers read the highest lane first."""

    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 for the highest lane; a smaller rank is read first."""
        return LANES_BY_PRIORITY.index(self)


LANES_BY_PRIORITY: tuple[Lane, ...] = (Lane.URGENT, Lane.HIGH, Lane.NORMAL, Lane.LOW)


def project_lane(priority: Priority) -> Lane:
    """The lane a Project's `spec.priority` puts its items in (the names are the same)."""
    return Lane(priority.value)
