"""Rendering and validating the install manifests: ``kubectl kustomize``, kubernetes-validate, CRD schemas.

Helpers shared by tests/test_manifests.py and any later test (RBAC audit, e2e) that installs the same manifests.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.crdcheck import validate_object

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "manifests"
CRD_DATA = ROOT / "tests" / "data" / "crds"
OUR_CRD = ROOT / "crds" / "autoscaler.inference.dev_inferenceautoscalers.yaml"
KUBERNETES_VERSION = "1.36"  # the pinned control plane (hack/versions.env); schemas are offline

# Every kustomization a user can `kubectl apply -k`: the top level, the base and each overlay (overlays added
# later, such as external-metrics, are picked up automatically).
KUSTOMIZATIONS: list[Path] = [
    MANIFESTS,
    MANIFESTS / "base",
    *sorted(p.parent for p in (MANIFESTS / "overlays").glob("*/kustomization.yaml")),
]


def kubectl() -> str:
    """Path of a kubectl with kustomize components support, or skip (the Makefile does not install one)."""
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl not found on PATH (needs kubectl ≥ 1.27 for kustomize components)")
    return path


@functools.cache
def _render_cached(directory: str) -> tuple[str, str, int]:
    proc = subprocess.run(
        [kubectl(), "kustomize", directory], capture_output=True, text=True, timeout=60, check=False
    )
    return proc.stdout, proc.stderr, proc.returncode


def render(directory: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize DIRECTORY`` prints; fails the test with kustomize's message otherwise."""
    out, err, code = _render_cached(str(directory))
    assert code == 0, f"kubectl kustomize {directory} failed: {err.strip()}"
    return [d for d in yaml.safe_load_all(out) if d]


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    """Every non-empty document of a YAML file."""
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@functools.cache
def custom_resource_definitions() -> dict[tuple[str, str], list[dict[str, Any]]]:
    """CRDs to validate custom objects with, keyed by (group, kind); several when versions/releases differ."""
    crds: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for path in [OUR_CRD, *sorted(CRD_DATA.glob("*.yaml"))]:
        for doc in load_yaml_docs(path):
            key = (doc["spec"]["group"], doc["spec"]["names"]["kind"])
            crds.setdefault(key, []).append(doc)
    return crds


def object_name(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    return f"{obj.get('kind')}/{meta.get('namespace', '')}/{meta.get('name')}"


def validate_any(obj: dict[str, Any]) -> list[str]:
    """Problems with one object: built-in kinds with kubernetes-validate (strict), custom kinds against every
    stored CRD release that serves their version. Empty when valid."""
    group = obj["apiVersion"].rpartition("/")[0]
    crds = custom_resource_definitions().get((group, obj["kind"]))
    if crds is not None:
        problems = []
        served = [c for c in crds if any(obj["apiVersion"].endswith("/" + v["name"]) for v in c["spec"]["versions"])]
        if not served:
            return [f"{object_name(obj)}: no stored CRD serves {obj['apiVersion']}"]
        for crd in served:
            release = crd["metadata"].get("annotations", {}).get("operator.prometheus.io/version", "")
            for path, message in validate_object(crd, obj):
                problems.append(f"{object_name(obj)} ({crd['metadata']['name']} {release}): {path}: {message}")
        return problems
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{object_name(obj)}: {obj['apiVersion']} is neither built in nor has a CRD in tests/data/crds/"]
    except kubernetes_validate.ValidationError as err:
        return [f"{object_name(obj)}: {'.'.join(str(p) for p in err.path)}: {err.message}"]
    return []
