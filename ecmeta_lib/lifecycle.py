"""The system of the paper's title while it runs: AI-model upgrades arriving during one long stream.

The paper meta-trains on digital twins of AI-model conditions and adapts to an unseen one; in
operation the conditions change *during* the run, whenever a service provider upgrades (or
replaces) the models of some AI service functions (AiSFs; one per user). This module is the
first layer of that setting (no torch):

* `ScenarioConfig` / `SCENARIO_PROFILES`: the law of the upgrade events; `make_scenario` draws
  one `Scenario` (the event slots, the users each event touches, the condition of every slot and
  the seed of the user-state stream) from one scenario seed.
* `EdgeCloudLifecycleEnv`, registered as ``ecmeta/EdgeCloudLifecycle-v0``: `EdgeCloudEnv`'s
  spaces and slot model, one episode = the whole stream, the condition switching inside it.
* `score_stream` runs any `evaluation.Policy` over the stream against the per-slot oracle
  (cached per slot in `evaluation`'s oracle cache) and returns a per-slot trace;
  `stream_metrics` reduces a trace to the stream gap, the regret, the recovery after each
  upgrade and the decision time.
* `LiveIdentifyGreedy`: `policies.IdentifyGreedyPolicy`'s twin synchronisation done on the live
  stream: after every announced upgrade the upgraded users play `policies.context_action` for
  ``n_context`` slots (their cost counts) and their twin estimates restart from the prior.

Scenario law (all "ours"): event times are ``min_gap_slots`` plus a geometric excess of mean
``mean_interarrival_slots - min_gap_slots`` apart, the first one counted from slot 0; at an event
every AiSF is changed independently with probability ``upgrade_prob``; a changed AiSF is, with
probability ``replace_prob``, *replaced* (its models redrawn from the prior over conditions,
`conditions.sample_condition`) and otherwise *upgraded* (`conditions.upgrade_condition`: lighter,
smaller, more accurate models). An upgrade takes effect at the start of its event slot.

Seeds: everything about a scenario derives from its scenario seed through
``np.random.SeedSequence(seed).spawn(4)``: (event times, event contents, the "fresh" start
condition, the user-state stream). The static system and the named start conditions T1-T3 come
from the task set (task seed), as everywhere else. Like task seeds (`tuning`), scenario seeds are
split: `REPORTED_SCENARIO_SEEDS` are the ones results are reported on, and anything chosen
(a hyper-parameter, a controller setting) is chosen on seeds >= `VALIDATION_SCENARIO_SEED_MIN`
only (`validation_scenario_seeds`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd

from .conditions import TEST_NAMES, Condition, TaskSet, make_task_set, sample_condition
from .conditions import upgrade_condition as _upgrade_condition
from .config import ConditionConfig, EnvConfig
from .env import EdgeCloudEnv, encode_observation
from .evaluation import (
    _ORACLE_CACHE,
    _ORACLE_CACHE_MAX,
    _condition_key,
    _fingerprint,
    _system_key,
)
from .oracle import oracle as _oracle
from .policies import (
    BlindGreedyPolicy,
    TwinEstimate,
    TwinIdentifier,
    context_action,
    dt_mean_condition,
    greedy_action,
)
from .rollout import rollout
from .slot import option_table
from .system import sample_user_state

LIFECYCLE_ENV_ID = "ecmeta/EdgeCloudLifecycle-v0"
START_CONDITIONS: tuple[str, ...] = (*TEST_NAMES, "fresh")
"""Allowed `ScenarioConfig.start_condition`: an unseen test condition, or "fresh" (drawn from
the prior over conditions with the scenario seed: a condition no twin and no test set is)."""

REPORTED_SCENARIO_SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4)
"""Scenario seeds results are reported on; never used to choose anything."""
VALIDATION_SCENARIO_SEED_MIN = 100
"""Scenario seeds >= this are for selection (tuning a controller, choosing a setting); below it
they are reported (`REPORTED_SCENARIO_SEEDS`) or reserved. Mirrors
`tuning.MIN_VALIDATION_TASK_SEED` for task seeds."""


def validation_scenario_seeds(n: int) -> tuple[int, ...]:
    """The first ``n`` scenario seeds for selection: 100, 101, ..."""
    n = _check_int("n", n, 0)
    return tuple(range(VALIDATION_SCENARIO_SEED_MIN, VALIDATION_SCENARIO_SEED_MIN + n))


def _check_int(name: str, value: Any, minimum: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_prob(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


# --------------------------------------------------------------------------------------------
# the scenario
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScenarioConfig:
    """The law of one upgrade stream (all values ours; the paper has no in-run upgrades)."""

    n_slots: int = 120
    """Length of the stream, slots (one slot = one decision for every user)."""
    mean_interarrival_slots: float = 40.0
    """Mean number of slots between consecutive upgrade events (and from slot 0 to the first),
    slots; >= `min_gap_slots`. The gap is ``min_gap_slots + G`` with G geometric on
    {0, 1, ...} of mean ``mean_interarrival_slots - min_gap_slots`` (equal values: periodic)."""
    min_gap_slots: int = 35
    """Fewest slots between two events (and before the first), slots; >= 1, so slot 0 is never
    an event and every segment lasts at least this long (except the last, cut by `n_slots`)."""
    upgrade_prob: float = 0.5
    """Probability that an event changes one AiSF (independently per user), in [0, 1]."""
    replace_prob: float = 0.1
    """Probability that a changed AiSF is replaced altogether (its models redrawn from the prior,
    `sample_condition`) rather than upgraded (`upgrade_condition`), in [0, 1]. The probability
    that an event replaces a given AiSF is ``upgrade_prob * replace_prob``."""
    start_condition: str = "T1"
    """Condition in force at slot 0: "T1", "T2", "T3" (the task set's unseen test conditions)
    or "fresh" (a draw from the prior with the scenario seed)."""

    def __post_init__(self) -> None:
        _check_int("n_slots", self.n_slots, 1)
        _check_int("min_gap_slots", self.min_gap_slots, 1)
        m = self.mean_interarrival_slots
        if isinstance(m, bool) or not isinstance(m, (int, float, np.integer, np.floating)) \
                or not math.isfinite(float(m)) or float(m) < self.min_gap_slots:
            raise ValueError("mean_interarrival_slots must be a finite number >= min_gap_slots "
                             f"({self.min_gap_slots}), got {m!r}")
        _check_prob("upgrade_prob", self.upgrade_prob)
        _check_prob("replace_prob", self.replace_prob)
        if self.start_condition not in START_CONDITIONS:
            raise ValueError(f"unknown start condition {self.start_condition!r}; choose one of "
                             f"{START_CONDITIONS}")

    @property
    def expected_events(self) -> float:
        """Roughly how many events a stream holds: ``(n_slots - 1) / mean_interarrival_slots``
        (renewal approximation)."""
        return (self.n_slots - 1) / float(self.mean_interarrival_slots)


SCENARIO_PROFILES: dict[str, ScenarioConfig] = {
    # CI: 2-3 events (3 gaps of >= 35 slots fit in 120 slots only just), ~1 s of oracle.
    "smoke": ScenarioConfig(n_slots=120, mean_interarrival_slots=40.0, min_gap_slots=35),
    # ~9 events expected; fewer than 6 has probability ~1e-4 (6 gaps of mean 250, sd ~100).
    "quick": ScenarioConfig(n_slots=2400, mean_interarrival_slots=250.0, min_gap_slots=150),
    # ~20 events, segments long enough for a learner to settle between them.
    "paper": ScenarioConfig(n_slots=10_000, mean_interarrival_slots=500.0, min_gap_slots=300),
}
"""Scenario sizes per profile (the names of `training.PROFILES`)."""


def get_scenario_config(profile: str | ScenarioConfig) -> ScenarioConfig:
    """A profile name of `SCENARIO_PROFILES` or a `ScenarioConfig` (returned as is)."""
    if isinstance(profile, ScenarioConfig):
        return profile
    if isinstance(profile, str) and profile in SCENARIO_PROFILES:
        return SCENARIO_PROFILES[profile]
    raise ValueError(f"unknown scenario profile {profile!r}; choose one of "
                     f"{sorted(SCENARIO_PROFILES)} or pass a ScenarioConfig")


@dataclass(frozen=True, eq=False)
class UpgradeEvent:
    """One upgrade event: what changes and from which slot."""

    slot: int
    """First slot under the new condition."""
    upgraded: np.ndarray
    """(U,) bool: the AiSFs (users) the event changes, replaced ones included."""
    replaced: np.ndarray
    """(U,) bool: the changed AiSFs whose models were redrawn (a subset of `upgraded`)."""
    condition: Condition
    """The condition in force from `slot` on (until the next event)."""


@dataclass(frozen=True, eq=False)
class Scenario:
    """One drawn upgrade stream: segments of constant condition and the user-state stream."""

    seed: int
    """The scenario seed everything below derives from (with the task set)."""
    config: ScenarioConfig
    task_set: TaskSet
    segments: tuple[tuple[int, Condition], ...]
    """(start slot, condition) of each segment; the first starts at 0, the others at events."""
    events: tuple[UpgradeEvent, ...]
    """The upgrade events in slot order (segment k + 1 starts at event k)."""
    state_seed: np.random.SeedSequence
    """Seed of the user-state stream: slot t's user state is the t-th draw of
    `sample_user_state` from ``np.random.default_rng(state_seed)`` (`state_rng`)."""

    @property
    def n_slots(self) -> int:
        return self.config.n_slots

    @property
    def segment_starts(self) -> np.ndarray:
        """(K,) int64 first slot of each segment."""
        return np.array([s for s, _ in self.segments], dtype=np.int64)

    @property
    def event_slots(self) -> np.ndarray:
        """(K - 1,) int64 slots at which an upgrade takes effect."""
        return self.segment_starts[1:]

    def segment_of(self, slots: Any) -> np.ndarray:
        """Segment index of each slot in `slots` (vectorised; each in [0, n_slots))."""
        t = np.asarray(slots)
        if not np.issubdtype(t.dtype, np.integer) or np.any((t < 0) | (t >= self.n_slots)):
            raise ValueError(f"slots must be integers in [0, {self.n_slots}), got {slots!r}")
        return np.searchsorted(self.segment_starts, t, side="right") - 1

    def segment_at(self, t: int) -> int:
        """Index of the segment slot `t` belongs to."""
        _check_int("slot", t, 0)
        return int(self.segment_of(np.int64(t)))

    def condition_at(self, t: int) -> Condition:
        """The true condition in force in slot `t`."""
        return self.segments[self.segment_at(t)][1]

    def state_rng(self) -> np.random.Generator:
        """A fresh generator of the user-state stream, positioned at slot 0."""
        return np.random.default_rng(self.state_seed)

    @property
    def key(self) -> str:
        """A fingerprint of everything that fixes the slots' oracle: the seed, the segments'
        starts and conditions (the state stream also depends on the env's `SystemConfig`)."""
        conds = "".join(_condition_key(c) for _, c in self.segments)
        return _fingerprint(np.int64(self.seed), self.segment_starts,
                            np.frombuffer(conds.encode(), dtype=np.uint8))


def _merge_users(base: Condition, new: Condition, mask: np.ndarray, name: str) -> Condition:
    """`base` with the rows of the users in `mask` taken from `new` (every per-user array
    field of the condition, whatever the fields are)."""
    n_users = base.n_users
    out: dict[str, Any] = {}
    for f in fields(base):
        a, b = getattr(base, f.name), getattr(new, f.name)
        if isinstance(a, np.ndarray) and a.ndim >= 1 and a.shape[0] == n_users:
            out[f.name] = np.where(mask.reshape((-1,) + (1,) * (a.ndim - 1)), b, a)
    return replace(base, **out, name=name)


def make_scenario(task_set: TaskSet, scenario_seed: int,
                  cfg: ScenarioConfig | str = "smoke", *,
                  condition_config: ConditionConfig | None = None) -> Scenario:
    """Draw the upgrade stream of `scenario_seed` on `task_set`'s system.

    Args:
        task_set: the static system and the named conditions (the start condition T1-T3).
        scenario_seed: integer >= 0; see the module docstring for the seed split.
        cfg: a `ScenarioConfig` or a profile name of `SCENARIO_PROFILES`.
        condition_config: the ranges of upgrades and fresh draws (default `ConditionConfig()`;
            its `upgrade_prob` is not used: the scenario's `upgrade_prob` is).

    Event times come from the first child stream, drawn as one batch of gaps so that a longer
    stream with the same law and seed has the same first events; the event contents (who is
    changed, replaced, and how) from the second; a "fresh" start from the third.
    """
    if not isinstance(task_set, TaskSet):
        raise TypeError(f"task_set must be a TaskSet, got {type(task_set).__name__}")
    seed = _check_int("scenario seed", scenario_seed, 0)
    cfg = get_scenario_config(cfg)
    ccfg = condition_config or ConditionConfig()
    if not isinstance(ccfg, ConditionConfig):
        raise TypeError(f"condition_config must be a ConditionConfig, got {type(ccfg).__name__}")
    source = getattr(ccfg, "source", "uniform")
    if source != "uniform":  # the events use the uniform draws; no catalogue upgrades yet
        raise NotImplementedError(f"make_scenario draws upgrades and replacements from the "
                                  f"uniform ranges only; condition source {source!r} is not "
                                  "supported yet")
    ev_ss, up_ss, start_ss, state_ss = np.random.SeedSequence(seed).spawn(4)
    ref = task_set[TEST_NAMES[0]]
    n_users, n_models = ref.n_users, ref.n_models

    # event times: min gap + geometric excess (numpy's geometric counts trials, so minus 1)
    excess_mean = float(cfg.mean_interarrival_slots) - cfg.min_gap_slots
    max_events = cfg.n_slots // cfg.min_gap_slots + 1
    gaps = cfg.min_gap_slots + np.random.default_rng(ev_ss).geometric(
        1.0 / (1.0 + excess_mean), size=max_events) - 1
    times = np.cumsum(gaps)
    times = times[times < cfg.n_slots]

    if cfg.start_condition == "fresh":
        start = sample_condition(np.random.default_rng(start_ss), n_users, n_models, ccfg,
                                 name="fresh")
    else:
        start = task_set[cfg.start_condition]
    rng = np.random.default_rng(up_ss)
    always = replace(ccfg, upgrade_prob=1.0)
    segments: list[tuple[int, Condition]] = [(0, start)]
    events: list[UpgradeEvent] = []
    cond = start
    for k, t in enumerate(times.tolist(), start=1):
        changed = rng.random(n_users) < cfg.upgrade_prob
        replaced = changed & (rng.random(n_users) < cfg.replace_prob)
        upgraded_all = _upgrade_condition(rng, cond, always)
        fresh = sample_condition(rng, n_users, n_models, ccfg)
        name = f"{start.name}+{k}"
        cond = _merge_users(cond, upgraded_all, changed & ~replaced, name)
        cond = _merge_users(cond, fresh, replaced, name)
        segments.append((int(t), cond))
        events.append(UpgradeEvent(slot=int(t), upgraded=changed, replaced=replaced,
                                   condition=cond))
    return Scenario(seed=seed, config=cfg, task_set=task_set, segments=tuple(segments),
                    events=tuple(events), state_seed=state_ss)


# --------------------------------------------------------------------------------------------
# the environment
# --------------------------------------------------------------------------------------------
class EdgeCloudLifecycleEnv(EdgeCloudEnv):
    """`EdgeCloudEnv` over one upgrade stream: the condition changes inside the episode.

    Args:
        scenario_seed: seed of the scenario (events and user-state stream); integer >= 0.
        task_seed: seed of the task set (system, T1-T3), unless `task_set` is given.
        profile: a `SCENARIO_PROFILES` name ("smoke", "quick", "paper") or a `ScenarioConfig`.
        announce: whether upgrades are announced in ``info`` (see below).
        config: the environment config (system sizes; ``episode_slots`` is not used: the
            episode is the whole stream).
        task_set: a prebuilt task set (built with `config`).
        scenario: a prebuilt `Scenario` (overrides the three arguments above it but `config`).

    Same spaces and slot model as `EdgeCloudEnv`. **One episode is the whole stream**: ``step``
    returns ``terminated=False`` always and ``truncated=True`` on the stream's last slot; stepping
    past it raises. **``reset`` restarts the stream at slot 0**, whatever its ``seed``: the user
    state of slot t is the t-th draw of the scenario's state stream, so it depends only on
    (scenario seed, t) - never on actions nor on ``reset(seed=...)`` (common random numbers for
    every controller). ``seed`` only seeds ``self.np_random`` (Gymnasium's contract; nothing
    here draws from it). ``reset`` takes no options; to run another scenario build another env.

    ``info`` of ``step`` (slot t played, observation of slot t + 1 returned) adds to
    `EdgeCloudEnv`'s keys: ``slot`` = t, ``next_slot`` = t + 1, and the announcement of the
    *returned observation's* slot, so that a controller knows of an upgrade before it acts on
    the first slot under it: ``upgrade`` (bool) is True iff an upgrade takes effect at slot
    t + 1, and ``upgraded_users`` is then the (U,) bool mask of the AiSFs it changes (all False
    otherwise). ``reset``'s info carries the same two keys for slot 0 (never an event) and
    ``next_slot`` = 0. With ``announce=False`` both keys are always present but carry nothing
    (``upgrade`` False, mask all False), and ``info["condition"]`` keeps the start condition's
    name for the whole stream (the name would reveal the events). The true condition stays
    readable as ``env.unwrapped.condition`` for scoring (the informed greedy and the oracle).
    """

    def __init__(self, scenario_seed: int = 0, task_seed: int = 0,
                 profile: str | ScenarioConfig = "smoke", announce: bool = True,
                 config: EnvConfig | None = None, task_set: TaskSet | None = None,
                 scenario: Scenario | None = None) -> None:
        config = config or EnvConfig()
        if not isinstance(config, EnvConfig):
            raise TypeError(f"config must be an EnvConfig, got {type(config).__name__}")
        if scenario is None:
            if task_set is None:
                task_set = make_task_set(task_seed, config.system, config.conditions)
            scenario = make_scenario(task_set, scenario_seed, profile,
                                     condition_config=config.conditions)
        elif not isinstance(scenario, Scenario):
            raise TypeError(f"scenario must be a Scenario, got {type(scenario).__name__}")
        super().__init__(condition=scenario.condition_at(0), task_set=scenario.task_set,
                         config=config)
        self.scenario = scenario
        self.announce = bool(announce)
        self._stream = scenario.state_rng()
        self._no_users = np.zeros(self.system.n_users, dtype=bool)
        self._event_users = {e.slot: e.upgraded for e in scenario.events}

    def _draw_state(self) -> np.ndarray:
        t = min(self._slot, self.scenario.n_slots - 1)  # past the end: the last condition
        self.condition = self.scenario.condition_at(t)
        self.user_state = sample_user_state(self._stream, self.config.system)
        self.option_table = option_table(self.system, self.condition, self.user_state)
        return encode_observation(self.user_state, self.config.system)

    def _announcement(self, t: int) -> dict[str, Any]:
        mask = self._event_users.get(t) if self.announce else None
        if mask is None:
            return {"upgrade": False, "upgraded_users": self._no_users.copy()}
        return {"upgrade": True, "upgraded_users": mask.copy()}

    def _condition_name(self) -> str:
        return self.condition.name if self.announce else self.scenario.segments[0][1].name

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        if options:
            raise ValueError(f"{type(self).__name__}.reset takes no options (got "
                             f"{sorted(options)}); the scenario fixes the conditions")
        gym.Env.reset(self, seed=seed)
        self._stream = self.scenario.state_rng()
        self._slot = 0
        self.last_outcome = None
        obs = self._draw_state()
        return obs, {"condition": self._condition_name(), "next_slot": 0,
                     **self._announcement(0)}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        t, n = self._slot, self.scenario.n_slots
        if self.option_table is not None and t >= n:
            raise RuntimeError(f"the stream ended after {n} slots; call reset()")
        name = self._condition_name()
        obs, reward, _, _, info = super().step(action)
        info.update(condition=name, slot=t, next_slot=t + 1, **self._announcement(t + 1))
        return obs, reward, False, self._slot >= n, info


# --------------------------------------------------------------------------------------------
# a controller: the twin re-synchronised on the live stream after each announced upgrade
# --------------------------------------------------------------------------------------------
class LiveIdentifyGreedy(BlindGreedyPolicy):
    """`IdentifyGreedyPolicy`'s digital twin, synchronised on the live stream.

    It knows the system model and the DT mean (the prior), not the condition. On
    ``reset(env)`` every user plays `context_action` for ``n_context`` slots on the *live*
    environment (the cost of probing counts); afterwards it plays the greedy rule on the twin
    that `TwinIdentifier` estimates. It keeps feeding the identifier every slot's telemetry
    (the estimates only sharpen: what a slot reveals is exact). When ``info["upgrade"]``
    announces an upgrade for the next slot, the upgraded users' records are dropped
    (`TwinIdentifier.forget`: their twin returns to the prior) and those users alone play
    ``n_context`` context slots again, the others go on with the greedy rule on their twin.
    Context phases are per user (a user upgraded again mid-context restarts its own phase).

    It relies on announcements: with ``announce=False`` it never forgets, and the identifier's
    per-(user, model) averages mix the old and new models. After each step ``estimate`` holds
    the current `TwinEstimate`.
    """

    def __init__(self, n_context: int = 9, *, name: str | None = None) -> None:
        super().__init__()
        self.n_context = _check_int("n_context", n_context, 0)
        self.name = name or f"live_identify_greedy[{self.n_context}]"
        self.identifier: TwinIdentifier | None = None
        self.estimate: TwinEstimate | None = None
        self._phase = np.zeros(0, dtype=np.int64)
        self._state = None

    def _fit_twin(self) -> Condition:
        base = self.env
        self.identifier = TwinIdentifier(base.system, dt_mean_condition(base.task_set))
        self._phase = np.zeros(base.system.n_users, dtype=np.int64)  # context slots played
        self.estimate = self.identifier.estimate()
        return self.estimate.condition

    @property
    def in_context(self) -> np.ndarray:
        """(U,) bool: the users that play a context action on the next slot."""
        return self._phase < self.n_context

    def act(self, obs: np.ndarray) -> np.ndarray:
        env = self.env
        state = env.user_state
        if state is None or self.twin is None:
            raise RuntimeError(f"{type(self).__name__}: call reset(env) on a reset environment "
                               "before act()")
        self._state = state
        ctx = self.in_context
        if ctx.all():
            act = np.empty((state.ap.shape[0], 3), dtype=np.int64)
        else:
            act = greedy_action(self._table())
        n_methods, n_models = env.system.n_methods, env.config.system.n_models
        for k in np.unique(self._phase[ctx]):  # one pass per distinct phase, not per user
            rows = ctx & (self._phase == k)
            act[rows] = context_action(int(k), state, n_methods, n_models)[rows]
        return act.ravel()

    def observe(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray,
                info: dict[str, Any]) -> None:
        if self.identifier is None or self._state is None:
            raise RuntimeError(f"{type(self).__name__}: observe() before act()")
        self.identifier.add(self._state, info)
        self._phase += 1
        if info.get("upgrade", False):
            users = np.asarray(info["upgraded_users"], dtype=bool)
            self.identifier.forget(users)
            self._phase[users] = 0
        self.estimate = self.identifier.estimate()
        self.twin = self.estimate.condition

    def __repr__(self) -> str:
        return f"LiveIdentifyGreedy(n_context={self.n_context})"


# --------------------------------------------------------------------------------------------
# scoring
# --------------------------------------------------------------------------------------------
TRACE_COLUMNS: tuple[str, ...] = (
    "slot", "segment", "upgrade", "mean_latency_s", "oracle_latency_s", "gap_pct", "regret_s",
    "accuracy_violation_rate", "decision_ms", "update_ms", "oracle_ms")


def score_stream(policy: Any | Callable[[], Any], scenario: Scenario, *, announce: bool = True,
                 with_oracle: bool = True, config: EnvConfig | None = None,
                 oracle_backend: str = "highs", n_slots: int | None = None,
                 oracle_latency: np.ndarray | None = None) -> pd.DataFrame:
    """Run a controller over `scenario`'s stream and return its per-slot trace.

    Args:
        policy: an `evaluation.Policy` (``reset(env)``, ``act(obs)``, ``observe(...)``) or a
            zero-argument factory of one. ``reset`` is called once, on the lifecycle env.
        scenario: the stream (`make_scenario`).
        announce: passed to `EdgeCloudLifecycleEnv`.
        with_oracle: also report the per-slot oracle. Each slot's optimum is cached in
            `evaluation`'s in-process oracle cache under (system, scenario, env config), one
            array over the stream's slots (NaN where not solved yet), so several controllers
            on one stream solve each slot once.
        config: the env config (default `EnvConfig()`; must describe the scenario's system).
        oracle_backend: "highs", "gurobi" or "auto".
        n_slots: score only the first `n_slots` slots (default: the whole stream).
        oracle_latency: the stream's per-slot optimum, solved before (`lifecycle_runner`
            keeps it on disk): fills the cache, so no slot is solved again.

    Returns one row per slot (`TRACE_COLUMNS`): ``slot``; ``segment`` (index of the condition
    in force); ``upgrade`` (True on an event slot, announced or not); ``mean_latency_s`` (mean
    over users, s); ``oracle_latency_s`` (NaN without the oracle); ``gap_pct`` = 100 (latency -
    oracle) / oracle; ``regret_s`` = latency - oracle; ``accuracy_violation_rate`` (fraction of
    users under their requirement); ``decision_ms`` (wall time of ``act``, ms) and
    ``update_ms`` (of ``observe``, where a controller learns or re-identifies, ms);
    ``oracle_ms`` (wall time of the oracle's solve where this call solved it, else NaN).
    """
    if isinstance(policy, type) or not all(callable(getattr(policy, a, None))
                                           for a in ("reset", "act", "observe")):
        if not callable(policy):
            raise TypeError(f"policy {policy!r} is neither a Policy nor a factory of one")
        policy = policy()
    for attr in ("reset", "act", "observe"):
        if not callable(getattr(policy, attr, None)):
            raise TypeError(f"policy {policy!r} lacks the Policy method {attr}()")
    if not isinstance(scenario, Scenario):
        raise TypeError(f"scenario must be a Scenario, got {type(scenario).__name__}")
    n = scenario.n_slots if n_slots is None else _check_int("n_slots", n_slots, 1)
    if n > scenario.n_slots:
        raise ValueError(f"n_slots = {n} exceeds the stream's {scenario.n_slots} slots")
    env = EdgeCloudLifecycleEnv(scenario=scenario, announce=announce, config=config)
    obs, _ = env.reset()
    key = ("lifecycle", _system_key(env.system), scenario.key, env.config)
    if with_oracle and oracle_latency is not None:
        given = np.asarray(oracle_latency, dtype=float)
        if given.shape != (scenario.n_slots,):
            raise ValueError(f"oracle_latency has shape {given.shape}, the stream has "
                             f"{scenario.n_slots} slots")
        _ORACLE_CACHE[key] = given.copy()
    orc = _ORACLE_CACHE.get(key) if with_oracle else None
    if with_oracle and orc is None:
        orc = np.full(scenario.n_slots, np.nan)
        if len(_ORACLE_CACHE) >= _ORACLE_CACHE_MAX:
            _ORACLE_CACHE.pop(next(iter(_ORACLE_CACHE)))  # oldest first, as evaluate does
        _ORACLE_CACHE[key] = orc

    policy.reset(env)
    lat, viol, dec, upd = (np.empty(n) for _ in range(4))
    orc_ms = np.full(n, np.nan)
    clock = time.perf_counter

    def solve_oracle(t: int) -> None:  # timed: the oracle's decision time is a metric too
        if orc is not None and np.isnan(orc[t]):
            t0 = clock()
            orc[t] = _oracle(env.system, env.condition, env.user_state, oracle_backend,
                             table=env.option_table).mean_latency
            orc_ms[t] = (clock() - t0) * 1e3

    def act(o: np.ndarray) -> np.ndarray:
        t0 = clock()
        action = np.asarray(policy.act(o))
        dec[env._slot] = (clock() - t0) * 1e3
        return action

    def record(t: int, o: np.ndarray, action: np.ndarray, reward: float, next_o: np.ndarray,
               info: dict[str, Any]) -> None:
        t0 = clock()
        policy.observe(o, action, reward, next_o, info)
        upd[t] = (clock() - t0) * 1e3
        lat[t] = info["mean_latency"]
        viol[t] = 1.0 - float(np.mean(info["accuracy_ok"]))

    rollout(env, n, act, obs=obs, before=solve_oracle, after=record)
    slots = np.arange(n)
    oracle_lat = orc[:n].copy() if orc is not None else np.full(n, np.nan)
    return pd.DataFrame({
        "slot": slots, "segment": scenario.segment_of(slots),
        "upgrade": np.isin(slots, scenario.event_slots), "mean_latency_s": lat,
        "oracle_latency_s": oracle_lat, "gap_pct": (lat - oracle_lat) / oracle_lat * 100.0,
        "regret_s": lat - oracle_lat, "accuracy_violation_rate": viol, "decision_ms": dec,
        "update_ms": upd, "oracle_ms": orc_ms})


@dataclass(frozen=True, eq=False)
class StreamMetrics:
    """`stream_metrics`' result."""

    summary: dict[str, float]
    """Scalars of the whole stream (see `stream_metrics`)."""
    per_upgrade: pd.DataFrame
    """One row per upgrade event: event, slot, segment_slots, level_pct, recovery_slots,
    gap_first<n>_pct for each early horizon."""


def _gap(lat: np.ndarray, orc: np.ndarray) -> float:
    o = float(orc.sum())
    return 100.0 * (float(lat.sum()) - o) / o if lat.size and o > 0 else float("nan")


def stream_metrics(trace: pd.DataFrame, *, window: int = 20, tol_pts: float = 2.0,
                   early: Sequence[int] = (20, 50)) -> StreamMetrics:
    """Reduce a `score_stream` trace (columns slot, segment, upgrade, mean_latency_s,
    oracle_latency_s, decision_ms; consecutive slots from 0) to the stream's metrics.

    Definitions (L_t: the controller's mean latency of slot t, O_t: the oracle's, s):

    * ``stream_gap_pct`` = 100 (sum_t L_t - sum_t O_t) / sum_t O_t: the gap to the oracle of
      the summed latencies (a ratio of sums, not a mean of per-slot gaps).
    * ``regret_s`` = sum_t (L_t - O_t), seconds of mean-over-users latency summed over slots.
    * ``decision_ms_p50`` / ``_p99``: percentiles over slots of a slot's compute,
      ``decision_ms`` + ``update_ms`` (acting, and learning or inferring z, where the trace has it).
    * Per upgrade event at slot e, its segment [e, E) (E: the next event or the stream's end):
      the moving gap g(s) = 100 (sum L - sum O) / sum O over the window [s - W + 1, s]
      (W = `window`), defined for s in [e + W - 1, E) so that a window never reaches back
      before the event; the method's ``level_pct`` on the segment = the gap (ratio of sums) over
      the segment's second half [e + (E - e) // 2, E); ``recovery_slots`` = s* + 1 - e for the
      first s* from which g stays within `tol_pts` points of the level for W consecutive window
      positions (s*, ..., s* + W - 1, all < E): the slots from the event to the end of the first
      settled window, so at least W; NaN if that never happens in the segment (or the segment
      is shorter than 2 W). ``gap_first<n>_pct`` = the gap (ratio of sums) over [e, e + n),
      NaN when the segment is shorter than n slots.
    * The summary averages the per-upgrade values over the events where they are defined
      (``recovery_slots_mean``, ``gap_first<n>_pct_mean``), counts ``n_upgrades`` and
      ``n_recovered``.
    """
    need = ("slot", "segment", "upgrade", "mean_latency_s", "oracle_latency_s", "decision_ms")
    missing = [c for c in need if c not in trace.columns]
    if missing:
        raise ValueError(f"trace lacks column(s) {missing}")
    window = _check_int("window", window, 1)
    early = tuple(_check_int("early horizon", h, 1) for h in early)
    if not tol_pts >= 0:
        raise ValueError(f"tol_pts must be >= 0, got {tol_pts!r}")
    slots = trace["slot"].to_numpy()
    if not np.array_equal(slots, np.arange(slots.size)):
        raise ValueError("trace slots must be 0, 1, ..., n - 1 in order")
    lat = trace["mean_latency_s"].to_numpy(dtype=float)
    orc = trace["oracle_latency_s"].to_numpy(dtype=float)
    n = lat.size
    events = np.flatnonzero(trace["upgrade"].to_numpy(dtype=bool))
    ends = np.append(events[1:], n)
    cl = np.concatenate([[0.0], np.cumsum(lat)])
    co = np.concatenate([[0.0], np.cumsum(orc)])

    def gap_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # over [a, b)
        o = co[b] - co[a]
        with np.errstate(invalid="ignore", divide="ignore"):
            return 100.0 * (cl[b] - cl[a] - o) / o

    # moving gap of the window ending at s (NaN for s < W - 1)
    s = np.arange(n)
    moving = np.full(n, np.nan)
    ok = s >= window - 1
    moving[ok] = gap_between(s[ok] - window + 1, s[ok] + 1)
    rows = []
    for k, (e, end) in enumerate(zip(events.tolist(), ends.tolist(), strict=True)):
        length = end - e
        level = float(gap_between(np.array([e + length // 2]), np.array([end]))[0])
        rec = float("nan")
        if length >= 2 * window and math.isfinite(level):
            inside = np.abs(moving[e + window - 1:end] - level) <= tol_pts  # s = e + W - 1 ...
            # runs of W consecutive in-band positions: a moving sum over `inside`
            c = np.concatenate([[0], np.cumsum(inside)])
            full = (c[window:] - c[:-window]) == window
            if full.any():
                rec = float(int(np.argmax(full)) + window)  # s* + 1 - e, s* = e + W - 1 + i
        row = {"event": k, "slot": e, "segment_slots": length, "level_pct": level,
               "recovery_slots": rec}
        for h in early:
            row[f"gap_first{h}_pct"] = (float(gap_between(np.array([e]), np.array([e + h]))[0])
                                        if length >= h else float("nan"))
        rows.append(row)
    per = pd.DataFrame(rows, columns=["event", "slot", "segment_slots", "level_pct",
                                      "recovery_slots", *(f"gap_first{h}_pct" for h in early)])
    dec = trace["decision_ms"].to_numpy(dtype=float)
    if "update_ms" in trace:  # a slot's whole compute: acting and learning or inferring z
        dec = dec + trace["update_ms"].to_numpy(dtype=float)

    def mean_defined(col: str) -> float:
        v = per[col].to_numpy(dtype=float)
        v = v[np.isfinite(v)]
        return float(v.mean()) if v.size else float("nan")

    summary = {
        "n_slots": float(n),
        "stream_gap_pct": _gap(lat, orc),
        "regret_s": float(np.sum(lat - orc)),
        "mean_latency_s": float(lat.mean()) if n else float("nan"),
        "decision_ms_p50": float(np.percentile(dec, 50)) if n else float("nan"),
        "decision_ms_p99": float(np.percentile(dec, 99)) if n else float("nan"),
        "n_upgrades": float(events.size),
        "n_recovered": float(np.isfinite(per["recovery_slots"].to_numpy(dtype=float)).sum()),
        "recovery_slots_mean": mean_defined("recovery_slots"),
        "recovery_slots_median": (float(np.nanmedian(per["recovery_slots"].to_numpy(float)))
                                  if np.isfinite(per["recovery_slots"].to_numpy(float)).any()
                                  else float("nan")),
        **{f"gap_first{h}_pct_mean": mean_defined(f"gap_first{h}_pct") for h in early},
    }
    return StreamMetrics(summary=summary, per_upgrade=per)


__all__ = [
    "LIFECYCLE_ENV_ID", "REPORTED_SCENARIO_SEEDS", "SCENARIO_PROFILES", "START_CONDITIONS",
    "TRACE_COLUMNS", "VALIDATION_SCENARIO_SEED_MIN", "EdgeCloudLifecycleEnv",
    "LiveIdentifyGreedy", "Scenario", "ScenarioConfig", "StreamMetrics", "UpgradeEvent",
    "get_scenario_config", "make_scenario", "score_stream", "stream_metrics",
    "validation_scenario_seeds",
]
