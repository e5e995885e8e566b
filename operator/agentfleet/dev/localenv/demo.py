"""`make demo`: the whole system on this machine, scaling live.

Brings up the LocalStack (a real control plane and node, Redis, Prometheus, the
operator), applies a sample Project and an autoscaled WorkerPool whose worker Pods run the
worker image in containers and a short shell command per item, enqueues a burst, and
shows replicas, queue depth, utilization and the operator's reasons as they change, and
the Pods on the node at the peak. Writes a plot and a CSV of what it observed, then tears
everything down.
"""

from __future__ import annotations

import asyncio
import csv
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client
from rich.console import Console
from rich.live import Live
from rich.table import Table

from agentfleet.core.api import Stage
from agentfleet.core.pipeline import IssuePayload, issue_item_id
from agentfleet.core.queue import Lane, WorkItem, WorkQueue
from agentfleet.dev.localenv.prometheus import PrometheusServer
from agentfleet.dev.localenv.stack import LocalStack
from agentfleet.dev.localenv.waiting import wait_for

GROUP, VERSION = "agentfleet.dev", "v1alpha1"

DEMO_PROJECT = """
apiVersion: agentfleet.dev/v1alpha1
kind: Project
metadata:
  name: webshop
spec:
  repository: acme/webshop
  credentialsSecretRef: {name: webshop-github}
"""

DEMO_POOL = """
apiVersion: agentfleet.dev/v1alpha1
kind: WorkerPool
metadata:
  name: developers
spec:
  stage: development
  handler: command
  minReplicas: 1
  maxReplicas: {max_replicas}
  terminationGracePeriodSeconds: 30
  env:
  - name: AGENTFLEET_COMMAND
    value: "sleep {work_seconds}"
{worker_env}
  autoscaling:
    pollIntervalSeconds: {poll}
    scaleUp: {{stabilizationSeconds: 0}}
    scaleDown: {{cooldownSeconds: {cooldown}}}
"""


@dataclass
class Sample:
    t: float
    desired: int
    ready: int
    queue_depth: float
    utilization: float
    completed: float
    last_scale: str
    """status.lastScaleReason: the last change and why."""
    decision: str
    """The ScalingActive condition's message: what the autoscaler decided last and why."""

    def explanation(self, previous: Sample | None) -> str:
        """The scale when one just happened, else the autoscaler's current reasoning."""
        if previous is None or previous.last_scale != self.last_scale:
            return self.last_scale
        return self.decision


def _first(result: list[dict[str, Any]]) -> float:
    return float(result[0]["value"][1]) if result else 0.0


class Demo:
    def __init__(
        self,
        burst: int = 60,
        work_seconds: float = 1.0,
        max_replicas: int = 6,
        poll_seconds: int = 3,
        cooldown_seconds: int = 15,
        out_dir: Path = Path("out/demo"),
        console: Console | None = None,
    ) -> None:
        self.burst = burst
        self.work_seconds = work_seconds
        self.max_replicas = max_replicas
        self.poll_seconds = poll_seconds
        self.cooldown_seconds = cooldown_seconds
        self.out_dir = out_dir
        self.console = console or Console()
        self.samples: list[Sample] = []
        self.stack = LocalStack(namespace="agentfleet-demo", heartbeat_timeout=30)

    # ------------------------------------------------------------------ steps
    def run(self) -> list[Sample]:
        say = self.console.print
        say(
            "[bold]agentfleet demo[/bold]: real etcd, kube-apiserver, kube-controller-manager, "
            "kube-scheduler and a node (kubelet, containerd, kube-proxy, CoreDNS); Redis, "
            "Prometheus; the operator; worker Pods in containers"
        )
        started = time.monotonic()
        with self.console.status("starting the local stack"):
            self.stack.start()
        say(
            f"stack up in {time.monotonic() - started:.1f}s "
            f"(API server {self.stack.cluster.server}, Prometheus {self._prometheus().url})"
        )
        try:
            self._apply_samples()
            self._burst()
            self._watch()
            self._report()
        finally:
            with self.console.status("tearing down"):
                self.stack.stop()
            say("torn down: no process, mount or network link left behind")
        return self.samples

    def _apply_samples(self) -> None:
        ns = self.stack.namespace
        self.stack.kubectl(
            "-n",
            ns,
            "create",
            "secret",
            "generic",
            "webshop-github",
            "--from-literal=token=demo-token",
        )
        self.stack.kubectl("-n", ns, "apply", "-f", "-", stdin=DEMO_PROJECT)
        pool = DEMO_POOL.format(
            max_replicas=self.max_replicas,
            work_seconds=self.work_seconds,
            poll=self.poll_seconds,
            cooldown=self.cooldown_seconds,
            worker_env="\n".join(
                f'  - {{name: {e["name"]}, value: "{e["value"]}"}}' for e in self.stack.worker_env()
            ),
        )
        self.stack.kubectl("-n", ns, "apply", "-f", "-", stdin=pool)
        self.console.print(
            "applied Project [cyan]webshop[/cyan] and WorkerPool "
            f"[cyan]developers[/cyan] (1..{self.max_replicas} workers, "
            f"poll {self.poll_seconds}s, scale-down cooldown {self.cooldown_seconds}s)"
        )
        wait_for(
            lambda: self.stack.kubectl(
                "-n", ns, "get", "pods", "-l", "agentfleet.dev/pool=developers",
                "-o", "jsonpath={.items[*].status.containerStatuses[*].ready}",
            ).split() == ["true"],
            120,
            "the first worker Pod Ready",
        )  # fmt: skip
        self.console.print(self.stack.kubectl("-n", ns, "get", "workerpools,deployments"))
        self._show_pods()

    def _show_pods(self) -> None:
        self.console.print(
            self.stack.kubectl("-n", self.stack.namespace, "get", "nodes,pods", "-o", "wide"),
            soft_wrap=True,
            highlight=False,
        )

    def _prometheus(self) -> PrometheusServer:
        if self.stack.prometheus is None:
            raise RuntimeError("the stack is not started")
        return self.stack.prometheus

    def _burst(self) -> None:
        async def enqueue() -> None:
            queue = WorkQueue.from_url(self.stack.redis_url)
            try:
                for i in range(self.burst):
                    await queue.enqueue(
                        WorkItem(
                            id=issue_item_id(
                                self.stack.namespace, "webshop", 1000 + i, Stage.DEVELOPMENT
                            ),
                            namespace=self.stack.namespace,
                            project="webshop",
                            stage=Stage.DEVELOPMENT,
                            lane=Lane.NORMAL,
                            payload=IssuePayload(issue=1000 + i, title=f"feature {i}").dump(),
                        )
                    )
            finally:
                await queue.close()

        asyncio.run(enqueue())
        self.console.print(
            f"enqueued a burst of [bold]{self.burst}[/bold] development items "
            f"({self.work_seconds}s of work each)"
        )

    def _pool_status(self) -> dict[str, Any]:
        custom = client.CustomObjectsApi(self.stack.api)
        obj = custom.get_namespaced_custom_object(
            GROUP, VERSION, self.stack.namespace, "workerpools", "developers"
        )
        status: dict[str, Any] = obj.get("status") or {}
        return status

    def _sample(self, t0: float) -> Sample:
        status = self._pool_status()
        active: dict[str, Any] = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "ScalingActive"), {}
        )
        ns = self.stack.namespace
        prom = self._prometheus()
        return Sample(
            t=time.monotonic() - t0,
            desired=int(status.get("desiredReplicas") or status.get("replicas") or 0),
            ready=int(status.get("readyReplicas") or 0),
            queue_depth=_first(
                prom.query(f'sum(agentfleet_queue_depth{{namespace="{ns}",stage="development"}})')
            ),
            utilization=_first(
                prom.query(f'avg(agentfleet_worker_busy{{namespace="{ns}",pool="developers"}})')
            ),
            completed=_first(
                prom.query(
                    f'sum(agentfleet_queue_completed_total{{namespace="{ns}",stage="development"}})'
                )
            ),
            last_scale=str(status.get("lastScaleReason") or ""),
            decision=str(active.get("message") or ""),
        )

    def _table(self) -> Table:
        table = Table(title="WorkerPool developers", expand=False)
        for col in ("t", "replicas (desired/ready)", "queue", "busy", "done", "autoscaler"):
            table.add_column(col)
        recent = self.samples[-15:]
        before = self.samples[-16] if len(self.samples) > len(recent) else None
        for s in recent:
            table.add_row(
                f"{s.t:5.0f}s",
                f"{s.desired}/{s.ready}",
                f"{s.queue_depth:.0f}",
                f"{s.utilization:.0%}",
                f"{s.completed:.0f}/{self.burst}",
                s.explanation(before),
            )
            before = s
        return table

    def _line(self, sample: Sample, previous: Sample | None) -> str:
        return (
            f"{sample.t:4.0f}s  {sample.desired}/{sample.ready:<3} {sample.queue_depth:5.0f} "
            f"{sample.utilization:5.0%} {sample.completed:3.0f}/{self.burst:<3}  "
            f"{sample.explanation(previous)}"
        )

    def _watch(self, timeout: float = 300.0) -> None:
        t0 = time.monotonic()
        if self.console.is_terminal:
            with Live(self._table(), console=self.console, refresh_per_second=2) as live:
                self._observe(t0, timeout, lambda: live.update(self._table()))
        else:
            self.console.print("   t  replicas queue  busy done    autoscaler", soft_wrap=True)
            self._observe(t0, timeout, self._print_changes)

    def _print_changes(self) -> None:
        """Without a terminal: a line whenever the replicas or the reasoning change."""
        sample = self.samples[-1]
        previous = self.samples[-2] if len(self.samples) > 1 else None
        shown = (sample.desired, sample.ready, sample.explanation(previous))
        if previous is None or shown != (
            previous.desired,
            previous.ready,
            previous.explanation(self.samples[-3] if len(self.samples) > 2 else None),
        ):
            self.console.print(self._line(sample, previous), soft_wrap=True, highlight=False)

    def _observe(self, t0: float, timeout: float, show: Callable[[], None]) -> None:
        peak = 0
        pods_shown = False
        while time.monotonic() - t0 < timeout:
            try:
                sample = self._sample(t0)
            except Exception as exc:  # a slow scrape must not end the demo
                self.console.log(f"sample skipped: {exc}")
                time.sleep(1)
                continue
            self.samples.append(sample)
            show()
            if sample.desired == self.max_replicas > peak:
                # What `kubectl` shows at the peak, queue column and reason included.
                self.console.print(
                    self.stack.kubectl(
                        "-n", self.stack.namespace, "get", "workerpool", "developers", "-o", "wide"
                    ),
                    soft_wrap=True,
                    highlight=False,
                )  # fmt: skip
            if sample.ready == self.max_replicas and not pods_shown:
                self._show_pods()  # every worker running: node name and Pod IP of each
                pods_shown = True
            peak = max(peak, sample.desired)
            drained = sample.completed >= self.burst and sample.queue_depth == 0
            if drained and peak > 1 and sample.desired <= 1 and sample.ready <= 1:
                return
            time.sleep(1)
        self.console.print(f"[yellow]demo watch ended after {timeout:.0f}s[/yellow]")

    def _summary(self) -> str:
        peak = max(self.samples, key=lambda s: s.desired)
        first_peak = next(s for s in self.samples if s.desired == peak.desired)
        drained = next(
            (s for s in self.samples if s.completed >= self.burst and s.queue_depth == 0), None
        )
        back = self.samples[-1]
        parts = [f"peak {peak.desired} replicas at {first_peak.t:.0f}s"]
        if drained is not None:
            parts.append(f"queue drained at {drained.t:.0f}s")
        parts.append(f"back to {back.desired} at {back.t:.0f}s")
        return "; ".join(parts)

    def _report(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        csv_path = self.out_dir / "scaling.csv"
        with csv_path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(
                [
                    "t_seconds",
                    "desired",
                    "ready",
                    "queue_depth",
                    "utilization",
                    "completed",
                    "last_scale_reason",
                    "autoscaler",
                ]
            )
            for s in self.samples:
                writer.writerow(
                    [
                        f"{s.t:.1f}",
                        s.desired,
                        s.ready,
                        s.queue_depth,
                        f"{s.utilization:.3f}",
                        s.completed,
                        s.last_scale,
                        s.decision,
                    ]
                )
        self.console.print(f"[bold]{self._summary()}[/bold]")
        events = self.stack.kubectl(
            "-n",
            self.stack.namespace,
            "get",
            "events",
            "--sort-by=.metadata.creationTimestamp",
            "--field-selector",
            "involvedObject.kind=WorkerPool,source=agentfleet-autoscaler",
            "-o",
            "custom-columns=REASON:.reason,MESSAGE:.message",
        )
        self.console.print("[bold]the autoscaler's Events on the WorkerPool[/bold]")
        self.console.print(events, soft_wrap=True, highlight=False)
        png = self.out_dir / "scaling.png"
        _plot(self.samples, png)
        self.console.print(f"wrote {png} and {csv_path}")


def _plot(samples: list[Sample], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax1 = plt.subplots(figsize=(9, 4.5))
    t = [s.t for s in samples]
    ax1.plot(t, [s.queue_depth for s in samples], label="queue depth", color="tab:blue")
    ax1.set_xlabel("seconds since the burst")
    ax1.set_ylabel("queue depth")
    ax2 = ax1.twinx()
    ax2.step(
        t, [s.desired for s in samples], where="post", label="desired replicas", color="tab:red"
    )
    ax2.step(
        t,
        [s.ready for s in samples],
        where="post",
        label="ready replicas",
        color="tab:orange",
        linestyle="--",
    )
    ax2.set_ylabel("replicas")
    handles = ax1.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax1.legend(handles=handles, loc="upper right")
    ax1.set_title("agentfleet demo: WorkerPool developers under a burst")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
