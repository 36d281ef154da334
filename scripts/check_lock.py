"""Check that the hash-pinned lock files still cover pyproject.toml (run by ``make lint``).

``requirements/runtime.txt`` must pin every runtime dependency, and ``requirements/dev.txt`` every runtime, test
and dev dependency, at a version the requirement's specifier admits, each with at least one ``--hash``. This runs
offline: it does not re-resolve (a new release on PyPI must not break lint), it only catches a pyproject.toml edit
that was not followed by ``make lock``.

Exit status 0 when both files cover pyproject.toml, 1 with one line per problem otherwise.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def read_lock(path: Path) -> tuple[dict[str, Version], list[str]]:
    """The pins of one lock file (canonical name → version) and the names pinned without a hash."""
    pins: dict[str, Version] = {}
    unhashed: list[str] = []
    current: str | None = None
    for line in path.read_text().splitlines():
        match = PIN.match(line)
        if match:
            if current is not None:
                unhashed.append(current)
            current = canonicalize_name(match.group(1))
            pins[current] = Version(match.group(2))
            if "--hash=" in line:
                current = None
        elif current is not None and "--hash=sha256:" in line:
            current = None
    if current is not None:
        unhashed.append(current)
    return pins, unhashed


def requirements(project: dict[str, object], extras: list[str]) -> list[Requirement]:
    """The project's requirements plus those of ``extras``, self-references (``pkg[extra]``) expanded."""
    own = canonicalize_name(str(project["name"]))
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})  # type: ignore[assignment]
    todo = [Requirement(r) for r in project["dependencies"]]  # type: ignore[attr-defined]
    for extra in extras:
        for spec in optional.get(extra, []):
            req = Requirement(spec)
            if canonicalize_name(req.name) == own:
                todo.extend(requirements({**project, "dependencies": []}, sorted(req.extras)))
            else:
                todo.append(req)
    return todo


def problems(lock: Path, reqs: list[Requirement]) -> list[str]:
    """One message per requirement the lock file does not satisfy."""
    pins, unhashed = read_lock(lock)
    name = lock.relative_to(ROOT)
    found = [f"{name}: {pkg} is pinned without --hash" for pkg in unhashed]
    for req in reqs:
        if req.marker is not None and not req.marker.evaluate():
            continue
        pinned = pins.get(canonicalize_name(req.name))
        if pinned is None:
            found.append(f"{name}: {req.name} (pyproject.toml: {req}) is not pinned; run make lock")
        elif req.specifier and not req.specifier.contains(pinned, prereleases=True):
            found.append(f"{name}: {req.name}=={pinned} does not satisfy pyproject.toml's {req}; run make lock")
    return found


def main() -> int:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = problems(ROOT / "requirements/runtime.txt", requirements(project, []))
    found += problems(ROOT / "requirements/dev.txt", requirements(project, ["dev"]))
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
