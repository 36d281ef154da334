"""Locating the peers environment and talking to a worker process in it over a JSON-lines pipe."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import weakref
from pathlib import Path
from typing import IO, Any

from autoscaler.errors import InputError

__all__ = ["PeerWorker", "PeersUnavailable", "peers_python", "shared_worker"]

#: the environment variable that points at the peers environment's python instead of the default
PYTHON_ENV = "INFERENCE_AUTOSCALER_PEERS_PYTHON"


class PeersUnavailable(InputError):
    """The peers environment (``make peers``) is not installed, or a worker in it failed to start."""


def peers_python() -> Path:
    """The peers environment's python: ``$INFERENCE_AUTOSCALER_PEERS_PYTHON``, else ``.venv-peers`` in the
    working directory, else in the source checkout. :class:`PeersUnavailable` naming ``make peers`` when none
    exists."""
    override = os.environ.get(PYTHON_ENV)
    candidates = (
        [Path(override)]
        if override
        else [Path.cwd() / ".venv-peers/bin/python", Path(__file__).resolve().parents[3] / ".venv-peers/bin/python"]
    )
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise PeersUnavailable(
        "the peers environment is missing (looked for "
        + ", ".join(str(c) for c in candidates)
        + "): run `make peers` to install it",
        source="dynamo-planner",
    )


def _stop(proc: subprocess.Popen[str], log: IO[bytes]) -> None:
    """Close the pipe (the worker exits on end of input), then make sure it is gone."""
    try:
        if proc.stdin is not None and not proc.stdin.closed:
            proc.stdin.close()
        proc.wait(timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()
    finally:
        if proc.stdout is not None:
            proc.stdout.close()
        log.close()


class PeerWorker:
    """One worker process: ``python SCRIPT`` in the peers environment, one JSON request and reply a line.

    Its stderr (the peer's logs) goes to a temporary file whose tail is quoted when a request fails. The
    process ends on :meth:`close`, when this object is collected, or at interpreter exit.
    """

    def __init__(self, script: Path) -> None:
        python = peers_python()
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the worker; closed by _stop)
        try:
            self._proc = subprocess.Popen(
                [str(python), str(script)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._log,
                text=True,
                bufsize=1,
            )
        except OSError as err:
            self._log.close()
            raise PeersUnavailable(f"cannot start {python}: {err}; run `make peers`", source="dynamo-planner") from err
        self._finalizer = weakref.finalize(self, _stop, self._proc, self._log)

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one request and return its reply; :class:`PeersUnavailable` (with the worker's log) when the
        worker fails or dies."""
        proc = self._proc
        if proc.stdin is None or proc.stdout is None or proc.poll() is not None:
            raise PeersUnavailable(f"the peer worker is not running{self._tail()}", source="dynamo-planner")
        try:
            proc.stdin.write(json.dumps(message) + "\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
        except OSError as err:
            raise PeersUnavailable(f"the peer worker's pipe broke: {err}{self._tail()}", source="dynamo-planner") from err
        if not line:
            raise PeersUnavailable(f"the peer worker exited{self._tail()}", source="dynamo-planner")
        reply: dict[str, Any] = json.loads(line)
        if not reply.get("ok"):
            raise PeersUnavailable(
                f"the peer worker failed: {reply.get('error')}\n{reply.get('traceback', '')}{self._tail()}",
                source="dynamo-planner",
            )
        return reply

    def _tail(self, limit: int = 4000) -> str:
        try:
            self._log.flush()
            self._log.seek(0, os.SEEK_END)
            size = self._log.tell()
            self._log.seek(max(0, size - limit))
            text = self._log.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""
        return f"\n--- worker stderr (tail) ---\n{text}" if text else ""

    @property
    def alive(self) -> bool:
        """True while the process runs and has not been closed."""
        return self._finalizer.alive and self._proc.poll() is None

    def close(self) -> None:
        """Ask the worker to stop and wait for it (idempotent)."""
        if self._finalizer.alive and self._proc.poll() is None:
            with contextlib.suppress(PeersUnavailable):  # it is stopped below either way
                self.request({"op": "close"})
        self._finalizer()


_SHARED: dict[tuple[int, Path], PeerWorker] = {}


def shared_worker(script: Path) -> PeerWorker:
    """This process's worker for ``script``, started on first use and reused by later runs (its imports take
    ~20 s). A forked child gets its own: the parent's pipes are not its to use. Each worker stops when this
    process exits (its stdin closes: it exits on end of input) or on :meth:`PeerWorker.close`."""
    key = (os.getpid(), script)
    worker = _SHARED.get(key)
    if worker is None or not worker.alive:
        worker = _SHARED[key] = PeerWorker(script)
    return worker
