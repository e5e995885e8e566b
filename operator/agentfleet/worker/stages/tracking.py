"""Keeping an issue's tracking comment (`agentfleet.core.pipeline.tracking`) up to date.

`Tally` counts what one item's agent runs spend (it sits between the runner and the
project's daily budget, which both runtimes report every model call to), and
`update_tracking` edits the comment: read its embedded state, add this item's run, write it
back (one comment per issue, marker `tracking issue=<n>`). A tracking failure is logged and
never fails the work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from github import GithubException
from pydantic import ValidationError

from agentfleet.core.github import RepoClient
from agentfleet.core.github.markers import embed_state, extract_state
from agentfleet.core.pipeline.tracking import TRACKING, Tracking, render
from agentfleet.worker.agents.loop import SpendGate


@dataclass
class Tally:
    """A spend gate that counts one item's turns, tokens and cost, then passes them on."""

    inner: SpendGate | None = None
    turns: int = 0
    tokens: int = 0
    cost_usd: float = 0.0

    async def check(self) -> None:
        if self.inner is not None:
            await self.inner.check()

    async def record(self, tokens: int, cost_usd: float, turns: int = 1) -> None:
        self.turns += turns
        self.tokens += tokens
        self.cost_usd += cost_usd
        if self.inner is not None:
            await self.inner.record(tokens, cost_usd, turns)


def _read(body: str | None, number: int) -> Tracking:
    try:
        return Tracking.model_validate(extract_state(body) or {"issue": number})
    except (ValidationError, ValueError, TypeError):
        return Tracking(issue=number)


def _update(repo: RepoClient, number: int, change: Callable[[Tracking], Tracking]) -> None:
    existing = repo.find_own_comment(number, TRACKING, issue=number)
    tracking = change(_read(existing.body if existing else None, number))
    body = f"{render(tracking, repo.html_url)}\n\n{embed_state(tracking.model_dump(mode='json'))}"
    repo.upsert_comment(number, body, TRACKING, found=existing, issue=number)


async def update_tracking(
    repo: RepoClient,
    number: int,
    change: Callable[[Tracking], Tracking],
    log: logging.LoggerAdapter[logging.Logger],
) -> None:
    """Apply `change` to issue `number`'s tracking comment (created on first use)."""
    try:
        await asyncio.to_thread(_update, repo, number, change)
    except (GithubException, OSError) as error:
        log.warning("tracking comment of #%d not updated: %s", number, error)
