"""The two update rules of the agent, each one epoch of Algorithm 1 (lines 9-19) on K' conditions.

`soft_bellman_update` is the paper's discrete SAC (eqs. 21-29): twin critics regress the soft
Bellman target, the encoder takes the critic loss plus beta * KL, the temperature and the actor
step every lambda1 / lambda2 epochs, and the targets follow by Polyak averaging. Its per-user
variant (``per_user_reward``) regresses each user's value on that user's own latency.

`myopic_joint_update` is ours (the quick profile): slots are i.i.d. and independent of the
action, so gamma = 0 and each user's critic value regresses that user's latency (or its log); a
joint categorical actor per user follows the critic by the exact expectation over its joint
actions. Nothing is bootstrapped, so no target network enters any loss.

Which rule runs is `SACConfig.update_rule`; `DiscreteSACAgent.update` dispatches through
`UPDATES`. The agent (``sac.py``) holds the networks, optimisers, z inference and values these
functions read; the objectives here are pure tensor code, which ``compiled_update`` compiles.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .networks import entropy_and_probs, joint_index, one_hot_actions, user_entropy_and_probs

Batches = list[dict[str, np.ndarray]]
DiscreteSACAgent = Any
"""`ecmeta_lib.agents.sac.DiscreteSACAgent` (which imports this module): what the rules read."""


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; training stops (the last good checkpoint is kept)."""


def known_latency(data: dict[str, np.ndarray]) -> np.ndarray:
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


def soft_bellman_update(agent: DiscreteSACAgent, batches: Batches, contexts: Batches | None,
                        epoch: int, lambda1: int, lambda2: int) -> dict[str, float]:
    """The paper's discrete SAC (eqs. 21-29) on K' conditions' batches (and PEARL contexts)."""
    cfg, spec, crit = agent.cfg, agent.spec, agent.cfg.critic
    bsz = len(batches[0]["reward"])
    cat = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    obs, next_obs = agent._t(cat["obs"]), agent._t(cat["next_obs"])
    act = one_hot_actions(agent._t(cat["action"], torch.int64), spec)
    z, kl = agent._batch_z(contexts, bsz)  # reparametrised: the critic loss reaches the encoder
    zd = None if z is None else z.detach()
    xi = agent.log_temperature.exp().detach()

    # critics (eq. 24): y = r + gamma [min_i Q^_i(s', a') + xi H(a')]; no terminal states
    if crit.per_user_reward:  # ours: per-user targets y_u from each user's own latency
        with torch.no_grad():
            y = -agent._t(known_latency(cat)) * crit.reward_scale
            if crit.gamma > 0:
                ent_n, probs_n = user_entropy_and_probs(agent.actor_target(next_obs, zd), spec)
                q_n = torch.min(agent.critic1_target.per_user(next_obs, probs_n, zd),
                                agent.critic2_target.per_user(next_obs, probs_n, zd))
                y = y + crit.gamma * (q_n + xi * ent_n)
        q1u, q2u = agent.critic1.per_user(obs, act, z), agent.critic2.per_user(obs, act, z)
        q1 = q1u.mean(dim=1)
        critic_loss = _finite("critic loss", ((q1u - y) ** 2).mean() + ((q2u - y) ** 2).mean())
    else:
        with torch.no_grad():
            y = agent._t(cat["reward"]) * crit.reward_scale
            if crit.gamma > 0:
                ent_n, probs_n = entropy_and_probs(agent.actor_target(next_obs, zd), spec)
                q_n = torch.min(agent.critic1_target(next_obs, probs_n, zd),
                                agent.critic2_target(next_obs, probs_n, zd))
                y = y + crit.gamma * (q_n + xi * ent_n / spec.n_users)
        q1, q2 = agent.critic1(obs, act, z), agent.critic2(obs, act, z)
        critic_loss = _finite("critic loss", ((q1 - y) ** 2).mean() + ((q2 - y) ** 2).mean())
    total = critic_loss
    diag = {"critic_loss": float(critic_loss.detach()), "q_mean": float(q1.mean().detach())}
    if kl is not None:  # eq. 29: the encoder's loss adds beta * KL(q(z|c) || N(0, I))
        total = total + _finite("KL loss", cfg.encoder.kl_weight * kl)
        diag["kl"] = float(kl.detach())
    agent._step(agent.critic_opt, total)

    if epoch % lambda1 == 0:  # temperature: xi (H - H_target), per user
        with torch.no_grad():
            ent, _ = entropy_and_probs(agent.actor(obs, zd), spec)
        t_loss = _finite("temperature loss", (agent.log_temperature.exp()
                                              * (ent - agent.target_entropy) / spec.n_users).mean())
        agent._step(agent.temperature_opt, t_loss)
        diag["temperature_loss"] = float(t_loss.detach())
    if epoch % lambda2 == 0:  # actor (eq. 27) and the targets' Polyak step
        a_loss, ent = soft_actor_loss(agent, obs, zd)
        agent._step(agent.actor_opt, _finite("actor loss", a_loss))
        agent.soft_update()
        diag.update(actor_loss=float(a_loss.detach()), entropy=float(ent.mean().detach()))
    diag["temperature"] = agent.temperature
    return diag


def soft_actor_loss(agent: DiscreteSACAgent, obs: torch.Tensor,
                    z: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. (27): mean of -xi H(pi(s, z)) - min_i Q_i(s, pi(s, z), z), and the entropy (B,).

    z is detached here (whatever the caller passes): the actor loss never reaches the encoder.
    """
    zd = None if z is None else z.detach()
    ent, probs = entropy_and_probs(agent.actor(obs, zd), agent.spec)
    q_pi = torch.min(agent.critic1(obs, probs, zd), agent.critic2(obs, probs, zd))
    xi = agent.log_temperature.exp().detach()
    return (-xi * ent / agent.spec.n_users - q_pi).mean(), ent


def myopic_joint_update(agent: DiscreteSACAgent, batches: Batches, contexts: Batches | None,
                        epoch: int, lambda1: int, lambda2: int) -> dict[str, float]:
    """Ours: gamma = 0, per-user critics of the taken joint action, a joint actor per user.

    The critics regress each user's latency (or its log) on the taken joint action; both read
    only user u's inputs, so one pass gives every user's value of all its joint actions, which
    the actor loss reuses (detached): E_{a~pi_u}[xi log pi_u(a) - q_u(a)] summed exactly over
    the joint actions."""
    cfg, spec = agent.cfg, agent.spec
    bsz = len(batches[0]["reward"])
    cat = {k: np.concatenate([b[k] for b in batches]) for k in ("obs", "action", "latency")}
    obs, action = agent._t(cat["obs"]), agent._t(cat["action"], torch.int64)
    idx = joint_index(action, spec).unsqueeze(-1)  # (B, U, 1)
    act = one_hot_actions(action, spec) if cfg.net.pooled else None
    lat = agent._t(known_latency(cat))
    y = (lat.clamp_min(1e-6).log() if cfg.critic.log_latency_critic
         else -lat * cfg.critic.reward_scale)
    inputs, eps = agent._z_noise(contexts) if agent.encoder is not None else (None, None)
    xi = agent.log_temperature.exp().detach()

    # critics + encoder: regression on the taken joint actions plus beta * KL
    total, critic_loss, kl, z, pred, raws = agent._objective(joint_critic_objective)(
        obs, act, idx, y, inputs, eps, bsz)
    zd = None if z is None else z.detach()
    _finite("critic loss", critic_loss)
    diag = {"critic_loss": float(critic_loss.detach()),
            "q_mean": float(agent.user_values(pred).mean())}
    if kl is not None:
        _finite("KL loss", cfg.encoder.kl_weight * kl)
        diag["kl"] = float(kl.detach())
    agent._step(agent.critic_opt, total)

    if epoch % lambda2 == 0:
        a_loss, ent_u = agent._objective(joint_actor_objective)(obs, zd, raws, xi)
    elif epoch % lambda1 == 0:
        ent_u = agent._joint_policy(obs, zd)[2]
    if epoch % lambda1 == 0:  # temperature: xi (H - H_target), per user
        t_loss = _finite("temperature loss",
                         (agent.log_temperature.exp()
                          * (ent_u.detach().sum(-1) - agent.target_entropy) / spec.n_users).mean())
        agent._step(agent.temperature_opt, t_loss)
        diag["temperature_loss"] = float(t_loss.detach())
    if epoch % lambda2 == 0:  # actor; no target update: with gamma = 0 no target enters a loss
        agent._step(agent.actor_opt, _finite("actor loss", a_loss))
        diag.update(actor_loss=float(a_loss.detach()),
                    entropy=float(ent_u.detach().sum(-1).mean()))
    diag["temperature"] = agent.temperature
    return diag


def joint_critic_objective(agent: DiscreteSACAgent, obs: torch.Tensor, act: torch.Tensor | None,
                           idx: torch.Tensor, y: torch.Tensor, inputs: list | None,
                           eps: list[torch.Tensor] | None, batch: int):
    """The critics' regression on the taken joint actions plus beta * KL (the encoder's loss):
    (total, critic loss, KL or None, z or None, the first critic's taken-action outputs and
    every critic's outputs, both detached)."""
    z, kl = (None, None) if inputs is None else agent._z_and_kl(inputs, eps, batch)
    raws = [c.values(obs, act, z) for c in agent.critics]
    preds = [r.gather(-1, idx).squeeze(-1) for r in raws]
    critic_loss = sum(((p - y) ** 2).mean() for p in preds)
    total = critic_loss if kl is None else critic_loss + agent.cfg.encoder.kl_weight * kl
    return total, critic_loss, kl, z, preds[0].detach(), [r.detach() for r in raws]


def joint_actor_objective(agent: DiscreteSACAgent, obs: torch.Tensor, zd: torch.Tensor | None,
                          raws: list[torch.Tensor], xi: torch.Tensor):
    """E_{a~pi_u}[xi log pi_u(a) - q_u(a)], summed exactly over the joint actions, with q_u
    the pessimistic critic's (detached) values; and the users' entropies (B, U)."""
    logp, p, ent_u = agent._joint_policy(obs, zd)
    q_all = agent._pessimistic_values(raws)
    return (p * (xi * logp - q_all)).sum(-1).mean(), ent_u


UPDATES: dict[str, Callable[..., dict[str, float]]] = {
    "soft_bellman": soft_bellman_update, "myopic_joint": myopic_joint_update}
"""The update rules by `SACConfig.update_rule`."""
