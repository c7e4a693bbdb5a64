"""What each policy decides, per user, on the results table's slots - and what the slot model
changes about it.

`record_decisions` runs policies (learned or not) through the evaluation harness on the common
slot stream, wrapped in a recorder that keeps, for every slot and user, the final DS / place /
model and the latency (after accuracy repair and P2), and whether the accuracy repair changed the
action. `oracle_decisions` keeps the same for the per-slot optimum on the very same slots.
Together they show where a learned policy's gap to the oracle comes from (`plots.decisions_figure`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .conditions import TaskSet
from .config import EnvConfig
from .env import EdgeCloudEnv
from .evaluation import evaluate, make_env
from .oracle import oracle
from .slot import repair

PLACE_NAMES = np.array(["device", "edge", "cloud"])


def _place(placement: np.ndarray, n_servers: int) -> np.ndarray:
    """0 device, 1..H edge, H+1 cloud -> 'device' | 'edge' | 'cloud'."""
    kind = np.where(placement == 0, 0, np.where(placement > n_servers, 2, 1))
    return PLACE_NAMES[kind]


class DecisionRecorder:
    """Wraps a policy (the harness's Policy protocol) and records every slot's per-user decisions;
    acts exactly as the wrapped policy does."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        self.name = getattr(policy, "name", type(policy).__name__)
        self.frames: list[pd.DataFrame] = []
        self._env: EdgeCloudEnv | None = None
        self._flags: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def reset(self, env: Any) -> None:
        self._env = env.unwrapped
        self.policy.reset(env)

    def act(self, obs: np.ndarray) -> np.ndarray:
        action = np.asarray(self.policy.act(obs))
        env = self._env
        assert env is not None and env.option_table is not None
        a = env.as_user_actions(action)
        ds, ta, ms = a[:, 0], a[:, 1], np.where(a[:, 1] == 0, 0, a[:, 2])
        r_ds, r_ta, r_ms = repair(env.option_table, a[:, 0], a[:, 1], a[:, 2])
        self._flags = (r_ds != ds, r_ms != ms, r_ta != ta)
        return action

    def observe(self, obs, action, reward, next_obs, info) -> None:  # noqa: ANN001
        self.policy.observe(obs, action, reward, next_obs, info)
        env = self._env
        assert env is not None and self._flags is not None
        r_ds, r_ms, r_ta = self._flags
        self.frames.append(pd.DataFrame({
            "slot": len(self.frames), "user": np.arange(info["latency"].size),
            "ds": info["ds"], "place": _place(info["placement"], env.system.n_servers),
            "model": info["model"], "latency_s": info["latency"],
            "repaired_ds": r_ds, "repaired_model": r_ms, "repaired_place": r_ta,
            "repaired_any": r_ds | r_ms | r_ta}))


def record_decisions(policy: Any, condition: str, *, n_slots: int, seed: int,
                     task_set: TaskSet, config: EnvConfig | None = None) -> pd.DataFrame:
    """Per (slot, user) decisions of `policy` on `condition` (harness slots from `seed`)."""
    rec = DecisionRecorder(policy)
    evaluate(rec, condition, n_slots=n_slots, seed=seed, task_set=task_set, config=config,
             with_oracle=False)
    return pd.concat(rec.frames, ignore_index=True).assign(method=rec.name, condition=condition)


def oracle_decisions(condition: str, *, n_slots: int, seed: int, task_set: TaskSet,
                     config: EnvConfig | None = None) -> pd.DataFrame:
    """The per-slot optimum's per-user decisions on the harness's slots from `seed` (the same
    slot stream `evaluate` walks: reset with `seed`, unseeded resets at episode ends)."""
    env = make_env(condition, task_set=task_set, config=config)
    env.reset(seed=seed, options={"condition": condition})
    n_servers = env.system.n_servers
    frames = []
    for t in range(n_slots):
        best = oracle(env.system, env.condition, env.user_state, table=env.option_table)
        frames.append(pd.DataFrame({
            "slot": t, "user": np.arange(best.latency.size), "ds": best.ds,
            "place": _place(best.placement, n_servers), "model": best.model,
            "latency_s": best.latency, "repaired_ds": False, "repaired_model": False,
            "repaired_place": False, "repaired_any": False}))
        _, _, terminated, truncated, _ = env.step(np.zeros(env.action_space.shape, np.int64))
        if terminated or truncated:
            env.reset()  # no seed: the stream continues, as in the harness
    return pd.concat(frames, ignore_index=True).assign(method="oracle", condition=condition)


def decisions_table(policies: dict[str, Sequence[Any]], conditions: Sequence[str], *,
                    n_slots: int, seed: int, task_set: TaskSet,
                    config: EnvConfig | None = None, with_oracle: bool = True) -> pd.DataFrame:
    """Decisions of several policies (method name -> one policy per seed, built per condition by
    calling the entry if it is callable) and of the oracle on every condition."""
    frames = []
    for cond in conditions:
        if with_oracle:
            frames.append(oracle_decisions(cond, n_slots=n_slots, seed=seed, task_set=task_set,
                                           config=config))
        for method, pols in policies.items():
            for i, pol in enumerate(pols):
                f = record_decisions(pol, cond, n_slots=n_slots, seed=seed, task_set=task_set,
                                     config=config)
                frames.append(f.assign(method=method, seed=i))
    out = pd.concat(frames, ignore_index=True)
    for col in ("ds", "model", "slot", "user"):
        out[col] = out[col].astype(np.int16)
    out["latency_s"] = out["latency_s"].astype(np.float32)
    return out


def grid_decisions(table: pd.DataFrame, profile: Any, *, results_root: Any = None,
                   task_seed: int | None = None) -> pd.DataFrame:
    """`decisions_table` for a finished grid (`runner.run_table`): every learned run's final
    policy (PEARL adapted with the profile's ``eval_context`` transitions, as in final.csv), the
    yardsticks (`analysis.yardsticks`) and the oracle, on final.csv's slots (``FINAL_SEED``,
    ``final_slots``). `profile` is a name or a `study.Study`. Cached in
    ``results/<profile>/decisions-<hash>.csv.gz``."""
    from .agent_policies import make_policy
    from .analysis import yardsticks
    from .cache import digest, write_csv
    from .checkpoints import load_agent
    from .conditions import TEST_NAMES
    from .evaluation import FINAL_SEED
    from .study import Study

    study = Study.of(profile, task_seed=task_seed, results_root=results_root)
    prof = study.profile
    done = table[table.done]
    sticks = yardsticks(study)
    key = digest({"runs": sorted(done.run_id), "policies": [type(p).__name__ for p in sticks],
                  "task_seed": study.task_seed, "version": 1})
    path = study.profile_dir / f"decisions-{key}.csv.gz"
    if path.exists():
        return pd.read_csv(path)
    task_set = study.task_set
    policies: dict[str, list[Any]] = {}
    for row in done.itertuples():
        agent = load_agent(row.dir)
        policies.setdefault(row.method, []).append(
            make_policy(agent, row.method, prof.eval_context))
    for p in sticks:
        policies[p.name] = [p]
    out = decisions_table(policies, TEST_NAMES, n_slots=prof.final_slots, seed=FINAL_SEED,
                          task_set=task_set, config=prof.env)
    write_csv(path, out, compression="gzip")
    return out
