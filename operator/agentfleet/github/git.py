"""Git on a per-item checkout: clone, branch, commit, push (git itself, as a subprocess).

Over HTTP(S) the token goes to git through `GIT_CONFIG_*` environment variables as an
`http.extraHeader`, never into `.git/config` or the command line, so nothing the agent
can read holds it; error output is redacted before it is raised or logged. It goes only to
the remote the GitHub API gave as the repository's clone URL (the API's own host), over
whichever scheme that host serves.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Callable
from pathlib import Path

from agentfleet.redaction import Redactor

DEFAULT_AUTHOR = ("agentfleet", "agentfleet@users.noreply.github.com")


class GitError(RuntimeError):
    pass


class GitCheckout:
    def __init__(
        self,
        path: Path,
        remote_url: str,
        redactor: Redactor,
        token: Callable[[], str] | None = None,
        author: tuple[str, str] = DEFAULT_AUTHOR,
        timeout: float = 300.0,
    ) -> None:
        self.path = path
        self.remote_url = remote_url
        self.redactor = redactor
        self._token = token
        self.author = author
        self.timeout = timeout

    def _environment(self) -> dict[str, str]:
        name, email = self.author
        environment = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": str(self.path.parent),
            "LANG": "C.UTF-8",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email,
        }
        if self._token is not None and self.remote_url.startswith(("https://", "http://")):
            token = self._token()
            self.redactor.add(token)
            basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
            self.redactor.add(basic)
            environment.update(
                GIT_CONFIG_COUNT="1",
                GIT_CONFIG_KEY_0="http.extraHeader",
                GIT_CONFIG_VALUE_0=f"Authorization: Basic {basic}",
            )
        return environment

    async def git(
        self, *args: str, cwd: Path | None = None, check: bool = True, want_status: bool = False
    ) -> str:
        """git's output (or, with `want_status`, its exit status as text)."""
        process = await asyncio.create_subprocess_exec(
            "git",
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
        await self.git(
            "clone", "--quiet", "--no-tags", self.remote_url, str(self.path), cwd=self.path.parent
        )

    async def remote_branches(self) -> dict[str, str]:
        """The remote's branches as of the clone (its remote-tracking refs; no round trip)."""
        out = await self.git(
            "for-each-ref", "--format=%(refname:strip=3) %(objectname)", "refs/remotes/origin"
        )
        pairs = (line.split(" ", 1) for line in out.splitlines() if line)
        return {name: sha for name, sha in pairs if name != "HEAD"}

    async def start_branch(self, branch: str, base: str) -> bool:
        """Check out `branch`: the remote one if it exists (True), else a new one from
        `base` (or an orphan branch in an empty repository)."""
        remote = await self.remote_branches()
        if branch in remote:
            await self.git("checkout", "--quiet", "-B", branch, f"origin/{branch}")
            return True
        if base in remote:
            await self.git("checkout", "--quiet", "-B", branch, f"origin/{base}")
        else:
            await self.git("checkout", "--quiet", "--orphan", branch)
        return False

    async def commit_all(self, message: str) -> bool:
        """Commit every change in the work tree; False when there was nothing to commit."""
        await self.git("add", "--all")
        # `diff --cached --quiet` exits 1 when something is staged: one process, no output.
        staged = await self.git("diff", "--cached", "--quiet", check=False, want_status=True)
        if staged == "0":
            return False
        await self.git("commit", "--quiet", "--no-verify", "-m", message)
        return True

    async def push(self, branch: str) -> None:
        await self.git("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}")

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
