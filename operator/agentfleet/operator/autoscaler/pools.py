"""What the autoscaler needs to know about one WorkerPool, independent of Kubernetes.

The operator's adapter builds these from WorkerPool objects; the simulator and the tests
build them directly.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from agentfleet.core.api import Stage
from agentfleet.core.api.autoscaling import AutoscalingSpec
from agentfleet.core.queue.models import Arrival
from agentfleet.core.queue.routing import read_order
from agentfleet.operator.autoscaler.decision import ScaleState

PoolKey = tuple[str, str]
"""(namespace, name)."""


class PoolTarget(BaseModel):
    model_config = ConfigDict(frozen=True)

    namespace: str
    name: str
    stage: Stage
    specialties: tuple[str, ...] = ()
    projects: tuple[str, ...] | None = None
    """Projects served; None: every project in the namespace. Empty: none (a selector
    that matches no Project), so the pool's queues are empty by definition."""
    current_replicas: int = Field(ge=0)
    min_replicas: int = Field(ge=0)
    max_replicas: int = Field(ge=0)
    autoscaling: AutoscalingSpec = Field(default_factory=AutoscalingSpec)
    last_scale_up_time: float | None = None
    """From the pool's status, so a restarted operator keeps honouring the timers."""
    last_scale_down_time: float | None = None
    generation: int | None = None
    """The pool's metadata.generation where `current_replicas` was read. A change of
    spec.replicas (the autoscaler's own, through the scale subresource) raises it, so the
    loop can tell an index that has not seen its last scaling yet (`AutoscalerLoop`)."""
    uid: str | None = None
    """The pool's metadata.uid: a pool deleted and created again under its name is
    another pool, with a generation of its own."""

    @property
    def key(self) -> PoolKey:
        return (self.namespace, self.name)

    def serves_project(self, project: str) -> bool:
        return self.projects is None or project in self.projects

    def serves(self, arrival: Arrival) -> bool:
        """Whether this pool's workers read the lane the item arrived on."""
        return (
            arrival.namespace == self.namespace
            and arrival.stage is self.stage
            and self.serves_project(arrival.project)
            and arrival.specialty in {name for name, _ in read_order(self.specialties)}
        )

    def scale_state(
        self,
        last_scale_up_time: float | None,
        last_scale_down_time: float | None,
        consecutive_failures: int,
    ) -> ScaleState:
        return ScaleState(
            current_replicas=self.current_replicas,
            min_replicas=self.min_replicas,
            max_replicas=self.max_replicas,
            last_scale_up_time=last_scale_up_time,
            last_scale_down_time=last_scale_down_time,
            consecutive_failures=consecutive_failures,
        )
