"""Installation tokens without I/O: what each stage may do, what is asked of GitHub, what
is accepted back, and when a token is replaced or revoked (with an injected clock)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from github import GithubException

from agentfleet.core.api import Stage
from agentfleet.core.github import (
    INTAKE_PERMISSIONS,
    SCAFFOLD_PERMISSIONS,
    STAGE_PERMISSIONS,
    GitHubApp,
    InstallationToken,
    Permissions,
    TokenError,
    stage_permissions,
)
from agentfleet.core.github.permissions import covers, token_request
from agentfleet.core.github.tokens import REFRESH_MARGIN, ScopedInstallationAuth, parse_token

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


# ---- what each stage may do ---------------------------------------------------------


def test_every_stage_has_permissions_and_only_pushing_stages_write_code() -> None:
    assert set(STAGE_PERMISSIONS) == set(Stage)
    writes_code = {s for s in Stage if stage_permissions(s).get("contents") == "write"}
    assert writes_code == {Stage.DEVELOPMENT, Stage.CONTENT}


def test_stage_permissions_are_exactly_what_each_stage_does() -> None:
    assert dict(stage_permissions(Stage.GENESIS)) == {
        "metadata": "read",
        "contents": "read",
        "issues": "write",
        "pull_requests": "read",
    }
    # Development and content keep their issue's tracking comment.
    assert dict(stage_permissions(Stage.DEVELOPMENT)) == {
        "metadata": "read",
        "contents": "write",
        "issues": "write",
        "pull_requests": "write",
    }
    assert dict(stage_permissions(Stage.CONTENT)) == {
        "metadata": "read",
        "contents": "write",
        "issues": "write",
        "pull_requests": "write",
    }
    assert dict(stage_permissions(Stage.REVIEW)) == {
        "metadata": "read",
        "contents": "read",
        "issues": "write",
        "pull_requests": "read",
    }
    assert dict(SCAFFOLD_PERMISSIONS) == {"metadata": "read", "contents": "write"}
    # Intake reacts to accepted triggers and replies to refused ones.
    assert dict(INTAKE_PERMISSIONS) == {
        "metadata": "read",
        "issues": "write",
        "pull_requests": "read",
    }


def test_no_set_reaches_beyond_code_issues_and_pull_requests() -> None:
    # workflows, administration, secrets...: nothing an agent's work needs.
    sets = [*STAGE_PERMISSIONS.values(), SCAFFOLD_PERMISSIONS, INTAKE_PERMISSIONS]
    for permissions in sets:
        assert set(permissions) <= {"metadata", "contents", "issues", "pull_requests"}
        assert permissions["metadata"] == "read"


def test_permission_sets_cannot_be_changed_at_run_time() -> None:
    with pytest.raises(TypeError):
        cast(dict[str, str], STAGE_PERMISSIONS[Stage.REVIEW])["contents"] = "write"


def test_write_covers_read_and_nothing_covers_a_missing_permission() -> None:
    assert covers({"contents": "write"}, {"contents": "read"})
    assert not covers({"contents": "read"}, {"contents": "write"})
    assert not covers({"issues": "write"}, {"contents": "read"})
    assert covers({"contents": "read"}, {})


# ---- what is asked of GitHub ---------------------------------------------------------


def test_token_request_names_one_repository_and_the_permissions() -> None:
    body = token_request("acme/shop", stage_permissions(Stage.DEVELOPMENT))
    assert body == {
        "repositories": ["shop"],
        "permissions": {
            "contents": "write",
            "issues": "write",
            "metadata": "read",
            "pull_requests": "write",
        },
    }


@pytest.mark.parametrize("name", ["shop", "acme/", "/shop", "acme/shop/extra", ""])
def test_token_request_refuses_anything_but_owner_and_name(name: str) -> None:
    with pytest.raises(ValueError, match="not owner/name"):
        token_request(name, SCAFFOLD_PERMISSIONS)


def test_token_request_refuses_levels_github_does_not_grant_to_agents() -> None:
    with pytest.raises(ValueError, match="admin"):
        token_request("acme/shop", cast(Permissions, {"contents": "admin"}))


# ---- what is accepted back -----------------------------------------------------------


def _answer(**changes: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "token": "ghs_" + "a" * 36,
        "expires_at": "2026-01-01T13:00:00Z",
        "permissions": {"metadata": "read", "contents": "read", "issues": "write"},
        "repository_selection": "selected",
        "repositories": [{"name": "shop", "full_name": "acme/shop"}],
    }
    answer.update(changes)
    return answer


ASKED: Permissions = {"metadata": "read", "contents": "read", "issues": "write"}


def test_a_token_exactly_as_narrow_as_asked_is_accepted() -> None:
    token = parse_token(_answer(), "acme/shop", ASKED)
    assert token.expires_at == datetime(2026, 1, 1, 13, 0, tzinfo=UTC)
    assert token.repositories == ("shop",)
    assert dict(token.permissions) == dict(ASKED)
    assert token.value not in repr(token)


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"permissions": {**ASKED, "contents": "write"}}, "more than"),
        ({"permissions": {**ASKED, "workflows": "write"}}, "more than"),
        ({"repository_selection": "all", "repositories": None}, "not only acme/shop"),
        ({"repositories": [{"name": "shop"}, {"name": "other"}]}, "not only acme/shop"),
        ({"repositories": [{"name": "other"}]}, "not only acme/shop"),
        ({"expires_at": "soon"}, "no valid expiry"),
        ({"token": None}, "no installation token"),
    ],
)
def test_a_token_broader_than_asked_or_malformed_is_refused(
    changes: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(TokenError, match=complaint):
        parse_token(_answer(**changes), "acme/shop", ASKED)


# ---- when a token is replaced --------------------------------------------------------


def test_a_token_is_usable_until_the_margin_before_it_expires() -> None:
    token = InstallationToken("ghs_x", T0 + timedelta(hours=1), {}, ("shop",))
    assert token.usable(T0)
    assert token.usable(T0 + timedelta(hours=1) - REFRESH_MARGIN - timedelta(seconds=1))
    assert not token.usable(T0 + timedelta(hours=1) - REFRESH_MARGIN)
    assert not token.usable(T0 + timedelta(hours=2))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class StubApp:
    """Mints numbered tokens valid for an hour from `now`; records revocations."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.mints: list[tuple[str, Mapping[str, str]]] = []
        self.revoked: list[str] = []
        self.failing_revocations = 0

    def mint(self, full_name: str, permissions: Permissions) -> InstallationToken:
        self.mints.append((full_name, permissions))
        value = f"ghs_token{len(self.mints)}"
        return InstallationToken(value, self.clock() + timedelta(hours=1), permissions, ("shop",))

    def revoke(self, token: InstallationToken) -> None:
        if self.failing_revocations:
            self.failing_revocations -= 1
            raise GithubException(502, {"message": "Bad gateway"}, None)
        self.revoked.append(token.value)


def _auth() -> tuple[ScopedInstallationAuth, StubApp, Clock, list[str], list[str]]:
    clock = Clock()
    app = StubApp(clock)
    learned: list[str] = []
    retired: list[str] = []
    auth = ScopedInstallationAuth(
        cast(GitHubApp, app),
        "acme/shop",
        stage_permissions(Stage.REVIEW),
        learned.append,
        clock,
        retired.append,
    )
    return auth, app, clock, learned, retired


def test_one_token_is_minted_on_first_use_and_reused_while_usable() -> None:
    auth, app, clock, learned, _ = _auth()
    assert app.mints == []  # nothing is minted before it is needed
    first = auth.token
    clock.now += timedelta(minutes=50)
    assert auth.token == first
    assert app.mints == [("acme/shop", stage_permissions(Stage.REVIEW))]
    assert learned == [first]


def test_a_token_near_its_expiry_is_replaced_with_one_of_the_same_scope() -> None:
    auth, app, clock, learned, retired = _auth()
    first = auth.token
    clock.now += timedelta(hours=1) - REFRESH_MARGIN
    second = auth.token
    assert second != first
    assert [m for m in app.mints] == [("acme/shop", stage_permissions(Stage.REVIEW))] * 2
    assert learned == [first, second]
    # The first still works for a few minutes (a git command may be using it).
    assert retired == []
    clock.now += timedelta(hours=1)
    third = auth.token
    # Expired tokens are forgotten once a new one is minted.
    assert retired == [first, second]
    assert [t.value for t in auth.minted] == [third]


def test_revoke_revokes_every_token_still_alive_and_retires_them() -> None:
    auth, app, clock, _, retired = _auth()
    first = auth.token
    clock.now += timedelta(minutes=56)
    second = auth.token
    auth.revoke()
    assert app.revoked == [first, second]
    assert retired == [first, second]
    assert auth.minted == []
    # A client kept past its item's end mints nothing more.
    with pytest.raises(TokenError, match="has ended"):
        _ = auth.token
    assert len(app.mints) == 2


def test_an_expired_token_is_not_revoked_only_retired() -> None:
    auth, app, clock, _, retired = _auth()
    first = auth.token
    clock.now += timedelta(hours=2)
    auth.revoke()
    assert app.revoked == []
    assert retired == [first]


def test_a_token_whose_revocation_failed_is_kept_and_tried_again() -> None:
    auth, app, _, _, retired = _auth()
    first = auth.token
    app.failing_revocations = 1
    auth.revoke()
    assert app.revoked == [] and retired == []
    assert [t.value for t in auth.minted] == [first]
    auth.revoke()
    assert app.revoked == [first] and retired == [first]
