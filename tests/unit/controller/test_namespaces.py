"""Namespace discovery: a listed namespace is served like a watched one (the e2e proof is
tests/e2e/operator/test_operator_namespaces.py); these pin the kopf internals it uses."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from kopf._cogs.structs import bodies, references
from kopf._core.reactor import observation

from agentfleet.operator.namespaces import (
    _kopf_processor,
    process_namespace_event,
    serve_namespaces_listed_on_watch,
)

pytestmark = pytest.mark.unit

PATTERNS: list[references.NamespacePattern] = ["team-*"]


def event(kind: str | None, name: str, **meta: Any) -> bodies.RawEvent:
    return bodies.RawEvent(type=kind, object={"metadata": {"name": name, **meta}})  # type: ignore[typeddict-item]


async def test_a_listed_namespace_matching_a_glob_is_served() -> None:
    insights = references.Insights()
    await process_namespace_event(
        raw_event=event(None, "team-a"), namespaces=PATTERNS, insights=insights
    )
    await process_namespace_event(
        raw_event=event(None, "other"), namespaces=PATTERNS, insights=insights
    )
    assert insights.namespaces == {"team-a"}


async def test_watch_events_keep_kopfs_meaning() -> None:
    insights = references.Insights()
    await process_namespace_event(
        raw_event=event("ADDED", "team-a"), namespaces=PATTERNS, insights=insights
    )
    assert insights.namespaces == {"team-a"}
    await process_namespace_event(
        raw_event=event("DELETED", "team-a"), namespaces=PATTERNS, insights=insights
    )
    assert insights.namespaces == set()


async def test_kopf_itself_skips_listed_namespaces() -> None:
    """The behaviour the fix exists for; if a kopf release changes it, the fix can go."""
    insights = references.Insights()
    await _kopf_processor(raw_event=event(None, "team-a"), namespaces=PATTERNS, insights=insights)
    assert insights.namespaces == set()


def test_kopf_looks_the_processor_up_by_name_when_it_starts_watching() -> None:
    source = inspect.getsource(observation.namespace_observer)
    assert "process_discovered_namespace_event" in source
    serve_namespaces_listed_on_watch()
    assert observation.process_discovered_namespace_event is process_namespace_event
