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
* `lifecycle_scoring` scores any controller over the stream against the per-slot oracle.
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
from dataclasses import dataclass, replace
from typing import Any

import gymnasium as gym
import numpy as np

from .conditions import (
    TEST_NAMES,
    Condition,
    TaskSet,
    changed_users,
    make_task_set,
    stream_sources,
)
from .config import ConditionConfig, EnvConfig
from .env import EdgeCloudEnv, encode_observation
from .evaluation import (
    _condition_key,
    _fingerprint,
)
from .policies import (
    BlindGreedyPolicy,
    TwinEstimate,
    TwinIdentifier,
    context_action,
    dt_mean_condition,
    greedy_action,
    twin_latency,
)
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
SCENARIO_PROFILES["catalogue"] = SCENARIO_PROFILES["quick"]  # quick's size, catalogue models
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
    rng = np.random.default_rng(up_ss)
    always = replace(ccfg, upgrade_prob=1.0)
    start, upgrade, fresh, merge = stream_sources(task_set, cfg.start_condition, ccfg, always,
                                                  start_ss, n_users, n_models)
    segments: list[tuple[int, Condition]] = [(0, start.condition)]
    events: list[UpgradeEvent] = []
    cur = start
    for k, t in enumerate(times.tolist(), start=1):
        changed = rng.random(n_users) < cfg.upgrade_prob
        replaced = changed & (rng.random(n_users) < cfg.replace_prob)
        upgraded_all, new = upgrade(rng, cur), fresh(rng)
        name = f"{start.condition.name}+{k}"
        prev = cur.condition
        cur = merge(merge(cur, upgraded_all, changed & ~replaced, name), new, replaced, name)
        # the users whose models did change (a catalogue AiSF with no newer published model
        # keeps its own): an event announces, and a detector can find, only those
        moved = changed_users(prev, cur.condition)
        if not moved.any():
            continue
        segments.append((int(t), cur.condition))
        events.append(UpgradeEvent(slot=int(t), upgraded=moved, replaced=replaced & moved,
                                   condition=cur.condition))
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

    It relies on announcements, unless a `detection.CusumDetector` is given: then it ignores
    ``info["upgrade"]`` and treats the users the detector flags as upgraded, the residual being
    the log of each identified user's latency over what its twin predicts for the decision it
    executed (`detection.executed_latency`); ``detections`` lists (slot, user) of every flag.
    Without either, ``announce=False`` leaves it blind: it never forgets, and the identifier's
    per-(user, model) averages mix the old and new models. After each step ``estimate`` holds
    the current `TwinEstimate`.
    """

    def __init__(self, n_context: int = 9, *, detector: Any | None = None,
                 name: str | None = None) -> None:
        super().__init__()
        self.detector = detector
        self.detections: list[tuple[int, int]] = []
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
        if self.detector is not None:  # unannounced: a flagged user's slot is already new
            pred = twin_latency(self.env.system, self.twin, self._state, info)
            users = self.detector.update(np.log(info["latency"]) - np.log(pred),
                                         valid=~self.in_context)
            self.detections += [(int(info["slot"]), int(u)) for u in np.flatnonzero(users)]
            if users.any():  # before adding the slot: it shows the new models
                self.identifier.forget(users)
            self.identifier.add(self._state, info)
        else:  # announced for the next slot: this one still shows the old models
            self.identifier.add(self._state, info)
            users = np.asarray(info["upgraded_users"], dtype=bool) if info.get(
                "upgrade", False) else None
            if users is not None:
                self.identifier.forget(users)
        self._phase += 1
        if users is not None:
            self._phase[users] = 0
        self.estimate = self.identifier.estimate()
        self.twin = self.estimate.condition

    def __repr__(self) -> str:
        return f"LiveIdentifyGreedy(n_context={self.n_context})"


__all__ = [
    "LIFECYCLE_ENV_ID", "REPORTED_SCENARIO_SEEDS", "SCENARIO_PROFILES", "START_CONDITIONS",
    "VALIDATION_SCENARIO_SEED_MIN", "EdgeCloudLifecycleEnv",
    "LiveIdentifyGreedy", "Scenario", "ScenarioConfig", "UpgradeEvent",
    "get_scenario_config", "make_scenario",
    "validation_scenario_seeds",
]
