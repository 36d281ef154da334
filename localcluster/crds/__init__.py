"""The CRDs the local control plane installs: upstream InferencePool (v1 and v1alpha2) and LeaderWorkerSet
(SOURCES.md says where each comes from), and the project's own InferenceAutoscaler CRD from ``crds/``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from localcluster.client import Kube, KubeError, wait_until

HERE = Path(__file__).resolve().parent
PROJECT_CRD = HERE.parents[1] / "crds" / "autoscaler.inference.dev_inferenceautoscalers.yaml"
UPSTREAM_CRDS = (
    HERE / "inference.networking.k8s.io_inferencepools.yaml",
    HERE / "inference.networking.x-k8s.io_inferencepools.yaml",
    HERE / "leaderworkerset.x-k8s.io_leaderworkersets.yaml",
)


def crd_documents(paths: tuple[Path, ...] = (*UPSTREAM_CRDS, PROJECT_CRD)) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition document in ``paths``."""
    docs: list[dict[str, Any]] = []
    for path in paths:
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "CustomResourceDefinition")
    return docs


def install_crds(kube: Kube, docs: list[dict[str, Any]] | None = None, timeout_s: float = 60.0) -> None:
    """Server-side apply each CRD and wait until the apiserver serves it (condition ``Established``)."""
    docs = crd_documents() if docs is None else docs
    for doc in docs:
        kube.apply(doc, manager="localcluster")
    for doc in docs:
        name = doc["metadata"]["name"]
        wait_until(lambda name=name: _established(kube, name), what=f"CRD {name} Established", timeout_s=timeout_s)


def _established(kube: Kube, name: str) -> bool:
    try:
        crd = kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
    except KubeError:
        return False
    return any(c["type"] == "Established" and c["status"] == "True" for c in (crd.get("status") or {}).get("conditions") or [])
