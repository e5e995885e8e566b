"""A stateful local GitHub REST API for tests, benchmarks and the demo.

It serves the subset of the REST API that agentfleet drives through PyGithub: repositories,
issues, labels, comments, pull requests (files, merge), branches and git refs, webhooks
and GitHub App installation tokens. The JSON shapes, pagination `Link` headers and
404/422 errors are GitHub's, so the real PyGithub client runs against it unchanged with
`base_url=fake.base_url`.

Each repository is backed by a local bare git repository: clients clone and push over its
`clone_url` with Git's smart HTTP protocol (`git http-backend`, authenticated with the
token as Basic auth, as github.com does), so workers in Pods reach it like GitHub; and
branches, refs, pull-request heads, diffs and merges are read from and written to that
repository with git itself.

Webhooks registered with `POST /repos/{owner}/{repo}/hooks` are delivered for real: an
HTTP POST signed with `X-Hub-Signature-256`, from a background thread, like GitHub does.

GitHub App installation tokens are scoped as GitHub scopes them: `POST
/app/installations/{id}/access_tokens` takes `repositories` and `permissions`, and the
token it returns is refused (404) on any other repository, refused (403, "Resource not
accessible by integration") on an endpoint its permissions do not cover (REST and git
alike: a push needs `contents: write`), refused (401) once it has expired (`clock` and
`token_lifetime` are injectable) or been revoked (`DELETE /installation/token`). Personal
access tokens (`add_token`) act with their user's whole access, as on GitHub.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import hmac
import itertools
import json
import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode

import httpx
import jwt

from agentfleet.dev.testing._http import FakeHTTPServer, Request, Response

API_PREFIX = "/api/v3"
_GIT_PATH = re.compile(
    r"/(?P<owner>[^/]+)/(?P<repo>[^/]+)\.git/(?P<service>info/refs|git-upload-pack|git-receive-pack)\Z"
)
_DOCS = "https://docs.github.com/rest"
_CLOSING = re.compile(r"(?i)\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)\s+#(\d+)\b")
_GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "GitHub",
    "GIT_AUTHOR_EMAIL": "noreply@github.com",
    "GIT_COMMITTER_NAME": "GitHub",
    "GIT_COMMITTER_EMAIL": "noreply@github.com",
}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors

    def response(self) -> Response:
        body: dict[str, Any] = {"message": self.message, "documentation_url": _DOCS}
        if self.errors is not None:
            body["errors"] = self.errors
        body["status"] = str(self.status)
        return Response(self.status, body)


def _validation_failed(resource: str, message: str, field_name: str | None = None) -> ApiError:
    error: dict[str, Any] = {"resource": resource, "code": "custom", "message": message}
    if field_name:
        error = {"resource": resource, "field": field_name, "code": "invalid", "message": message}
    return ApiError(422, "Validation Failed", [error])


@dataclass
class _Issue:
    number: int
    id: int
    title: str
    body: str | None
    author: str
    labels: list[str]
    created_at: str
    updated_at: str
    state: str = "open"
    state_reason: str | None = None
    closed_at: str | None = None
    comment_ids: list[int] = field(default_factory=list)
    pull: _Pull | None = None
    assignees: list[str] = field(default_factory=list)
    reactions: list[tuple[str, str]] = field(default_factory=list)
    """(login, content), one per pair, as GitHub keeps them."""


@dataclass
class _Pull:
    id: int
    head: str
    base: str
    merged_at: str | None = None
    merge_commit_sha: str | None = None
    merged_by: str | None = None
    draft: bool = False
    reviewers: list[str] = field(default_factory=list)


@dataclass
class _Comment:
    id: int
    issue_number: int
    body: str
    author: str
    created_at: str
    updated_at: str
    reactions: list[tuple[str, str]] = field(default_factory=list)


_LEVELS = {"read": 1, "write": 2, "admin": 3}
_NOT_ACCESSIBLE = "Resource not accessible by integration"


@dataclass(frozen=True)
class MintedToken:
    """An installation token the fake issued, and what it may do."""

    token: str = field(repr=False)
    installation_id: int
    login: str
    repositories: frozenset[str] | None
    """Full names of the repositories it reaches; None for all of the installation's."""
    permissions: dict[str, str]
    expires_at: datetime


@dataclass(frozen=True)
class _Installation:
    app_id: int
    permissions: dict[str, str]
    repositories: frozenset[str] | None
    """Full names of the repositories it was installed on; None for every repository."""


@dataclass(frozen=True)
class _Need:
    """What an endpoint needs from an installation token: `level` of any of `permissions`.
    On an endpoint about one issue or comment, the alternatives after the first
    (`pull_requests`) count only when that issue is a pull request, as on GitHub."""

    permissions: tuple[str, ...]
    level: str


def _need(spec: str) -> _Need:
    names, _, level = spec.partition(":")
    return _Need(tuple(names.split("|")), level)


_USER_ONLY = _Need((), "")
"""Endpoints about the authenticated user: installation tokens are refused."""


@dataclass
class _Hook:
    id: int
    url: str
    secret: str
    events: list[str]
    active: bool
    created_at: str


@dataclass
class Delivery:
    """One webhook delivery attempt, as GitHub's "Recent Deliveries" shows it."""

    guid: str
    hook_id: int
    event: str
    action: str | None
    payload: bytes
    status_code: int | None = None
    error: str | None = None


@dataclass
class _ReviewComment:
    id: int
    pull: int
    body: str
    author: str
    path: str
    line: int | None
    commit_id: str
    diff_hunk: str
    in_reply_to: int | None
    created_at: str
    reactions: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Repo:
    id: int
    owner: str
    name: str
    default_branch: str
    git_dir: Path
    created_at: str
    labels: dict[str, dict[str, Any]] = field(default_factory=dict)
    issues: dict[int, _Issue] = field(default_factory=dict)
    comments: dict[int, _Comment] = field(default_factory=dict)
    hooks: dict[int, _Hook] = field(default_factory=dict)
    collaborators: dict[str, str] = field(default_factory=dict)
    """login: permission (`admin`, `maintain`, `write`, `triage`, `read`)."""
    review_comments: dict[int, _ReviewComment] = field(default_factory=dict)
    check_runs: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


class FakeGitHub(FakeHTTPServer):
    """GitHub for one test session: `create_repo`, `add_token`, then point PyGithub at it."""

    def __init__(
        self,
        workdir: Path | None = None,
        per_page: int = 30,
        clock: Callable[[], datetime] | None = None,
        token_lifetime: timedelta = timedelta(hours=1),
    ) -> None:
        super().__init__()
        self.clock = clock or (lambda: datetime.now(UTC))
        """The fake's time, for installation tokens' expiry."""
        self.token_lifetime = token_lifetime
        self.minted: list[MintedToken] = []
        """Every installation token issued, in order."""
        self._owns_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="agentfleet-fake-github-"))
        self.default_per_page = per_page
        self.repos: dict[str, _Repo] = {}
        self.deliveries: list[Delivery] = []
        self._tokens: dict[str, str] = {}
        self._grants: dict[str, MintedToken] = {}
        self._apps: dict[int, tuple[str, str]] = {}
        self._installations: dict[int, _Installation] = {}
        self._user_ids: dict[str, int] = {}
        self._ids = itertools.count(1000)
        self._lock = threading.RLock()
        self._outbox: queue.Queue[Delivery | None] = queue.Queue()
        self._deliverer: threading.Thread | None = None
        self._rate_limited_until: float | None = None
        self._register_routes()

    # ---- set-up and inspection (Python side, for tests) -------------------------------

    @property
    def base_url(self) -> str:
        return self.origin + API_PREFIX

    def rate_limit_until(self, reset_epoch: float | None) -> None:
        """Answer every authenticated call as GitHub does once the primary rate limit is
        spent (403, `x-ratelimit-remaining: 0`, reset time), until `reset_epoch`; None
        lifts it."""
        with self._lock:
            self._rate_limited_until = reset_epoch

    def add_token(self, token: str, login: str, bot: bool = False) -> None:
        """Accept `token` as the credentials of user `login` (a `[bot]` login for apps)."""
        with self._lock:
            self._tokens[token] = login + ("[bot]" if bot and not login.endswith("[bot]") else "")

    def register_app(
        self,
        app_id: int,
        slug: str,
        public_key_pem: str,
        installation_id: int,
        permissions: dict[str, str] | None = None,
        repositories: list[str] | None = None,
    ) -> None:
        """A GitHub App whose JWTs (RS256) verify with `public_key_pem`, installed once,
        with `permissions` (default: contents, issues and pull requests to write) on
        `repositories` (full names; default: every repository)."""
        granted = permissions or {
            "contents": "write",
            "issues": "write",
            "pull_requests": "write",
        }
        with self._lock:
            self._apps[app_id] = (slug, public_key_pem)
            self._installations[installation_id] = _Installation(
                app_id,
                {"metadata": "read", **granted},
                frozenset(repositories) if repositories is not None else None,
            )

    def token_is_valid(self, token: str) -> bool:
        """Whether the fake would accept `token` now (known, not expired, not revoked)."""
        with self._lock:
            return token in self._tokens and not self._expired(token)

    def create_repo(self, owner: str, name: str, default_branch: str = "main") -> Path:
        """An empty repository; returns the path of its bare git repository."""
        git_dir = self.workdir / owner / f"{name}.git"
        git_dir.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "git",
                "init",
                "--quiet",
                "--bare",
                f"--initial-branch={default_branch}",
                str(git_dir),
            ],
            check=True,
        )
        with self._lock:
            repo = _Repo(
                id=next(self._ids),
                owner=owner,
                name=name,
                default_branch=default_branch,
                git_dir=git_dir,
                created_at=_now(),
            )
            self.repos[repo.full_name] = repo
        return git_dir

    def add_collaborator(self, full_name: str, login: str, permission: str = "write") -> None:
        with self._lock:
            self.repos[full_name].collaborators[login] = permission

    def reactions(
        self, full_name: str, number: int, comment_id: int | None = None
    ) -> list[tuple[str, str]]:
        """(login, content) of the reactions on an issue, or on one of its comments."""
        with self._lock:
            repo = self.repos[full_name]
            if comment_id is None:
                return list(repo.issues[number].reactions)
            return list(repo.comments[comment_id].reactions)

    def ready_for_review(self, full_name: str, number: int) -> None:
        """Take a draft pull request out of draft, as "Ready for review" in GitHub's UI
        does (the REST API cannot; a draft cannot be merged)."""
        with self._lock:
            pull = self.repos[full_name].issues[number].pull
            if pull is None:
                raise KeyError(f"#{number} of {full_name} is not a pull request")
            pull.draft = False

    def issue_titles(self, full_name: str) -> list[str]:
        with self._lock:
            return [i.title for i in self.repos[full_name].issues.values() if i.pull is None]

    def pull_heads(self, full_name: str) -> list[str]:
        with self._lock:
            return [i.pull.head for i in self.repos[full_name].issues.values() if i.pull]

    def comment_bodies(self, full_name: str, number: int) -> list[str]:
        with self._lock:
            repo = self.repos[full_name]
            return [repo.comments[c].body for c in repo.issues[number].comment_ids]

    def branches(self, full_name: str) -> dict[str, str]:
        with self._lock:
            return _branches(self.repos[full_name].git_dir)

    def redeliver(self, delivery: Delivery) -> None:
        """Send a recorded delivery again, as "Redeliver" in GitHub's UI does."""
        self._outbox.put(
            Delivery(
                guid=delivery.guid,
                hook_id=delivery.hook_id,
                event=delivery.event,
                action=delivery.action,
                payload=delivery.payload,
            )
        )

    def start(self) -> FakeGitHub:
        super().start()
        self._deliverer = threading.Thread(target=self._deliver_loop, daemon=True)
        self._deliverer.start()
        return self

    def stop(self) -> None:
        if self._deliverer is not None:
            self._outbox.put(None)
            self._deliverer.join(timeout=10)
            self._deliverer = None
        super().stop()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # ---- HTTP plumbing ---------------------------------------------------------------

    def _register_routes(self) -> None:
        repo = API_PREFIX + r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
        # (method, path, handler, what an installation token needs; None: nothing more
        # than being valid, or the endpoint authenticates with the App's JWT instead).
        issue_read, issue_write = (
            _need("issues|pull_requests:read"),
            _need("issues|pull_requests:write"),
        )
        routes: list[tuple[str, str, Any, _Need | None]] = [
            ("GET", r"/user", self._get_authenticated_user, _USER_ONLY),
            ("GET", r"/users/(?P<login>[^/]+)", self._get_user, None),
            (
                "POST",
                r"/app/installations/(?P<installation>\d+)/access_tokens",
                self._app_token,
                None,
            ),
            ("GET", r"/app", self._get_app, None),
            ("DELETE", r"/installation/token", self._revoke_token, None),
            ("GET", r"/installation", self._repo_installation, None),
            ("GET", "", self._get_repo, _need("metadata:read")),
            ("GET", r"/issues", self._list_issues, _need("issues:read")),
            ("POST", r"/issues", self._create_issue, _need("issues:write")),
            ("GET", r"/issues/comments/(?P<comment>\d+)", self._get_comment, issue_read),
            ("PATCH", r"/issues/comments/(?P<comment>\d+)", self._edit_comment, issue_write),
            ("DELETE", r"/issues/comments/(?P<comment>\d+)", self._delete_comment, issue_write),
            ("GET", r"/issues/(?P<number>\d+)", self._get_issue, issue_read),
            ("PATCH", r"/issues/(?P<number>\d+)", self._edit_issue, issue_write),
            ("GET", r"/issues/(?P<number>\d+)/comments", self._list_comments, issue_read),
            ("POST", r"/issues/(?P<number>\d+)/comments", self._create_comment, issue_write),
            ("GET", r"/issues/(?P<number>\d+)/labels", self._list_issue_labels, issue_read),
            ("POST", r"/issues/(?P<number>\d+)/labels", self._add_issue_labels, issue_write),
            (
                "DELETE",
                r"/issues/(?P<number>\d+)/labels/(?P<label>[^/]+)",
                self._remove_label,
                issue_write,
            ),
            (
                "POST",
                r"/issues/(?P<number>\d+)/assignees",
                self._add_assignees,
                issue_write,
            ),
            ("POST", r"/issues/(?P<number>\d+)/reactions", self._react_issue, issue_write),
            (
                "GET",
                r"/pulls/(?P<number>\d+)/comments",
                self._list_review_comments,
                _need("pull_requests:read"),
            ),
            (
                "POST",
                r"/pulls/(?P<number>\d+)/comments",
                self._create_review_comment,
                _need("pull_requests:write"),
            ),
            (
                "POST",
                r"/pulls/(?P<number>\d+)/comments/(?P<comment>\d+)/replies",
                self._reply_review_comment,
                _need("pull_requests:write"),
            ),
            (
                "GET",
                r"/pulls/comments/(?P<comment>\d+)",
                self._get_review_comment,
                _need("pull_requests:read"),
            ),
            (
                "POST",
                r"/pulls/comments/(?P<comment>\d+)/reactions",
                self._react_review_comment,
                _need("pull_requests:write"),
            ),
            ("GET", r"/commits/(?P<sha>[0-9a-f]{40})", self._get_commit, _need("contents:read")),
            ("POST", r"/check-runs", self._create_check_run, _need("checks:write")),
            ("GET", r"/check-runs/(?P<run>\d+)", self._get_check_run, _need("checks:read")),
            (
                "POST",
                r"/issues/comments/(?P<comment>\d+)/reactions",
                self._react_comment,
                issue_write,
            ),
            (
                "GET",
                r"/collaborators/(?P<login>[^/]+)/permission",
                self._collaborator_permission,
                _need("metadata:read"),
            ),
            ("GET", r"/labels", self._list_labels, issue_read),
            ("POST", r"/labels", self._create_label, issue_write),
            ("GET", r"/labels/(?P<label>[^/]+)", self._get_label, issue_read),
            ("GET", r"/pulls", self._list_pulls, _need("pull_requests:read")),
            ("POST", r"/pulls", self._create_pull, _need("pull_requests:write")),
            ("GET", r"/pulls/(?P<number>\d+)", self._get_pull, _need("pull_requests:read")),
            ("PATCH", r"/pulls/(?P<number>\d+)", self._edit_pull, _need("pull_requests:write")),
            (
                "GET",
                r"/pulls/(?P<number>\d+)/files",
                self._pull_files,
                _need("pull_requests:read"),
            ),
            (
                "GET",
                r"/pulls/(?P<number>\d+)/merge",
                self._is_merged,
                _need("pull_requests:read"),
            ),
            ("PUT", r"/pulls/(?P<number>\d+)/merge", self._merge_pull, _need("contents:write")),
            (
                "POST",
                r"/pulls/(?P<number>\d+)/requested_reviewers",
                self._request_reviewers,
                _need("pull_requests:write"),
            ),
            ("GET", r"/branches", self._list_branches, _need("contents:read")),
            ("GET", r"/branches/(?P<branch>.+)", self._get_branch, _need("contents:read")),
            ("GET", r"/git/ref/(?P<ref>.+)", self._get_ref, _need("contents:read")),
            ("GET", r"/git/matching-refs/(?P<ref>.*)", self._matching_refs, _need("contents:read")),
            ("POST", r"/git/refs", self._create_ref, _need("contents:write")),
            ("DELETE", r"/git/refs/(?P<ref>.+)", self._delete_ref, _need("contents:write")),
            ("GET", r"/hooks", self._list_hooks, _need("repository_hooks:read")),
            ("POST", r"/hooks", self._create_hook, _need("repository_hooks:write")),
        ]
        for method, pattern, handler, need in routes:
            guarded = self._guarded(handler, need) if need is not None else handler
            if pattern.startswith(("/user", "/app", "/installation/")):
                self.route(method, API_PREFIX + pattern, guarded)
            else:
                self.route(method, repo + pattern, guarded)

    def _guarded(self, handler: Any, need: _Need) -> Any:
        def guarded(request: Request) -> Response:
            self._authorize(request, need)
            response: Response = handler(request)
            return response

        return guarded

    def _grant(self, request: Request) -> MintedToken | None:
        """The installation token a request authenticated with (None for user tokens)."""
        _, _, token = request.headers.get("authorization", "").partition(" ")
        return self._grants.get(token)

    def _authorize(self, request: Request, need: _Need) -> None:
        """Refuse an installation token what its scope does not cover, as GitHub does: a
        repository it was not minted for is not found, a permission it lacks is 403."""
        grant = self._grant(request)
        if grant is None:
            return
        if need is _USER_ONLY:
            raise ApiError(403, _NOT_ACCESSIBLE)
        if "owner" in request.params:
            full_name = f"{request.params['owner']}/{request.params['repo']}"
            if grant.repositories is not None and full_name not in grant.repositories:
                raise ApiError(404, "Not Found")
        alternatives = need.permissions
        if len(alternatives) > 1 and not self._about_a_pull(request):
            alternatives = alternatives[:1]
        if not any(_allows(grant.permissions.get(name), need.level) for name in alternatives):
            raise ApiError(403, _NOT_ACCESSIBLE)

    def _about_a_pull(self, request: Request) -> bool:
        """True when the endpoint is about a pull request's issue or one of its comments,
        or about no single issue at all (labels: either permission will do)."""
        repo = self.repos.get(f"{request.params['owner']}/{request.params['repo']}")
        if repo is None:
            return False
        number: int | None = None
        if "number" in request.params:
            number = int(request.params["number"])
        elif "comment" in request.params:
            comment = repo.comments.get(int(request.params["comment"]))
            number = comment.issue_number if comment is not None else None
        else:
            return True
        issue = repo.issues.get(number) if number is not None else None
        return issue is not None and issue.pull is not None

    def _expired(self, token: str) -> bool:
        grant = self._grants.get(token)
        return grant is not None and self.clock() >= grant.expires_at

    def dispatch(self, request: Request) -> Response:
        git = _GIT_PATH.match(request.path)
        if git is not None:
            # Git has its own locking on the repository: no need to hold the API's lock.
            return self._git_http(request, git["owner"], git["repo"], git["service"])
        with self._lock:
            try:
                # GitHub App endpoints authenticate with the app's JWT instead of a token.
                app_endpoint = request.path == API_PREFIX + "/app" or request.path.startswith(
                    API_PREFIX + "/app/"
                )
                if not app_endpoint and not request.path.endswith("/installation"):
                    # (`DELETE /installation/token` authenticates with the token itself.)
                    request.principal = self._authenticate(request)
                    limited = self._rate_limited_until
                    if limited is not None and time.time() < limited:
                        return Response(
                            403,
                            {
                                "message": f"API rate limit exceeded for {request.principal}.",
                                "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
                            },
                            headers={
                                "x-ratelimit-limit": "5000",
                                "x-ratelimit-remaining": "0",
                                "x-ratelimit-used": "5000",
                                "x-ratelimit-reset": str(int(limited)),
                                "x-ratelimit-resource": "core",
                            },
                        )
                return super().dispatch(request)
            except ApiError as exc:
                return exc.response()

    def _git_http(self, request: Request, owner: str, name: str, service: str) -> Response:
        """Git's smart HTTP protocol through `git http-backend` (CGI), as a Git host serves
        it: Basic auth whose password is a token, for reads and pushes alike."""
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        login = grant = None
        with self._lock:
            if scheme.lower() == "basic":
                with contextlib.suppress(ValueError, UnicodeDecodeError):
                    _, _, token = base64.b64decode(credentials).decode().partition(":")
                    if not self._expired(token):
                        login, grant = self._tokens.get(token), self._grants.get(token)
            repo = self.repos.get(f"{owner}/{name}")
        if login is None:
            return Response(
                401, b"Authentication failed\n", {"WWW-Authenticate": 'Basic realm="GitHub"'}
            )
        if repo is None or (
            grant is not None
            and grant.repositories is not None
            and repo.full_name not in grant.repositories
        ):
            return Response(404, b"Repository not found.\n")
        pushing = service == "git-receive-pack" or request.arg("service") == "git-receive-pack"
        level = "write" if pushing else "read"
        if grant is not None and not _allows(grant.permissions.get("contents"), level):
            return Response(
                403, f"Permission to {repo.full_name}.git denied to {login}.\n".encode()
            )
        query = "&".join(f"{k}={v}" for k, values in request.query.items() for v in values)
        environment = {
            "PATH": os.environ.get("PATH", os.defpath),
            "GIT_PROJECT_ROOT": str(repo.git_dir.parent.parent),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": f"/{owner}/{name}.git/{service}",
            "REQUEST_METHOD": request.method,
            "QUERY_STRING": query,
            "CONTENT_TYPE": request.headers.get("content-type", ""),
            "CONTENT_LENGTH": str(len(request.body)),
            "REMOTE_USER": login,  # enables pushes (receive-pack) for authenticated users
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_CONTENT_ENCODING": request.headers.get("content-encoding", ""),
            "GIT_PROTOCOL": request.headers.get("git-protocol", ""),
        }
        result = subprocess.run(
            ["git", "http-backend"],
            input=request.body,
            env=environment,
            capture_output=True,
            timeout=300,
            check=False,
        )
        head, _, body = result.stdout.partition(b"\r\n\r\n")
        status, headers = 200, {}
        for line in head.decode(errors="replace").split("\r\n"):
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.split()[0])
            elif key:
                headers[key] = value.strip()
        if result.returncode != 0 and status == 200:
            status = 500
            body = result.stderr
        return Response(status, body, headers)

    def _authenticate(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        login = self._tokens.get(token) if scheme.lower() in {"token", "bearer"} else None
        if login is None or self._expired(token):
            raise ApiError(401, "Bad credentials")
        return login

    def _repo(self, request: Request) -> _Repo:
        repo = self.repos.get(f"{request.params['owner']}/{request.params['repo']}")
        if repo is None:
            raise ApiError(404, "Not Found")
        return repo

    def _page(self, request: Request, items: list[dict[str, Any]]) -> Response:
        per_page = min(int(request.arg("per_page") or self.default_per_page), 100)
        page = max(int(request.arg("page") or 1), 1)
        last = max((len(items) + per_page - 1) // per_page, 1)
        chunk = items[(page - 1) * per_page : page * per_page]
        links = []

        def link(number: int, rel: str) -> str:
            query = {k: v[0] for k, v in request.query.items()}
            query.update(page=str(number), per_page=str(per_page))
            return f'<{self.origin}{request.path}?{urlencode(query)}>; rel="{rel}"'

        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        return Response(200, chunk, {"Link": ", ".join(links)} if links else {})

    # ---- JSON shapes -----------------------------------------------------------------

    def _user_json(self, login: str) -> dict[str, Any]:
        user_id = self._user_ids.setdefault(login, next(self._ids))
        return {
            "login": login,
            "id": user_id,
            "node_id": f"U_{user_id}",
            "avatar_url": "",
            "url": f"{self.base_url}/users/{quote(login)}",
            "html_url": f"{self.origin}/{quote(login)}",
            "type": "Bot" if login.endswith("[bot]") else "User",
            "site_admin": False,
        }

    def _repo_json(self, repo: _Repo) -> dict[str, Any]:
        url = f"{self.base_url}/repos/{repo.full_name}"
        return {
            "id": repo.id,
            "node_id": f"R_{repo.id}",
            "name": repo.name,
            "full_name": repo.full_name,
            "owner": self._user_json(repo.owner),
            "private": False,
            "html_url": f"{self.origin}/{repo.full_name}",
            "url": url,
            "issues_url": url + "/issues{/number}",
            "pulls_url": url + "/pulls{/number}",
            "clone_url": f"{self.origin}/{repo.full_name}.git",
            "default_branch": repo.default_branch,
            "has_issues": True,
            "archived": False,
            "fork": False,
            "created_at": repo.created_at,
            "updated_at": repo.created_at,
            "permissions": {"admin": True, "push": True, "pull": True},
        }

    def _label_json(self, repo: _Repo, name: str) -> dict[str, Any]:
        return repo.labels[name]

    def _ensure_label(self, repo: _Repo, name: str) -> None:
        if name not in repo.labels:
            label_id = next(self._ids)
            repo.labels[name] = {
                "id": label_id,
                "node_id": f"LA_{label_id}",
                "url": f"{self.base_url}/repos/{repo.full_name}/labels/{quote(name)}",
                "name": name,
                "color": "ededed",
                "default": False,
                "description": None,
            }

    def _association(self, repo: _Repo, login: str) -> str:
        if login == repo.owner:
            return "OWNER"
        return "COLLABORATOR" if login in repo.collaborators else "NONE"

    def _permission(self, repo: _Repo, login: str) -> str:
        """GitHub's answer for a public repository: the owner is admin, collaborators have
        what they were given, everyone else can read."""
        if login == repo.owner:
            return "admin"
        return repo.collaborators.get(login, "read")

    def _issue_json(self, repo: _Repo, issue: _Issue) -> dict[str, Any]:
        url = f"{self.base_url}/repos/{repo.full_name}/issues/{issue.number}"
        data: dict[str, Any] = {
            "id": issue.id,
            "node_id": f"I_{issue.id}",
            "url": url,
            "repository_url": f"{self.base_url}/repos/{repo.full_name}",
            "labels_url": url + "/labels{/name}",
            "comments_url": url + "/comments",
            "events_url": url + "/events",
            "html_url": f"{self.origin}/{repo.full_name}/issues/{issue.number}",
            "number": issue.number,
            "state": issue.state,
            "state_reason": issue.state_reason,
            "title": issue.title,
            "body": issue.body,
            "user": self._user_json(issue.author),
            "labels": [self._label_json(repo, name) for name in issue.labels],
            "assignee": self._user_json(issue.assignees[0]) if issue.assignees else None,
            "assignees": [self._user_json(login) for login in issue.assignees],
            "milestone": None,
            "locked": False,
            "comments": len(issue.comment_ids),
            "created_at": issue.created_at,
            "updated_at": issue.updated_at,
            "closed_at": issue.closed_at,
            "author_association": self._association(repo, issue.author),
        }
        if issue.pull is not None:
            pulls = f"{self.base_url}/repos/{repo.full_name}/pulls/{issue.number}"
            data["pull_request"] = {
                "url": pulls,
                "html_url": f"{self.origin}/{repo.full_name}/pull/{issue.number}",
                "diff_url": f"{self.origin}/{repo.full_name}/pull/{issue.number}.diff",
                "patch_url": f"{self.origin}/{repo.full_name}/pull/{issue.number}.patch",
                "merged_at": issue.pull.merged_at,
            }
        return data

    def _comment_json(self, repo: _Repo, comment: _Comment) -> dict[str, Any]:
        base = f"{self.base_url}/repos/{repo.full_name}"
        return {
            "id": comment.id,
            "node_id": f"IC_{comment.id}",
            "url": f"{base}/issues/comments/{comment.id}",
            "html_url": f"{self.origin}/{repo.full_name}/issues/{comment.issue_number}"
            f"#issuecomment-{comment.id}",
            "issue_url": f"{base}/issues/{comment.issue_number}",
            "body": comment.body,
            "user": self._user_json(comment.author),
            "created_at": comment.created_at,
            "updated_at": comment.updated_at,
            "author_association": self._association(repo, comment.author),
        }

    def _branch_end(self, repo: _Repo, branch: str, sha: str | None) -> dict[str, Any]:
        return {
            "label": f"{repo.owner}:{branch}",
            "ref": branch,
            "sha": sha,
            "user": self._user_json(repo.owner),
            "repo": self._repo_json(repo),
        }

    def _pull_json(
        self, repo: _Repo, issue: _Issue, full: bool = True, mergeable_known: bool = True
    ) -> dict[str, Any]:
        """A pull request; `full=False` is the "simple" form list endpoints return."""
        assert issue.pull is not None
        pull = issue.pull
        branches = _branches(repo.git_dir)
        head_sha = branches.get(pull.head)
        base_sha = branches.get(pull.base)
        url = f"{self.base_url}/repos/{repo.full_name}/pulls/{issue.number}"
        data: dict[str, Any] = {
            "id": pull.id,
            "node_id": f"PR_{pull.id}",
            "number": issue.number,
            "url": url,
            "html_url": f"{self.origin}/{repo.full_name}/pull/{issue.number}",
            "diff_url": f"{self.origin}/{repo.full_name}/pull/{issue.number}.diff",
            "patch_url": f"{self.origin}/{repo.full_name}/pull/{issue.number}.patch",
            "issue_url": f"{self.base_url}/repos/{repo.full_name}/issues/{issue.number}",
            "comments_url": f"{self.base_url}/repos/{repo.full_name}/issues/{issue.number}"
            "/comments",
            "state": issue.state,
            "locked": False,
            "title": issue.title,
            "body": issue.body,
            "user": self._user_json(issue.author),
            "labels": [self._label_json(repo, name) for name in issue.labels],
            "created_at": issue.created_at,
            "updated_at": issue.updated_at,
            "closed_at": issue.closed_at,
            "merged_at": pull.merged_at,
            "merge_commit_sha": pull.merge_commit_sha,
            "head": self._branch_end(repo, pull.head, head_sha),
            "base": self._branch_end(repo, pull.base, base_sha),
            "draft": pull.draft,
            "requested_reviewers": [self._user_json(login) for login in pull.reviewers],
            "author_association": self._association(repo, issue.author),
        }
        if not full:
            return data
        mergeable = None
        # GitHub answers a new pull request with mergeable: null and works it out later.
        if (
            mergeable_known
            and pull.merged_at is None
            and head_sha
            and base_sha
            and issue.state == "open"
        ):
            mergeable = _merge_tree(repo.git_dir, base_sha, head_sha) is not None
        stats = _diff_stats(repo.git_dir, base_sha, head_sha)
        data.update(
            merged=pull.merged_at is not None,
            mergeable=mergeable,
            mergeable_state="clean" if mergeable else "unknown",
            merged_by=self._user_json(pull.merged_by) if pull.merged_by else None,
            comments=len(issue.comment_ids),
            commits=_count_commits(repo.git_dir, base_sha, head_sha)
            if head_sha and base_sha
            else 0,
            additions=sum(s["additions"] for s in stats),
            deletions=sum(s["deletions"] for s in stats),
            changed_files=len(stats),
        )
        return data

    def _ref_json(self, repo: _Repo, ref: str, sha: str) -> dict[str, Any]:
        return {
            "ref": ref,
            "node_id": f"REF_{sha[:12]}",
            "url": f"{self.base_url}/repos/{repo.full_name}/git/{ref}",
            "object": {
                "type": "commit",
                "sha": sha,
                "url": f"{self.base_url}/repos/{repo.full_name}/git/commits/{sha}",
            },
        }

    # ---- users and apps --------------------------------------------------------------

    def _get_authenticated_user(self, request: Request) -> Response:
        return Response(200, self._user_json(request.principal))

    def _get_user(self, request: Request) -> Response:
        return Response(200, self._user_json(unquote(request.params["login"])))

    def _app_from_jwt(self, request: Request) -> int:
        """The app a request's RS256 JWT (`Authorization: Bearer`) was signed by."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            raise ApiError(401, "A JSON web token could not be decoded")
        try:
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
            app_id = int(str(issuer))
            _, public_key = self._apps[app_id]
            jwt.decode(token, public_key, algorithms=["RS256"])
        except (jwt.PyJWTError, KeyError, ValueError) as exc:
            raise ApiError(401, f"A JSON web token could not be decoded: {exc}") from exc
        return app_id

    def _app_json(self, app_id: int) -> dict[str, Any]:
        slug, _ = self._apps[app_id]
        return {
            "id": app_id,
            "slug": slug,
            "node_id": f"A_{app_id}",
            "name": slug,
            "owner": self._user_json(slug),
            "html_url": f"{self.origin}/apps/{slug}",
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
            "permissions": {"issues": "write", "pull_requests": "write", "contents": "write"},
            "events": ["issues", "issue_comment", "pull_request"],
        }

    def _get_app(self, request: Request) -> Response:
        return Response(200, self._app_json(self._app_from_jwt(request)))

    def _repo_installation(self, request: Request) -> Response:
        app_id = self._app_from_jwt(request)
        repo = self._repo(request)
        installation_id = next(
            (
                i
                for i, installation in self._installations.items()
                if installation.app_id == app_id
                and (
                    installation.repositories is None or repo.full_name in installation.repositories
                )
            ),
            None,
        )
        if installation_id is None:
            raise ApiError(404, "Not Found")
        slug, _ = self._apps[app_id]
        return Response(
            200,
            {
                "id": installation_id,
                "app_id": app_id,
                "app_slug": slug,
                "account": self._user_json(repo.owner),
                "target_type": "User",
                "access_tokens_url": f"{self.base_url}/app/installations/{installation_id}"
                "/access_tokens",
                "repositories_url": f"{self.base_url}/installation/repositories",
                "html_url": f"{self.origin}/settings/installations/{installation_id}",
                "permissions": self._app_json(app_id)["permissions"],
                "events": self._app_json(app_id)["events"],
                "created_at": "2024-01-01T00:00:00Z",
                "updated_at": "2024-01-01T00:00:00Z",
            },
        )

    def _app_token(self, request: Request) -> Response:
        """An installation token, narrowed to the `repositories` (names in the
        installation's account) and `permissions` the body asks for, as GitHub narrows it."""
        installation_id = int(request.params["installation"])
        installation = self._installations.get(installation_id)
        if installation is None or installation.app_id != self._app_from_jwt(request):
            raise ApiError(404, "Not Found")
        body = request.json() or {}
        asked = body.get("permissions") or {
            k: v for k, v in installation.permissions.items() if k != "metadata"
        }
        for permission, level in asked.items():
            if level not in _LEVELS:
                raise _validation_failed("Permissions", f"{level!r} is not a level", permission)
            if not _allows(installation.permissions.get(permission), level):
                raise ApiError(
                    422, "The permissions requested are not granted to this installation."
                )
        reachable = [
            repo
            for repo in self.repos.values()
            if installation.repositories is None or repo.full_name in installation.repositories
        ]
        wanted = [("name", name) for name in body.get("repositories") or []]
        wanted += [("id", repo_id) for repo_id in body.get("repository_ids") or []]
        selected: dict[str, _Repo] = {}
        for key, value in wanted:
            matches = [r for r in reachable if getattr(r, key) == value]
            if len(matches) != 1:
                raise ApiError(
                    422,
                    "There is at least one repository that does not exist or is not "
                    "accessible to the parent installation.",
                )
            selected[matches[0].full_name] = matches[0]
        if selected:
            repositories: frozenset[str] | None = frozenset(selected)
        else:
            repositories = installation.repositories
        slug, _ = self._apps[installation.app_id]
        grant = MintedToken(
            token=f"ghs_{uuid.uuid4().hex}",
            installation_id=installation_id,
            login=f"{slug}[bot]",
            repositories=repositories,
            permissions={"metadata": "read", **asked},
            expires_at=(self.clock() + self.token_lifetime).replace(microsecond=0),
        )
        self._tokens[grant.token] = grant.login
        self._grants[grant.token] = grant
        self.minted.append(grant)
        data: dict[str, Any] = {
            "token": grant.token,
            "expires_at": grant.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "permissions": grant.permissions,
            "repository_selection": "selected" if selected else "all",
        }
        if selected:
            data["repositories"] = [self._repo_json(r) for r in selected.values()]
        return Response(201, data)

    def _revoke_token(self, request: Request) -> Response:
        """`DELETE /installation/token`: the token that authenticates the call stops working."""
        _, _, token = request.headers.get("authorization", "").partition(" ")
        if token not in self._grants:
            raise ApiError(403, _NOT_ACCESSIBLE)
        del self._tokens[token]
        del self._grants[token]
        return Response(204)

    # ---- repositories, issues, comments, labels --------------------------------------

    def _get_repo(self, request: Request) -> Response:
        return Response(200, self._repo_json(self._repo(request)))

    def _issue(self, repo: _Repo, number: str | int) -> _Issue:
        issue = repo.issues.get(int(number))
        if issue is None:
            raise ApiError(404, "Not Found")
        return issue

    def _list_issues(self, request: Request) -> Response:
        repo = self._repo(request)
        state = request.arg("state", "open")
        wanted = [name for name in (request.arg("labels") or "").split(",") if name]
        creator = request.arg("creator")
        issues = [
            issue
            for issue in repo.issues.values()
            if state in {"all", issue.state}
            and all(name in issue.labels for name in wanted)
            and (creator is None or issue.author == creator)
        ]
        key = "updated_at" if request.arg("sort") == "updated" else "created_at"
        issues.sort(
            key=lambda i: (getattr(i, key), i.number), reverse=request.arg("direction") != "asc"
        )
        return self._page(request, [self._issue_json(repo, issue) for issue in issues])

    def _create_issue(self, request: Request) -> Response:
        repo = self._repo(request)
        body = request.json() or {}
        title = body.get("title")
        if not isinstance(title, str) or not title.strip():
            raise _validation_failed("Issue", "title is missing", "title")
        labels = [
            label if isinstance(label, str) else label["name"] for label in body.get("labels", [])
        ]
        for name in labels:
            self._ensure_label(repo, name)
        issue = _Issue(
            number=self._next_number(repo),
            id=next(self._ids),
            title=title,
            body=body.get("body"),
            author=request.principal,
            labels=list(dict.fromkeys(labels)),
            created_at=_now(),
            updated_at=_now(),
        )
        repo.issues[issue.number] = issue
        data = self._issue_json(repo, issue)
        self._emit(repo, "issues", {"action": "opened", "issue": data}, request)
        return Response(201, data)

    def _next_number(self, repo: _Repo) -> int:
        return max(repo.issues, default=0) + 1

    def _get_issue(self, request: Request) -> Response:
        repo = self._repo(request)
        return Response(200, self._issue_json(repo, self._issue(repo, request.params["number"])))

    def _edit_issue(self, request: Request) -> Response:
        repo = self._repo(request)
        issue = self._issue(repo, request.params["number"])
        body = request.json() or {}
        if "title" in body:
            issue.title = body["title"]
        if "body" in body:
            issue.body = body["body"]
        if "labels" in body:
            names = [lbl if isinstance(lbl, str) else lbl["name"] for lbl in body["labels"]]
            for name in names:
                self._ensure_label(repo, name)
            issue.labels = list(dict.fromkeys(names))
        if "state" in body and body["state"] != issue.state:
            self._set_state(repo, issue, body["state"], body.get("state_reason"), request)
        issue.updated_at = _now()
        return Response(200, self._issue_json(repo, issue))

    def _set_state(
        self, repo: _Repo, issue: _Issue, state: str, reason: str | None, request: Request
    ) -> None:
        if state not in {"open", "closed"}:
            raise _validation_failed("Issue", f"state {state!r} is not valid", "state")
        issue.state = state
        issue.closed_at = _now() if state == "closed" else None
        issue.state_reason = (reason or "completed") if state == "closed" else "reopened"
        if issue.pull is None:
            action = "closed" if state == "closed" else "reopened"
            self._emit(
                repo, "issues", {"action": action, "issue": self._issue_json(repo, issue)}, request
            )

    def _list_comments(self, request: Request) -> Response:
        repo = self._repo(request)
        issue = self._issue(repo, request.params["number"])
        return self._page(
            request, [self._comment_json(repo, repo.comments[c]) for c in issue.comment_ids]
        )

    def _create_comment(self, request: Request) -> Response:
        repo = self._repo(request)
        issue = self._issue(repo, request.params["number"])
        text = (request.json() or {}).get("body")
        if not isinstance(text, str) or not text:
            raise _validation_failed("IssueComment", "body is missing", "body")
        comment = _Comment(
            id=next(self._ids),
            issue_number=issue.number,
            body=text,
            author=request.principal,
            created_at=_now(),
            updated_at=_now(),
        )
        repo.comments[comment.id] = comment
        issue.comment_ids.append(comment.id)
        data = self._comment_json(repo, comment)
        self._emit(
            repo,
            "issue_comment",
            {"action": "created", "issue": self._issue_json(repo, issue), "comment": data},
            request,
        )
        return Response(201, data)

    def _comment(self, repo: _Repo, comment_id: str) -> _Comment:
        comment = repo.comments.get(int(comment_id))
        if comment is None:
            raise ApiError(404, "Not Found")
        return comment

    def _get_comment(self, request: Request) -> Response:
        repo = self._repo(request)
        return Response(
            200, self._comment_json(repo, self._comment(repo, request.params["comment"]))
        )

    def _edit_comment(self, request: Request) -> Response:
        repo = self._repo(request)
        comment = self._comment(repo, request.params["comment"])
        text = (request.json() or {}).get("body")
        if not isinstance(text, str) or not text:
            raise _validation_failed("IssueComment", "body is missing", "body")
        comment.body = text
        comment.updated_at = _now()
        return Response(200, self._comment_json(repo, comment))

    def _delete_comment(self, request: Request) -> Response:
        repo = self._repo(request)
        comment = self._comment(repo, request.params["comment"])
        del repo.comments[comment.id]
        repo.issues[comment.issue_number].comment_ids.remove(comment.id)
        return Response(204)

    def _add_assignees(self, request: Request) -> Response:
        """`POST .../issues/{n}/assignees`; each new assignee is an `assigned` event."""
        repo = self._repo(request)
        issue = self._issue(repo, request.params["number"])
        logins = (request.json() or {}).get("assignees")
        if not isinstance(logins, list) or not all(isinstance(x, str) for x in logins):
            raise _validation_failed("Issue", "assignees must be a list of logins", "assignees")
        for login in logins:
            if login in issue.assignees:
                continue
            issue.assignees.append(login)
            issue.updated_at = _now()
            payload = {
                "action": "assigned",
                "issue": self._issue_json(repo, issue),
                "assignee": self._user_json(login),
            }
            self._emit(repo, "issues", payload, request)
        return Response(201, self._issue_json(repo, issue))

    def _reaction(self, reactions: list[tuple[str, str]], request: Request) -> Response:
        content = (request.json() or {}).get("content")
        if content not in _REACTIONS:
            raise _validation_failed("Reaction", f"content {content!r} is not valid", "content")
        pair = (request.principal, content)
        created = pair not in reactions
        if created:
            reactions.append(pair)
        reaction_id = 1 + [*reactions].index(pair)
        data = {
            "id": reaction_id,
            "node_id": f"REA_{reaction_id}",
            "user": self._user_json(request.principal),
            "content": content,
            "created_at": _now(),
        }
        return Response(201 if created else 200, data)

    def _react_issue(self, request: Request) -> Response:
        repo = self._repo(request)
        return self._reaction(self._issue(repo, request.params["number"]).reactions, request)

    def _react_comment(self, request: Request) -> Response:
        repo = self._repo(request)
        return self._reaction(self._comment(repo, request.params["comment"]).reactions, request)

    # ---- review comments and check runs ----------------------------------------------

    def _review_comment_json(self, repo: _Repo, comment: _ReviewComment) -> dict[str, Any]:
        base = f"{self.base_url}/repos/{repo.full_name}"
        data: dict[str, Any] = {
            "id": comment.id,
            "node_id": f"PRRC_{comment.id}",
            "url": f"{base}/pulls/comments/{comment.id}",
            "html_url": f"{self.origin}/{repo.full_name}/pull/{comment.pull}"
            f"#discussion_r{comment.id}",
            "pull_request_url": f"{base}/pulls/{comment.pull}",
            "body": comment.body,
            "path": comment.path,
            "line": comment.line,
            "original_line": comment.line,
            "side": "RIGHT",
            "commit_id": comment.commit_id,
            "original_commit_id": comment.commit_id,
            "diff_hunk": comment.diff_hunk,
            "user": self._user_json(comment.author),
            "created_at": comment.created_at,
            "updated_at": comment.created_at,
            "author_association": self._association(repo, comment.author),
        }
        if comment.in_reply_to is not None:
            data["in_reply_to_id"] = comment.in_reply_to
        return data

    def _review_comment(self, repo: _Repo, comment_id: str) -> _ReviewComment:
        comment = repo.review_comments.get(int(comment_id))
        if comment is None:
            raise ApiError(404, "Not Found")
        return comment

    def _add_review_comment(
        self, repo: _Repo, issue: _Issue, request: Request, **fields: Any
    ) -> Response:
        comment = _ReviewComment(
            id=next(self._ids), pull=issue.number, author=request.principal, created_at=_now(),
            **fields,
        )  # fmt: skip
        repo.review_comments[comment.id] = comment
        data = self._review_comment_json(repo, comment)
        self._emit(
            repo,
            "pull_request_review_comment",
            {
                "action": "created",
                "comment": data,
                "pull_request": self._pull_json(repo, issue, full=False),
            },
            request,
        )
        return Response(201, data)

    def _create_review_comment(self, request: Request) -> Response:
        """`POST .../pulls/{n}/comments`: a comment on a line of the diff."""
        repo = self._repo(request)
        issue = self._pull_issue(repo, request.params["number"])
        assert issue.pull is not None
        body = request.json() or {}
        text, path = body.get("body"), body.get("path")
        if not isinstance(text, str) or not text or not isinstance(path, str):
            raise _validation_failed("PullRequestReviewComment", "body and path are required")
        line = body.get("line")
        files = {f: patch for f, (_, patch) in self._pull_patches(repo, issue).items()}
        if path not in files:
            raise _validation_failed(
                "PullRequestReviewComment", f"path {path!r} is not part of the diff", "path"
            )
        head = _branches(repo.git_dir).get(issue.pull.head, "")
        return self._add_review_comment(
            repo, issue, request, body=text, path=path,
            line=line if isinstance(line, int) else None,
            commit_id=str(body.get("commit_id") or head), diff_hunk=files[path],
            in_reply_to=None,
        )  # fmt: skip

    def _pull_patches(self, repo: _Repo, issue: _Issue) -> dict[str, tuple[str, str]]:
        assert issue.pull is not None
        branches = _branches(repo.git_dir)
        base, head = branches.get(issue.pull.base), branches.get(issue.pull.head)
        return _file_details(repo.git_dir, base, head) if base and head else {}

    def _reply_review_comment(self, request: Request) -> Response:
        repo = self._repo(request)
        issue = self._pull_issue(repo, request.params["number"])
        parent = self._review_comment(repo, request.params["comment"])
        if parent.pull != issue.number:
            raise ApiError(404, "Not Found")
        text = (request.json() or {}).get("body")
        if not isinstance(text, str) or not text:
            raise _validation_failed("PullRequestReviewComment", "body is missing", "body")
        return self._add_review_comment(
            repo, issue, request, body=text, path=parent.path, line=parent.line,
            commit_id=parent.commit_id, diff_hunk=parent.diff_hunk, in_reply_to=parent.id,
        )  # fmt: skip

    def _list_review_comments(self, request: Request) -> Response:
        repo = self._repo(request)
        number = int(request.params["number"])
        return self._page(
            request,
            [
                self._review_comment_json(repo, c)
                for c in repo.review_comments.values()
                if c.pull == number
            ],
        )

    def _get_review_comment(self, request: Request) -> Response:
        repo = self._repo(request)
        comment = self._review_comment(repo, request.params["comment"])
        return Response(200, self._review_comment_json(repo, comment))

    def _react_review_comment(self, request: Request) -> Response:
        repo = self._repo(request)
        comment = self._review_comment(repo, request.params["comment"])
        return self._reaction(comment.reactions, request)

    def review_reactions(self, full_name: str, comment_id: int) -> list[tuple[str, str]]:
        """(login, content) of the reactions on a review comment."""
        with self._lock:
            return list(self.repos[full_name].review_comments[comment_id].reactions)

    def review_comment_bodies(self, full_name: str, pull: int) -> list[tuple[int | None, str, str]]:
        """(in reply to, author, body) of a pull request's review comments, in order."""
        with self._lock:
            return [
                (c.in_reply_to, c.author, c.body)
                for c in self.repos[full_name].review_comments.values()
                if c.pull == pull
            ]

    def _create_check_run(self, request: Request) -> Response:
        """`POST .../check-runs`, as CI reports a result; a completed run is a `check_run`
        `completed` event naming the open pull requests whose head is `head_sha`."""
        repo = self._repo(request)
        body = request.json() or {}
        name, sha = body.get("name"), body.get("head_sha")
        if not isinstance(name, str) or not isinstance(sha, str):
            raise _validation_failed("CheckRun", "name and head_sha are required")
        branches = _branches(repo.git_dir)
        pulls = [
            {
                "id": issue.pull.id,
                "number": issue.number,
                "url": f"{self.base_url}/repos/{repo.full_name}/pulls/{issue.number}",
                "head": {"ref": issue.pull.head, "sha": sha},
                "base": {"ref": issue.pull.base, "sha": branches.get(issue.pull.base, "")},
            }
            for issue in repo.issues.values()
            if issue.pull is not None
            and issue.state == "open"
            and branches.get(issue.pull.head) == sha
        ]
        run_id = next(self._ids)
        output = body.get("output") or {}
        data = {
            "id": run_id,
            "node_id": f"CR_{run_id}",
            "name": name,
            "head_sha": sha,
            "status": body.get("status", "queued"),
            "conclusion": body.get("conclusion"),
            "url": f"{self.base_url}/repos/{repo.full_name}/check-runs/{run_id}",
            "html_url": f"{self.origin}/{repo.full_name}/runs/{run_id}",
            "details_url": body.get("details_url"),
            "started_at": _now(),
            "completed_at": _now() if body.get("status") == "completed" else None,
            "output": {
                "title": output.get("title"),
                "summary": output.get("summary"),
                "text": output.get("text"),
                "annotations_count": 0,
            },
            "pull_requests": pulls,
            "app": {"id": 15368, "slug": "github-actions", "name": "GitHub Actions"},
        }
        repo.check_runs[run_id] = data
        if data["status"] == "completed":
            self._emit(repo, "check_run", {"action": "completed", "check_run": data}, request)
        return Response(201, data)

    def _get_commit(self, request: Request) -> Response:
        """`GET .../commits/{sha}`: the commit's identity and message (no file list)."""
        repo = self._repo(request)
        sha = request.params["sha"]
        if not _commit_exists(repo.git_dir, sha):
            raise _validation_failed("Commit", f"No commit found for SHA: {sha}")
        message = _git(repo.git_dir, "log", "-1", "--format=%B", sha).strip()
        url = f"{self.base_url}/repos/{repo.full_name}/commits/{sha}"
        return Response(
            200,
            {
                "sha": sha,
                "node_id": f"C_{sha[:12]}",
                "url": url,
                "html_url": f"{self.origin}/{repo.full_name}/commit/{sha}",
                "commit": {"message": message, "url": url},
            },
        )

    def _get_check_run(self, request: Request) -> Response:
        repo = self._repo(request)
        found = repo.check_runs.get(int(request.params["run"]))
        if found is None:
            raise ApiError(404, "Not Found")
        return Response(200, found)

    def _collaborator_permission(self, request: Request) -> Response:
        repo = self._repo(request)
        login = request.params["login"]
        permission = self._permission(repo, login)
        # GitHub's legacy `permission` folds maintain into write and triage into read.
        legacy = {"maintain": "write", "triage": "read"}.get(permission, permission)
        return Response(
            200,
            {"permission": legacy, "role_name": permission, "user": self._user_json(login)},
        )

    def _list_issue_labels(self, request: Request) -> Response:
        repo = self._repo(request)
        issue = self._issue(repo, request.params["number"])
        return self._page(request, [self._label_json(repo, n) for n in issue.labels])

    def _add_issue_labels(self, request: Request) -> Response:
        repo = self._repo(request)
        issue = self._issue(repo, request.params["number"])
        body = request.json()
        names = body.get("labels", []) if isinstance(body, dict) else body
        added = []
        for name in names:
            self._ensure_label(repo, name)
            if name not in issue.labels:
                issue.labels.append(name)
                added.append(name)
        issue.updated_at = _now()
        for name in added:
            self._emit(
                repo,
                "issues",
                {
                    "action": "labeled",
                    "issue": self._issue_json(repo, issue),
                    "label": self._label_json(repo, name),
                },
                request,
            )
        return Response(200, [self._label_json(repo, n) for n in issue.labels])

    def _remove_label(self, request: Request) -> Response:
        repo = self._repo(request)
        issue = self._issue(repo, request.params["number"])
        name = unquote(request.params["label"])
        if name not in issue.labels:
            raise ApiError(404, "Label does not exist")
        issue.labels.remove(name)
        return Response(200, [self._label_json(repo, n) for n in issue.labels])

    def _list_labels(self, request: Request) -> Response:
        repo = self._repo(request)
        return self._page(request, list(repo.labels.values()))

    def _create_label(self, request: Request) -> Response:
        repo = self._repo(request)
        body = request.json() or {}
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise _validation_failed("Label", "name is missing", "name")
        if name in repo.labels:
            raise ApiError(
                422,
                "Validation Failed",
                [{"resource": "Label", "code": "already_exists", "field": "name"}],
            )
        self._ensure_label(repo, name)
        repo.labels[name].update(
            color=body.get("color", "ededed"), description=body.get("description")
        )
        return Response(201, repo.labels[name])

    def _get_label(self, request: Request) -> Response:
        repo = self._repo(request)
        name = unquote(request.params["label"])
        if name not in repo.labels:
            raise ApiError(404, "Not Found")
        return Response(200, repo.labels[name])

    # ---- pull requests ---------------------------------------------------------------

    def _pull_issue(self, repo: _Repo, number: str) -> _Issue:
        issue = self._issue(repo, number)
        if issue.pull is None:
            raise ApiError(404, "Not Found")
        return issue

    def _list_pulls(self, request: Request) -> Response:
        repo = self._repo(request)
        state = request.arg("state", "open")
        head = request.arg("head")
        base = request.arg("base")
        pulls = [
            issue
            for issue in repo.issues.values()
            if issue.pull is not None
            and state in {"all", issue.state}
            and (head is None or f"{repo.owner}:{issue.pull.head}" == head)
            and (base is None or issue.pull.base == base)
        ]
        pulls.sort(key=lambda i: i.number, reverse=request.arg("direction") != "asc")
        return self._page(request, [self._pull_json(repo, issue, full=False) for issue in pulls])

    def _create_pull(self, request: Request) -> Response:
        repo = self._repo(request)
        body = request.json() or {}
        head = str(body.get("head", "")).removeprefix(f"{repo.owner}:")
        base = str(body.get("base", ""))
        branches = _branches(repo.git_dir)
        if head not in branches:
            raise _validation_failed("PullRequest", f"head {head!r} does not exist", "head")
        if base not in branches:
            raise _validation_failed("PullRequest", f"base {base!r} does not exist", "base")
        for issue in repo.issues.values():
            if (
                issue.pull
                and issue.state == "open"
                and (issue.pull.head, issue.pull.base) == (head, base)
            ):
                raise _validation_failed(
                    "PullRequest", f"A pull request already exists for {repo.owner}:{head}."
                )
        if _count_commits(repo.git_dir, branches[base], branches[head]) == 0:
            raise _validation_failed("PullRequest", f"No commits between {base} and {head}")
        title = body.get("title")
        if not isinstance(title, str) or not title:
            raise _validation_failed("PullRequest", "title is missing", "title")
        issue = _Issue(
            number=self._next_number(repo),
            id=next(self._ids),
            title=title,
            body=body.get("body"),
            author=request.principal,
            labels=[],
            created_at=_now(),
            updated_at=_now(),
            pull=_Pull(id=next(self._ids), head=head, base=base, draft=body.get("draft") is True),
        )
        repo.issues[issue.number] = issue
        data = self._pull_json(repo, issue, mergeable_known=False)
        self._emit(
            repo,
            "pull_request",
            {"action": "opened", "number": issue.number, "pull_request": data},
            request,
        )
        return Response(201, data)

    def _request_reviewers(self, request: Request) -> Response:
        """As GitHub: not from the author, and only from people with access."""
        repo = self._repo(request)
        issue = self._pull_issue(repo, request.params["number"])
        assert issue.pull is not None
        logins = (request.json() or {}).get("reviewers") or []
        if not isinstance(logins, list) or not all(isinstance(x, str) for x in logins):
            raise _validation_failed("PullRequest", "reviewers must be logins", "reviewers")
        for login in logins:
            if login == issue.author:
                raise ApiError(422, "Review cannot be requested from pull request author.")
            if login != repo.owner and login not in repo.collaborators:
                raise ApiError(
                    422,
                    "Reviews may only be requested from collaborators. One or more of the "
                    f"users or teams you specified is not a collaborator of the "
                    f"{repo.full_name} repository.",
                )
        for login in logins:
            if login not in issue.pull.reviewers:
                issue.pull.reviewers.append(login)
        return Response(201, self._pull_json(repo, issue))

    def _get_pull(self, request: Request) -> Response:
        repo = self._repo(request)
        return Response(
            200, self._pull_json(repo, self._pull_issue(repo, request.params["number"]))
        )

    def _edit_pull(self, request: Request) -> Response:
        repo = self._repo(request)
        issue = self._pull_issue(repo, request.params["number"])
        body = request.json() or {}
        if "title" in body:
            issue.title = body["title"]
        if "body" in body:
            issue.body = body["body"]
        if "state" in body and body["state"] != issue.state:
            self._set_state(repo, issue, body["state"], None, request)
            if issue.state == "closed":
                self._emit_pull_closed(repo, issue, request)
        issue.updated_at = _now()
        return Response(200, self._pull_json(repo, issue))

    def _pull_files(self, request: Request) -> Response:
        repo = self._repo(request)
        issue = self._pull_issue(repo, request.params["number"])
        assert issue.pull is not None
        branches = _branches(repo.git_dir)
        base_sha = branches.get(issue.pull.base)
        head_sha = branches.get(issue.pull.head)
        if issue.pull.merge_commit_sha:
            base_sha = _git(repo.git_dir, "rev-parse", f"{issue.pull.merge_commit_sha}^1")
            head_sha = _git(repo.git_dir, "rev-parse", f"{issue.pull.merge_commit_sha}^2")
        files = []
        web = f"{self.origin}/{repo.full_name}"
        if base_sha and head_sha:
            details = _file_details(repo.git_dir, base_sha, head_sha)
            for stat in _diff_stats(repo.git_dir, base_sha, head_sha):
                blob, patch = details.get(stat["path"], ("", ""))
                files.append(
                    {
                        "sha": blob,
                        "filename": stat["path"],
                        "status": stat["status"],
                        "additions": stat["additions"],
                        "deletions": stat["deletions"],
                        "changes": stat["additions"] + stat["deletions"],
                        "blob_url": f"{web}/blob/{head_sha}/{stat['path']}",
                        "raw_url": f"{web}/raw/{head_sha}/{stat['path']}",
                        "contents_url": f"{self.base_url}/repos/{repo.full_name}/contents/"
                        f"{stat['path']}?ref={head_sha}",
                        "patch": patch,
                    }
                )
        return self._page(request, files)

    def _is_merged(self, request: Request) -> Response:
        repo = self._repo(request)
        issue = self._pull_issue(repo, request.params["number"])
        assert issue.pull is not None
        return Response(204) if issue.pull.merged_at else Response(404, {"message": "Not Found"})

    def _merge_pull(self, request: Request) -> Response:
        repo = self._repo(request)
        issue = self._pull_issue(repo, request.params["number"])
        pull = issue.pull
        assert pull is not None
        if issue.state != "open":
            raise ApiError(405, "Pull Request is not mergeable")
        if pull.draft:
            raise ApiError(405, "Pull Request is still a draft")
        body = request.json() or {}
        branches = _branches(repo.git_dir)
        base_sha, head_sha = branches[pull.base], branches[pull.head]
        if body.get("sha") and body["sha"] != head_sha:
            raise ApiError(409, "Head branch was modified. Review and try the merge again.")
        tree = _merge_tree(repo.git_dir, base_sha, head_sha)
        if tree is None:
            raise ApiError(405, "Pull Request is not mergeable")
        message = body.get("commit_title") or (
            f"Merge pull request #{issue.number} from {repo.owner}/{pull.head}"
        )
        if body.get("commit_message"):
            message += "\n\n" + body["commit_message"]
        commit = _git(
            repo.git_dir,
            "commit-tree",
            tree,
            "-p",
            base_sha,
            "-p",
            head_sha,
            "-m",
            message,
            env=_GIT_IDENTITY,
        )
        _git(repo.git_dir, "update-ref", f"refs/heads/{pull.base}", commit, base_sha)
        pull.merged_at = _now()
        pull.merge_commit_sha = commit
        pull.merged_by = request.principal
        issue.state = "closed"
        issue.closed_at = pull.merged_at
        if pull.base == repo.default_branch:
            for number in _CLOSING.findall(issue.body or ""):
                closed = repo.issues.get(int(number))
                if closed is not None and closed.pull is None and closed.state == "open":
                    self._set_state(repo, closed, "closed", "completed", request)
        self._emit_pull_closed(repo, issue, request)
        return Response(
            200, {"sha": commit, "merged": True, "message": "Pull Request successfully merged"}
        )

    def _emit_pull_closed(self, repo: _Repo, issue: _Issue, request: Request) -> None:
        self._emit(
            repo,
            "pull_request",
            {
                "action": "closed",
                "number": issue.number,
                "pull_request": self._pull_json(repo, issue),
            },
            request,
        )

    # ---- branches and refs -----------------------------------------------------------

    def _list_branches(self, request: Request) -> Response:
        repo = self._repo(request)
        items = [
            {
                "name": name,
                "commit": {
                    "sha": sha,
                    "url": f"{self.base_url}/repos/{repo.full_name}/commits/{sha}",
                },
                "protected": False,
            }
            for name, sha in sorted(_branches(repo.git_dir).items())
        ]
        return self._page(request, items)

    def _get_branch(self, request: Request) -> Response:
        repo = self._repo(request)
        name = unquote(request.params["branch"])
        sha = _branches(repo.git_dir).get(name)
        if sha is None:
            raise ApiError(404, "Branch not found")
        url = f"{self.base_url}/repos/{repo.full_name}/branches/{quote(name)}"
        return Response(
            200,
            {
                "name": name,
                "commit": {
                    "sha": sha,
                    "url": f"{self.base_url}/repos/{repo.full_name}/commits/{sha}",
                },
                "_links": {"self": url, "html": f"{self.origin}/{repo.full_name}/tree/{name}"},
                "protected": False,
            },
        )

    def _get_ref(self, request: Request) -> Response:
        repo = self._repo(request)
        ref = "refs/" + unquote(request.params["ref"]).removeprefix("refs/")
        sha = _refs(repo.git_dir).get(ref)
        if sha is None:
            raise ApiError(404, "Not Found")
        return Response(200, self._ref_json(repo, ref, sha))

    def _matching_refs(self, request: Request) -> Response:
        repo = self._repo(request)
        prefix = "refs/" + unquote(request.params["ref"]).removeprefix("refs/")
        items = [
            self._ref_json(repo, ref, sha)
            for ref, sha in sorted(_refs(repo.git_dir).items())
            if ref.startswith(prefix)
        ]
        return self._page(request, items)

    def _create_ref(self, request: Request) -> Response:
        repo = self._repo(request)
        body = request.json() or {}
        ref, sha = str(body.get("ref", "")), str(body.get("sha", ""))
        if not ref.startswith("refs/") or ref.count("/") < 2:
            raise ApiError(422, "Reference name must start with 'refs/' and have two slashes")
        if ref in _refs(repo.git_dir):
            raise ApiError(422, "Reference already exists")
        if not _commit_exists(repo.git_dir, sha):
            raise ApiError(422, "Object does not exist")
        _git(repo.git_dir, "update-ref", ref, sha)
        return Response(201, self._ref_json(repo, ref, sha))

    def _delete_ref(self, request: Request) -> Response:
        repo = self._repo(request)
        ref = "refs/" + unquote(request.params["ref"]).removeprefix("refs/")
        if ref not in _refs(repo.git_dir):
            raise ApiError(422, "Reference does not exist")
        _git(repo.git_dir, "update-ref", "-d", ref)
        return Response(204)

    # ---- webhooks --------------------------------------------------------------------

    def _hook_json(self, repo: _Repo, hook: _Hook) -> dict[str, Any]:
        url = f"{self.base_url}/repos/{repo.full_name}/hooks/{hook.id}"
        return {
            "type": "Repository",
            "id": hook.id,
            "name": "web",
            "active": hook.active,
            "events": hook.events,
            "config": {
                "url": hook.url,
                "content_type": "json",
                "insecure_ssl": "0",
                "secret": "********",
            },
            "url": url,
            "test_url": url + "/test",
            "ping_url": url + "/pings",
            "deliveries_url": url + "/deliveries",
            "created_at": hook.created_at,
            "updated_at": hook.created_at,
            "last_response": {"code": None, "status": "unused", "message": None},
        }

    def _list_hooks(self, request: Request) -> Response:
        repo = self._repo(request)
        return self._page(request, [self._hook_json(repo, h) for h in repo.hooks.values()])

    def _create_hook(self, request: Request) -> Response:
        repo = self._repo(request)
        body = request.json() or {}
        config = body.get("config") or {}
        if not config.get("url"):
            raise _validation_failed("Hook", "url is missing", "url")
        hook = _Hook(
            id=next(self._ids),
            url=config["url"],
            secret=config.get("secret", ""),
            events=list(body.get("events") or ["push"]),
            active=bool(body.get("active", True)),
            created_at=_now(),
        )
        repo.hooks[hook.id] = hook
        data = self._hook_json(repo, hook)
        self._queue_delivery(
            repo,
            hook,
            "ping",
            {"zen": "Keep it logically awesome.", "hook_id": hook.id, "hook": data},
            request,
        )
        return Response(201, data)

    def _emit(self, repo: _Repo, event: str, payload: dict[str, Any], request: Request) -> None:
        for hook in repo.hooks.values():
            if hook.active and (event in hook.events or "*" in hook.events):
                self._queue_delivery(repo, hook, event, payload, request)

    def _queue_delivery(
        self, repo: _Repo, hook: _Hook, event: str, payload: dict[str, Any], request: Request
    ) -> None:
        full = {
            **payload,
            "repository": self._repo_json(repo),
            "sender": self._user_json(request.principal),
        }
        delivery = Delivery(
            guid=str(uuid.uuid4()),
            hook_id=hook.id,
            event=event,
            action=payload.get("action"),
            payload=json.dumps(full).encode(),
        )
        self._outbox.put(delivery)

    def _deliver_loop(self) -> None:
        with httpx.Client(timeout=10) as client:
            while (delivery := self._outbox.get()) is not None:
                with self._lock:
                    hook = next(
                        (
                            h
                            for repo in self.repos.values()
                            for h in repo.hooks.values()
                            if h.id == delivery.hook_id
                        ),
                        None,
                    )
                if hook is None:
                    continue
                signature = hmac.new(hook.secret.encode(), delivery.payload, hashlib.sha256)
                headers = {
                    "Content-Type": "application/json",
                    "User-Agent": "GitHub-Hookshot/fake",
                    "X-GitHub-Event": delivery.event,
                    "X-GitHub-Delivery": delivery.guid,
                    "X-GitHub-Hook-ID": str(hook.id),
                }
                if hook.secret:
                    headers["X-Hub-Signature-256"] = "sha256=" + signature.hexdigest()
                try:
                    response = client.post(hook.url, content=delivery.payload, headers=headers)
                    delivery.status_code = response.status_code
                except httpx.HTTPError as exc:
                    delivery.error = str(exc)
                with self._lock:
                    self.deliveries.append(delivery)


_REACTIONS = frozenset({"+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"})


def _allows(granted: str | None, level: str) -> bool:
    """Whether a permission granted at `granted` covers `level` (write covers read)."""
    return granted is not None and _LEVELS.get(granted, 0) >= _LEVELS[level]


# ---- git plumbing on the bare repositories ----------------------------------------------


def _hunks(diff: str) -> str:
    """The hunks of a one-file diff without its header, as GitHub's `patch` field has them."""
    start = diff.find("\n@@")
    return diff[start + 1 :] if start >= 0 else ""


def _git(git_dir: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        ["git", "--git-dir", str(git_dir), *args],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    return result.stdout.strip()


def _refs(git_dir: Path) -> dict[str, str]:
    """Every ref of the bare repository, read from its files (packed, then loose ones)."""
    refs: dict[str, str] = {}
    packed = git_dir / "packed-refs"
    if packed.exists():
        for line in packed.read_text().splitlines():
            if line and not line.startswith(("#", "^")):
                sha, name = line.split(" ", 1)
                refs[name] = sha
    for path in (git_dir / "refs").rglob("*"):
        if path.is_file() and path.suffix != ".lock":
            sha = path.read_text().strip()
            if len(sha) == 40:
                refs[path.relative_to(git_dir).as_posix()] = sha
    return refs


def _branches(git_dir: Path) -> dict[str, str]:
    return {
        ref.removeprefix("refs/heads/"): sha
        for ref, sha in _refs(git_dir).items()
        if ref.startswith("refs/heads/")
    }


def _commit_exists(git_dir: Path, sha: str) -> bool:
    result = subprocess.run(
        ["git", "--git-dir", str(git_dir), "cat-file", "-e", f"{sha}^{{commit}}"],
        check=False,
        capture_output=True,
    )
    return result.returncode == 0


def _count_commits(git_dir: Path, base: str, head: str) -> int:
    return int(_git(git_dir, "rev-list", "--count", f"{base}..{head}"))


@functools.lru_cache(maxsize=4096)
def _merge_tree(git_dir: Path, base: str, head: str) -> str | None:
    """The tree of merging head into base, or None when they conflict."""
    result = subprocess.run(
        ["git", "--git-dir", str(git_dir), "merge-tree", "--write-tree", base, head],
        check=False,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        return None
    return result.stdout.splitlines()[0].strip()


@functools.lru_cache(maxsize=4096)
def _diff_stats(git_dir: Path, base: str | None, head: str | None) -> tuple[dict[str, Any], ...]:
    """Per-file status, additions and deletions of head against its merge base (cached:
    commits never change, so a pair of shas always has the same answer)."""
    if not base or not head:
        return ()
    merge_base = _git(git_dir, "merge-base", base, head)
    statuses = {}
    for line in _git(git_dir, "diff", "--name-status", merge_base, head).splitlines():
        parts = line.split("\t")
        statuses[parts[-1]] = parts[0]
    kinds = {"A": "added", "M": "modified", "D": "removed"}
    stats = []
    for line in _git(git_dir, "diff", "--numstat", merge_base, head).splitlines():
        added, deleted, path = line.split("\t", 2)
        stats.append(
            {
                "path": path,
                "status": kinds.get(statuses.get(path, "M")[:1], "modified"),
                "additions": int(added) if added != "-" else 0,
                "deletions": int(deleted) if deleted != "-" else 0,
            }
        )
    return tuple(stats)


@functools.lru_cache(maxsize=1024)
def _file_details(git_dir: Path, base: str, head: str) -> dict[str, tuple[str, str]]:
    """path -> (blob sha at head, patch hunks), from one diff and one tree listing."""
    merge_base = _git(git_dir, "merge-base", base, head)
    patches: dict[str, str] = {}
    for chunk in _git(git_dir, "diff", merge_base, head).split("diff --git ")[1:]:
        header = chunk.split("\n", 1)[0]
        path = header.rsplit(" b/", 1)[-1]
        patches[path] = _hunks(chunk)
    blobs = {}
    for line in _git(git_dir, "ls-tree", "-r", head).splitlines():
        meta, path = line.split("\t", 1)
        blobs[path] = meta.split()[2]
    return {path: (blobs.get(path, ""), patch) for path, patch in patches.items()}
