"""Fixtures that start real servers: the control plane, Redis and Prometheus.

A missing binary fails the test run with the command that installs it; nothing is
skipped, so CI (CI=true) can never pass without having run against the real parts.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from agentfleet.localenv import (
    BinaryNotFoundError,
    ControlPlane,
    PrometheusServer,
    RedisServer,
)
from agentfleet.localenv.waiting import wait_for

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
REPO_ROOT = Path(__file__).resolve().parents[1]


def _missing(exc: BinaryNotFoundError) -> None:
    pytest.fail(f"required server binary missing{' in CI' if IN_CI else ''}: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def controlplane() -> Iterator[ControlPlane]:
    try:
        plane = ControlPlane()
        plane.start()
    except BinaryNotFoundError as exc:
        _missing(exc)
    try:
        yield plane
    finally:
        healthy = plane.healthy()
        logs = plane.logs() if not healthy else ""
        plane.stop()
        if not healthy:
            pytest.fail(f"a control-plane component died during the run:\n{logs}")


@pytest.fixture(scope="session")
def kubeconfig(controlplane: ControlPlane) -> Path:
    return controlplane.kubeconfig


@pytest.fixture(scope="session")
def api_client(kubeconfig: Path) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(kubeconfig))
    yield api
    api.close()


@pytest.fixture
def namespace(
    api_client: client.ApiClient, request: pytest.FixtureRequest, controlplane: ControlPlane
) -> Iterator[str]:
    """A fresh namespace per test, with its default ServiceAccount in place."""
    core = client.CoreV1Api(api_client)
    name = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_for(
        lambda: core.read_namespaced_service_account("default", name),
        30,
        f"default ServiceAccount in {name}",
    )
    yield name
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        print(controlplane.logs(20))
    core.delete_namespace(name)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    try:
        server = RedisServer().start()
    except BinaryNotFoundError as exc:
        _missing(exc)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def prometheus_server() -> Iterator[PrometheusServer]:
    try:
        server = PrometheusServer(scrape_interval="1s").start()
    except BinaryNotFoundError as exc:
        _missing(exc)
    yield server
    server.stop()
