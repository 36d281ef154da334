"""Size limits of the product package: no module over 400 lines, no function over 80 lines.

    python scripts/check_sizes.py [PACKAGE_DIR ...]   (default: autoscaler)

A function's length runs from its ``def`` (decorators included) to its last line, nested functions
counted in their enclosing function. Modules and functions that were over the limits when the check was
introduced are listed in ``scripts/size_exceptions.txt`` with their size then: they may shrink, never grow,
and a new entry is never allowed (remove an entry once its module or function fits). Exits 1 listing every
breach.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
EXCEPTIONS = Path(__file__).with_name("size_exceptions.txt")


def known_exceptions() -> dict[str, int]:
    """``{"path" or "path::function": lines when the check was introduced}``."""
    out: dict[str, int] = {}
    if EXCEPTIONS.exists():
        for line in EXCEPTIONS.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                key, size = line.rsplit(maxsplit=1)
                out[key] = int(size)
    return out


def problems(path: Path, known: dict[str, int]) -> list[str]:
    """The limits ``path`` breaks (beyond its known exceptions), one message each."""
    text = path.read_text(encoding="utf-8")
    out = []
    lines = len(text.splitlines())
    if lines > max(MAX_MODULE_LINES, known.get(str(path), 0)):
        out.append(f"{path}: {lines} lines (limit {MAX_MODULE_LINES})")
    for node in ast.walk(ast.parse(text, filename=str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = (node.end_lineno or node.lineno) - start + 1
            if length > max(MAX_FUNCTION_LINES, known.get(f"{path}::{node.name}", 0)):
                out.append(f"{path}:{node.lineno}: {node.name} is {length} lines (limit {MAX_FUNCTION_LINES})")
    return out


def main(argv: list[str]) -> int:
    roots = [Path(a) for a in argv] or [Path("autoscaler")]
    known = known_exceptions()
    found = [msg for root in roots for path in sorted(root.rglob("*.py")) for msg in problems(path, known)]
    for msg in found:
        print(msg)
    if found:
        print(f"{len(found)} size limit(s) exceeded")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
