"""Status conditions in the shape of Kubernetes' `metav1.Condition`.

`set_condition` is the only way conditions change: it keeps `lastTransitionTime` when the
status did not flip, so `kubectl describe` shows how long something has been wrong rather
than when the operator last looked.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from pydantic import Field

from agentfleet.core.api.base import ApiModel


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """One aspect of the object's current state (the `metav1.Condition` shape)."""

    type: str = Field(min_length=1, max_length=316)
    """Aspect this condition describes, in CamelCase (for example Ready or Paused)."""

    status: ConditionStatus
    """Whether the condition holds: True, False or Unknown."""

    reason: str = Field(min_length=1, max_length=1024)
    """Machine-readable CamelCase cause of the last transition."""

    message: str = Field(default="", max_length=32768)
    """Human-readable details of the last transition."""

    last_transition_time: datetime
    """When the status last changed (not when it was last checked)."""

    observed_generation: int | None = Field(default=None, ge=0)
    """metadata.generation the condition was computed from."""


def set_condition(
    conditions: Sequence[Condition],
    type_: str,
    status: ConditionStatus | bool,
    reason: str,
    message: str,
    now: datetime,
    observed_generation: int | None = None,
) -> list[Condition]:
    """A copy of `conditions` with `type_` set; the order of the others is kept."""
    if isinstance(status, bool):
        status = ConditionStatus.TRUE if status else ConditionStatus.FALSE
    previous = find_condition(conditions, type_)
    transitioned = previous is None or previous.status != status
    updated = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=now
        if transitioned or previous is None
        else previous.last_transition_time,
        observed_generation=observed_generation,
    )
    result = [c for c in conditions if c.type != type_]
    position = next((i for i, c in enumerate(conditions) if c.type == type_), len(result))
    result.insert(position, updated)
    return result


def find_condition(conditions: Sequence[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: Sequence[Condition], type_: str) -> bool:
    condition = find_condition(conditions, type_)
    return condition is not None and condition.status is ConditionStatus.TRUE
