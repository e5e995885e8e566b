"""How far apart one client spaces its GitHub API calls, and how long it waits on a spent
rate limit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from github import GithubRetry


@dataclass(frozen=True)
class Pacing:
    """Spacing between API calls of one client. The defaults are PyGithub's, which follow
    GitHub's advice against secondary rate limits (mutating calls at least a second
    apart); a local fake needs none (`Pacing.none()`)."""

    seconds_between_requests: float | None = 0.25
    seconds_between_writes: float | None = 1.0
    max_rate_limit_wait: float = 120.0
    """Longest sleep for a rate-limit reset; beyond it the call fails (and the poll or the
    item is retried later) instead of holding a worker or an intake slot for up to an
    hour, which PyGithub's default retry would do."""

    @classmethod
    def none(cls) -> Pacing:
        return cls(None, None)

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments of PyGithub's `Github` and `GithubIntegration`."""
        return {
            "seconds_between_requests": self.seconds_between_requests,
            "seconds_between_writes": self.seconds_between_writes,
            "retry": GithubRetry(max_rate_limit_wait=self.max_rate_limit_wait),
        }
