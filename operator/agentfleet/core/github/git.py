"""Git on a per-item checkout: clone, branch, commit, push (git itself, as a subprocess).

The work tree is where the agent works (in a worker Pod: the volume the sandbox container
shares). The git directory is elsewhere, on a volume only the worker container mounts,
and every git command names both explicitly: a repository's config and hooks decide what
git runs with the worker's credentials, so nothing the agent runs may write them, and a
`.git` file planted in the work tree must not redirect git either. On top of that git runs
with hooks, fsmonitor and the `ext::` transport off and no system or global config.

Over HTTP(S) the token goes to git through `GIT_CONFIG_*` environment variables as an
`http.extraHeader`, never into `.git/config` or the command line, so nothing the agent
can read holds it; error output is redacted before it is raised or logged. It goes only to
the remote the GitHub API gave as the repository's clone URL (the API's own host), over
whichever scheme that host serves.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from agentfleet.core.redaction import Redactor

DEFAULT_AUTHOR = ("agentfleet", "agentfleet@users.noreply.github.com")

# Whatever a repository (or a work tree) asks for, git here runs no hooks, no fsmonitor
# and no `ext::` transport, and never rewrites the remote's URL.
_HARDENED_CONFIG = {
    "core.hooksPath": os.devnull,
    "core.fsmonitor": "false",
    "protocol.ext.allow": "never",
    "protocol.allow": "user",
    "submodule.recurse": "false",
}
_BRANCH = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,200}")

AGENT_CONFIG_PATHS = ("CLAUDE.md", "AGENTS.md", ".claude", ".mcp.json")
"""Files in a repository that steer an agent: on work for an existing branch they come
from the base branch (`GitCheckout.restore_from`)."""


class GitError(RuntimeError):
    pass


def basic_credential(token: str) -> str:
    """The HTTP Basic credential git sends a token as (`x-access-token:<token>`, base64):
    a second form of the secret, which the redactor must know too."""
    return base64.b64encode(f"x-access-token:{token}".encode()).decode()


class GitCheckout:
    def __init__(
        self,
        path: Path,
        remote_url: str,
        redactor: Redactor,
        token: Callable[[], str] | None = None,
        author: tuple[str, str] = DEFAULT_AUTHOR,
        timeout: float = 300.0,
        git_dir: Path | None = None,
    ) -> None:
        self.path = path
        self.git_dir = git_dir or path.parent / f".{path.name}.git"
        """Out of the agent's reach (see the module docstring); by default a hidden
        sibling of the work tree, for runs without a sandbox."""
        self.remote_url = remote_url
        self.redactor = redactor
        self._token = token
        self.author = author
        self.timeout = timeout
        self._excluded: tuple[str, ...] = ()

    def with_token(self, token: Callable[[], str]) -> GitCheckout:
        """The same checkout (work tree and git directory), talking to origin with another
        token: a push that needs more than the rest of the item's work is given a token
        minted for that push alone."""
        other = copy.copy(self)
        other._token = token
        return other

    def _environment(self) -> dict[str, str]:
        name, email = self.author
        environment = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": str(self.git_dir.parent),
            "LANG": "C.UTF-8",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email,
        }
        config = dict(_HARDENED_CONFIG)
        if self._token is not None and self.remote_url.startswith(("https://", "http://")):
            token = self._token()
            self.redactor.add(token)
            basic = basic_credential(token)
            self.redactor.add(basic)
            config["http.extraHeader"] = f"Authorization: Basic {basic}"
        environment["GIT_CONFIG_COUNT"] = str(len(config))
        for index, (key, value) in enumerate(config.items()):
            environment[f"GIT_CONFIG_KEY_{index}"] = key
            environment[f"GIT_CONFIG_VALUE_{index}"] = value
        return environment

    async def git(
        self, *args: str, cwd: Path | None = None, check: bool = True, want_status: bool = False
    ) -> str:
        """git's output (or, with `want_status`, its exit status as text). Unless `cwd` is
        given (the clone), git works on this checkout's git directory and work tree,
        named explicitly."""
        scope = [] if cwd is not None else [f"--git-dir={self.git_dir}", f"--work-tree={self.path}"]
        process = await asyncio.create_subprocess_exec(
            "git",
            *scope,
            *args,
            cwd=cwd or self.path,
            env=self._environment(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), self.timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise GitError(f"git {args[0]} timed out after {self.timeout:g}s") from None
        if check and process.returncode != 0:
            message = self.redactor.redact(err.decode(errors="replace").strip())
            raise GitError(f"git {' '.join(args[:2])} failed ({process.returncode}): {message}")
        if want_status:
            return str(process.returncode)
        return out.decode(errors="replace").strip()

    async def clone(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.git_dir.parent.mkdir(parents=True, exist_ok=True)
        await self.git(
            "clone", "--quiet", "--no-tags", f"--separate-git-dir={self.git_dir}",
            self.remote_url, str(self.path), cwd=self.git_dir.parent,
        )  # fmt: skip
        # The `.git` file pointing at the git directory is of no use in the work tree:
        # every command names the git directory, and nothing there should find it.
        (self.path / ".git").unlink(missing_ok=True)

    async def remote_branches(self) -> dict[str, str]:
        """The remote's branches as of the clone (its remote-tracking refs; no round trip)."""
        out = await self.git(
            "for-each-ref", "--format=%(refname:strip=3) %(objectname)", "refs/remotes/origin"
        )
        pairs = (line.split(" ", 1) for line in out.splitlines() if line)
        return {name: sha for name, sha in pairs if name != "HEAD"}

    async def start_branch(self, branch: str, base: str) -> bool:
        """Check out `branch`: the remote one if it exists (True), else a new one from
        `base` (or an orphan branch in an empty repository). On an existing branch the
        files that steer an agent (AGENT_CONFIG_PATHS) are taken from `base`: whoever could
        push to the branch (a pull request's author) does not get to rewrite them."""
        remote = await self.remote_branches()
        if branch in remote:
            await self.git("checkout", "--quiet", "-B", branch, f"origin/{branch}")
            if branch != base and base in remote:
                await self.restore_from(f"origin/{base}", AGENT_CONFIG_PATHS)
            return True
        if base in remote:
            await self.git("checkout", "--quiet", "-B", branch, f"origin/{base}")
        else:
            await self.git("checkout", "--quiet", "--orphan", branch)
        return False

    async def commit_all(self, message: str) -> bool:
        """Commit every change in the work tree (but the paths restored from a base
        branch); False when there was nothing to commit."""
        await self.git("add", "--all", "--", ".", *(f":(exclude){p}" for p in self._excluded))
        # `diff --cached --quiet` exits 1 when something is staged: one process, no output.
        staged = await self.git("diff", "--cached", "--quiet", check=False, want_status=True)
        if staged == "0":
            return False
        await self.git("commit", "--quiet", "--no-verify", "-m", message)
        return True

    async def push(self, branch: str) -> None:
        """Push HEAD to `branch` of origin and nowhere else: the refspec is built here from
        a checked branch name, never from anything the agent wrote."""
        if not _BRANCH.fullmatch(branch) or ".." in branch or branch.endswith((".lock", "/")):
            raise GitError(f"refusing to push to {branch!r}: not a plain branch name")
        await self.git("push", "--quiet", "--no-verify", "origin", f"HEAD:refs/heads/{branch}")

    async def file_at(self, ref: str, path: str) -> str | None:
        """A regular file's content at `ref` (e.g. `origin/main`), read from git's objects:
        never through the work tree, so a symlink planted there is not followed (a symlink
        in the tree reads as absent)."""
        mode = await self.git("ls-tree", ref, "--", path, check=False)
        if not mode.startswith(("100644 blob", "100755 blob")):
            return None
        return await self.git("show", f"{ref}:{path}", check=False)

    async def restore_from(self, ref: str, paths: tuple[str, ...]) -> None:
        """Make `paths` in the work tree what they are at `ref` (removed when `ref` lacks
        them), and keep them out of this checkout's commits: files that steer the agent
        come from the base branch, not from the branch it works on."""
        for path in paths:
            present = await self.git("ls-tree", "--name-only", ref, "--", path, check=False)
            target = self.path / path
            if target.is_symlink() or target.is_file():
                target.unlink()
            elif target.is_dir():
                shutil.rmtree(target)
            if present.strip():
                await self.git("checkout", ref, "--", path)
                await self.git("reset", "--quiet", "--", path)
        self._excluded = tuple(dict.fromkeys((*self._excluded, *paths)))

    async def changed_files(self, base: str) -> list[str]:
        """Files that differ between `origin/<base>` and HEAD (every file when base is
        missing)."""
        remote = await self.remote_branches()
        if base in remote:
            out = await self.git("diff", "--name-only", f"origin/{base}...HEAD")
        else:
            out = await self.git("ls-files")
        return [line for line in out.splitlines() if line]

    async def head(self) -> str:
        return await self.git("rev-parse", "HEAD")
