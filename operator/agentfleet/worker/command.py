"""The `command` handler: runs a shell command once per item.

Used by the tests, the benchmark and the demo, and handy for wiring any existing script
into a pipeline stage. The command runs in the item's workspace with the item in its
environment:

| variable | value |
| --- | --- |
| `AGENTFLEET_ITEM_ID`, `AGENTFLEET_ITEM_NAMESPACE`, `AGENTFLEET_ITEM_PROJECT` | the item |
| `AGENTFLEET_ITEM_STAGE`, `AGENTFLEET_ITEM_SPECIALTY`, `AGENTFLEET_ITEM_LANE` | its routing |
| `AGENTFLEET_ITEM_ATTEMPT` | 1 on the first delivery |
| `AGENTFLEET_ITEM_PAYLOAD` | the payload as JSON |
| `AGENTFLEET_ITEM_JSON` | the whole item as JSON |
| `AGENTFLEET_WORKSPACE` | the item's workspace (also the working directory) |

Exit status 0 succeeds; if the last line of output is a JSON object it becomes the
handler's `output` (merged into the next stage's payload). Exit status 65 (EX_DATAERR:
the input itself is bad) fails permanently and sends the item to review; any other
status is a retryable failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from typing import Any

from agentfleet.core.podenv import WorkerSettings
from agentfleet.core.queue.models import WorkItem
from agentfleet.worker.handlers import HandlerContext, HandlerResult

PERMANENT_FAILURE_STATUS = 65
_ERROR_TAIL_CHARS = 2000


def item_environment(item: WorkItem, context: HandlerContext) -> dict[str, str]:
    return {
        "AGENTFLEET_ITEM_ID": item.id,
        "AGENTFLEET_ITEM_NAMESPACE": item.namespace,
        "AGENTFLEET_ITEM_PROJECT": item.project,
        "AGENTFLEET_ITEM_STAGE": item.stage.value,
        "AGENTFLEET_ITEM_SPECIALTY": item.specialty or "",
        "AGENTFLEET_ITEM_LANE": item.lane.value,
        "AGENTFLEET_ITEM_ATTEMPT": str(item.attempts),
        "AGENTFLEET_ITEM_PAYLOAD": json.dumps(item.payload),
        "AGENTFLEET_ITEM_JSON": item.model_dump_json(),
        "AGENTFLEET_WORKSPACE": str(context.workspace),
    }


def last_line_object(output: str) -> dict[str, Any]:
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines:
        return {}
    try:
        value = json.loads(lines[-1])
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class CommandHandler:
    def __init__(self, settings: WorkerSettings) -> None:
        if not settings.command:
            raise ValueError("the command handler needs --command or AGENTFLEET_COMMAND")
        self.command = settings.command

    async def handle(self, item: WorkItem, context: HandlerContext) -> HandlerResult:
        process = await asyncio.create_subprocess_shell(
            self.command,
            cwd=context.workspace,
            env={**os.environ, **item_environment(item, context)},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            # Its own process group, so cancelling the item stops everything it started.
            start_new_session=True,
        )
        try:
            raw, _ = await process.communicate()
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            raise
        output = raw.decode(errors="replace")
        if process.returncode == 0:
            return HandlerResult.succeeded(output=last_line_object(output))
        context.logger.warning("command exited with status %s", process.returncode)
        return HandlerResult.failed(
            f"command exited with status {process.returncode}: {output[-_ERROR_TAIL_CHARS:]}",
            retryable=process.returncode != PERMANENT_FAILURE_STATUS,
        )
