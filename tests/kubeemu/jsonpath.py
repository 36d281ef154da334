"""The subset of Kubernetes JSONPath that printer columns and scale paths use.

Supports ``.a.b``, ``['a.b']``, ``[n]`` (negative too), ``[*]``, ``.*`` and filters
``[?(@.x.y=="v")]`` / ``!=`` / bare ``[?(@.x)]``; an optional ``{...}`` wrapper is accepted.
"""

from __future__ import annotations

import re
from typing import Any

_STEP = re.compile(
    r"""\.(?P<field>[A-Za-z0-9_\-$]+|\*)
      | \[(?P<quoted>'[^']*'|"[^"]*")\]
      | \[(?P<index>-?\d+|\*)\]
      | \[\?\(@(?P<fpath>(?:\.[A-Za-z0-9_\-]+)+)\s*
            (?:(?P<op>==|!=)\s*(?P<fval>'[^']*'|"[^"]*"|[^)\s]+))?\s*\)\]
    """,
    re.X,
)


def parse(path: str) -> list[tuple[str, Any]]:
    p = path.strip()
    if p.startswith("{") and p.endswith("}"):
        p = p[1:-1].strip()
    if p.startswith("$"):
        p = p[1:]
    if p and not p.startswith((".", "[")):
        p = "." + p
    steps: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(p):
        m = _STEP.match(p, pos)
        if not m:
            raise ValueError(f"unsupported JSONPath {path!r} at {p[pos:]!r}")
        if m.group("field") is not None:
            f = m.group("field")
            steps.append(("all", None) if f == "*" else ("field", f))
        elif m.group("quoted") is not None:
            steps.append(("field", m.group("quoted")[1:-1]))
        elif m.group("index") is not None:
            i = m.group("index")
            steps.append(("all", None) if i == "*" else ("index", int(i)))
        else:
            fval = m.group("fval")
            if fval is not None and fval[:1] in "'\"":
                fval = fval[1:-1]
            steps.append(("filter", (m.group("fpath")[1:].split("."), m.group("op"), fval)))
        pos = m.end()
    return steps


def _get(obj: Any, fields: list[str]) -> tuple[bool, Any]:
    cur = obj
    for f in fields:
        if not isinstance(cur, dict) or f not in cur:
            return False, None
        cur = cur[f]
    return True, cur


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def find(obj: Any, path: str) -> list[Any]:
    """All values the path selects (empty when nothing matches)."""
    results = [obj]
    for kind, arg in parse(path):
        nxt: list[Any] = []
        for cur in results:
            if kind == "field":
                if isinstance(cur, dict) and arg in cur:
                    nxt.append(cur[arg])
            elif kind == "index":
                if isinstance(cur, list) and -len(cur) <= arg < len(cur):
                    nxt.append(cur[arg])
            elif kind == "all":
                if isinstance(cur, list):
                    nxt.extend(cur)
                elif isinstance(cur, dict):
                    nxt.extend(cur.values())
            else:
                fields, op, val = arg
                items = cur if isinstance(cur, list) else []
                for item in items:
                    ok, v = _get(item, fields)
                    if (
                        (op is None and ok)
                        or (op == "==" and ok and _fmt(v) == val)
                        or (op == "!=" and ok and _fmt(v) != val)
                    ):
                        nxt.append(item)
        results = nxt
    return results


def get_path(obj: Any, path: str) -> Any:
    """First match or None (for scale replica paths)."""
    r = find(obj, path)
    return r[0] if r else None


def set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    """Set a plain ``.a.b.c`` path, creating maps on the way (scale ``specReplicasPath``)."""
    steps = parse(path)
    cur: Any = obj
    for i, (kind, arg) in enumerate(steps):
        if kind != "field":
            raise ValueError(f"cannot set through {path!r}")
        if i == len(steps) - 1:
            cur[arg] = value
        else:
            if not isinstance(cur.get(arg), dict):
                cur[arg] = {}
            cur = cur[arg]
