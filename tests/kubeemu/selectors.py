"""Label and field selectors with the real server's syntax and semantics.

Label selector grammar (k8s.io/apimachinery/pkg/labels): comma-separated requirements, each one of
``key``, ``!key``, ``key=v``, ``key==v``, ``key!=v``, ``key in (a,b)``, ``key notin (a,b)``, ``key>n``,
``key<n``. ``!=`` and ``notin`` also match objects that lack the key, as on the real server.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import bad_request

_TOKEN = re.compile(r"\s*(==|!=|=|!|\(|\)|,|<|>|[^\s,()=!<>]+)")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # exists, !, =, !=, in, notin, gt, lt
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if self.op in ("gt", "lt"):
            if not present:
                return False
            try:
                v = int(str(value))
            except ValueError:
                return False
            bound = int(self.values[0])
            return v > bound if self.op == "gt" else v < bound
        raise AssertionError(self.op)


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise bad_request(f"unable to parse requirement: unexpected character at {pos} in {text!r}")
        out.append(m.group(1))
        pos = m.end()
    return out


_KEY = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _check_key(key: str) -> str:
    if not _KEY.match(key) or len(key.split("/")[-1]) > 63:
        raise bad_request(f"unable to parse requirement: invalid label key {key!r}")
    return key


def _check_value(value: str) -> str:
    if not _VALUE.match(value) or len(value) > 63:
        raise bad_request(f"unable to parse requirement: invalid label value: {value!r}")
    return value


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse a label selector string; raise 400 BadRequest like the real server on syntax errors."""
    if not text or not text.strip():
        return []
    toks = _tokens(text)
    reqs: list[Requirement] = []
    i = 0

    def need(cond: bool, what: str) -> None:
        if not cond:
            raise bad_request(f"unable to parse requirement: {what} in label selector {text!r}")

    while i < len(toks):
        if toks[i] == "!":
            need(i + 1 < len(toks), "missing key after '!'")
            reqs.append(Requirement(_check_key(toks[i + 1]), "!"))
            i += 2
        else:
            key = _check_key(toks[i])
            i += 1
            if i >= len(toks) or toks[i] == ",":
                reqs.append(Requirement(key, "exists"))
            else:
                op = toks[i]
                i += 1
                if op in ("=", "==", "!="):
                    need(i < len(toks) and toks[i] not in (",", "(", ")"), f"missing value after {op}")
                    # A bare "key=" (empty value) is legal: the value is "".
                    if toks[i] in (",",):
                        val = ""
                    else:
                        val = _check_value(toks[i])
                        i += 1
                    reqs.append(Requirement(key, "!=" if op == "!=" else "=", (val,)))
                elif op in ("in", "notin"):
                    need(i < len(toks) and toks[i] == "(", "expected '('")
                    i += 1
                    vals: list[str] = []
                    while i < len(toks) and toks[i] != ")":
                        if toks[i] != ",":
                            vals.append(_check_value(toks[i]))
                        i += 1
                    need(i < len(toks), "expected ')'")
                    i += 1
                    reqs.append(Requirement(key, op, tuple(vals)))
                elif op in (">", "<"):
                    need(i < len(toks) and toks[i].lstrip("-").isdigit(), "expected an integer")
                    reqs.append(Requirement(key, "gt" if op == ">" else "lt", (toks[i],)))
                    i += 1
                else:
                    need(False, f"unexpected {op!r}")
        if i < len(toks):
            need(toks[i] == ",", f"expected ',' but got {toks[i]!r}")
            i += 1
    return reqs


def match_labels(reqs: list[Requirement], labels: Mapping[str, str] | None) -> bool:
    labels = labels or {}
    return all(r.matches(labels) for r in reqs)


def label_selector_to_string(selector: Mapping[str, Any] | None) -> str:
    """metav1.LabelSelector (matchLabels + matchExpressions) → selector string, as Scale.status.selector."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op = expr.get("operator")
        key = expr.get("key")
        values = ",".join(sorted(expr.get("values") or []))
        if op == "In":
            parts.append(f"{key} in ({values})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


# ---- field selectors -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldRequirement:
    path: str
    op: str  # "=" or "!="
    value: str


def _unescape(v: str) -> str:
    return re.sub(r"\\(.)", r"\1", v)


def parse_field_selector(
    text: str | None, allowed: Callable[[str], bool], custom: bool
) -> list[FieldRequirement]:
    """Parse ``a=b,c!=d``; unsupported field paths are a 400 as on the real server."""
    if not text or not text.strip():
        return []
    out: list[FieldRequirement] = []
    for part in re.split(r"(?<!\\),", text):
        part = part.strip()
        if not part:
            continue
        m = re.match(r"^([^=!]+?)\s*(==|!=|=)\s*(.*)$", part)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        path, op, value = m.group(1).strip(), m.group(2), _unescape(m.group(3))
        if not allowed(path):
            if custom:
                raise bad_request(
                    f'"{path}" is not a known field selector: only "metadata.name", "metadata.namespace"'
                )
            raise bad_request(f"field label not supported: {path}")
        out.append(FieldRequirement(path, "!=" if op == "!=" else "=", value))
    return out


def field_value(obj: Mapping[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def match_fields(reqs: list[FieldRequirement], obj: Mapping[str, Any]) -> bool:
    for r in reqs:
        v = field_value(obj, r.path)
        if (v == r.value) != (r.op == "="):
            return False
    return True
