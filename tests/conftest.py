"""Fixtures that start real servers: the local cluster (control plane and a real node),
Redis and Prometheus.

A missing binary, image or kernel feature fails the test run with what is missing and
how to get it; nothing is skipped, so CI (CI=true) can never pass without having run
against the real parts.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service

from agentfleet.dev.localenv import (
    BinaryNotFoundError,
    ControlPlane,
    PrometheusServer,
    RedisServer,
)
from agentfleet.dev.localenv.cluster import LocalCluster
from agentfleet.dev.localenv.node import NodeUnavailableError
from agentfleet.dev.localenv.waiting import wait_for

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
REPO_ROOT = Path(__file__).resolve().parents[1]


def _missing(exc: Exception) -> None:
    pytest.fail(f"required part missing{' in CI' if IN_CI else ''}: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[LocalCluster]:
    """One local cluster per test session: etcd, kube-apiserver, kube-controller-manager,
    kube-scheduler and one Ready node (containerd, kubelet, kube-proxy, CoreDNS)."""
    try:
        local = LocalCluster()
        local.start()
    except (BinaryNotFoundError, NodeUnavailableError) as exc:
        _missing(exc)
    try:
        yield local
    finally:
        healthy = local.healthy()
        logs = local.logs() if not healthy else ""
        local.stop()
        if not healthy:
            pytest.fail(f"a cluster component died during the run:\n{logs}")


@pytest.fixture(scope="session")
def controlplane(local_cluster: LocalCluster) -> ControlPlane:
    return local_cluster.controlplane


@pytest.fixture(scope="session")
def kubeconfig(local_cluster: LocalCluster) -> Path:
    return local_cluster.kubeconfig


@pytest.fixture(scope="session")
def api_client(kubeconfig: Path) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(kubeconfig))
    yield api
    api.close()


@pytest.fixture
def namespace(
    api_client: client.ApiClient, request: pytest.FixtureRequest, local_cluster: LocalCluster
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
        print(local_cluster.logs(20))
    core.delete_namespace(name)
    # The node is shared by the whole session: the next test gets its CPU back only once
    # this test's Pods are gone (namespace deletion itself may wait on finalizers).
    wait_for(
        lambda: not core.list_namespaced_pod(name).items,
        90,
        f"the Pods of namespace {name} to be gone",
    )


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


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    """Debian's chromium, headless, through its chromedriver (the status page's tests)."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.fail(
            "chromium and chromedriver are needed (scripts/install-servers.sh installs "
            "Debian's chromium and chromium-driver)",
            pytrace=False,
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1100,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    try:
        chrome = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    except WebDriverException as exc:
        pytest.fail(f"chromium did not start: {exc.msg}", pytrace=False)
    try:
        yield chrome
    finally:
        chrome.quit()
