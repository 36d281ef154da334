"""The image's build step, run here: scripts/install.sh builds the wheel and installs it into a fresh venv.

The Dockerfile runs the same script; here it installs into a temporary directory and the dependencies come from
the running interpreter's site-packages (``DEPS_FROM``), so the test needs no network when the interpreter can
build wheels by itself (setuptools with ``wheel``), and fetches only the build backend otherwise.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from autoscaler import __version__
from autoscaler.api.crd import crd_yaml

ROOT = Path(__file__).resolve().parents[1]


def _can_build_offline() -> bool:
    return importlib.util.find_spec("setuptools") is not None and importlib.util.find_spec("wheel") is not None


def _install(venv: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "DEPS_FROM": sysconfig.get_paths()["purelib"],
        "BUILD_ISOLATION": "0" if _can_build_offline() else "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    env.pop("PYTHONPATH", None)  # the source tree must not leak into the installed environment
    return subprocess.run(["sh", str(ROOT / "scripts" / "install.sh"), str(ROOT), str(venv)], capture_output=True,
                          text=True, timeout=300, env=env, check=False)


def test_built_wheel_installs_and_its_console_script_works(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    proc = _install(venv)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == f"inference-autoscaler {__version__}"
    assert not (venv / "bin" / "pip").exists(), "pip is removed from the runtime venv"

    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    script = str(venv / "bin" / "inference-autoscaler")
    crd = subprocess.run([script, "crd"], capture_output=True, text=True, timeout=60, cwd=tmp_path, env=clean,
                         check=False)
    assert crd.returncode == 0, crd.stderr
    assert crd.stdout == crd_yaml()
    # The code that ran is the wheel's copy, not the source tree.
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import autoscaler; print(autoscaler.__file__)"],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path, env=clean, check=False)
    assert where.stdout.strip().startswith(str(venv)), where.stdout + where.stderr
    # Bytecode was compiled at install time: a read-only root filesystem needs no writes at run time.
    assert list((venv / "lib").glob("python3*/site-packages/autoscaler/__pycache__/*.pyc"))


def test_install_refuses_to_overwrite_an_existing_directory(tmp_path: Path) -> None:
    (tmp_path / "venv").mkdir()
    proc = _install(tmp_path / "venv")
    assert proc.returncode == 2
    assert "already exists" in proc.stderr
