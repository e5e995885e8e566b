"""Two operator replicas with kopf peering: one acts, the other waits, and takes over when
the active one stops."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest
from kubernetes import client

from agentfleet.dev.localenv.waiting import wait_for

if TYPE_CHECKING:
    from .conftest import Objects, RunningOperator

pytestmark = pytest.mark.e2e


@pytest.fixture
def peering_namespace(api_client: client.ApiClient) -> Iterator[str]:
    """Outside the `afop-*` pattern: only the two replicas under test serve it."""
    core = client.CoreV1Api(api_client)
    name = f"afpeer-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


def test_one_replica_is_active_and_the_other_takes_over(
    peering_namespace: str,
    operator_factory: Callable[..., RunningOperator],
    objects_factory: Callable[[str], Objects],
) -> None:
    objects = objects_factory(peering_namespace)
    args = ("--namespace", peering_namespace, "--peering", "agentfleet")
    active = operator_factory("active", *args, "--priority", "200")
    standby = operator_factory("standby", *args, "--priority", "100")
    # kopf starts paused and resumes only when no live peer outranks it.
    wait_for(lambda: "Resuming operations" in active.log(), 30, "the active replica to start")
    objects.create("workerpools", "first", {"stage": "review"})
    wait_for(lambda: objects.deployment("first"), 30, "the active replica to reconcile")
    # The log line follows the API's answer by a moment.
    wait_for(
        lambda: f"{peering_namespace}/first: Created " in active.log(),
        10,
        "the active replica's log",
    )
    assert ": Created " not in standby.log()
    assert "Resuming operations" not in standby.log()

    active.process.stop()
    wait_for(lambda: "Resuming operations" in standby.log(), 30, "the standby to take over")
    objects.create("workerpools", "second", {"stage": "review"})
    wait_for(lambda: objects.deployment("second"), 30, "the new active replica to reconcile")
    wait_for(
        lambda: f"{peering_namespace}/second: Created " in standby.log(),
        10,
        "the new active replica's log",
    )
    assert standby.process.running()
