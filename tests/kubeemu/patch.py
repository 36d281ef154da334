"""PATCH bodies: RFC 6902 JSON patch, RFC 7386 merge patch, and a strategic-merge subset.

Strategic merge patch simplification (documented in docs/testing-apiserver.md): the real server knows the
merge key of every list from the Go struct tags of the built-in types. Here the merge key is chosen by the
*field name* of the list (``containers`` → ``name``, ``conditions`` → ``type``, ...), which is right for
every list a controller normally patches. Lists not in the table are replaced, as merge patch does.
Supported directives: ``$patch: delete|replace|merge`` on maps and list items,
``$deleteFromPrimitiveList/<f>``, ``$setElementOrder/<f>`` and ``$retainKeys`` (the last two
accepted and ignored).
"""

from __future__ import annotations

import json
from typing import Any

import jsonpatch

from .errors import ApiError, bad_request
from .jsonutil import clone

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

# list field name → merge key (from the patchMergeKey tags of k8s.io/api types)
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "envFrom": "",  # no merge key: replaced
    "ports": "containerPort",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "conditions": "type",
    "imagePullSecrets": "name",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
}
# primitive lists merged as sets (patchStrategy: merge on a []string)
SET_LISTS = {"finalizers"}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, anything else (lists too) replaces."""
    if not isinstance(patch, dict):
        return clone(patch)
    result = clone(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


def json_patch(target: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        # what apiserver reports when jsonpatch.DecodePatch gets a merge-style object (400 BadRequest)
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    try:
        return jsonpatch.apply_patch(target, ops, in_place=False)
    except jsonpatch.JsonPatchTestFailed as e:
        # The real server answers a failed "test" op with 422 and this reason.
        raise ApiError(
            422, "Invalid", f"the server rejected our request due to an error in our request: {e}"
        ) from e
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
        raise ApiError(
            422, "Invalid", f"the server rejected our request due to an error in our request: {e}"
        ) from e
    except (TypeError, KeyError, IndexError, ValueError) as e:
        raise bad_request(f"invalid JSON patch: {e}") from e


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        raise bad_request("strategic merge patch must be a JSON object")
    return _smp_map(clone(target) if isinstance(target, dict) else {}, patch)


def _smp_map(result: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: clone(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return {}
    for k, v in patch.items():
        if k in ("$patch", "$retainKeys") or k.startswith("$setElementOrder/"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            field = k.split("/", 1)[1]
            if isinstance(result.get(field), list) and isinstance(v, list):
                result[field] = [x for x in result[field] if x not in v]
            continue
        if v is None:
            result.pop(k, None)
        elif isinstance(v, dict):
            cur = result.get(k)
            if isinstance(v.get("$patch"), str) and v["$patch"] == "delete":
                result.pop(k, None)
            else:
                result[k] = _smp_map(clone(cur) if isinstance(cur, dict) else {}, v)
        elif isinstance(v, list):
            result[k] = _smp_list(k, result.get(k), v)
        else:
            result[k] = clone(v)
    return result


def _smp_list(field: str, cur: Any, patch: list[Any]) -> list[Any]:
    current = clone(cur) if isinstance(cur, list) else []
    if field in SET_LISTS:
        for x in patch:
            if x not in current:
                current.append(x)
        return current
    key = MERGE_KEYS.get(field)
    if not key:
        return [clone(x) for x in patch if not (isinstance(x, dict) and "$patch" in x)]
    if any(isinstance(x, dict) and x.get("$patch") == "replace" for x in patch):
        return [clone(x) for x in patch if not (isinstance(x, dict) and "$patch" in x)]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise bad_request(f"map: {item!r} does not contain declared merge key: {key}")
        idx = next(
            (i for i, c in enumerate(current) if isinstance(c, dict) and c.get(key) == item[key]), None
        )
        if item.get("$patch") == "delete":
            if idx is not None:
                current.pop(idx)
        elif idx is None:
            current.append({k: v for k, v in item.items() if k != "$patch"})
        else:
            current[idx] = _smp_map(current[idx], item)
    return current


def decode_body(raw: bytes, content_type: str) -> Any:
    """Parse a JSON (or, for apply patches, YAML) request body; malformed bodies are 400 as on the server."""
    try:
        if content_type == APPLY_PATCH or content_type.endswith("yaml"):
            import yaml

            return yaml.safe_load(raw.decode())
        return json.loads(raw.decode() or "null")
    except (ValueError, UnicodeDecodeError) as e:
        raise bad_request(f"error decoding patch: {e}") from e
    except Exception as e:
        raise bad_request(f"error decoding body: {e}") from e


def apply(target: dict[str, Any], body: Any, content_type: str) -> Any:
    if content_type == JSON_PATCH:
        return json_patch(target, body)
    if content_type in (MERGE_PATCH, APPLY_PATCH):
        if not isinstance(body, dict):
            raise bad_request("merge patch must be a JSON object")
        return merge_patch(target, body)
    if content_type == STRATEGIC_MERGE_PATCH:
        return strategic_merge_patch(target, body)
    raise AssertionError(content_type)
