"""Proof that the local control plane is a real one: controllers, GC and RBAC all act."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from agentfleet.core.api.workerpool import DEFAULT_WORKER_IMAGE as WORKER_IMAGE
from agentfleet.dev.localenv.waiting import wait_for

pytestmark = pytest.mark.e2e


def _deployment(name: str, replicas: int) -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[
                        client.V1Container(
                            name="main", image=WORKER_IMAGE, command=["sleep", "infinity"]
                        )
                    ]
                ),
            ),
        ),
    )


def _pods(core: client.CoreV1Api, namespace: str, app: str) -> list[client.V1Pod]:
    pods = core.list_namespaced_pod(namespace, label_selector=f"app={app}").items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def test_deployment_controller_creates_replicaset_and_pods(
    api_client: client.ApiClient, namespace: str
) -> None:
    apps = client.AppsV1Api(api_client)
    core = client.CoreV1Api(api_client)
    apps.create_namespaced_deployment(namespace, _deployment("web", 2))

    replicasets = wait_for(
        lambda: apps.list_namespaced_replica_set(namespace, label_selector="app=web").items,
        30,
        "the Deployment's ReplicaSet",
    )
    owner = replicasets[0].metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.controller) == ("Deployment", "web", True)
    pods = wait_for(
        lambda: (p := _pods(core, namespace, "web")) and len(p) == 2 and p, 30, "2 pods"
    )
    assert all(p.metadata.owner_references[0].kind == "ReplicaSet" for p in pods)

    apps.patch_namespaced_deployment_scale(
        namespace=namespace, name="web", body={"spec": {"replicas": 4}}
    )
    wait_for(lambda: len(_pods(core, namespace, "web")) == 4, 30, "scale up to 4 pods")
    apps.patch_namespaced_deployment_scale(
        namespace=namespace, name="web", body={"spec": {"replicas": 1}}
    )
    wait_for(lambda: len(_pods(core, namespace, "web")) == 1, 30, "scale down to 1 pod")


def test_garbage_collector_removes_children(api_client: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(api_client)
    core = client.CoreV1Api(api_client)
    apps.create_namespaced_deployment(namespace, _deployment("gc", 2))
    wait_for(lambda: len(_pods(core, namespace, "gc")) == 2, 30, "2 pods")

    apps.delete_namespaced_deployment(
        "gc", namespace, body=client.V1DeleteOptions(propagation_policy="Background")
    )
    wait_for(
        lambda: (
            not apps.list_namespaced_replica_set(namespace, label_selector="app=gc").items
            and not core.list_namespaced_pod(namespace, label_selector="app=gc").items
        ),
        60,
        "garbage collection of the ReplicaSet and Pods",
    )


def test_rbac_denies_serviceaccount_without_rights(
    api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="nobody"))
    )
    token = core.create_namespaced_service_account_token(
        "nobody",
        namespace,
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[])),
    ).status.token

    sa_config = client.Configuration()
    sa_config.host = api_client.configuration.host
    sa_config.ssl_ca_cert = api_client.configuration.ssl_ca_cert
    sa_config.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(sa_config) as sa_client:
        with pytest.raises(ApiException) as denied:
            client.CoreV1Api(sa_client).list_namespaced_pod(namespace)
        assert denied.value.status == 403
        assert f"system:serviceaccount:{namespace}:nobody" in str(denied.value.body)

    # The admin gets 200 for the same request.
    _, status, _ = core.list_namespaced_pod_with_http_info(namespace)
    assert status == 200
