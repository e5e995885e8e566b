"""Namespaces matched by a glob are served whenever they appear, including while the
operator is starting (a team namespace created during a rollout of the operator must not
be ignored until the next restart)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import httpx
import pytest
from aiohttp import web
from kubernetes import client

from agentfleet.dev.localenv import ManagedProcess, find_binary, free_port
from agentfleet.dev.localenv.waiting import wait_for

from .conftest import operator_command

pytestmark = pytest.mark.e2e

WATCHED = "workerpools.v1alpha1.agentfleet.dev"
CREATE_EVERY_SECONDS = 0.05
LIST_DELAY_SECONDS = 2.0
KEEP_CREATING_AFTER_HEALTHY_SECONDS = 3 * LIST_DELAY_SECONDS


class SlowListingProxy:
    """The API server as a loaded one answers: every LIST of namespaces takes seconds.

    `kubectl proxy` holds the credentials; in front of it, this HTTP proxy forwards every
    request as it comes (watch streams stream) but holds a namespace listing for
    `delay` seconds first. kopf lists namespaces once to start and once more to begin its
    watch, so a namespace created between the two listings is certain to exist.
    """

    def __init__(self, kubeconfig: Path, workdir: Path, delay: float) -> None:
        self.delay = delay
        self.upstream_port = free_port()
        self.port = free_port()
        self.kubeconfig = workdir / "slow-kubeconfig"
        self._kubectl = ManagedProcess(
            "kubectl-proxy",
            [
                str(find_binary("kubectl")),
                f"--kubeconfig={kubeconfig}",
                "proxy",
                f"--port={self.upstream_port}",
                "--disable-filter=true",
            ],
            workdir,
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def __enter__(self) -> SlowListingProxy:
        self._kubectl.start()
        upstream = f"http://127.0.0.1:{self.upstream_port}"
        self._kubectl.wait_until(lambda: httpx.get(f"{upstream}/version").is_success, 30, "proxy")
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(upstream), self._loop).result(30)
        self.kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters: [{{name: slow, cluster: {{server: 'http://127.0.0.1:{self.port}'}}}}]\n"
            "users: [{name: slow, user: {}}]\n"
            "contexts: [{name: slow, context: {cluster: slow, user: slow}}]\n"
            "current-context: slow\n"
        )
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._kubectl.stop()

    async def _serve(self, upstream: str) -> None:
        # No connection limit: kopf holds a watch per resource and namespace open.
        self._session = aiohttp.ClientSession(
            upstream,
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=None),
            auto_decompress=False,
        )
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _close(self) -> None:
        # The upstream session first: it ends the watch streams the handlers relay.
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        listing = request.query.get("watch") not in ("true", "1")
        if request.method == "GET" and request.path == "/api/v1/namespaces" and listing:
            await asyncio.sleep(self.delay)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        body = await request.read()
        async with self._session.request(
            request.method, request.path_qs, headers=headers, data=body or None
        ) as answer:
            response = web.StreamResponse(
                status=answer.status,
                headers={k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS},
            )
            await response.prepare(request)
            async for chunk in answer.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response


HOP_HEADERS = {"host", "connection", "transfer-encoding", "content-length", "keep-alive"}


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def prefix(core: client.CoreV1Api) -> Iterator[str]:
    prefix = f"afns{uuid.uuid4().hex[:6]}-"
    yield prefix
    for namespace in core.list_namespace().items:
        if namespace.metadata.name.startswith(prefix):
            core.delete_namespace(namespace.metadata.name)


def test_namespaces_created_while_the_operator_starts_are_served(
    kubeconfig: Path, crds: None, core: client.CoreV1Api, prefix: str, tmp_path: Path
) -> None:
    with SlowListingProxy(kubeconfig, tmp_path, LIST_DELAY_SECONDS) as proxy:
        _watches_every_namespace(proxy.kubeconfig, core, prefix, tmp_path)


def _watches_every_namespace(
    kubeconfig: Path, core: client.CoreV1Api, prefix: str, tmp_path: Path
) -> None:
    health = free_port()
    command = operator_command(
        "--namespace",
        f"{prefix}*",
        "--standalone",
        "--verbose",
        "--health-port",
        str(health),
        "--metrics-port",
        "0",
    )
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    process = ManagedProcess("namespaces-operator", command, tmp_path, env=env)
    created: list[str] = []
    healthy = threading.Event()

    def keep_creating() -> None:
        # From the moment the process starts until a while after it is healthy: some of
        # these land between kopf's first listing of namespaces and its watch.
        stop_at: float | None = None
        while stop_at is None or time.monotonic() < stop_at:
            name = f"{prefix}{len(created)}"
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
            created.append(name)
            if stop_at is None and healthy.is_set():
                stop_at = time.monotonic() + KEEP_CREATING_AFTER_HEALTHY_SECONDS
            time.sleep(CREATE_EVERY_SECONDS)

    creator = threading.Thread(target=keep_creating, daemon=True)
    process.start()
    creator.start()
    try:
        process.wait_until(lambda: _healthy(health), 60, "healthy")
        healthy.set()
        creator.join(timeout=120)
        assert not creator.is_alive(), "creating namespaces did not finish"

        def unserved() -> list[str]:
            log = process.log_path.read_text(errors="replace")
            return [
                name
                for name in created
                if f"Starting the watch-stream for {WATCHED} in {name!r}" not in log
            ]

        missing: list[str] = []

        def all_served() -> bool:
            missing[:] = unserved()
            return not missing

        try:
            wait_for(all_served, 60, "a watch in every namespace created", interval=0.5)
        except Exception:
            raise AssertionError(
                f"{len(missing)} of {len(created)} namespaces never watched: {missing}"
            ) from None
    finally:
        process.stop()


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).is_success
    except httpx.HTTPError:
        return False
