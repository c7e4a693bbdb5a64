"""Learned controllers on the running system (`ecmeta_lib.lifecycle`'s upgrade stream).

Every controller follows the harness's `Policy` protocol and acts on the *live* stream: every
slot it plays is scored, its context collection and exploration included; none reads the true
condition. Each counts the gradient steps it takes (``grad_steps``).

* `PEARLOnline`: the paper's framework (Fig. 2, Sec. IV-C) without any gradient step. It starts
  from the meta-policy and the prior; each user whose context is open plays an informative
  context action on the live slot (``probe``), and its transition narrows that user's posterior;
  after ``n_context`` transitions the user's z_u is the posterior mean and it acts greedily.
  At an announced upgrade only the upgraded users' contexts restart (per-user latents: each
  user's z_u reads that user's transitions alone). With the paper's single global z
  (``latent_per_user=False``) a condition has one z, so any upgrade restarts every user's
  context: everybody probes again, the price of a per-condition latent.
  The posterior is kept as running sums of the per-transition Gaussian factors (precisions and
  precision-weighted means, `agents.encoder.gaussian_product`), so a slot costs one encoder pass
  over its users whatever the context size, and forgetting a user is zeroing its sums.
* `SACOnline`: the alternative the paper argues against, with the learner's own budget.
  ``mode="retrain"``: at every announced upgrade a fresh agent (new weights, empty replay) learns
  from scratch on the live stream; ``mode="finetune"``: the agent keeps its weights across
  upgrades (starting from given ones, e.g. SAC_DT's) and only its replay buffer is emptied at an
  upgrade (the old transitions describe models that are gone). Either way it plays uniformly
  random actions for its first ``warmup`` slots after a (re)start, then its greedy action with
  each user's replaced by a random one with probability ``explore``, and takes
  ``updates_per_slot`` gradient steps per slot of ``batch`` transitions - the learner's
  budget in training (8,000 updates over 4,000 collected slots: 2 per slot, 64 slots each).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .agents import ActionSpec, ContextBuffer, DiscreteSACAgent, ReplayBuffer
from .agents.config import SACConfig
from .policies import TwinIdentifier, context_action, dt_mean_condition, twin_latency
from .rollout import decisions_of

RESIDUALS = ("critic", "twin")
"""What PEARL online's change detector compares each latency with (`PEARLOnline`)."""
PROBES = ("round_robin", "random")
"""What a user plays while its context is open: IdentifyGreedy's informative round robin over
(model, data quality) (`policies.context_action`), or uniformly random actions (the quick
profile's meta-training contexts, ``random_context``)."""


class PEARLOnline:
    """PEARL on the live stream: per-user contexts that restart at an upgrade, no gradient step.

    Args:
        agent: a trained PEARL agent (with its context encoder).
        n_context: transitions per user before its z_u is frozen (per restart).
        probe: what a user in context plays (`PROBES`).
        accumulate: keep adding each user's later (greedy) transitions to its posterior after
            its probes, so z_u keeps sharpening until the next upgrade; off: z_u is frozen
            after ``n_context`` transitions, as in the static adaptation protocol.
        seed: seeds the random probe.
        detector: a `detection.CusumDetector` for unannounced upgrades: ``info["upgrade"]`` is
            then ignored and the users it flags restart their context, the residual being the
            log of each settled user's latency over what the ``residual`` predicts for what it
            executed; ``detections`` lists (slot, user) of every flag.
        residual: "critic" (the critic's latency of the action taken under z_u) or "twin"
            (ours: the latency of the executed decisions on a digital twin that a
            `policies.TwinIdentifier` keeps synchronised from every live slot's telemetry - the
            probes are identify-then-greedy's, so every (user, model) is identified within
            |F| of them; a flagged user's records are forgotten with its context).
        name: the controller's name in the results.
    """

    def __init__(self, agent: DiscreteSACAgent, n_context: int = 20, *,
                 probe: str = "round_robin", accumulate: bool = False, seed: int = 0,
                 detector: Any | None = None, residual: str = "critic",
                 name: str | None = None) -> None:
        if agent.encoder is None:
            raise ValueError("PEARLOnline needs a PEARL agent (one with a context encoder)")
        if not isinstance(n_context, (int, np.integer)) or n_context < 0:
            raise ValueError(f"n_context must be an integer >= 0, got {n_context!r}")
        if probe not in PROBES:
            raise ValueError(f"probe must be one of {PROBES}, got {probe!r}")
        self.agent, self.n_context, self.probe, self.seed = agent, int(n_context), probe, seed
        self.accumulate = bool(accumulate)
        if residual not in RESIDUALS:
            raise ValueError(f"residual must be one of {RESIDUALS}, got {residual!r}")
        self.detector, self.residual = detector, residual
        self.identifier: TwinIdentifier | None = None
        self._state: Any = None
        self.detections: list[tuple[int, int]] = []
        self.name = name or f"pearl_online[{n_context}]"
        self.per_user = bool(agent.cfg.encoder.latent_per_user)
        self.grad_steps = 0

    def reset(self, env: Any) -> None:
        base = env.unwrapped
        self.env = base
        u = base.system.n_users
        lat = self.agent.cfg.encoder.latent_dim
        self._prec = torch.zeros(u, lat)
        self._wmu = torch.zeros(u, lat)
        self._count = np.zeros(u, dtype=np.int64)
        self._one = ContextBuffer(1, base.observation_space.shape[0], (u, 3))
        self._rng = np.random.default_rng(self.seed)
        if self.residual == "twin":
            self.identifier = TwinIdentifier(base.system, dt_mean_condition(base.task_set))
        self._update_z()

    def _update_z(self) -> None:
        """z_u = the posterior mean of each user's context (the prior where it is empty)."""
        prec = self._prec + (1.0 if self.agent.cfg.encoder.posterior_prior_factor else 0.0)
        mu = torch.where(self._prec > 0, self._wmu / prec.clamp_min(1e-12), 0.0)
        self.z = mu if self.per_user else mu.mean(dim=0)

    @property
    def in_context(self) -> np.ndarray:
        """(U,) bool: users whose context is still open (they probe on the next slot)."""
        return self._count < self.n_context

    def _predicted(self, obs: np.ndarray, action: np.ndarray,
                   info: dict[str, Any]) -> np.ndarray:
        """(U,) latency (s) the residual's model predicts for this slot."""
        if self.residual == "twin":
            return twin_latency(self.env.system, self.identifier.estimate().condition,
                                self._state, info)
        with torch.no_grad():
            return self.agent.predicted_latency(
                self.agent._t(obs).reshape(1, -1),
                torch.as_tensor(np.asarray(action).reshape(1, -1, 3), dtype=torch.int64),
                self.z.reshape(1, *self.z.shape))[0].numpy()

    def act(self, obs: np.ndarray) -> np.ndarray:
        self._state = self.env.user_state
        ctx = self.in_context
        action = self.agent.act(obs, self.z, greedy=True).reshape(-1, 3)
        if ctx.any():
            state, env = self.env.user_state, self.env
            if self.probe == "round_robin":
                probes = np.empty_like(action)
                for k in np.unique(self._count[ctx]):  # one pass per distinct phase
                    rows = ctx & (self._count == k)
                    probes[rows] = context_action(int(k), state, env.system.n_methods,
                                                  env.config.system.n_models)[rows]
            else:
                nvec = env.action_space.nvec.reshape(-1, 3)
                probes = self._rng.integers(0, nvec).astype(np.int64)
            action[ctx] = probes[ctx]
        return action.ravel()

    def observe(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray,
                info: dict[str, Any]) -> None:
        if self.detector is not None:  # unannounced: a flagged user's slot is already new
            flagged = self.detector.update(np.log(info["latency"]) - np.log(self._predicted(
                obs, action, info)), valid=~self.in_context)
            self.detections += [(int(info["slot"]), int(u)) for u in np.flatnonzero(flagged)]
            self._restart(flagged)
            if self.identifier is not None:
                self.identifier.forget(flagged)  # before adding the slot: it shows the new models
        if self.identifier is not None:
            self.identifier.add(self._state, info)
        ctx = np.ones_like(self._count, dtype=bool) if self.accumulate else self.in_context
        if ctx.any():
            self._one.add(obs, action, reward, next_obs, info["latency"], decisions_of(info))
            with torch.no_grad():
                inputs = self.agent._context_inputs(self._one.recent(1))
                mu_n, var_n = self.agent.encoder.factors(*inputs)  # (1, U, L)
            grow = torch.as_tensor(ctx).unsqueeze(-1)
            self._prec += torch.where(grow, 1.0 / var_n[0], 0.0)
            self._wmu += torch.where(grow, mu_n[0] / var_n[0], 0.0)
            self._count[ctx] += 1
        if self.detector is None and info.get("upgrade", False):
            self._restart(np.asarray(info["upgraded_users"], dtype=bool))
        self._update_z()

    def _restart(self, users: np.ndarray) -> None:
        """The users of the (U,) mask start their context again (a global z: everybody)."""
        if not users.any():
            return
        if not self.per_user:
            users = np.ones_like(users)  # one z per condition: everybody starts again
        self._prec[torch.as_tensor(users)] = 0.0
        self._wmu[torch.as_tensor(users)] = 0.0
        self._count[users] = 0


class SACOnline:
    """SAC learning on the live stream: retrained from scratch, or fine-tuned, at each upgrade.

    Args:
        spec: the environment's shapes (`ActionSpec.from_env`).
        cfg: the learner's agent config (no encoder).
        mode: "retrain" (fresh weights and replay at each announced upgrade) or "finetune"
            (weights kept, replay emptied at an upgrade).
        init_state: a state dict to start from (fine-tuning a pre-trained agent), or None.
        seed: seeds the weights (each restart draws a new seed from it), exploration, sampling.
        updates_per_slot, batch: gradient steps per live slot and transitions per step.
        warmup: slots of uniformly random actions after a (re)start before learning.
        explore: per-user probability of a random action once learning.
        lambda1, lambda2: temperature and actor update periods (epochs), as in training.
        buffer_capacity: replay capacity (transitions).
    """

    def __init__(self, spec: ActionSpec, cfg: SACConfig, *, mode: str = "retrain",
                 init_state: dict[str, torch.Tensor] | None = None, seed: int = 0,
                 updates_per_slot: int = 2, batch: int = 64, warmup: int = 40,
                 explore: float = 0.1, lambda1: int = 4, lambda2: int = 4,
                 buffer_capacity: int = 4000, name: str | None = None) -> None:
        if mode not in ("retrain", "finetune"):
            raise ValueError(f"mode must be 'retrain' or 'finetune', got {mode!r}")
        if cfg.encoder.latent_dim:
            raise ValueError("SACOnline takes a SAC config without an encoder (latent_dim = 0)")
        if not 0.0 <= explore <= 1.0:
            raise ValueError(f"explore must be in [0, 1], got {explore!r}")
        self.spec, self.cfg, self.mode, self.init_state = spec, cfg, mode, init_state
        self.updates_per_slot, self.batch, self.warmup = updates_per_slot, batch, warmup
        self.explore, self.lambda1, self.lambda2 = explore, lambda1, lambda2
        self.capacity = buffer_capacity
        self.name = name or f"sac_{mode}"
        self._seeds = np.random.SeedSequence(seed)
        self.rng = np.random.default_rng(self._seeds.spawn(1)[0])
        self.grad_steps = 0
        self.restarts = 0

    def _new_agent(self) -> None:
        seed = int(self._seeds.spawn(1)[0].generate_state(1)[0] % 2**31)
        self.agent = DiscreteSACAgent(self.spec, self.cfg, seed=seed)
        if self.init_state is not None:
            self.agent.load_state_dict(self.init_state)
        self.epoch = 0

    def _new_buffer(self) -> None:
        self.replay = ReplayBuffer(self.capacity, self.spec.obs_dim,
                                   (self.spec.n_users, len(self.spec.heads)))
        self.since_restart = 0

    def reset(self, env: Any) -> None:
        self.env = env.unwrapped
        self._new_agent()
        self._new_buffer()

    def act(self, obs: np.ndarray) -> np.ndarray:
        nvec = self.env.action_space.nvec.reshape(-1, 3)
        if self.since_restart < self.warmup:
            return self.rng.integers(0, nvec).astype(np.int64).ravel()
        action = self.agent.act(obs, None, greedy=True).reshape(nvec.shape)
        swap = self.rng.random(nvec.shape[0]) < self.explore
        action[swap] = self.rng.integers(0, nvec[swap]).astype(np.int64)
        return action.ravel()

    def observe(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray,
                info: dict[str, Any]) -> None:
        self.replay.add(obs, action, reward, next_obs, info["latency"], decisions_of(info))
        self.since_restart += 1
        if self.since_restart >= self.warmup:
            for _ in range(self.updates_per_slot):
                self.epoch += 1
                self.agent.update([self.replay.sample(self.batch, self.rng)], None, self.epoch,
                                  self.lambda1, self.lambda2)
                self.grad_steps += 1
        if info.get("upgrade", False):
            self.restarts += 1
            if self.mode == "retrain":
                self.init_state = None
                self._new_agent()
            self._new_buffer()
