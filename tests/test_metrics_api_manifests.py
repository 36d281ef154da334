"""The external-metrics overlay and the HPA examples: strict schema validation and consistency with the server."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from autoscaler.adapters.metrics_api import METRICS
from autoscaler.api.selector import parse_selector
from tests.manifestcheck import KUBERNETES_VERSION

ROOT = Path(__file__).resolve().parent.parent
OVERLAY = ROOT / "manifests" / "overlays" / "external-metrics"
EXAMPLES = ROOT / "manifests" / "examples" / "hpa-mode"
K8S_VERSION = KUBERNETES_VERSION  # the pinned control plane (hack/versions.env)


def documents(*dirs: Path) -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for d in dirs:
        for path in sorted(d.glob("*.yaml")):
            if path.name == "kustomization.yaml":
                continue
            out.extend((path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc)
    return out


DOCS = documents(OVERLAY, EXAMPLES)


@pytest.mark.parametrize(("path", "doc"), DOCS, ids=[f"{p.name}:{d['metadata']['name']}" for p, d in DOCS])
def test_manifest_is_valid_strict(path: Path, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [d for _, d in DOCS if d["kind"] == kind]


def test_overlay_registers_the_external_metrics_api_on_the_service() -> None:
    [api] = by_kind("APIService")
    assert api["metadata"]["name"] == "v1beta1.external.metrics.k8s.io"
    assert (api["spec"]["group"], api["spec"]["version"]) == ("external.metrics.k8s.io", "v1beta1")
    [svc] = by_kind("Service")
    assert api["spec"]["service"] == {
        "name": svc["metadata"]["name"], "namespace": svc["metadata"]["namespace"], "port": 443,
    }
    kustomization = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())
    assert "../../base" in kustomization["resources"]
    assert {p.name for p in OVERLAY.glob("*.yaml")} - {"kustomization.yaml"} == set(kustomization["resources"][1:])


def test_rbac_is_least_privilege_and_complete() -> None:
    refs = {(d["kind"], d["roleRef"]["name"]) for d in by_kind("ClusterRoleBinding") + by_kind("RoleBinding")}
    assert ("ClusterRoleBinding", "system:auth-delegator") in refs
    assert ("RoleBinding", "extension-apiserver-authentication-reader") in refs
    [rb] = by_kind("RoleBinding")
    assert rb["metadata"]["namespace"] == "kube-system"
    for role in by_kind("ClusterRole"):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule.get(field, []), f"{role['metadata']['name']}: wildcard in {field}"
        assert set(role["rules"][0]["resources"]) == set(METRICS)


def test_example_hpas_select_exactly_one_series_per_role() -> None:
    hpas = by_kind("HorizontalPodAutoscaler")
    assert {h["metadata"]["name"].rsplit("-", 1)[1] for h in hpas} == {"prefill", "decode"}
    for hpa in hpas:
        [metric] = hpa["spec"]["metrics"]
        ext = metric["external"]
        assert ext["metric"]["name"] in METRICS
        assert ext["target"] == {"type": "AverageValue", "averageValue": "1"}
        labels = ext["metric"]["selector"]["matchLabels"]
        selector = parse_selector(",".join(f"{k}={v}" for k, v in labels.items()))
        role = hpa["metadata"]["name"].rsplit("-", 1)[1]
        series = [{"inferenceautoscaler": "llama-70b", "pool": "p", "role": r} for r in ("prefill", "decode")]
        assert [s["role"] for s in series if selector.matches(s)] == [role]


@pytest.mark.skipif(not (ROOT / "manifests" / "base").is_dir() or shutil.which("kubectl") is None,
                    reason="the kustomize base is not on this branch yet, or no kubectl")
def test_overlay_builds_with_kustomize() -> None:
    out = subprocess.run(["kubectl", "kustomize", str(OVERLAY)], capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.returncode == 0, out.stderr
    kinds = {d["kind"] for d in yaml.safe_load_all(out.stdout) if d}
    assert {"APIService", "Service", "Deployment"} <= kinds
