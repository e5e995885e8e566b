"""The tracking comment of an issue (pure): what happened to it, stage by stage.

One comment per issue, edited in place by each stage that works on it (genesis on the
issue it plans, development on the issue it resolves, content on the issue it documents):
a checklist (queued, planned, in development, pull request open, documented), the worker
that holds it now, links to the sub-issues and pull requests, and the turns, tokens, cost
and duration spent so far; a failure says what failed and how to run it again.

The comment carries this model as embedded state, so each stage reads what the earlier
ones wrote and adds its own run; runs are keyed by item id, so a redelivered item
replaces its own run instead of adding one. The stages of one issue run one after another,
so two writers never edit one comment at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agentfleet.core.api import Stage

TRACKING = "tracking"
"""The marker kind of a tracking comment (`tracking issue=<n>`)."""

RunState = Literal["running", "succeeded", "failed", "budget_exhausted"]


class StageRun(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    item: str
    stage: Stage
    worker: str
    state: RunState = "running"
    started_at: datetime
    finished_at: datetime | None = None
    turns: int = Field(default=0, ge=0)
    tokens: int = Field(default=0, ge=0)
    cost_usd: float = Field(default=0.0, ge=0)
    sub_issues: tuple[int, ...] = ()
    pull: int | None = None
    error: str | None = None
    retried: bool = False
    """A failure the queue retries on its own (attempts left, a retryable error)."""


class Tracking(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    issue: int
    planned_in: int | None = None
    """The issue whose plan this one is a part of (a sub-issue's)."""
    runs: tuple[StageRun, ...] = ()

    def with_run(self, run: StageRun) -> Tracking:
        """This tracking with `run` in place of the earlier run of the same item, whose
        spending it adds to (an item redelivered after a crash or a retried attempt spent
        both times) and whose start it keeps."""
        earlier = next((r for r in self.runs if r.item == run.item), None)
        if earlier is not None:
            run = run.model_copy(
                update={
                    "started_at": min(earlier.started_at, run.started_at),
                    "turns": earlier.turns + run.turns,
                    "tokens": earlier.tokens + run.tokens,
                    "cost_usd": earlier.cost_usd + run.cost_usd,
                }
            )
        kept = tuple(r for r in self.runs if r.item != run.item)
        return self.model_copy(update={"runs": (*kept, run)})

    def last(self, stage: Stage) -> StageRun | None:
        found = [run for run in self.runs if run.stage is stage]
        return found[-1] if found else None

    @property
    def turns(self) -> int:
        return sum(run.turns for run in self.runs)

    @property
    def tokens(self) -> int:
        return sum(run.tokens for run in self.runs)

    @property
    def cost_usd(self) -> float:
        return sum(run.cost_usd for run in self.runs)

    @property
    def seconds(self) -> float:
        """From the first run's start to the last one's end (or start, while running)."""
        if not self.runs:
            return 0.0
        start = min(run.started_at for run in self.runs)
        end = max(run.finished_at or run.started_at for run in self.runs)
        return max(0.0, (end - start).total_seconds())


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def _box(done: bool) -> str:
    return "[x]" if done else "[ ]"


def render(tracking: Tracking, base_url: str) -> str:
    """The comment's visible text (`base_url`: the repository's web URL, for links)."""
    planned, developed = tracking.last(Stage.GENESIS), tracking.last(Stage.DEVELOPMENT)
    documented = tracking.last(Stage.CONTENT)
    lines = [f"## agentfleet is tracking #{tracking.issue}", ""]
    lines.append(f"- {_box(True)} queued")
    note = ""
    if planned is not None and planned.state == "succeeded" and planned.sub_issues:
        links = ", ".join(f"#{n}" for n in planned.sub_issues)
        note = f": {len(planned.sub_issues)} sub-issue(s), {links}"
    done = planned is not None and planned.state == "succeeded"
    if tracking.planned_in is not None:
        done, note = True, f": part of the plan for #{tracking.planned_in}"
    lines.append(f"- {_box(done)} planned{note}")
    holder = ""
    if developed is not None and developed.state == "running":
        holder = f" (by `{developed.worker}`)"
    lines.append(f"- {_box(developed is not None)} in development{holder}")
    pull = developed.pull if developed is not None and developed.state == "succeeded" else None
    opened = f": {base_url}/pull/{pull}" if pull else ""
    lines.append(f"- {_box(pull is not None)} pull request open{opened}")
    docs = documented.pull if documented is not None and documented.state == "succeeded" else None
    linked = f": {base_url}/pull/{docs}" if docs else ""
    lines.append(f"- {_box(docs is not None)} documented{linked}")
    running = [run for run in tracking.runs if run.state == "running"]
    if running:
        lines += ["", f"Now: {running[-1].stage.value} on `{running[-1].worker}`."]
    last = tracking.runs[-1] if tracking.runs else None
    if last is not None and last.state in {"failed", "budget_exhausted"}:
        what = "ran out of budget" if last.state == "budget_exhausted" else "failed"
        error = (last.error or "").strip().splitlines()
        lines += ["", f"**{last.stage.value} {what}** (`{last.item}`): "
                  f"{error[0][:300] if error else 'no detail'}"]  # fmt: skip
        if last.retried:
            lines.append("The queue retries it on its own.")
        else:
            namespace, _, rest = last.item.partition("/")
            project = rest.partition("/")[0]
            lines.append(
                f"Run it again with `agentfleet retry {project} --item {last.item} "
                f"-n {namespace}` (after raising the budget, if that is what ran out)."
            )
    lines += [
        "",
        f"{tracking.turns} turns, {tracking.tokens:,} tokens, ${tracking.cost_usd:.2f}, "
        f"{_duration(tracking.seconds)}.",
    ]
    return "\n".join(lines)
