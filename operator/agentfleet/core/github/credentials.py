"""GitHub credentials from a Project's Secret, and the API endpoint of its repository.

The Secret (`spec.credentialsSecretRef`) holds either `token` (a personal access or
installation token) or a GitHub App: `app-id`, `private-key` and optionally
`installation-id` (looked up from the repository when absent). `webhook-secret` is read
too when present. Workers get the Secret mounted as a directory (one file per key); the
operator reads it through the API; both end up here.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

from agentfleet.core.api.project import CREDENTIAL_APP_KEYS, CREDENTIAL_TOKEN_KEY

INSTALLATION_ID_KEY = "installation-id"
WEBHOOK_SECRET_KEY = "webhook-secret"
GITHUB_API = "https://api.github.com"

_HTTPS_REPOSITORY = re.compile(
    r"^https://(?P<host>[^/]+)(?P<prefix>(?:/[^/]+)*?)/(?P<owner>[^/]+)/(?P<name>[^/]+?)(?:\.git)?/?$"
)


class CredentialsError(ValueError):
    """The Secret does not hold usable GitHub credentials."""


class GitHubCredentials(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    token: SecretStr | None = None
    app_id: str | None = None
    private_key: SecretStr | None = None
    installation_id: int | None = None
    webhook_secret: SecretStr | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> GitHubCredentials:
        is_app = self.app_id is not None or self.private_key is not None
        if self.token is not None and is_app:
            raise ValueError("set either `token` or the GitHub App keys, not both")
        if self.token is None and not (self.app_id and self.private_key):
            raise ValueError("need `token`, or `app-id` and `private-key` for a GitHub App")
        return self

    @property
    def is_app(self) -> bool:
        return self.app_id is not None

    def secret_values(self) -> list[str]:
        """Every secret string here, for the redactor."""
        return [
            secret.get_secret_value()
            for secret in (self.token, self.private_key, self.webhook_secret)
            if secret is not None
        ]


def credentials_from_secret_data(
    data: Mapping[str, str | bytes], base64_encoded: bool = False
) -> GitHubCredentials:
    """From a Secret's `data` (base64, as the API returns it) or decoded values."""

    def value(key: str) -> str | None:
        raw = data.get(key)
        if raw is None:
            return None
        if base64_encoded:
            raw = base64.b64decode(raw)
        text = raw.decode() if isinstance(raw, bytes) else raw
        return text.strip() or None

    installation = value(INSTALLATION_ID_KEY)
    token, webhook_secret = value(CREDENTIAL_TOKEN_KEY), value(WEBHOOK_SECRET_KEY)
    app_id, private_key = (value(key) for key in CREDENTIAL_APP_KEYS)
    try:
        return GitHubCredentials(
            token=SecretStr(token) if token else None,
            app_id=app_id,
            private_key=SecretStr(private_key) if private_key else None,
            installation_id=int(installation) if installation else None,
            webhook_secret=SecretStr(webhook_secret) if webhook_secret else None,
        )
    except ValueError as exc:
        raise CredentialsError(f"GitHub credentials Secret: {exc}") from exc


def credentials_from_directory(path: Path) -> GitHubCredentials:
    """From a Secret mounted as a volume (one file per key)."""
    if not path.is_dir():
        raise CredentialsError(f"no credentials mounted at {path}")
    files = {entry.name: entry.read_bytes() for entry in path.iterdir() if entry.is_file()}
    return credentials_from_secret_data(files)


def repository_endpoint(repository: str, api_url: str | None = None) -> tuple[str, str]:
    """(REST API base URL, `owner/name`) of a Project's `spec.repository`.

    `owner/name` is on github.com; an HTTPS URL on another host is GitHub Enterprise
    (`https://host/api/v3`). `api_url` overrides the derived endpoint.
    """
    match = _HTTPS_REPOSITORY.match(repository)
    if match is None:
        owner, _, name = repository.partition("/")
        if not owner or not name or "/" in name:
            raise ValueError(f"repository {repository!r} is neither owner/name nor an HTTPS URL")
        return api_url or GITHUB_API, repository
    full_name = f"{match['owner']}/{match['name']}"
    if api_url:
        return api_url, full_name
    if match["host"] in {"github.com", "www.github.com"}:
        return GITHUB_API, full_name
    return f"https://{match['host']}{match['prefix']}/api/v3", full_name
