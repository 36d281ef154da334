"""Cost optimiser: replicas per role and accelerator at minimum $/h that carry the required load.

Integer program (``scipy.optimize.milp``), variables ``n[r,a] ≥ 0`` (replicas of role ``r`` on accelerator
``a``)::

    minimise   Σ price[r,a] · n[r,a]
    subject to Σ_a cap[r,a] · n[r,a] ≥ need[r]          (load; cap from the capacity model at the SLO)
               min[r] ≤ Σ_a n[r,a] ≤ max[r]              (role bounds)
               Σ_r n[r,a] ≤ avail[a]                     (availability caps)
               Σ price[r,a] · n[r,a] ≤ budget            (hourly budget, when set)

When that is infeasible the optimiser maximises the served share ``t ∈ [0, 1]`` (``cap · n ≥ t · need`` for
every role) and, among those, the cheapest plan — "the best the budget allows" — and reports whether the
budget or the bounds/availability were what bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

__all__ = ["Option", "Plan", "RoleNeed", "solve"]


@dataclass(frozen=True, slots=True)
class Option:
    """One accelerator for one role: per-replica capacity (role's load unit), $/h per replica, name."""

    accelerator: str
    capacity: float
    price_per_hour: float


@dataclass(frozen=True, slots=True)
class RoleNeed:
    """What one role must carry (``need`` in its load unit) within ``[lo, hi]`` replicas, on these options."""

    need: float
    lo: int
    hi: int
    options: tuple[Option, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """The optimiser's answer.

    Attributes:
        counts: replicas per role per accelerator, in input order.
        cost_per_hour: total $/h of the plan.
        served: share of the required load the plan carries (1.0 when feasible).
        budget_limited: True when the budget (not bounds or caps) kept the plan below the need.
        limited: True when the plan carries less than the need for any reason.
    """

    counts: tuple[tuple[int, ...], ...]
    cost_per_hour: float
    served: float
    budget_limited: bool
    limited: bool

    def totals(self) -> tuple[int, ...]:
        """Replicas per role over all accelerators."""
        return tuple(sum(c) for c in self.counts)


def _closed_form(roles: Sequence[RoleNeed]) -> Plan | None:
    """Exact optimum when each role has one option and no coupling constraint: ceil(need / cap) clamped."""
    counts = []
    served = 1.0
    for r in roles:
        opt = r.options[0]
        ratio = r.need / opt.capacity if opt.capacity > 0 else math.inf
        # an overflowing need (absurd demand) saturates at the bound instead of failing in ceil()
        n = r.lo if r.need <= 0 else (r.hi if not ratio < r.hi else math.ceil(ratio - 1e-9))
        n = min(r.hi, max(r.lo, n))
        if r.need > 0:
            served = min(served, n * opt.capacity / r.need)
        counts.append((n,))
    cost = sum(c[0] * r.options[0].price_per_hour for c, r in zip(counts, roles, strict=True))
    return Plan(tuple(counts), cost, min(1.0, served), False, served < 1.0 - 1e-9)


def _solve(
    roles: Sequence[RoleNeed], caps: dict[str, int], budget: float | None, share: bool, t_min: float = 1.0
) -> tuple[list[list[int]], float] | None:
    """One MILP over ``n`` and the served share ``t`` (last variable): with ``share`` maximise ``t``, else
    minimise cost subject to ``t ≥ t_min``."""
    index: list[tuple[int, int]] = [(i, j) for i, r in enumerate(roles) for j in range(len(r.options))]
    nv = len(index) + 1  # + t
    prices = np.array([roles[i].options[j].price_per_hour for i, j in index] + [0.0])
    c = np.zeros(nv) if share else prices.copy()
    if share:
        c[-1] = -1.0
    rows, lb, ub = [], [], []
    for i, r in enumerate(roles):
        load = np.zeros(nv)
        count = np.zeros(nv)
        for k, (ri, j) in enumerate(index):
            if ri == i:
                load[k] = r.options[j].capacity
                count[k] = 1.0
        need = max(0.0, r.need)
        load[-1] = -need
        rows.append(load)
        lb.append(0.0)
        ub.append(np.inf)
        rows.append(count)
        lb.append(float(r.lo))
        ub.append(float(r.hi))
    for name, cap in caps.items():
        row = np.zeros(nv)
        for k, (i, j) in enumerate(index):
            if roles[i].options[j].accelerator == name:
                row[k] = 1.0
        rows.append(row)
        lb.append(0.0)
        ub.append(float(cap))
    if budget is not None:
        row = prices.copy()
        rows.append(row)
        lb.append(0.0)
        ub.append(budget)
    integrality = np.ones(nv)
    integrality[-1] = 0
    t_lo = 0.0 if share else t_min
    ub_vars = np.array([float(roles[i].hi) for i, _ in index] + [1.0])
    res = milp(
        c,
        constraints=LinearConstraint(np.array(rows), np.array(lb), np.array(ub)),
        integrality=integrality,
        bounds=Bounds(np.array([0.0] * len(index) + [t_lo]), ub_vars),
    )
    if res.x is None or not res.success:
        return None
    x = res.x
    counts: list[list[int]] = [[0] * len(r.options) for r in roles]
    for k, (i, j) in enumerate(index):
        counts[i][j] = round(x[k])
    return counts, float(x[-1])


def solve(roles: Sequence[RoleNeed], caps: dict[str, int] | None = None, budget: float | None = None) -> Plan:
    """Cheapest plan meeting every role's need; otherwise the largest share the constraints allow.

    ``caps`` maps accelerator name to available replicas (across roles); ``budget`` is $/h. One option per
    role with no caps and no budget is solved in closed form (the MILP optimum is ``ceil(need / cap)``).
    """
    caps = caps or {}
    if budget is None and not caps and all(len(r.options) == 1 for r in roles):
        plan = _closed_form(roles)
        assert plan is not None
        return plan
    full = _solve(roles, caps, budget, share=False)
    if full is not None:
        counts = full[0]
        return Plan(tuple(tuple(c) for c in counts), _cost(roles, counts), 1.0, False, False)
    best = _solve(roles, caps, budget, share=True)
    budget_limited = budget is not None and _solve(roles, caps, None, share=False) is not None
    if best is None:  # even the minimums do not fit the budget/caps: run at the minimums, cheapest option
        counts = [[r.lo] + [0] * (len(r.options) - 1) for r in roles]
        return Plan(tuple(tuple(c) for c in counts), _cost(roles, counts), 0.0, budget is not None, True)
    share = best[1]
    cheapest = _solve(roles, caps, budget, share=False, t_min=max(0.0, share - 1e-9))
    counts = cheapest[0] if cheapest is not None else best[0]
    return Plan(tuple(tuple(c) for c in counts), _cost(roles, counts), share, budget_limited, True)


def _cost(roles: Sequence[RoleNeed], counts: list[list[int]]) -> float:
    return sum(
        n * r.options[j].price_per_hour for r, c in zip(roles, counts, strict=True) for j, n in enumerate(c)
    )
