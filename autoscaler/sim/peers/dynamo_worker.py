"""The worker process behind the ``dynamo-planner`` policy: NVIDIA Dynamo's production planner, driven tick by
tick on a virtual clock through its offline-replay hook, fed over stdin/stdout with one JSON object a line.

It runs under the peers environment's python (``make peers``, ``.venv-peers``), never under the project's:
the planner pins pydantic <= 2.13.5. So it imports nothing from ``autoscaler`` and only the standard library
at module level. Protocol (one request line in, one reply line out):

- ``{"op": "init", "config": {...}, "capabilities": {"prefill": {...}, "decode": {...}},
  "prefill_fpms": [[prompt tokens, seconds], ...], "decode_fpms": [[batch, KV tokens, seconds], ...]}``
  → ``{"ok": true, "first_tick_s": s, "version": "..."}``. ``config`` is a ``PlannerConfig`` mapping, the
  capabilities are ``EngineCapabilities`` fields, and the FPMs are the profiler data its regression models are
  fitted to (one forward pass each, as ``dynamo.replay.planner`` builds them from its estimator).
- ``{"op": "tick", "result": {...}}`` → ``{"ok": true, "target_prefill": n | null, "target_decode": n | null,
  "next_tick_s": s | null, "reason": "..."}``; ``result`` is the snapshot the replay loop passes to
  ``ReplayPlannerAdapter.on_tick``.
- ``{"op": "close"}`` → ``{"ok": true}``, then the process exits.

Any failure is replied as ``{"ok": false, "error": "..."}`` (with the traceback) and the process exits 1.
The planner logs to stderr; stdout carries nothing but replies.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any, TextIO


def _fpms(prefill: list[list[float]], decode: list[list[float]]) -> tuple[list[Any], list[Any]]:
    """``ForwardPassMetrics`` for the prefill (one request of N prompt tokens) and decode (B requests holding
    K KV tokens) regression models."""
    from dynamo.common.forward_pass_metrics import ForwardPassMetrics, ScheduledRequestMetrics

    p = [
        ForwardPassMetrics(
            wall_time=float(s),
            scheduled_requests=ScheduledRequestMetrics(num_prefill_requests=1, sum_prefill_tokens=int(n)),
        )
        for n, s in prefill
    ]
    d = [
        ForwardPassMetrics(
            wall_time=float(s),
            scheduled_requests=ScheduledRequestMetrics(num_decode_requests=int(b), sum_decode_kv_tokens=int(k)),
        )
        for b, k, s in decode
    ]
    return p, d


def _init(msg: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    from importlib.metadata import version

    from dynamo.planner.config.planner_config import PlannerConfig
    from dynamo.planner.core.types import EngineCapabilities, WorkerCapabilities
    from dynamo.planner.offline.replay_adapter import create_replay_planner_adapter

    config = PlannerConfig.model_validate(msg["config"])
    caps = WorkerCapabilities(
        prefill=EngineCapabilities(**msg["capabilities"]["prefill"]),
        decode=EngineCapabilities(**msg["capabilities"]["decode"]),
    )
    adapter = create_replay_planner_adapter(config, capabilities=caps, capture_details=True)
    prefill, decode = _fpms(msg["prefill_fpms"], msg["decode_fpms"])
    adapter.install_benchmark_fpms(prefill_fpms=prefill, decode_fpms=decode)
    adapter.set_bootstrap_metadata(
        {"status": "installed", "prefill_fpm_count": len(prefill), "decode_fpm_count": len(decode)}
    )
    first = adapter.initial_tick_ms() / 1000.0
    return adapter, {"ok": True, "first_tick_s": first, "version": version("ai-dynamo")}


def _reason(adapter: Any) -> str:
    """What the planner said on its last tick: its throughput decision (prediction, engine capacity, reason
    per role), else its short-circuit reason; empty when the tick decided nothing."""
    ticks = getattr(adapter, "_ticks", None)
    if not ticks:
        return ""
    diag = ticks[-1]["effects"].get("diagnostics") or {}
    if diag.get("short_circuit_reason"):
        return str(diag["short_circuit_reason"])
    if diag.get("predicted_num_req") is None:
        return ""
    parts = [
        f"predicted {diag['predicted_num_req']:.0f} req, ISL {diag.get('predicted_isl') or 0:.0f}, "
        f"OSL {diag.get('predicted_osl') or 0:.0f}"
    ]
    for role in ("prefill", "decode"):
        rps = diag.get(f"engine_rps_{role}")
        why = diag.get(f"throughput_decision_reason_{role}")
        parts.append(f"{role}: {why or '-'}" + (f", {rps:.2f} req/s per engine" if rps else ""))
    return "; ".join(parts)


def _tick(adapter: Any, msg: dict[str, Any]) -> dict[str, Any]:
    decision = adapter.on_tick(msg["result"])
    # the details are only needed for the reason of the newest tick: keep memory flat over long runs
    reason = _reason(adapter)
    if getattr(adapter, "_ticks", None):
        del adapter._ticks[:-1]
    nxt = decision.get("next_tick_ms")
    return {
        "ok": True,
        "target_prefill": decision.get("target_prefill"),
        "target_decode": decision.get("target_decode"),
        "next_tick_s": None if nxt is None else nxt / 1000.0,
        "reason": reason,
    }


def serve(inp: TextIO, out: TextIO) -> int:
    """Answer requests from ``inp`` on ``out`` until ``close`` or end of input; the exit code."""
    adapter: Any = None
    try:
        for line in inp:
            if not line.strip():
                continue
            msg = json.loads(line)
            op = msg.get("op")
            if op == "init":
                if adapter is not None:
                    adapter.close()
                    adapter = None
                adapter, reply = _init(msg)
            elif op == "tick":
                if adapter is None:
                    raise RuntimeError("tick before init")
                reply = _tick(adapter, msg)
            elif op == "close":
                reply = {"ok": True}
            else:
                raise ValueError(f"unknown op {op!r}")
            out.write(json.dumps(reply) + "\n")
            out.flush()
            if op == "close":
                break
    except Exception as err:  # any failure is reported to the caller, which raises it
        out.write(json.dumps({"ok": False, "error": f"{type(err).__name__}: {err}",
                              "traceback": traceback.format_exc()}) + "\n")
        out.flush()
        return 1
    finally:
        if adapter is not None:
            adapter.close()
    return 0


def main() -> int:
    """Serve on the real stdout; everything else printed (the planner's logs, stray prints) goes to stderr."""
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    import logging

    logging.basicConfig(level=os.environ.get("DYNAMO_PLANNER_LOG", "WARNING"), stream=sys.stderr)
    return serve(sys.stdin, replies)


if __name__ == "__main__":
    sys.exit(main())
