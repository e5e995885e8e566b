"""Real servers started locally for tests, benchmarks, the demo and developers.

Everything here launches genuine binaries (etcd, kube-apiserver, kube-controller-manager,
redis-server, prometheus) as child processes on free loopback ports, in a temporary
directory, and tears them down with no orphans left behind.
"""

from agentfleet.dev.localenv.binaries import BinaryNotFoundError, find_binary
from agentfleet.dev.localenv.controlplane import ControlPlane
from agentfleet.dev.localenv.processes import ManagedProcess, ProcessFailedError, free_port
from agentfleet.dev.localenv.prometheus import PrometheusServer
from agentfleet.dev.localenv.redis import RedisServer

__all__ = [
    "BinaryNotFoundError",
    "ControlPlane",
    "ManagedProcess",
    "ProcessFailedError",
    "PrometheusServer",
    "RedisServer",
    "find_binary",
    "free_port",
]
