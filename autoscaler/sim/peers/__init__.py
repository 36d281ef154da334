"""Peers whose real decision code ships as a Python package, run in the peers environment (``make peers``).

Each runs in a worker process under ``.venv-peers/bin/python``, fed over a pipe with JSON lines, behind an
adapter that implements the project's ``Policy`` protocol. The peers environment is never a dependency of the
project: where it is missing, the adapters raise :class:`PeersUnavailable` naming ``make peers``, and the
scorecard skips their policies with a note.
"""

from autoscaler.sim.peers.env import PeersUnavailable, peers_python

__all__ = ["PeersUnavailable", "peers_python"]
