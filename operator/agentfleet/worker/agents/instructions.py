"""Repository instructions: `CLAUDE.md` and `AGENTS.md`, as the base branch has them.

Both runtimes put them in the task text, so they steer the builtin loop and Claude Code
alike (Claude Code itself loads no `CLAUDE.md`: `agentfleet.worker.agents.claude_code`).
The stage handlers read them from the checkout after `GitCheckout.start_branch`, which takes
these files from the base branch even on a branch that changed them: the people who can
push to the base branch write them, not whoever opened a pull request. They pass through
`sanitise` (hidden characters, HTML comments), the redactor and tag neutralisation as
untrusted text does, and are cut at `MAX_CHARS` each.
"""

from __future__ import annotations

from pathlib import Path

from agentfleet.core.redaction import Redactor
from agentfleet.worker.agents.untrusted import neutralise_tags, sanitise

INSTRUCTION_FILES = ("CLAUDE.md", "AGENTS.md")
MAX_CHARS = 20_000


def repository_instructions(root: Path, redactor: Redactor) -> str:
    """The instruction files at the checkout's root, as a section to append to a task
    ("" when there are none)."""
    sections: list[str] = []
    for name in INSTRUCTION_FILES:
        path = root / name
        if path.is_symlink() or not path.is_file():
            continue
        text = path.read_text(errors="replace")[:MAX_CHARS]
        text = neutralise_tags(redactor.redact(sanitise(redactor.redact(text)).text)).strip()
        if text:
            sections.append(f"### {name}\n\n{text}")
    if not sections:
        return ""
    return (
        "\n\n## Repository instructions (from the base branch)\n\n"
        "The repository's maintainers keep these instructions for agents. Follow them where "
        "they do not conflict with your rules above.\n\n" + "\n\n".join(sections)
    )
