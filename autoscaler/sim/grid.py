"""Running a scorecard grid: its items in worker processes, in grid order, with progress as they finish."""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence

from autoscaler.sim.progress import Progress
from autoscaler.sim.scorecard import GridItem, Point, run_item


def _indexed_run(arg: tuple[int, GridItem]) -> tuple[int, Point]:
    return arg[0], run_item(arg[1])


def _describe(point: Point) -> str:
    return (f"{point.trace} {point.policy}:{point.knob:g} seed {point.seed}: "
            f"{100 * point.attainment:.1f} % at {point.gpu_hours:.1f} GPU-h")


def run_grid(items: Sequence[GridItem], jobs: int = 2, shard: tuple[int, int] = (0, 1),
             progress: Progress | None = None) -> list[Point]:
    """Run this shard's items in ``jobs`` worker processes (1 = in this process), in grid order.

    ``progress`` (if given) gets one ``done`` per finished item, as items finish (not in grid order).
    """
    i, n = shard
    mine = [it for k, it in enumerate(items) if k % n == i]
    points: list[Point | None] = [None] * len(mine)

    def finished(k: int, point: Point) -> None:
        points[k] = point
        if progress is not None:
            progress.done(_describe(point))

    if jobs <= 1 or len(mine) <= 1:
        for k, it in enumerate(mine):
            finished(k, run_item(it))
    else:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(processes=jobs) as pool:
            for k, point in pool.imap_unordered(_indexed_run, list(enumerate(mine)), chunksize=1):
                finished(k, point)
    return [p for p in points if p is not None]
