"""The install path on the real kube-apiserver: ``kubectl apply -k`` of the top-level kustomization, the base,
each overlay and a user's composition of every component, first with ``--dry-run=server`` (nothing stored),
then for real (every object stored, the controller's Pods admitted under the namespace's ``restricted`` Pod
Security level, a second apply changes nothing), and everything removed afterwards.

Only the pinned kubectl is used, for its built-in kustomize too. No kubelet stand-in runs here, so the
controller's Pods stay Pending and the external-metrics APIService never finds endpoints (the aggregator never
dials the Service).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from localcluster.binaries import find as find_binaries
from localcluster.client import Kube, wait_until
from localcluster.crds import PROJECT_CRD, crd_documents, install_crds
from localcluster.plane import ControlPlane
from tests.fixtures.cluster import kubectl
from tests.manifestcheck import KUSTOMIZATIONS, MANIFESTS

pytestmark = [pytest.mark.asyncio]

SYSTEM_NS = "inference-autoscaler-system"
PROMETHEUS_OPERATOR_CRDS = sorted((MANIFESTS.parent / "tests" / "data" / "crds").glob("monitoring.coreos.com_*.yaml"))
COMPOSED = "my-install"  # docs/getting-started.md: the base plus every component, in the user's own folder


def _installs() -> list[str]:
    return [*(str(p.relative_to(MANIFESTS.parent)) for p in KUSTOMIZATIONS), COMPOSED]


def _composed(tmp_path: Path) -> Path:
    """The kustomization docs/getting-started.md tells users to write to combine the components."""
    folder = tmp_path / COMPOSED
    folder.mkdir()
    up = os.path.relpath(MANIFESTS, folder)
    components = sorted(p.name for p in (MANIFESTS / "components").iterdir() if p.is_dir())
    folder.joinpath("kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [f"{up}/base"], "components": [f"{up}/components/{c}" for c in components],
    }))
    return folder


@pytest.fixture(scope="module")
def prometheus_operator_crds(admin: Kube) -> Iterator[None]:
    """The Prometheus Operator's CRDs (ServiceMonitor, PrometheusRule), which its overlay needs; removed after."""
    docs = crd_documents(tuple(PROMETHEUS_OPERATOR_CRDS))
    install_crds(admin, docs)
    yield
    for doc in docs:
        admin.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", doc["metadata"]["name"])


def _remove(kube: Kube, objs: list[dict[str, Any]]) -> None:
    """Delete what an install created, the APIService first (while it is unavailable the namespace controller
    cannot finish discovery); the project's CRD is the session's, so it is put back as the session installed it."""
    ordered = sorted(objs, key=lambda o: (o["kind"] != "APIService", o["kind"] == "Namespace"))
    for obj in ordered:
        if obj["kind"] == "CustomResourceDefinition":
            continue
        md = obj["metadata"]
        kube.delete(obj["apiVersion"], obj["kind"], md["name"], md.get("namespace"))
    wait_until(lambda: kube.get_or_none("v1", "Namespace", SYSTEM_NS) is None, what=f"namespace {SYSTEM_NS} gone",
               timeout_s=120)
    install_crds(kube, crd_documents((PROJECT_CRD,)))


async def _kubectl(kubeconfig: Path, *args: str) -> tuple[int, str, str]:
    """The pinned kubectl's exit code, stdout and stderr (a partly failed apply prints to both)."""
    proc = await asyncio.create_subprocess_exec(
        str(find_binaries().kubectl), "--kubeconfig", str(kubeconfig), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode or 0, out.decode(), err.decode()


def _version(obj: dict[str, Any]) -> tuple[str, str]:
    """What changes when an object's desired state does: its generation, or its resourceVersion if it has none
    (a generation ignores the status updates controllers make)."""
    md = obj["metadata"]
    return f"{obj['kind']}/{md['name']}", str(md.get("generation") or md["resourceVersion"])


def _stored(kube: Kube, obj: dict[str, Any]) -> dict[str, Any] | None:
    md = obj["metadata"]
    return kube.get_or_none(obj["apiVersion"], obj["kind"], md["name"], md.get("namespace"))


async def test_prometheus_operator_overlay_without_the_operator_names_the_missing_kinds(
    control_plane: ControlPlane, admin: Kube, tmp_path: Path
) -> None:
    """Without the operator's CRDs the server refuses only its kinds, and says which."""
    for doc in crd_documents(tuple(PROMETHEUS_OPERATOR_CRDS)):
        assert admin.get_or_none("apiextensions.k8s.io/v1", "CustomResourceDefinition", doc["metadata"]["name"]) is None
    kc = control_plane.kubeconfig(tmp_path / "kubeconfig")
    err = await kubectl(kc, "apply", "-k", str(MANIFESTS / "overlays" / "prometheus-operator"), "--dry-run=server",
                        check=False)
    assert 'no matches for kind "ServiceMonitor" in version "monitoring.coreos.com/v1"' in err, err
    assert 'no matches for kind "PrometheusRule" in version "monitoring.coreos.com/v1"' in err, err
    assert admin.get_or_none("v1", "Namespace", SYSTEM_NS) is None


@pytest.mark.parametrize("install", _installs())
async def test_install_is_accepted_by_the_server(
    install: str, control_plane: ControlPlane, admin: Kube, prometheus_operator_crds: None, tmp_path: Path
) -> None:
    folder = _composed(tmp_path) if install == COMPOSED else MANIFESTS.parent / install
    kc = control_plane.kubeconfig(tmp_path / "kubeconfig")
    objs = [d for d in yaml.safe_load_all(await kubectl(kc, "kustomize", str(folder))) if d]
    assert any(o["kind"] == "Deployment" for o in objs) and any(o["kind"] == "CustomResourceDefinition" for o in objs)
    assert admin.get_or_none("v1", "Namespace", SYSTEM_NS) is None, "a previous install was not removed"
    try:
        # A dry run creates nothing, not even the namespace: on a fresh cluster the objects in it are refused
        # for that reason alone, and every other object passes the server's admission.
        code, dry, err = await _kubectl(kc, "apply", "-k", str(folder), "--dry-run=server")
        in_ns = [o for o in objs if o["metadata"].get("namespace") == SYSTEM_NS]
        assert code == 1 and err.count(f'namespaces "{SYSTEM_NS}" not found') == len(in_ns), err
        assert dry.count("(server dry run)") == len(objs) - len(in_ns), dry
        assert admin.get_or_none("v1", "Namespace", SYSTEM_NS) is None  # dry run stored nothing
        # With the namespace there (kubectl apply -f manifests/base/namespace.yaml), the whole install passes.
        await kubectl(kc, "apply", "-f", str(MANIFESTS / "base" / "namespace.yaml"))
        dry = await kubectl(kc, "apply", "-k", str(folder), "--dry-run=server")
        assert dry.count("(server dry run)") == len(objs), dry
        assert admin.list_objects("apps/v1", "Deployment", SYSTEM_NS) == []

        out = await kubectl(kc, "apply", "-k", str(folder))
        assert len(out.splitlines()) == len(objs), out
        for obj in objs:
            stored = _stored(admin, obj)
            assert stored is not None, obj["metadata"]
            labels = obj["metadata"].get("labels") or {}  # (the server adds kubernetes.io/metadata.name to namespaces)
            assert labels.items() <= (stored["metadata"].get("labels") or {}).items(), obj["metadata"]
        # The ReplicaSet controller creates the Pods, which Pod Security admission checks against `restricted`.
        deployment = next(o for o in objs if o["kind"] == "Deployment")
        want = deployment["spec"]["replicas"]
        wait_until(lambda: len(admin.list_objects("v1", "Pod", SYSTEM_NS)) == want,
                   what=f"{want} controller Pods admitted", timeout_s=60)
        # A second apply changes nothing. kubectl says "configured" for the PodDisruptionBudget all the same:
        # policy/v1's selector has patchStrategy "replace", so its computed patch is never empty (a no-op on
        # the server: the generation stays).
        before = {_version(o) for o in (_stored(admin, obj) for obj in objs) if o}
        again = await kubectl(kc, "apply", "-k", str(folder))
        assert {_version(o) for o in (_stored(admin, obj) for obj in objs) if o} == before
        changed = [line for line in again.splitlines() if not line.endswith(" unchanged")]
        assert changed == ["poddisruptionbudget.policy/inference-autoscaler configured"], again
    finally:
        _remove(admin, objs)
