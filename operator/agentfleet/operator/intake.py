"""GitHub intake, run by the operator: each Project polled on its interval, and the
webhook receiver.

`install_intake` is an operator extension (`create_registry(config, extensions=[...])`):

- a kopf daemon per Project takes its labelled issues in every
  `spec.intake.pollIntervalSeconds` through the intake library (`poll_project`), and at
  once when the Project's spec changes (resumed, new labels). kopf runs daemons only on
  the active replica, so peered replicas poll once between them;
- every replica serves the webhook app on `--webhook-port`; a delivery's Project and
  webhook secret are read from the API server when it arrives, so a standby answers as
  well as the active replica;
- the outcome is the Project's `Intake` condition (reason and message on failure; the
  one status field intake owns, server-side applied as `agentfleet-intake`), an Event
  when it changes, and the `agentfleet_intake_*` metrics. A Project whose
  credentials or repository fail affects no other Project.

Enqueue is idempotent on item ids, so an issue seen by many polls and deliveries is one
item.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fnmatch
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import kopf
from github import GithubException
from prometheus_client import Counter
from pydantic import ValidationError
from redis.exceptions import RedisError

from agentfleet.core.api.base import API_GROUP, API_VERSION
from agentfleet.core.api.conditions import Condition, ConditionStatus, find_condition, set_condition
from agentfleet.core.api.project import ProjectSpec, ProjectStatus
from agentfleet.core.github import (
    INTAKE_PERMISSIONS,
    CredentialsError,
    GitHubCredentials,
    Pacing,
    ProjectIntake,
    RepoClient,
    TriggerUnanswerable,
    WebhookServer,
    WebhookTarget,
    create_webhook_app,
    credentials_from_secret_data,
    poll_project,
    repository_endpoint,
)
from agentfleet.core.queue import CONNECTION_ERRORS, WorkItem, WorkQueue
from agentfleet.operator.config import OperatorConfig
from agentfleet.operator.context import OperatorContext, context_of
from agentfleet.operator.events import ObjectRef
from agentfleet.operator.kube import INTAKE as INTAKE_MANAGER
from agentfleet.operator.kube import TRANSPORT_ERRORS, Kube, KubeError
from agentfleet.operator.logic import (
    PROJECT_INTAKE_FIELDS,
    Problem,
    SecretLookup,
    credentials_problem,
    with_phase,
)

log = logging.getLogger("agentfleet.intake")

PROJECTS = (API_GROUP, API_VERSION, "projects")
INTAKE = "Intake"
"""The Project condition intake owns."""
MAX_CONCURRENT_POLLS = 8
"""Polls running at once: each holds a thread while PyGithub (a blocking client) talks to
GitHub."""
RETRY_SECONDS = 30.0
"""Next attempt after the Project could not be read (API server outage)."""
WEBHOOK_PATH = "/webhooks/github/{namespace}/{project}"
KUBERNETES_ERRORS: tuple[type[Exception], ...] = (KubeError, *TRANSPORT_ERRORS)
"""What reading or writing a Project or Secret raises during an API server outage."""

POLLS = Counter(
    "agentfleet_intake_polls",
    "Intake polls of a Project's repository by result (ok, paused: skipped on emergency "
    "stop, failed: see the Project's Intake condition).",
    ["namespace", "project", "result"],
)
ITEMS = Counter(
    "agentfleet_intake_items",
    "Work items intake enqueued that were new to the queue, by source (poll, webhook).",
    ["namespace", "project", "source"],
)


# ------------------------------------------------------------------------ decisions


@dataclass(frozen=True)
class IntakeState:
    """What the Intake condition says after one attempt."""

    ready: bool
    reason: str
    message: str

    @classmethod
    def failed(cls, problem: Problem) -> IntakeState:
        return cls(False, problem.reason, problem.message)


def webhook_path(namespace: str, project: str) -> str:
    return WEBHOOK_PATH.format(namespace=namespace, project=project)


PAUSED = IntakeState(
    False,
    "Paused",
    "emergency stop: no issues are taken in, by polling or webhook, until spec.paused is false",
)
NO_QUEUE = IntakeState(
    False,
    "NoWorkQueue",
    "the operator runs without --redis-url, so there is no queue to take issues into",
)


def polling_state(namespace: str, name: str, spec: ProjectSpec, webhook_port: int) -> IntakeState:
    api_url, full_name = repository_endpoint(spec.repository, spec.github_api_url)
    labels = ", ".join(spec.intake.labels)
    message = (
        f"open issues of {full_name} ({api_url}) labelled {labels} are taken in every "
        f"{spec.intake.poll_interval_seconds}s"
    )
    if spec.intake.webhook.enabled:
        message += (
            f"; webhook deliveries at :{webhook_port}{webhook_path(namespace, name)}"
            if webhook_port
            else "; webhook enabled but the operator serves no --webhook-port"
        )
    return IntakeState(True, "Polling", message)


def github_problem(error: Exception, api_url: str, full_name: str) -> Problem:
    """A failed GitHub call as a condition reason and a message a person can act on."""
    if isinstance(error, GithubException):
        data = error.data if isinstance(error.data, Mapping) else {}
        detail = str(data.get("message") or error.data or "")
        reasons = {401: "GitHubUnauthorized", 403: "GitHubForbidden", 404: "RepositoryNotFound"}
        reason = reasons.get(error.status, "GitHubError")
        return Problem(reason, f"{api_url} answered {error.status} for {full_name}: {detail}")
    if isinstance(error, ValueError):
        return Problem("InvalidRepository", str(error))
    return Problem("GitHubUnreachable", f"{api_url} for {full_name}: {type(error).__name__}")


def secret_credentials(
    secret_name: str, lookup: SecretLookup, secret: Mapping[str, Any] | None
) -> GitHubCredentials | Problem:
    """The Project's GitHub credentials, or why there are none."""
    problem = credentials_problem(secret_name, lookup)
    if problem is not None:
        return problem
    try:
        return credentials_from_secret_data((secret or {}).get("data") or {}, base64_encoded=True)
    except CredentialsError as error:
        return Problem("CredentialsInvalid", f"credentials Secret {secret_name}: {error}")


def with_intake_condition(
    status: ProjectStatus, state: IntakeState, now: datetime, generation: int | None
) -> ProjectStatus:
    conditions = set_condition(
        status.conditions, INTAKE, state.ready, state.reason, state.message, now, generation
    )
    return with_phase(status.model_copy(update={"conditions": conditions}))


def transition_event(before: Condition | None, state: IntakeState) -> tuple[str, str] | None:
    """(Event type, reason) when the condition changed enough to tell people: it became
    ready, was paused, or failed for a new reason."""
    status = ConditionStatus.TRUE if state.ready else ConditionStatus.FALSE
    if before is not None and (before.status, before.reason) == (status, state.reason):
        return None
    if state.ready:
        return "Normal", "IntakeStarted"
    if state.reason == PAUSED.reason:
        return "Normal", "IntakePaused"
    return "Warning", state.reason


def serves_namespace(config: OperatorConfig, namespace: str) -> bool:
    return config.all_namespaces or any(
        fnmatch.fnmatchcase(namespace, pattern) for pattern in config.namespaces
    )


def _status(raw: Mapping[str, Any] | None) -> ProjectStatus:
    try:
        return ProjectStatus.model_validate(raw or {})
    except ValidationError:
        return ProjectStatus()


# --------------------------------------------------------------------------- shell


async def project_credentials(
    kube: Kube, namespace: str, spec: ProjectSpec
) -> tuple[tuple[Any, ...], GitHubCredentials] | Problem:
    """The Project's GitHub credentials, read from its Secret, and what a client made from
    them is keyed by (the Secret's version, the repository, the API URL); or why not."""
    secret_name = spec.credentials_secret_ref.name
    lookup, secret = await kube.read_secret(namespace, secret_name)
    credentials = secret_credentials(secret_name, lookup, secret)
    if isinstance(credentials, Problem):
        return credentials
    if secret is None:
        raise RuntimeError("the credentials Secret was found missing after it was read")
    fingerprint = (
        secret["metadata"].get("resourceVersion"),
        spec.repository,
        spec.github_api_url,
    )
    return fingerprint, credentials


def project_client(credentials: GitHubCredentials, spec: ProjectSpec) -> RepoClient:
    """A client of the Project's repository as intake uses it (`INTAKE_PERMISSIONS`: reads
    issues and pull requests, writes issues and comments)."""
    return RepoClient(
        credentials,
        spec.repository,
        spec.github_api_url,
        Pacing(),
        permissions=INTAKE_PERMISSIONS,
    )


class _QueueUnavailable(Exception):
    """Redis refused the enqueue (told apart from GitHub's connection errors)."""


class Intake:
    """Polls Projects, answers webhook lookups, enqueues, reports; one per operator."""

    def __init__(self, context: OperatorContext) -> None:
        self.kube = context.kube
        self.queue: WorkQueue | None = context.queue
        self.events = context.events
        self.config = context.config
        self.wakes: dict[tuple[str, str], asyncio.Event] = {}
        self.polled_generation: dict[tuple[str, str], int] = {}
        self._clients: dict[tuple[str, str], tuple[tuple[Any, ...], RepoClient]] = {}
        self._gate = asyncio.Semaphore(MAX_CONCURRENT_POLLS)

    async def run(self, namespace: str, name: str) -> None:
        """Poll the Project until cancelled: on its interval, and when woken."""
        key = (namespace, name)
        wake = self.wakes.setdefault(key, asyncio.Event())
        try:
            while True:
                wake.clear()
                interval = await self.poll(namespace, name)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), interval)
        finally:
            self.wakes.pop(key, None)
            self.polled_generation.pop(key, None)
            self._forget_client(key)

    def spec_changed(self, namespace: str, name: str, generation: int) -> None:
        """A new generation of the Project: take issues in now, not at the next tick."""
        key = (namespace, name)
        wake = self.wakes.get(key)
        if wake is not None and generation > self.polled_generation.get(key, 0):
            wake.set()

    async def poll(self, namespace: str, name: str) -> float:
        """One intake attempt; returns the seconds until the next."""
        try:
            return await self._poll(namespace, name)
        except KUBERNETES_ERRORS as error:
            log.warning("intake of %s/%s: Kubernetes API: %s", namespace, name, error)
            return RETRY_SECONDS

    async def _poll(self, namespace: str, name: str) -> float:
        body = await self.kube.get_custom(namespace, "projects", name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return RETRY_SECONDS
        generation: int = body["metadata"].get("generation", 0)
        self.polled_generation[(namespace, name)] = generation
        try:
            spec = ProjectSpec.model_validate(body.get("spec") or {})
        except ValidationError:
            # The reconciler reports it (Ready=False, InvalidSpec); nothing to take in.
            return RETRY_SECONDS
        state, result = await self._take_in(namespace, name, spec)
        POLLS.labels(namespace, name, result).inc()
        await self._report(body, state, generation)
        return float(spec.intake.poll_interval_seconds)

    async def _take_in(
        self, namespace: str, name: str, spec: ProjectSpec
    ) -> tuple[IntakeState, str]:
        if spec.paused:
            return PAUSED, "paused"
        if self.queue is None:
            return NO_QUEUE, "failed"
        found = await self._credentials(namespace, spec)
        if isinstance(found, Problem):
            return IntakeState.failed(found), "failed"
        fingerprint, credentials = found
        project = ProjectIntake.from_spec(namespace, name, spec)
        try:
            async with self._gate:
                repo = await asyncio.to_thread(
                    self._client, (namespace, name), fingerprint, credentials, spec
                )
                new = await poll_project(project, repo, self._enqueue_polled)
        except _QueueUnavailable as error:
            message = f"the work queue cannot be written: {error}"
            return IntakeState(False, "QueueUnavailable", message), "failed"
        # OSError covers what requests raises when GitHub cannot be reached.
        except (GithubException, OSError, ValueError) as error:
            self._forget_client((namespace, name))
            api_url, full_name = repository_endpoint(spec.repository, spec.github_api_url)
            problem = github_problem(error, api_url, full_name)
            log.warning("intake of %s/%s failed: %s", namespace, name, problem.message)
            return IntakeState.failed(problem), "failed"
        if new:
            log.info("intake of %s/%s enqueued %s", namespace, name, ", ".join(new))
        return polling_state(namespace, name, spec, self.config.webhook_port), "ok"

    async def _credentials(
        self, namespace: str, spec: ProjectSpec
    ) -> tuple[tuple[Any, ...], GitHubCredentials] | Problem:
        return await project_credentials(self.kube, namespace, spec)

    async def repo_for(self, namespace: str, name: str) -> RepoClient:
        """The Project's GitHub client, for answering a webhook trigger (the one polling
        uses; raises TriggerUnanswerable when the Project or its credentials are unusable)."""
        try:
            body = await self.kube.get_custom(namespace, "projects", name)
        except KUBERNETES_ERRORS as error:
            raise TriggerUnanswerable(f"Kubernetes API: {error}") from error
        if body is None:
            raise TriggerUnanswerable(f"Project {namespace}/{name} is gone")
        try:
            spec = ProjectSpec.model_validate(body.get("spec") or {})
            found = await self._credentials(namespace, spec)
        except ValidationError as error:
            raise TriggerUnanswerable(f"Project {namespace}/{name} is invalid") from error
        except KUBERNETES_ERRORS as error:
            raise TriggerUnanswerable(f"Kubernetes API: {error}") from error
        if isinstance(found, Problem):
            raise TriggerUnanswerable(found.message)
        fingerprint, credentials = found
        async with self._gate:
            return await asyncio.to_thread(
                self._client, (namespace, name), fingerprint, credentials, spec
            )

    def _client(
        self,
        key: tuple[str, str],
        fingerprint: tuple[Any, ...],
        credentials: GitHubCredentials,
        spec: ProjectSpec,
    ) -> RepoClient:
        """The Project's client, rebuilt when its Secret, repository or API URL change
        (with a GitHub App, its installation token reaches the Project's repository only,
        reads issues and pull requests only, and is replaced shortly before it expires)."""
        cached = self._clients.get(key)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        self._forget_client(key)
        client = project_client(credentials, spec)
        self._clients[key] = (fingerprint, client)
        return client

    def _forget_client(self, key: tuple[str, str]) -> None:
        cached = self._clients.pop(key, None)
        if cached is not None:
            # Closing revokes a GitHub App's installation token: an HTTP call, which must
            # not hold the event loop (this runs from it, often because GitHub is slow).
            threading.Thread(
                target=cached[1].close, name="close-github-client", daemon=True
            ).start()

    async def _enqueue_polled(self, items: Sequence[WorkItem]) -> list[str]:
        try:
            return await self.enqueue("poll", items)
        except (RedisError, *CONNECTION_ERRORS) as error:
            raise _QueueUnavailable(f"{type(error).__name__}: {error}") from error

    async def enqueue(self, source: str, items: Sequence[WorkItem]) -> list[str]:
        if self.queue is None:
            raise RuntimeError("webhook intake needs the work queue (--redis-url)")
        new = await self.queue.enqueue(*items)
        fresh = set(new)
        for item in items:
            if item.id in fresh:
                ITEMS.labels(item.namespace, item.project, source).inc()
        return new

    async def _report(self, body: Mapping[str, Any], state: IntakeState, generation: int) -> None:
        meta = body["metadata"]
        now = datetime.now(UTC).replace(microsecond=0)
        previous = _status(body.get("status"))
        updated = with_intake_condition(previous, state, now, generation)
        if updated == previous:
            return
        await self.kube.apply_status(
            meta["namespace"],
            "projects",
            meta["name"],
            PROJECT_INTAKE_FIELDS.select(updated.to_wire()),
            INTAKE_MANAGER,
        )
        event = transition_event(find_condition(previous.conditions, INTAKE), state)
        if event is not None:
            reference = ObjectRef("Project", meta["namespace"], meta["name"], meta["uid"])
            self.events.post(reference, event[0], event[1], state.message, INTAKE_MANAGER)

    async def webhook_target(self, namespace: str, name: str) -> WebhookTarget | None:
        """The Project a delivery is for and its webhook secret, if it takes webhooks."""
        if not serves_namespace(self.config, namespace):
            return None
        body = await self.kube.get_custom(namespace, "projects", name)
        if body is None:
            return None
        try:
            spec = ProjectSpec.model_validate(body.get("spec") or {})
        except ValidationError:
            return None
        reference = spec.intake.webhook.secret_ref
        if not spec.intake.webhook.enabled or reference is None:
            return None
        _, secret = await self.kube.read_secret(namespace, reference.name)
        encoded = ((secret or {}).get("data") or {}).get(reference.key)
        if not encoded:
            log.warning(
                "webhook of %s/%s: Secret %s has no key %r",
                namespace,
                name,
                reference.name,
                reference.key,
            )
            return None
        project = ProjectIntake.from_spec(namespace, name, spec)
        return WebhookTarget(project, base64.b64decode(encoded))

    async def close(self) -> None:
        for key in list(self._clients):
            self._forget_client(key)


def install_intake(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    """Register intake on the operator's registry (an operator `Extension`)."""
    running: dict[str, Any] = {}

    def intake() -> Intake:
        found: Intake = running["intake"]
        return found

    @kopf.on.startup(id="intake_start", registry=registry)
    async def intake_start(memo: kopf.Memo, **_: Any) -> None:
        service = Intake(context_of(memo))
        running["intake"] = service
        if not config.webhook_port:
            return
        if service.queue is None:
            log.error("--webhook-port needs --redis-url: webhook deliveries are not served")
            return
        app = create_webhook_app(
            service.webhook_target,
            partial(service.enqueue, "webhook"),
            repo_for=service.repo_for,
            feedback_store=service.queue,
        )
        # Every interface: in a pod, the Service reaches the operator on the pod's IP.
        server = WebhookServer(app, host="0.0.0.0", port=config.webhook_port)
        await server.start()
        running["server"] = server
        log.info("serving GitHub webhooks on :%d%s", config.webhook_port, WEBHOOK_PATH)

    @kopf.on.cleanup(id="intake_stop", registry=registry)
    async def intake_stop(**_: Any) -> None:
        server: WebhookServer | None = running.pop("server", None)
        if server is not None:
            await server.stop()
        service: Intake | None = running.pop("intake", None)
        if service is not None:
            await service.close()

    @kopf.daemon(*PROJECTS, id="intake", cancellation_timeout=1.0, registry=registry)
    async def intake_daemon(*, namespace: str | None, name: str, **_: Any) -> None:
        await intake().run(namespace or "", name)

    @kopf.on.event(*PROJECTS, id="intake_wake", registry=registry)
    async def intake_wake(
        *, type: str | None, namespace: str | None, name: str, meta: kopf.Meta, **_: Any
    ) -> None:
        if type != "DELETED" and "intake" in running:
            intake().spec_changed(namespace or "", name, meta.get("generation", 0))
