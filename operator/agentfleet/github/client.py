"""PyGithub adapter: the idempotent GitHub operations the stage handlers need.

Every create is preceded by a lookup: issues and comments by the hidden marker in their
body (only among objects authored by agentfleet's own identity), pull requests by head
branch. The methods are synchronous (PyGithub is); async callers use `asyncio.to_thread`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from github import Auth, Github, GithubException, GithubIntegration, GithubRetry

from agentfleet.github.credentials import GitHubCredentials, repository_endpoint
from agentfleet.github.markers import has_marker, marker

LABEL_COLORS = {
    "agentfleet:sub-task": "1d76db",
    "agentfleet:diagnostic": "d93f0b",
    "agentfleet:docs": "0e8a16",
}


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


@dataclass(frozen=True)
class IssueInfo:
    number: int
    title: str
    body: str
    labels: tuple[str, ...]
    state: str
    author: str
    html_url: str
    is_pull: bool = False


@dataclass(frozen=True)
class PullInfo:
    number: int
    title: str
    body: str
    state: str
    merged: bool
    head: str
    base: str
    html_url: str
    author: str


@dataclass(frozen=True)
class CommentInfo:
    id: int
    body: str
    author: str


@dataclass(frozen=True)
class FileChange:
    filename: str
    status: str
    additions: int
    deletions: int
    patch: str


def _issue_info(issue: Any) -> IssueInfo:
    return IssueInfo(
        number=issue.number,
        title=issue.title,
        body=issue.body or "",
        labels=tuple(label.name for label in issue.labels),
        state=issue.state,
        author=issue.user.login,
        html_url=issue.html_url,
        is_pull=issue.pull_request is not None,
    )


def _pull_info(pull: Any) -> PullInfo:
    return PullInfo(
        number=pull.number,
        title=pull.title,
        body=pull.body or "",
        state=pull.state,
        merged=pull.merged_at is not None,
        head=pull.head.ref,
        base=pull.base.ref,
        html_url=pull.html_url,
        author=pull.user.login,
    )


class RepoClient:
    """One repository, acting as one GitHub identity (a user token or an App installation)."""

    def __init__(
        self,
        credentials: GitHubCredentials,
        repository: str,
        api_url: str | None = None,
        pacing: Pacing | None = None,
    ):
        self.api_url, self.full_name = repository_endpoint(repository, api_url)
        pacing = pacing or Pacing()
        self._credentials = credentials
        self._app_auth: Auth.AppAuth | None = None
        self._installation_auth: Auth.AppInstallationAuth | None = None
        if credentials.token is not None:
            auth: Auth.Auth = Auth.Token(credentials.token.get_secret_value())
        else:
            assert credentials.app_id is not None and credentials.private_key is not None
            self._app_auth = Auth.AppAuth(
                credentials.app_id, credentials.private_key.get_secret_value()
            )
            installation = credentials.installation_id or self._installation_id()
            self._installation_auth = self._app_auth.get_installation_auth(installation)
            auth = self._installation_auth
        self.github = Github(
            base_url=self.api_url,
            auth=auth,
            per_page=100,
            timeout=30,
            seconds_between_requests=pacing.seconds_between_requests,
            seconds_between_writes=pacing.seconds_between_writes,
            retry=GithubRetry(max_rate_limit_wait=pacing.max_rate_limit_wait),
        )
        self._repo: Any = None
        self._login: str | None = None
        self._lock = threading.Lock()

    def _integration(self) -> GithubIntegration:
        return GithubIntegration(auth=self._app_auth, base_url=self.api_url)

    def _installation_id(self) -> int:
        owner, name = self.full_name.split("/")
        installation_id: int = self._integration().get_repo_installation(owner, name).id
        return installation_id

    @property
    def repo(self) -> Any:
        with self._lock:
            if self._repo is None:
                self._repo = self.github.get_repo(self.full_name)
            return self._repo

    @property
    def login(self) -> str:
        """The login agentfleet acts as (`<app-slug>[bot]` for a GitHub App)."""
        with self._lock:
            if self._login is None:
                if self._app_auth is not None:
                    self._login = f"{self._integration().get_app().slug}[bot]"
                else:
                    self._login = self.github.get_user().login
            return self._login

    def git_token(self) -> str:
        """A token for git over HTTPS (an installation token is refreshed when it expires)."""
        if self._credentials.token is not None:
            return self._credentials.token.get_secret_value()
        assert self._installation_auth is not None
        token: str = self._installation_auth.token
        return token

    def close(self) -> None:
        self.github.close()

    # ---- reading ---------------------------------------------------------------------

    @property
    def default_branch(self) -> str:
        branch: str = self.repo.default_branch
        return branch

    @property
    def clone_url(self) -> str:
        url: str = self.repo.clone_url
        return url

    def issue(self, number: int) -> IssueInfo:
        return _issue_info(self.repo.get_issue(number))

    def pull(self, number: int) -> PullInfo:
        return _pull_info(self.repo.get_pull(number))

    def open_issues_labelled(self, label: str) -> list[IssueInfo]:
        """Open issues (not pull requests) carrying `label`."""
        issues = self.repo.get_issues(state="open", labels=[label])
        return [info for info in map(_issue_info, issues) if not info.is_pull]

    def own_issues(self, label: str) -> list[IssueInfo]:
        """Issues in any state that agentfleet itself opened with `label`."""
        issues = self.repo.get_issues(state="all", labels=[label], creator=self.login)
        return [info for info in map(_issue_info, issues) if not info.is_pull]

    def merged_pulls(self, head_prefix: str, limit: int = 100) -> list[PullInfo]:
        """Recently updated merged pull requests whose head branch starts with `head_prefix`."""
        found: list[PullInfo] = []
        for pull in self.repo.get_pulls(state="closed", sort="updated", direction="desc"):
            if len(found) >= limit:
                break
            if pull.head.ref.startswith(head_prefix) and pull.merged_at is not None:
                found.append(_pull_info(pull))
        return found

    def pull_files(self, number: int) -> list[FileChange]:
        return [
            FileChange(f.filename, f.status, f.additions, f.deletions, f.patch or "")
            for f in self.repo.get_pull(number).get_files()
        ]

    def branch_exists(self, name: str) -> bool:
        try:
            self.repo.get_branch(name)
        except GithubException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    # ---- idempotent writes -----------------------------------------------------------

    def ensure_labels(self, names: list[str]) -> None:
        existing = {label.name for label in self.repo.get_labels()}
        for name in names:
            if name in existing:
                continue
            try:
                self.repo.create_label(name, LABEL_COLORS.get(name, "ededed"))
            except GithubException as exc:
                if exc.status != 422:
                    raise

    def find_own_issue(self, label: str, kind: str, **fields: object) -> IssueInfo | None:
        return next(
            (issue for issue in self.own_issues(label) if has_marker(issue.body, kind, **fields)),
            None,
        )

    def ensure_issue(
        self, title: str, body: str, labels: list[str], kind: str, **fields: object
    ) -> tuple[IssueInfo, bool]:
        """The issue agentfleet opened for (kind, fields), opening it if there is none.

        `labels[0]` is the label lookups search; every generated issue must carry one.
        """
        existing = self.find_own_issue(labels[0], kind, **fields)
        if existing is not None:
            return existing, False
        return self.create_marked_issue(title, body, labels, kind, **fields), True

    def create_marked_issue(
        self, title: str, body: str, labels: list[str], kind: str, **fields: object
    ) -> IssueInfo:
        """Open an issue carrying the marker (kind, fields); the caller has looked it up."""
        created = self.repo.create_issue(
            title=title, body=f"{body}\n\n{marker(kind, **fields)}", labels=labels
        )
        return _issue_info(created)

    def find_own_comment(self, number: int, kind: str, **fields: object) -> CommentInfo | None:
        for comment in self.repo.get_issue(number).get_comments():
            if comment.user.login == self.login and has_marker(comment.body, kind, **fields):
                return CommentInfo(comment.id, comment.body, comment.user.login)
        return None

    def upsert_comment(
        self, number: int, body: str, kind: str, **fields: object
    ) -> tuple[CommentInfo, bool]:
        """One comment per (issue, kind, fields): created once, then edited in place."""
        text = f"{body}\n\n{marker(kind, **fields)}"
        existing = self.find_own_comment(number, kind, **fields)
        issue = self.repo.get_issue(number)
        if existing is None:
            comment = issue.create_comment(text)
            return CommentInfo(comment.id, comment.body, comment.user.login), True
        if existing.body != text:
            issue.get_comment(existing.id).edit(text)
        return CommentInfo(existing.id, text, existing.author), False

    def find_pull(self, head: str) -> PullInfo | None:
        """The open pull request from `head`, else the most recent merged one."""
        owner = self.full_name.split("/")[0]
        pulls = [_pull_info(p) for p in self.repo.get_pulls(state="all", head=f"{owner}:{head}")]
        open_pulls = [p for p in pulls if p.state == "open"]
        merged = [p for p in pulls if p.merged]
        candidates = open_pulls or merged
        return candidates[0] if candidates else None

    def ensure_pull(self, head: str, base: str, title: str, body: str) -> tuple[PullInfo, bool]:
        existing = self.find_pull(head)
        if existing is not None:
            return existing, False
        try:
            created = self.repo.create_pull(title=title, body=body, head=head, base=base)
        except GithubException as exc:
            # Another attempt opened it between our lookup and create.
            again = self.find_pull(head) if exc.status == 422 else None
            if again is None:
                raise
            return again, False
        return _pull_info(created), True
