"""AI service function conditions (one meta-RL task, one digital twin), upgrades and task sets.

A condition fixes every user's AI models: compute intensity, memory and accuracy. A service
provider's upgrade makes models lighter, smaller and more accurate (paper Sec. V). The named task
set follows the paper: base conditions G1, G2, G3; G1 upgraded twice, G2 once, G3 never; six
digital-twin (DT) conditions for meta-training and three independent unseen test conditions T1-T3.
Everything, the static system included, derives from one integer seed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .config import ConditionConfig, SystemConfig
from .system import System, sample_system

DT_NAMES: tuple[str, ...] = ("G1", "G1'", "G1''", "G2", "G2'", "G3")
TEST_NAMES: tuple[str, ...] = ("T1", "T2", "T3")
CONDITION_NAMES: tuple[str, ...] = DT_NAMES + TEST_NAMES
TWIN_SAMPLE_PREFIX = "S"
"""Names of the conditions `with_twin_samples` adds: S1, S2, ..."""


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


@dataclass(frozen=True)
class TaskSet:
    """The static system with the nine named conditions, all from `seed`."""

    seed: int
    system: System
    conditions: dict[str, Condition]

    @property
    def dt(self) -> list[Condition]:
        """The six digital-twin conditions of meta-training, in DT_NAMES order."""
        return [self.conditions[n] for n in DT_NAMES]

    @property
    def test(self) -> list[Condition]:
        """The three unseen test conditions T1-T3."""
        return [self.conditions[n] for n in TEST_NAMES]

    def __getitem__(self, name: str) -> Condition:
        return get_condition(self.conditions, name)


def get_condition(conditions: dict[str, Condition], name: str) -> Condition:
    """Look a condition up by name with an error that lists the valid names."""
    try:
        return conditions[name]
    except KeyError:
        raise KeyError(f"unknown condition name {name!r}; valid names: "
                       f"{', '.join(conditions)}") from None


def make_task_set(seed: int, system_cfg: SystemConfig | None = None,
                  condition_cfg: ConditionConfig | None = None) -> TaskSet:
    """Build the static system, the six DT conditions and T1-T3 from one integer seed.

    ``condition_cfg.source`` picks the conditions: "uniform" (`sample_condition`,
    `upgrade_condition`) or "catalogue" (published models, `catalogue.catalogue_task_conditions`:
    twin families for the DTs, held-out families for T1-T3).

    Independent child streams (numpy SeedSequence.spawn) keep each part stable when another part's
    draws change: the system, the three base conditions, the upgrades and the test conditions.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"task seed must be a non-negative integer, got {seed!r}")
    scfg = system_cfg or SystemConfig()
    ccfg = condition_cfg or ConditionConfig()
    sys_ss, base_ss, upg_ss, test_ss = np.random.SeedSequence(int(seed)).spawn(4)
    system = sample_system(np.random.default_rng(sys_ss), scfg)
    u, f = scfg.n_users, scfg.n_models
    base_rng, upg_rng = np.random.default_rng(base_ss), np.random.default_rng(upg_ss)
    test_rng = np.random.default_rng(test_ss)
    if ccfg.source == "catalogue":  # published models (ecmeta_lib.catalogue), same streams
        from .catalogue import catalogue_task_conditions
        drawn = catalogue_task_conditions(base_rng, upg_rng, test_rng, u, f, ccfg)
        return TaskSet(seed=int(seed), system=system,
                       conditions={n: c.condition for n, c in drawn.items()})
    g1, g2, g3 = (sample_condition(base_rng, u, f, ccfg, name=n) for n in ("G1", "G2", "G3"))
    g1p = upgrade_condition(upg_rng, g1, ccfg, name="G1'")
    g1pp = upgrade_condition(upg_rng, g1p, ccfg, name="G1''")
    g2p = upgrade_condition(upg_rng, g2, ccfg, name="G2'")
    conds = {c.name: c for c in (g1, g1p, g1pp, g2, g2p, g3)}
    for n in TEST_NAMES:
        conds[n] = sample_condition(test_rng, u, f, ccfg, name=n)
    return TaskSet(seed=int(seed), system=system, conditions=conds)


def twin_sample_names(n: int) -> tuple[str, ...]:
    """The names `with_twin_samples` gives its ``n`` conditions: S1..Sn."""
    return tuple(f"{TWIN_SAMPLE_PREFIX}{i + 1}" for i in range(int(n)))


def with_twin_samples(task_set: TaskSet, n: int, condition_cfg: ConditionConfig | None = None
                      ) -> TaskSet:
    """`task_set` plus ``n`` conditions S1..Sn that the twin draws from its prior over conditions
    (`sample_condition`), for meta-training on more tasks than the six DTs (ours).

    They come from a fifth child stream of the task seed, so the system, the DTs and T1-T3 are
    unchanged and no S condition is a test condition (a fresh draw, not a copy)."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise ValueError(f"the number of twin samples must be an integer >= 0, got {n!r}")
    ccfg = condition_cfg or ConditionConfig()
    rng = np.random.default_rng(np.random.SeedSequence(task_set.seed).spawn(5)[4])
    u, f = task_set.system.local_flops.shape[0], next(iter(task_set.conditions.values())).n_models
    if ccfg.source == "catalogue":  # twin families only, any published weights generation
        from .catalogue import sample_catalogue_condition
        extra = {name: sample_catalogue_condition(rng, u, f, ccfg, name, split="twin",
                                                  random_generation=True).condition
                 for name in twin_sample_names(n)}
    else:
        extra = {name: sample_condition(rng, u, f, ccfg, name=name)
                 for name in twin_sample_names(n)}
    return TaskSet(seed=task_set.seed, system=task_set.system,
                   conditions={**task_set.conditions, **extra})
