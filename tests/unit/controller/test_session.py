"""kopf's connection bound: room for every watch stream of the scope plus the requests."""

from __future__ import annotations

import pytest

from agentfleet.operator.config import OperatorConfig
from agentfleet.operator.session import (
    CLUSTER_STREAMS,
    REQUEST_CONNECTIONS,
    STREAMS_PER_NAMESPACE,
    connection_limit,
)

pytestmark = pytest.mark.unit


def test_one_cluster_wide_scope() -> None:
    config = OperatorConfig(all_namespaces=True)
    assert connection_limit(config) == REQUEST_CONNECTIONS + STREAMS_PER_NAMESPACE + CLUSTER_STREAMS


def test_each_listed_namespace_adds_its_watch_streams() -> None:
    config = OperatorConfig(namespaces=("team-a", "team-b", "team-c"))
    assert connection_limit(config) == (
        REQUEST_CONNECTIONS + 3 * STREAMS_PER_NAMESPACE + CLUSTER_STREAMS
    )


def test_globs_leave_it_unbounded() -> None:
    # A stream per matching namespace, however many appear: no bound could be safe.
    assert connection_limit(OperatorConfig(namespaces=("team-*",))) is None
