"""Bad input through the real command line and the real kube-apiserver (CRD schema validation, pruning).

* Trace files for the simulator (truncated, wrong columns, negative / non-monotonic timestamps, NaN tokens)
  through ``inference-autoscaler simulate --trace BAD --json out.json``: exit status 2, one line naming
  file:line and what was expected, no traceback, no output file.
* Custom resources: cross-namespace references are impossible (the schema has no namespace field anywhere a
  reference lives, and the API server refuses one), huge strings and lists are refused by the schema, and
  Unicode label values are accepted and reach PromQL escaped.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from autoscaler.adapters.promql import string_literal
from localcluster.client import KubeError
from tests.fixtures.controller import NS, ias

ROOT = Path(__file__).resolve().parents[2]
HEADER = "timestamp_s,input_tokens,output_tokens\n"

TRACES = {
    "truncated": (HEADER + "0,100,20\n1.5,200\n", ":3:"),
    "wrong-columns": ("time,prompt,completion\n0,100,20\n", ":1:"),
    "negative-time": (HEADER + "0,100,20\n-5,100,20\n", ":3:"),
    "non-monotonic": (HEADER + "0,100,20\n10,100,20\n4,100,20\n", ":4:"),
    "nan-tokens": (HEADER + "0,100,20\n1,nan,20\n", ":3:"),
    "inf-tokens": (HEADER + "0,100,20\n1,100,inf\n", ":3:"),
    "negative-tokens": (HEADER + "0,100,20\n1,-4,20\n", ":3:"),
    "binary": ("\x00\x01\x02garbage\n", ":1"),
    "empty": ("", ""),
}


@pytest.mark.parametrize("name", list(TRACES))
def test_bad_trace_through_the_cli(tmp_path: Path, name: str) -> None:
    text, where = TRACES[name]
    trace = tmp_path / f"{name}.csv"
    trace.write_text(text, encoding="utf-8", errors="surrogateescape")
    out = tmp_path / "out.json"
    proc = subprocess.run(
        [sys.executable, "-m", "autoscaler", "simulate", "--trace", str(trace), "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False,
    )
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    assert str(trace) in proc.stderr and where in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not out.exists() and not list(tmp_path.glob("out.json*")), "partial output left behind"


@pytest.mark.parametrize(
    "path, value",
    [
        (("poolRef", "namespace"), "other"),
        (("roles", "prefill", "scaleTargetRef", "namespace"), "other"),
        (("metrics", "prometheus", "namespace"), "other"),
    ],
)
@pytest.mark.asyncio
async def test_cross_namespace_references_are_refused(kube_server, path, value):
    kube_server.ensure_namespace(NS)
    obj = ias("x", "pool", explicit={"prefill": "p"})
    node = obj["spec"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(KubeError) as info:
        kube_server.kube.create(obj, field_validation="Strict")
    assert info.value.status == 400 and "unknown field" in str(info.value), info.value
    # With the default (Warn) the field is pruned: the stored object cannot point at another namespace.
    stored = kube_server.kube.create(obj)
    node = stored["spec"]
    for key in path[:-1]:
        node = node[key]
    assert path[-1] not in node


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda s: s["poolRef"].__setitem__("name", "a" * 100_000), "spec.poolRef.name"),
        (lambda s: s["metrics"].__setitem__("labelOverrides", {f"k{i}": "v" for i in range(10_000)}),
         "spec.metrics.labelOverrides"),
        (lambda s: s["cost"].__setitem__("allowedAccelerators", [{"name": "H100", "pricePerGpuHour": "1"}] * 1000),
         "spec.cost.allowedAccelerators"),
        (lambda s: s["roles"]["prefill"].__setitem__("maxReplicas", 10**12), "spec.roles.prefill.maxReplicas"),
    ],
    ids=["huge-name", "huge-map", "huge-list", "huge-int"],
)
@pytest.mark.asyncio
async def test_huge_values_are_refused_by_the_schema(kube_server, mutate, field):
    kube_server.ensure_namespace(NS)
    obj = ias("huge", "pool", cost={"pricePerGpuHour": "4.00"})
    mutate(obj["spec"])
    with pytest.raises(KubeError) as info:
        kube_server.kube.create(obj)
    assert info.value.status == 422 and field in str(info.value), str(info.value)[:500]


@pytest.mark.parametrize("value", ['naïve-ü', "模型", 'a"b\\c', "x\ny", "}{ or vector(1)"])
def test_unicode_and_hostile_label_values_are_escaped_for_promql(value: str) -> None:
    literal = string_literal(value)
    assert literal.startswith('"') and literal.endswith('"')
    inner = literal[1:-1]
    # no unescaped quote or raw newline can end the literal early
    i = 0
    while i < len(inner):
        if inner[i] == "\\":
            i += 2
            continue
        assert inner[i] not in '"\n', (value, literal)
        i += 1
