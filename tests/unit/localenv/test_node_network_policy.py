"""The pure builders behind the local node's NetworkPolicy enforcer and its stand-in
metadata server: what the enforcer is started with, what it may read, where its
credentials appear, and the DNS rule a policy needs on this node."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentfleet.dev.localenv.network import METADATA_IP, METADATA_PORT, NODE_NAME, ClusterNetwork
from agentfleet.dev.localenv.node import (
    ENFORCER,
    SERVICE_ACCOUNT_MOUNT,
    NodePaths,
    build_cluster_manifests,
    build_dns_egress_rule,
    build_enforcer_component,
    build_enforcer_manifests,
    build_metadata_component,
    build_sandbox_plan,
)

pytestmark = pytest.mark.unit

NET = ClusterNetwork(slot=7)


def test_enforcer_runs_fail_closed_with_in_cluster_config_for_this_node() -> None:
    component = build_enforcer_component(NET, 6443, "/bin/kube-network-policies")
    assert component.argv[0] == "/bin/kube-network-policies"
    assert f"--hostname-override={NODE_NAME}" in component.argv
    assert "--disable-nri" in component.argv
    assert not any(arg.startswith("--fail-open") for arg in component.argv)
    metrics = next(a for a in component.argv if a.startswith("--metrics-bind-address="))
    assert metrics.split("=", 1)[1].startswith("127.0.0.1:"), "node loopback: no slot clash"
    assert component.env == {
        "KUBERNETES_SERVICE_HOST": "10.250.7.1",
        "KUBERNETES_SERVICE_PORT": "6443",
    }
    # Ready once its nftables table exists, i.e. after its caches synced.
    assert component.ready_argv == ["nft", "list", "table", "inet", ENFORCER]


def test_enforcer_may_only_list_and_watch_what_it_reads() -> None:
    account, role, binding = build_enforcer_manifests()
    assert (account["kind"], account["metadata"]) == (
        "ServiceAccount",
        {"name": ENFORCER, "namespace": "kube-system"},
    )
    assert {(tuple(r["apiGroups"]), tuple(r["resources"])) for r in role["rules"]} == {
        (("",), ("pods", "namespaces")),
        (("networking.k8s.io",), ("networkpolicies",)),
    }
    assert all(r["verbs"] == ["list", "watch"] for r in role["rules"])
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": ENFORCER, "namespace": "kube-system"}
    ]
    kinds = [m["kind"] for m in build_cluster_manifests(NET)]
    assert kinds.count("ServiceAccount") == 1 and "EndpointSlice" in kinds


def test_enforcer_credentials_are_bound_inside_the_sandbox_only() -> None:
    paths = NodePaths(Path("/work/node"), Path("/cache/slot-7"))
    plan = build_sandbox_plan(NET, paths, [], [])
    assert plan.binds[SERVICE_ACCOUNT_MOUNT] == str(paths.service_account)
    # /var/run is /run, which the sandbox replaces with its own tmpfs.
    assert SERVICE_ACCOUNT_MOUNT.startswith("/run/")
    assert SERVICE_ACCOUNT_MOUNT.endswith("/secrets/kubernetes.io/serviceaccount")


def test_dns_rule_allows_port_53_on_the_node_address() -> None:
    assert build_dns_egress_rule(NET) == {
        "to": [{"ipBlock": {"cidr": "10.250.7.2/32"}}],
        "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
    }


def test_metadata_stand_in_is_served_at_the_cloud_address() -> None:
    assert NET.metadata_ip == METADATA_IP == "169.254.169.254"
    component = build_metadata_component(NET)
    assert component.argv[-2:] == [METADATA_IP, str(METADATA_PORT)]
    assert component.argv[1:3] == ["-m", "agentfleet.dev.localenv.metadata"]
    assert component.ready_argv is not None and METADATA_IP in component.ready_argv[-1]
