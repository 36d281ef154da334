"""The pinned ``kubectl`` against the real kube-apiserver with the project's CRD: ``get`` printer columns filled
from a status the controller wrote, ``describe`` with its conditions and Events, ``explain`` from the OpenAPI
schema the server publishes, and the errors a user sees from ``apply`` and ``patch``.

The InferenceAutoscaler here is the getting-started example (``manifests/examples/sim-pool.yaml`` and
``sim-ias.yaml``), sized by the controller with its production policy; the outputs these tests print (``-rP``)
are the samples in docs/getting-started.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml

from autoscaler.controller.command import ProfilePolicy
from tests.fixtures.cluster import TestCluster, kubectl
from tests.fixtures.controller import FakeMetrics, condition, eventually, ias_status, metrics_obs

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("no_leaked_tasks")]

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"
SIM = "sim"
IAS = "sim-llama"


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d]


def table(out: str) -> list[dict[str, str]]:
    """Rows of a ``kubectl get`` table keyed by column header, sliced at the header's column offsets (cells
    may be empty, so splitting on whitespace would shift them)."""
    header, *rows = out.rstrip("\n").splitlines()
    starts = [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 1] == " ")]
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    names = [header[a:b].strip() for a, b in bounds]
    return [{n: row[a:b].strip() for n, (a, b) in zip(names, bounds, strict=True)} for row in rows]


# What Prometheus would report for the simulator fleet: lightly loaded, then more than one replica can serve.
LIGHT = replace(metrics_obs(0.0, ttft=0.21, itl=0.012, kv=0.03), running=2.0, arrival_rate=0.4,
                prompt_tokens_rate=60.0, generation_tokens_rate=26.0)
HEAVY = replace(metrics_obs(40.0, ttft=1.8, itl=0.045, kv=0.71), running=8.0, arrival_rate=6.0,
                prompt_tokens_rate=900.0, generation_tokens_rate=380.0)


@dataclass
class SimLlama:
    """The example fleet under the controller: the metrics it is fed, and the status it first wrote."""

    metrics: FakeMetrics
    status: dict[str, Any]


@pytest_asyncio.fixture
async def sim_llama(kube_server: TestCluster, make_controller: Any) -> SimLlama:
    """The getting-started example on the real server, decided on by the controller (production policy, a
    lightly loaded fleet), once the status it wrote says Ready."""
    kube_server.ensure_namespace(SIM)
    for doc in _docs("sim-pool.yaml") + _docs("sim-ias.yaml"):
        if doc["kind"] != "Namespace":
            kube_server.create(doc)
    metrics = FakeMetrics()
    metrics.set(f"{SIM}/{IAS}", both=LIGHT)
    await make_controller(ProfilePolicy(), metrics)
    await eventually(lambda: (condition(kube_server, IAS, "Ready", SIM) or {}).get("status") == "True", within=30)
    status = await eventually(lambda: (s := ias_status(kube_server, IAS, SIM)).get("summary") and s)
    return SimLlama(metrics, status)


async def test_get_shows_the_status_the_controller_wrote(sim_llama: SimLlama, kubeconfig_path: Path) -> None:
    status = sim_llama.status
    out = await kubectl(kubeconfig_path, "get", "ias", "-n", SIM)
    print(f"$ kubectl get ias -n {SIM}\n{out}")
    assert out.splitlines()[0].split() == [
        "NAME", "POOL", "PREFILL", "DECODE", "TTFT", "QUEUE", "KV", "$/H", "READY", "AGE"
    ]  # Reason has priority 1: only with -o wide
    (row,) = table(out)
    summary = status["summary"]
    assert row["NAME"] == IAS and row["POOL"] == IAS
    assert row["PREFILL"] == ""  # an aggregated fleet has no prefill role; DECODE shows `both`
    assert row["DECODE"] == summary["decode"] == f"{status['roles']['both']['current']}→" \
        f"{status['roles']['both']['desired']}"
    assert row["TTFT"] == summary["ttft"] == "210ms/500ms"
    assert (row["QUEUE"], row["KV"]) == (summary["queue"], summary["kvCache"]) == ("0", "3%")
    assert row["$/H"] == status["costPerHour"] and float(row["$/H"]) > 0
    assert row["READY"] == "True" and row["AGE"].endswith("s")

    wide = await kubectl(kubeconfig_path, "get", "inferenceautoscalers.autoscaler.inference.dev", "-n", SIM,
                         "-o", "wide")
    print(f"$ kubectl get ias -n {SIM} -o wide\n{wide}")
    (wide_row,) = table(wide)
    assert wide_row["REASON"] == status["lastDecision"]["reason"] != ""

    everywhere = table(await kubectl(kubeconfig_path, "get", "ias", "-A"))
    assert [(r["NAMESPACE"], r["NAME"]) for r in everywhere] == [(SIM, IAS)]
    # The CRD's category: `kubectl get autoscaling` lists InferenceAutoscalers with the HPAs.
    by_category = table(await kubectl(kubeconfig_path, "get", "autoscaling", "-n", SIM))
    assert [r["NAME"] for r in by_category] == [IAS]


async def test_describe_shows_spec_conditions_and_events(
    kube_server: TestCluster, sim_llama: SimLlama, kubeconfig_path: Path
) -> None:
    sim_llama.metrics.set(f"{SIM}/{IAS}", both=HEAVY)  # the next decision (one control interval on) scales up
    status = await eventually(
        lambda: (s := ias_status(kube_server, IAS, SIM))["roles"]["both"]["desired"] > 1 and s, within=40
    )
    events = await eventually(
        lambda: [e for e in kube_server.list_objects("events.k8s.io/v1", "Event", SIM)
                 if (e["regarding"]["kind"], e["regarding"]["name"]) == ("InferenceAutoscaler", IAS)]
    )
    out = await kubectl(kubeconfig_path, "describe", "ias", "-n", SIM, IAS)
    print(f"$ kubectl describe ias -n {SIM} {IAS}\n{out}")
    assert out.startswith(f"Name:         {IAS}\nNamespace:    {SIM}\n")
    assert "API Version:  autoscaler.inference.dev/v1alpha1\nKind:         InferenceAutoscaler\n" in out
    assert re.search(r"\n  Pool Ref:\n    Group: +inference.networking.k8s.io\n    Name: +sim-llama\n", out)
    assert re.search(r"\n    Both:\n      Gpus Per Replica: +1\n      Max Replicas: +6\n      Min Replicas: +1\n", out)
    for c in status["conditions"]:  # every condition the controller wrote, with its reason
        assert re.search(rf"\n    Reason: +{c['reason']}\n    Status: +{c['status']}\n    Type: +{c['type']}\n", out), c
    assert re.search(rf"\n  Last Decision:\n.*\n    Reason: +{status['lastDecision']['reason']}\n", out)
    # Events the controller recorded through events.k8s.io/v1, which describe reads back as core/v1 Events.
    assert re.search(r"\nEvents:\n  Type +Reason +Age +From +Message\n", out)
    for e in events:
        assert f"  {e['type']}  " in out and f"  {e['reason']}  " in out and e["note"][:40] in out, e


async def test_explain_reads_the_published_schema(kube_server: TestCluster, kubeconfig_path: Path) -> None:
    slo = await kubectl(kubeconfig_path, "explain", "inferenceautoscaler.spec.slo")
    print(f"$ kubectl explain inferenceautoscaler.spec.slo\n{slo}")
    assert slo.startswith(
        "GROUP:      autoscaler.inference.dev\nKIND:       InferenceAutoscaler\nVERSION:    v1alpha1\n\n"
        "FIELD: slo <Object>\n\n\nDESCRIPTION:\n    Latency objectives to keep.\n    \nFIELDS:\n"
    )
    assert "  ttft\t<Object> -required-\n    Time to first token (queueing + prefill + KV transfer).\n" in slo
    assert "  itl\t<Object> -required-\n" in slo and "  attainment\t<number>\n" in slo

    percentile = await kubectl(kubeconfig_path, "explain", "ias.spec.slo.ttft.percentile")
    print(f"$ kubectl explain ias.spec.slo.ttft.percentile\n{percentile}")
    assert "FIELD: percentile <number>\n" in percentile
    assert "Percentile of the latency distribution, strictly between 0 and 100. Default 95." in " ".join(
        percentile.split())  # kubectl wraps descriptions at 80 columns

    role = await kubectl(kubeconfig_path, "explain", "ias.spec.roles.prefill")
    assert "FIELD: prefill <Object>\n" in role
    assert "  maxReplicas\t<integer> -required-\n    Upper bound on replicas. Required; must be ≥ minReplicas.\n" in role
    assert "  scaleTargetRef\t<Object>\n" in role


IAS_YAML = """\
apiVersion: autoscaler.inference.dev/v1alpha1
kind: InferenceAutoscaler
metadata: {name: llama, namespace: serving}
spec:
  poolRef: {name: llama-pool}
  actuation: HPA
  roles:
    prefill: {minReplicas: 1, maxReplicas: 4}
    decode: {minReplicas: 1, maxReplicas: 8}
  slo:
    ttft: {target: 1s}
    itl: {target: 100ms}
  metrics:
    prometheus: {url: "http://prometheus.monitoring:9090"}
"""


async def test_apply_and_patch_errors_a_user_sees(kube_server: TestCluster, kubeconfig_path: Path) -> None:
    manifest = kubeconfig_path.parent / "llama.yaml"
    manifest.write_text(IAS_YAML)
    assert "inferenceautoscaler.autoscaler.inference.dev/llama created" in await kubectl(
        kubeconfig_path, "apply", "-f", str(manifest))
    assert "unchanged" in await kubectl(kubeconfig_path, "apply", "-f", str(manifest))
    stored = kube_server.get("autoscaler.inference.dev/v1alpha1", "InferenceAutoscaler", "llama", "serving")
    assert stored["spec"]["metrics"]["engine"] == "vllm"  # the schema's defaults, applied by the server

    # kubectl's default patch type is strategic merge, which the server refuses for custom resources.
    err = await kubectl(kubeconfig_path, "patch", "ias", "llama", "-n", "serving", "-p",
                        '{"spec":{"actuation":"DryRun"}}', check=False)
    assert "application/strategic-merge-patch+json is not supported" in err, err
    await kubectl(kubeconfig_path, "patch", "ias", "llama", "-n", "serving", "--type=merge", "-p",
                  '{"spec":{"actuation":"DryRun"}}')
    stored = kube_server.get("autoscaler.inference.dev/v1alpha1", "InferenceAutoscaler", "llama", "serving")
    assert stored["spec"]["actuation"] == "DryRun"

    err = await kubectl(kubeconfig_path, "patch", "ias", "llama", "-n", "serving", "--type=merge", "-p",
                        '{"spec":{"actuation":"x"}}', check=False)
    assert 'spec.actuation: Unsupported value: "x": supported values: "Direct", "HPA", "DryRun"' in err, err
    err = await kubectl(kubeconfig_path, "patch", "ias", "llama", "-n", "serving", "--type=merge", "-p",
                        '{"spec":{"roles":{"prefill":{"minReplicas":9}}}}', check=False)
    assert 'spec.roles.prefill: Invalid value: minReplicas must be less than or equal to maxReplicas' in err, err
    # Server-side apply of the original manifest conflicts with the merge patch's field manager over actuation.
    err = await kubectl(kubeconfig_path, "apply", "--server-side", "-f", str(manifest), check=False)
    assert 'conflict with "kubectl-patch"' in err and ".spec.actuation" in err, err
    assert "serverside-applied" in await kubectl(kubeconfig_path, "apply", "--server-side", "--force-conflicts",
                                                 "-f", str(manifest))
    stored = kube_server.get("autoscaler.inference.dev/v1alpha1", "InferenceAutoscaler", "llama", "serving")
    assert stored["spec"]["actuation"] == "HPA"
    await kubectl(kubeconfig_path, "delete", "-f", str(manifest))
    assert kube_server.kube.get_or_none("autoscaler.inference.dev/v1alpha1", "InferenceAutoscaler", "llama",
                                        "serving") is None
