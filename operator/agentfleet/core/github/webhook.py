"""The GitHub webhook receiver (FastAPI): verified deliveries become work items.

`POST /webhooks/github/{namespace}/{project}` with the Project's webhook secret. The body
size is checked before anything is parsed (Content-Length, then while streaming); the
`X-Hub-Signature-256` HMAC is compared in constant time; unsigned, forged, oversized or
malformed deliveries get a 4xx and enqueue nothing. Enqueue is idempotent on item ids, so
redeliveries and duplicate events do not duplicate work.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import REGISTRY, CollectorRegistry, Counter
from pydantic import ValidationError

from agentfleet.core.github.events import DeliveryError, Enqueue, ProjectIntake, webhook_work

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
"""GitHub caps payloads at 25 MB; the events agentfleet handles are a few KB."""

log = logging.getLogger("agentfleet.github.webhook")


@dataclass(frozen=True)
class WebhookTarget:
    project: ProjectIntake
    secret: bytes


Resolve = Callable[[str, str], Awaitable[WebhookTarget | None]]


def signature_matches(secret: bytes, body: bytes, header: str | None) -> bool:
    """Constant-time check of `X-Hub-Signature-256: sha256=<hex>` over the raw body."""
    if not header or not secret:
        return False
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode())


class _TooLarge(Exception):
    pass


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise _TooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _TooLarge
    return bytes(body)


def create_webhook_app(
    resolve: Resolve,
    enqueue: Enqueue,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    registry: CollectorRegistry = REGISTRY,
) -> FastAPI:
    deliveries = Counter(
        "agentfleet_webhook_deliveries",
        "GitHub webhook deliveries by event and outcome (accepted, ignored, rejected_*).",
        ["event", "outcome"],
        registry=registry,
    )
    app = FastAPI(title="agentfleet GitHub webhooks", docs_url=None, redoc_url=None)

    def reject(event: str, status: int, reason: str, detail: str) -> JSONResponse:
        deliveries.labels(event=event, outcome=f"rejected_{reason}").inc()
        log.warning("webhook delivery rejected (%s): %s", reason, detail)
        return JSONResponse({"error": detail}, status_code=status)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/webhooks/github/{namespace}/{project}")
    async def receive(namespace: str, project: str, request: Request) -> JSONResponse:
        event = request.headers.get("x-github-event", "")
        label = event if event in {"issues", "issue_comment", "pull_request", "ping"} else "other"
        try:
            body = await _read_limited(request, max_body_bytes)
        except _TooLarge:
            return reject(label, 413, "too_large", f"body larger than {max_body_bytes} bytes")
        target = await resolve(namespace, project)
        if target is None:
            return reject(label, 404, "unknown_project", f"no webhook for {namespace}/{project}")
        if not signature_matches(target.secret, body, request.headers.get("x-hub-signature-256")):
            return reject(label, 401, "signature", "missing or invalid X-Hub-Signature-256")
        if not event:
            return reject(label, 400, "malformed", "missing X-GitHub-Event")
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return reject(label, 400, "malformed", "body is not JSON")
        if event == "ping":
            deliveries.labels(event=label, outcome="accepted").inc()
            return JSONResponse({"pong": True})
        try:
            items = webhook_work(target.project, event, payload)
        except (ValidationError, DeliveryError) as exc:
            return reject(label, 422, "malformed", f"unusable {event} payload: {exc}")
        new = await enqueue(items) if items else []
        deliveries.labels(event=label, outcome="accepted" if items else "ignored").inc()
        log.info(
            "webhook %s (%s): %d item(s), %d new",
            event,
            request.headers.get("x-github-delivery", "?"),
            len(items),
            len(new),
        )
        return JSONResponse(
            {"items": [item.id for item in items], "enqueued": new}, status_code=202
        )

    return app


class WebhookServer:
    """Serves a webhook app with uvicorn inside the running event loop."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 8080) -> None:
        self.url = f"http://{host}:{port}"
        self.port = port
        self._server = uvicorn.Server(
            uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 10.0) -> None:
        self._task = asyncio.create_task(self._server.serve())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._server.started:
            if self._task.done():
                await self._task
                raise RuntimeError(f"webhook server on {self.url} exited at start")
            if loop.time() > deadline:
                raise TimeoutError(f"webhook server on {self.url} did not start")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
            self._task = None

    async def __aenter__(self) -> WebhookServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
