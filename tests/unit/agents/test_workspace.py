"""Workspace confinement: every way out of the per-item checkout is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentfleet.worker.agents.workspace import PathEscapeError, Workspace

pytestmark = pytest.mark.unit


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("print('hi')\n")
    (tmp_path / "outside.txt").write_text("secret")
    return Workspace(root)


def test_relative_paths_resolve_inside(workspace: Workspace) -> None:
    assert workspace.resolve("src/app.py") == workspace.root / "src" / "app.py"
    assert workspace.resolve("./src/new.py") == workspace.root / "src" / "new.py"
    assert workspace.resolve("docs/not-yet-there.md") == workspace.root / "docs/not-yet-there.md"


@pytest.mark.parametrize(
    "path",
    [
        "../outside.txt",
        "src/../../outside.txt",
        "src/..",
        "/etc/passwd",
        "~/.ssh/id_rsa",
        "..\\outside.txt",
        "",
        "a\x00b",
    ],
)
def test_escapes_are_refused(workspace: Workspace, path: str) -> None:
    with pytest.raises(PathEscapeError):
        workspace.resolve(path)


def test_symlink_pointing_outside_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    (workspace.root / "link.txt").symlink_to(tmp_path / "outside.txt")
    (workspace.root / "linkdir").symlink_to(tmp_path)
    with pytest.raises(PathEscapeError, match="outside"):
        workspace.resolve("link.txt")
    with pytest.raises(PathEscapeError, match="outside"):
        workspace.resolve("linkdir/outside.txt")


def test_symlink_staying_inside_is_allowed(workspace: Workspace) -> None:
    (workspace.root / "alias.py").symlink_to(workspace.root / "src" / "app.py")
    assert workspace.resolve("alias.py") == workspace.root / "src" / "app.py"


def test_git_directory_is_off_limits(workspace: Workspace) -> None:
    (workspace.root / ".git" / "hooks").mkdir(parents=True)
    os.symlink(workspace.root / ".git" / "hooks", workspace.root / "hooks")
    for path in (".git/hooks/pre-commit", "src/../.git/config", "hooks/pre-commit"):
        with pytest.raises(PathEscapeError):
            workspace.resolve(path)
