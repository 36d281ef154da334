"""A real ``kubectl`` against the emulated API server: discovery, Table printing with the CRD's printer
columns, describe, create/apply/scale/patch/delete, and the standalone process mode."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
from pathlib import Path

import pytest

from tests.kubeemu import KubeEmulator

REPO_ROOT = str(Path(__file__).resolve().parents[1])

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed"),
]

IAS_YAML = """
apiVersion: autoscaler.inference.dev/v1alpha1
kind: InferenceAutoscaler
metadata: {name: llama, namespace: default}
spec:
  poolRef: {name: llama-pool}
  actuation: HPA
  roles:
    prefill: {minReplicas: 1, maxReplicas: 4}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: main, image: vllm}]}
"""


@pytest.fixture
def kube_server(kube_server_test_crds: KubeEmulator) -> KubeEmulator:
    """These fidelity tests pin the emulator's own test CRD, not the project's generated one."""
    return kube_server_test_crds


async def kubectl(kubeconfig: Path, *args: str, check: bool = True) -> tuple[int, str, str]:
    # asyncio subprocess: the server runs on this same event loop and must keep serving meanwhile
    proc = await asyncio.create_subprocess_exec(
        "kubectl",
        "--kubeconfig",
        str(kubeconfig),
        "--cache-dir",
        str(kubeconfig.parent / "kcache"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    code = proc.returncode or 0
    if check and code != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({code}): {err.decode()}")
    return code, out.decode(), err.decode()


async def test_kubectl_get_ias_printer_columns(kube_server: KubeEmulator, kubeconfig_path: Path) -> None:
    manifest = kubeconfig_path.parent / "m.yaml"
    manifest.write_text(IAS_YAML)
    _, out, _ = await kubectl(kubeconfig_path, "create", "-f", str(manifest))
    assert "inferenceautoscaler.autoscaler.inference.dev/llama created" in out
    kube_server.set_status(
        "autoscaler.inference.dev/v1alpha1",
        "InferenceAutoscaler",
        "llama",
        {
            "roles": {"prefill": {"current": 3}, "decode": {"current": 6}},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
        "default",
    )
    _, out, _ = await kubectl(kubeconfig_path, "get", "ias")
    header, row = out.strip().splitlines()
    assert header.split() == ["NAME", "POOL", "PREFILL", "DECODE", "READY", "AGE"]  # priority-1 column hidden
    assert row.split()[:5] == ["llama", "llama-pool", "3", "6", "True"]
    _, wide, _ = await kubectl(
        kubeconfig_path, "get", "inferenceautoscalers.autoscaler.inference.dev", "-o", "wide"
    )
    assert "ACTUATION" in wide and "HPA" in wide
    _, allns, _ = await kubectl(kubeconfig_path, "get", "ias", "-A")
    assert allns.split()[:2] == ["NAMESPACE", "NAME"] and "default" in allns
    # category "autoscaling" resolves through discovery
    _, cat, _ = await kubectl(kubeconfig_path, "get", "autoscaling")
    assert cat.splitlines()[1].split()[0] == "llama"
    _, js, _ = await kubectl(kubeconfig_path, "get", "ias", "llama", "-o", "json")
    assert json.loads(js)["status"]["roles"]["prefill"]["current"] == 3


async def test_kubectl_describe_custom_resource(kube_server: KubeEmulator, kubeconfig_path: Path) -> None:
    manifest = kubeconfig_path.parent / "m.yaml"
    manifest.write_text(IAS_YAML)
    await kubectl(kubeconfig_path, "apply", "-f", str(manifest))
    kube_server.create(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "ev1", "namespace": "default"},
            "involvedObject": {
                "apiVersion": "autoscaler.inference.dev/v1alpha1",
                "kind": "InferenceAutoscaler",
                "name": "llama",
                "namespace": "default",
                "uid": kube_server.get(
                    "autoscaler.inference.dev/v1alpha1", "InferenceAutoscaler", "llama", "default"
                )["metadata"]["uid"],
            },
            "reason": "ScaledUp",
            "message": "prefill 1 -> 2",
            "type": "Normal",
            "count": 1,
            "source": {"component": "inference-autoscaler"},
        }
    )
    _, out, _ = await kubectl(kubeconfig_path, "describe", "ias", "llama")
    assert "Name:         llama" in out and "Pool Ref:" in out and "Max Replicas:  4" in out
    assert "ScaledUp" in out and "prefill 1 -> 2" in out  # events found via the involvedObject field selector


async def test_kubectl_apply_scale_patch_delete(kube_server: KubeEmulator, kubeconfig_path: Path) -> None:
    manifest = kubeconfig_path.parent / "m.yaml"
    manifest.write_text(IAS_YAML)
    await kubectl(kubeconfig_path, "apply", "-f", str(manifest))
    _, out, _ = await kubectl(kubeconfig_path, "apply", "-f", str(manifest))
    assert "unchanged" in out
    await kubectl(kubeconfig_path, "scale", "deployment/web", "--replicas=4")
    assert kube_server.get("apps/v1", "Deployment", "web", "default")["spec"]["replicas"] == 4
    await kubectl(
        kubeconfig_path, "patch", "ias", "llama", "--type=merge", "-p", '{"spec":{"actuation":"DryRun"}}'
    )
    # kubectl's default patch type is strategic merge, which the real server refuses for custom resources
    code, _, err = await kubectl(
        kubeconfig_path, "patch", "ias", "llama", "-p", '{"spec":{"actuation":"x"}}', check=False
    )
    assert code != 0 and "application/strategic-merge-patch+json is not supported" in err
    assert "accepted media types include: application/json-patch+json, application/merge-patch+json" in err
    code, _, err = await kubectl(
        kubeconfig_path,
        "patch",
        "ias",
        "llama",
        "--type=merge",
        "-p",
        '{"spec":{"actuation":"x"}}',
        check=False,
    )
    assert code != 0 and 'spec.actuation: Unsupported value: "x"' in err
    code, _, err = await kubectl(kubeconfig_path, "apply", "--server-side", "-f", str(manifest), check=False)
    assert code == 0, err
    code, _, err = await kubectl(
        kubeconfig_path,
        "patch",
        "ias",
        "llama",
        "--type=merge",
        "-p",
        '{"spec":{"roles":{"prefill":{"minReplicas":9,"maxReplicas":2}}}}',
        check=False,
    )
    assert code != 0 and "spec.roles.prefill" in err and "minReplicas must be less than or equal" in err
    await kubectl(kubeconfig_path, "delete", "-f", str(manifest))
    _, out, err = await kubectl(kubeconfig_path, "get", "ias,deploy")
    assert "No resources found" in out + err


async def test_kubectl_get_pods_and_watch(kube_server: KubeEmulator, kubeconfig_path: Path) -> None:
    kube_server.workloads.enable()
    manifest = kubeconfig_path.parent / "m.yaml"
    manifest.write_text(IAS_YAML)
    await kubectl(kubeconfig_path, "apply", "-f", str(manifest))
    await kube_server.workloads.wait_ready("Deployment", "default", "web")
    _, out, _ = await kubectl(kubeconfig_path, "get", "deploy,pods")
    assert "deployment.apps/web" in out and "1/1" in out and "Running" in out
    _, out, _ = await kubectl(kubeconfig_path, "get", "pods", "-w", "--request-timeout=2s", check=False)
    assert "web-" in out


async def test_standalone_process(tmp_path: Path) -> None:
    kc = tmp_path / "kubeconfig"
    env = {**os.environ, "PYTHONPATH": REPO_ROOT}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.kubeemu",
        "--port",
        "0",
        "--kubeconfig",
        str(kc),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert line.startswith("kubeemu listening on http://127.0.0.1:")
        _, out, _ = await kubectl(kc, "get", "ns")
        assert "default" in out and "kube-system" in out
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 10)
    assert code == 0
