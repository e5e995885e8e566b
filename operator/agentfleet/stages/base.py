"""What every stage handler shares: error handling that never leaks a secret, naming."""

from __future__ import annotations

import logging
from pathlib import PurePosixPath
from typing import ClassVar

from agentfleet.agents import RedactingLogger
from agentfleet.api import Stage
from agentfleet.github import RepoClient, stage_permissions
from agentfleet.github.intake import INHERITED_PAYLOAD_KEYS
from agentfleet.queue import WorkItem
from agentfleet.stages.environment import StageEnvironment
from agentfleet.worker.handlers import HandlerContext, HandlerResult

_ERROR_LIMIT = 2000


def issue_branch(number: int) -> str:
    return f"agentfleet/issue-{number}"


def docs_branch(number: int) -> str:
    return f"agentfleet/docs-issue-{number}"


def is_test_path(path: str) -> bool:
    parts = PurePosixPath(path).parts
    name = parts[-1] if parts else ""
    return (
        any(part in {"tests", "test", "__tests__", "spec"} for part in parts[:-1])
        or name.startswith("test_")
        or name.endswith(("_test.py", "_test.go"))
        or ".test." in name
        or ".spec." in name
    )


def stage_item(
    parent: WorkItem, stage: Stage, issue: int, extra: dict[str, object] | None = None
) -> WorkItem:
    """A follow-up item for one issue of the parent's project, keyed like intake keys it."""
    return WorkItem(
        id=f"{parent.namespace}/{parent.project}/issue-{issue}/{stage.value}",
        namespace=parent.namespace,
        project=parent.project,
        stage=stage,
        lane=parent.lane,
        payload={
            **{k: v for k, v in parent.payload.items() if k in INHERITED_PAYLOAD_KEYS},
            "issue": issue,
            **(extra or {}),
        },
        pipeline=parent.pipeline,
        trace=parent.trace,
    )


def token_cap(item: WorkItem) -> int | None:
    """The Project's per-item token budget, when intake put it in the payload."""
    value = item.payload.get("token_budget")
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else None


class StageHandler:
    """Runs `process` with the item's GitHub client; any failure becomes a redacted,
    retryable `failed` result.

    The client acts with `stage`'s GitHub permissions (with a GitHub App, an installation
    token minted for this item's repository and those permissions, revoked when `process`
    returns), whatever stage the item names: the permissions follow the code that runs.
    """

    stage: ClassVar[Stage]

    def __init__(self, env: StageEnvironment) -> None:
        self.env = env

    async def handle(self, item: WorkItem, context: HandlerContext) -> HandlerResult:
        log = RedactingLogger(context.logger, self.env.redactor)
        try:
            async with self.env.github(item, stage_permissions(self.stage)) as repo:
                return await self.process(item, context, log, repo)
        except Exception as exc:
            # The runtime would record repr(exc); errors from git, GitHub or the model can
            # quote credentials, so the text is redacted here first.
            message = self.env.redactor.redact(f"{type(exc).__name__}: {exc}")[:_ERROR_LIMIT]
            log.warning("%s failed: %s", item.id, message)
            return HandlerResult.failed(message)

    async def process(
        self,
        item: WorkItem,
        context: HandlerContext,
        log: logging.LoggerAdapter[logging.Logger],
        repo: RepoClient,
    ) -> HandlerResult:
        raise NotImplementedError
