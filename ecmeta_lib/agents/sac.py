"""Discrete multi-head soft actor-critic with an optional PEARL context encoder.

One class serves every method: with ``latent_dim == 0`` it is the plain discrete SAC of the
baselines (SAC_AiSF_i, SAC_DT, SAC_T_M); with ``latent_dim > 0`` it carries the context encoder
q_phi(z|c) and becomes PEARL's agent (paper Sec. IV-D, Algorithm 1).

The update rules (the paper's soft-Bellman discrete SAC, eqs. 21-29, and ours, the per-user
myopic joint update) are in `ecmeta_lib.agents.updates`, each readable in one screen; this
module holds what they read: the networks, their optimisers and learning-rate schedule, the
temperature, z inference (posterior, reparametrised draws, KL) and the critics' per-user values.
The temperature xi multiplies H / |U|, the entropy per user, matching the critic, which is a
mean over users - so one xi scale fits any number of users. The paper writes xi (H + H_bar) with
H_bar = 3|U| while calling H_bar "the negative of the action dimensions"; both readings push xi
to zero for a discrete policy (its entropy is >= 0 > -3|U|), so ``target_entropy="paper"``
(H_target = -3|U|) is kept as an option and the default is a fraction of the maximum entropy.

Options of ours (`ecmeta_lib.agents.config` documents each): ``per_user_reward`` (each user's
critic value regresses that user's own latency: the controller observes ``info["latency"]``)
and ``latent_per_user`` (one z_u per user from `PerUserContextEncoder`: each user's AI service
function is drawn independently, so a condition is a set of per-user regimes).

All sampling uses the agent's own ``torch.Generator`` (checkpointed), so runs are reproducible.
"""

from __future__ import annotations

import copy
import functools
import math
import os
import shutil
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from .config import SACConfig, target_entropy
from .encoder import ContextEncoder, PerUserContextEncoder
from .networks import (
    ActionSpec,
    build_actor,
    build_critic,
    joint_index,
    one_hot_actions,
    split_joint_index,
)
from .updates import UPDATES, known_latency


def _require_cpp_compiler() -> None:
    """torch.compile's CPU backend builds C++; without a compiler it fails deep inside inductor,
    so say so first, with the way out."""
    names = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "c++", "clang++"]
    if not any(shutil.which(n) for n in names):
        raise RuntimeError(
            f"compiled_update=True compiles the update to C++ on the CPU, but no C++ compiler "
            f"was found (looked for {', '.join(names)}; set CXX to choose one): install one "
            "(e.g. g++) or train with agent.compiled_update=False (eager PyTorch, same algorithm)")


def resolve_device(device: str | torch.device) -> torch.device:
    """"auto" -> CUDA when available, else the CPU; anything else as torch reads it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


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
            net, enc = cfg.net, cfg.encoder
            embed = net.embed_dim if net.user_embedding else 0
            args = (spec, enc.latent_dim, net.hidden, net.n_layers, embed)
            scaling = dict(log_inputs=net.log_inputs, tau_zscore=net.tau_zscore)
            self.actor = build_actor(net.arch, *args, joint=cfg.actor.joint_actor,
                                     pooled=net.pooled, **scaling)
            self.critic1 = build_critic(net.arch, *args, pooled=net.pooled, **scaling)
            self.critic2 = (build_critic(net.arch, *args, pooled=net.pooled, **scaling)
                            if cfg.critic.twin_critics else None)
            self.encoder: ContextEncoder | PerUserContextEncoder | None = None
            if enc.latent_dim > 0 and enc.latent_per_user:
                self.encoder = PerUserContextEncoder(spec, enc.latent_dim, enc.encoder_hidden,
                                                     enc.encoder_layers, embed,
                                                     enc.encoder_next_obs, cfg.critic.reward_scale,
                                                     enc.posterior_prior_factor,
                                                     enc.encoder_decisions)
            elif enc.latent_dim > 0:
                self.encoder = ContextEncoder(spec, enc.latent_dim, enc.encoder_hidden,
                                              enc.encoder_layers, enc.encoder_next_obs,
                                              cfg.critic.reward_scale, enc.posterior_prior_factor)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic1_target = copy.deepcopy(self.critic1).requires_grad_(False)
        self.critic2_target = (copy.deepcopy(self.critic2).requires_grad_(False)
                               if self.critic2 is not None else None)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(cfg.actor.init_temperature)))
        self.target_entropy = target_entropy(cfg, spec.n_users, spec.heads)
        self.to(self.device)
        critic_params = [p for c in self.critics for p in c.parameters()]
        if self.encoder is not None:
            critic_params += list(self.encoder.parameters())
        # one fused kernel per tensor with compiled_update; else foreach (bit-identical to the
        # single-tensor loop, fewer dispatches)
        impl = {"fused": True} if cfg.optim.compiled_update else {"foreach": True}
        self.actor_opt = torch.optim.AdamW(self.actor.parameters(), lr=cfg.optim.lr,
                                           weight_decay=cfg.optim.weight_decay, **impl)
        self.critic_opt = torch.optim.AdamW(critic_params, lr=self.critic_base_lr,
                                            weight_decay=cfg.optim.weight_decay, **impl)
        self.temperature_opt = torch.optim.AdamW([self.log_temperature],
                                                 lr=cfg.optim.temperature_lr, weight_decay=0.0,
                                                 **impl)
        self.generator = torch.Generator().manual_seed(int(seed) + 1)
        # gradient steps taken (checkpointed with the weights): drives the cosine schedule
        self.register_buffer("n_updates", torch.zeros((), dtype=torch.long))
        self.lr_horizon = 0
        self._compiled: dict[str, Any] = {}  # `_objective`'s compiled methods

    @property
    def critic_base_lr(self) -> float:
        """Learning rate of the critics and the encoder before any schedule."""
        opt = self.cfg.optim
        return opt.lr if opt.critic_lr is None else float(opt.critic_lr)

    def set_lr_horizon(self, n_updates: int) -> None:
        """Number of updates over which ``lr_cosine`` decays the learning rates."""
        self.lr_horizon = int(n_updates)

    def _set_lr(self) -> None:
        cfg = self.cfg
        if not cfg.optim.lr_cosine or self.lr_horizon <= 0:
            return
        frac = min(float(self.n_updates) / self.lr_horizon, 1.0)
        cosine = 0.5 * (1 + math.cos(math.pi * frac))
        factor = cfg.optim.lr_final_factor + (1 - cfg.optim.lr_final_factor) * cosine
        for opt, base in ((self.actor_opt, cfg.optim.lr), (self.critic_opt, self.critic_base_lr)):
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
        if self.cfg.encoder.latent_per_user:
            return (self.spec.n_users, self.cfg.encoder.latent_dim)
        return (self.cfg.encoder.latent_dim,)

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
        if self.cfg.encoder.latent_per_user:
            signal = known_latency(context)
        if self.cfg.encoder.encoder_decisions:
            acts = context.get("decision")
            if acts is None or (acts < 0).any():
                raise ValueError("encoder_decisions needs every transition's executed decisions "
                                 "(add info's ds / placement / model to the buffers)")
        return (self._t(context["obs"]), self._t(acts, torch.int64), self._t(signal),
                self._t(context["next_obs"]) if self.cfg.encoder.encoder_next_obs else None)

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
        if greedy and self.cfg.actor.greedy_critic:
            idx = self.joint_values(o, zz)[0].argmax(dim=-1)
            return split_joint_index(idx, self.spec).cpu().numpy().astype(np.int64).ravel()
        logits = self.actor(o, zz)[0]
        if self.cfg.actor.joint_actor:
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

    def _objective(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """The objective `fn` (``fn(agent, ...)``, `ecmeta_lib.agents.updates`) bound to this
        agent, through ``torch.compile`` with ``compiled_update`` (compiled once per agent, at
        its first use; `_compiled` holds them by name)."""
        bound = functools.partial(fn, self)
        if not self.cfg.optim.compiled_update:
            return bound
        name = fn.__name__
        if name not in self._compiled:
            if self.device.type == "cpu":
                _require_cpp_compiler()
            self._compiled[name] = torch.compile(bound)
        return self._compiled[name]

    def _step(self, opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.optim.grad_clip > 0:
            for group in opt.param_groups:
                nn.utils.clip_grad_norm_(group["params"], self.cfg.optim.grad_clip)
        opt.step()

    def update(self, batches: list[dict[str, np.ndarray]],
               contexts: list[dict[str, np.ndarray]] | None, epoch: int, lambda1: int,
               lambda2: int) -> dict[str, float]:
        """One epoch of Algorithm 1 (lines 9-19) on the sampled conditions K', by the config's
        update rule (`ecmeta_lib.agents.updates`; `SACConfig.update_rule`).

        Args:
            batches: one replay batch per sampled condition (same batch size each).
            contexts: one context per sampled condition (PEARL), else None.
            epoch: 1-based epoch index t_epoch; the temperature steps when epoch % lambda1 == 0,
                the actor (and the targets) when epoch % lambda2 == 0.
        Returns:
            diagnostics (losses, temperature, entropy, kl) of this epoch.
        """
        self._set_lr()
        self.n_updates += 1
        return UPDATES[self.cfg.update_rule](self, batches, contexts, epoch, lambda1, lambda2)

    @property
    def critics(self) -> list[nn.Module]:
        """The trained critics: the twins, or the one critic without ``twin_critics``."""
        return [c for c in (self.critic1, self.critic2) if c is not None]

    def user_values(self, raw: torch.Tensor) -> torch.Tensor:
        """Critic outputs -> per-user values in reward units (-latency * reward_scale)."""
        if self.cfg.critic.log_latency_critic:
            return -self.cfg.critic.reward_scale * raw.exp()
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
        if not self.cfg.critic.per_user_reward:
            raise ValueError("predicted_latency needs a per-user (per_user_reward) critic")
        act = one_hot_actions(action, self.spec)
        vals = [self.user_values(c.values(obs, act, z)) for c in self.critics]
        idx = joint_index(action, self.spec).unsqueeze(-1)
        q = torch.stack([v.gather(-1, idx).squeeze(-1) for v in vals]).mean(0)
        return -q / self.cfg.critic.reward_scale

    def _joint_policy(self, obs: torch.Tensor, zd: torch.Tensor | None):
        """The joint actor's log-probabilities and probabilities (B, U, J) and entropies (B, U)."""
        logp = torch.log_softmax(self.actor(obs, zd), dim=-1)
        p = logp.exp()
        return logp, p, -(p * logp).sum(-1)

    @torch.no_grad()
    def soft_update(self) -> None:
        for net, tgt in ((self.actor, self.actor_target), (self.critic1, self.critic1_target),
                         (self.critic2, self.critic2_target)):
            if net is None:
                continue
            for p, tp in zip(net.parameters(), tgt.parameters(), strict=True):
                tp.lerp_(p, self.cfg.critic.tau)

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
