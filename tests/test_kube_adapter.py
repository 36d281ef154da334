"""Pure parts of the Kubernetes adapter: request building, merge-patch diffs, selectors, conditions."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.adapters.kube import (
    DEPLOYMENTS,
    LEADERWORKERSETS,
    MERGE_PATCH,
    PODS,
    ConflictError,
    GoneError,
    Informer,
    NotFoundError,
    Request,
    TemporaryError,
    collection_path,
    map_status,
    matches_selector,
    merge_patch_diff,
    object_path,
    pool_selector,
    scale_patch_request,
)
from autoscaler.controller.reconciler import build_conditions
from autoscaler.errors import PermanentError

_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=3))
_json = st.recursive(
    _json_leaf,
    lambda inner: st.dictionaries(st.sampled_from("abcd"), inner, max_size=4) | st.lists(inner, max_size=3),
    max_leaves=12,
)
_docs = st.dictionaries(st.sampled_from("abcdef"), _json, max_size=5)


def _apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 apply, as the API server does it."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _apply_merge_patch(result.get(key), value)
    return result


def _strip_nulls(doc: Any) -> Any:
    # Merge patch cannot express a stored null (null means delete), so compare documents without them.
    if isinstance(doc, dict):
        return {k: _strip_nulls(v) for k, v in doc.items() if v is not None}
    return doc


@settings(max_examples=300, deadline=None)
@given(_docs, _docs)
def test_merge_patch_diff_turns_old_into_new(old, new):
    old, new = _strip_nulls(old), _strip_nulls(new)
    patch = merge_patch_diff(old, new)
    assert _apply_merge_patch(old, patch) == new
    assert (patch == {}) == (old == new)


@pytest.mark.parametrize(
    ("rtype", "ns", "name", "sub", "path"),
    [
        (PODS, "a", None, None, "/api/v1/namespaces/a/pods"),
        (PODS, None, None, None, "/api/v1/pods"),
        (DEPLOYMENTS, "serving", "x", "scale", "/apis/apps/v1/namespaces/serving/deployments/x/scale"),
        (
            LEADERWORKERSETS,
            "s",
            "l",
            "scale",
            "/apis/leaderworkerset.x-k8s.io/v1/namespaces/s/leaderworkersets/l/scale",
        ),
    ],
)
def test_paths(rtype, ns, name, sub, path):
    got = collection_path(rtype, ns) if name is None else object_path(rtype, ns, name, sub)
    assert got == path


def test_scale_patch_is_a_merge_patch_for_every_kind():
    for rtype in (DEPLOYMENTS, LEADERWORKERSETS):
        req = scale_patch_request(rtype, "ns", "w", 7)
        assert (req.method, req.content_type, req.body) == ("PATCH", MERGE_PATCH, {"spec": {"replicas": 7}})


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (409, ConflictError),
        (404, NotFoundError),
        (410, GoneError),
        (429, TemporaryError),
        (500, TemporaryError),
        (503, TemporaryError),
        (400, PermanentError),
        (403, PermanentError),
        (415, PermanentError),
        (422, PermanentError),
    ],
)
def test_status_mapping(status, kind):
    err = map_status(Request("PATCH", "/x"), status, b'{"kind":"Status","message":"nope"}')
    assert type(err) is kind or (kind is TemporaryError and type(err) is TemporaryError)
    assert "PATCH /x" in str(err) and "nope" in str(err)


def test_pool_selector_v1_and_v1alpha2():
    assert pool_selector({"spec": {"selector": {"matchLabels": {"app": "m"}}}}) == {"app": "m"}
    assert pool_selector({"spec": {"selector": {"app": "m"}}}) == {"app": "m"}


_labels = st.dictionaries(st.sampled_from(["app", "role", "tier"]), st.sampled_from(["x", "y"]), max_size=3)


@settings(max_examples=100, deadline=None)
@given(st.lists(_labels, max_size=12), st.lists(st.tuples(st.integers(0, 11), _labels), max_size=6), _labels)
def test_informer_label_index_matches_a_scan(initial, relabels, selector):
    informer = Informer(transport=None, rtype=PODS)  # type: ignore[arg-type]  # cache only, never started
    for i, labels in enumerate(initial):
        informer._set(("ns", f"p{i}"), {"metadata": {"name": f"p{i}", "namespace": "ns", "labels": labels}})
    for i, labels in relabels:
        if i < len(initial):
            informer._set(
                ("ns", f"p{i}"), {"metadata": {"name": f"p{i}", "namespace": "ns", "labels": labels}}
            )
    if initial:
        informer._delete(("ns", "p0"))
    scanned = {
        o["metadata"]["name"]
        for o in informer.in_namespace("ns")
        if matches_selector(o["metadata"]["labels"], selector)
    }
    assert {o["metadata"]["name"] for o in informer.select("ns", selector)} == scanned


def test_condition_transition_time_kept_while_status_unchanged():
    first, changes = build_conditions([], {"Ready": ("True", "Actuating", "ok")}, 1, 1000.0)
    assert changes == [("Ready", ("True", "Actuating", "ok"), True)]
    again, changes = build_conditions(first, {"Ready": ("True", "Actuating", "still ok")}, 2, 2000.0)
    assert again[0]["lastTransitionTime"] == first[0]["lastTransitionTime"] and not changes
    assert again[0]["observedGeneration"] == 2
    flipped, changes = build_conditions(again, {"Ready": ("False", "InvalidSpec", "bad")}, 3, 3000.0)
    assert flipped[0]["lastTransitionTime"] != first[0]["lastTransitionTime"]
    assert changes == [("Ready", ("False", "InvalidSpec", "bad"), False)]
