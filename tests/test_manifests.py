"""The install manifests: they render, validate strictly, grant least privilege, run locked down, and their
dashboard and alerts only use PromQL that parses and metrics the controller documents.

``kubectl kustomize`` renders each kustomization; built-in kinds are validated with kubernetes-validate (strict,
offline schemas), custom kinds with tests/crdcheck.py against the CRDs in crds/ and tests/data/crds/.
``promtool`` checks the alert rules, the dashboard queries and the example Prometheus configuration, and runs
unit tests of the alerts (``promtool test rules``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoscaler.api.v1alpha1 import parse_spec
from tests.manifestcheck import (
    KUSTOMIZATIONS,
    MANIFESTS,
    OUR_CRD,
    ROOT,
    load_yaml_docs,
    object_name,
    render,
    validate_any,
)

pytestmark = pytest.mark.kubectl

SA = ("inference-autoscaler-system", "inference-autoscaler")
DASHBOARD = MANIFESTS / "components" / "grafana" / "dashboard.json"
EXAMPLES = sorted((MANIFESTS / "examples").glob("*.yaml"))
LEASE_NAME = "inference-autoscaler"

# (role kind, namespace or "", apiGroup, resource, resourceName or "", verb): the base's whole grant. This is the
# anchor of the RBAC audit: change it only together with the manifests and the table in docs/security.md.
_CLUSTER = [
    ("autoscaler.inference.dev", "inferenceautoscalers", "list watch"),
    ("autoscaler.inference.dev", "inferenceautoscalers/status", "patch"),
    ("inference.networking.k8s.io", "inferencepools", "list watch"),
    ("inference.networking.x-k8s.io", "inferencepools", "list watch"),
    ("apps", "deployments", "list watch"),
    ("apps", "statefulsets", "list watch"),
    ("apps", "deployments/scale", "patch"),
    ("apps", "statefulsets/scale", "patch"),
    ("leaderworkerset.x-k8s.io", "leaderworkersets", "list watch"),
    ("leaderworkerset.x-k8s.io", "leaderworkersets/scale", "patch"),
    ("", "pods", "list watch"),
    ("events.k8s.io", "events", "create patch"),
]
BASE_GRANTS = {
    ("ClusterRole", "", group, resource, "", verb)
    for group, resource, verbs in _CLUSTER
    for verb in verbs.split()
} | {
    ("Role", SA[0], "coordination.k8s.io", "leases", "", "create"),
    ("Role", SA[0], "coordination.k8s.io", "leases", LEASE_NAME, "get"),
    ("Role", SA[0], "coordination.k8s.io", "leases", LEASE_NAME, "update"),
}
# What an overlay may add, by overlay directory name. The external metrics API server delegates authentication
# and authorisation to the API server (TokenReview, SubjectAccessReview) and reads the front-proxy CA.
OVERLAY_EXTRA_GRANTS: dict[str, set[tuple[str, str, str, str, str, str]]] = {
    "external-metrics": {
        ("ClusterRole", "", "authentication.k8s.io", "tokenreviews", "", "create"),
        ("ClusterRole", "", "authorization.k8s.io", "subjectaccessreviews", "", "create"),
        ("Role", "kube-system", "", "configmaps", "extension-apiserver-authentication", "get"),
        ("Role", "kube-system", "", "configmaps", "extension-apiserver-authentication", "list"),
        ("Role", "kube-system", "", "configmaps", "extension-apiserver-authentication", "watch"),
        ("Role", "kube-system", "", "configmaps", "", "get"),
        ("Role", "kube-system", "", "configmaps", "", "list"),
        ("Role", "kube-system", "", "configmaps", "", "watch"),
    },
}
# Well-known roles an overlay may bind our ServiceAccount to instead of spelling the same rules out.
OVERLAY_EXTERNAL_ROLES: dict[str, set[tuple[str, str]]] = {
    "external-metrics": {("ClusterRole", "system:auth-delegator"), ("Role", "extension-apiserver-authentication-reader")},
}
FORBIDDEN_VERBS = {"*", "escalate", "bind", "impersonate", "deletecollection"}


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths]


def _of_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def _one(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in _of_kind(objs, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _base() -> list[dict[str, Any]]:
    return render(MANIFESTS / "base")


# ------------------------------------------------------------------------------------------------ rendering


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=_ids(KUSTOMIZATIONS))
def test_every_rendered_object_validates(directory: Path) -> None:
    objs = render(directory)
    assert objs, f"{directory} rendered nothing"
    problems = [p for obj in objs for p in validate_any(obj)]
    assert not problems, "\n".join(problems)
    seen = [object_name(o) for o in objs]
    assert len(seen) == len(set(seen)), f"duplicate objects: {seen}"


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=_ids(KUSTOMIZATIONS))
def test_everything_but_cluster_objects_lives_in_the_controller_namespace(directory: Path) -> None:
    cluster_scoped = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "APIService"}
    for obj in render(directory):
        if obj["kind"] in cluster_scoped:
            assert "namespace" not in obj["metadata"], object_name(obj)
        elif obj["metadata"].get("namespace") != "kube-system":  # the front-proxy CA reader, if any
            assert obj["metadata"].get("namespace") == SA[0], object_name(obj)


def test_top_level_kustomization_is_the_base() -> None:
    assert sorted(map(object_name, render(MANIFESTS))) == sorted(map(object_name, _base()))


def test_base_crd_is_a_verbatim_copy_of_crds_dir() -> None:
    copy = MANIFESTS / "base" / "crd.yaml"
    assert copy.read_text() == OUR_CRD.read_text(), (
        "manifests/base/crd.yaml differs from crds/: run "
        "`cp crds/autoscaler.inference.dev_inferenceautoscalers.yaml manifests/base/crd.yaml`"
    )


def test_components_compose_in_one_kustomization(tmp_path: Path) -> None:
    """What docs/getting-started.md tells users to write: the base plus several components at once."""
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(MANIFESTS / "base", tmp_path)],
        "components": [os.path.relpath(MANIFESTS / "components" / c, tmp_path) for c in ("prometheus-operator", "grafana")],
    }))
    kinds = sorted(o["kind"] for o in render(tmp_path))
    assert {"ServiceMonitor", "PrometheusRule", "ConfigMap", "Deployment"} <= set(kinds)


# ------------------------------------------------------------------------------------------------------ RBAC


def _grants(objs: list[dict[str, Any]]) -> tuple[set[tuple[str, str, str, str, str, str]], set[tuple[str, str]]]:
    """Rules granted to our ServiceAccount, flattened, and the (kind, name) of bound roles not in the render."""
    roles = {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
             for o in objs if o["kind"] in ("Role", "ClusterRole")}
    grants: set[tuple[str, str, str, str, str, str]] = set()
    external: set[tuple[str, str]] = set()
    for binding in objs:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(s.get("kind") == "ServiceAccount" and (s.get("namespace"), s["name"]) == SA
                   for s in binding.get("subjects", [])):
            continue
        ref = binding["roleRef"]
        binding_ns = binding["metadata"].get("namespace", "")
        role = roles.get((ref["kind"], binding_ns if ref["kind"] == "Role" else "", ref["name"]))
        if role is None:
            external.add((ref["kind"], ref["name"]))
            continue
        # A ClusterRole bound by a RoleBinding grants only in that namespace.
        scope_kind = "ClusterRole" if binding["kind"] == "ClusterRoleBinding" else "Role"
        for rule in role.get("rules", []):
            assert not rule.get("nonResourceURLs"), f"{ref['name']}: nonResourceURLs granted"
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for name in rule.get("resourceNames") or [""]:
                        for verb in rule["verbs"]:
                            grants.add((scope_kind, binding_ns, group, resource, name, verb))
    return grants, external


def test_base_rbac_is_exactly_the_documented_grant() -> None:
    grants, external = _grants(_base())
    assert not external, f"base binds roles it does not define: {external}"
    assert grants == BASE_GRANTS, (
        f"missing: {sorted(BASE_GRANTS - grants)}\nunexpected: {sorted(grants - BASE_GRANTS)}"
    )


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=_ids(KUSTOMIZATIONS))
def test_no_wildcards_or_escalation_verbs_anywhere(directory: Path) -> None:
    for role in render(directory):
        if role["kind"] not in ("Role", "ClusterRole"):
            continue
        assert "aggregationRule" not in role, f"{object_name(role)}: aggregated roles hide their rules"
        for rule in role.get("rules", []):
            for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                values = rule.get(field) or []
                assert not any("*" in v for v in values), f"{object_name(role)}: wildcard in {field}: {rule}"
            assert not FORBIDDEN_VERBS & set(rule["verbs"]), f"{object_name(role)}: {rule}"
            assert "secrets" not in rule.get("resources", []), f"{object_name(role)} reads secrets: {rule}"


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=_ids(KUSTOMIZATIONS))
def test_overlays_add_only_their_allowed_grants(directory: Path) -> None:
    grants, external = _grants(render(directory))
    name = directory.name if directory.parent.name == "overlays" else ""
    allowed = BASE_GRANTS | OVERLAY_EXTRA_GRANTS.get(name, set())
    assert grants <= allowed, f"{directory.name} grants more than allowed: {sorted(grants - allowed)}"
    assert external <= OVERLAY_EXTERNAL_ROLES.get(name, set()), f"unexpected role bindings: {external}"


def test_security_doc_lists_every_grant_of_the_base() -> None:
    """docs/security.md's RBAC table and the manifests say the same thing, verb by verb."""
    text = (ROOT / "docs" / "security.md").read_text()
    table = text.split("<!-- rbac-table -->")[1].split("<!-- /rbac-table -->")[0]
    documented: set[tuple[str, str, str, str, str, str]] = set()
    for line in table.strip().splitlines()[2:]:
        kind, group, resource, verbs, _why = (c.strip().strip("`") for c in line.strip().strip("|").split("|"))
        namespace = SA[0] if kind == "Role" else ""
        match = re.fullmatch(r"([\w/.]+)(?: \(name `?([\w.-]+)`?\))?", resource)
        assert match, f"cannot read resource cell {resource!r}"
        group = "" if group == "core" else group
        for verb in verbs.replace(",", " ").split():
            documented.add((kind, namespace, group, match[1], match[2] or "", verb))
    assert documented == BASE_GRANTS, (
        f"in manifests, not in docs: {sorted(BASE_GRANTS - documented)}\n"
        f"in docs, not in manifests: {sorted(documented - BASE_GRANTS)}"
    )


# -------------------------------------------------------------------------------------- workload hardening


def test_deployment_runs_locked_down_with_two_replicas() -> None:
    dep = _one(_base(), "Deployment", "inference-autoscaler")
    spec = dep["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == SA[1]
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] == 65532
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["runAsNonRoot"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not sc.get("privileged")
    # The only writable path is a size-limited emptyDir on /tmp.
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = container["volumeMounts"]
    assert [m["mountPath"] for m in mounts] == ["/tmp"]
    assert "sizeLimit" in volumes[mounts[0]["name"]]["emptyDir"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), f"resources.{kind}"
    assert pod["topologySpreadConstraints"], "leader and standby should spread over nodes"
    for tsc in pod["topologySpreadConstraints"]:
        assert tsc["labelSelector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()


def test_probes_and_ports_match_the_controller_contract() -> None:
    (container,) = _one(_base(), "Deployment")["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert container["args"] == ["run"]


def test_namespace_enforces_the_restricted_pod_security_standard() -> None:
    ns = _one(_base(), "Namespace")
    assert ns["metadata"]["name"] == SA[0]
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_pdb_and_service_select_the_controller_pods() -> None:
    objs = _base()
    labels = _one(objs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    pdb = _one(objs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1, "one pod at a time, never both"
    svc = _one(objs, "Service", "inference-autoscaler-metrics")
    assert svc["spec"]["selector"].items() <= labels.items()
    assert [(p["name"], p["targetPort"]) for p in svc["spec"]["ports"]] == [("metrics", "metrics")]


def test_servicemonitor_scrapes_the_metrics_service_port() -> None:
    objs = render(MANIFESTS / "overlays" / "prometheus-operator")
    svc = _one(objs, "Service", "inference-autoscaler-metrics")
    sm = _one(objs, "ServiceMonitor")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert svc["metadata"]["namespace"] in sm["spec"]["namespaceSelector"]["matchNames"]
    service_ports = {p["name"] for p in svc["spec"]["ports"]}
    for endpoint in sm["spec"]["endpoints"]:
        assert endpoint["port"] in service_ports
        assert endpoint["honorLabels"] is True, "keep the InferenceAutoscaler's namespace label"


# ----------------------------------------------------------------------------------- dashboard and alerts


def _dashboard() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return result


def _dashboard_exprs() -> list[str]:
    return [t["expr"] for p in _dashboard()["panels"] for t in p.get("targets", [])]


def _rule_groups() -> list[dict[str, Any]]:
    rule = _one(render(MANIFESTS / "overlays" / "prometheus-operator"), "PrometheusRule")
    groups: list[dict[str, Any]] = rule["spec"]["groups"]
    return groups


def _promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool not found: run `make prometheus` (Debian's prometheus package ships it)"
    return path


def _grafana_to_promql(expr: str) -> str:
    """Replace Grafana's template variables with values so promtool can parse the query."""
    expr = expr.replace("$__rate_interval", "1m").replace("$__interval", "1m").replace("$__range", "6h")
    return re.sub(r"\$\{?(\w+)\}?", "x", expr)


def test_dashboard_configmap_carries_the_json_and_the_sidecar_label() -> None:
    cm = _one(render(MANIFESTS / "overlays" / "grafana"), "ConfigMap", "inference-autoscaler-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["inference-autoscaler.json"]) == _dashboard()


def test_dashboard_is_well_formed_and_covers_the_topics() -> None:
    dash = _dashboard()
    assert dash["uid"] and dash["title"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dash["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, f"{panel['title']} overflows the 24-column grid"
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert {"datasource", "namespace", "name"} <= variables
    joined = "\n".join(_dashboard_exprs())
    for metric in ("current_replicas", "desired_replicas", "forecast_arrival_rate", "observed_arrival_rate",
                   "observed_ttft_seconds", "slo_ttft_target_seconds", "observed_itl_seconds",
                   "slo_itl_target_seconds", "cost_per_hour", "decisions_total", "reconcile_duration_seconds",
                   "errors_total", "leader"):
        assert f"inference_autoscaler_{metric}" in joined, f"no panel shows {metric}"


def test_every_promql_expression_parses(tmp_path: Path) -> None:
    """Alert rules as they are, dashboard queries as recording rules, through `promtool check rules`."""
    alerts = tmp_path / "alerts.yaml"
    alerts.write_text(yaml.safe_dump({"groups": _rule_groups()}))
    panels = tmp_path / "dashboard.yaml"
    panels.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": _grafana_to_promql(e)} for i, e in enumerate(_dashboard_exprs())
    ]}]}))
    for path in (alerts, panels):
        proc = subprocess.run([_promtool(), "check", "rules", str(path)], capture_output=True, text=True,
                              timeout=60, check=False)
        assert proc.returncode == 0, f"{path.name}: {proc.stdout}{proc.stderr}"


def test_bad_promql_is_caught(tmp_path: Path) -> None:
    """The parse check above can fail: a broken query is rejected."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [{"record": "r", "expr": "sum(rate(x[5m])"}]}]}))
    proc = subprocess.run([_promtool(), "check", "rules", str(bad)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode != 0


def _contract_metrics() -> set[str]:
    text = (ROOT / "docs" / "observability.md").read_text()
    table = text.split("<!-- metrics-contract -->")[1].split("<!-- /metrics-contract -->")[0]
    return set(re.findall(r"`(inference_autoscaler_\w+)`", table))


def test_dashboard_and_alerts_use_only_documented_metrics() -> None:
    documented = _contract_metrics()
    exprs = _dashboard_exprs() + [r["expr"] for g in _rule_groups() for r in g["rules"]]
    used = set()
    for expr in exprs:
        used |= {re.sub(r"_(bucket|sum|count)$", "", m) for m in re.findall(r"inference_autoscaler_\w+", expr)}
    assert used <= documented, f"undocumented metrics: {sorted(used - documented)}"
    for name in ("inference_autoscaler_desired_replicas", "inference_autoscaler_leader",
                 "inference_autoscaler_reconcile_duration_seconds", "inference_autoscaler_errors_total"):
        assert name in documented


def test_alerts_have_severity_summary_and_description() -> None:
    names = []
    for group in _rule_groups():
        for rule in group["rules"]:
            names.append(rule["alert"])
            assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
            assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
    assert len(names) == len(set(names))
    for expected in ("InferenceAutoscalerTTFTOverSLO", "InferenceAutoscalerITLOverSLO",
                     "InferenceAutoscalerMetricsUnavailable", "InferenceAutoscalerNotLeading",
                     "InferenceAutoscalerReconcileErrors", "InferenceAutoscalerDown"):
        assert expected in names


# promtool unit tests: series in promtool's expanding notation, 1-minute steps.
_SERIES = {
    "ttft_breach": [
        {"series": 'inference_autoscaler_observed_ttft_seconds{namespace="serving",name="llama",role="prefill"}',
         "values": "0.5x4 1.5x30"},
        {"series": 'inference_autoscaler_slo_ttft_target_seconds{namespace="serving",name="llama"}', "values": "1x34"},
        {"series": 'inference_autoscaler_observed_itl_seconds{namespace="serving",name="llama",role="decode"}',
         "values": "0.05x34"},
        {"series": 'inference_autoscaler_slo_itl_target_seconds{namespace="serving",name="llama"}', "values": "0.1x34"},
    ],
}
PROMTOOL_TESTS: list[dict[str, Any]] = [
    {   # TTFT over target from minute 5: not yet an alert at minute 10, warning by minute 16, ITL fine.
        "interval": "1m",
        "input_series": _SERIES["ttft_breach"],
        "alert_rule_test": [
            {"eval_time": "10m", "alertname": "InferenceAutoscalerTTFTOverSLO", "exp_alerts": []},
            {"eval_time": "16m", "alertname": "InferenceAutoscalerTTFTOverSLO",
             "exp_alerts": [{"exp_labels": {"severity": "warning", "namespace": "serving", "name": "llama"}}]},
            {"eval_time": "16m", "alertname": "InferenceAutoscalerTTFTOverSLOCritical", "exp_alerts": []},
            {"eval_time": "16m", "alertname": "InferenceAutoscalerITLOverSLO", "exp_alerts": []},
        ],
    },
    {   # ITL at three times its target: critical after 5 minutes.
        "interval": "1m",
        "input_series": [
            {"series": 'inference_autoscaler_observed_itl_seconds{namespace="serving",name="llama",role="decode"}',
             "values": "0.3x20"},
            {"series": 'inference_autoscaler_slo_itl_target_seconds{namespace="serving",name="llama"}', "values": "0.1x20"},
        ],
        "alert_rule_test": [
            {"eval_time": "7m", "alertname": "InferenceAutoscalerITLOverSLOCritical",
             "exp_alerts": [{"exp_labels": {"severity": "critical", "namespace": "serving", "name": "llama"}}]},
        ],
    },
    {   # MetricsAvailable=False for 10 minutes, then True again.
        "interval": "1m",
        "input_series": [
            {"series": 'inference_autoscaler_condition{namespace="serving",name="llama",type="MetricsAvailable",status="False"}',
             "values": "1x10 0x10"},
        ],
        "alert_rule_test": [
            {"eval_time": "3m", "alertname": "InferenceAutoscalerMetricsUnavailable", "exp_alerts": []},
            {"eval_time": "8m", "alertname": "InferenceAutoscalerMetricsUnavailable",
             "exp_alerts": [{"exp_labels": {"severity": "warning", "namespace": "serving", "name": "llama"}}]},
            {"eval_time": "18m", "alertname": "InferenceAutoscalerMetricsUnavailable", "exp_alerts": []},
        ],
    },
    {   # Two controller pods up, neither leading; then one leads.
        "interval": "1m",
        "input_series": [
            {"series": 'inference_autoscaler_leader{pod="a"}', "values": "0x20 1x10"},
            {"series": 'inference_autoscaler_leader{pod="b"}', "values": "0x30"},
            {"series": 'up{job="inference-autoscaler-metrics",pod="a"}', "values": "1x30"},
        ],
        "alert_rule_test": [
            {"eval_time": "10m", "alertname": "InferenceAutoscalerNotLeading",
             "exp_alerts": [{"exp_labels": {"severity": "critical"}}]},
            {"eval_time": "25m", "alertname": "InferenceAutoscalerNotLeading", "exp_alerts": []},
            {"eval_time": "25m", "alertname": "InferenceAutoscalerDown", "exp_alerts": []},
        ],
    },
    {   # No controller target is up at all.
        "interval": "1m",
        "input_series": [{"series": 'up{job="inference-autoscaler-metrics",pod="a"}', "values": "0x10"}],
        "alert_rule_test": [
            {"eval_time": "7m", "alertname": "InferenceAutoscalerDown",
             "exp_alerts": [{"exp_labels": {"severity": "critical"}}]},
        ],
    },
    {   # Persistent kube API errors (1/s) fire; the occasional conflict (one per 10 min) does not.
        "interval": "1m",
        "input_series": [
            {"series": 'inference_autoscaler_errors_total{kind="kube"}', "values": "0+60x30"},
            {"series": 'inference_autoscaler_errors_total{kind="actuation"}', "values": "0+0.1x30"},
        ],
        "alert_rule_test": [
            {"eval_time": "25m", "alertname": "InferenceAutoscalerReconcileErrors",
             "exp_alerts": [{"exp_labels": {"severity": "warning", "kind": "kube"}}]},
        ],
    },
    {   # Decode stuck below desired (no GPUs) for 20 minutes.
        "interval": "1m",
        "input_series": [
            {"series": 'inference_autoscaler_current_replicas{namespace="serving",name="llama",role="decode"}',
             "values": "3x30"},
            {"series": 'inference_autoscaler_desired_replicas{namespace="serving",name="llama",role="decode"}',
             "values": "5x30"},
            {"series": 'inference_autoscaler_current_replicas{namespace="serving",name="llama",role="prefill"}',
             "values": "2x30"},
            {"series": 'inference_autoscaler_desired_replicas{namespace="serving",name="llama",role="prefill"}',
             "values": "2x30"},
        ],
        "alert_rule_test": [
            {"eval_time": "15m", "alertname": "InferenceAutoscalerReplicasBelowDesired", "exp_alerts": []},
            {"eval_time": "25m", "alertname": "InferenceAutoscalerReplicasBelowDesired",
             "exp_alerts": [{"exp_labels": {"severity": "warning", "namespace": "serving", "name": "llama",
                                            "role": "decode"}}]},
        ],
    },
]


def test_alerts_fire_when_they_should_and_not_before(tmp_path: Path) -> None:
    # promtool compares annotations too; these cases check when alerts fire and with which labels, so the
    # annotations are left out here (`promtool check rules` above checks their templates).
    groups = _rule_groups()
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": groups}))
    tests = tmp_path / "tests.yaml"
    tests.write_text(yaml.safe_dump({"rule_files": [rules.name], "evaluation_interval": "1m", "tests": PROMTOOL_TESTS}))
    proc = subprocess.run([_promtool(), "test", "rules", str(tests)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ----------------------------------------------------------------------------------------------- examples


def _example_objects() -> list[dict[str, Any]]:
    return [d for path in EXAMPLES for d in load_yaml_docs(path)]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_validates(path: Path) -> None:
    problems = [p for obj in load_yaml_docs(path) for p in validate_any(obj)]
    assert not problems, "\n".join(problems)
    for obj in load_yaml_docs(path):
        if obj["kind"] == "InferenceAutoscaler":
            parse_spec(obj["spec"])  # the models accept what the CRD accepts


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def test_examples_are_consistent_pools_targets_and_roles() -> None:
    """Every InferenceAutoscaler's pool exists, and each role resolves to exactly one workload of the pool."""
    objs = _example_objects()
    pools = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objs if o["kind"] == "InferencePool"}
    workloads = [o for o in objs if o["kind"] == "Deployment" and o["metadata"].get("namespace") not in ("monitoring",)]
    ias_list = [o for o in objs if o["kind"] == "InferenceAutoscaler"]
    assert ias_list and pools
    for ias in ias_list:
        ns = ias["metadata"]["namespace"]
        pool = pools.get((ns, ias["spec"]["poolRef"]["name"]))
        assert pool is not None, f"{object_name(ias)}: no InferencePool {ias['spec']['poolRef']['name']} in examples"
        selector = pool["spec"]["selector"]["matchLabels"]
        role_label = ias["spec"].get("roleLabel", "llm-d.ai/role")
        for role, role_spec in ias["spec"]["roles"].items():
            if "scaleTargetRef" in role_spec:
                ref = role_spec["scaleTargetRef"]
                found = [w for w in workloads if w["kind"] == ref["kind"] and w["metadata"]["name"] == ref["name"]
                         and w["metadata"]["namespace"] == ns]
            else:  # discovery: pool selector plus the role label on the pod template
                found = [w for w in workloads if w["metadata"]["namespace"] == ns
                         and _matches({**selector, role_label: role}, w["spec"]["template"]["metadata"]["labels"])]
            assert len(found) == 1, f"{object_name(ias)} role {role}: {len(found)} workloads"
            template = found[0]["spec"]["template"]
            assert _matches(selector, template["metadata"]["labels"]), f"{role}: pods are not in the pool"
            assert template["metadata"]["labels"].get(role_label) == role
            ports = {p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
            assert {p["number"] for p in pool["spec"]["targetPorts"]} <= ports, "pool targets a port no pod opens"
            assert found[0]["spec"]["replicas"] <= role_spec["maxReplicas"]


def test_existing_ias_examples_are_kept() -> None:
    names = {p.name for p in EXAMPLES}
    assert {"disaggregated-ias.yaml", "aggregated-ias.yaml", "disaggregated-pool.yaml", "aggregated-pool.yaml"} <= names


def test_example_prometheus_config_is_valid(tmp_path: Path) -> None:
    cm = _one(load_yaml_docs(MANIFESTS / "examples" / "kind-prometheus.yaml"), "ConfigMap")
    parsed = yaml.safe_load(cm["data"]["prometheus.yml"])
    # Debian's Prometheus is built without Kubernetes service discovery, so its promtool rejects the
    # `kubernetes_sd_configs` key; swap it for a static target and check everything else (relabel regexes,
    # intervals, field names).
    for job in parsed["scrape_configs"]:
        assert job.pop("kubernetes_sd_configs") == [{"role": "pod"}]
        job["static_configs"] = [{"targets": ["127.0.0.1:8000"]}]
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(parsed))
    proc = subprocess.run([_promtool(), "check", "config", "--syntax-only", str(config)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --------------------------------------------------------------------------------------------- Dockerfile


def test_dockerfile_is_pinned_non_root_and_builds_with_the_tested_script() -> None:
    text = (ROOT / "Dockerfile").read_text()
    image = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert image and re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", image[1]), "pin tag+digest"
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert froms and all(f == "${PYTHON_IMAGE}" for f in froms)
    assert re.search(r"^RUN sh scripts/install\.sh /src /opt/inference-autoscaler$", text, re.M)
    assert re.search(r"^USER 65532:65532$", text, re.M)
    assert 'ENTRYPOINT ["inference-autoscaler"]' in text and 'CMD ["run"]' in text
    # Everything COPY'd from the context exists and is let through .dockerignore.
    allowed = {line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")}
    for sources in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for source in sources.split():
            assert (ROOT / source).exists(), source
            assert source in allowed, f"{source} is excluded by .dockerignore"


def test_deployment_image_is_the_built_image() -> None:
    (container,) = _one(_base(), "Deployment")["spec"]["template"]["spec"]["containers"]
    from autoscaler import __version__

    assert container["image"] == f"inference-autoscaler:{__version__}", "bump manifests/base images: newTag"
