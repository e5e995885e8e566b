"""The Helm chart against the real API server: it lints, renders, and its ClusterRole is
exactly enough for the operator to do its job. (tests/e2e/helm installs it and runs the
whole product from it.)"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from agentfleet.dev.localenv import ControlPlane, ManagedProcess, find_binary, free_port
from agentfleet.dev.localenv.binaries import cache_dir, pinned_versions
from agentfleet.dev.localenv.controlplane import write_kubeconfig
from agentfleet.dev.localenv.waiting import wait_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "agentfleet"
# The chart needs a queue: its own Redis or the URL of one.
BYO_REDIS = ["--set", "redis.url=redis://redis.example:6379/0"]
# Other tests of the session own the cluster's CRDs (docs/install.md: crds.enabled=false).
CRDS_ELSEWHERE = ["--set", "crds.enabled=false"]
ALL_FEATURES = [
    "--set",
    "redis.deploy=true",
    "--set",
    "serviceMonitor.enabled=true",
    "--set",
    "podMonitor.enabled=true",
    "--set",
    "prometheusRule.enabled=true",
    "--set",
    "grafanaDashboard.enabled=true",
]


def _helm(*args: str, kubeconfig: Path | None = None) -> str:
    argv = [str(find_binary("helm")), *args]
    if args[0] == "template":  # render for the control plane the tests run
        argv += ["--kube-version", pinned_versions()["KUBERNETES_VERSION"]]
    if kubeconfig is not None:
        argv += ["--kubeconfig", str(kubeconfig)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_chart_lints_with_defaults_and_every_feature() -> None:
    _helm("lint", "--strict", str(CHART), *BYO_REDIS)
    _helm("lint", "--strict", str(CHART), *ALL_FEATURES)


def test_chart_without_a_queue_fails_with_a_clear_message() -> None:
    argv = [str(find_binary("helm")), "template", "af", str(CHART)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "set redis.url or redis.existingSecret to your Redis (7+)" in result.stderr


def _helm_fails(*args: str) -> str:
    argv = [str(find_binary("helm")), *args]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0, f"helm {' '.join(args)} succeeded:\n{result.stdout}"
    return result.stderr


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (["--set", "redis.deplyo=true"], "at '/redis': additional properties 'deplyo' not allowed"),
        (["--set", "replicaCount=two"], "at '/replicaCount': got string, want integer"),
        (["--set", "operator.logFormat=xml"], "at '/operator/logFormat'"),
        (["--set", "monitoring=true"], "additional properties 'monitoring' not allowed"),
    ],
)
def test_a_typo_or_a_wrong_type_fails_template_and_install_with_the_schema_message(
    controlplane: ControlPlane, namespace: str, bad: list[str], message: str
) -> None:
    """values.schema.json: Helm stops before rendering, naming the key; nothing is created."""
    rendered = _helm_fails("template", "af", str(CHART), *BYO_REDIS, *bad)
    assert "values don't meet the specifications of the schema" in rendered
    assert message in rendered
    kubeconfig = ["--kubeconfig", str(controlplane.kubeconfig), "--namespace", namespace]
    installed = _helm_fails("install", "af", str(CHART), *kubeconfig, *BYO_REDIS, *bad)
    assert message in installed
    assert _helm("list", "--namespace", namespace, "-q", kubeconfig=controlplane.kubeconfig) == ""


def test_notes_say_what_was_installed_how_to_check_it_and_what_to_do_next(
    controlplane: ControlPlane, namespace: str
) -> None:
    out = _helm(
        "install", "af", str(CHART), "--namespace", namespace, "--dry-run=server",
        "--set", "redis.deploy=true", "--set", "redis.persistence.enabled=false",
        "--set", "prometheus.url=", *CRDS_ELSEWHERE,
        kubeconfig=controlplane.kubeconfig,
    )  # fmt: skip
    notes = out[out.index("NOTES:") :]
    assert f"installed in namespace {namespace}" in notes
    assert "StatefulSet agentfleet-redis" in notes
    assert f"kubectl -n {namespace} rollout status deployment/af-agentfleet" in notes
    assert "kubectl apply -n team-a -f examples/" in notes
    assert "autoscaling is off" in notes and "queued work is lost" in notes
    assert "NOTE: crds.enabled=false" in notes
    out = _helm(
        "install", "af", str(CHART), "--namespace", namespace, "--dry-run=server", *BYO_REDIS,
        *CRDS_ELSEWHERE, kubeconfig=controlplane.kubeconfig,
    )  # fmt: skip
    assert "WARNING" not in out[out.index("NOTES:") :]
    out = _helm(
        "install", "af", str(CHART), "--namespace", namespace, "--dry-run=server", *BYO_REDIS,
        *CRDS_ELSEWHERE, "--set", "networkPolicy.enabled=false",
        kubeconfig=controlplane.kubeconfig,
    )  # fmt: skip
    assert "WARNING: networkPolicy.enabled=false" in out[out.index("NOTES:") :]


def _rendered(*args: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(_helm("template", "af", str(CHART), *args)) if d]


def _operator_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "af-agentfleet"
    )
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def test_the_queue_url_comes_from_a_secret_never_from_values_in_the_clear() -> None:
    # The bundled Redis: a generated password, the same in its Secret and in the URL.
    docs = _rendered("--set", "redis.deploy=true")
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    password = secrets["agentfleet-redis"]["stringData"]["password"]
    assert len(password) == 32
    url = secrets["af-agentfleet-queue"]["stringData"]["url"]
    assert url.startswith(f"redis://:{password}@agentfleet-redis.")
    env = {e["name"]: e for e in _operator_container(docs)["env"]}
    assert env["AGENTFLEET_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "af-agentfleet-queue",
        "key": "url",
    }
    assert password not in json.dumps(_operator_container(docs))
    # A Secret of the user's: the chart renders none and points at it.
    docs = _rendered("--set", "redis.existingSecret=my-queue", "--set", "redis.existingSecretKey=u")
    assert not [d for d in docs if d["kind"] == "Secret"]
    env = {e["name"]: e for e in _operator_container(docs)["env"]}
    assert env["AGENTFLEET_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "my-queue",
        "key": "u",
    }


def test_worker_network_policy_values_become_operator_flags() -> None:
    args = _operator_container(
        _rendered(
            *BYO_REDIS,
            "--set",
            "workerNetworkPolicy.dnsCidrs={169.254.20.10/32}",
            "--set",
            "workerNetworkPolicy.blockedCidrs={203.0.113.0/24,2001:db8::/32}",
        )
    )["args"]
    assert "--dns-cidr=169.254.20.10/32" in args
    assert {"--blocked-cidr=203.0.113.0/24", "--blocked-cidr=2001:db8::/32"} <= set(args)


def test_chart_crds_are_the_generated_ones_rendered_as_kept_templates() -> None:
    generated = {p.name: p.read_text() for p in (REPO / "crds").glob("*.yaml")}
    shipped = {p.name: p.read_text() for p in (CHART / "files" / "crds").glob("*.yaml")}
    assert shipped == generated, "run `make crds` to copy crds/ into the chart"
    assert not (CHART / "crds").exists(), "crds/ is installed once and never upgraded by Helm"
    # Rendered as they were generated (fromYaml/toYaml lose nothing), kept on uninstall.
    rendered = {
        d["metadata"]["name"]: d
        for d in _rendered(*BYO_REDIS)
        if d["kind"] == "CustomResourceDefinition"
    }
    for text in generated.values():
        source = yaml.safe_load(text)
        crd = rendered[source["metadata"]["name"]]
        assert crd["spec"] == source["spec"]
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert crd["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] == "Prune=false"
        assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert len(rendered) == len(generated)
    off = _rendered(*BYO_REDIS, "--set", "crds.enabled=false")
    assert not [d for d in off if d["kind"] == "CustomResourceDefinition"]
    unkept = _rendered(*BYO_REDIS, "--set", "crds.keep=false")
    assert all(
        "helm.sh/resource-policy" not in d["metadata"].get("annotations", {})
        for d in unkept
        if d["kind"] == "CustomResourceDefinition"
    )


def test_rendered_monitoring_objects_carry_the_rules_and_dashboard() -> None:
    docs = [d for d in yaml.safe_load_all(_helm("template", "af", str(CHART), *ALL_FEATURES)) if d]
    kinds = {d["kind"] for d in docs}
    assert {"PrometheusRule", "ServiceMonitor", "PodMonitor", "StatefulSet"} <= kinds
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert "AgentfleetQueueOverflow" in alerts
    dashboard = next(d for d in docs if d["kind"] == "ConfigMap" and "agentfleet.json" in d["data"])
    assert '"uid": "agentfleet-overview"' in dashboard["data"]["agentfleet.json"]


def test_operator_works_with_exactly_the_chart_rbac(
    controlplane: ControlPlane, api_client: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    """Apply the chart's ServiceAccount and ClusterRole, run the operator with a token of
    that ServiceAccount, and see a WorkerPool reconciled: the role is sufficient."""
    release = f"rbac{uuid.uuid4().hex[:6]}"
    rendered = _helm(
        "template",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--show-only",
        "templates/serviceaccount.yaml",
        "--show-only",
        "templates/rbac.yaml",
        *BYO_REDIS,
    )
    kubectl = [str(find_binary("kubectl")), "--kubeconfig", str(controlplane.kubeconfig)]
    subprocess.run(
        [*kubectl, "apply", "-f", "-"],
        input=rendered,
        text=True,
        check=True,
        capture_output=True,
        timeout=60,
    )
    subprocess.run(
        [*kubectl, "apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    core = client.CoreV1Api(api_client)
    sa = f"{release}-agentfleet"
    token = core.create_namespaced_service_account_token(
        sa,
        namespace,
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[])),
    ).status.token
    kubeconfig = tmp_path / "operator.kubeconfig"
    ca = Path(api_client.configuration.ssl_ca_cert)
    write_kubeconfig(kubeconfig, controlplane.server, ca, ca, ca, "operator")
    config = yaml.safe_load(kubeconfig.read_text())
    config["users"][0]["user"] = {"token": token}
    kubeconfig.write_text(yaml.safe_dump(config))

    health = free_port()
    operator = ManagedProcess(
        "operator-rbac",
        [
            sys.executable,
            "-m",
            "agentfleet",
            "operator",
            "--namespace",
            namespace,
            "--health-port",
            str(health),
            "--metrics-port",
            "0",
            "--log-format",
            "plain",
        ],
        tmp_path,
        env={"KUBECONFIG": str(kubeconfig), "PATH": "/usr/bin:/bin"},
    )
    operator.start()
    try:
        core.create_namespaced_secret(
            namespace,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name="gh"),
                data={"token": base64.b64encode(b"t").decode()},
            ),
        )
        custom = client.CustomObjectsApi(api_client)
        custom.create_namespaced_custom_object(
            "agentfleet.dev",
            "v1alpha1",
            namespace,
            "projects",
            {
                "apiVersion": "agentfleet.dev/v1alpha1",
                "kind": "Project",
                "metadata": {"name": "shop"},
                "spec": {"repository": "acme/shop", "credentialsSecretRef": {"name": "gh"}},
            },
        )
        custom.create_namespaced_custom_object(
            "agentfleet.dev",
            "v1alpha1",
            namespace,
            "workerpools",
            {
                "apiVersion": "agentfleet.dev/v1alpha1",
                "kind": "WorkerPool",
                "metadata": {"name": "devs"},
                # Two workers: the PodDisruptionBudget (and the verbs it needs) too.
                "spec": {"stage": "development", "minReplicas": 2, "maxReplicas": 2},
            },
        )
        apps = client.AppsV1Api(api_client)
        wait_for(
            lambda: apps.read_namespaced_deployment("devs", namespace),
            60,
            f"the operator (as {sa}) to create the Deployment",
        )
        wait_for(
            lambda: client.PolicyV1Api(api_client).read_namespaced_pod_disruption_budget(
                "devs", namespace
            ),
            30,
            "the PodDisruptionBudget",
        )
        pool = wait_for(
            lambda: (
                (
                    p := custom.get_namespaced_custom_object(
                        "agentfleet.dev", "v1alpha1", namespace, "workerpools", "devs"
                    )
                )
                .get("status", {})
                .get("conditions")
                and p
            ),
            30,
            "WorkerPool status written by the operator",
        )
        assert pool["status"]["conditions"]
        log = operator.log_path.read_text()
        assert "403" not in log and "Forbidden" not in log, log[-3000:]
    finally:
        operator.stop()


def test_the_webhook_receiver_is_exposed_when_it_has_a_port() -> None:
    docs = [d for d in yaml.safe_load_all(_helm("template", "af", str(CHART), *BYO_REDIS)) if d]
    deployment = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "af-agentfleet"
    )
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["webhooks"] == int(env["AGENTFLEET_WEBHOOK_PORT"])
    service = next(
        d for d in docs if d["kind"] == "Service" and "webhooks" in d["metadata"]["name"]
    )
    assert service["spec"]["ports"] == [{"name": "webhooks", "port": 80, "targetPort": "webhooks"}]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]

    off = _helm("template", "af", str(CHART), "--set", "operator.webhookPort=0", *BYO_REDIS)
    docs = [d for d in yaml.safe_load_all(off) if d]
    assert not any(d["kind"] == "Service" and "webhooks" in d["metadata"]["name"] for d in docs)
    deployment = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "af-agentfleet"
    )
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "webhooks" not in {p["name"] for p in container["ports"]}


def _linters() -> tuple[Path, Path]:
    """kube-score (built by `make controlplane`) and checkov (installed by `make lint`)."""
    versions = pinned_versions()
    kube_score = find_binary("kube-score")
    checkov = cache_dir() / "tools" / f"checkov-{versions['CHECKOV_VERSION']}" / "bin" / "checkov"
    assert checkov.is_file(), f"{checkov} is missing: `make lint` installs it"
    return kube_score, checkov


def test_the_chart_linters_pass_the_chart_and_catch_a_regression(tmp_path: Path) -> None:
    """What `make lint` runs (scripts/lint-chart.sh) passes; the same linters fail a render
    without NetworkPolicies (kube-score) or with privilege escalation allowed (checkov),
    so the waivers in the chart hide nothing else."""
    subprocess.run(["bash", str(REPO / "scripts" / "lint-chart.sh")], check=True, timeout=600)
    kube_score, checkov = _linters()
    loose = tmp_path / "loose.yaml"
    loose.write_text(
        _helm(
            "template", "af", str(CHART), "--namespace", "agentfleet-system", *ALL_FEATURES,
            "--set", "networkPolicy.enabled=false",
            "--set", "securityContext.allowPrivilegeEscalation=true",
        )
    )  # fmt: skip
    scored = subprocess.run(
        [str(kube_score), "score", str(loose), "--output-format", "ci",
         "--ignore-container-cpu-limit"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert scored.returncode != 0
    assert "The pod does not have a matching NetworkPolicy" in scored.stdout, scored.stdout
    checked = subprocess.run(
        [str(checkov), "--quiet", "--compact", "--skip-download", "--framework", "kubernetes",
         "-f", str(loose)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert checked.returncode != 0
    assert "CKV_K8S_20" in checked.stdout, checked.stdout
