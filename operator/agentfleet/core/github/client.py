"""PyGithub adapter: the idempotent GitHub operations the stage handlers need.

Every create is preceded by a lookup: issues and comments by the hidden marker in their
body (only among objects authored by agentfleet's own identity), pull requests by head
branch. The methods are synchronous (PyGithub is); async callers use `asyncio.to_thread`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from github import Auth, Github, GithubException

from agentfleet.core.github.credentials import (
    CredentialsError,
    GitHubCredentials,
    repository_endpoint,
)
from agentfleet.core.github.git import basic_credential
from agentfleet.core.github.markers import has_marker, marker
from agentfleet.core.github.pacing import Pacing
from agentfleet.core.github.permissions import READ_ONLY, Permissions
from agentfleet.core.github.tokens import Clock, GitHubApp, ScopedInstallationAuth, utc_now
from agentfleet.core.redaction import Redactor

LABEL_COLORS = {
    "agentfleet:sub-task": "1d76db",
    "agentfleet:diagnostic": "d93f0b",
    "agentfleet:docs": "0e8a16",
}


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
    draft: bool = False
    fork: bool = False
    """The head branch is in another repository (agentfleet cannot push there)."""


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
        draft=bool(pull.draft),
        fork=_is_fork(pull),
    )


def _is_fork(pull: Any) -> bool:
    head_repo, base_repo = pull.head.repo, pull.base.repo
    if head_repo is None:  # a deleted fork
        return True
    return bool(head_repo.full_name != base_repo.full_name)


class RepoClient:
    """One repository, acting as one GitHub identity.

    With a personal access token every call uses that token, which cannot be narrowed.
    With a GitHub App the client mints installation tokens of its own, for this repository
    only and with `permissions` only (read-only unless asked for more), on first use and
    again only shortly before one expires; `close` revokes the last one. Every token minted
    is taught to `redactor` (with the form git sends it in) before it is used, and
    forgotten once it is revoked or expired. `app` shares an App's identity (its
    installation and slug, no token) between clients; `clock` is the time tokens expire by.
    """

    def __init__(
        self,
        credentials: GitHubCredentials,
        repository: str,
        api_url: str | None = None,
        pacing: Pacing | None = None,
        *,
        permissions: Permissions = READ_ONLY,
        redactor: Redactor | None = None,
        app: GitHubApp | None = None,
        clock: Clock = utc_now,
    ):
        self.api_url, self.full_name = repository_endpoint(repository, api_url)
        pacing = pacing or Pacing()
        self._credentials = credentials
        self._redactor = redactor
        self._app: GitHubApp | None = None
        self._installation_auth: ScopedInstallationAuth | None = None
        if credentials.token is not None:
            auth: Auth.Auth = Auth.Token(credentials.token.get_secret_value())
        else:
            if credentials.app_id is None or credentials.private_key is None:
                raise CredentialsError("a GitHub App needs `app-id` and `private-key`")
            if app is not None and app.api_url != self.api_url:
                raise ValueError(f"the App client is for {app.api_url}, not {self.api_url}")
            self._app = app or GitHubApp(
                credentials.app_id,
                credentials.private_key.get_secret_value(),
                self.api_url,
                credentials.installation_id,
                pacing,
            )
            self._installation_auth = ScopedInstallationAuth(
                self._app, self.full_name, permissions, self._learn, clock, self._forget
            )
            auth = self._installation_auth
        self.github = Github(
            base_url=self.api_url,
            auth=auth,
            per_page=100,
            timeout=30,
            **pacing.client_options(),
        )
        self._repo: Any = None
        self._login: str | None = None
        self._lock = threading.Lock()

    def _learn(self, token: str) -> None:
        if self._redactor is not None:
            self._redactor.add(token)
            self._redactor.add(basic_credential(token))

    def _forget(self, token: str) -> None:
        """A token that no longer works (revoked or expired) need not be redacted."""
        if self._redactor is not None:
            self._redactor.discard(token)
            self._redactor.discard(basic_credential(token))

    @property
    def repo(self) -> Any:
        with self._lock:
            if self._repo is None:
                self._repo = self.github.get_repo(self.full_name)
            return self._repo

    @property
    def login(self) -> str:
        """The login agentfleet acts as (`<app-slug>[bot]` for a GitHub App)."""
        if self._app is not None:
            return self._app.login
        with self._lock:
            if self._login is None:
                self._login = self.github.get_user().login
            return self._login

    def git_token(self) -> str:
        """A token for git over HTTPS: the personal access token, or the client's current
        installation token (minted, or replaced when about to expire, as for the API)."""
        if self._installation_auth is not None:
            return self._installation_auth.token
        if self._credentials.token is None:
            raise CredentialsError("no token for git")
        return self._credentials.token.get_secret_value()

    def close(self) -> None:
        """Revoke the installation token (a GitHub App), then close the HTTP session."""
        try:
            if self._installation_auth is not None:
                self._installation_auth.revoke()
        finally:
            self.github.close()

    # ---- reading ---------------------------------------------------------------------

    @property
    def default_branch(self) -> str:
        branch: str = self.repo.default_branch
        return branch

    @property
    def html_url(self) -> str:
        """The repository's web address (links in comments)."""
        url: str = self.repo.html_url
        return url

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

    def permission(self, login: str) -> str:
        """`login`'s permission on the repository (`admin`, `maintain`, `write`, `triage`,
        `read` or `none`), as GitHub's collaborator-permission endpoint answers."""
        try:
            level: str = self.repo.get_collaborator_permission(login)
        except GithubException as error:
            if error.status == 404:  # no such user, or one GitHub will not show
                return "none"
            raise
        return level

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
        self,
        number: int,
        body: str,
        kind: str,
        *,
        found: CommentInfo | None = None,
        **fields: object,
    ) -> tuple[CommentInfo, bool]:
        """One comment per (issue, kind, fields): created once, then edited in place
        (`found`: the caller's own lookup of it, saving another listing)."""
        text = f"{body}\n\n{marker(kind, **fields)}"
        existing = found if found is not None else self.find_own_comment(number, kind, **fields)
        issue = self.repo.get_issue(number)
        if existing is None:
            comment = issue.create_comment(text)
            return CommentInfo(comment.id, comment.body, comment.user.login), True
        if existing.body != text:
            issue.get_comment(existing.id).edit(text)
        return CommentInfo(existing.id, text, existing.author), False

    def request_review(self, number: int, login: str) -> str | None:
        """Ask `login` to review pull request `number`; GitHub's reason when it refuses
        (the author cannot review their own pull request; only collaborators can be
        asked), None when asked."""
        try:
            self.repo.get_pull(number).create_review_request(reviewers=[login])
        except GithubException as error:
            if error.status != 422:
                raise
            data = error.data if isinstance(error.data, dict) else {}
            return str(data.get("message") or error)
        return None

    def reply_to_review_comment(self, pull: int, comment_id: int, body: str) -> None:
        """Answer review comment `comment_id` in its thread on pull request `pull`."""
        self.repo.get_pull(pull).create_review_comment_reply(comment_id, body)

    def react_to_review_comment(self, pull: int, comment_id: int, content: str) -> None:
        self.repo.get_pull(pull).get_review_comment(comment_id).create_reaction(content)

    def react(self, number: int, content: str, comment_id: int | None = None) -> None:
        """Add reaction `content` (`eyes`, `+1`, ...) to comment `comment_id` of issue
        `number`, or to the issue itself; GitHub keeps one per user and content, so
        reacting again changes nothing."""
        issue = self.repo.get_issue(number)
        if comment_id is None:
            issue.create_reaction(content)
        else:
            issue.get_comment(comment_id).create_reaction(content)

    def find_pull(self, head: str) -> PullInfo | None:
        """The open pull request from `head`, else the most recent merged one."""
        owner = self.full_name.split("/")[0]
        pulls = [_pull_info(p) for p in self.repo.get_pulls(state="all", head=f"{owner}:{head}")]
        open_pulls = [p for p in pulls if p.state == "open"]
        merged = [p for p in pulls if p.merged]
        candidates = open_pulls or merged
        return candidates[0] if candidates else None

    def ensure_pull(
        self, head: str, base: str, title: str, body: str, draft: bool = False
    ) -> tuple[PullInfo, bool]:
        existing = self.find_pull(head)
        if existing is not None:
            return existing, False
        try:
            created = self.repo.create_pull(
                title=title, body=body, head=head, base=base, draft=draft
            )
        except GithubException as exc:
            # Another attempt opened it between our lookup and create.
            again = self.find_pull(head) if exc.status == 422 else None
            if again is None:
                raise
            return again, False
        return _pull_info(created), True
