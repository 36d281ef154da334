"""Child processes in their own process groups, logging to files, always stopped by the code that started them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A child process in its own process group, its output in ``<logdir>/<name>.log``; stopped by :meth:`stop`.

    Only processes started through this class are ever signalled, and only through their own process group.
    """

    def __init__(
        self, name: str, argv: list[str], logdir: Path, env: dict[str, str] | None = None, cwd: Path = ROOT,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.log_path = logdir / f"{name}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, cwd=cwd, env={**os.environ, **(env or {})},
            start_new_session=True, preexec_fn=preexec_fn,
        )

    def log_text(self) -> str:
        """Everything the process wrote so far."""
        return self.log_path.read_text(errors="replace")

    def tail(self, chars: int = 3000) -> str:
        """The end of the log, for error messages."""
        return self.log_text()[-chars:]

    async def wait_for_line(self, prefix: str, timeout_s: float) -> str:
        """The first log line starting with ``prefix``; fails when the process exits or time runs out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in self.log_text().splitlines():
                if line.startswith(prefix):
                    return line
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}")
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.name}: no {prefix!r} within {timeout_s}s:\n{self.tail()}")

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.popen.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the process group (SIGSTOP/SIGCONT to pause and resume it, for instance)."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def stop(self, grace_s: float = 10.0) -> int | None:
        """SIGTERM to the group (SIGCONT first, in case it was paused), SIGKILL after ``grace_s``; the exit code."""
        if self.popen.poll() is None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.popen.wait(10)
        # A SIGKILLed leader can leave children in its group: kill what is left of the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        if not self._log.closed:
            self._log.close()
        return self.popen.returncode


async def http_ready(
    url: str, timeout_s: float, proc: Proc | None = None, ssl_ctx: ssl.SSLContext | bool | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Poll ``url`` until it answers 200; fails early when ``proc`` exits."""
    deadline = time.monotonic() + timeout_s
    last = ""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(url, ssl=ssl_ctx if ssl_ctx is not None else True, headers=headers) as r:
                    if r.status == 200:
                        return
                    last = f"{r.status} {(await r.text())[:300]}"
            except (TimeoutError, aiohttp.ClientError, OSError) as err:
                last = repr(err)
            if proc is not None and not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} not ready within {timeout_s}s (last: {last})")
