"""Parallel speedup of a master issue's fan-out: one development worker against ten.

A master issue with N independent checklist sub-tasks is orchestrated end to end, the way
a cluster runs it: a genesis worker (the orchestrator) and W development workers are
separate `agentfleet worker` processes (the real CLI, handlers built from the environment
exactly as in a pod) sharing a real Redis; the model is the fake Messages API with a fixed
latency per turn, GitHub is the fake REST API over bare git repositories. Every sub-task
really clones, writes its test and code, runs the tests, commits, pushes and opens a pull
request.

The same run is made with 1 and with W development workers (fresh repository each), and
timed from enqueueing the master item to its completion record.

    .venv/bin/python benchmarks/parallel_speedup.py [--tasks 10] [--workers 10]
        [--latency 2.0] [--reading-turns 2]

Each sub-task takes 3 + reading-turns model turns. Prints both wall times, the speedup
(target >= 9x; the seeds report 4.3x at 10 tasks) and the orchestration overhead per item:
the time a sub-task costs beyond its model turns (queueing, git, tests, GitHub calls,
summary updates). Exit status 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from github import Auth, Github

from agentfleet.api import Stage
from agentfleet.github import IssueFacts, ProjectIntake, issue_work
from agentfleet.github.markers import extract_state
from agentfleet.localenv import RedisServer, free_port
from agentfleet.queue import CompletionOutcome, WorkQueue
from agentfleet.testing import FakeAnthropic, FakeGitHub, agents

BOT_TOKEN = "ghp_" + "benchmark" * 4
OWNER_TOKEN = "ghp_" + "0wner" * 8
MODEL = "claude-sonnet-4-6"
TARGET = 9.0


def seed(fake: FakeGitHub, name: str, workdir: Path) -> None:
    git_dir = fake.create_repo("acme", name)
    work = workdir / f"seed-{name}"
    identity = {
        "GIT_AUTHOR_NAME": "acme",
        "GIT_AUTHOR_EMAIL": "acme@example.com",
        "GIT_COMMITTER_NAME": "acme",
        "GIT_COMMITTER_EMAIL": "acme@example.com",
    }
    subprocess.run(["git", "clone", "-q", str(git_dir), str(work)], check=True)
    (work / "tests").mkdir()
    (work / "tests" / "__init__.py").write_text("")
    (work / "README.md").write_text(f"# {name}\n")
    for command in (["add", "."], ["commit", "-qm", "init"], ["push", "-q", "origin", "HEAD:main"]):
        subprocess.run(["git", *command], cwd=work, check=True, env={**os.environ, **identity})


class Workers:
    """`agentfleet worker` processes for one namespace."""

    def __init__(self, base_env: dict[str, str], namespace: str, logs: Path) -> None:
        self.base_env = base_env
        self.namespace = namespace
        self.logs = logs
        self.processes: list[tuple[subprocess.Popen[bytes], int]] = []

    def start(self, stage: str, count: int) -> None:
        for index in range(count):
            port = free_port()
            name = f"{stage}-{index}"
            env = {
                **self.base_env,
                "AGENTFLEET_NAMESPACE": self.namespace,
                "AGENTFLEET_POOL": f"{stage}-pool",
                "AGENTFLEET_STAGE": stage,
                "AGENTFLEET_HANDLER": f"agentfleet.stages:{stage}_handler",
                "AGENTFLEET_METRICS_PORT": str(port),
                "POD_NAME": f"{self.namespace}-{name}",
            }
            log = (self.logs / f"{self.namespace}-{name}.log").open("wb")
            process = subprocess.Popen(
                [sys.executable, "-m", "agentfleet", "worker", "--log-level", "WARNING"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            self.processes.append((process, port))

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        for process, port in self.processes:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"a worker exited at start; see logs in {self.logs}")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise TimeoutError("workers did not start") from None
                    time.sleep(0.2)

    def stop(self) -> None:
        for process, _ in self.processes:
            process.send_signal(signal.SIGTERM)
        for process, _ in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


async def warm_up(queue: WorkQueue, owner: Github, project: ProjectIntake, name: str) -> None:
    """Steady state, not start-up, is measured: one throw-away item per stage (for a closed
    issue, which both handlers skip at once) creates the project's queue streams, as its
    first real work would; workers block on existing streams and wake per entry."""
    closed = owner.get_repo(f"acme/{name}").create_issue("warm-up")
    closed.edit(state="closed")
    items = [
        issue_work(
            project.model_copy(update={"stages": (stage, Stage.CONTENT)}),
            IssueFacts(number=closed.number, title="warm-up", labels=("agentfleet",)),
        )
        for stage in (Stage.GENESIS, Stage.DEVELOPMENT)
    ]
    ready = [item for item in items if item is not None]
    await queue.enqueue(*ready)
    for item in ready:
        while await queue.completion(name, item.id) is None:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def run_once(
    args: argparse.Namespace,
    workers: int,
    redis: RedisServer,
    fake_github: FakeGitHub,
    base_env: dict[str, str],
    workdir: Path,
) -> tuple[float, list[float]]:
    name = f"bench-{workers}"
    seed(fake_github, name, workdir)
    owner = Github(
        base_url=fake_github.base_url,
        auth=Auth.Token(OWNER_TOKEN),
        seconds_between_requests=None,
        seconds_between_writes=None,
    )
    body = "\n".join(
        f"- [ ] Part {n}: independent module (files: part_{n}.py)" for n in range(1, args.tasks + 1)
    )
    issue = owner.get_repo(f"acme/{name}").create_issue(
        f"{args.tasks} parts in parallel", body=body, labels=["agentfleet:master"]
    )
    project = ProjectIntake(namespace=name, name="shop", repository=f"acme/{name}")
    facts = IssueFacts(number=issue.number, title=issue.title, labels=("agentfleet:master",))
    item = issue_work(project, facts)
    assert item is not None
    item = item.model_copy(
        update={
            "payload": {
                **item.payload,
                "parallelism": {"maxWorkers": args.tasks, "taskTimeoutSeconds": 3600},
            }
        }
    )
    pool = Workers(base_env, name, workdir)
    pool.start("genesis", 1)
    pool.start("development", workers)
    queue = WorkQueue.from_url(redis.url)
    try:
        pool.wait_ready()
        await warm_up(queue, owner, project, name)
        started = time.monotonic()
        await queue.enqueue(item)
        while (done := await queue.completion(name, item.id)) is None:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - started
    finally:
        await queue.close()
        pool.stop()
    if done.outcome is not CompletionOutcome.SUCCEEDED:
        raise RuntimeError(f"the master item failed: {done.error}")
    summary = next(
        c.body
        for c in owner.get_repo(f"acme/{name}").get_issue(issue.number).get_comments()
        if "parallel run" in c.body
    )
    state: Any = extract_state(summary)
    durations = [float(r["duration_seconds"]) for r in state["records"]]
    owner.close()
    opened = fake_github.pull_heads(f"acme/{name}")
    if len(opened) != args.tasks:
        raise RuntimeError(f"{len(opened)} pull requests for {args.tasks} sub-tasks")
    return elapsed, durations


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--latency", type=float, default=2.0, help="seconds per model turn")
    parser.add_argument("--reading-turns", type=int, default=2)
    args = parser.parse_args()
    turns = 3 + args.reading_turns
    model_seconds = turns * args.latency

    workdir = Path(tempfile.mkdtemp(prefix="agentfleet-speedup-"))
    redis = RedisServer().start()
    fake_github = FakeGitHub(workdir / "github").start()
    fake_model = FakeAnthropic(latency=args.latency).start()
    fake_github.add_token(BOT_TOKEN, "agentfleet-bot")
    fake_github.add_token(OWNER_TOKEN, "acme")
    fake_model.add_script(
        agents.DEVELOPMENT, agents.tdd_developer(reading_turns=args.reading_turns)
    )
    base_env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(workdir),
        "AGENTFLEET_REDIS_URL": redis.url,
        "AGENTFLEET_HEARTBEAT_INTERVAL": "5",
        "AGENTFLEET_WORKSPACE_ROOT": str(workdir / "workspaces"),
        "AGENTFLEET_MAX_ATTEMPTS": "1",
        "ANTHROPIC_API_KEY": fake_model.api_key,
        "ANTHROPIC_BASE_URL": fake_model.base_url,
        "AGENTFLEET_MODEL": MODEL,
        "AGENTFLEET_GITHUB_API_URL": fake_github.base_url,
        "AGENTFLEET_GITHUB_TOKEN": BOT_TOKEN,
        "AGENTFLEET_GITHUB_PACING": "false",
        "AGENTFLEET_PROJECTS_DIR": str(workdir / "no-mounted-credentials"),
        "AGENTFLEET_TEST_COMMAND": "python -m unittest -q",
        "PYTHONWARNINGS": "ignore",
    }
    try:
        print(
            f"{args.tasks} independent sub-tasks; fake model {args.latency:g} s/turn x {turns} "
            f"turns = {model_seconds:g} s of model time per sub-task; "
            f"{os.cpu_count()} CPUs",
            flush=True,
        )
        serial, _ = await run_once(args, 1, redis, fake_github, base_env, workdir)
        print(f"  1 development worker : {serial:6.2f} s", flush=True)
        parallel, parallel_tasks = await run_once(
            args, args.workers, redis, fake_github, base_env, workdir
        )
        print(f"{args.workers:3d} development workers: {parallel:6.2f} s", flush=True)
    finally:
        fake_model.stop()
        fake_github.stop()
        redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    speedup = serial / parallel
    ideal = min(args.workers, args.tasks)
    serial_overhead = (serial - args.tasks * model_seconds) / args.tasks
    mean_parallel_task = sum(parallel_tasks) / len(parallel_tasks)
    print(f"speedup: {speedup:.2f}x over one worker (ideal {ideal}x; target >= {TARGET:g}x)")
    print(
        "orchestration overhead per item: "
        f"{serial_overhead:.3f} s with one worker ((wall - {args.tasks} x model time) / "
        f"{args.tasks}); with {args.workers} workers each sub-task took "
        f"{mean_parallel_task:.2f} s on average, {mean_parallel_task - model_seconds:.3f} s "
        f"beyond its model time, and the fan-out as a whole "
        f"{parallel - model_seconds:.2f} s beyond one sub-task's model time"
    )
    return 0 if speedup >= TARGET else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
