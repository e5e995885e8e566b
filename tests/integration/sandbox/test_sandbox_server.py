"""The sandbox server and its client over a real Unix socket: what the worker container
asks of the sandbox container, and the limits the sandbox enforces on its own."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentfleet.dev.localenv.waiting import async_wait_for
from agentfleet.worker.sandbox import CommandRequest, SandboxUnavailableError
from agentfleet.worker.sandbox.client import SandboxRunner
from agentfleet.worker.sandbox.server import SandboxServer

pytestmark = pytest.mark.integration


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[tuple[SandboxRunner, Path]]:
    root = tmp_path / "workspace"
    (root / "checkout").mkdir(parents=True)
    home = tmp_path / "home"
    home.mkdir()
    socket = tmp_path / "run" / "sandbox.sock"
    server = SandboxServer(socket, root, home)
    await server.start()
    try:
        yield SandboxRunner(socket, connect_timeout=2), root / "checkout"
    finally:
        await server.close()


def request(cwd: Path, *argv: str, timeout: float = 10, **extra: object) -> CommandRequest:
    return CommandRequest.model_validate(
        {"argv": argv, "cwd": str(cwd), "timeout_seconds": timeout, **extra}
    )


async def test_a_command_runs_in_the_checkout_with_a_scrubbed_environment(
    sandbox: tuple[SandboxRunner, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    runner, checkout = sandbox
    # Whatever the sandbox process itself has in its environment stays there.
    monkeypatch.setenv("AGENTFLEET_CANARY", "canary-value-123")
    script = "import os; print(os.getcwd()); print(sorted(os.environ))"
    result = await runner.run(request(checkout, "python3", "-c", script))
    assert result.exit_code == 0, result.text()
    cwd, names = result.output.splitlines()
    assert cwd == str(checkout)
    assert "AGENTFLEET_CANARY" not in names and "canary-value-123" not in result.output
    assert set(eval(names)) <= {
        "PATH", "HOME", "LANG", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "NO_COLOR",
        "LC_CTYPE",
    }  # fmt: skip
    assert result.text().startswith("exit code 0\n")


async def test_the_working_directory_must_be_inside_the_workspace(
    sandbox: tuple[SandboxRunner, Path], tmp_path: Path
) -> None:
    runner, checkout = sandbox
    outside = tmp_path / "outside"
    outside.mkdir()
    (checkout / "escape").symlink_to(outside)
    for cwd in (outside, checkout / ".." / "..", checkout / "escape", Path("/")):
        result = await runner.run(request(cwd, "true"))
        assert result.exit_code is None, cwd
        assert "not a directory of the workspace" in (result.error or "")


async def test_time_and_output_are_bounded_and_nothing_outlives_a_command(
    sandbox: tuple[SandboxRunner, Path],
) -> None:
    runner, checkout = sandbox
    marker = checkout / "still-running"
    # A command that leaves a grandchild behind and then hangs.
    script = (
        "import subprocess, time; "
        f"subprocess.Popen(['sh', '-c', 'sleep 3; touch {marker}']); time.sleep(60)"
    )
    result = await runner.run(request(checkout, "python3", "-c", script, timeout=1))
    assert result.exit_code is None and "timed out after 1 s" in (result.error or "")
    # Waiting for something not to happen: the grandchild would have touched it at 3 s.
    await asyncio.sleep(3.5)
    assert not marker.exists(), "the command's process group was not killed"

    result = await runner.run(
        request(checkout, "python3", "-c", "print('x' * 5000 + 'END')", max_output_chars=100)
    )
    assert result.exit_code == 0
    assert result.output.endswith("END\n") and "characters cut" in result.output
    assert len(result.output) < 200


async def test_bad_requests_get_an_error_not_a_crash(
    sandbox: tuple[SandboxRunner, Path], tmp_path: Path
) -> None:
    runner, checkout = sandbox
    missing = await runner.run(request(checkout, "no-such-program-anywhere"))
    assert missing.error == "'no-such-program-anywhere' is not installed"
    reader, writer = await asyncio.open_unix_connection(str(runner.socket_path))
    writer.write(b'{"argv": [], "cwd": "/"}\n')
    await writer.drain()
    answer = await reader.readline()
    writer.close()
    assert b"malformed request" in answer
    # The server is still serving.
    assert (await runner.run(request(checkout, "true"))).exit_code == 0


async def test_the_socket_is_for_the_pods_group_only(
    sandbox: tuple[SandboxRunner, Path],
) -> None:
    runner, _ = sandbox
    mode = stat.S_IMODE(os.stat(runner.socket_path).st_mode)
    assert mode == 0o660


async def test_no_sandbox_is_a_clear_error_after_the_connect_timeout(tmp_path: Path) -> None:
    runner = SandboxRunner(tmp_path / "nobody.sock", connect_timeout=0.5)
    with pytest.raises(SandboxUnavailableError, match="does not answer"):
        await runner.run(request(tmp_path, "true"))


async def test_a_sandbox_that_starts_late_is_waited_for(tmp_path: Path) -> None:
    root = tmp_path / "workspace"
    root.mkdir()
    socket = tmp_path / "late.sock"
    runner = SandboxRunner(socket, connect_timeout=10)
    pending = asyncio.ensure_future(runner.run(request(root, "true")))
    await asyncio.sleep(0.5)
    server = SandboxServer(socket, root, tmp_path)
    await server.start()
    try:
        result = await async_wait_for(lambda: pending, 10, "the late sandbox to answer")
        assert result.exit_code == 0
    finally:
        await server.close()
