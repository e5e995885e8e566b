"""What a status writer last wrote, per WorkerPool: the one memory the reconciler and the
autoscaler each keep.

Each writer owns its own fields of a pool's status (server-side apply, one field manager
per writer), so for those fields its last write is the truth, newer than kopf's index
whenever the index's watch lags (in a burst, such as a thousand new pools, its events
queue up far behind the writes). A record is trusted for `TRUST_SECONDS`: long enough to
cover that lag, short enough that a peer replica's writes after a hand-over are read
again. Older records are dropped as new ones come, so the memory holds only the pools
written in the last `TRUST_SECONDS`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from agentfleet.operator.index import PoolKey

T = TypeVar("T")

TRUST_SECONDS = 60.0
"""How long a writer trusts its record of what it wrote over the index."""


@dataclass(frozen=True)
class _Record(Generic[T]):
    uid: str
    value: T
    at: float


class Written(Generic[T]):
    """Per pool (its key and uid: a pool deleted and created again under its name is
    another pool), the value a writer last wrote, while it is younger than
    `trust_seconds`."""

    def __init__(
        self, trust_seconds: float = TRUST_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.trust_seconds = trust_seconds
        self.clock = clock
        self._records: dict[PoolKey, _Record[T]] = {}
        self._swept = clock()

    def remember(self, key: PoolKey, uid: str, value: T) -> None:
        now = self.clock()
        self._records[key] = _Record(uid, value, now)
        if now - self._swept > self.trust_seconds:
            self._swept = now
            expired = [k for k, r in self._records.items() if now - r.at > self.trust_seconds]
            for k in expired:
                del self._records[k]

    def recall(self, key: PoolKey, uid: str | None) -> T | None:
        record = self._records.get(key)
        if record is None:
            return None
        if self.clock() - record.at > self.trust_seconds:
            del self._records[key]
            return None
        return record.value if record.uid == uid else None

    def forget(self, key: PoolKey) -> None:
        self._records.pop(key, None)

    def __len__(self) -> int:
        return len(self._records)
