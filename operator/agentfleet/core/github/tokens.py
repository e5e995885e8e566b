"""GitHub App installation tokens, narrowed to one repository and a set of permissions.

`GitHubApp` is the App's identity at one API: it signs JWTs with the private key, finds
the installation of a repository, learns its own slug, and mints installation tokens; it
holds no installation token itself, so it can be shared by every item of a worker.
`ScopedInstallationAuth` is the PyGithub authentication of one work item: on first use it
mints a token for the item's repository and the stage's permissions, mints another with
the same scope only when that one is about to expire, and revokes its token when the item
ends (`revoke`). Each token is handed to `on_token` (the redactor) the moment it exists.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from github import Auth, Github, GithubException, GithubIntegration

from agentfleet.core.github.pacing import Pacing
from agentfleet.core.github.permissions import Permissions, covers, token_request

log = logging.getLogger(__name__)

REFRESH_MARGIN = timedelta(minutes=5)
"""A token this close to its expiry is replaced before a request, so that no request (or
git command) starts with a token that may expire under it."""

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class TokenError(RuntimeError):
    """GitHub answered the token request with something other than what was asked for."""


@dataclass(frozen=True)
class InstallationToken:
    value: str = field(repr=False)
    expires_at: datetime
    permissions: Mapping[str, str]
    repositories: tuple[str, ...]
    """Names of the repositories it reaches (as GitHub lists them)."""

    def usable(self, now: datetime, margin: timedelta = REFRESH_MARGIN) -> bool:
        return now < self.expires_at - margin


def parse_token(data: Any, full_name: str, permissions: Permissions) -> InstallationToken:
    """The token from GitHub's answer, checked to be exactly as narrow as was asked: one
    repository, and no permission beyond `permissions`."""
    if not isinstance(data, dict) or not isinstance(data.get("token"), str):
        raise TokenError("GitHub's answer holds no installation token")
    granted = data.get("permissions") or {}
    if not isinstance(granted, dict) or not covers(permissions, granted):
        raise TokenError(f"GitHub granted {granted}, more than the {dict(permissions)} asked for")
    name = full_name.partition("/")[2]
    repositories = tuple(
        str(repo.get("name")) for repo in data.get("repositories") or [] if isinstance(repo, dict)
    )
    if data.get("repository_selection") != "selected" or repositories != (name,):
        raise TokenError(
            f"GitHub granted repositories {data.get('repository_selection')!r} "
            f"{list(repositories)}, not only {full_name}"
        )
    try:
        expires_at = datetime.fromisoformat(str(data["expires_at"]).replace("Z", "+00:00"))
    except (KeyError, ValueError) as exc:
        raise TokenError(f"GitHub's token has no valid expiry: {exc}") from None
    return InstallationToken(data["token"], expires_at, dict(granted), repositories)


class GitHubApp:
    """A GitHub App at one API endpoint (thread-safe; caches only non-secret facts)."""

    def __init__(
        self,
        app_id: str,
        private_key: str,
        api_url: str,
        installation_id: int | None = None,
        pacing: Pacing | None = None,
    ) -> None:
        self.api_url = api_url
        self._auth = Auth.AppAuth(app_id, private_key)
        self._installation_id = installation_id
        self._installations: dict[str, int] = {}
        self._slug: str | None = None
        self._lock = threading.Lock()
        self._pacing = pacing or Pacing()

    def _integration(self) -> GithubIntegration:
        return GithubIntegration(
            auth=self._auth, base_url=self.api_url, timeout=30, **self._pacing.client_options()
        )

    def installation_id(self, full_name: str) -> int:
        """The installation that covers `full_name` (the Secret's, when it names one)."""
        if self._installation_id is not None:
            return self._installation_id
        with self._lock:
            if full_name not in self._installations:
                owner, name = full_name.split("/")
                integration = self._integration()
                try:
                    found = integration.get_repo_installation(owner, name).id
                finally:
                    integration.close()
                self._installations[full_name] = int(found)
            return self._installations[full_name]

    @property
    def login(self) -> str:
        """`<app-slug>[bot]`: who the App's installation tokens act as."""
        with self._lock:
            if self._slug is None:
                integration = self._integration()
                try:
                    slug = integration.get_app().slug
                finally:
                    integration.close()
                if not isinstance(slug, str) or not slug:
                    raise TokenError("GitHub returned no slug for the App")
                self._slug = slug
            return f"{self._slug}[bot]"

    def mint(self, full_name: str, permissions: Permissions) -> InstallationToken:
        """A new installation token for `full_name` only, with `permissions` only."""
        installation = self.installation_id(full_name)
        integration = self._integration()
        try:
            _, data = integration.requester.requestJsonAndCheck(
                "POST",
                f"/app/installations/{installation}/access_tokens",
                headers={"Accept": "application/vnd.github+json"},
                input=token_request(full_name, permissions),
            )
        finally:
            integration.close()
        return parse_token(data, full_name, permissions)

    def revoke(self, token: InstallationToken) -> None:
        """`DELETE /installation/token`: the token stops working at once."""
        github = Github(auth=Auth.Token(token.value), base_url=self.api_url, timeout=30)
        try:
            github.requester.requestJsonAndCheck("DELETE", "/installation/token")
        finally:
            github.close()


class ScopedInstallationAuth(Auth.Auth):
    """PyGithub authentication with installation tokens for one repository and one set of
    permissions, minted on first use and again only shortly before each expires.

    `on_token` learns each token before it is used; `on_retired` learns each token no one
    can use any more (expired, or revoked by `revoke`), so a long-lived client's list of
    secrets does not grow with every refresh."""

    def __init__(
        self,
        app: GitHubApp,
        full_name: str,
        permissions: Permissions,
        on_token: Callable[[str], None],
        clock: Clock = utc_now,
        on_retired: Callable[[str], None] | None = None,
    ) -> None:
        self.app = app
        self.full_name = full_name
        self.permissions = permissions
        self._on_token = on_token
        self._on_retired = on_retired or (lambda token: None)
        self._clock = clock
        self._current: InstallationToken | None = None
        self._revoked = False
        self.minted: list[InstallationToken] = []
        """The tokens this authentication minted that may still work, oldest first."""
        self._lock = threading.Lock()

    @property
    def token_type(self) -> str:
        return "token"

    @property
    def token(self) -> str:
        with self._lock:
            if self._revoked:
                raise TokenError(f"the work with {self.full_name} has ended: no more tokens")
            now = self._clock()
            if self._current is None or not self._current.usable(now):
                minted = self.app.mint(self.full_name, self.permissions)
                self._on_token(minted.value)
                self._retire([t for t in self.minted if now >= t.expires_at])
                self.minted.append(minted)
                self._current = minted
            return self._current.value

    @property
    def _masked_token(self) -> str:
        return "token (installation token removed)"

    def _retire(self, tokens: list[InstallationToken]) -> None:
        for token in tokens:
            self.minted = [t for t in self.minted if t is not token]
            self._on_retired(token.value)

    def revoke(self) -> None:
        """Revoke every token minted that has not expired yet (the item is over: nothing
        uses them), and mint no more. A token whose revocation fails is kept, and tried
        again by another `revoke`; it stops working when it expires."""
        with self._lock:
            self._current, self._revoked = None, True
            now = self._clock()
            for token in list(self.minted):
                if now < token.expires_at:
                    try:
                        self.app.revoke(token)
                    except (GithubException, OSError) as exc:
                        status = getattr(exc, "status", None)
                        log.warning(
                            "could not revoke an installation token for %s (%s %s); "
                            "it expires at %s",
                            self.full_name,
                            type(exc).__name__,
                            status if status is not None else "",
                            token.expires_at.isoformat(),
                        )
                        continue
                self._retire([token])
