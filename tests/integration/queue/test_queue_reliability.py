"""Crash safety: 1,000 items, 8 worker processes SIGKILLed at random and restarted, and
Redis itself killed and restarted from its append-only file, yet every item is completed
exactly once and nothing is lost or stuck."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from redis import Redis

from agentfleet.core.api import Stage
from agentfleet.core.queue import StageQueueStats, WorkItem, WorkQueue
from agentfleet.dev.localenv import RedisServer
from agentfleet.dev.localenv.waiting import wait_for

pytestmark = pytest.mark.integration

QueueFactory = Callable[..., WorkQueue]

ITEMS = 1000
WORKERS = 8
NAMESPACE = "chaos"
BASE = f"agentfleet:{{{NAMESPACE}}}"
STREAM = f"{BASE}:q:shop:genesis:general:normal"


class Fleet:
    """Eight `agentfleet worker` processes; a killed one comes back like a restarted pod."""

    def __init__(self, redis_url: str, directory: Path) -> None:
        self.directory = directory
        self.env = {
            **os.environ,
            "AGENTFLEET_REDIS_URL": redis_url,
            "AGENTFLEET_NAMESPACE": NAMESPACE,
            "AGENTFLEET_POOL": "chaos-pool",
            "AGENTFLEET_STAGE": "genesis",
            "AGENTFLEET_COMMAND": 'echo "$AGENTFLEET_ITEM_ID" >> "$OUT/executions"',
            "AGENTFLEET_METRICS_PORT": "0",
            "AGENTFLEET_HEARTBEAT_INTERVAL": "0.2",
            "AGENTFLEET_HEARTBEAT_TIMEOUT": "1",
            # Items in the hands of a killed worker use up attempts; none may run out here.
            "AGENTFLEET_MAX_ATTEMPTS": "20",
            "OUT": str(directory),
        }
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.current_logs: dict[int, Path] = {}
        self.names: dict[int, str] = {}
        self.generation: Counter[int] = Counter()
        self.starts = 0

    def start(self, slot: int, same_name: bool = True) -> None:
        # A container restarted in place keeps its pod name; a replacement pod gets a new one.
        if not same_name:
            self.generation[slot] += 1
        name = f"chaos-{slot}-{self.generation[slot]}"
        self.names[slot] = name
        self.starts += 1
        self.current_logs[slot] = self.directory / f"{name}.{self.starts}.log"
        with self.current_logs[slot].open("ab") as log:
            self.processes[slot] = subprocess.Popen(
                [sys.executable, "-m", "agentfleet", "worker"],
                env={**self.env, "POD_NAME": name},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self, slot: int) -> None:
        self.processes[slot].kill()
        self.processes[slot].wait(timeout=10)

    def serving(self) -> bool:
        """Every current worker is in its loop (a pod SIGTERMed while still starting up
        is simply killed, like any process without its handlers yet)."""
        return all("serving" in log.read_text() for log in self.current_logs.values())

    def drain(self) -> dict[int, int]:
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        return {slot: process.wait(timeout=30) for slot, process in self.processes.items()}

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-1500:]}"
            for path in sorted(self.directory.glob("chaos-*.log"))
        )

    def kill_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


async def test_every_item_completes_exactly_once_through_worker_and_redis_crashes(
    make_queue: QueueFactory, tmp_path: Path
) -> None:
    chaos = random.Random(20261121)
    with RedisServer(appendonly=True) as server:
        queue = make_queue(server.url, prefix="agentfleet")
        ids = [f"item-{n:04d}" for n in range(ITEMS)]
        pipeline = (Stage.GENESIS,)
        await queue.enqueue(
            *[
                WorkItem(
                    id=item_id,
                    namespace=NAMESPACE,
                    project="shop",
                    stage=Stage.GENESIS,
                    pipeline=pipeline,
                )
                for item_id in ids
            ]
        )
        watcher: Redis[str] = Redis.from_url(server.url, decode_responses=True)

        def completed() -> int:
            count: int = watcher.hlen(f"{BASE}:done")
            return count

        def completed_at_least(mark: int) -> bool:
            return completed() >= mark

        fleet = Fleet(server.url, tmp_path)
        try:
            for slot in range(WORKERS):
                fleet.start(slot)
            # Every 60 completions, SIGKILL a random worker that holds an item (and start
            # it again at once); kill Redis once, in the middle of the run.
            for mark in range(60, ITEMS - 60, 60):
                wait_for(partial(completed_at_least, mark), 60, f"{mark} completions", 0.02)
                holders = {
                    entry["consumer"]
                    for entry in watcher.xpending_range(STREAM, "genesis", "-", "+", 100)
                }
                busy = [slot for slot, name in fleet.names.items() if name in holders]
                slot = chaos.choice(busy or sorted(fleet.names))
                fleet.kill(slot)
                fleet.start(slot, same_name=chaos.random() < 0.5)
                if mark == 480:
                    server.kill()
                    server.start()
            wait_for(lambda: completed() == ITEMS, 60, "every item to be completed", 0.05)
            wait_for(fleet.serving, 30, "the restarted workers to be up")
            exit_codes = fleet.drain()
        except BaseException:
            print(fleet.logs())
            raise
        finally:
            fleet.kill_all()

        assert exit_codes == dict.fromkeys(range(WORKERS), 0), fleet.logs()
        log = await queue.completion_log(NAMESPACE)
        assert Counter(entry["id"] for entry in log) == Counter(ids)
        assert {entry["outcome"] for entry in log} == {"succeeded"}
        stats = await queue.stats(NAMESPACE, "shop")
        assert stats.stages == {Stage.GENESIS: StageQueueStats(completed=ITEMS)}
        for leftover in ("items", "route", "attempts", "where", "retry", "parked"):
            assert not watcher.exists(f"{BASE}:{leftover}"), f"{leftover} should be empty"
        executions = Counter((tmp_path / "executions").read_text().split())
        assert set(executions) == set(ids)
        reclaimed = sum(1 for entry in log if int(entry["attempts"]) > 1)
        assert reclaimed, "the crashes should have hit items in flight"
        print(
            f"{ITEMS} items: {reclaimed} reclaimed from killed workers, "
            f"{sum(executions.values()) - ITEMS} executed twice, {fleet.starts - WORKERS} "
            f"worker restarts ({sum(fleet.generation.values())} as new pods)"
        )
        watcher.close()
