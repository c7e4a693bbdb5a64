"""PEARL's probabilistic context encoder q_phi(z | c) (Rakelly et al. 2019; paper Sec. IV-D).

Each transition c_n = (s, a, r[, s']) is mapped by an MLP to a Gaussian factor N(mu_n, sigma_n^2);
the posterior is their product,

    sigma^2 = 1 / sum_n sigma_n^-2,      mu = sigma^2 * sum_n mu_n / sigma_n^2,

which does not depend on the order of the transitions (permutation invariant) and narrows as the
context grows. An empty context gives the prior N(0, I). The KL term of eq. (29) is
KL(q(z|c) || N(0, I)).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .networks import ActionSpec, apply_rows, embedding_inputs, mlp, one_hot_actions

MIN_VARIANCE = 1e-7


def gaussian_product(mu_n: torch.Tensor, var_n: torch.Tensor, dim: int,
                     with_prior: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Product of the Gaussian factors N(mu_n, var_n) along `dim`: precisions add up, means are
    precision-weighted. ``with_prior`` multiplies in the prior N(0, I) as one more factor (ours):
    the posterior then starts at the prior and can only narrow as transitions arrive, whereas the
    plain product (PEARL's) can be wider than the prior after one transition."""
    precision = (1.0 / var_n).sum(dim=dim)
    if with_prior:
        precision = precision + 1.0
    var = 1.0 / precision
    return var * (mu_n / var_n).sum(dim=dim), var


def decision_heads(spec: ActionSpec) -> tuple[int, int, int]:
    """Choices of the executed decisions (DS, placement, model): placement adds the cloud to TA."""
    return (spec.heads[0], spec.heads[1] + 1, spec.heads[2])


class ContextEncoder(nn.Module):
    """q_phi(z | c) as a product of per-transition Gaussian factors.

    Args:
        spec: the environment's shapes.
        latent_dim: dimension of z.
        hidden, n_layers: the per-transition MLP.
        use_next_obs: feed s' too (the paper's c = (s, a, r, s')). Off by default (ours): slots are
            i.i.d., so s' carries no information about the condition, only input noise.
        reward_scale: multiplies the reward before encoding (keeps it O(1)).
        prior_factor: multiply the prior into the posterior (see `gaussian_product`).
    """

    def __init__(self, spec: ActionSpec, latent_dim: int, hidden: int, n_layers: int,
                 use_next_obs: bool = False, reward_scale: float = 1.0,
                 prior_factor: bool = False) -> None:
        super().__init__()
        self.spec, self.latent_dim, self.use_next_obs = spec, latent_dim, use_next_obs
        self.reward_scale, self.prior_factor = reward_scale, prior_factor
        in_dim = spec.obs_dim * (2 if use_next_obs else 1) + spec.n_users * spec.action_width + 1
        self.net = mlp(in_dim, hidden, n_layers, 2 * latent_dim)

    def factors(self, obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor,
                next_obs: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-transition (mu_n, sigma_n^2), each (..., N, latent_dim).

        ``obs`` (..., N, U*D); ``action`` (..., N, U, n_heads) integers; ``reward`` (..., N).
        """
        parts = [obs, one_hot_actions(action, self.spec).flatten(-2),
                 (reward * self.reward_scale).unsqueeze(-1)]
        if self.use_next_obs:
            parts.insert(1, next_obs)
        out = self.net(torch.cat(parts, dim=-1))
        mu, raw = out.split(self.latent_dim, dim=-1)
        return mu, F.softplus(raw) + MIN_VARIANCE

    def posterior(self, obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor,
                  next_obs: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior (mu, sigma^2), each (..., latent_dim), from a context of N >= 0 transitions."""
        if obs.shape[-2] == 0:
            shape = (*obs.shape[:-2], self.latent_dim)
            return obs.new_zeros(shape), obs.new_ones(shape)
        mu_n, var_n = self.factors(obs, action, reward, next_obs)
        return gaussian_product(mu_n, var_n, -2, self.prior_factor)

    @staticmethod
    def sample(mu: torch.Tensor, var: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparametrised draw z = mu + sigma * eps (gradients reach mu and sigma)."""
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        return mu + var.sqrt() * eps

    @staticmethod
    def kl_to_prior(mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """KL(N(mu, var) || N(0, I)) summed over latent dimensions."""
        return 0.5 * (var + mu.pow(2) - 1.0 - var.log()).sum(dim=-1)


class PerUserContextEncoder(nn.Module):
    """q_phi(z_u | c) for every user u: one latent per user (ours).

    Each user's AI service function is drawn and upgraded independently (SPEC 2.2), so a condition
    is a set of per-user regimes that one global z cannot describe. The encoder is shared by the
    users: for user u and transition n an MLP maps ``[x_u, e_u, a_u, r_u]`` - the user's
    observation slice, a learned per-user embedding (the encoder's own), the user's action
    one-hots and its latency times ``-reward_scale`` - to a Gaussian factor
    N(mu_{u,n}, sigma_{u,n}^2) in R^L; the posterior of z_u is the product of the user's factors
    over the transitions (permutation invariant, narrowing with the context), the prior N(0, I)
    per user. Shapes: posterior (..., U, L).

    Args:
        spec: the environment's shapes.
        latent_dim: L, the dimension of each z_u.
        hidden, n_layers: the per-(user, transition) MLP.
        embed_dim: width of the learned per-user embedding.
        use_next_obs: also feed the user's slice of s'.
        reward_scale: multiplies minus the latency before encoding (keeps it O(1)).
        prior_factor: multiply the prior into the posterior (see `gaussian_product`).
        use_decisions: (ours) encode the post-repair decisions the slot actually executed -
            DS, placement (local, ES 1..H, cloud) and model - with the log of the user's latency,
            instead of the requested action and minus the scaled latency. The requested action
            hides what happened: an accuracy repair (another model) and a cloud overflow (another
            place) both change the latency of the same action, and only the decisions tell which
            parameter of which model the latency measures.
    """

    def __init__(self, spec: ActionSpec, latent_dim: int, hidden: int, n_layers: int,
                 embed_dim: int, use_next_obs: bool = False, reward_scale: float = 1.0,
                 prior_factor: bool = False, use_decisions: bool = False) -> None:
        super().__init__()
        self.spec, self.latent_dim, self.use_next_obs = spec, latent_dim, use_next_obs
        self.reward_scale, self.prior_factor = reward_scale, prior_factor
        self.use_decisions = use_decisions
        self.embed = nn.Parameter(torch.randn(spec.n_users, embed_dim) * 0.1)
        d = spec.obs_per_user
        self.decision_heads = decision_heads(spec)
        width = sum(self.decision_heads) if use_decisions else spec.action_width
        in_dim = d * (2 if use_next_obs else 1) + embed_dim + width + 1
        self.net = mlp(in_dim, hidden, n_layers, 2 * latent_dim)

    def factors(self, obs: torch.Tensor, action: torch.Tensor, latency: torch.Tensor,
                next_obs: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-(transition, user) (mu, sigma^2), each (..., N, U, L).

        ``obs`` (..., N, U*D); ``action`` (..., N, U, n_heads) integers - with ``use_decisions``
        the executed (DS, placement, model); ``latency`` (..., N, U) in s.
        """
        u, d = self.spec.n_users, self.spec.obs_per_user
        lead = obs.shape[:-1]
        x = obs.reshape(*lead, u, d)
        if self.use_decisions:
            acts = torch.cat([F.one_hot(action[..., i].long(), h).float()
                              for i, h in enumerate(self.decision_heads)], dim=-1)
            signal = latency.clamp_min(1e-6).log()
        else:
            acts, signal = one_hot_actions(action, self.spec), -latency * self.reward_scale
        parts = [x, *embedding_inputs(self.embed, lead), acts, signal.unsqueeze(-1)]
        if self.use_next_obs:
            parts.insert(1, next_obs.reshape(*lead, u, d))
        out = apply_rows(self.net, torch.cat(parts, dim=-1))
        mu, raw = out.split(self.latent_dim, dim=-1)
        return mu, F.softplus(raw) + MIN_VARIANCE

    def posterior(self, obs: torch.Tensor, action: torch.Tensor, latency: torch.Tensor,
                  next_obs: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior (mu, sigma^2), each (..., U, L), from a context of N >= 0 transitions."""
        if obs.shape[-2] == 0:
            shape = (*obs.shape[:-2], self.spec.n_users, self.latent_dim)
            return obs.new_zeros(shape), obs.new_ones(shape)
        mu_n, var_n = self.factors(obs, action, latency, next_obs)
        return gaussian_product(mu_n, var_n, -3, self.prior_factor)

    sample = staticmethod(ContextEncoder.sample)

    @staticmethod
    def kl_to_prior(mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """Mean over users of KL(N(mu_u, var_u) || N(0, I)) (each summed over dimensions)."""
        return ContextEncoder.kl_to_prior(mu, var).mean(dim=-1)
