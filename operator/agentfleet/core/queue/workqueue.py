"""The work queue on Redis Streams: the thin adapter that runs the queue's Lua scripts.

Layout (per namespace, all under the hash tag `<prefix>:{<namespace>}`):

- one stream per project, stage, specialty and lane (`...:q:<project>:<stage>:<specialty>:
  <lane>`), each with one consumer group named after the stage; an entry carries only
  the item id and the time it became deliverable;
- hashes `items` (JSON), `route`, `attempts` and `where` (the entry an item sits at);
- `done`: the completion record, written once per id; `log`: a stream of completions;
- `retry`: a sorted set of items waiting out their backoff; `held`, `projects`;
- `<stream>:leases`: per stream, when each claimed entry's lease was last renewed.

Time comes from the queue's `Clock` (`agentfleet.core.queue.clock`), passed to every script
that needs it; no script calls Redis' TIME.

The rules (read order, transitions, backoff, dead-letter items) are pure functions in
`agentfleet.core.queue.routing`; this module only moves data.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncGenerator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT

from agentfleet.core.api import Stage
from agentfleet.core.queue.clock import Clock, system_clock
from agentfleet.core.queue.models import (
    Arrival,
    Claim,
    CompleteResult,
    CompletionOutcome,
    CompletionRecord,
    DaySpend,
    FailOutcome,
    FailResult,
    Family,
    FanOut,
    FanOutResult,
    InFlight,
    JoinChild,
    JoinState,
    Lane,
    PendingFeedback,
    ProjectQueueStats,
    RetryPolicy,
    Subscription,
    WorkItem,
)
from agentfleet.core.queue.routing import (
    default_follow_ups,
    read_order,
    retry_delay,
    review_item,
    should_dead_letter,
)
from agentfleet.core.queue.scripts import (
    SCRIPT_NAMES,
    arrivals_pattern,
    dead_letters_key,
    namespace_base,
    namespaces_key,
    script_source,
)
from agentfleet.core.queue.snapshot import (
    NamespaceSnapshot,
    Route,
    encode_routes,
    parse_snapshot,
    parse_stream_key,
)

log = logging.getLogger(__name__)

CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)
"""What a Redis restart or network blip raises; callers retry these."""

_REGISTER_EVERY = 60.0
"""Seconds between refreshes of a namespace's entry in the namespace index."""

_CLAIM_SCAN_LIMIT = 100
"""Exhausted or unreadable items dead-lettered in one claim call before giving up."""


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _from_ms(value: object) -> datetime | None:
    if value is None or value == "":
        return None
    return datetime.fromtimestamp(float(str(value)) / 1000, UTC)


def _route(item: WorkItem) -> str:
    return f"{item.project} {item.stage.value} {item.routing_specialty} {item.lane.value}"


def _claim_args(claim: Claim) -> tuple[str, ...]:
    """How the scripts that act on a claimed item (heartbeat, finish, retry, release)
    take it: their first arguments after the namespace base, in this order."""
    item = claim.item
    return (item.id, claim.stream, claim.entry_id, claim.consumer, item.stage.value)


def _enqueue_args(items: Sequence[WorkItem]) -> list[str]:
    args: list[str] = []
    for item in items:
        args += [item.id, _route(item), item.model_dump_json(), str(item.attempts)]
    return args


class WorkQueue:
    """Enqueue, claim, heartbeat, complete, fail, release, boost, hold and inspect work.

    `heartbeat_timeout` is how long a claimed item may go without a heartbeat before any
    claim takes it over; every worker and exporter of a deployment must use the same
    value. `poll_interval` bounds how long a waiting claim blocks before it looks at
    everything again (retries come due and dead workers' items go stale silently).

    `clock` is where the queue's time comes from (deliverable times, leases, retry due
    times, records); the system clock unless a test gives a `ManualClock`. Waiting for
    work (`claim(wait=)`, `poll_interval`) is real time regardless.
    """

    def __init__(
        self,
        redis: Redis[str],
        *,
        prefix: str = "agentfleet",
        heartbeat_timeout: float = 300.0,
        retry_policy: RetryPolicy | None = None,
        poll_interval: float = 1.0,
        completion_log_length: int = 100_000,
        rng: random.Random | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.heartbeat_timeout = heartbeat_timeout
        self.retry_policy = retry_policy or RetryPolicy()
        self.poll_interval = poll_interval
        self._log_length = completion_log_length
        self._rng = rng or random.Random()
        self.clock = clock
        # Which project a claim looks at first: advanced by one per claim, so one worker
        # takes a lane's projects in turn; the random start spreads workers apart.
        self._rotation = self._rng.randrange(1 << 16)
        self._scripts = {name: redis.register_script(script_source(name)) for name in SCRIPT_NAMES}
        self._registered: dict[str, datetime] = {}

    @classmethod
    def from_url(cls, url: str, **options: Any) -> WorkQueue:
        """A queue on its own connection pool, retrying commands through short outages."""
        retryable: list[type[RedisError]] = [RedisConnectionError, RedisTimeoutError]
        redis = Redis.from_url(
            url,
            decode_responses=True,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=5),
            retry_on_error=retryable,
            health_check_interval=10,
        )
        return cls(redis, **options)

    async def close(self) -> None:
        await self.redis.aclose()  # type: ignore[attr-defined]

    async def arrivals(self) -> AsyncGenerator[Arrival, None]:
        """Every item that becomes deliverable in any namespace, as it happens (Redis
        pub/sub: fire and forget, so a listener that was away misses what happened
        meanwhile; decisions that must not miss anything read the queue's metrics)."""
        pubsub = self.redis.pubsub()
        pattern = arrivals_pattern(self.prefix)
        head = len(self.prefix) + 2  # "<prefix>:{"
        await pubsub.psubscribe(pattern)
        try:
            async for message in pubsub.listen():
                if message.get("type") != "pmessage":
                    continue
                namespace = str(message["channel"])[head : -len("}:arrivals")]
                parts = str(message["data"]).split(" ")
                if len(parts) != 3 or parts[1] not in {stage.value for stage in Stage}:
                    continue  # not ours
                yield Arrival(
                    namespace=namespace, project=parts[0], stage=Stage(parts[1]),
                    specialty=parts[2],
                )  # fmt: skip
        finally:
            await pubsub.aclose()  # type: ignore[attr-defined]

    def _base(self, namespace: str) -> str:
        return namespace_base(self.prefix, namespace)

    async def _register(self, namespace: str) -> None:
        """Add the namespace to the index the metrics collector reads.

        The index lies outside the namespace's hash slot, so the enqueue script cannot
        write it; refreshing it once a minute instead of on every enqueue saves a round
        trip and still repairs it soon after Redis lost its data.
        """
        now = self.clock()
        last = self._registered.get(namespace)
        if last is None or not timedelta(0) <= now - last < timedelta(seconds=_REGISTER_EVERY):
            await self.redis.sadd(namespaces_key(self.prefix), namespace)
            self._registered[namespace] = now

    async def _run(self, script: str, namespace: str, *args: EncodableT) -> Any:
        return await self._scripts[script](keys=[], args=[self._base(namespace), *args])

    # ----------------------------------------------------------------- producing work

    async def enqueue(self, *items: WorkItem) -> list[str]:
        """Store and route the items; returns the ids that were new.

        An id already waiting, in flight, retrying or completed is left as it is, so
        intake can enqueue the same GitHub issue as often as it sees it.
        """
        added: list[str] = []
        by_namespace: dict[str, list[WorkItem]] = {}
        for item in items:
            by_namespace.setdefault(item.namespace, []).append(item)
        for namespace, batch in by_namespace.items():
            await self._register(namespace)
            now = _ms(self.clock())
            added += await self._run("enqueue", namespace, now, *_enqueue_args(batch))
        return added

    async def fan_out(self, fan_out: FanOut) -> FanOutResult:
        """Register a join and enqueue its first `window` children in one atomic step.

        Each child's completion or dead letter (`complete`, `fail`) updates the join in the
        same script that finishes the child, releasing the next held child; a child past
        its timeout is timed out by the next claim of any worker of the namespace; the
        step that finishes the last child enqueues `summary`. Nobody waits and nothing
        polls. A join id registered before changes nothing (it also records the parent's
        family again, which is idempotent).
        """
        namespace = fan_out.summary.namespace
        if any(child.namespace != namespace for child in fan_out.children):
            raise ValueError("a join's children must stay in the namespace of its summary")
        await self._register(namespace)
        raw: list[Any] = await self._run(
            "fan_out",
            namespace,
            _ms(self.clock()),
            fan_out.join_id,
            fan_out.window,
            int(fan_out.timeout_seconds * 1000),
            fan_out.summary.project,
            fan_out.parent,
            " ".join(str(n) for n in fan_out.family),
            *_enqueue_args([fan_out.summary]),
            *_enqueue_args(fan_out.children),
        )
        return FanOutResult(registered=raw[0] == 1, released=tuple(raw[1:]))

    async def join(self, namespace: str, join_id: str) -> JoinState | None:
        """The join registered under `join_id`, as it stands now; None if there is none."""
        key = f"{self._base(namespace)}:join:{join_id}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(key)
            pipe.hgetall(f"{key}:children")
            head, children = await pipe.execute()
        if not head:
            return None
        created = _from_ms(head["created"])
        if created is None:
            raise ValueError(f"join {join_id} has no creation time")
        return JoinState(
            window=int(head["window"]),
            timeout_seconds=int(head["timeout_ms"]) / 1000,
            open=int(head["open"]),
            running=int(head["running"]),
            created_at=created,
            summarised_at=_from_ms(head.get("summarised")),
            children={
                child: JoinChild.model_validate(
                    {
                        **(fields := json.loads(raw)),
                        "released_at": _from_ms(fields.get("released")),
                        "finished_at": _from_ms(fields.get("finished")),
                    }
                )
                for child, raw in children.items()
            },
        )

    async def record_family(
        self, namespace: str, project: str, parent: int, children: Sequence[int]
    ) -> None:
        """Record that `children` are the sub-issues of issue `parent` (genesis' plan; a
        master issue's fan-out records it itself)."""
        await self._run("family", namespace, project, parent, " ".join(map(str, children)))

    async def family(self, namespace: str, project: str, issue: int) -> Family | None:
        """The parent of `issue` and all of the parent's sub-issues, as genesis recorded
        them; None for an issue that was not planned or fanned out from another."""
        base = self._base(namespace)
        parent = await self.redis.hget(f"{base}:parents", f"{project} {issue}")
        if parent is None:
            return None
        children = await self.redis.hget(f"{base}:families", f"{project} {parent}") or ""
        return Family(parent=int(parent), children=tuple(int(n) for n in children.split()))

    async def add_feedback(
        self, namespace: str, project: str, pull: int, key: str, entry: dict[str, Any]
    ) -> bool:
        """Keep `entry` for pull request `pull`'s next feedback round; False when an entry
        with `key` was kept before (a redelivered event)."""
        added = await self._run(
            "feedback", namespace, "add", project, pull, key, json.dumps(entry, sort_keys=True)
        )
        return bool(added)

    async def pending_feedback(self, namespace: str, project: str, pull: int) -> PendingFeedback:
        """What no finished round has addressed yet, and the rounds finished so far."""
        raw = await self._run("feedback", namespace, "read", project, pull)
        return PendingFeedback(
            start=int(raw[0]),
            rounds=int(raw[1]),
            entries=tuple(json.loads(entry) for entry in raw[2:]),
        )

    async def finish_feedback_round(self, namespace: str, project: str, pull: int, end: int) -> int:
        """Mark the entries before `end` addressed and count the round; returns the rounds
        finished so far."""
        return int(await self._run("feedback", namespace, "finish", project, pull, end))

    # ---------------------------------------------------------------- consuming work

    async def claim(self, subscription: Subscription, wait: float = 0.0) -> Claim | None:
        """The next item for this subscription, or None if none came within `wait` s.

        Order: items of dead workers (missed heartbeats) or released on drain first in
        each lane, then new ones; specialty lanes before the general fallback, each from
        the highest lane down; projects on emergency stop are skipped.

        While waiting, the claim blocks in XREADGROUP on the subscription's streams:
        Redis hands a new entry to the worker that has waited longest, so exactly one
        idle worker wakes per item (least-loaded dispatch, no thundering herd). It looks
        again at least every `poll_interval` for retries coming due, items of dead
        workers and new projects' streams.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            claim = await self._claim_now(subscription)
            remaining = deadline - loop.time()
            if claim is not None or remaining <= 0:
                return claim
            claim = await self._wait_for_entry(subscription, min(remaining, self.poll_interval))
            if claim is not None:
                return claim

    async def _wait_for_entry(self, subscription: Subscription, timeout: float) -> Claim | None:
        base = self._base(subscription.namespace)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.smembers(f"{base}:streams")
            pipe.smembers(f"{base}:held")
            streams, held = await pipe.execute()
        watched = sorted(
            (rank, key)
            for key in streams
            if (rank := self._watch_rank(subscription, base, key, held)) is not None
        )
        if not watched:
            # Nothing of this stage has ever been queued here: look again later.
            await asyncio.sleep(timeout)
            return None
        reply = await self.redis.xreadgroup(
            subscription.stage.value,
            subscription.consumer,
            {key: ">" for _, key in watched},
            count=1,
            block=max(1, int(timeout * 1000)),
        )
        if not reply:
            return None
        received = dict(
            (key, entries[0][0])
            for key, entries in (reply.items() if isinstance(reply, dict) else reply)
        )
        now = self.clock()
        raw = await self._run(
            "accept",
            subscription.namespace,
            subscription.stage.value,
            _ms(now),
            *[part for _, key in watched if key in received for part in (key, received[key])],
        )
        if raw is None:
            return None
        return await self._settle_undeliverable(subscription, raw, now)

    @staticmethod
    def _watch_rank(subscription: Subscription, base: str, key: str, held: set[str]) -> int | None:
        """Where the stream comes in the subscription's read order; None: not its stream."""
        project, stage, specialty, lane = parse_stream_key(base, key)
        if stage is not subscription.stage or project in held:
            return None
        if subscription.projects and project not in subscription.projects:
            return None
        order = read_order(subscription.specialties)
        return order.index((specialty, lane)) if (specialty, lane) in order else None

    async def _claim_now(self, subscription: Subscription) -> Claim | None:
        order = [
            f"{specialty} {lane.value}" for specialty, lane in read_order(subscription.specialties)
        ]
        for _ in range(_CLAIM_SCAN_LIMIT):
            now = self.clock()
            raw = await self._run(
                "claim",
                subscription.namespace,
                subscription.stage.value,
                subscription.consumer,
                _ms(now),
                int(self.heartbeat_timeout * 1000),
                self._next_rotation(),
                len(order),
                *order,
                *subscription.projects,
            )
            if raw is None:
                return None
            claim = await self._settle_undeliverable(subscription, raw, now)
            if claim is not None:
                return claim
        return None

    def _next_rotation(self) -> int:
        self._rotation = (self._rotation + 1) % (1 << 16)
        return self._rotation

    async def _settle_undeliverable(
        self, subscription: Subscription, raw: list[Any], now: datetime
    ) -> Claim | None:
        """The claim, unless the item must not run again (it then goes to review)."""
        stream, entry, item_id, item_json, route, attempts, became_ready, reclaimed = raw
        project, stage, _, lane = route.split(" ")
        try:
            item = WorkItem.model_validate_json(item_json).model_copy(
                update={"attempts": int(attempts), "lane": Lane(lane)}
            )
        except ValidationError as exc:
            log.error("item %s is unreadable and is parked: %s", item_id, exc)
            await self._run(
                "finish",
                subscription.namespace,
                item_id,
                stream,
                entry,
                subscription.consumer,
                stage,
                project,
                CompletionOutcome.DEAD_LETTERED.value,
                CompletionRecord(
                    outcome=CompletionOutcome.DEAD_LETTERED,
                    worker=subscription.consumer,
                    completed_at=now,
                    error=f"unreadable item: {exc}",
                ).model_dump_json(),
                "1",
                _ms(now),
                self._log_length,
                json.dumps({"id": item_id, "unreadable": item_json}),
                "",  # the dead letter: the stored (unreadable) item as it is
                "",  # when it was queued and entered the pipeline: unknown
                "",
            )
            return None
        claim = Claim(
            item=item,
            stream=stream,
            entry_id=entry,
            consumer=subscription.consumer,
            wait_seconds=max(0.0, (_ms(now) - int(became_ready)) / 1000),
            reclaimed=bool(reclaimed),
        )
        limit = self.retry_policy.attempts_for(item.stage)
        if item.attempts > limit:
            # Every earlier delivery ended with its worker gone (killed, evicted, out of
            # memory): a poison item. It goes to review instead of taking down another.
            error = item.last_error or (
                f"delivered {item.attempts - 1} times; every worker stopped heartbeating"
            )
            await self._dead_letter(
                claim, item.model_copy(update={"attempts": item.attempts - 1}), error
            )
            return None
        return claim

    async def heartbeat(self, claim: Claim) -> bool:
        """Keep the claim alive; False once it is no longer this worker's."""
        owned = await self._run(
            "heartbeat",
            claim.item.namespace,
            *_claim_args(claim),
            _ms(self.clock()),
        )
        return bool(owned)

    async def complete(
        self,
        claim: Claim,
        follow_ups: Sequence[WorkItem] | None = None,
        output: dict[str, Any] | None = None,
    ) -> CompleteResult:
        """Record the success once and enqueue the follow-ups in the same atomic step.

        `follow_ups=None` enqueues the default next-stage item (with `output` merged into
        its payload). A completion from a worker whose claim was taken over still counts
        if it is the first; the later one is reported as not recorded.
        """
        now = self.clock()
        item = claim.item
        items = (
            default_follow_ups(item, claim.consumer, now, output)
            if follow_ups is None
            else list(follow_ups)
        )
        if any(follow_up.namespace != item.namespace for follow_up in items):
            raise ValueError("follow-up items must stay in the namespace of their parent")
        record = CompletionRecord(
            outcome=CompletionOutcome.SUCCEEDED,
            worker=claim.consumer,
            completed_at=now,
            attempts=claim.item.attempts,
            follow_ups=tuple(follow_up.id for follow_up in items),
        )
        result = await self._finish(claim, record, "0", now, items)
        return CompleteResult(recorded=result[0] == 1, follow_ups=tuple(result[1:]))

    async def fail(self, claim: Claim, error: str, retryable: bool = True) -> FailResult:
        """Retry later with backoff, or dead-letter to review once attempts run out."""
        item = claim.item.model_copy(update={"last_error": error})
        if should_dead_letter(self.retry_policy, item, retryable):
            return await self._dead_letter(claim, item, error)
        delay = retry_delay(self.retry_policy, item.attempts, self._rng)
        due = self.clock() + timedelta(seconds=delay)
        scheduled = await self._run(
            "retry",
            item.namespace,
            *_claim_args(claim),
            _ms(due),
            item.model_dump_json(),
        )
        if not scheduled:
            return FailResult(outcome=FailOutcome.STALE)
        return FailResult(outcome=FailOutcome.RETRY_SCHEDULED, retry_at=due)

    async def _dead_letter(self, claim: Claim, item: WorkItem, error: str) -> FailResult:
        now = self.clock()
        review = review_item(item, error, claim.consumer, now)
        record = CompletionRecord(
            outcome=CompletionOutcome.DEAD_LETTERED,
            worker=claim.consumer,
            completed_at=now,
            attempts=item.attempts,
            error=error,
            follow_ups=(review.id,) if review else (),
        )
        parked = "" if review else item.model_dump_json()
        result = await self._finish(
            claim, record, "1", now, [review] if review else [], parked=parked,
            dead=item.model_dump_json(),
        )  # fmt: skip
        if result[0] != 1:
            return FailResult(outcome=FailOutcome.STALE)
        return FailResult(
            outcome=FailOutcome.DEAD_LETTERED, review_item_id=review.id if review else None
        )

    async def _finish(
        self,
        claim: Claim,
        record: CompletionRecord,
        require_owner: str,
        now: datetime,
        follow_ups: Sequence[WorkItem],
        parked: str = "",
        dead: str = "",
    ) -> list[Any]:
        result: list[Any] = await self._run(
            "finish",
            claim.item.namespace,
            *_claim_args(claim),
            claim.item.project,
            record.outcome.value,
            record.model_dump_json(),
            require_owner,
            _ms(now),
            self._log_length,
            parked,
            dead,
            _ms(claim.item.enqueued_at),
            _ms(claim.item.pipeline_started_at),
            *_enqueue_args(follow_ups),
        )
        return result

    async def release(self, claim: Claim) -> bool:
        """Give the item back at once (drain); the next claim gets it, attempt uncounted."""
        released = await self._run(
            "release",
            claim.item.namespace,
            *_claim_args(claim),
        )
        return bool(released)

    # ------------------------------------------------------------------ operations

    async def boost(self, namespace: str, project: str, lane: Lane) -> int:
        """Move the project's waiting and retrying items below `lane` up to it."""
        moved: int = await self._run("boost", namespace, project, lane.value)
        return moved

    async def hold(self, namespace: str, project: str) -> None:
        """Emergency stop: the project's items stay queued but are not delivered.

        Items already in flight run to completion; their follow-ups are queued and held.
        """
        await self.redis.sadd(f"{self._base(namespace)}:held", project)

    async def resume(self, namespace: str, project: str) -> None:
        """Deliver the project's items again (waiting workers see them within a poll)."""
        await self.redis.srem(f"{self._base(namespace)}:held", project)

    async def held_projects(self, namespace: str) -> set[str]:
        members: set[str] = await self.redis.smembers(f"{self._base(namespace)}:held")
        return members

    # ---------------------------------------------------------------------- budgets

    async def set_budget(
        self,
        namespace: str,
        project: str,
        tokens_per_day: int | None,
        cost_per_day_usd: float | None,
    ) -> None:
        """A project's daily limits (`spec.budgets`), which claims enforce: once its agents
        have spent either on a UTC day, its items wait until 00:00 UTC. None and None: no
        limit."""
        key = f"{self._base(namespace)}:budgets"
        if tokens_per_day is None and cost_per_day_usd is None:
            await self.redis.hdel(key, project)
            return
        limits = " ".join(
            "-" if value is None else repr(value) for value in (tokens_per_day, cost_per_day_usd)
        )
        await self.redis.hset(key, project, limits)

    async def spend(self, namespace: str, project: str, tokens: int, cost_usd: float) -> DaySpend:
        """Add what one model call of the project's used to its day, and return the day."""
        now = self.clock()
        await self._run("spend", namespace, project, int(tokens), repr(float(cost_usd)), _ms(now))
        return await self.day_spend(namespace, project)

    async def day_spend(self, namespace: str, project: str) -> DaySpend:
        """The project's limits and what it spent today (the queue clock's UTC day)."""
        now = self.clock()
        limits, tokens, cost = await self._run("day_spend", namespace, project, _ms(now))
        per_day: list[str] = str(limits).split(" ") if limits else ["-", "-"]
        return DaySpend(
            day=now.astimezone(UTC).date(),
            tokens=int(tokens),
            cost_usd=float(cost),
            tokens_per_day=None if per_day[0] == "-" else int(per_day[0]),
            cost_per_day_usd=None if per_day[1] == "-" else float(per_day[1]),
        )

    # ---------------------------------------------------------------- declared lanes

    async def declare_lanes(self, namespace: str, project: str, routes: Sequence[Route]) -> None:
        """Record the (stage, specialty) routes the project's pipeline and the pools serving
        it define, so the metrics publish zero for each of their lanes before any item
        arrives: an idle lane is 0, only a failure is missing data. Replaces the project's
        previous declaration; it also puts the namespace in the index the metrics read."""
        key = f"{self._base(namespace)}:declared"
        if routes:
            await self.redis.hset(key, project, encode_routes(routes))
        else:
            await self.redis.hdel(key, project)
        await self._register(namespace)

    async def forget_lanes(self, namespace: str, project: str) -> None:
        """The project is gone: its idle lanes stop being published."""
        await self.redis.hdel(f"{self._base(namespace)}:declared", project)

    # ------------------------------------------------------------------- inspection

    async def namespaces(self) -> list[str]:
        members: set[str] = await self.redis.smembers(namespaces_key(self.prefix))
        return sorted(members)

    async def snapshot(self, namespace: str) -> NamespaceSnapshot:
        raw = await self._run(
            "snapshot", namespace, int(self.heartbeat_timeout * 1000), _ms(self.clock())
        )
        return parse_snapshot(namespace, self._base(namespace), raw)

    async def holders(self, namespace: str) -> dict[str, int]:
        """Worker (pod name) -> how many items it holds now: delivered and not finished,
        not handed back. A worker that died keeps its items until a claim takes them over,
        so a name here may belong to a Pod that no longer exists."""
        raw = await self._run("holders", namespace)
        return {str(raw[i]): int(raw[i + 1]) for i in range(0, len(raw), 2)}

    async def in_flight(self, namespace: str) -> list[InFlight]:
        """Every item a worker holds now, with its worker and the claim's last renewal
        (one atomic read). Like `holders`, a worker that died keeps its items until a
        claim takes them over: an old heartbeat says so."""
        raw = await self._run("in_flight", namespace, _ms(self.clock()))
        base = self._base(namespace)
        found = []
        for worker, item_id, stream, leased, deliveries in raw:
            project, stage, specialty, lane = parse_stream_key(base, str(stream))
            found.append(
                InFlight(
                    worker=str(worker),
                    item_id=str(item_id),
                    project=project,
                    stage=stage,
                    specialty=specialty,
                    lane=lane,
                    heartbeat_at=_from_ms(leased) or self.clock(),
                    deliveries=int(deliveries),
                )
            )
        return sorted(found, key=lambda f: (f.worker, f.item_id))

    async def dead_letters(self, namespace: str, project: str) -> dict[str, WorkItem | None]:
        """The project's dead-lettered items, as they last ran (None: unreadable), which
        `requeue_dead_letters` can put back in the queue."""
        raw: dict[str, str] = await self.redis.hgetall(
            dead_letters_key(self.prefix, namespace, project)
        )
        found: dict[str, WorkItem | None] = {}
        for item_id, value in sorted(raw.items()):
            try:
                found[item_id] = WorkItem.model_validate_json(value)
            except ValidationError:
                found[item_id] = None
        return found

    async def requeue_dead_letters(
        self, namespace: str, project: str, ids: Sequence[str] | None = None
    ) -> list[str]:
        """Put the project's dead letters (all, or those in `ids`) back in the queue as new
        attempts (attempts reset, the last error kept on the item). Returns the ids
        requeued; an unreadable dead letter, or one another retry took first, is not."""
        dead = await self.dead_letters(namespace, project)
        chosen = [
            item.model_copy(update={"attempts": 0, "enqueued_at": self.clock()})
            for item_id, item in dead.items()
            if item is not None and (ids is None or item_id in ids)
        ]
        if not chosen:
            return []
        await self._register(namespace)
        requeued: list[str] = await self._run(
            "requeue", namespace, _ms(self.clock()), project, *_enqueue_args(chosen)
        )
        return [str(item_id) for item_id in requeued]

    async def completions_since(
        self, namespace: str, since: datetime, page: int = 1000
    ) -> list[dict[str, str]]:
        """Completion events (`completion_log`) recorded at or after `since` by the queue's
        clock (the event's `at`; the entry id's time for events logged without one),
        oldest first. Reads the log backwards, a page at a time, up to `since`."""
        key = f"{self._base(namespace)}:log"
        cutoff = _ms(since)
        found: list[dict[str, str]] = []
        upper = "+"
        while True:
            entries = await self.redis.xrevrange(key, max=upper, min="-", count=page)
            for entry_id, fields in entries:
                at = int(fields.get("at") or str(entry_id).split("-")[0])
                if at < cutoff:
                    return found[::-1]
                found.append(fields)
            if len(entries) < page:
                return found[::-1]
            upper = f"({entries[-1][0]}"

    async def stats(self, namespace: str, project: str) -> ProjectQueueStats:
        """Per-stage counts of the project's items (what Project status shows)."""
        return (await self.snapshot(namespace)).project_stats(project)

    async def get(self, namespace: str, item_id: str) -> WorkItem | None:
        """A waiting, in-flight or retrying item as it stands now (None once completed)."""
        base = self._base(namespace)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hget(f"{base}:items", item_id)
            pipe.hget(f"{base}:route", item_id)
            pipe.hget(f"{base}:attempts", item_id)
            item_json, route, attempts = await pipe.execute()
        if item_json is None:
            return None
        return WorkItem.model_validate_json(item_json).model_copy(
            update={"attempts": int(attempts), "lane": Lane(route.split(" ")[3])}
        )

    async def completion(self, namespace: str, item_id: str) -> CompletionRecord | None:
        raw = await self.redis.hget(f"{self._base(namespace)}:done", item_id)
        return None if raw is None else CompletionRecord.model_validate_json(raw)

    async def completion_log(self, namespace: str) -> list[dict[str, str]]:
        """Every completion event still in the log (oldest first), one per recorded id."""
        entries = await self.redis.xrange(f"{self._base(namespace)}:log")
        return [fields for _, fields in entries]

    async def parked(self, namespace: str) -> dict[str, Any]:
        """Items that failed for good with nowhere further to go (review work, unreadable)."""
        raw: dict[str, str] = await self.redis.hgetall(f"{self._base(namespace)}:parked")
        return {item_id: json.loads(value) for item_id, value in raw.items()}
