"""Parallel speedup of a master issue's fan-out: one development worker against ten.

A master issue with N independent checklist sub-tasks is orchestrated end to end on the
real local node, as a cluster runs it: the operator (LocalStack) turns a genesis
WorkerPool (the orchestrator) and a development WorkerPool of W replicas into worker Pods
that run the worker image in containers, with the Project's credentials Secret mounted as
the operator mounts it; Redis and Prometheus are real. The model is the fake Messages API
with a fixed latency per turn, GitHub the fake REST API whose repositories are bare git
repositories served over Git's smart HTTP; both listen where Pods reach them. Every
sub-task really clones, writes its test and code, runs the tests in the container,
commits, pushes and opens a pull request.

The same run is made with 1 and with W development workers (a Project and a fresh
repository each), and timed from enqueueing the master item to the time in the completion
record of its master-summary item (the master item itself completes as soon as it has fanned
out).

While the sub-tasks run, the benchmark also checks that the genesis worker is idle: the
queue shows no genesis item in flight (it holds no claim) whenever the join still has open
sub-tasks, and Prometheus' utilization of the genesis pool
(`avg(agentfleet_worker_busy)`, what the autoscaler reads) stays 0 from one scrape after
the fan-out until the last sub-task finishes. Either one above 0 fails the run.

    .venv/bin/python benchmarks/parallel_speedup.py [--tasks 10] [--workers 10]
        [--latency 2.0] [--reading-turns 2]

Each sub-task takes 3 + reading-turns model turns. Prints both wall times, the genesis
pool's idleness, the speedup (target >= 9x; the seeds report 4.3x at 10 tasks) and the
orchestration overhead per item:
the time a sub-task costs beyond its model turns (queueing, git, tests, GitHub calls,
summary updates). Exit status 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from github import Auth, Github

from agentfleet.core.api import Stage
from agentfleet.core.github import IssueFacts, ProjectIntake, issue_work
from agentfleet.core.github.markers import extract_state
from agentfleet.core.pipeline import master_summary_id
from agentfleet.core.queue import CompletionOutcome, WorkQueue
from agentfleet.dev.localenv.stack import LocalStack
from agentfleet.dev.localenv.waiting import wait_for
from agentfleet.dev.testing import FakeAnthropic, FakeGitHub, agents
from agentfleet.operator.autoscaler.prometheus import PrometheusSource

BOT_TOKEN = "ghp_" + "benchmark" * 4
OWNER_TOKEN = "ghp_" + "0wner" * 8
MODEL = "claude-sonnet-4-6"
TARGET = 9.0
RUN_DEADLINE = 1200.0
"""A run that has not finished by then has failed (seconds)."""
SCRAPE_SECONDS = 1.0
"""The stack's Prometheus scrape interval: a gauge's change is seen within it."""


class Idleness:
    """What the genesis pool did while its master issue's sub-tasks ran."""

    def __init__(self) -> None:
        self.samples = 0
        self.max_in_flight = 0
        self.max_utilization = 0.0
        self.fanned_out_after = 0.0
        self.open_seconds = 0.0

    @property
    def idle(self) -> bool:
        return self.samples > 0 and self.max_in_flight == 0 and self.max_utilization == 0.0

    def __str__(self) -> str:
        return (
            f"fanned out after {self.fanned_out_after:.2f} s; while sub-tasks ran "
            f"({self.open_seconds:.1f} s, {self.samples} queue samples) the genesis pool held "
            f"at most {self.max_in_flight} claim(s), utilization at most "
            f"{self.max_utilization:.2f}"
        )


async def genesis_utilization(
    stack: LocalStack, pool: str, start: float, end: float
) -> list[float]:
    """avg(agentfleet_worker_busy) of the pool each second from `start` to `end` (epoch s)."""
    if stack.prometheus is None:
        raise RuntimeError("the stack has no Prometheus")
    source = PrometheusSource(stack.prometheus.url)
    try:
        series = await source.query_range(
            f'avg(agentfleet_worker_busy{{namespace="{stack.namespace}",pool="{pool}"}})',
            start,
            end,
            1.0,
        )
    finally:
        await source.aclose()
    return [value for row in series for _, value in row.points]


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


def project_manifest(name: str, repository: str, api_url: str) -> dict[str, Any]:
    return {
        "apiVersion": "agentfleet.dev/v1alpha1",
        "kind": "Project",
        "metadata": {"name": name},
        "spec": {
            "repository": repository,
            "githubApiUrl": api_url,
            "credentialsSecretRef": {"name": "bench-github"},
            # The benchmark enqueues the master item itself (and times it from there): the
            # one poll intake makes when the Project appears comes before the issue exists,
            # and the next one a day later.
            "intake": {"pollIntervalSeconds": 86400},
        },
    }


def pool_manifest(
    project: str,
    stage: str,
    replicas: int,
    env: list[dict[str, str]],
    egress: list[dict[str, Any]],
) -> dict[str, Any]:
    """A pool of exactly `replicas` workers (autoscaling off) serving one Project, allowed
    (`egress`) to reach the fake GitHub and model on the host: the pool's NetworkPolicy
    blocks private addresses otherwise."""
    return {
        "apiVersion": "agentfleet.dev/v1alpha1",
        "kind": "WorkerPool",
        "metadata": {"name": f"{project}-{stage}"},
        "spec": {
            "stage": stage,
            "project": project,
            "replicas": replicas,
            "minReplicas": replicas,
            "maxReplicas": replicas,
            "autoscaling": {"enabled": False},
            "terminationGracePeriodSeconds": 10,
            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}},
            "agent": {"model": MODEL},
            "env": env,
            "egress": egress,
        },
    }


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
        while await queue.completion(project.namespace, item.id) is None:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def run_once(
    args: argparse.Namespace,
    workers: int,
    stack: LocalStack,
    fake_github: FakeGitHub,
    env: list[dict[str, str]],
    egress: list[dict[str, Any]],
    workdir: Path,
) -> tuple[float, list[float], Idleness]:
    name = f"bench-{workers}"
    project_name = f"shop{workers}"
    seed(fake_github, name, workdir)
    owner = Github(
        base_url=fake_github.base_url,
        auth=Auth.Token(OWNER_TOKEN),
        seconds_between_requests=None,
        seconds_between_writes=None,
    )
    namespace = stack.namespace
    project = ProjectIntake(
        namespace=namespace,
        name=project_name,
        repository=f"acme/{name}",
        api_url=fake_github.base_url,
    )
    apply = [project_manifest(project_name, f"acme/{name}", fake_github.base_url)]
    apply += [
        pool_manifest(project_name, "genesis", 1, env, egress),
        pool_manifest(project_name, "development", workers, env, egress),
    ]
    stack.kubectl("-n", namespace, "apply", "-f", "-", stdin=yaml.safe_dump_all(apply))
    selector = f"agentfleet.dev/pool in ({project_name}-genesis,{project_name}-development)"
    # One line per Pod, one word per container (worker and sandbox): every one ready.
    wait_for(
        lambda: sum(
            set(line.split()) == {"true"}
            for line in stack.kubectl(
                "-n", namespace, "get", "pods", "-l", selector, "-o",
                "jsonpath={range .items[*]}{.status.containerStatuses[*].ready}{'\\n'}{end}",
            ).splitlines()
        ) == workers + 1,
        300,
        f"{workers + 1} worker Pods Ready",
    )  # fmt: skip
    wait_for(
        lambda: "Intake" in stack.kubectl(
            "-n", namespace, "get", "project", project_name,
            "-o", "jsonpath={.status.conditions[*].type}",
        ),
        60,
        "the Project's first intake poll",
    )  # fmt: skip
    body = "\n".join(
        f"- [ ] Part {n}: independent module (files: part_{n}.py)" for n in range(1, args.tasks + 1)
    )
    issue = owner.get_repo(f"acme/{name}").create_issue(
        f"{args.tasks} parts in parallel", body=body, labels=["agentfleet:master"]
    )
    facts = IssueFacts(number=issue.number, title=issue.title, labels=("agentfleet:master",))
    item = issue_work(project, facts)
    if item is None:
        raise RuntimeError("the master issue made no work item")
    item = item.model_copy(
        update={
            "payload": {
                **item.payload,
                "parallelism": {"maxWorkers": args.tasks, "taskTimeoutSeconds": 3600},
            }
        }
    )
    queue = WorkQueue.from_url(stack.redis_url)
    summary_id = master_summary_id(item.id)
    idleness = Idleness()
    try:
        await warm_up(queue, owner, project, name)
        started, started_at = time.monotonic(), time.time()
        await queue.enqueue(item)
        while (fanned := await queue.completion(namespace, item.id)) is None:
            if time.monotonic() - started > RUN_DEADLINE:
                raise RuntimeError(f"the master item did not complete in {RUN_DEADLINE:g} s")
            await asyncio.sleep(0.05)
        if fanned.outcome is not CompletionOutcome.SUCCEEDED:
            raise RuntimeError(f"the master item failed: {fanned.error}")
        idleness.fanned_out_after = time.monotonic() - started
        fanned_out_at = time.time()
        last_open_at = fanned_out_at
        while (done := await queue.completion(namespace, summary_id)) is None:
            if time.monotonic() - started > RUN_DEADLINE:
                raise RuntimeError(f"the master summary did not complete in {RUN_DEADLINE:g} s")
            stats = (await queue.snapshot(namespace)).project_stats(project_name)
            genesis = stats.stages.get(Stage.GENESIS)
            in_flight = genesis.in_flight if genesis is not None else 0
            join = await queue.join(namespace, item.id)
            # Read after the claims: the join was open while they were counted.
            if join is not None and join.open > 0:
                idleness.samples += 1
                idleness.max_in_flight = max(idleness.max_in_flight, in_flight)
                last_open_at = time.time()
            await asyncio.sleep(0.5)
        # Up to the summary's completion record (the workers share this host's clock), not
        # to when this loop, sampling every 0.5 s, noticed it.
        elapsed = done.completed_at.timestamp() - started_at
        idleness.open_seconds = last_open_at - fanned_out_at
        if last_open_at - fanned_out_at > 2 * SCRAPE_SECONDS:
            busy = await genesis_utilization(
                stack, f"{project_name}-genesis", fanned_out_at + 2 * SCRAPE_SECONDS, last_open_at
            )
            if not busy:
                raise RuntimeError("Prometheus has no utilization of the genesis pool")
            idleness.max_utilization = max(busy)
    finally:
        await queue.close()
        for pool in ("genesis", "development"):
            stack.kubectl("-n", namespace, "delete", "workerpool", f"{project_name}-{pool}",
                          "--wait=true", check=False)  # fmt: skip
    if done.outcome is not CompletionOutcome.SUCCEEDED:
        raise RuntimeError(f"the master summary failed: {done.error}")
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
    return elapsed, durations, idleness


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
    stack = LocalStack(namespace="speedup", workdir=workdir / "stack", heartbeat_timeout=30)
    print("starting the local stack ...", flush=True)
    stack.start()
    network = stack.cluster.network
    if network is None:
        raise RuntimeError("the stack's cluster has no node network")
    # Where Pods reach the host: the fakes stand in for api.anthropic.com and GitHub.
    fake_github = FakeGitHub(workdir / "github").listen_on(network.host_ip).start()
    fake_model = FakeAnthropic(latency=args.latency).listen_on(network.host_ip).start()
    fake_github.add_token(BOT_TOKEN, "agentfleet-bot")
    fake_github.add_token(OWNER_TOKEN, "acme")
    fake_model.add_script(
        agents.DEVELOPMENT, agents.tdd_developer(reading_turns=args.reading_turns)
    )
    stack.kubectl("-n", stack.namespace, "create", "secret", "generic", "bench-github",
                  f"--from-literal=token={BOT_TOKEN}")  # fmt: skip
    env = [
        *stack.worker_env(),
        {"name": "AGENTFLEET_HEARTBEAT_INTERVAL", "value": "5"},
        {"name": "AGENTFLEET_MAX_ATTEMPTS", "value": "1"},
        {"name": "ANTHROPIC_API_KEY", "value": fake_model.api_key},
        {"name": "ANTHROPIC_BASE_URL", "value": fake_model.base_url},
        {"name": "AGENTFLEET_GITHUB_PACING", "value": "false"},
        {"name": "AGENTFLEET_TEST_COMMAND", "value": "python -m unittest -q"},
        {"name": "PYTHONWARNINGS", "value": "ignore"},
    ]
    egress = [{"cidr": f"{network.host_ip}/32", "ports": [fake_github.port, fake_model.port]}]
    # The last entry of a name wins: the heartbeat interval overrides stack.worker_env's.
    env = list({e["name"]: e for e in env}.values())
    try:
        print(
            f"{args.tasks} independent sub-tasks; fake model {args.latency:g} s/turn x {turns} "
            f"turns = {model_seconds:g} s of model time per sub-task; "
            f"{os.cpu_count()} CPUs; workers are Pods on the local node",
            flush=True,
        )
        serial, _, serial_idle = await run_once(args, 1, stack, fake_github, env, egress, workdir)
        print(f"  1 development worker : {serial:6.2f} s", flush=True)
        print(f"    genesis: {serial_idle}", flush=True)
        parallel, parallel_tasks, parallel_idle = await run_once(
            args, args.workers, stack, fake_github, env, egress, workdir
        )
        print(f"{args.workers:3d} development workers: {parallel:6.2f} s", flush=True)
        print(f"    genesis: {parallel_idle}", flush=True)
    finally:
        fake_model.stop()
        fake_github.stop()
        stack.stop()
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
    idle = serial_idle.idle and parallel_idle.idle
    print(
        "the master's genesis worker while its sub-tasks ran: "
        + ("idle (no claim held, utilization 0)" if idle else "NOT idle")
    )
    return 0 if speedup >= TARGET and idle else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
