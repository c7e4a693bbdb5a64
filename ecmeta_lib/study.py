"""One study: the profile, methods, seeds, task seed and results folder a grid or an analysis
works on, resolved and validated once (`Study.of`) and passed down.

Torch-free: the CLI checks its arguments with it before anything heavy is imported, and the
task set (`Study.task_set`, drawn from the task seed) is built once per study, however many
baselines, yardsticks, adaptation curves or probes read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from .conditions import TaskSet, make_task_set
from .profiles import METHODS, Profile, get_profile

DEFAULT_RESULTS = Path("results")
"""Root folder of the runs (``results/<profile>/<run id>``)."""
DEFAULT_SEEDS: tuple[int, ...] = (0, 1, 2)
ADAPT_CONTEXT: tuple[int, ...] = (0, 1, 2, 5, 10, 20, 50)
"""Context sizes of PEARL's adaptation curves (adaptation.csv) and of the yardsticks'."""


class ResultsError(ValueError):
    """A results file that exists but cannot be read (a CSV that does not parse or lacks a
    column, a JSON marker that does not decode); the message names the file."""


def _non_negative_int(what: str, value: object) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Study:
    """What a grid trains and an analysis reads: build it with `Study.of` (which validates)."""

    profile: Profile
    methods: tuple[str, ...] = METHODS
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    task_seed: int = 0
    results_root: Path = field(default=DEFAULT_RESULTS)

    @classmethod
    def of(cls, profile: str | Profile | Study, methods: Sequence[str] | None = None,
           seeds: Sequence[int] | None = None, *, task_seed: int | None = None,
           results_root: Path | str | None = None) -> Study:
        """A study from names (or a `Study`, whose fields the given arguments replace).

        Raises `ValueError` naming the problem and the valid values: an unknown profile or
        method, no method or seed, a seed or task seed that is not a non-negative integer."""
        if isinstance(profile, Study):
            base = profile
            prof = base.profile
        else:
            base = None
            prof = get_profile(profile)  # raises on an unknown name, listing the valid ones
        methods = tuple(methods) if methods is not None else (base.methods if base else METHODS)
        seeds = tuple(seeds) if seeds is not None else (base.seeds if base else DEFAULT_SEEDS)
        if task_seed is None:
            task_seed = base.task_seed if base else 0
        if results_root is None:
            results_root = base.results_root if base else DEFAULT_RESULTS
        if not methods:
            raise ValueError(f"at least one method is needed; valid: {', '.join(METHODS)}")
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown method(s) {', '.join(map(str, unknown))}; "
                             f"valid: {', '.join(METHODS)}")
        if not seeds:
            raise ValueError("at least one seed is needed")
        bad = [s for s in seeds
               if not isinstance(s, (int, np.integer)) or isinstance(s, bool) or s < 0]
        if bad:
            raise ValueError(f"seeds must be non-negative integers, got {bad}")
        return cls(prof, tuple(methods), tuple(int(s) for s in seeds),
                   _non_negative_int("task seed", task_seed), Path(results_root))

    @property
    def name(self) -> str:
        """The profile's name (the folder under the results root)."""
        return self.profile.name

    @property
    def profile_dir(self) -> Path:
        """``<results root>/<profile>``: the runs, baselines and caches of this study."""
        return self.results_root / self.name

    @cached_property
    def task_set(self) -> TaskSet:
        """The system and the nine named conditions of the task seed (built once)."""
        env = self.profile.env
        return make_task_set(self.task_seed, env.system, env.conditions)
