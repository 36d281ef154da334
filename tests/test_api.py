"""The InferenceAutoscaler API: generated CRD, examples, and bad resources rejected with the field named."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from autoscaler.api.crd import CRD_FILENAME, crd_manifest, crd_yaml
from autoscaler.api.durations import format_duration, parse_duration
from autoscaler.api.v1alpha1 import InferenceAutoscaler, parse_spec
from autoscaler.cli import main
from autoscaler.errors import InvalidSpecError
from tests.crdcheck import validate_object

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "manifests" / "examples").glob("*ias*.yaml"))


def _examples() -> list[dict[str, Any]]:
    docs = []
    for path in EXAMPLES:
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "InferenceAutoscaler"]
    return docs


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "crds" / CRD_FILENAME).read_text())


def test_crd_file_matches_models() -> None:
    on_disk = (ROOT / "crds" / CRD_FILENAME).read_text()
    assert on_disk == crd_yaml(), "crds/ drifted from the models: run `inference-autoscaler crd > crds/...`"


def test_crd_command_prints_the_generated_crd(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crd"]) == 0
    assert capsys.readouterr().out == crd_yaml()


def test_crd_is_a_valid_apiextensions_object_strictly() -> None:
    kubernetes_validate.validate(crd_manifest(), "1.31", strict=True)


def test_crd_schema_is_structural_and_documented(crd: dict[str, Any]) -> None:
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    undocumented: list[str] = []

    def walk(node: dict[str, Any], path: str) -> None:
        assert "type" in node, f"{path} has no type (structural schemas type every node)"
        for banned in ("$ref", "anyOf", "oneOf", "allOf", "const"):
            assert banned not in node, f"{path} uses {banned}"
        if "description" not in node and path not in {".metadata"}:
            undocumented.append(path)
        for name, sub in node.get("properties", {}).items():
            walk(sub, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")

    walk(schema, "")
    assert undocumented == []


def test_crd_names_columns_and_subresources(crd: dict[str, Any]) -> None:
    names = crd["spec"]["names"]
    assert names["shortNames"] == ["ias"] and "autoscaling" in names["categories"]
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns[:3] == ["Pool", "Prefill", "Decode"] and "Ready" in columns and columns[-1] == "Age"


@pytest.mark.parametrize("example", _examples(), ids=lambda d: d["metadata"]["name"])
def test_examples_are_valid(crd: dict[str, Any], example: dict[str, Any]) -> None:
    assert validate_object(crd, example) == []
    InferenceAutoscaler.model_validate(example)


def _base() -> dict[str, Any]:
    return copy.deepcopy(next(d for d in _examples() if d["metadata"]["name"] == "llama-70b"))


def _set(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    keys = path.split(".")
    node = obj
    for key in keys[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return obj


_DELETE = object()

# (case id, path to change, new value, field the error must name in the CRD check, in the model check)
BAD = [
    ("min-greater-than-max", "spec.roles.prefill.minReplicas", 20, "spec.roles.prefill", "spec.roles.prefill"),
    ("negative-slo", "spec.slo.ttft.target", "-1s", "spec.slo.ttft.target", "spec.slo.ttft.target"),
    ("zero-slo", "spec.slo.itl.target", "0s", "spec.slo.itl.target", "spec.slo.itl"),
    ("percentile-zero", "spec.slo.ttft.percentile", 0, "spec.slo.ttft.percentile", "spec.slo.ttft.percentile"),
    ("percentile-hundred", "spec.slo.itl.percentile", 100, "spec.slo.itl.percentile", "spec.slo.itl.percentile"),
    ("unknown-engine", "spec.metrics.engine", "tgi", "spec.metrics.engine", "spec.metrics.engine"),
    ("unknown-field", "spec.roles.decode.replicas", 3, "spec.roles.decode.replicas", "spec.roles.decode.replicas"),
    ("missing-pool", "spec.poolRef", _DELETE, "spec", "spec.poolRef"),
    ("mixed-roles", "spec.roles.both", {"maxReplicas": 3}, "spec.roles", "spec.roles"),
    ("only-prefill", "spec.roles.decode", _DELETE, "spec.roles", "spec.roles"),
    ("bad-duration", "spec.metrics.window", "1 minute", "spec.metrics.window", "spec.metrics.window"),
    ("bad-money", "spec.cost.pricePerGpuHour", "$4", "spec.cost.pricePerGpuHour", "spec.cost.pricePerGpuHour"),
    ("bad-actuation", "spec.actuation", "Yolo", "spec.actuation", "spec.actuation"),
    ("negative-min", "spec.roles.decode.minReplicas", -1, "spec.roles.decode.minReplicas", "spec.roles.decode.minReplicas"),
    ("short-interval", "spec.controlInterval", "500ms", "spec.controlInterval", "spec.controlInterval"),
    ("unknown-role-key", "spec.fallback", {"policy": "Static", "replicas": {"prefil": 2}}, "spec.fallback.replicas",
     "spec.fallback.replicas"),
]


@pytest.mark.parametrize(("case", "path", "value", "crd_field", "model_field"), BAD, ids=[b[0] for b in BAD])
def test_bad_resources_are_rejected_naming_the_field(
    crd: dict[str, Any], case: str, path: str, value: Any, crd_field: str, model_field: str
) -> None:
    obj = _set(_base(), path, value)
    problems = validate_object(crd, obj)
    assert problems, f"{case}: the CRD accepted it"
    assert any(field.startswith(crd_field) or (field == "spec" and crd_field == "spec") for field, _ in problems), problems
    with pytest.raises(InvalidSpecError) as caught:
        parse_spec(obj["spec"])
    fields = [field for field, _ in caught.value.problems]
    assert any(field.startswith(model_field) for field in fields), fields
    assert model_field in str(caught.value)


def test_min_max_message_is_explicit() -> None:
    with pytest.raises(InvalidSpecError, match=r"spec\.roles\.prefill: minReplicas \(20\) must be less than"):
        parse_spec(_set(_base(), "spec.roles.prefill.minReplicas", 20)["spec"])


def test_defaults_follow_the_hpa() -> None:
    spec = parse_spec(_base()["spec"])
    assert spec.behavior.up_window_s() == 0 and spec.behavior.down_window_s() == 300
    assert [(p.type, p.value) for p in spec.behavior.up_policies()] == [("Percent", 100), ("Pods", 4)]
    assert spec.behavior.scale_up.tolerance == pytest.approx(0.1)
    assert spec.control_interval_s == 15 and spec.slo.ttft.target_s == 1.0 and spec.slo.itl.quantile == 0.95


DURATIONS = [("500ms", 0.5), ("15s", 15), ("2m", 120), ("1h30m", 5400), ("1.5s", 1.5), ("250us", 0.00025)]


@pytest.mark.parametrize(("text", "seconds"), DURATIONS)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1", "-1s", "1 m", "1d", "s", "1.s"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(text)


@given(st.integers(min_value=1, max_value=10 * 86400))
def test_format_then_parse_round_trips_whole_seconds(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


def test_api_reference_is_current() -> None:
    from autoscaler.api.docgen import api_reference

    assert (ROOT / "docs" / "api.md").read_text() == api_reference(), "docs/api.md is stale: run `make docs`"
