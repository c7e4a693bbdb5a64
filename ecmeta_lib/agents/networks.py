"""Actor and critic networks for the multi-user discrete action space.

The action of one slot is, for every user, three categorical sub-actions (heads): pre-processing
DS (|M| choices), task allocation TA (|H|+1 choices: local or an edge server) and model selection
MS (|F| choices). Networks see it as per-user concatenated one-hots of width ``sum(heads)``; when
the actor is differentiated the one-hots are replaced by the actor's probabilities (paper eqs.
26-27).

Two architectures share one interface:

* ``flat`` (the paper's profile): plain MLPs over the flat observation (and action, latent z).
* ``structured`` (ours): one network shared by all users, applied to
  ``[user features, learned user embedding, z, mean over users of (features, action)]``; the actor
  reads that user's logits from it, the critic one value per joint user action, selected by the
  user's action and averaged over users. The reward is minus a mean over users, so a mean of
  per-user values matches its shape; the mean-pooled features (which include the pooled action,
  i.e. the load put on every edge server) carry the coupling between users through the servers'
  capacities. Without ``pooled`` (ours, quick profile) each user's networks read only that user's
  inputs: P2's coupling changes 0.013 % of per-user latencies under random actions, so the pooled
  inputs cost compute and add input noise for a signal that is nearly absent.

Inputs: ``obs`` (B, U*D), ``action`` (B, U, A) one-hots or probabilities, ``z`` (B, L) or None;
the structured networks also take per-user latents ``z`` (B, U, L) (PEARL with
``latent_per_user``): user u's input then carries its own z_u instead of a broadcast global z.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import uniform_entropy


@dataclass(frozen=True)
class ActionSpec:
    """Shapes of the environment: users, per-user observation width and the sub-action heads."""

    n_users: int
    obs_per_user: int
    heads: tuple[int, ...]
    """Choices of each per-user sub-action, in action order: (|M|, |H|+1, |F|)."""
    log_ranges: tuple[tuple[int, float, float], ...] = ()
    """(column of the per-user observation, low, high) of the min-max scaled positive physical
    quantities (bandwidth, distance, task and result size): the ``log_inputs`` networks read
    them on a log scale, where latency, a product of ratios, is nearly additive."""
    tau_moments: tuple[int, float, float] | None = None
    """(column, mean, std) of the accuracy requirement in observation units: the ``tau_zscore``
    networks read (x - mean) / std."""

    @property
    def action_width(self) -> int:
        """Width of one user's concatenated one-hots."""
        return int(sum(self.heads))

    @property
    def obs_dim(self) -> int:
        return self.n_users * self.obs_per_user

    @property
    def max_entropy(self) -> float:
        """Entropy (nats) of the uniform policy, summed over users and heads."""
        return uniform_entropy(self.n_users, self.heads)

    @classmethod
    def from_env(cls, env) -> ActionSpec:
        """Read the spec from an `EdgeCloudEnv` (or its Gymnasium wrapper)."""
        env = env.unwrapped
        from ..env import (  # env is below the agents in the data flow
            accuracy_req_moments,
            positive_feature_ranges,
        )

        nvec = env.action_space.nvec.reshape(-1, 3)
        u = nvec.shape[0]
        return cls(n_users=int(u), obs_per_user=int(env.observation_space.shape[0] // u),
                   heads=tuple(int(x) for x in nvec[0]),
                   log_ranges=positive_feature_ranges(env.config.system),
                   tau_moments=accuracy_req_moments(env.config.system))


def mlp(in_dim: int, hidden: int, n_layers: int, out_dim: int) -> nn.Sequential:
    """``n_layers`` hidden Linear+ReLU layers of width ``hidden``, then a linear output."""
    layers: list[nn.Module] = []
    d = in_dim
    for _ in range(n_layers):
        layers += [nn.Linear(d, hidden), nn.ReLU(inplace=True)]
        d = hidden
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


def apply_rows(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``net`` on the rows of a (..., d) tensor as one 2-D matrix, reshaped back to (..., out):
    the same products as on the N-D input, but the backward pass of a 3-D input spends ~15 % of
    an update copying and zero-filling (batch, user, hidden) gradients."""
    out = net(x.reshape(-1, x.shape[-1]))
    return out.view(*x.shape[:-1], out.shape[-1])


def embedding_inputs(embed: torch.Tensor, lead: tuple[int, ...]) -> list[torch.Tensor]:
    """[the (U, E) per-user embedding broadcast to (*lead, U, E)], or [] without one (E = 0): an
    empty parameter among the inputs would make autograd compute the first layer's input
    gradient for nothing."""
    return [embed.expand(*lead, *embed.shape)] if embed.shape[-1] else []


def one_hot_actions(actions: torch.Tensor, spec: ActionSpec) -> torch.Tensor:
    """(B, U, n_heads) integer actions -> (B, U, sum(heads)) concatenated one-hots."""
    parts = [nn.functional.one_hot(actions[..., i].long(), h).float()
             for i, h in enumerate(spec.heads)]
    return torch.cat(parts, dim=-1)


def _user_z(z: torch.Tensor, b: int, u: int) -> torch.Tensor:
    """(B, L) global or (B, U, L) per-user latents -> (B, U, L)."""
    return z if z.dim() == 3 else z.unsqueeze(1).expand(b, u, z.shape[-1])


def _z_or_empty(z: torch.Tensor | None, batch: int, like: torch.Tensor) -> torch.Tensor:
    if z is None:
        return like.new_zeros(batch, 0)
    return z


class FlatActor(nn.Module):
    """pi(s, z): an MLP from [obs, z] to U * sum(heads) logits (paper profile)."""

    def __init__(self, spec: ActionSpec, latent_dim: int, hidden: int, n_layers: int) -> None:
        super().__init__()
        self.spec = spec
        self.net = mlp(spec.obs_dim + latent_dim, hidden, n_layers,
                       spec.n_users * spec.action_width)

    def forward(self, obs: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        b = obs.shape[0]
        x = torch.cat([obs, _z_or_empty(z, b, obs)], dim=-1)
        return self.net(x).view(b, self.spec.n_users, self.spec.action_width)


class FlatCritic(nn.Module):
    """Q(s, a, z): an MLP from [obs, flat per-user action one-hots, z] to one value."""

    def __init__(self, spec: ActionSpec, latent_dim: int, hidden: int, n_layers: int) -> None:
        super().__init__()
        self.spec = spec
        self.net = mlp(spec.obs_dim + spec.n_users * spec.action_width + latent_dim, hidden,
                       n_layers, 1)

    def forward(self, obs: torch.Tensor, action: torch.Tensor,
                z: torch.Tensor | None) -> torch.Tensor:
        b = obs.shape[0]
        x = torch.cat([obs, action.reshape(b, -1), _z_or_empty(z, b, obs)], dim=-1)
        return self.net(x).squeeze(-1)


class InputScaling(nn.Module):
    """Per-column maps of a user's observation, applied before its networks.

    * ``log``: the min-max scaled columns of `ActionSpec.log_ranges` become
      (log v - log low) / (log high - log low), v the physical value.
    * ``tau_zscore``: the accuracy requirement (observed as tau / 100) becomes its z-score under
      its drawn distribution, (tau - mean) / std: the accuracy repair makes latency jump where tau
      crosses a model's accuracy, and on the [0, 100] % scale the whole N(70, 5^2) spread of tau
      sits in ~0.3 of the unit interval, too flat for a small network to place those steps.

    Other columns pass unchanged."""

    def __init__(self, spec: ActionSpec, log: bool = True, tau_zscore: bool = False) -> None:
        super().__init__()
        ranges = spec.log_ranges if log else ()
        cols = [c for c, _, _ in ranges]
        lo = torch.tensor([lo for _, lo, _ in ranges], dtype=torch.float32)
        hi = torch.tensor([hi for _, _, hi in ranges], dtype=torch.float32)
        self.register_buffer("cols", torch.tensor(cols, dtype=torch.long), persistent=False)
        self.register_buffer("lo", lo, persistent=False)
        self.register_buffer("span", hi - lo, persistent=False)
        self.register_buffer("log_lo", lo.log(), persistent=False)
        self.register_buffer("log_span", hi.log() - lo.log(), persistent=False)
        self.tau: tuple[int, float, float] | None = None
        if tau_zscore:
            if spec.tau_moments is None:
                raise ValueError("tau_zscore needs ActionSpec.tau_moments (use "
                                 "ActionSpec.from_env)")
            col, mean, std = spec.tau_moments
            self.tau = (col, mean, std if std > 0 else 1.0)  # a constant tau: shift only

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.cols.numel() == 0 and self.tau is None:
            return x
        x = x.clone()
        if self.cols.numel():
            v = (self.lo + x[..., self.cols].clamp(0, 1) * self.span).log()
            x[..., self.cols] = (v - self.log_lo) / self.log_span
        if self.tau is not None:
            col, mean, std = self.tau
            x[..., col] = (x[..., col] - mean) / std
        return x


class _PerUser(nn.Module):
    """Shared per-user trunk input: [x_u, e_u, (a_u), z, mean_u(x_u, (a_u))]."""

    def __init__(self, spec: ActionSpec, latent_dim: int, embed_dim: int,
                 with_action: bool, pooled: bool = True, log_inputs: bool = False,
                 tau_zscore: bool = False) -> None:
        super().__init__()
        self.spec, self.pooled = spec, pooled
        self.scaling = (InputScaling(spec, log_inputs, tau_zscore)
                        if log_inputs or tau_zscore else None)
        # embed_dim 0: no per-user embedding (user u is told apart by its inputs and z_u alone)
        self.embed = nn.Parameter(torch.randn(spec.n_users, embed_dim) * 0.1)
        per_user = spec.obs_per_user + (spec.action_width if with_action else 0)
        self.in_dim = (2 if pooled else 1) * per_user + embed_dim + latent_dim

    def user_inputs(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, U*D) observation -> (B, U, D) per-user inputs (`InputScaling` applied)."""
        x = obs.view(obs.shape[0], self.spec.n_users, self.spec.obs_per_user)
        return x if self.scaling is None else self.scaling(x)

    def features(self, obs: torch.Tensor, action: torch.Tensor | None,
                 z: torch.Tensor | None) -> torch.Tensor:
        x = self.user_inputs(obs)
        b, u = x.shape[0], x.shape[1]
        if action is not None:
            x = torch.cat([x, action], dim=-1)
        parts = [x, *embedding_inputs(self.embed, (b,))]
        if self.pooled:
            parts.append(x.mean(dim=1, keepdim=True).expand(b, u, x.shape[-1]))
        if z is not None:
            parts.append(_user_z(z, b, u))
        return torch.cat(parts, dim=-1)


class StructuredActor(_PerUser):
    """pi(s, z) with one network shared by all users (ours); outputs (B, U, sum(heads)) logits,
    or with ``joint`` (B, U, prod(heads)) logits of one categorical over the user's joint actions
    (DS, TA, MS) - a factorised per-head policy cannot put its mode on the best joint action when
    the heads interact (e.g. the best model depends on the place)."""

    def __init__(self, spec: ActionSpec, latent_dim: int, hidden: int, n_layers: int,
                 embed_dim: int, joint: bool = False, pooled: bool = True,
                 log_inputs: bool = False, tau_zscore: bool = False) -> None:
        super().__init__(spec, latent_dim, embed_dim, with_action=False, pooled=pooled,
                         log_inputs=log_inputs, tau_zscore=tau_zscore)
        self.joint = joint
        self.net = mlp(self.in_dim, hidden, n_layers,
                       n_joint_actions(spec) if joint else spec.action_width)

    def forward(self, obs: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        return apply_rows(self.net, self.features(obs, None, z))


class StructuredCritic(_PerUser):
    """Q(s, a, z) = mean over users of q_u(a_u), one network shared by all users (ours).

    The shared network reads ``[x_u, e_u, z, mean_u(x_u, a_u)]`` - the users' pooled actions carry
    the load every edge server gets - and outputs one value per joint per-user action (|M| (|H|+1)
    |F| = 45 values, as the discrete SAC of the paper's ref. [10] outputs a value per action).
    ``q_u(a_u)`` is read off with the outer product of the user's head one-hots; given the actor's
    probabilities instead, the same product is the exact expectation of q_u over the user's own
    action (only the 1/|U| pooled term stays relaxed, as in eqs. 26-27).
    """

    def __init__(self, spec: ActionSpec, latent_dim: int, hidden: int, n_layers: int,
                 embed_dim: int, pooled: bool = True, log_inputs: bool = False,
                 tau_zscore: bool = False) -> None:
        super().__init__(spec, latent_dim, embed_dim, with_action=True, pooled=pooled,
                         log_inputs=log_inputs, tau_zscore=tau_zscore)
        self.in_dim -= spec.action_width  # the user's own action is not an input ...
        self.net = mlp(self.in_dim, hidden, n_layers, n_joint_actions(spec))  # ... it selects

    def forward(self, obs: torch.Tensor, action: torch.Tensor,
                z: torch.Tensor | None) -> torch.Tensor:
        """Q(s, a, z) = mean_u q_u(a_u), (B,)."""
        return self.per_user(obs, action, z).mean(dim=1)

    def per_user(self, obs: torch.Tensor, action: torch.Tensor,
                 z: torch.Tensor | None) -> torch.Tensor:
        """The per-user values q_u(a_u) (or their expectation under probabilities), (B, U)."""
        return (joint_action(action, self.spec) * self.values(obs, action, z)).sum(-1)

    def values(self, obs: torch.Tensor, action: torch.Tensor | None,
               z: torch.Tensor | None) -> torch.Tensor:
        """Every user's value of each of its joint actions, (B, U, prod(heads)); ``action`` only
        enters through the pooled (load) features (unused, may be None, without them)."""
        x = self.user_inputs(obs)
        b, u = x.shape[0], x.shape[1]
        parts = [x, *embedding_inputs(self.embed, (b,))]
        if self.pooled:
            pooled = torch.cat([x, action], dim=-1).mean(dim=1, keepdim=True).expand(b, u, -1)
            parts.append(pooled)
        if z is not None:
            parts.append(_user_z(z, b, u))
        return apply_rows(self.net, torch.cat(parts, dim=-1))


def n_joint_actions(spec: ActionSpec) -> int:
    """Joint actions of one user, prod(heads) (|M| (|H|+1) |F| = 45 in the paper's system)."""
    n = 1
    for h in spec.heads:
        n *= h
    return n


def joint_index(actions: torch.Tensor, spec: ActionSpec) -> torch.Tensor:
    """(..., n_heads) integer actions -> (...) index into the joint action (row-major over the
    heads, the order of `joint_action`'s outer product)."""
    idx = torch.zeros(actions.shape[:-1], dtype=torch.long, device=actions.device)
    for i, h in enumerate(spec.heads):
        idx = idx * h + actions[..., i].long()
    return idx


def split_joint_index(idx: torch.Tensor, spec: ActionSpec) -> torch.Tensor:
    """Inverse of `joint_index`: (...) joint indices -> (..., n_heads) per-head actions."""
    out = []
    for h in reversed(spec.heads):
        out.append(idx % h)
        idx = idx // h
    return torch.stack(out[::-1], dim=-1)


def joint_action(action: torch.Tensor, spec: ActionSpec) -> torch.Tensor:
    """(B, U, sum(heads)) per-head one-hots/probabilities -> (B, U, prod(heads)) outer product."""
    parts = torch.split(action, list(spec.heads), dim=-1)
    out = parts[0]
    for p in parts[1:]:
        out = (out.unsqueeze(-1) * p.unsqueeze(-2)).flatten(-2)
    return out


def build_actor(arch: str, spec: ActionSpec, latent_dim: int, hidden: int, n_layers: int,
                embed_dim: int, joint: bool = False, pooled: bool = True,
                log_inputs: bool = False, tau_zscore: bool = False) -> nn.Module:
    if arch == "flat":
        return FlatActor(spec, latent_dim, hidden, n_layers)
    if arch == "structured":
        return StructuredActor(spec, latent_dim, hidden, n_layers, embed_dim, joint, pooled,
                               log_inputs, tau_zscore)
    raise ValueError(f"unknown architecture {arch!r}; use 'flat' or 'structured'")


def build_critic(arch: str, spec: ActionSpec, latent_dim: int, hidden: int, n_layers: int,
                 embed_dim: int, pooled: bool = True, log_inputs: bool = False,
                 tau_zscore: bool = False) -> nn.Module:
    if arch == "flat":
        return FlatCritic(spec, latent_dim, hidden, n_layers)
    if arch == "structured":
        return StructuredCritic(spec, latent_dim, hidden, n_layers, embed_dim, pooled,
                                log_inputs, tau_zscore)
    raise ValueError(f"unknown architecture {arch!r}; use 'flat' or 'structured'")


def head_log_probs(logits: torch.Tensor, spec: ActionSpec) -> list[torch.Tensor]:
    """Split (B, U, sum(heads)) logits into per-head log-softmaxes [(B, U, h), ...]."""
    return [torch.log_softmax(part, dim=-1) for part in torch.split(logits, list(spec.heads), -1)]


def entropy_and_probs(logits: torch.Tensor, spec: ActionSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropy summed over users and heads (eq. 25), (B,), and the concatenated probs (B, U, A)."""
    ent_u, probs = user_entropy_and_probs(logits, spec)
    return ent_u.sum(dim=-1), probs


def user_entropy_and_probs(logits: torch.Tensor,
                           spec: ActionSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropy of each user's policy summed over its heads, (B, U), and the probs (B, U, A)."""
    logps = head_log_probs(logits, spec)
    probs = [lp.exp() for lp in logps]
    ent = -sum((p * lp).sum(dim=-1) for p, lp in zip(probs, logps, strict=True))
    return ent, torch.cat(probs, dim=-1)
