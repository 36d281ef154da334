"""PendingScales: our own /scale writes stand in for a cache that has not caught up, with resourceVersions treated
as opaque strings (the tokens below are deliberately not numbers)."""

from __future__ import annotations

from typing import Any

from autoscaler.adapters.ownwrites import STAND_IN_S, PendingScales

KEY = ("serving", "Deployment", "web")


def _obj(rv: str, replicas: int = 1) -> dict[str, Any]:
    return {"kind": "Deployment", "metadata": {"namespace": "serving", "name": "web", "resourceVersion": rv},
            "spec": {"replicas": replicas}}


def never(epoch: int) -> bool:
    return False


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_stands_in_until_the_watch_delivers_our_version_not_before():
    pending = PendingScales()
    pending.observed("MODIFIED", _obj("qq"))
    pending.wrote(KEY, 4, "mm", list_epoch=1)
    assert pending.replicas(KEY, "qq", never) == 4
    # The Deployment controller's status writes that came before ours are older: still ours.
    pending.observed("MODIFIED", _obj("aa"))
    assert pending.replicas(KEY, "aa", never) == 4
    pending.observed("MODIFIED", _obj("mm", 4))
    pending.observed("MODIFIED", _obj("zz", 7))  # a later change (someone else's)
    assert pending.replicas(KEY, "zz", never) is None


def test_the_cache_at_our_version_ends_it():
    pending = PendingScales()
    pending.wrote(KEY, 4, "mm", list_epoch=1)
    assert pending.replicas(KEY, "mm", never) is None


def test_a_version_the_watch_delivered_before_the_reply_arrived_installs_nothing():
    pending = PendingScales()
    pending.observed("MODIFIED", _obj("mm", 4))
    pending.observed("MODIFIED", _obj("nn", 4))  # and a status update after it
    pending.wrote(KEY, 4, "mm", list_epoch=1)
    assert pending.replicas(KEY, "nn", never) is None


def test_a_list_started_after_the_write_ends_it():
    pending = PendingScales()
    pending.wrote(KEY, 4, "mm", list_epoch=3)
    assert pending.replicas(KEY, "qq", lambda epoch: epoch < 3) == 4
    assert pending.replicas(KEY, "qq", lambda epoch: epoch == 3) is None


def test_it_ends_after_a_minute_and_on_deletion():
    clock = Clock()
    pending = PendingScales(monotonic=clock)
    pending.wrote(KEY, 4, "mm", list_epoch=1)
    clock.t += STAND_IN_S - 1
    assert pending.replicas(KEY, "qq", never) == 4
    clock.t += 2
    assert pending.replicas(KEY, "qq", never) is None
    pending.wrote(KEY, 5, "nn", list_epoch=1)
    pending.observed("DELETED", _obj("oo"))
    assert pending.replicas(KEY, "qq", never) is None


def test_no_version_in_the_reply_installs_nothing():
    pending = PendingScales()
    pending.wrote(KEY, 4, "", list_epoch=1)
    assert pending.replicas(KEY, "qq", never) is None
