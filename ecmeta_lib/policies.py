"""Heuristic yardsticks with the agents' interface (the Policy protocol in docs/CONTRACTS.md).

Each policy answers an observation with a flat int64 action ``[DS, TA, MS] * U`` (TA 0 = device,
1..H = edge server); the environment then repairs accuracy and runs P2 on every edge server, so
capacity is always handled by the slot model, never by the heuristic.

* `RandomPolicy`: uniform over the action space (seeded, reproducible per evaluation).
* `LocalPolicy`: everything on the device, most compressed data (repair raises the data quality
  and, when even raw data fails, moves the task to the user's own edge server).
* `NearestPolicy`: the user's own AP's edge server, raw data, the most complex model.
* `GreedyPolicy`: knows the condition (through the environment it was reset on): each user's
  fastest accuracy-feasible option ignoring capacity, written as an action.

The oracle is not a policy: the cloud is not an action (only P2 sends users there), so
`ecmeta_lib.oracle` is reported as a per-slot latency line by `evaluation.evaluate`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .env import EdgeCloudEnv
from .slot import OptionTable


def _unwrap(env: Any) -> EdgeCloudEnv:
    base = getattr(env, "unwrapped", env)
    if not isinstance(base, EdgeCloudEnv):
        raise TypeError(f"expected an EdgeCloudEnv (or a wrapper of one), got {type(env).__name__}")
    return base


class _Heuristic:
    """Shared plumbing: remembers the environment's sizes; `observe` does nothing."""

    name = "heuristic"

    def __init__(self) -> None:
        self._env: EdgeCloudEnv | None = None

    def reset(self, env: Any) -> None:
        self._env = _unwrap(env)

    @property
    def env(self) -> EdgeCloudEnv:
        if self._env is None:
            raise RuntimeError(f"{type(self).__name__}: call reset(env) before act()")
        return self._env

    def _sizes(self) -> tuple[int, int, int, int]:
        cfg = self.env.config.system
        return cfg.n_users, cfg.n_servers, cfg.n_methods, cfg.n_models

    def observe(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray,
                info: dict[str, Any]) -> None:
        """Heuristics do not learn."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class RandomPolicy(_Heuristic):
    """Uniformly random action; the stream restarts from `seed` at every `reset`."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = int(seed)
        self._rng = np.random.default_rng(self.seed)

    def reset(self, env: Any) -> None:
        super().reset(env)
        self._rng = np.random.default_rng(self.seed)

    def act(self, obs: np.ndarray) -> np.ndarray:
        nvec = self.env.action_space.nvec
        return (self._rng.random(nvec.shape) * nvec).astype(np.int64)

    def __repr__(self) -> str:
        return f"RandomPolicy(seed={self.seed})"


class LocalPolicy(_Heuristic):
    """Every task on its device with the most compressed data (method 0) and model 0."""

    name = "local"

    def act(self, obs: np.ndarray) -> np.ndarray:
        n_users = self._sizes()[0]
        return np.zeros(3 * n_users, dtype=np.int64)


class NearestPolicy(_Heuristic):
    """Every task to its own access point's edge server, raw data, the most complex model."""

    name = "nearest"

    def act(self, obs: np.ndarray) -> np.ndarray:
        n_users, n_servers, n_methods, n_models = self._sizes()
        onehot = np.asarray(obs, dtype=float).reshape(n_users, -1)[:, :n_servers]
        ap = onehot.argmax(axis=1)  # the observation's one-hot access point
        act = np.empty((n_users, 3), dtype=np.int64)
        act[:, 0], act[:, 1], act[:, 2] = n_methods - 1, ap + 1, n_models - 1
        return act.ravel()


def greedy_action(table: OptionTable) -> np.ndarray:
    """(U, 3) action that realises every user's fastest accuracy-feasible option, ignoring
    capacity (a user no option satisfies takes its fastest option of maximum accuracy).

    Local (m) -> [m, 0, 0]; edge (m, j, h) -> [m, h + 1, j]. The cloud is no action, so a user
    whose best option is the cloud with method m is sent as [m, h + 1, |F| - 1] to the server h
    where that model is slowest: its cloud latency beats that edge latency, so P2 never keeps it
    and forwards it to the cloud with the same m and model, exactly the intended option.
    """
    n_users, n_methods, n_models, n_servers = table.edge_s.shape
    u = np.arange(n_users)
    best_acc = table.accuracy.reshape(n_users, -1).max(axis=1)
    thr = np.minimum(table.accuracy_req, best_acc)[:, None]
    local = np.where(table.local_accuracy >= thr, table.local_s, np.inf)  # (U, M)
    cloud = np.where(table.cloud_accuracy >= thr, table.cloud_s, np.inf)  # (U, M)
    edge = np.where((table.accuracy >= thr[:, :, None])[..., None], table.edge_s, np.inf)
    edge_flat = edge.reshape(n_users, -1)
    e_idx = edge_flat.argmin(axis=1)
    e_m, e_j, e_h = np.unravel_index(e_idx, (n_methods, n_models, n_servers))
    d_edge = edge_flat[u, e_idx]
    l_m, c_m = local.argmin(axis=1), cloud.argmin(axis=1)
    d_local, d_cloud = local[u, l_m], cloud[u, c_m]
    choice = np.argmin(np.stack([d_local, d_edge, d_cloud], axis=1), axis=1)  # ties: local first
    cloud_host = table.edge_s[u, c_m, n_models - 1, :].argmax(axis=1)
    act = np.empty((n_users, 3), dtype=np.int64)
    act[:, 0] = np.select([choice == 0, choice == 1], [l_m, e_m], c_m)
    act[:, 1] = np.select([choice == 0, choice == 1], [0, e_h + 1], cloud_host + 1)
    act[:, 2] = np.select([choice == 0, choice == 1], [0, e_j], n_models - 1)
    return act


class GreedyPolicy(_Heuristic):
    """Each user's fastest accuracy-feasible option ignoring capacity (the env's P2 then handles
    capacity). It is informed: it reads the current slot's option table from the environment it
    was reset on, i.e. it knows the condition, which no learned policy does."""

    name = "greedy"

    def act(self, obs: np.ndarray) -> np.ndarray:
        table = self.env.option_table
        if table is None:
            raise RuntimeError("GreedyPolicy: the environment has no current slot; reset it first")
        return greedy_action(table).ravel()


HEURISTICS: dict[str, type[_Heuristic]] = {
    "random": RandomPolicy, "local": LocalPolicy, "nearest": NearestPolicy,
    "greedy": GreedyPolicy,
}


def make_heuristic(name: str, **kwargs: Any) -> _Heuristic:
    """Build a heuristic by name ("random", "local", "nearest", "greedy")."""
    try:
        cls = HEURISTICS[name]
    except KeyError:
        raise ValueError(f"unknown heuristic {name!r}; choose one of {sorted(HEURISTICS)}") \
            from None
    return cls(**kwargs)
