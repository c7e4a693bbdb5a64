"""Scoring a controller over an upgrade stream (`ecmeta_lib.lifecycle`), slot by slot.

`score_stream` runs any `evaluation.Policy` over the stream against the per-slot oracle (cached
per slot in `evaluation`'s oracle cache, or given solved) and returns a per-slot trace;
`stream_metrics` reduces a trace to the stream gap, the regret, the recovery after each upgrade
and the compute per slot. Torch-free.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .config import EnvConfig
from .evaluation import _ORACLE_CACHE, _ORACLE_CACHE_MAX, _system_key
from .lifecycle import EdgeCloudLifecycleEnv, Scenario, _check_int
from .oracle import oracle as _oracle
from .rollout import rollout

TRACE_COLUMNS: tuple[str, ...] = (
    "slot", "segment", "upgrade", "mean_latency_s", "oracle_latency_s", "gap_pct", "regret_s",
    "accuracy_violation_rate", "decision_ms", "update_ms", "oracle_ms")


def score_stream(policy: Any | Callable[[], Any], scenario: Scenario, *, announce: bool = True,
                 with_oracle: bool = True, config: EnvConfig | None = None,
                 oracle_backend: str = "highs", n_slots: int | None = None,
                 oracle_latency: np.ndarray | None = None) -> pd.DataFrame:
    """Run a controller over `scenario`'s stream and return its per-slot trace.

    Args:
        policy: an `evaluation.Policy` (``reset(env)``, ``act(obs)``, ``observe(...)``) or a
            zero-argument factory of one. ``reset`` is called once, on the lifecycle env.
        scenario: the stream (`make_scenario`).
        announce: passed to `EdgeCloudLifecycleEnv`.
        with_oracle: also report the per-slot oracle. Each slot's optimum is cached in
            `evaluation`'s in-process oracle cache under (system, scenario, env config), one
            array over the stream's slots (NaN where not solved yet), so several controllers
            on one stream solve each slot once.
        config: the env config (default `EnvConfig()`; must describe the scenario's system).
        oracle_backend: "highs", "gurobi" or "auto".
        n_slots: score only the first `n_slots` slots (default: the whole stream).
        oracle_latency: the stream's per-slot optimum, solved before (`lifecycle_runner`
            keeps it on disk): fills the cache, so no slot is solved again.

    Returns one row per slot (`TRACE_COLUMNS`): ``slot``; ``segment`` (index of the condition
    in force); ``upgrade`` (True on an event slot, announced or not); ``mean_latency_s`` (mean
    over users, s); ``oracle_latency_s`` (NaN without the oracle); ``gap_pct`` = 100 (latency -
    oracle) / oracle; ``regret_s`` = latency - oracle; ``accuracy_violation_rate`` (fraction of
    users under their requirement); ``decision_ms`` (wall time of ``act``, ms) and
    ``update_ms`` (of ``observe``, where a controller learns or re-identifies, ms);
    ``oracle_ms`` (wall time of the oracle's solve where this call solved it, else NaN).
    """
    if isinstance(policy, type) or not all(callable(getattr(policy, a, None))
                                           for a in ("reset", "act", "observe")):
        if not callable(policy):
            raise TypeError(f"policy {policy!r} is neither a Policy nor a factory of one")
        policy = policy()
    for attr in ("reset", "act", "observe"):
        if not callable(getattr(policy, attr, None)):
            raise TypeError(f"policy {policy!r} lacks the Policy method {attr}()")
    if not isinstance(scenario, Scenario):
        raise TypeError(f"scenario must be a Scenario, got {type(scenario).__name__}")
    n = scenario.n_slots if n_slots is None else _check_int("n_slots", n_slots, 1)
    if n > scenario.n_slots:
        raise ValueError(f"n_slots = {n} exceeds the stream's {scenario.n_slots} slots")
    env = EdgeCloudLifecycleEnv(scenario=scenario, announce=announce, config=config)
    obs, _ = env.reset()
    key = ("lifecycle", _system_key(env.system), scenario.key, env.config)
    if with_oracle and oracle_latency is not None:
        given = np.asarray(oracle_latency, dtype=float)
        if given.shape != (scenario.n_slots,):
            raise ValueError(f"oracle_latency has shape {given.shape}, the stream has "
                             f"{scenario.n_slots} slots")
        _ORACLE_CACHE[key] = given.copy()
    orc = _ORACLE_CACHE.get(key) if with_oracle else None
    if with_oracle and orc is None:
        orc = np.full(scenario.n_slots, np.nan)
        if len(_ORACLE_CACHE) >= _ORACLE_CACHE_MAX:
            _ORACLE_CACHE.pop(next(iter(_ORACLE_CACHE)))  # oldest first, as evaluate does
        _ORACLE_CACHE[key] = orc

    policy.reset(env)
    lat, viol, dec, upd = (np.empty(n) for _ in range(4))
    orc_ms = np.full(n, np.nan)
    clock = time.perf_counter

    def solve_oracle(t: int) -> None:  # timed: the oracle's decision time is a metric too
        if orc is not None and np.isnan(orc[t]):
            t0 = clock()
            orc[t] = _oracle(env.system, env.condition, env.user_state, oracle_backend,
                             table=env.option_table).mean_latency
            orc_ms[t] = (clock() - t0) * 1e3

    def act(o: np.ndarray) -> np.ndarray:
        t0 = clock()
        action = np.asarray(policy.act(o))
        dec[env._slot] = (clock() - t0) * 1e3
        return action

    def record(t: int, o: np.ndarray, action: np.ndarray, reward: float, next_o: np.ndarray,
               info: dict[str, Any]) -> None:
        t0 = clock()
        policy.observe(o, action, reward, next_o, info)
        upd[t] = (clock() - t0) * 1e3
        lat[t] = info["mean_latency"]
        viol[t] = 1.0 - float(np.mean(info["accuracy_ok"]))

    rollout(env, n, act, obs=obs, before=solve_oracle, after=record)
    slots = np.arange(n)
    oracle_lat = orc[:n].copy() if orc is not None else np.full(n, np.nan)
    return pd.DataFrame({
        "slot": slots, "segment": scenario.segment_of(slots),
        "upgrade": np.isin(slots, scenario.event_slots), "mean_latency_s": lat,
        "oracle_latency_s": oracle_lat, "gap_pct": (lat - oracle_lat) / oracle_lat * 100.0,
        "regret_s": lat - oracle_lat, "accuracy_violation_rate": viol, "decision_ms": dec,
        "update_ms": upd, "oracle_ms": orc_ms})


@dataclass(frozen=True, eq=False)
class StreamMetrics:
    """`stream_metrics`' result."""

    summary: dict[str, float]
    """Scalars of the whole stream (see `stream_metrics`)."""
    per_upgrade: pd.DataFrame
    """One row per upgrade event: event, slot, segment_slots, level_pct, recovery_slots,
    gap_first<n>_pct for each early horizon."""


def _gap(lat: np.ndarray, orc: np.ndarray) -> float:
    o = float(orc.sum())
    return 100.0 * (float(lat.sum()) - o) / o if lat.size and o > 0 else float("nan")


def stream_metrics(trace: pd.DataFrame, *, window: int = 20, tol_pts: float = 2.0,
                   early: Sequence[int] = (20, 50)) -> StreamMetrics:
    """Reduce a `score_stream` trace (columns slot, segment, upgrade, mean_latency_s,
    oracle_latency_s, decision_ms; consecutive slots from 0) to the stream's metrics.

    Definitions (L_t: the controller's mean latency of slot t, O_t: the oracle's, s):

    * ``stream_gap_pct`` = 100 (sum_t L_t - sum_t O_t) / sum_t O_t: the gap to the oracle of
      the summed latencies (a ratio of sums, not a mean of per-slot gaps).
    * ``regret_s`` = sum_t (L_t - O_t), seconds of mean-over-users latency summed over slots.
    * ``decision_ms_p50`` / ``_p99``: percentiles over slots of a slot's compute,
      ``decision_ms`` + ``update_ms`` (acting, and learning or inferring z, where the trace has it).
    * Per upgrade event at slot e, its segment [e, E) (E: the next event or the stream's end):
      the moving gap g(s) = 100 (sum L - sum O) / sum O over the window [s - W + 1, s]
      (W = `window`), defined for s in [e + W - 1, E) so that a window never reaches back
      before the event; the method's ``level_pct`` on the segment = the gap (ratio of sums) over
      the segment's second half [e + (E - e) // 2, E); ``recovery_slots`` = s* + 1 - e for the
      first s* from which g stays within `tol_pts` points of the level for W consecutive window
      positions (s*, ..., s* + W - 1, all < E): the slots from the event to the end of the first
      settled window, so at least W; NaN if that never happens in the segment (or the segment
      is shorter than 2 W). ``gap_first<n>_pct`` = the gap (ratio of sums) over [e, e + n),
      NaN when the segment is shorter than n slots.
    * The summary averages the per-upgrade values over the events where they are defined
      (``recovery_slots_mean``, ``gap_first<n>_pct_mean``), counts ``n_upgrades`` and
      ``n_recovered``.
    """
    need = ("slot", "segment", "upgrade", "mean_latency_s", "oracle_latency_s", "decision_ms")
    missing = [c for c in need if c not in trace.columns]
    if missing:
        raise ValueError(f"trace lacks column(s) {missing}")
    window = _check_int("window", window, 1)
    early = tuple(_check_int("early horizon", h, 1) for h in early)
    if not tol_pts >= 0:
        raise ValueError(f"tol_pts must be >= 0, got {tol_pts!r}")
    slots = trace["slot"].to_numpy()
    if not np.array_equal(slots, np.arange(slots.size)):
        raise ValueError("trace slots must be 0, 1, ..., n - 1 in order")
    lat = trace["mean_latency_s"].to_numpy(dtype=float)
    orc = trace["oracle_latency_s"].to_numpy(dtype=float)
    n = lat.size
    events = np.flatnonzero(trace["upgrade"].to_numpy(dtype=bool))
    ends = np.append(events[1:], n)
    cl = np.concatenate([[0.0], np.cumsum(lat)])
    co = np.concatenate([[0.0], np.cumsum(orc)])

    def gap_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # over [a, b)
        o = co[b] - co[a]
        with np.errstate(invalid="ignore", divide="ignore"):
            return 100.0 * (cl[b] - cl[a] - o) / o

    # moving gap of the window ending at s (NaN for s < W - 1)
    s = np.arange(n)
    moving = np.full(n, np.nan)
    ok = s >= window - 1
    moving[ok] = gap_between(s[ok] - window + 1, s[ok] + 1)
    rows = []
    for k, (e, end) in enumerate(zip(events.tolist(), ends.tolist(), strict=True)):
        length = end - e
        level = float(gap_between(np.array([e + length // 2]), np.array([end]))[0])
        rec = float("nan")
        if length >= 2 * window and math.isfinite(level):
            inside = np.abs(moving[e + window - 1:end] - level) <= tol_pts  # s = e + W - 1 ...
            # runs of W consecutive in-band positions: a moving sum over `inside`
            c = np.concatenate([[0], np.cumsum(inside)])
            full = (c[window:] - c[:-window]) == window
            if full.any():
                rec = float(int(np.argmax(full)) + window)  # s* + 1 - e, s* = e + W - 1 + i
        row = {"event": k, "slot": e, "segment_slots": length, "level_pct": level,
               "recovery_slots": rec}
        for h in early:
            row[f"gap_first{h}_pct"] = (float(gap_between(np.array([e]), np.array([e + h]))[0])
                                        if length >= h else float("nan"))
        rows.append(row)
    per = pd.DataFrame(rows, columns=["event", "slot", "segment_slots", "level_pct",
                                      "recovery_slots", *(f"gap_first{h}_pct" for h in early)])
    dec = trace["decision_ms"].to_numpy(dtype=float)
    if "update_ms" in trace:  # a slot's whole compute: acting and learning or inferring z
        dec = dec + trace["update_ms"].to_numpy(dtype=float)

    def mean_defined(col: str) -> float:
        v = per[col].to_numpy(dtype=float)
        v = v[np.isfinite(v)]
        return float(v.mean()) if v.size else float("nan")

    summary = {
        "n_slots": float(n),
        "stream_gap_pct": _gap(lat, orc),
        "regret_s": float(np.sum(lat - orc)),
        "mean_latency_s": float(lat.mean()) if n else float("nan"),
        "decision_ms_p50": float(np.percentile(dec, 50)) if n else float("nan"),
        "decision_ms_p99": float(np.percentile(dec, 99)) if n else float("nan"),
        "n_upgrades": float(events.size),
        "n_recovered": float(np.isfinite(per["recovery_slots"].to_numpy(dtype=float)).sum()),
        "recovery_slots_mean": mean_defined("recovery_slots"),
        "recovery_slots_median": (float(np.nanmedian(per["recovery_slots"].to_numpy(float)))
                                  if np.isfinite(per["recovery_slots"].to_numpy(float)).any()
                                  else float("nan")),
        **{f"gap_first{h}_pct_mean": mean_defined(f"gap_first{h}_pct") for h in early},
    }
    return StreamMetrics(summary=summary, per_upgrade=per)


__all__ = ["TRACE_COLUMNS", "StreamMetrics", "score_stream", "stream_metrics"]
