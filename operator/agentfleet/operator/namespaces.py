"""Namespace discovery for `--namespace` globs: every matching namespace is served, including
one created while the operator starts.

kopf (1.45) lists namespaces once to start serving, then starts its namespace watch with a
second listing whose objects it treats as already known and skips. A namespace created
between the two listings is in neither the first listing nor the watch's events, so kopf
never serves it until the operator restarts; the same happens to namespaces created while
the watch re-lists after `410 Gone`. On a loaded API server the gap is seconds wide (CI
lost a freshly created team namespace this way). `tests/e2e/operator/
test_operator_namespaces.py` widens the gap with a slow proxy and proves the fix.

The fix takes the second listing into account too: a namespace it shows is served, by
the same rule (kopf's `revise_namespaces`) that kopf applies to the first listing and to
watch events. This replaces one function of kopf's observation module, the processor of
namespace events, which kopf looks up by name each time it starts the namespace watch;
`tests/unit/operator/test_namespaces.py` fails if a kopf upgrade moves it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from kopf._cogs.structs import bodies, references
from kopf._core.reactor import observation

_kopf_processor = observation.process_discovered_namespace_event


async def process_namespace_event(
    *,
    raw_event: bodies.RawEvent,
    namespaces: Collection[references.NamespacePattern],
    insights: references.Insights,
    **kwargs: Any,
) -> None:
    """kopf's processor of namespace events, applied to listed namespaces as well."""
    if raw_event["type"] is not None:
        await _kopf_processor(
            raw_event=raw_event, namespaces=namespaces, insights=insights, **kwargs
        )
        return
    async with insights.revised:
        before = set(insights.namespaces)
        observation.revise_namespaces(
            raw_events=[raw_event], insights=insights, namespaces=namespaces
        )
        if insights.namespaces != before:
            insights.revised.notify_all()


def serve_namespaces_listed_on_watch() -> None:
    """Install the processor (idempotent); call before `kopf.run`."""
    observation.process_discovered_namespace_event = process_namespace_event
