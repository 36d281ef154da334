"""Our own writes while a cache has not caught up with them: PendingScales (/scale) and StatusWriter (status), with
resourceVersions treated as opaque strings (the tokens below are deliberately not numbers)."""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.adapters.kube import ResourceType, StatusWriter
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


class RecordingStatusAPI:
    """Answers status patches the way the apiserver does (the patched object, at a new version), and records them."""

    def __init__(self, versions: list[str]) -> None:
        self.versions = versions
        self.patches: list[Any] = []

    async def send(self, request: Any) -> dict[str, Any]:
        self.patches.append(request.body["status"])
        return {"metadata": {"resourceVersion": self.versions.pop(0)}}


@pytest.mark.asyncio
async def test_status_writer_diffs_against_its_own_write_until_someone_else_writes():
    api = RecordingStatusAPI(["yy", "zz", "ww"])
    writer = StatusWriter(api, ResourceType("autoscaler.inference.dev/v1alpha1", "inferenceautoscalers",
                                            "InferenceAutoscaler"))
    assert await writer.write("serving", "x", {}, {"a": 1}, current_rv="qq")
    # The cache is still at the version the write was based on, then at the one it made: nothing to send.
    assert not await writer.write("serving", "x", {}, {"a": 1}, current_rv="qq")
    assert not await writer.write("serving", "x", {"a": 1}, {"a": 1}, current_rv="yy")
    assert await writer.write("serving", "x", {}, {"a": 2}, current_rv="qq")
    # Caught up with the first write only: the second is still the base.
    assert not await writer.write("serving", "x", {"a": 1}, {"a": 2}, current_rv="yy")
    # Someone else wrote (a version not ours): diffed against what the cache shows.
    assert await writer.write("serving", "x", {"a": 5, "b": 1}, {"a": 2}, current_rv="oo")
    assert api.patches == [{"a": 1}, {"a": 2}, {"a": 2, "b": None}]
