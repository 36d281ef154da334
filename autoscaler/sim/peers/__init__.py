"""Peers whose real decision code ships as a Python package, run in the peers environment (``make peers``).

Each runs in a worker process under ``.venv-peers/bin/python``, fed over a pipe with JSON lines, behind an
adapter that implements the project's ``Policy`` protocol. The peers environment is never a dependency of the
project: where it is missing, the adapters raise :class:`PeersUnavailable` naming ``make peers``, and the
scorecard skips their policies with a note.
"""

from collections.abc import Sequence

from autoscaler.sim.peers.env import PeersUnavailable, peers_python

__all__ = ["PEER_POLICIES", "PeersUnavailable", "peers_python", "unavailable_policies"]

#: scorecard policies that run a peer's real code from the peers environment
PEER_POLICIES = ("dynamo-planner",)


def unavailable_policies(policies: Sequence[str]) -> dict[str, str]:
    """``{policy: why}`` for the peer policies among ``policies`` that cannot run here (no peers environment):
    the scorecard skips them with this note rather than failing."""
    wanted = [p for p in policies if p in PEER_POLICIES]
    if not wanted:
        return {}
    try:
        peers_python()
    except PeersUnavailable as err:
        return {p: str(err) for p in wanted}
    return {}
