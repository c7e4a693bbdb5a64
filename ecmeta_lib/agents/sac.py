"""Discrete multi-head soft actor-critic with an optional PEARL context encoder.

One class serves every method: with ``latent_dim == 0`` it is the plain discrete SAC of the
baselines (SAC_AiSF_i, SAC_DT, SAC_T_M); with ``latent_dim > 0`` it carries the context encoder
q_phi(z|c) and becomes PEARL's agent (paper Sec. IV-D, Algorithm 1).

Losses (paper eqs. 21-29; r is the reward times ``reward_scale``; H is the entropy summed over
users and heads, eq. 25; the temperature xi multiplies H / |U|, the entropy per user, matching
the critic, which is a mean over users - so one xi scale fits any number of users):

* critic (each twin i): (Q_i(s, a, z) - y)^2, y = r + gamma [min_i Q^_i(s', a^', z) + xi H(a^')],
  a^' the target actor's probabilities at s' (eq. 24); no terminal states exist (episodes are
  truncated), so d = 0. The encoder receives the critic loss plus beta * KL(q(z|c) || N(0, I)).
* actor (every ``lambda2`` epochs): -xi H(pi(s, z)) - min_i Q_i(s, pi(s, z), z), with the actor's
  probabilities in place of the one-hots (eqs. 26-27) and z detached: the actor loss never reaches
  the encoder.
* temperature (every ``lambda1`` epochs): xi (H - H_target), xi = exp(log_xi), with z detached.
  The paper writes xi (H + H_bar) with H_bar = 3|U| while calling H_bar "the negative of the action
  dimensions"; both readings push xi to zero for a discrete policy (its entropy is >= 0 > -3|U|), so
  ``target_entropy="paper"`` (H_target = -3|U|) is kept as an option and the default is a fraction
  of the maximum entropy (the evidence is in `ecmeta_lib.training`'s docstring).

Two options of ours (both need the structured networks; the ``paper`` profile keeps them off):

* ``per_user_reward`` (credit assignment): the reward is minus the mean of the users' latencies,
  and the controller observes each user's latency (``info["latency"]``), so each per-user value
  q_u(a_u) of the structured critic is regressed on its own target
  y_u = -latency_u * reward_scale + gamma [min_i q^_{i,u}(s', a^'_u) + xi H_u(a^')] (mean over
  users and batch); Q = mean_u q_u then still estimates the reward's target. The actor objective
  is unchanged (mean_u E_{a_u ~ pi_u} q_u).
* ``latent_per_user`` (adaptation): one latent z_u per user from `PerUserContextEncoder`
  (each user's AI service function is drawn independently, so a condition is a set of per-user
  regimes); z has shape (U, L) and user u's networks read their own z_u. KL = mean over users.

All sampling uses the agent's own ``torch.Generator`` (checkpointed), so runs are reproducible.
"""

from __future__ import annotations

import copy
import math
import os
import shutil
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .encoder import ContextEncoder, PerUserContextEncoder
from .networks import (
    ActionSpec,
    build_actor,
    build_critic,
    entropy_and_probs,
    joint_index,
    one_hot_actions,
    split_joint_index,
    user_entropy_and_probs,
)


def _require_cpp_compiler() -> None:
    """torch.compile's CPU backend builds C++; without a compiler it fails deep inside inductor,
    so say so first, with the way out."""
    names = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "c++", "clang++"]
    if not any(shutil.which(n) for n in names):
        raise RuntimeError(
            f"compiled_update=True compiles the update to C++ on the CPU, but no C++ compiler "
            f"was found (looked for {', '.join(names)}; set CXX to choose one): install one "
            "(e.g. g++) or train with agent.compiled_update=False (eager PyTorch, same algorithm)")


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; training stops (the last good checkpoint is kept)."""


@dataclass(frozen=True)
class SACConfig:
    """Hyper-parameters of the agent. Paper values (Table I) are noted; the rest are ours."""

    arch: str = "structured"
    """'flat' (paper: MLP over the flat vectors) or 'structured' (ours: per-user shared network)."""
    hidden: int = 128
    """Hidden width (paper: 700)."""
    n_layers: int = 2
    """Hidden layers of actor and critics (paper: 5)."""
    embed_dim: int = 16
    """Learned per-user embedding width ('structured' only)."""
    latent_dim: int = 0
    """Dimension of z; 0 = no encoder (plain SAC). (ours: 8 for PEARL)"""
    encoder_hidden: int = 128
    """Hidden width of the per-transition encoder MLP."""
    encoder_layers: int = 2
    """Hidden layers of the per-transition encoder MLP."""
    encoder_next_obs: bool = False
    """Feed s' to the encoder (paper: yes); off since slots are i.i.d. (ours)."""
    kl_weight: float = 0.1
    """beta of eq. (29) (paper: 0.1)."""
    lr: float = 3e-4
    """AdamW learning rate of the actor, and of the critics and encoder unless ``critic_lr`` is
    set (paper: 3e-5)."""
    critic_lr: float | None = None
    """AdamW learning rate of the critics and the encoder; None = ``lr`` (paper: one rate).
    Ours: under gamma = 0 the critic is a regressor with fixed targets and tolerates a larger
    step than the actor, which follows it."""
    temperature_lr: float = 3e-4
    """AdamW learning rate of log xi (ours; the paper gives one learning rate)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    gamma: float = 0.0
    """Discount (paper: not given). Slots are i.i.d. and action-independent: myopic optimum."""
    tau: float = 0.01
    """Soft target update rate (ours)."""
    init_temperature: float = 1e-3
    """Initial xi (ours)."""
    target_entropy: float | str = 0.2
    """Fraction of the maximum entropy sum_u sum_heads log|W| (ours), or 'paper' (-3|U|)."""
    reward_scale: float = 10.0
    """Rewards (minus mean latency in s) are multiplied by this before learning (ours)."""
    grad_clip: float = 0.0
    """Max gradient norm per optimiser step; 0 = off."""
    per_user_reward: bool = False
    """Regress each user's critic value on that user's own latency (ours; 'structured' only)."""
    latent_per_user: bool = False
    """PEARL: one latent z_u in R^latent_dim per user from a shared per-user encoder (ours;
    'structured' only); off: one global z (paper)."""
    posterior_prior_factor: bool = False
    """PEARL: multiply the prior N(0, I) into the product of per-transition factors, so the
    posterior starts at the prior and narrows monotonically (ours); off: PEARL's plain product."""
    pooled: bool = True
    """'structured': feed the mean over users of (features, actions) to every user's networks;
    off (ours): each user's networks read only that user's inputs (P2 coupling is ~1e-4)."""
    joint_actor: bool = False
    """'structured': one categorical per user over its joint (DS, TA, MS) actions instead of three
    independent heads (ours); needs ``per_user_reward`` and ``gamma=0``. With ``pooled`` the
    critics' load features come from the sampled slot's actions."""
    log_latency_critic: bool = False
    """Each per-user critic output regresses the log of the user's latency (ours): latency is a
    product of ratios, nearly additive in log space; q_u = -reward_scale * exp(output). Needs
    ``per_user_reward`` and ``gamma=0`` (the targets are then fixed, the critic a regressor)."""
    user_embedding: bool = True
    """'structured': the networks (actor, critics and the per-user encoder) read a learned
    per-user embedding; off (ours, PEARL): users are told apart by their inputs and z_u alone,
    so everything user- and condition-specific must come from the context through z_u rather
    than be memorised per user for the six twins (only three independent draws per user)."""
    twin_critics: bool = True
    """Two critics and their minimum (SAC's guard against bootstrapped overestimation); off
    (ours, ``joint_actor`` only): with gamma = 0 nothing is bootstrapped, so one critic
    regresses the same latencies at half the cost."""
    log_inputs: bool = False
    """'structured': read bandwidth, distance, task and result size on a log scale (ours)."""
    tau_zscore: bool = False
    """'structured': read the accuracy requirement as its z-score (tau - mean) / std instead of
    tau / 100 (ours; see `InputScaling`)."""
    lr_cosine: bool = False
    """Cosine-decay the learning rates of actor, critics and encoder over the run's updates to
    ``lr * lr_final_factor`` (ours); the trainer sets the horizon (`set_lr_horizon`)."""
    lr_final_factor: float = 0.05
    """Final fraction of ``lr`` under ``lr_cosine``."""
    encoder_decisions: bool = False
    """PEARL per-user encoder reads the executed (DS, placement, model) and the log latency
    instead of the requested action (ours; see `PerUserContextEncoder`)."""
    random_context: bool = False
    """PEARL: context transitions (the encoder's training contexts and the n slots of adaptation)
    are collected with uniformly random actions, an exploration policy (ours); off: posterior
    sampling, whose contexts show mostly the options the policy already prefers."""
    greedy_critic: bool = False
    """Acting greedily (evaluation, adaptation, validation), each user takes the joint action of
    least latency under its critic instead of the actor's mode (ours; ``joint_actor`` only).
    Under gamma = 0 the actor is an amortised argmin of the critic that lags it (updated every
    lambda2 epochs at a smaller rate); the argmin over the 45 values of one critic pass is exact
    and cheaper. Exploration while collecting still samples the actor. Needs ``pooled=False``."""
    compiled_update: bool = False
    """Speed (ours; ``joint_actor`` only): the update's two objectives (encoder + critic loss;
    actor loss) run through ``torch.compile`` and AdamW takes its fused kernel. The same
    algorithm on the same samples: only the rounding differs from eager PyTorch, so runs are
    reproducible but not bit-identical to ``compiled_update=False``. On small networks an eager
    update spends a large share in elementwise memory passes (ReLU backward, bias copies and
    sums, the optimiser's per-tensor ops) between its matrix products; fused, more of it goes to
    them (``make bench``). A process's first update compiles (~30 s on 2 cores; inductor caches
    the result on disk for later processes)."""

    def __post_init__(self) -> None:
        if self.arch not in ("flat", "structured"):
            raise ValueError(f"arch must be 'flat' or 'structured', got {self.arch!r}")
        for name in ("hidden", "n_layers", "encoder_hidden", "encoder_layers", "embed_dim"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not isinstance(self.latent_dim, int) or self.latent_dim < 0:
            raise ValueError(f"latent_dim must be an integer >= 0, got {self.latent_dim!r}")
        for name in ("lr", "temperature_lr", "init_temperature", "reward_scale"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive finite number, got {v!r}")
        for name in ("weight_decay", "kl_weight", "grad_clip"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        for name in ("per_user_reward", "latent_per_user", "posterior_prior_factor", "pooled",
                     "joint_actor", "log_latency_critic", "lr_cosine", "encoder_decisions",
                     "log_inputs", "twin_critics", "user_embedding", "random_context",
                     "tau_zscore", "greedy_critic", "compiled_update"):
            v = getattr(self, name)
            if not isinstance(v, bool):
                raise ValueError(f"{name} must be a bool, got {v!r}")
            if (v and name in ("per_user_reward", "latent_per_user", "joint_actor",
                               "log_latency_critic", "log_inputs", "tau_zscore")
                    and self.arch != "structured"):
                raise ValueError(f"{name} needs arch='structured' (per-user networks)")
        if not 0.0 <= self.gamma < 1.0:
            raise ValueError(f"gamma must be in [0, 1), got {self.gamma!r}")
        if self.joint_actor and (self.gamma > 0 or not self.per_user_reward):
            raise ValueError("joint_actor needs gamma=0 and per_user_reward=True")
        if self.log_latency_critic and (not self.per_user_reward or self.gamma > 0):
            raise ValueError("log_latency_critic needs per_user_reward=True and gamma=0")
        if self.greedy_critic and (not self.joint_actor or self.pooled):
            raise ValueError("greedy_critic needs joint_actor=True and pooled=False (per-user "
                             "critics of every joint action that read no other user's action)")
        if self.compiled_update and not self.joint_actor:
            raise ValueError("compiled_update covers the joint-actor update (joint_actor=True); "
                             "the paper's flat networks spend their update in matrix products "
                             "anyway")
        if not self.twin_critics and not self.joint_actor:
            raise ValueError("twin_critics=False needs joint_actor=True (gamma = 0 updates)")
        if self.random_context and self.latent_dim == 0:
            raise ValueError("random_context needs a context encoder (latent_dim >= 1)")
        if self.encoder_decisions and not self.latent_per_user:
            raise ValueError("encoder_decisions needs latent_per_user=True (per-user encoder)")
        c = self.critic_lr
        if c is not None and not (isinstance(c, (int, float)) and not isinstance(c, bool)
                                  and math.isfinite(c) and c > 0):
            raise ValueError(f"critic_lr must be None or a positive finite number, got {c!r}")
        if not 0.0 < self.lr_final_factor <= 1.0:
            raise ValueError(f"lr_final_factor must be in (0, 1], got {self.lr_final_factor!r}")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"tau must be in (0, 1], got {self.tau!r}")
        te = self.target_entropy
        if isinstance(te, str):
            ok = te == "paper"
        else:
            ok = isinstance(te, (int, float)) and 0.0 < te < 1.0
        if not ok:
            raise ValueError(f"target_entropy must be a fraction in (0, 1) or 'paper', got {te!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _known_latency(data: dict[str, np.ndarray]) -> np.ndarray:
    """The per-user latencies (N, U) of a batch/context; refuses transitions stored without them."""
    lat = data.get("latency")
    if lat is None or not np.isfinite(lat).all():
        raise ValueError("per_user_reward / latent_per_user need every transition's per-user "
                         "latency (add it to the buffers from the env's info['latency'])")
    return lat


def _finite(name: str, value: torch.Tensor) -> torch.Tensor:
    if not torch.isfinite(value).all():
        raise NonFiniteLossError(f"{name} is not finite ({value.item()}); training stopped")
    return value


class DiscreteSACAgent(nn.Module):
    """Actor, twin critics, their targets, the temperature and (PEARL) the context encoder.

    Args:
        spec: environment shapes (see `ActionSpec.from_env`).
        cfg: hyper-parameters.
        seed: seeds the network initialisation and the agent's sampling generator.
        device: torch device of the networks.
    """

    def __init__(self, spec: ActionSpec, cfg: SACConfig, seed: int = 0,
                 device: str | torch.device = "cpu") -> None:
        super().__init__()
        self.spec, self.cfg, self.device = spec, cfg, torch.device(device)
        init = torch.Generator().manual_seed(int(seed))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=init)))
            embed = cfg.embed_dim if cfg.user_embedding else 0
            args = (spec, cfg.latent_dim, cfg.hidden, cfg.n_layers, embed)
            scaling = dict(log_inputs=cfg.log_inputs, tau_zscore=cfg.tau_zscore)
            self.actor = build_actor(cfg.arch, *args, joint=cfg.joint_actor, pooled=cfg.pooled,
                                     **scaling)
            self.critic1 = build_critic(cfg.arch, *args, pooled=cfg.pooled, **scaling)
            self.critic2 = (build_critic(cfg.arch, *args, pooled=cfg.pooled, **scaling)
                            if cfg.twin_critics else None)
            self.encoder: ContextEncoder | PerUserContextEncoder | None = None
            if cfg.latent_dim > 0 and cfg.latent_per_user:
                self.encoder = PerUserContextEncoder(spec, cfg.latent_dim, cfg.encoder_hidden,
                                                     cfg.encoder_layers, embed,
                                                     cfg.encoder_next_obs, cfg.reward_scale,
                                                     cfg.posterior_prior_factor,
                                                     cfg.encoder_decisions)
            elif cfg.latent_dim > 0:
                self.encoder = ContextEncoder(spec, cfg.latent_dim, cfg.encoder_hidden,
                                              cfg.encoder_layers, cfg.encoder_next_obs,
                                              cfg.reward_scale, cfg.posterior_prior_factor)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic1_target = copy.deepcopy(self.critic1).requires_grad_(False)
        self.critic2_target = (copy.deepcopy(self.critic2).requires_grad_(False)
                               if self.critic2 is not None else None)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(cfg.init_temperature)))
        if cfg.target_entropy == "paper":
            self.target_entropy = -3.0 * spec.n_users
        else:
            self.target_entropy = float(cfg.target_entropy) * spec.max_entropy
        self.to(self.device)
        critic_params = [p for c in self.critics for p in c.parameters()]
        if self.encoder is not None:
            critic_params += list(self.encoder.parameters())
        # one fused kernel per tensor with compiled_update; else foreach (bit-identical to the
        # single-tensor loop, fewer dispatches)
        impl = {"fused": True} if cfg.compiled_update else {"foreach": True}
        self.actor_opt = torch.optim.AdamW(self.actor.parameters(), lr=cfg.lr,
                                           weight_decay=cfg.weight_decay, **impl)
        self.critic_opt = torch.optim.AdamW(critic_params, lr=self.critic_base_lr,
                                            weight_decay=cfg.weight_decay, **impl)
        self.temperature_opt = torch.optim.AdamW([self.log_temperature], lr=cfg.temperature_lr,
                                                 weight_decay=0.0, **impl)
        self.generator = torch.Generator().manual_seed(int(seed) + 1)
        # gradient steps taken (checkpointed with the weights): drives the cosine schedule
        self.register_buffer("n_updates", torch.zeros((), dtype=torch.long))
        self.lr_horizon = 0
        self._compiled: dict[str, Any] = {}  # `_objective`'s compiled methods

    @property
    def critic_base_lr(self) -> float:
        """Learning rate of the critics and the encoder before any schedule."""
        return self.cfg.lr if self.cfg.critic_lr is None else float(self.cfg.critic_lr)

    def set_lr_horizon(self, n_updates: int) -> None:
        """Number of updates over which ``lr_cosine`` decays the learning rates."""
        self.lr_horizon = int(n_updates)

    def _set_lr(self) -> None:
        cfg = self.cfg
        if not cfg.lr_cosine or self.lr_horizon <= 0:
            return
        frac = min(float(self.n_updates) / self.lr_horizon, 1.0)
        cosine = 0.5 * (1 + math.cos(math.pi * frac))
        factor = cfg.lr_final_factor + (1 - cfg.lr_final_factor) * cosine
        for opt, base in ((self.actor_opt, cfg.lr), (self.critic_opt, self.critic_base_lr)):
            for group in opt.param_groups:
                group["lr"] = base * factor

    # --- helpers -------------------------------------------------------------------------
    @property
    def temperature(self) -> float:
        return float(self.log_temperature.detach().exp())

    def _t(self, x: np.ndarray, dtype=torch.float32) -> torch.Tensor:
        return torch.as_tensor(x, dtype=dtype, device=self.device)

    def _noise(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.rand(shape, generator=self.generator).to(self.device)

    # --- encoder -------------------------------------------------------------------------
    @property
    def latent_shape(self) -> tuple[int, ...]:
        """Shape of z: (latent_dim,), or (n_users, latent_dim) with ``latent_per_user``."""
        if self.cfg.latent_per_user:
            return (self.spec.n_users, self.cfg.latent_dim)
        return (self.cfg.latent_dim,)

    def posterior(self, context: dict[str, np.ndarray] | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, var) of q(z|c), each of `latent_shape` - (latent_dim,), or (n_users, latent_dim)
        with ``latent_per_user`` - from a context dict of N transitions."""
        return self._posterior(self._context_inputs(context))

    def _context_inputs(self, context: dict[str, np.ndarray] | None) -> tuple | None:
        """The encoder's tensors (obs, actions, signal, next_obs or None) of a context dict, or
        None for an empty one; refuses contexts stored without what the encoder reads."""
        if self.encoder is None:
            raise RuntimeError("this agent has no context encoder (latent_dim == 0)")
        if context is None or len(context["reward"]) == 0:
            return None
        signal, acts = context["reward"], context["action"]
        if self.cfg.latent_per_user:
            signal = _known_latency(context)
        if self.cfg.encoder_decisions:
            acts = context.get("decision")
            if acts is None or (acts < 0).any():
                raise ValueError("encoder_decisions needs every transition's executed decisions "
                                 "(add info's ds / placement / model to the buffers)")
        return (self._t(context["obs"]), self._t(acts, torch.int64), self._t(signal),
                self._t(context["next_obs"]) if self.cfg.encoder_next_obs else None)

    def _posterior(self, inputs: tuple | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, var) from `_context_inputs`' tensors; the prior N(0, I) for an empty context."""
        if inputs is None:
            z0 = torch.zeros(self.latent_shape, device=self.device)
            return z0, torch.ones_like(z0)
        return self.encoder.posterior(*inputs)

    def infer_z(self, context: dict[str, np.ndarray] | None, *,
                sample: bool) -> torch.Tensor | None:
        """z for acting: a posterior draw (``sample``) or the posterior mean; None if no encoder."""
        if self.encoder is None:
            return None
        with torch.no_grad():
            mu, var = self.posterior(context)
            if sample:
                eps = torch.randn(mu.shape, generator=self.generator).to(self.device)
                return mu + var.sqrt() * eps
            return mu

    # --- acting --------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: np.ndarray, z: torch.Tensor | None = None, *,
            greedy: bool = True) -> np.ndarray:
        """Flat int64 action [DS, TA, MS] * U: argmax per head, or a sample (exploration)."""
        o = self._t(obs).reshape(1, -1)
        zz = None if z is None else z.reshape(1, *z.shape)
        if greedy and self.cfg.greedy_critic:
            idx = self.joint_values(o, zz)[0].argmax(dim=-1)
            return split_joint_index(idx, self.spec).cpu().numpy().astype(np.int64).ravel()
        logits = self.actor(o, zz)[0]
        if self.cfg.joint_actor:
            if not greedy:
                u = self._noise(tuple(logits.shape)).clamp_(1e-12, 1.0 - 1e-7)
                logits = logits - torch.log(-torch.log(u))
            idx = logits.argmax(dim=-1)
            return split_joint_index(idx, self.spec).cpu().numpy().astype(np.int64).ravel()
        out = []
        for part in torch.split(logits, list(self.spec.heads), dim=-1):
            if not greedy:  # Gumbel-max draw from softmax(part)
                u = self._noise(tuple(part.shape)).clamp_(1e-12, 1.0 - 1e-7)
                part = part - torch.log(-torch.log(u))
            out.append(part.argmax(dim=-1))
        return torch.stack(out, dim=-1).cpu().numpy().astype(np.int64).ravel()

    # --- learning ------------------------------------------------------------------------
    def _batch_z(self, contexts: list[dict[str, np.ndarray]] | None, batch: int):
        """z per sampled condition (reparametrised, with grad to the encoder) and the mean KL."""
        if self.encoder is None:
            return None, None
        inputs, eps = self._z_noise(contexts)
        return self._z_and_kl(inputs, eps, batch)

    def _z_noise(self, contexts: list[dict[str, np.ndarray]]) -> tuple[list, list[torch.Tensor]]:
        """Each sampled condition's encoder inputs and its reparametrisation noise (drawn here,
        outside any compiled graph, from the agent's generator)."""
        inputs = [self._context_inputs(c) for c in contexts]
        eps = [torch.randn(self.latent_shape, generator=self.generator).to(self.device)
               for _ in contexts]
        return inputs, eps

    def _z_and_kl(self, inputs: list, eps: list[torch.Tensor], batch: int):
        """z = mu + sigma * eps per condition, repeated over its `batch` samples, and the mean KL
        to the prior."""
        zs, kls = [], []
        for inp, e in zip(inputs, eps, strict=True):
            mu, var = self._posterior(inp)
            z = mu + var.sqrt() * e
            zs.append(z.unsqueeze(0).expand(batch, *z.shape))
            kls.append(self.encoder.kl_to_prior(mu, var))
        return torch.cat(zs, dim=0), torch.stack(kls).mean()

    def _objective(self, name: str):
        """The bound method `name`, through ``torch.compile`` with ``cfg.compiled_update``
        (compiled once per agent, at its first use)."""
        fn = getattr(self, name)
        if not self.cfg.compiled_update:
            return fn
        if name not in self._compiled:
            if self.device.type == "cpu":
                _require_cpp_compiler()
            self._compiled[name] = torch.compile(fn)
        return self._compiled[name]

    def _step(self, opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip > 0:
            for group in opt.param_groups:
                nn.utils.clip_grad_norm_(group["params"], self.cfg.grad_clip)
        opt.step()

    def update(self, batches: list[dict[str, np.ndarray]],
               contexts: list[dict[str, np.ndarray]] | None, epoch: int, lambda1: int,
               lambda2: int) -> dict[str, float]:
        """One epoch of Algorithm 1 (lines 9-19) on the sampled conditions K'.

        Args:
            batches: one replay batch per sampled condition (same batch size each).
            contexts: one context per sampled condition (PEARL), else None.
            epoch: 1-based epoch index t_epoch; the temperature steps when epoch % lambda1 == 0,
                the actor and the targets when epoch % lambda2 == 0.
        Returns:
            diagnostics (losses, temperature, entropy, kl) of this epoch.
        """
        self._set_lr()
        self.n_updates += 1
        if self.cfg.joint_actor:
            return self._update_joint(batches, contexts, epoch, lambda1, lambda2)
        cfg, spec = self.cfg, self.spec
        bsz = len(batches[0]["reward"])
        cat = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
        obs, next_obs = self._t(cat["obs"]), self._t(cat["next_obs"])
        act = one_hot_actions(self._t(cat["action"], torch.int64), spec)
        rew = self._t(cat["reward"]) * cfg.reward_scale
        z, kl = self._batch_z(contexts, bsz)
        zd = None if z is None else z.detach()
        xi = self.log_temperature.exp().detach()

        if cfg.per_user_reward:
            # per-user targets (B, U): y_u = -latency_u * scale [+ gamma (q^_u + xi H_u)]
            with torch.no_grad():
                y = -self._t(_known_latency(cat)) * cfg.reward_scale
                if cfg.gamma > 0:
                    ent_n, probs_n = user_entropy_and_probs(self.actor_target(next_obs, zd), spec)
                    q_n = torch.min(self.critic1_target.per_user(next_obs, probs_n, zd),
                                    self.critic2_target.per_user(next_obs, probs_n, zd))
                    y = y + cfg.gamma * (q_n + xi * ent_n)
            q1u, q2u = self.critic1.per_user(obs, act, z), self.critic2.per_user(obs, act, z)
            q1 = q1u.mean(dim=1)
            critic_loss = _finite("critic loss",
                                  ((q1u - y) ** 2).mean() + ((q2u - y) ** 2).mean())
        else:
            with torch.no_grad():
                y = rew
                if cfg.gamma > 0:
                    ent_n, probs_n = entropy_and_probs(self.actor_target(next_obs, zd), spec)
                    q_n = torch.min(self.critic1_target(next_obs, probs_n, zd),
                                    self.critic2_target(next_obs, probs_n, zd))
                    y = rew + cfg.gamma * (q_n + xi * ent_n / spec.n_users)
            q1, q2 = self.critic1(obs, act, z), self.critic2(obs, act, z)
            critic_loss = _finite("critic loss", ((q1 - y) ** 2).mean() + ((q2 - y) ** 2).mean())
        total = critic_loss
        diag = {"critic_loss": float(critic_loss.detach()), "q_mean": float(q1.mean().detach())}
        if kl is not None:
            kl_loss = _finite("KL loss", cfg.kl_weight * kl)
            total = total + kl_loss
            diag["kl"] = float(kl.detach())
        self._step(self.critic_opt, total)

        if epoch % lambda1 == 0:
            with torch.no_grad():
                ent, _ = entropy_and_probs(self.actor(obs, zd), spec)
            t_loss = _finite("temperature loss",
                             (self.log_temperature.exp()
                              * (ent - self.target_entropy) / spec.n_users).mean())
            self._step(self.temperature_opt, t_loss)
            diag["temperature_loss"] = float(t_loss.detach())
        if epoch % lambda2 == 0:
            a_loss, ent = self.actor_loss(obs, zd)
            self._step(self.actor_opt, _finite("actor loss", a_loss))
            self.soft_update()
            diag.update(actor_loss=float(a_loss.detach()), entropy=float(ent.mean().detach()))
        diag["temperature"] = self.temperature
        return diag

    @property
    def critics(self) -> list[nn.Module]:
        """The trained critics: the twins, or the one critic without ``twin_critics``."""
        return [c for c in (self.critic1, self.critic2) if c is not None]

    def user_values(self, raw: torch.Tensor) -> torch.Tensor:
        """Critic outputs -> per-user values in reward units (-latency * reward_scale)."""
        if self.cfg.log_latency_critic:
            return -self.cfg.reward_scale * raw.exp()
        return raw

    def joint_values(self, obs: torch.Tensor, z: torch.Tensor | None,
                     action: torch.Tensor | None = None) -> torch.Tensor:
        """Every user's value (reward units) of each of its joint actions, (B, U, prod(heads)):
        the pessimistic twin's, as the actor loss uses; ``action`` (one-hots) only feeds the
        pooled load features."""
        return self._pessimistic_values([c.values(obs, action, z) for c in self.critics])

    def _pessimistic_values(self, raws: list[torch.Tensor]) -> torch.Tensor:
        """Per-user values of the critics' outputs `raws`, the minimum over twins."""
        q = self.user_values(raws[0])
        for r in raws[1:]:
            q = torch.min(q, self.user_values(r))
        return q

    def predicted_latency(self, obs: torch.Tensor, action: torch.Tensor,
                          z: torch.Tensor | None) -> torch.Tensor:
        """The critics' per-user latency (s) of the taken actions, (B, U): the mean of the twins
        (structured, per-user-reward critics only)."""
        if not self.cfg.per_user_reward:
            raise ValueError("predicted_latency needs a per-user (per_user_reward) critic")
        act = one_hot_actions(action, self.spec)
        vals = [self.user_values(c.values(obs, act, z)) for c in self.critics]
        idx = joint_index(action, self.spec).unsqueeze(-1)
        q = torch.stack([v.gather(-1, idx).squeeze(-1) for v in vals]).mean(0)
        return -q / self.cfg.reward_scale

    def _update_joint(self, batches: list[dict[str, np.ndarray]],
                      contexts: list[dict[str, np.ndarray]] | None, epoch: int, lambda1: int,
                      lambda2: int) -> dict[str, float]:
        """`update` for the joint per-user actor (gamma = 0, per-user critics, no pooling).

        The critics regress each user's latency (or its log) on the taken joint action; both
        read only user u's inputs, so one pass gives every user's value of all its joint
        actions, which the actor loss reuses (detached): E_{a~pi_u}[xi log pi_u(a) - q_u(a)]
        summed exactly over the joint actions."""
        cfg, spec = self.cfg, self.spec
        bsz = len(batches[0]["reward"])
        cat = {k: np.concatenate([b[k] for b in batches]) for k in ("obs", "action", "latency")}
        obs, action = self._t(cat["obs"]), self._t(cat["action"], torch.int64)
        idx = joint_index(action, spec).unsqueeze(-1)  # (B, U, 1)
        act = one_hot_actions(action, spec) if cfg.pooled else None
        lat = self._t(_known_latency(cat))
        y = lat.clamp_min(1e-6).log() if cfg.log_latency_critic else -lat * cfg.reward_scale
        inputs, eps = self._z_noise(contexts) if self.encoder is not None else (None, None)
        xi = self.log_temperature.exp().detach()

        total, critic_loss, kl, z, pred, raws = self._objective("_joint_critic_objective")(
            obs, act, idx, y, inputs, eps, bsz)
        zd = None if z is None else z.detach()
        _finite("critic loss", critic_loss)
        diag = {"critic_loss": float(critic_loss.detach()),
                "q_mean": float(self.user_values(pred).mean())}
        if kl is not None:
            _finite("KL loss", cfg.kl_weight * kl)
            diag["kl"] = float(kl.detach())
        self._step(self.critic_opt, total)

        if epoch % lambda2 == 0:
            a_loss, ent_u = self._objective("_joint_actor_objective")(obs, zd, raws, xi)
        elif epoch % lambda1 == 0:
            ent_u = self._joint_policy(obs, zd)[2]
        if epoch % lambda1 == 0:
            t_loss = _finite("temperature loss",
                             (self.log_temperature.exp()
                              * (ent_u.detach().sum(-1) - self.target_entropy)
                              / spec.n_users).mean())
            self._step(self.temperature_opt, t_loss)
            diag["temperature_loss"] = float(t_loss.detach())
        if epoch % lambda2 == 0:
            self._step(self.actor_opt, _finite("actor loss", a_loss))
            # no soft_update: with gamma = 0 no target network enters any loss
            diag.update(actor_loss=float(a_loss.detach()),
                        entropy=float(ent_u.detach().sum(-1).mean()))
        diag["temperature"] = self.temperature
        return diag

    def _joint_critic_objective(self, obs: torch.Tensor, act: torch.Tensor | None,
                                idx: torch.Tensor, y: torch.Tensor, inputs: list | None,
                                eps: list[torch.Tensor] | None, batch: int):
        """The critics' regression on the taken joint actions plus beta * KL (the encoder's
        loss): (total, critic loss, KL or None, z or None, the first critic's taken-action
        outputs and every critic's outputs, both detached). Pure tensor code: `_objective` may
        compile it."""
        z, kl = (None, None) if inputs is None else self._z_and_kl(inputs, eps, batch)
        raws = [c.values(obs, act, z) for c in self.critics]
        preds = [r.gather(-1, idx).squeeze(-1) for r in raws]
        critic_loss = sum(((p - y) ** 2).mean() for p in preds)
        total = critic_loss if kl is None else critic_loss + self.cfg.kl_weight * kl
        return total, critic_loss, kl, z, preds[0].detach(), [r.detach() for r in raws]

    def _joint_policy(self, obs: torch.Tensor, zd: torch.Tensor | None):
        """The joint actor's log-probabilities and probabilities (B, U, J) and entropies (B, U)."""
        logp = torch.log_softmax(self.actor(obs, zd), dim=-1)
        p = logp.exp()
        return logp, p, -(p * logp).sum(-1)

    def _joint_actor_objective(self, obs: torch.Tensor, zd: torch.Tensor | None,
                               raws: list[torch.Tensor], xi: torch.Tensor):
        """E_{a~pi_u}[xi log pi_u(a) - q_u(a)], summed exactly over the joint actions, with q_u
        the pessimistic critic's (detached) values; and the users' entropies (B, U)."""
        logp, p, ent_u = self._joint_policy(obs, zd)
        q_all = self._pessimistic_values(raws)
        return (p * (xi * logp - q_all)).sum(-1).mean(), ent_u

    def actor_loss(self, obs: torch.Tensor,
                   z: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. (27): mean of -xi H(pi(s, z)) - min_i Q_i(s, pi(s, z), z), and the entropy (B,).

        z is detached here (whatever the caller passes): the actor loss never reaches the encoder.
        """
        zd = None if z is None else z.detach()
        ent, probs = entropy_and_probs(self.actor(obs, zd), self.spec)
        q_pi = torch.min(self.critic1(obs, probs, zd), self.critic2(obs, probs, zd))
        xi = self.log_temperature.exp().detach()
        return (-xi * ent / self.spec.n_users - q_pi).mean(), ent

    @torch.no_grad()
    def soft_update(self) -> None:
        for net, tgt in ((self.actor, self.actor_target), (self.critic1, self.critic1_target),
                         (self.critic2, self.critic2_target)):
            if net is None:
                continue
            for p, tp in zip(net.parameters(), tgt.parameters(), strict=True):
                tp.lerp_(p, self.cfg.tau)

    # --- persistence ---------------------------------------------------------------------
    def full_state(self) -> dict[str, Any]:
        """Networks, optimisers and the sampling generator (for bit-exact resume)."""
        return {"model": {k: v.detach().cpu().clone() for k, v in self.state_dict().items()},
                "actor_opt": self.actor_opt.state_dict(),
                "critic_opt": self.critic_opt.state_dict(),
                "temperature_opt": self.temperature_opt.state_dict(),
                "generator": self.generator.get_state()}

    def load_full_state(self, state: dict[str, Any]) -> None:
        self.load_state_dict(state["model"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.temperature_opt.load_state_dict(state["temperature_opt"])
        self.generator.set_state(state["generator"])
