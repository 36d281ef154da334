"""``python -m tests.kubeemu --port N --kubeconfig PATH [--crd FILE ...]``: run the emulator standalone.

Stops cleanly on SIGTERM/SIGINT. Prints ``kubeemu listening on URL`` once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from .server import KubeEmulator, default_crd_files


async def _main(args: argparse.Namespace) -> None:
    crds = [*([] if args.no_default_crds else default_crd_files()), *args.crd]
    server = KubeEmulator(
        crds,
        host=args.host,
        port=args.port,
        bookmark_interval=args.bookmark_interval,
        simulate_workloads=args.simulate_workloads,
        ready_delay=args.ready_delay,
    )
    for rule in args.allow:
        parts = rule.rsplit(":", 3)  # subjects such as system:serviceaccount:ns:name contain colons
        if len(parts) != 4:
            raise SystemExit(f"--allow {rule!r}: expected SUBJECT:VERB:GROUP:RESOURCE")
        subject, verb, group, resource = parts
        server.auth.allow(subject, verb, resource, group=group)
    await server.start()
    if args.kubeconfig:
        server.write_kubeconfig(args.kubeconfig)
    print(f"kubeemu listening on {server.url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m tests.kubeemu", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--kubeconfig", help="write a kubeconfig for this server here")
    p.add_argument("--crd", action="append", default=[], help="extra CRD YAML file (repeatable)")
    p.add_argument("--no-default-crds", action="store_true", help="do not preload InferencePool/LWS/IAS CRDs")
    p.add_argument("--simulate-workloads", action="store_true", help="create and ready pods for workloads")
    p.add_argument("--ready-delay", type=float, default=0.0, help="seconds until simulated pods are Ready")
    p.add_argument("--bookmark-interval", type=float, default=5.0, help="seconds between watch bookmarks")
    p.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="SUBJECT:VERB:GROUP:RESOURCE",
        help="SubjectAccessReview rule (user or group; '*' matches anything), repeatable",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
