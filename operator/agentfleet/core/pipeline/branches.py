"""Branch names: where agentfleet pushes an issue's work and its documentation.

`agentfleet/issue-<n>` holds the development of issue n (its pull request closes n);
`agentfleet/docs-issue-<n>` the documentation of issue n. Intake takes a merged pull
request from a work branch to the content stage, and the content stage reads the issue
back from the branch name, so both go through here.
"""

from __future__ import annotations

import re

BRANCH_PREFIX = "agentfleet/"
"""Every branch agentfleet pushes starts with this."""
DOCS_BRANCH_PREFIX = f"{BRANCH_PREFIX}docs-"
"""The documentation branches (the content stage's own pull requests)."""

_ISSUE_BRANCH = re.compile(r"^agentfleet/issue-(\d+)$")


def issue_branch(number: int) -> str:
    """The development branch of issue `number`."""
    return f"{BRANCH_PREFIX}issue-{number}"


def docs_branch(number: int) -> str:
    """The documentation branch of issue `number`."""
    return f"{DOCS_BRANCH_PREFIX}issue-{number}"


def issue_of_branch(branch: str) -> int | None:
    """The issue whose development branch `branch` is; None for any other branch."""
    match = _ISSUE_BRANCH.match(branch)
    return int(match.group(1)) if match else None


def is_work_branch(branch: str) -> bool:
    """An agentfleet branch whose merge is content work (not a documentation branch)."""
    return branch.startswith(BRANCH_PREFIX) and not branch.startswith(DOCS_BRANCH_PREFIX)
