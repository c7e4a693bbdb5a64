"""One AI service function condition per user (`Condition`) and the uniform source of them.

A condition fixes every user's AI models: compute intensity, memory and accuracy. The uniform
source draws them from the ranges of `config.ConditionConfig` (`sample_condition`) and upgrades
them by random scalings (`upgrade_condition`: lighter, smaller, more accurate models, paper
Sec. V); `ecmeta_lib.catalogue` is the other source (published models and their real upgrades).
`ecmeta_lib.conditions` builds the named task sets from either.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from .config import ConditionConfig


@dataclass(frozen=True)
class Condition:
    """Every user's AI models under one condition; model index 0 is the lightest."""

    flop_per_bit: np.ndarray
    """(U, F) compute intensity rho_u^j, FLOP per bit of pre-processed input; ascending in j."""
    memory_mb: np.ndarray
    """(U, F) memory R_u^j of each model, integer MB; ascending in j."""
    peak_accuracy: np.ndarray
    """(U, F) accuracy a_u^j at raw data quality, %; ascending in j."""
    quality_exponent: np.ndarray
    """(U,) gamma_u: accuracy at data quality q is a_u^j q^gamma_u."""
    name: str = ""
    """Label for plots and logs (e.g. "G1'" or "T2")."""

    @property
    def n_users(self) -> int:
        return int(self.flop_per_bit.shape[0])

    @property
    def n_models(self) -> int:
        return int(self.flop_per_bit.shape[1])


def sample_condition(rng: np.random.Generator, n_users: int, n_models: int,
                     cfg: ConditionConfig, name: str = "") -> Condition:
    """Draw a fresh condition: sorted draws per user keep heavier models more accurate."""
    shape = (n_users, n_models)
    return Condition(
        flop_per_bit=np.sort(rng.uniform(*cfg.flop_per_bit_range, size=shape), axis=1),
        memory_mb=np.rint(np.sort(rng.uniform(*cfg.memory_mb_range, size=shape), axis=1)),
        peak_accuracy=np.sort(rng.uniform(*cfg.peak_accuracy_range, size=shape), axis=1),
        quality_exponent=rng.uniform(*cfg.quality_exponent_range, size=n_users),
        name=name,
    )


def upgrade_condition(rng: np.random.Generator, condition: Condition, cfg: ConditionConfig,
                      name: str = "") -> Condition:
    """One upgrade event: each function independently, with probability `upgrade_prob`, scales all
    its models' compute and memory by one factor each and adds one accuracy gain to all of them.

    One factor per function keeps the models' order (ours).
    """
    u = condition.n_users
    hit = rng.random(u) < cfg.upgrade_prob
    flop_f = np.where(hit, rng.uniform(*cfg.upgrade_flop_factor, size=u), 1.0)[:, None]
    mem_f = np.where(hit, rng.uniform(*cfg.upgrade_memory_factor, size=u), 1.0)[:, None]
    gain = np.where(hit, rng.uniform(*cfg.upgrade_accuracy_gain, size=u), 0.0)[:, None]
    memory = np.where(hit[:, None],
                      np.maximum(np.rint(condition.memory_mb * mem_f), cfg.upgrade_min_memory_mb),
                      condition.memory_mb)
    return replace(
        condition,
        flop_per_bit=condition.flop_per_bit * flop_f,
        memory_mb=memory,
        peak_accuracy=np.minimum(condition.peak_accuracy + gain, cfg.max_accuracy),
        name=name,
    )


def merge_users(base: Condition, new: Condition, mask: np.ndarray, name: str) -> Condition:
    """`base` with the rows of the users in `mask` taken from `new` (every per-user array
    field of the condition, whatever the fields are)."""
    out = {}
    for f in fields(base):
        a, b = getattr(base, f.name), getattr(new, f.name)
        if isinstance(a, np.ndarray) and a.ndim >= 1 and a.shape[0] == base.n_users:
            out[f.name] = np.where(np.asarray(mask).reshape((-1,) + (1,) * (a.ndim - 1)), b, a)
    return replace(base, **out, name=name)


def changed_users(a: Condition, b: Condition) -> np.ndarray:
    """(U,) bool: the users whose models differ between conditions `a` and `b`."""
    return ((a.flop_per_bit != b.flop_per_bit).any(axis=1)
            | (a.memory_mb != b.memory_mb).any(axis=1)
            | (a.peak_accuracy != b.peak_accuracy).any(axis=1)
            | (a.quality_exponent != b.quality_exponent))
