"""Load benchmark of the external metrics API: metric GETs over TLS on loopback.

The server runs in this process; the load generator runs in a separate process (aiohttp client, keep-alive,
one connection per concurrent client) so the two do not share an event loop. For each concurrency level
(1, 16, 128) it runs ``--runs`` timed runs of ``--seconds`` each and prints the median p50, p99 latency (ms)
and requests/s across runs. Authentication is an x509 client certificate checked on every request; the
authorizer allows every authenticated user (a SubjectAccessReview answer is cached, so in a cluster the
steady state is the same).

    PYTHONPATH=. python bench/metrics_api_load.py [--runs 5] [--seconds 2]

Floor: p99 <= 20 ms at 16 clients (exit status 1 when missed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

PATH = (
    "/apis/external.metrics.k8s.io/v1beta1/namespaces/serving/inference_autoscaler_desired_replicas"
    "?labelSelector=inferenceautoscaler%3Dllama-7%2Crole%3Dprefill"
)


async def client_run(port: int, ca: str, cert: str, key: str, concurrency: int, seconds: float) -> dict[str, float]:
    import aiohttp

    ctx = ssl.create_default_context(cafile=ca)
    ctx.load_cert_chain(cert, key)
    url = f"https://127.0.0.1:{port}{PATH}"
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(ssl=ctx, limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> float:
            t0 = time.perf_counter()
            async with session.get(url) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}")
            return time.perf_counter() - t0

        await asyncio.gather(*(one() for _ in range(concurrency * 2)))  # warm up: handshakes, caches
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                latencies.append(await one())

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "rps": len(latencies) / elapsed,
    }


async def serve_and_measure(runs: int, seconds: float, levels: list[int]) -> dict[int, dict[str, float]]:
    from autoscaler.adapters.apiserver_auth import AllowAuthenticated, AuthenticationConfig
    from autoscaler.adapters.board import MemoryDecisionBoard
    from autoscaler.adapters.metrics_api import MetricsAPIServer
    from tests.fixtures.decisions import make_record
    from tests.fixtures.pki import make_pki

    with tempfile.TemporaryDirectory() as tmp:
        pki = make_pki(Path(tmp))
        board = MemoryDecisionBoard()
        now = time.time()
        for i in range(50):  # a realistic namespace: 50 InferenceAutoscalers, 2 roles each
            board.publish(make_record(f"llama-{i}", time=now))
        srv = MetricsAPIServer.create(
            board, cert_file=str(pki.serving.cert), key_file=str(pki.serving.key),
            auth_config=AuthenticationConfig.from_files(client_ca_file=pki.client_ca.path),
            authorizer=AllowAuthenticated(), host="127.0.0.1", port=0, max_connections=4096,
        )
        results: dict[int, dict[str, float]] = {}
        async with srv:
            for c in levels:
                per_run = []
                for _ in range(runs):
                    proc = await asyncio.create_subprocess_exec(
                        sys.executable, __file__, "--client", str(srv.port), str(pki.serving_ca.path),
                        str(pki.alice.cert), str(pki.alice.key), str(c), str(seconds),
                        stdout=asyncio.subprocess.PIPE,
                    )
                    out, _ = await proc.communicate()
                    if proc.returncode != 0:
                        raise SystemExit(f"client process failed at concurrency {c}")
                    per_run.append(json.loads(out))
                results[c] = {k: statistics.median(r[k] for r in per_run) for k in ("p50_ms", "p99_ms", "rps")}
                print(f"clients={c:4d}  p50={results[c]['p50_ms']:7.2f} ms  p99={results[c]['p99_ms']:7.2f} ms  "
                      f"{results[c]['rps']:8.0f} req/s  (median of {runs} runs of {seconds:g} s)", flush=True)
        return results


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        port, ca, cert, key, conc, secs = sys.argv[2:8]
        print(json.dumps(asyncio.run(client_run(int(port), ca, cert, key, int(conc), float(secs)))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per concurrency level (median reported)")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each timed run, seconds")
    parser.add_argument("--levels", default="1,16,128", help="comma-separated concurrency levels")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    results = asyncio.run(serve_and_measure(args.runs, args.seconds, levels))
    if 16 in results and results[16]["p99_ms"] > 20.0:
        print(f"FLOOR MISSED: p99 at 16 clients is {results[16]['p99_ms']:.2f} ms > 20 ms")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
