"""The GitHub webhook receiver (FastAPI): verified deliveries become work items.

`POST /webhooks/github/{namespace}/{project}` with the Project's webhook secret. The body
size is checked before anything is parsed (Content-Length, then while streaming); the
`X-Hub-Signature-256` HMAC is compared in constant time; unsigned, forged, oversized or
malformed deliveries get a 4xx and enqueue nothing. Enqueue is idempotent on item ids, so
redeliveries and duplicate events do not duplicate work.

Mentions, `/agentfleet` commands and assignments (`agentfleet.core.github.triggers`) are
answered here, through the Project's GitHub client: the actor's permission is asked for,
an accepted trigger is enqueued and acknowledged with a reaction, a refused one gets one
short reply (an upsert keyed by the trigger, so a redelivery does not post it twice).
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
from typing import Any, Protocol

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from github import GithubException
from prometheus_client import REGISTRY, CollectorRegistry, Counter
from pydantic import ValidationError

from agentfleet.core.github.client import RepoClient
from agentfleet.core.github.credentials import CredentialsError
from agentfleet.core.github.events import (
    DeliveryError,
    Enqueue,
    ProjectIntake,
    check_repository,
    webhook_work,
)
from agentfleet.core.github.feedback import (
    LOOP_GUARD_MARKER,
    Feedback,
    FeedbackKind,
    decide_feedback,
    read_feedback,
)
from agentfleet.core.github.feedback import needs_permission as feedback_needs_permission
from agentfleet.core.github.triggers import (
    ACKNOWLEDGEMENT,
    Accept,
    Refuse,
    Trigger,
    Verdict,
    decide,
    needs_permission,
    read_trigger,
)
from agentfleet.core.queue.models import PendingFeedback

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
"""GitHub caps payloads at 25 MB; the events agentfleet handles are a few KB."""

log = logging.getLogger("agentfleet.github.webhook")


@dataclass(frozen=True)
class WebhookTarget:
    project: ProjectIntake
    secret: bytes


Resolve = Callable[[str, str], Awaitable[WebhookTarget | None]]
RepoFor = Callable[[str, str], Awaitable[RepoClient]]
"""The GitHub client of a Project (namespace, name) that answers its triggers."""

REFUSAL_MARKER = "refusal"
"""The marker kind of a refused trigger's reply (`trigger=<comment id>` or
`trigger=assigned-<actor>`)."""


class FeedbackStore(Protocol):
    """Where a pull request's feedback waits for its round (`WorkQueue` is one)."""

    async def add_feedback(
        self, namespace: str, project: str, pull: int, key: str, entry: dict[str, Any]
    ) -> bool: ...

    async def pending_feedback(
        self, namespace: str, project: str, pull: int
    ) -> PendingFeedback: ...


class TriggerUnanswerable(Exception):
    """The Project's GitHub client cannot be had, or GitHub could not be asked what a
    trigger needs; the delivery is answered 503 (GitHub shows it failed; redeliver it)."""


async def answer_trigger(
    project: ProjectIntake, trigger: Trigger, repo: RepoClient, enqueue: Enqueue
) -> tuple[Verdict, list[str]]:
    """Decide a trigger with what GitHub says, then act on it: enqueue and react, or reply.
    Returns the verdict and the ids that were new to the queue."""
    try:
        self_login = await asyncio.to_thread(lambda: repo.login)
        permission = None
        if needs_permission(project, trigger, self_login):
            permission = await asyncio.to_thread(repo.permission, trigger.actor)
        verdict = decide(project, trigger, self_login, permission)
        new: list[str] = []
        number = trigger.issue.number
        if isinstance(verdict, Accept):
            new = await enqueue([verdict.item])
            await asyncio.to_thread(repo.react, number, ACKNOWLEDGEMENT, trigger.comment_id)
        elif isinstance(verdict, Refuse):
            key = trigger.comment_id or f"assigned-{trigger.actor}"
            await asyncio.to_thread(
                repo.upsert_comment, number, verdict.reply, REFUSAL_MARKER, trigger=key
            )
    except (GithubException, CredentialsError, OSError) as error:
        raise TriggerUnanswerable(f"{type(error).__name__}: {error}") from error
    return verdict, new


async def answer_feedback(
    project: ProjectIntake,
    feedback: Feedback,
    repo: RepoClient,
    enqueue: Enqueue,
    store: FeedbackStore,
) -> tuple[Verdict, list[str]]:
    """Decide feedback on a pull request with what GitHub and the queue say, then act: keep
    it for the next round, enqueue that round and react; or reply (in the review thread,
    or on the pull request)."""
    namespace, name, pull = project.namespace, project.name, feedback.pull
    try:
        self_login = await asyncio.to_thread(lambda: repo.login)
        if feedback.branch is None and feedback.actor.lower() != self_login.lower():
            info = await asyncio.to_thread(repo.pull, pull)
            feedback = feedback.model_copy(update={"branch": info.head, "fork": info.fork})
        permission = None
        if feedback_needs_permission(feedback, self_login):
            permission = await asyncio.to_thread(repo.permission, feedback.actor)
        pending = await store.pending_feedback(namespace, name, pull)
        verdict = decide_feedback(project, feedback, self_login, permission, pending.rounds)
        new: list[str] = []
        if isinstance(verdict, Accept):
            await store.add_feedback(namespace, name, pull, feedback.key, feedback.entry)
            new = await enqueue([verdict.item])
            if feedback.comment_id is not None:
                if feedback.kind is FeedbackKind.REVIEW_COMMENT:
                    await asyncio.to_thread(
                        repo.react_to_review_comment, pull, feedback.comment_id, ACKNOWLEDGEMENT
                    )
                else:
                    await asyncio.to_thread(repo.react, pull, ACKNOWLEDGEMENT, feedback.comment_id)
        elif isinstance(verdict, Refuse):
            if verdict.reason == "loop_guard":
                await asyncio.to_thread(
                    repo.upsert_comment, pull, verdict.reply, LOOP_GUARD_MARKER, pull=pull
                )
            elif feedback.kind is FeedbackKind.REVIEW_COMMENT and feedback.comment_id:
                await asyncio.to_thread(
                    repo.reply_to_review_comment, pull, feedback.comment_id, verdict.reply
                )
            else:
                await asyncio.to_thread(
                    repo.upsert_comment, pull, verdict.reply, REFUSAL_MARKER, trigger=feedback.key
                )
    except (GithubException, CredentialsError, OSError) as error:
        raise TriggerUnanswerable(f"{type(error).__name__}: {error}") from error
    return verdict, new


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
    repo_for: RepoFor | None = None,
    feedback_store: FeedbackStore | None = None,
) -> FastAPI:
    """The receiver. Without `repo_for`, triggers (mentions, commands, assignments) cannot
    be answered and are ignored; labels and merged pull requests still work."""
    deliveries = Counter(
        "agentfleet_webhook_deliveries",
        "GitHub webhook deliveries by event and outcome (accepted, ignored, rejected_*).",
        ["event", "outcome"],
        registry=registry,
    )
    triggers = Counter(
        "agentfleet_webhook_triggers",
        "Mentions, /agentfleet commands and assignments by kind, verdict (accepted, "
        "refused, ignored) and reason.",
        ["kind", "verdict", "reason"],
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
        known = {
            "issues",
            "issue_comment",
            "pull_request",
            "pull_request_review_comment",
            "check_run",
            "ping",
        }
        label = event if event in known else "other"
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
            check_repository(target.project, payload)
            items = webhook_work(target.project, event, payload)
            trigger = read_trigger(target.project, event, payload)
            feedbacks = read_feedback(event, payload)
        except (ValidationError, DeliveryError) as exc:
            return reject(label, 422, "malformed", f"unusable {event} payload: {exc}")
        new = await enqueue(items) if items else []
        answer: dict[str, str] | None = None
        if trigger is not None and repo_for is None:
            log.warning(
                "webhook %s: a %s trigger, but no GitHub client answers", event, trigger.kind
            )
        elif trigger is not None and repo_for is not None:
            try:
                repo = await repo_for(namespace, project)
                verdict, fresh = await answer_trigger(target.project, trigger, repo, enqueue)
            except (TriggerUnanswerable, CredentialsError) as exc:
                return reject(label, 503, "github", f"GitHub could not be asked: {exc}")
            reason = getattr(verdict, "reason", "")
            triggers.labels(kind=trigger.kind, verdict=verdict.verdict, reason=reason).inc()
            answer = {"kind": trigger.kind.value, "verdict": verdict.verdict, "reason": reason}
            if isinstance(verdict, Accept):
                items.append(verdict.item)
                new += fresh
        if feedbacks and (repo_for is None or feedback_store is None):
            log.warning("webhook %s: pull request feedback, but nothing answers it", event)
        elif feedbacks and repo_for is not None and feedback_store is not None:
            try:
                repo = await repo_for(namespace, project)
                for feedback in feedbacks:
                    verdict, fresh = await answer_feedback(
                        target.project, feedback, repo, enqueue, feedback_store
                    )
                    reason = getattr(verdict, "reason", "")
                    triggers.labels(
                        kind=feedback.kind, verdict=verdict.verdict, reason=reason
                    ).inc()
                    answer = {
                        "kind": feedback.kind.value,
                        "verdict": verdict.verdict,
                        "reason": reason,
                    }
                    if isinstance(verdict, Accept):
                        items.append(verdict.item)
                        new += fresh
            except (TriggerUnanswerable, CredentialsError) as exc:
                return reject(label, 503, "github", f"GitHub could not be asked: {exc}")
        deliveries.labels(event=label, outcome="accepted" if items else "ignored").inc()
        log.info(
            "webhook %s (%s): %d item(s), %d new%s",
            event,
            request.headers.get("x-github-delivery", "?"),
            len(items),
            len(new),
            f", {answer['kind']} {answer['verdict']} {answer['reason']}".rstrip() if answer else "",
        )
        answered: dict[str, object] = {"items": [item.id for item in items], "enqueued": new}
        if answer is not None:
            answered["trigger"] = answer
        return JSONResponse(answered, status_code=202)

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
