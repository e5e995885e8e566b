"""Removes the node's cgroups once its sandbox is gone, however it went.

The kernel cleans up everything else of a dead node sandbox (processes, mounts, links,
firewall rules); cgroup directories stay until someone removes them. `Node` starts this
as a detached process next to the sandbox, so even a SIGKILLed test run or supervisor
leaves no cgroup behind: `python -m agentfleet.dev.localenv.janitor <pid> <cgroup root>`
waits for <pid> to exit (a pidfd, so a reused pid cannot fool it), removes the cgroups,
and exits.
"""

from __future__ import annotations

import os
import select
import sys
import time

from agentfleet.dev.localenv.node import remove_cgroups


def main(argv: list[str]) -> int:
    pid, root = int(argv[1]), argv[2]
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        pidfd = None
    if pidfd is not None:
        select.select([pidfd], [], [])
        os.close(pidfd)
    deadline = time.monotonic() + 30
    while remove_cgroups(root) and time.monotonic() < deadline:
        time.sleep(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
