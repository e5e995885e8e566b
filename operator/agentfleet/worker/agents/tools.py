"""Tools the model can call, all confined to one workspace.

`WorkspaceTools` offers read, write, edit, list, search and run (allow-listed programs,
no shell, a scrubbed environment, a timeout; in a worker Pod they run in the sandbox
container, see `agentfleet.worker.sandbox`). A stage adds its own `submit_*` tool, marked
terminal: calling it ends the run and its input becomes the run's structured result.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentfleet.core.podenv import AgentSettings
from agentfleet.worker.agents.workspace import PathEscapeError, Workspace
from agentfleet.worker.sandbox import (
    CommandRequest,
    CommandRunner,
    LocalRunner,
    SandboxUnavailableError,
)

_MAX_FILE_BYTES = 1_000_000
_MAX_LISTED = 2000
_MAX_MATCHES = 200
_MAX_PATTERN = 500


class ToolError(Exception):
    """A failed tool call; the message goes back to the model as an error result."""


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    input_schema: dict[str, Any]
    run: Callable[[dict[str, Any]], Awaitable[str]]
    terminal: bool = False
    """Calling it successfully ends the run; its input is the run's submission."""

    def spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": self.input_schema,
        }


def submit_tool(name: str, description: str, input_schema: dict[str, Any]) -> Tool:
    """A terminal tool whose input is the run's structured result."""

    async def accept(arguments: dict[str, Any]) -> str:
        return "Received."

    return Tool(name, description, input_schema, accept, terminal=True)


def _text(arguments: dict[str, Any], key: str) -> str:
    value = arguments.get(key)
    if not isinstance(value, str):
        raise ToolError(f"`{key}` must be a string")
    return value


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


class WorkspaceTools:
    def __init__(
        self,
        workspace: Workspace,
        settings: AgentSettings,
        read_only: bool = False,
        runner: CommandRunner | None = None,
    ):
        self.workspace = workspace
        self.settings = settings
        self.read_only = read_only
        self.runner: CommandRunner = runner or LocalRunner()
        """Where `run_command` runs: the sandbox container in a worker Pod."""

    def tools(self) -> list[Tool]:
        path = {"type": "string", "description": "Path relative to the repository root."}
        tools = [
            Tool(
                "read_file",
                "Read a text file of the repository.",
                _schema({"path": path}, ["path"]),
                self.read_file,
            ),
            Tool(
                "list_files",
                "List files under a directory of the repository (recursively).",
                _schema({"path": {**path, "default": "."}}, []),
                self.list_files,
            ),
            Tool(
                "search",
                "Search the repository's text files for a regular expression; returns "
                "path:line: text for each matching line.",
                _schema(
                    {"pattern": {"type": "string"}, "path": {**path, "default": "."}},
                    ["pattern"],
                ),
                self.search,
            ),
        ]
        if self.read_only:
            return tools
        return [
            *tools,
            Tool(
                "write_file",
                "Create or overwrite a file with the given content.",
                _schema({"path": path, "content": {"type": "string"}}, ["path", "content"]),
                self.write_file,
            ),
            Tool(
                "edit_file",
                "Replace one exact occurrence of old_text with new_text in a file.",
                _schema(
                    {
                        "path": path,
                        "old_text": {"type": "string"},
                        "new_text": {"type": "string"},
                    },
                    ["path", "old_text", "new_text"],
                ),
                self.edit_file,
            ),
            Tool(
                "run_command",
                "Run a program in the repository root (no shell). Allowed programs: "
                + ", ".join(self.settings.allowed_commands)
                + f". Times out after {self.settings.command_timeout_seconds:g} s.",
                _schema(
                    {
                        "command": {
                            "type": "array",
                            "items": {"type": "string"},
                            "minItems": 1,
                            "description": "Program and arguments, e.g. "
                            '["python", "-m", "pytest", "-q"].',
                        }
                    },
                    ["command"],
                ),
                self.run_command,
            ),
        ]

    async def read_file(self, arguments: dict[str, Any]) -> str:
        target = self.workspace.resolve(_text(arguments, "path"))
        if not target.is_file():
            raise ToolError(f"{arguments['path']}: no such file")
        if target.stat().st_size > _MAX_FILE_BYTES:
            raise ToolError(f"{arguments['path']}: larger than {_MAX_FILE_BYTES} bytes")
        return target.read_text(errors="replace")

    async def write_file(self, arguments: dict[str, Any]) -> str:
        relative = _text(arguments, "path")
        content = _text(arguments, "content")
        target = self.workspace.resolve(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Re-check after creating directories, and refuse to follow a symlink planted at the
        # final component between the check and the open.
        self.workspace.resolve(relative)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        try:
            descriptor = os.open(target, flags, 0o644)
        except OSError as exc:
            raise ToolError(f"{relative}: {exc.strerror}") from exc
        with os.fdopen(descriptor, "w") as handle:
            handle.write(content)
        return f"Wrote {len(content)} characters to {relative}."

    async def edit_file(self, arguments: dict[str, Any]) -> str:
        relative = _text(arguments, "path")
        old, new = _text(arguments, "old_text"), _text(arguments, "new_text")
        current = await self.read_file({"path": relative})
        count = current.count(old) if old else 0
        if count != 1:
            raise ToolError(
                f"{relative}: old_text occurs {count} times; it must occur exactly once"
            )
        await self.write_file({"path": relative, "content": current.replace(old, new, 1)})
        return f"Edited {relative}."

    def _walk(self, relative: str) -> list[Path]:
        top = self.workspace.resolve(relative or ".")
        if top.is_file():
            return [top]
        found: list[Path] = []
        for directory, subdirectories, files in os.walk(top, followlinks=False):
            subdirectories[:] = sorted(d for d in subdirectories if d != ".git")
            found.extend(Path(directory) / name for name in sorted(files))
            if len(found) > _MAX_LISTED:
                break
        return found

    async def list_files(self, arguments: dict[str, Any]) -> str:
        relative = arguments.get("path") or "."
        files = self._walk(str(relative))
        lines = [self.workspace.relative(path) for path in files[:_MAX_LISTED]]
        if len(files) > _MAX_LISTED:
            lines.append(f"... more than {_MAX_LISTED} files, narrow the path")
        return "\n".join(lines) or "(no files)"

    async def search(self, arguments: dict[str, Any]) -> str:
        pattern = _text(arguments, "pattern")
        if len(pattern) > _MAX_PATTERN:
            raise ToolError(f"pattern longer than {_MAX_PATTERN} characters")
        try:
            expression = re.compile(pattern)
        except re.error as exc:
            raise ToolError(f"invalid regular expression: {exc}") from exc
        matches: list[str] = []
        for path in self._walk(str(arguments.get("path") or ".")):
            if path.is_symlink() or path.stat().st_size > _MAX_FILE_BYTES:
                continue
            try:
                text = path.read_text()
            except (UnicodeDecodeError, OSError):
                continue
            for number, line in enumerate(text.splitlines(), 1):
                if expression.search(line):
                    matches.append(f"{self.workspace.relative(path)}:{number}: {line[:300]}")
                    if len(matches) >= _MAX_MATCHES:
                        return "\n".join([*matches, f"... stopped at {_MAX_MATCHES} matches"])
        return "\n".join(matches) or "(no matches)"

    async def run_command(self, arguments: dict[str, Any]) -> str:
        raw = arguments.get("command")
        argv = shlex.split(raw) if isinstance(raw, str) else raw
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise ToolError("`command` must be a non-empty list of strings")
        program = argv[0]
        if program not in self.settings.allowed_commands:
            raise ToolError(
                f"{program!r} is not allowed; allowed: {', '.join(self.settings.allowed_commands)}"
            )
        result = await self.runner.run(
            CommandRequest(
                argv=tuple(argv),
                cwd=str(self.workspace.root),
                timeout_seconds=self.settings.command_timeout_seconds,
                max_output_chars=self.settings.max_output_chars,
            )
        )
        if result.exit_code is None:
            raise ToolError(result.error or f"{shlex.join(argv)} did not run")
        if result.exit_code != 0:
            # Reported as a failed tool call (is_error), as a shell tool reports a non-zero
            # exit; the model still gets the whole output to act on.
            raise ToolError(result.text())
        return result.text()


TOOL_ERRORS: tuple[type[Exception], ...] = (
    ToolError,
    PathEscapeError,
    OSError,
    SandboxUnavailableError,
)
"""Errors a tool call reports back to the model instead of failing the run."""
