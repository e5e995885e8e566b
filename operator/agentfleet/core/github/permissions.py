"""What each stage may do on GitHub: the permissions of the installation token it works with.

With a GitHub App, every work item gets its own installation token, minted for the item's
repository only and for the permissions of the stage that handles it (`STAGE_PERMISSIONS`).
A stage that never pushes cannot push; a stage that never opens issues cannot open one,
whatever the agent or the text steering it asks for. No stage gets `workflows` (GitHub
refuses a push that changes `.github/workflows/`), `administration` or any other permission.

The sets are GitHub's names and levels (`POST /app/installations/{id}/access_tokens`).
`metadata: read` is what GitHub grants every token; it is listed so the sets say all.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal

from agentfleet.core.api import Stage

Access = Literal["read", "write"]
Permissions = Mapping[str, Access]

_LEVELS: Mapping[str, int] = {"read": 1, "write": 2}


def _frozen(permissions: dict[str, Access]) -> Permissions:
    return MappingProxyType({"metadata": "read", **permissions})


STAGE_PERMISSIONS: Mapping[Stage, Permissions] = MappingProxyType(
    {
        # Reads the issue and clones; creates labels, sub-issues, diagnostic issues and the
        # plan or summary comment; a master issue's run looks its sub-tasks' pull requests
        # up. (Scaffolding an empty repository pushes with a token of its own:
        # `SCAFFOLD_PERMISSIONS`.)
        Stage.GENESIS: _frozen({"contents": "read", "issues": "write", "pull_requests": "read"}),
        # Reads the issue and keeps its tracking comment; pushes agentfleet/issue-<n>; opens
        # the pull request.
        Stage.DEVELOPMENT: _frozen(
            {"contents": "write", "issues": "write", "pull_requests": "write"}
        ),
        # Reads the merged pull request and the planned issue with its sub-issues, and keeps
        # that tracking comment; pushes agentfleet/docs-issue-<n>; opens the docs
        # pull request.
        Stage.CONTENT: _frozen({"contents": "write", "issues": "write", "pull_requests": "write"}),
        # Reads the pull request, its diff and the checkout; writes one comment on the pull
        # request or the failed item's issue (issue comments need `issues: write`).
        Stage.REVIEW: _frozen({"contents": "read", "issues": "write", "pull_requests": "read"}),
    }
)

SCAFFOLD_PERMISSIONS: Permissions = _frozen({"contents": "write"})
"""Genesis pushing the first commit of an empty repository: the one time genesis writes
code, with a token minted for that push alone."""

INTAKE_PERMISSIONS: Permissions = _frozen({"issues": "write", "pull_requests": "read"})
"""The operator's intake lists issues and merged pull requests, and answers triggers: a
reaction on an accepted mention, command or assignment, a reply to a refused one, and the
actor's permission (`metadata: read`)."""

READ_ONLY: Permissions = _frozen({"contents": "read", "issues": "read", "pull_requests": "read"})
"""What a client gets unless it asks for a stage's permissions."""


def stage_permissions(stage: Stage) -> Permissions:
    """The permissions a stage's installation token is minted with."""
    try:
        return STAGE_PERMISSIONS[stage]
    except KeyError:
        raise ValueError(f"no GitHub permissions are defined for stage {stage!r}") from None


def covers(granted: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    """Whether `granted` allows everything `wanted` asks for (write covers read)."""
    return all(
        _LEVELS.get(granted.get(name, ""), 0) >= _LEVELS[level] for name, level in wanted.items()
    )


def token_request(full_name: str, permissions: Permissions) -> dict[str, Any]:
    """The body of `POST /app/installations/{id}/access_tokens` for a token that reaches
    only `full_name` (`owner/name`; GitHub takes the name within the installation's
    account) with `permissions`."""
    owner, _, name = full_name.partition("/")
    if not owner or not name or "/" in name:
        raise ValueError(f"repository {full_name!r} is not owner/name")
    unknown = {level for level in permissions.values() if level not in _LEVELS}
    if unknown:
        raise ValueError(f"permission levels {sorted(unknown)} are not read or write")
    return {"repositories": [name], "permissions": dict(sorted(permissions.items()))}
