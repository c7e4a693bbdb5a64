"""A twin system that grows with the upgrades: PEARL re-meta-trained on identified twins.

The paper's framework: "once service providers upgrade their AiMs, a DT of the new AiSF
conditions is created in the DT system and gradually synchronised with the physical system.
Meta-policy is trained through interaction with DTs' emulations." Here:

* `TwinPool` holds one replay and one context buffer per twin, each filled by *emulating* the
  twin (an `EdgeCloudEnv` on the twin's condition, on the system's own slot model) with uniformly
  random actions, as the quick profile's meta-training collects its contexts. It starts with the
  six DTs (and the profile's twin samples); `train` runs the agent's own update rule on K'
  twins per gradient step, a batch and a random context of each, as Algorithm 1 does.
* `PEARLContinual` is `PEARLOnline` plus that loop: a `policies.TwinIdentifier` follows the live
  telemetry (PEARL's round-robin probes are the identifying greedy's context actions, so the
  upgraded users' models are identified exactly where they were probed); ``n_context + 1`` slots
  after an announced upgrade the estimate becomes a new twin, joins the pool, and the meta-policy
  takes ``updates`` gradient steps on the enlarged pool at once (at the fine-tuning rate: the
  cosine schedule's final learning rate), and acts with them from the next slot. The twin's
  error against the true condition (mean |log rho_est / rho_true| over the identified models of
  the upgraded users, and over all of them) is recorded per upgrade (``twin_errors``). The
  running posterior sums of `PEARLOnline` are kept across a re-meta-training (the encoder moves
  little at that rate).

Budget (stated, bounded): ``updates`` gradient steps of ``k_prime`` x ``batch`` slots per upgrade
(default 400, i.e. 5 % of the meta-training's 8,000), ``twin_slots`` emulated slots per new twin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .agents import ContextBuffer, DiscreteSACAgent, ReplayBuffer
from .conditions import Condition, TaskSet
from .config import EnvConfig
from .env import EdgeCloudEnv
from .lifecycle_controllers import PEARLOnline
from .policies import TwinIdentifier, dt_mean_condition
from .rollout import rollout


@dataclass(frozen=True)
class ContinualConfig:
    """How the twin pool grows and how much the meta-policy trains on it."""

    updates: int = 400
    """Gradient steps of re-meta-training after each upgrade (the meta-training took 8,000)."""
    twin_slots: int = 100
    """Emulated slots (random actions) that fill a twin's buffers."""
    k_prime: int = 2
    """Twins per gradient step (Algorithm 1's K')."""
    batch: int = 32
    """Transitions per twin per gradient step."""
    context: int = 32
    """Transitions in a twin's training context."""
    lambda1: int = 4
    """Temperature update every lambda1 steps."""
    lambda2: int = 4
    """Actor update every lambda2 steps."""


class TwinPool:
    """Buffers of emulated slots per twin, and Algorithm 1's update loop over them."""

    def __init__(self, task_set: TaskSet, env_config: EnvConfig, cfg: ContinualConfig,
                 seed: int = 0) -> None:
        self.task_set, self.env_config, self.cfg = task_set, env_config, cfg
        self.rng = np.random.default_rng(seed)
        self.replay: dict[str, ReplayBuffer] = {}
        self.context: dict[str, ContextBuffer] = {}
        self._epoch = 0

    @property
    def names(self) -> list[str]:
        return list(self.replay)

    def add(self, name: str, condition: Condition) -> None:
        """Emulate `condition` for ``twin_slots`` slots of random actions into its buffers."""
        env = EdgeCloudEnv(condition=condition, task_set=self.task_set, config=self.env_config)
        n = self.cfg.twin_slots
        shape = (env.system.n_users, 3)
        self.replay[name] = ReplayBuffer(n, env.observation_space.shape[0], shape)
        self.context[name] = ContextBuffer(n, env.observation_space.shape[0], shape)
        nvec = env.action_space.nvec
        seed = int(self.rng.integers(2**31))
        act_rng = np.random.default_rng(seed)
        rollout(env, n, lambda _o: act_rng.integers(0, nvec).astype(np.int64), seed=seed,
                buffers=(self.replay[name], self.context[name]))

    def train(self, agent: DiscreteSACAgent, n_updates: int) -> None:
        """`n_updates` steps of the agent's update rule, K' twins each (Algorithm 1, 6-19)."""
        cfg, names = self.cfg, self.names
        k = min(cfg.k_prime, len(names))
        for _ in range(n_updates):
            self._epoch += 1
            chosen = [names[i] for i in self.rng.choice(len(names), size=k, replace=False)]
            batches = [self.replay[n].sample(cfg.batch, self.rng) for n in chosen]
            contexts = [self.context[n].sample_context(cfg.context, self.rng) for n in chosen]
            agent.update(batches, contexts, self._epoch, cfg.lambda1, cfg.lambda2)


def twin_error(estimate: Any, truth: Condition, users: np.ndarray) -> dict[str, float]:
    """How far an identified twin is from the true condition on `users` (upgraded): mean
    |log(rho_est / rho_true)| over the models the telemetry identified, and over all models
    (those never seen keep the prior's value), and the share identified."""
    est = estimate.condition
    log_err = np.abs(np.log(est.flop_per_bit[users] / truth.flop_per_bit[users]))
    seen = estimate.flop_observed[users]
    return {"log_rho_error_identified": float(log_err[seen].mean()) if seen.any() else 0.0,
            "log_rho_error_all": float(log_err.mean()) if log_err.size else 0.0,
            "identified_share": float(seen.mean()) if seen.size else float("nan")}


class PEARLContinual(PEARLOnline):
    """PEARL online whose meta-policy grows with the upgrades (module docstring).

    Args:
        agent: the trained PEARL agent (an eager copy: it is trained further).
        pool: the twin pool, holding the six DTs (and twin samples) already.
        cfg: the re-meta-training budget.
        n_context, probe, accumulate, seed, name: as `PEARLOnline`.
    """

    def __init__(self, agent: DiscreteSACAgent, pool: TwinPool, cfg: ContinualConfig, *,
                 n_context: int = 9, probe: str = "round_robin", accumulate: bool = True,
                 seed: int = 0, name: str | None = None) -> None:
        super().__init__(agent, n_context, probe=probe, accumulate=accumulate, seed=seed,
                         name=name or "pearl_continual")
        self.pool, self.cfg = pool, cfg
        # fine-tune at the schedule's final rate: its horizon is the steps already taken
        agent.set_lr_horizon(max(int(agent.n_updates), 1))
        self.twin_errors: list[dict[str, float]] = []

    def reset(self, env: Any) -> None:
        super().reset(env)
        base = env.unwrapped
        self.identifier = TwinIdentifier(base.system, dt_mean_condition(base.task_set))
        self._due: list[tuple[int, np.ndarray]] = []  # (slot to build the twin, its users)
        self._state = None
        self._k = 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        self._state = self.env.user_state
        return super().act(obs)

    def observe(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray,
                info: dict[str, Any]) -> None:
        self.identifier.add(self._state, info)
        super().observe(obs, action, reward, next_obs, info)
        t = int(info["slot"])
        if info.get("upgrade", False):
            users = np.asarray(info["upgraded_users"], dtype=bool)
            self.identifier.forget(users)
            self._due.append((t + 1 + self.n_context, users))
        while self._due and self._due[0][0] <= t:
            _, users = self._due.pop(0)
            self._grow(users)

    def _grow(self, users: np.ndarray) -> None:
        """A twin of the condition as identified now joins the pool; the meta-policy trains."""
        self._k += 1
        est = self.identifier.estimate()
        self.twin_errors.append({"upgrade": self._k, "users": int(users.sum()),
                                 **twin_error(est, self.env.condition, users)})
        self.pool.add(f"twin{self._k}", est.condition)
        self.pool.train(self.agent, self.cfg.updates)
        self.grad_steps += self.cfg.updates
