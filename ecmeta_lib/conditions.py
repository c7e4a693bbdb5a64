"""Task sets: the static system and the named AI service function conditions (one meta-RL task,
one digital twin each), from one seed.

A condition (`aisf.Condition`) fixes every user's AI models; it comes from the uniform source
(`aisf`) or the catalogue of published models (`catalogue`), as the config says. The named task
set follows the paper: base conditions G1, G2, G3; G1 upgraded twice, G2 once, G3 never; six
digital-twin (DT) conditions for meta-training and three independent unseen test conditions T1-T3.
Everything, the static system included, derives from one integer seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .aisf import Condition, changed_users, merge_users, sample_condition, upgrade_condition
from .catalogue import catalogue_task_conditions, sample_catalogue_condition
from .config import ConditionConfig, SystemConfig
from .system import System, sample_system

DT_NAMES: tuple[str, ...] = ("G1", "G1'", "G1''", "G2", "G2'", "G3")
TEST_NAMES: tuple[str, ...] = ("T1", "T2", "T3")
CONDITION_NAMES: tuple[str, ...] = DT_NAMES + TEST_NAMES
TWIN_SAMPLE_PREFIX = "S"
"""Names of the conditions `with_twin_samples` adds: S1, S2, ..."""


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
        extra = {name: sample_catalogue_condition(rng, u, f, ccfg, name, split="twin",
                                                  random_generation=True).condition
                 for name in twin_sample_names(n)}
    else:
        extra = {name: sample_condition(rng, u, f, ccfg, name=name)
                 for name in twin_sample_names(n)}
    return TaskSet(seed=task_set.seed, system=task_set.system,
                   conditions={**task_set.conditions, **extra})


# --------------------------------------------------------------------------------------------
# upgrade streams (the lifecycle): how a running system's conditions evolve, per source
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Plain:
    """A uniform-source condition in the shape of `catalogue.CatalogueCondition`."""

    condition: Condition


def stream_sources(task_set: TaskSet, start_condition: str, ccfg: ConditionConfig,
                   always: ConditionConfig, start_ss: np.random.SeedSequence, n_users: int,
                   n_models: int):
    """What an upgrade stream of `ccfg.source` draws from: the start (a named condition of
    `task_set`, or "fresh" from `start_ss`), an upgrade of every AiSF (with `always`, an
    upgrade probability of 1), a replacement draw, and a per-user merge. Each condition comes
    wrapped with what its source keeps (`.condition`; the catalogue's rows and generations).

    Uniform: `upgrade_condition`'s random scalings and `sample_condition`'s draws. Catalogue: an
    upgrade is the AiSF's next published step (`catalogue.upgrade_catalogue_condition`), a
    replacement a held-out family's models at a published generation, as T1-T3 are drawn."""
    if ccfg.source == "catalogue":
        from .catalogue import merge_users as merge_catalogue
        from .catalogue import task_set_catalogue_conditions, upgrade_catalogue_condition

        if start_condition == "fresh":
            start = sample_catalogue_condition(np.random.default_rng(start_ss), n_users,
                                               n_models, ccfg, "fresh", split="test",
                                               random_generation=True)
        else:
            start = task_set_catalogue_conditions(task_set.seed, n_users, n_models,
                                                  ccfg)[start_condition]
            if not np.array_equal(start.condition.flop_per_bit,
                                  task_set[start_condition].flop_per_bit):
                raise ValueError("condition_config.source is 'catalogue' but the task set's "
                                 f"{start_condition} is not a catalogue condition: build the "
                                 "task set with the same ConditionConfig")
        return (start, lambda rng, c: upgrade_catalogue_condition(rng, c, always),
                lambda rng: sample_catalogue_condition(rng, n_users, n_models, ccfg,
                                                       split="test", random_generation=True),
                merge_catalogue)
    if start_condition == "fresh":
        plain = sample_condition(np.random.default_rng(start_ss), n_users, n_models, ccfg,
                                 name="fresh")
    else:
        plain = task_set[start_condition]
    return (_Plain(plain), lambda rng, c: _Plain(upgrade_condition(rng, c.condition, always)),
            lambda rng: _Plain(sample_condition(rng, n_users, n_models, ccfg)),
            lambda a, b, m, name: _Plain(merge_users(a.condition, b.condition, m, name)))


__all__ = ["CONDITION_NAMES", "DT_NAMES", "TEST_NAMES", "TWIN_SAMPLE_PREFIX", "Condition",
           "TaskSet", "changed_users", "get_condition", "make_task_set", "merge_users",
           "sample_condition", "stream_sources", "twin_sample_names", "upgrade_condition",
           "with_twin_samples"]
