"""The edge-cloud system as a Gymnasium environment, registered as ``ecmeta/EdgeCloud-v0``.

Each step is one slot: the action answers the current user state, the slot model repairs it,
solves P2 on every edge server and returns ``reward = -mean latency (s)``; then a fresh i.i.d.
user state is drawn from ``self.np_random`` (so the state sequence does not depend on actions,
which gives common random numbers across policies for the same seed).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .conditions import Condition, TaskSet, make_task_set
from .config import KB_BITS, EnvConfig, SystemConfig
from .slot import OptionTable, SlotOutcome, option_table, run_slot
from .system import System, UserState, sample_user_state

ENV_ID = "ecmeta/EdgeCloud-v0"
FEATURES_PER_USER_BASE = 6  # B, distance, noise, task size, result size, accuracy requirement


def observation_size_per_user(n_servers: int) -> int:
    """Features per user: one-hot access point plus six scaled scalars."""
    return n_servers + FEATURES_PER_USER_BASE


def encode_observation(state: UserState, cfg: SystemConfig) -> np.ndarray:
    """Per user [one-hot AP (H), B, distance, noise, V^T, V^R, tau], each scaled to [0, 1] by its
    range in the config (tau by [0, 100] %), flattened user-major to float32."""
    u = state.ap.shape[0]
    onehot = np.zeros((u, cfg.n_servers))
    onehot[np.arange(u), state.ap] = 1.0

    def scale(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
        return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)

    cols = np.stack([
        scale(state.bandwidth_hz / 1e6, *cfg.bandwidth_mhz_range),
        scale(state.distance_m, *cfg.distance_m_range),
        scale(state.noise_dbm, *cfg.noise_dbm_range),
        scale(state.task_bits / KB_BITS, *cfg.task_kb_range),
        scale(state.result_bits / KB_BITS, *cfg.result_kb_range),
        state.accuracy_req / 100.0,
    ], axis=1)
    return np.clip(np.concatenate([onehot, cols], axis=1), 0.0, 1.0).astype(np.float32).ravel()


def positive_feature_ranges(cfg: SystemConfig) -> tuple[tuple[int, float, float], ...]:
    """(column in a user's observation, low, high) of the min-max scaled positive physical
    quantities: bandwidth (MHz), distance (m), task and result size (KB)."""
    h = cfg.n_servers
    return ((h, *map(float, cfg.bandwidth_mhz_range)), (h + 1, *map(float, cfg.distance_m_range)),
            (h + 3, *map(float, cfg.task_kb_range)), (h + 4, *map(float, cfg.result_kb_range)))


def accuracy_req_moments(cfg: SystemConfig) -> tuple[int, float, float]:
    """(column in a user's observation, mean, standard deviation) of the accuracy requirement
    tau_u ~ N(mean, std^2) in the observation's units (tau / 100)."""
    return (cfg.n_servers + 5, cfg.accuracy_req_mean / 100.0, cfg.accuracy_req_std / 100.0)


def decisions_of(info: dict[str, Any]) -> np.ndarray:
    """The executed (post-repair) decisions of a slot's ``info``, (U, 3): DS, placement,
    model."""
    return np.stack([info["ds"], info["placement"], info["model"]], axis=-1)


class EdgeCloudEnv(gym.Env):
    """Edge-cloud AI service management under one AI service function condition.

    Args:
        condition: a name from the task set ("G1", "G1'", "G1''", "G2", "G2'", "G3", "T1"-"T3")
            or a `Condition` object with the system's user and model counts.
        task_seed: seed of the static system and the named conditions (all share one system).
        config: sizes and distributions; defaults to the paper's.
        task_set: a prebuilt task set (overrides `task_seed` and `config`'s system parts).

    ``reset(options={"condition": ...})`` switches the condition for the next episode.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, condition: str | Condition = "G1", task_seed: int = 0,
                 config: EnvConfig | None = None, task_set: TaskSet | None = None) -> None:
        self.config = config or EnvConfig()
        if not isinstance(self.config, EnvConfig):
            raise TypeError(f"config must be an EnvConfig, got {type(self.config).__name__}")
        self.task_set = task_set or make_task_set(task_seed, self.config.system,
                                                  self.config.conditions)
        self.system: System = self.task_set.system
        scfg = self.config.system
        sizes = (self.system.n_users, self.system.n_servers, self.system.n_methods)
        if sizes != (scfg.n_users, scfg.n_servers, scfg.n_methods):
            raise ValueError(f"task_set system has (users, servers, methods) = {sizes} but the "
                             f"config says {(scfg.n_users, scfg.n_servers, scfg.n_methods)}; "
                             "pass the EnvConfig the task set was built with")
        self.condition: Condition = self._resolve(condition)
        u, h = scfg.n_users, scfg.n_servers
        self.action_space = spaces.MultiDiscrete(
            np.tile([scfg.n_methods, h + 1, scfg.n_models], u).astype(np.int64))
        self.observation_space = spaces.Box(0.0, 1.0, shape=(u * observation_size_per_user(h),),
                                            dtype=np.float32)
        self.user_state: UserState | None = None
        self.option_table: OptionTable | None = None
        self.last_outcome: SlotOutcome | None = None
        self._slot = 0

    # --- helpers -------------------------------------------------------------------------
    def _resolve(self, condition: str | Condition) -> Condition:
        if isinstance(condition, Condition):
            want = (self.system.n_users, self.config.system.n_models)
            if condition.flop_per_bit.shape != want:
                raise ValueError(f"condition has shape {condition.flop_per_bit.shape}, the system "
                                 f"needs (n_users, n_models) = {want}")
            return condition
        if isinstance(condition, str):
            return self.task_set[condition]
        raise TypeError(f"condition must be a name or a Condition, got {type(condition).__name__}")

    def _draw_state(self) -> np.ndarray:
        self.user_state = sample_user_state(self.np_random, self.config.system)
        self.option_table = option_table(self.system, self.condition, self.user_state)
        return encode_observation(self.user_state, self.config.system)

    def as_user_actions(self, action: Any) -> np.ndarray:
        """Validate a flat MultiDiscrete action and reshape it to (U, 3) [DS, TA, MS]."""
        arr = np.asarray(action)
        n = self.action_space.shape[0]
        if arr.shape != (n,):
            raise ValueError(f"action must have shape ({n},) = 3 x {self.system.n_users} users "
                             f"flattened as [DS, TA, MS] per user; got shape {arr.shape}")
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"action must hold integers, got dtype {arr.dtype}")
        nvec = self.action_space.nvec
        bad = (arr < 0) | (arr >= nvec)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            head = ("DS", "TA", "MS")[i % 3]
            raise ValueError(f"action out of range: user {i // 3} {head} = {arr[i]}, "
                             f"allowed 0..{nvec[i] - 1}")
        return arr.reshape(-1, 3).astype(np.int64)

    # --- Gymnasium API -------------------------------------------------------------------
    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if options:
            unknown = set(options) - {"condition"}
            if unknown:
                raise ValueError(f"unknown reset option(s) {sorted(unknown)}; "
                                 "the only option is 'condition'")
            if "condition" in options:
                self.condition = self._resolve(options["condition"])
        self._slot = 0
        self.last_outcome = None
        return self._draw_state(), {"condition": self.condition.name}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.option_table is None:
            raise RuntimeError("call reset() before step()")
        outcome = run_slot(self.system, self.option_table, self.as_user_actions(action))
        self.last_outcome = outcome
        self._slot += 1
        info = {
            "latency": outcome.latency,
            "placement": outcome.placement,
            "ds": outcome.ds,
            "model": outcome.model,
            "accuracy": outcome.accuracy,
            "accuracy_ok": outcome.accuracy_ok,
            "to_cloud": outcome.to_cloud,
            "mean_latency": outcome.mean_latency,
            "condition": self.condition.name,
        }
        obs = self._draw_state()
        truncated = self._slot >= self.config.episode_slots
        return obs, -outcome.mean_latency, False, truncated, info
