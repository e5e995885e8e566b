"""Cold-start time of the local control plane: etcd + kube-apiserver ready (/readyz).

Each run starts from an empty temporary directory (fresh certificates, empty etcd), so
this is the cost a test session or `make cluster-up` pays. Prints per-run figures and the
median over the runs.

    .venv/bin/python benchmarks/controlplane_start.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

from agentfleet.dev.localenv import ControlPlane


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    api_ready: list[float] = []
    all_ready: list[float] = []
    for run in range(1, args.runs + 1):
        plane = ControlPlane()
        t0 = time.monotonic()
        plane.start()
        total = time.monotonic() - t0
        plane.stop()
        api = plane.timings["kube-apiserver"]
        api_ready.append(api)
        all_ready.append(total)
        print(
            f"run {run}: etcd {plane.timings['etcd']:.2f}s, "
            f"etcd+apiserver ready {api:.2f}s, +controller-manager {total:.2f}s"
        )
    print(
        f"median over {args.runs} cold starts: etcd+apiserver ready "
        f"{statistics.median(api_ready):.2f}s (min {min(api_ready):.2f}, "
        f"max {max(api_ready):.2f}); whole plane incl. controller-manager "
        f"{statistics.median(all_ready):.2f}s"
    )


if __name__ == "__main__":
    main()
