"""Scaling that knows what it buys: while the model API answers the fleet with 429s, a
queue deep enough to scale up does not add Pods; the hold is announced on the pool with
its reason, and the scale-up follows once the 429s have left Prometheus' window.

Everything but the two SaaS is real: the local node runs the worker image, whose agent
calls the Anthropic test server through the real SDK (answered 429 with `retry-after:
1`, as the API does) and clones from the GitHub test server; each worker counts the
answers in `agentfleet_agent_model_responses_total`, Prometheus scrapes them, and the
operator's autoscaler reads the throttled share from Prometheus as in production.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from github import Auth, Github

from agentfleet.core.api import Stage
from agentfleet.core.github import IssueFacts, ProjectIntake, issue_work
from agentfleet.core.queue import WorkItem
from agentfleet.dev.localenv.stack import LocalStack
from agentfleet.dev.localenv.waiting import wait_for
from agentfleet.dev.testing import FakeAnthropic, FakeGitHub, scripted

if TYPE_CHECKING:
    from .conftest import Cluster

pytestmark = pytest.mark.e2e

POOL = "developers"
PROJECT = "web"
REPOSITORY = "acme/web"
BOT_TOKEN = "ghp_" + "ratelimit" * 4
OWNER_TOKEN = "ghp_" + "0wner" * 8
POLL_SECONDS = 2
ITEMS = 25
"""Enough that the queue stays above scaleUp.queueDepthAbove (10) for the whole test: one
worker finishes an item per model turn once the 429s stop."""
TURN_SECONDS = 20.0
"""The test server's latency of an answered turn (429s come at once)."""
THROTTLE_WINDOW_SECONDS = 120
"""The throttled share is a rate over two minutes (docs/autoscaling.md)."""


def seed(github: FakeGitHub, workdir: Path) -> None:
    git_dir = github.create_repo(*REPOSITORY.split("/"))
    work = workdir / "seed"
    identity = {
        "GIT_AUTHOR_NAME": "acme",
        "GIT_AUTHOR_EMAIL": "acme@example.com",
        "GIT_COMMITTER_NAME": "acme",
        "GIT_COMMITTER_EMAIL": "acme@example.com",
    }
    subprocess.run(["git", "clone", "-q", str(git_dir), str(work)], check=True)
    (work / "README.md").write_text("# web\n")
    for command in (["add", "."], ["commit", "-qm", "init"], ["push", "-q", "origin", "HEAD:main"]):
        subprocess.run(["git", *command], cwd=work, check=True, env={**os.environ, **identity})


def manifests(
    stack: LocalStack, github: FakeGitHub, model: FakeAnthropic, host_ip: str
) -> list[dict[str, Any]]:
    env = [
        *stack.worker_env(),
        {"name": "ANTHROPIC_API_KEY", "value": model.api_key},
        {"name": "ANTHROPIC_BASE_URL", "value": model.base_url},
        {"name": "AGENTFLEET_GITHUB_PACING", "value": "false"},
        # A worker keeps retrying its call (every retry-after second) rather than giving
        # the item back: a steady stream of 429s, and the queue stays deep.
        {"name": "AGENTFLEET_AGENT_MAX_RETRIES", "value": "100000"},
    ]
    return [
        {
            "apiVersion": "agentfleet.dev/v1alpha1",
            "kind": "Project",
            "metadata": {"name": PROJECT},
            "spec": {
                "repository": REPOSITORY,
                "githubApiUrl": github.base_url,
                "credentialsSecretRef": {"name": "web-github"},
                # The test enqueues the items itself; intake's first poll finds none.
                "intake": {"pollIntervalSeconds": 86400},
            },
        },
        {
            "apiVersion": "agentfleet.dev/v1alpha1",
            "kind": "WorkerPool",
            "metadata": {"name": POOL},
            "spec": {
                "stage": "development",
                "project": PROJECT,
                "minReplicas": 1,
                "maxReplicas": 3,
                "terminationGracePeriodSeconds": 10,
                "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}},
                "env": env,
                # Only the two test servers on the host, as spec.egress allows.
                "egress": [{"cidr": f"{host_ip}/32", "ports": [github.port, model.port]}],
                "autoscaling": {
                    "pollIntervalSeconds": POLL_SECONDS,
                    "scaleUp": {"stabilizationSeconds": 0},
                    # Only the 429s count here: no rate-limit headers are sent.
                    "rateLimit": {"headroomBelow": 0},
                },
            },
        },
    ]


def development_items(
    stack: LocalStack, github: Github, api_url: str, count: int, first: int
) -> list[WorkItem]:
    """Development items for `count` new issues (unlabelled on GitHub, so intake leaves
    them alone; the items are what intake would make of them)."""
    project = ProjectIntake(
        namespace=stack.namespace,
        name=PROJECT,
        repository=REPOSITORY,
        api_url=api_url,
        stages=(Stage.DEVELOPMENT, Stage.CONTENT),
    )
    repo = github.get_repo(REPOSITORY)
    items = []
    for n in range(first, first + count):
        issue = repo.create_issue(f"Part {n}", body=f"Add part_{n}.py")
        made = issue_work(
            project, IssueFacts(number=issue.number, title=issue.title, labels=("agentfleet",))
        )
        if made is None:
            raise RuntimeError(f"issue {issue.number} made no work item")
        items.append(made)
    return items


def enqueue(cluster: Cluster, items: list[WorkItem]) -> None:
    async def put() -> None:
        queue = cluster.queue()
        try:
            await queue.enqueue(*items)
        finally:
            await queue.close()

    asyncio.run(put())


def throttled_share(stack: LocalStack) -> float | None:
    """What the autoscaler reads: 429/529 answers over all answers, over two minutes."""
    if stack.prometheus is None:
        raise RuntimeError("the stack has no Prometheus")
    rows = stack.prometheus.query(
        f'sum(rate(agentfleet_agent_model_responses_total{{namespace="{stack.namespace}",'
        f'pool="{POOL}",status="rate_limited"}}[2m])) / sum(rate('
        f'agentfleet_agent_model_responses_total{{namespace="{stack.namespace}",'
        f'pool="{POOL}"}}[2m]))'
    )
    return float(rows[0]["value"][1]) if rows else None


def test_429s_hold_the_scale_up_with_the_reason_and_it_resumes_when_they_stop(
    stack: LocalStack, cluster: Cluster, tmp_path: Path
) -> None:
    network = stack.cluster.network
    assert network is not None, "the local cluster has no node network"
    github = FakeGitHub(tmp_path / "github").listen_on(network.host_ip).start()
    model = FakeAnthropic(latency=TURN_SECONDS).listen_on(network.host_ip).start()
    owner: Github | None = None
    try:
        github.add_token(BOT_TOKEN, "agentfleet-bot")
        github.add_token(OWNER_TOKEN, "acme")
        seed(github, tmp_path)
        # Any conversation ends after one (slow) turn once the 429s stop.
        model.add_script("", scripted())
        stack.kubectl("-n", stack.namespace, "create", "secret", "generic", "web-github",
                      f"--from-literal=token={BOT_TOKEN}")  # fmt: skip
        stack.kubectl(
            "-n", stack.namespace, "apply", "-f", "-",
            stdin=yaml.safe_dump_all(manifests(stack, github, model, network.host_ip)),
        )  # fmt: skip
        wait_for(lambda: len(cluster.pods(POOL)) == 1, 120, "the first worker Pod")
        owner = Github(
            base_url=github.base_url,
            auth=Auth.Token(OWNER_TOKEN),
            seconds_between_requests=None,
            seconds_between_writes=None,
        )

        # The API limits the fleet: every call is answered 429 until the test says stop.
        model.fail_next(count=10_000, status=429, retry_after=1)
        enqueue(cluster, development_items(stack, owner, github.base_url, 1, first=1))
        wait_for(
            lambda: (share := throttled_share(stack)) is not None and share > 0.5,
            120,
            "Prometheus showing the worker's 429s",
        )
        # Two polls of the operator's after that, so it has read the share at least once:
        # a deep queue that lands in the very poll that first could see the 429s is a race
        # between two scrapes, not the behaviour under test.
        polls = cluster.operator_metric("agentfleet_autoscaler_evaluation_seconds_count")
        wait_for(
            lambda: (
                cluster.operator_metric("agentfleet_autoscaler_evaluation_seconds_count")
                >= polls + 2
            ),
            30,
            "two autoscaler polls after the 429s showed",
        )

        # A queue deep enough to scale (queue_depth > 10): the scale-up is held.
        enqueue(cluster, development_items(stack, owner, github.base_url, ITEMS, first=2))
        blocked = wait_for(
            lambda: next((m for r, m in cluster.events(POOL) if r == "ScaleBlocked"), None),
            60,
            "a ScaleBlocked Event on the pool",
        )
        assert "held while the model API limits the pool" in blocked, blocked
        assert "throttled=" in blocked and "queue_depth=" in blocked, blocked
        assert blocked.startswith("1→"), blocked
        active = cluster.condition(POOL, "ScalingActive")
        assert active is not None and active["reason"] == "RateLimited", active
        # Held, poll after poll: ten polls with a deep queue and still one replica.
        ticks = cluster.operator_metric(
            "agentfleet_scaling_decisions_total",
            namespace=stack.namespace, pool=POOL, reason="rate_limited",
        )  # fmt: skip
        wait_for(
            lambda: cluster.operator_metric(
                "agentfleet_scaling_decisions_total",
                namespace=stack.namespace, pool=POOL, reason="rate_limited",
            ) >= ticks + 10,
            60,
            "ten more held decisions",
        )  # fmt: skip
        assert cluster.pool(POOL)["spec"].get("replicas", 1) == 1
        assert cluster.deployment_replicas(POOL) == 1
        assert not any(r == "ScaledUp" for r, _ in cluster.events(POOL))

        # The limit clears: calls are answered again, and once the 429s have left the
        # two-minute window the deep queue scales the pool up.
        model.clear_faults()
        cleared = wait_for(
            lambda: next((m for r, m in cluster.events(POOL) if r == "RateLimitCleared"), None),
            THROTTLE_WINDOW_SECONDS + 60,
            "a RateLimitCleared Event",
        )
        assert "queue_depth=" in cleared, cleared
        wait_for(lambda: cluster.deployment_replicas(POOL) > 1, 30, "the scale-up")
        scaled = [m for r, m in cluster.events(POOL) if r == "ScaledUp"]
        assert scaled and scaled[0].startswith("1→"), scaled
    except BaseException:
        print(f"the Anthropic test server answered {len(model.calls)} call(s)")
        print(f"throttled share in Prometheus: {throttled_share(stack)}")
        print("events on the pool:", *cluster.events(POOL), sep="\n  ")
        print("the pool's status:", yaml.safe_dump(cluster.pool(POOL).get("status")))
        print(
            stack.kubectl(
                "-n", stack.namespace, "logs", "-l", f"agentfleet.dev/pool={POOL}",
                "-c", "worker", "--tail", "60", check=False,
            )
        )  # fmt: skip
        raise
    finally:
        if owner is not None:
            owner.close()
        model.stop()
        github.stop()
