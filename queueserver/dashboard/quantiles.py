"""Medians and p90 as the team defines them: linear interpolation between order statistics.

For ``n`` sorted values the ``p``-quantile sits at position ``(n - 1) * p`` (0-based), between the
two values around it; this is ``statistics.quantiles(values, n=..., method="inclusive")`` (and
numpy's default), so p90 never under-reports as a rounded rank does. One value is its own
quantile; no value has none.

The dashboard keeps waits as counts per whole minute (``qs_stats_hour.waits``): ``from_counts`` and
``from_histogram`` give exactly the quantile of those whole-minute values without expanding them.
"""
from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping

import numpy as np


def quantile(values: Iterable[float], p: float) -> float | None:
    """The ``p``-quantile (0 < p < 1) of ``values`` by the inclusive method; ``None`` when empty."""
    data = sorted(values)
    if not data:
        return None
    if len(data) == 1:
        return float(data[0])
    if p == 0.5:
        return float(statistics.median(data))
    cuts = statistics.quantiles(data, n=100, method="inclusive")
    return float(cuts[round(p * 100) - 1])


def from_counts(counts: Mapping[int, int], p: float) -> float | None:
    """The ``p``-quantile of a multiset given as ``{value: how many}`` (same definition as ``quantile``)."""
    total = sum(counts.values())
    if total == 0:
        return None
    pos = (total - 1) * p
    lo_rank = int(pos)
    frac = pos - lo_rank
    lo = hi = None
    seen = 0
    for value in sorted(counts):
        n = counts[value]
        if n <= 0:
            continue
        if lo is None and seen + n > lo_rank:
            lo = value
        if seen + n > lo_rank + 1 or (seen + n > lo_rank and frac == 0):
            hi = value
            break
        seen += n
    assert lo is not None
    if hi is None:
        hi = lo
    return float(lo + (hi - lo) * frac)


def from_histogram(counts: "np.ndarray", p: float) -> float | None:
    """The ``p``-quantile of a histogram: ``counts[v]`` values equal to ``v`` (same definition as ``quantile``)."""
    cum = np.cumsum(counts)
    total = int(cum[-1]) if len(cum) else 0
    if total == 0:
        return None
    pos = (total - 1) * p
    rank = int(pos)
    lo = int(np.searchsorted(cum, rank, side="right"))  # the value at 0-based rank ``rank``
    hi = int(np.searchsorted(cum, min(rank + 1, total - 1), side="right"))
    return float(lo + (hi - lo) * (pos - rank))
