"""The per-item workspace (a git checkout) that agent tools are confined to.

Every path the model names is relative to the workspace root. Absolute paths, `..`
components, the `.git` directory (hooks there would run code on the next commit) and
anything that resolves outside the root through a symlink are refused.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath


class PathEscapeError(ValueError):
    """A path that would leave the workspace (or reach into .git)."""


class Workspace:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve(strict=True)

    def resolve(self, relative: str) -> Path:
        """The real path of `relative` inside the workspace, or PathEscapeError."""
        if not relative or "\x00" in relative:
            raise PathEscapeError("an empty path or a NUL byte is not a path")
        candidate = PurePosixPath(relative.replace("\\", "/"))
        if candidate.is_absolute() or relative.startswith("~"):
            raise PathEscapeError(f"{relative!r}: absolute paths are not allowed")
        if ".." in candidate.parts:
            raise PathEscapeError(f"{relative!r}: '..' is not allowed")
        if ".git" in candidate.parts:
            raise PathEscapeError(f"{relative!r}: the .git directory is off limits")
        real = Path(os.path.realpath(self.root / candidate))
        if real != self.root and not real.is_relative_to(self.root):
            raise PathEscapeError(f"{relative!r} resolves outside the workspace")
        if real.is_relative_to(self.root / ".git"):
            raise PathEscapeError(f"{relative!r}: the .git directory is off limits")
        return real

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix() or "."
