"""The command line: one subcommand per module (``run``'s module, :mod:`autoscaler.app`, is the one place that
builds the concrete adapters).

Subcommands register themselves through a ``register(subparsers)`` function in their own module and store
their handler with ``set_defaults(handler=...)``; a handler returns the process exit status. Any
:class:`~autoscaler.errors.AutoscalerError` becomes a one-line message on stderr and exit status 2 — users
never see a traceback for bad input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from autoscaler import __version__
from autoscaler.api.crd import crd_yaml
from autoscaler.app import register as register_run
from autoscaler.errors import AutoscalerError
from autoscaler.sim.bench_command import register as register_bench
from autoscaler.sim.command import register as register_simulate

__all__ = ["build_parser", "main"]

EXIT_USAGE = 2


def _crd(args: argparse.Namespace) -> int:
    sys.stdout.write(crd_yaml())
    return 0


def _register_crd(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "crd", help="print the InferenceAutoscaler CustomResourceDefinition (YAML)",
        description="Print the CRD generated from the API models; pipe it to `kubectl apply -f -`.",
    )
    parser.set_defaults(handler=_crd)


def _registrars() -> list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]]:
    return [register_run, register_simulate, register_bench, _register_crd]


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="inference-autoscaler",
        description="Keeps LLM inference fleets inside their latency SLOs at the lowest GPU cost.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in _registrars():
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except AutoscalerError as err:
        print(f"inference-autoscaler {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
