"""Exact solver of P2: which users an edge server keeps, the rest going to the cloud.

Among the n users allocated to one edge server, keep the set S that minimises
    sum_{u in S} d^E_u + sum_{u not in S} d^C_u   s.t.  |S| <= cores,  sum_{u in S} R_u <= memory,
which is the two-constraint 0/1 knapsack  max sum_{S} (d^C_u - d^E_u)  under the same constraints.
Users whose cloud latency is not worse than their edge latency never help and go to the cloud.

Solution order, cheapest first, every path exact:
1. everything worth keeping fits: keep it;
2. the cores bind alone: the top-`cores` savings fit the memory, so they are optimal (they are
   optimal for the relaxation without the memory constraint);
3. depth-first branch and bound over items in saving-per-MB order, bounded by the smaller of the
   fractional (memory-only) knapsack bound and the best `cores - k` remaining savings;
4. should the search exceed `node_limit`, a dynamic programme over (count, integer MB) finishes
   the job, so the worst case stays polynomial.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from itertools import accumulate

import numpy as np

_EPS = 1e-12


def solve_p2(saving: np.ndarray, memory_mb: np.ndarray, max_count: int, memory_cap_mb: float,
             node_limit: int = 200_000) -> np.ndarray:
    """Return a boolean mask of the users kept on the edge server (optimal for P2).

    saving:        (n,) d^C - d^E per user, seconds (positive when the edge is faster).
    memory_mb:     (n,) memory of each user's model, integer MB.
    max_count:     cores of the server (constraint C2).
    memory_cap_mb: memory of the server, MB (constraint C3).
    """
    saving = np.asarray(saving, dtype=float)
    weight = np.asarray(memory_mb, dtype=float)
    n = saving.shape[0]
    if weight.shape != (n,):
        raise ValueError(f"memory_mb must have shape ({n},), got {weight.shape}")
    if max_count < 0 or memory_cap_mb < 0:
        raise ValueError("server capacities must be non-negative")
    keep = np.zeros(n, dtype=bool)
    cand = np.flatnonzero((saving > _EPS) & (weight <= memory_cap_mb))
    if cand.size == 0 or max_count == 0:
        return keep
    v, w = saving[cand], weight[cand]
    if cand.size <= max_count and w.sum() <= memory_cap_mb:
        keep[cand] = True
        return keep
    top = np.argsort(-v, kind="stable")[:max_count]
    if w[top].sum() <= memory_cap_mb:
        keep[cand[top]] = True
        return keep
    chosen = _branch_and_bound(v, w, int(max_count), float(memory_cap_mb), node_limit)
    if chosen is None:
        chosen = _dp(v, w, int(max_count), float(memory_cap_mb))
    keep[cand[chosen]] = True
    return keep


def _branch_and_bound(v: np.ndarray, w: np.ndarray, k_max: int, cap: float,
                      node_limit: int) -> np.ndarray | None:
    """Depth-first B&B; returns the chosen indices into v, or None past `node_limit` nodes.

    Instances have a few dozen items, so per-call overhead rules: the tables are Python lists and
    the bound is inlined (numpy calls on scalars cost microseconds each).
    """
    order = np.argsort(-(v / w), kind="stable")
    vl, wl = v[order].tolist(), w[order].tolist()
    n = len(vl)
    k_max = min(k_max, n)
    cum_v, cum_w = [0.0, *accumulate(vl)], [0.0, *accumulate(wl)]
    # top[i][r]: sum of the r largest values among items i..n-1 (cardinality bound)
    top: list[list[float]] = [[0.0] * (k_max + 1) for _ in range(n + 1)]
    desc: list[float] = []  # negated values of items i..n-1, ascending
    for i in range(n - 1, -1, -1):
        insort(desc, -vl[i])
        row = [0.0, *accumulate(-x for x in desc[:k_max])]
        row.extend([row[-1]] * (k_max + 1 - len(row)))
        top[i] = row

    # incumbent: greedy in density order under both constraints
    inc_val, inc_set, room, k = 0.0, [], cap, 0
    for i in range(n):
        if k < k_max and wl[i] <= room:
            inc_set.append(i)
            inc_val += vl[i]
            room -= wl[i]
            k += 1
    nodes = 0
    path: list[int] = []
    # explicit stack of (item index, count, room, value, path length)
    stack = [(0, 0, cap, 0.0, 0)]
    while stack:
        i, k, room, val, plen = stack.pop()
        del path[plen:]
        nodes += 1
        if nodes > node_limit:
            return None
        # extend greedily while items fit: each include is the "left" child; push the exclusions
        while i < n and k < k_max:
            # bound: fractional knapsack on memory from item i on, capped by the best k_max - k
            target = cum_w[i] + room
            t = bisect_right(cum_w, target, i) - 1  # items i..t-1 fit whole
            bound = cum_v[t] - cum_v[i]
            if t < n:
                bound += vl[t] * (target - cum_w[t]) / wl[t]
            card = top[i][k_max - k]
            if card < bound:
                bound = card
            if val + bound <= inc_val + _EPS:
                break
            if wl[i] <= room:
                stack.append((i + 1, k, room, val, len(path)))  # exclude branch, explored later
                path.append(i)
                val += vl[i]
                room -= wl[i]
                k += 1
            i += 1
        if val > inc_val + _EPS:
            inc_val, inc_set = val, list(path)
    return order[np.asarray(inc_set, dtype=np.int64)]


def _dp(v: np.ndarray, w: np.ndarray, k_max: int, cap: float) -> np.ndarray:
    """Exact DP over (count, integer MB): O(n * k_max * cap) but vectorised over memory."""
    wi = np.rint(w).astype(np.int64)
    c = int(np.floor(cap))
    n = v.size
    k_max = min(k_max, n)
    dp = np.full((k_max + 1, c + 1), -np.inf)
    dp[0, :] = 0.0
    take = np.zeros((n, k_max + 1, c + 1), dtype=bool)
    for i in range(n):
        cand = dp[:-1, : c + 1 - wi[i]] + v[i]
        better = cand > dp[1:, wi[i]:]
        dp[1:, wi[i]:] = np.where(better, cand, dp[1:, wi[i]:])
        take[i, 1:, wi[i]:] = better
    k, m = np.unravel_index(int(np.argmax(dp)), dp.shape)
    chosen = []
    for i in range(n - 1, -1, -1):
        if take[i, k, m]:
            chosen.append(i)
            k -= 1
            m -= wi[i]
    return np.asarray(sorted(chosen), dtype=np.int64)


def brute_force_p2(saving: np.ndarray, memory_mb: np.ndarray, max_count: int,
                   memory_cap_mb: float) -> float:
    """Best total saving by enumerating all subsets (n <= ~16); the tests' reference."""
    saving = np.asarray(saving, dtype=float)
    n = saving.size
    masks = ((np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1).astype(bool)
    ok = (masks.sum(1) <= max_count) & (masks @ np.asarray(memory_mb, float) <= memory_cap_mb)
    return float(np.max(np.where(ok, masks @ saving, -np.inf)))
