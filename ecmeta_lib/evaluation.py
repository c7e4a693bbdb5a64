"""Evaluation harness: run any policy for a number of slots and report it against the oracle.

Common random numbers: the environment draws every slot's user state from its own ``np_random``,
independently of the actions, so for one `seed` every policy answers the very same slot states.
Episodes are truncated every ``episode_slots`` slots; the harness then resets *without* a seed,
which continues the same random stream, so the slot sequence depends only on `seed`.

The per-slot oracle is cached in-process per (system, condition, config, seed) and extended on
demand, so comparing several policies on one condition solves each slot once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from .conditions import Condition, TaskSet, make_task_set
from .config import EnvConfig
from .env import EdgeCloudEnv
from .oracle import oracle as _oracle
from .rollout import rollout
from .stats import bootstrap_ci
from .system import System

# The study's slot streams: one seed per purpose, common to every method.
CURVE_SEED = 1_000
"""Slot-state seed of every learning-curve evaluation on T1-T3 (common to all methods)."""
VALIDATION_SEED = 2_000
"""Slot-state seed of the validation on the agent's own training conditions."""
FINAL_SEED = 3_000
"""Slot-state seed of final.csv, the baselines, the decisions and the adaptation curves."""
HELDOUT_SEED = 5_000
"""Slot-state and action seed of the random-action slots the critic's error is measured on."""


@runtime_checkable
class Policy(Protocol):
    """What `evaluate` needs from a policy (heuristic or learned agent)."""

    name: str

    def reset(self, env: EdgeCloudEnv) -> None:
        """Start of an evaluation on ``env.condition``."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Flat int64 action [DS, TA, MS] * U, deterministic."""

    def observe(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray,
                info: dict[str, Any]) -> None:
        """Called after each step with the transition."""


@dataclass(frozen=True)
class EvalResult:
    """One policy on one condition: a tidy per-slot table and a summary."""

    per_slot: pd.DataFrame
    """One row per slot: slot, mean_latency_s, oracle_latency_s, gap_pct,
    accuracy_violation_rate, cloud_share, local_share, edge_share, overflow_share."""
    summary: dict[str, Any]
    """policy, condition, seed, task_seed, n_slots, mean_latency_s, ci_low_s, ci_high_s,
    oracle_latency_s, gap_to_oracle_pct, accuracy_violation_rate, cloud_share, local_share,
    edge_share, overflow_share."""


# --------------------------------------------------------------------------------------------
# oracle cache
# --------------------------------------------------------------------------------------------
_ORACLE_CACHE: dict[tuple, np.ndarray] = {}
_ORACLE_CACHE_MAX = 256


def _fingerprint(*arrays: np.ndarray | float | int) -> str:
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        arr = np.ascontiguousarray(a)
        h.update(str(arr.dtype).encode() + str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def _system_key(system: System) -> str:
    return _fingerprint(system.es_flops, system.es_cores, system.es_memory_mb, system.cloud_flops,
                        system.local_flops, system.ds_ratio, system.ap_rate, system.ap_delay,
                        system.cloud_rate, system.cloud_delay, system.tx_power_dbm)


def _condition_key(c: Condition) -> str:
    return _fingerprint(c.flop_per_bit, c.memory_mb, c.peak_accuracy, c.quality_exponent)


def clear_oracle_cache() -> None:
    """Forget every cached per-slot oracle latency."""
    _ORACLE_CACHE.clear()


def oracle_cache_info() -> dict[str, int]:
    """Entries and cached slots in the oracle cache."""
    return {"entries": len(_ORACLE_CACHE),
            "slots": int(sum(v.size for v in _ORACLE_CACHE.values()))}


# --------------------------------------------------------------------------------------------
# harness
# --------------------------------------------------------------------------------------------
def _check_int(name: str, value: Any, minimum: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def make_env(condition: str | Condition, *, task_seed: int = 0, task_set: TaskSet | None = None,
             config: EnvConfig | None = None) -> EdgeCloudEnv:
    """The (unwrapped) environment `evaluate` runs on; `config` must describe `task_set`'s
    system when both are given (the environment draws user states from ``config.system``)."""
    if task_set is not None and config is not None:
        scfg = config.system
        if (task_set.system.n_users, task_set.system.n_servers) != (scfg.n_users,
                                                                    scfg.n_servers):
            raise ValueError(f"config has {scfg.n_users} users and {scfg.n_servers} servers but "
                             f"the task set's system has {task_set.system.n_users} and "
                             f"{task_set.system.n_servers}")
    elif task_set is not None:
        default = EnvConfig().system
        if (task_set.system.n_users, task_set.system.n_servers) != (default.n_users,
                                                                    default.n_servers):
            raise ValueError("a task set with a non-default system needs its matching `config`")
    if task_set is None:
        task_set = make_task_set(task_seed, (config or EnvConfig()).system,
                                 (config or EnvConfig()).conditions)
    return EdgeCloudEnv(condition=condition, task_set=task_set, config=config)


def evaluate(policy: Policy, condition: str | Condition, *, n_slots: int, seed: int,
             task_seed: int = 0, task_set: TaskSet | None = None, with_oracle: bool = True,
             config: EnvConfig | None = None, oracle_backend: str = "highs",
             env: EdgeCloudEnv | None = None) -> EvalResult:
    """Run `policy` for `n_slots` slots of `condition` from `seed` and compare with the oracle.

    Args:
        policy: anything with the `Policy` protocol; ``reset(env)`` is called once, then
            ``act``/``observe`` every slot.
        condition: a condition name of the task set or a `Condition`.
        n_slots: slots to run (episodes are chained; the state stream continues across them).
        seed: seed of the slot states (same seed -> same states for every policy).
        task_seed: seed of the task set, unless `task_set` is given.
        with_oracle: also solve every slot exactly (cached across calls) and report the gap.
        config: environment config (needed with a task set of a non-default system).
        oracle_backend: "highs", "gurobi" or "auto" (results are identical up to 1e-6).
        env: reuse this environment (it is reset with `seed` and `condition`); else one is built.

    Latency in seconds; shares and rates are fractions of users (0-1) per slot; gap in %.
    """
    n_slots = _check_int("n_slots", n_slots, 1)
    seed = _check_int("seed", seed, 0)
    for attr in ("reset", "act", "observe"):
        if not callable(getattr(policy, attr, None)):
            raise TypeError(f"policy {policy!r} lacks the Policy method {attr}()")
    if env is None:
        env = make_env(condition, task_seed=task_seed, task_set=task_set, config=config)
    obs, _ = env.reset(seed=seed, options={"condition": condition})
    base: EdgeCloudEnv = env.unwrapped  # type: ignore[assignment]
    system, cond = base.system, base.condition
    n_servers = system.n_servers
    key = (_system_key(system), _condition_key(cond), base.config, seed)
    cached = _ORACLE_CACHE.get(key, np.empty(0)) if with_oracle else np.empty(0)
    oracle_lat = np.full(n_slots, np.nan)
    oracle_lat[: min(cached.size, n_slots)] = cached[:n_slots]

    policy.reset(base)
    cols = {k: np.empty(n_slots) for k in ("mean_latency_s", "accuracy_violation_rate",
                                           "cloud_share", "local_share", "edge_share",
                                           "overflow_share")}
    def solve_oracle(t: int) -> None:  # on the state slot t's action will meet
        if with_oracle and t >= cached.size:
            oracle_lat[t] = _oracle(system, cond, base.user_state, oracle_backend,
                                    table=base.option_table).mean_latency

    def record(t: int, obs: np.ndarray, action: np.ndarray, reward: float,
               next_obs: np.ndarray, info: dict[str, Any]) -> None:
        policy.observe(obs, action, reward, next_obs, info)
        place = info["placement"]
        cols["mean_latency_s"][t] = info["mean_latency"]
        cols["accuracy_violation_rate"][t] = 1.0 - float(np.mean(info["accuracy_ok"]))
        cols["cloud_share"][t] = float(np.mean(place == n_servers + 1))
        cols["local_share"][t] = float(np.mean(place == 0))
        cols["edge_share"][t] = float(np.mean((place >= 1) & (place <= n_servers)))
        cols["overflow_share"][t] = info["to_cloud"] / place.size

    # episodes chain without a seed: the state stream continues (common random numbers)
    rollout(env, n_slots, lambda o: np.asarray(policy.act(o)), obs=obs, before=solve_oracle,
            after=record)
    if with_oracle and n_slots > cached.size:
        if len(_ORACLE_CACHE) >= _ORACLE_CACHE_MAX and key not in _ORACLE_CACHE:
            _ORACLE_CACHE.pop(next(iter(_ORACLE_CACHE)))  # oldest first
        _ORACLE_CACHE[key] = oracle_lat.copy()

    per_slot = pd.DataFrame({"slot": np.arange(n_slots), **{
        "mean_latency_s": cols["mean_latency_s"], "oracle_latency_s": oracle_lat,
        "gap_pct": (cols["mean_latency_s"] - oracle_lat) / oracle_lat * 100.0,
        **{k: cols[k] for k in ("accuracy_violation_rate", "cloud_share", "local_share",
                                "edge_share", "overflow_share")}}})
    lat = cols["mean_latency_s"]
    lo, hi = bootstrap_ci(lat, seed=seed)
    mean_oracle = float(oracle_lat.mean()) if with_oracle else float("nan")
    summary = {
        "policy": getattr(policy, "name", type(policy).__name__),
        "condition": cond.name,
        "seed": seed,
        "task_seed": int(base.task_set.seed),
        "n_slots": n_slots,
        "mean_latency_s": float(lat.mean()),
        "ci_low_s": lo,
        "ci_high_s": hi,
        "oracle_latency_s": mean_oracle,
        "gap_to_oracle_pct": (float(lat.mean()) - mean_oracle) / mean_oracle * 100.0,
        **{k: float(cols[k].mean()) for k in ("accuracy_violation_rate", "cloud_share",
                                              "local_share", "edge_share", "overflow_share")},
    }
    return EvalResult(per_slot=per_slot, summary=summary)


def compare(policies: Iterable[Policy], condition: str | Condition | Sequence[str | Condition],
            *, n_slots: int, seed: int, task_seed: int = 0, task_set: TaskSet | None = None,
            with_oracle: bool = True, config: EnvConfig | None = None,
            oracle_backend: str = "highs") -> pd.DataFrame:
    """Summaries of several policies on one or several conditions (one row per pair), all on
    the same slot states; the task set is built once and the oracle solved once per slot."""
    conditions = [condition] if isinstance(condition, (str, Condition)) else list(condition)
    policies = list(policies)
    if not policies or not conditions:
        raise ValueError("compare needs at least one policy and one condition")
    if task_set is None:
        cfg = config or EnvConfig()
        task_set = make_task_set(task_seed, cfg.system, cfg.conditions)
    env = make_env(conditions[0], task_set=task_set, config=config)
    rows = [evaluate(p, c, n_slots=n_slots, seed=seed, task_set=task_set,
                     with_oracle=with_oracle, config=config, oracle_backend=oracle_backend,
                     env=env).summary
            for c in conditions for p in policies]
    return pd.DataFrame(rows)
