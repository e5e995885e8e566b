"""Independence of sub-tasks (pure): declared files or modules that overlap are conflicts.

Two declarations overlap when they are the same path or one contains the other (a
directory and a file in it, a package and one of its modules). Tasks that declare
nothing cannot be checked and are reported as such; a dry run prints the whole report.
"""

from __future__ import annotations

from itertools import combinations

from pydantic import BaseModel, ConfigDict

from agentfleet.worker.stages.master.parse import SubTask

MIN_USEFUL_TASKS = 3
"""Below this, orchestration overhead outweighs running the tasks one after another."""


class Conflict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    first: int
    second: int
    shared: tuple[str, ...]
    """The overlapping declarations, as `a <-> b` when they differ."""


class ValidationReport(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tasks: tuple[SubTask, ...]
    conflicts: tuple[Conflict, ...] = ()
    undeclared: tuple[int, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def independent(self) -> bool:
        return not self.conflicts

    def conflicting(self) -> set[int]:
        return {index for c in self.conflicts for index in (c.first, c.second)}


def overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def validate(tasks: list[SubTask]) -> ValidationReport:
    conflicts = []
    for first, second in combinations(tasks, 2):
        shared = [
            a if a == b else f"{a} <-> {b}"
            for a in first.resources
            for b in second.resources
            if overlaps(a, b)
        ]
        if shared:
            conflicts.append(Conflict(first=first.index, second=second.index, shared=tuple(shared)))
    warnings = []
    if not tasks:
        warnings.append("no sub-tasks found: use a checklist (- [ ] ...) or a numbered list")
    elif len(tasks) < MIN_USEFUL_TASKS:
        warnings.append(
            f"only {len(tasks)} sub-task(s): below {MIN_USEFUL_TASKS} the orchestration "
            "overhead outweighs running them one after another"
        )
    titles = [task.title.lower() for task in tasks]
    duplicates = sorted({t for t in titles if titles.count(t) > 1})
    if duplicates:
        warnings.append(f"duplicate sub-task titles: {', '.join(duplicates)}")
    undeclared = tuple(task.index for task in tasks if not task.declared)
    if undeclared:
        warnings.append(
            "no files or modules declared for sub-task(s) "
            + ", ".join(f"{i}" for i in undeclared)
            + ": their independence cannot be checked"
        )
    return ValidationReport(
        tasks=tuple(tasks),
        conflicts=tuple(conflicts),
        undeclared=undeclared,
        warnings=tuple(warnings),
    )


def render_report(report: ValidationReport, master: int) -> str:
    """The dry-run report: what would run, and what overlaps."""
    lines = [f"## agentfleet dry run for #{master}", ""]
    verdict = (
        "independent"
        if report.independent
        else f"{len(report.conflicts)} conflict(s) between sub-tasks"
    )
    lines += [f"**{len(report.tasks)} sub-task(s), {verdict}.** Nothing was created.", ""]
    if report.tasks:
        lines += ["| # | Sub-task | Declared files / modules |", "| --- | --- | --- |"]
        for task in report.tasks:
            declared = ", ".join(f"`{r}`" for r in (*task.files, *task.modules)) or "none"
            lines.append(f"| {task.index} | {_cell(task.title)} | {declared} |")
        lines.append("")
    if report.conflicts:
        lines.append("### Conflicts")
        for conflict in report.conflicts:
            shared = ", ".join(f"`{s}`" for s in conflict.shared)
            lines.append(f"- {conflict.first} and {conflict.second} both touch {shared}")
        lines.append("")
    if report.warnings:
        lines.append("### Warnings")
        lines += [f"- {warning}" for warning in report.warnings]
        lines.append("")
    return "\n".join(lines).rstrip()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
