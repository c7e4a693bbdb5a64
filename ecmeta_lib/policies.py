"""Heuristic yardsticks with the agents' interface (the Policy protocol in docs/ARCHITECTURE.md).

Each policy answers an observation with a flat int64 action ``[DS, TA, MS] * U`` (TA 0 = device,
1..H = edge server); the environment then repairs accuracy and runs P2 on every edge server, so
capacity is always handled by the slot model, never by the heuristic.

* `RandomPolicy`: uniform over the action space (seeded, reproducible per evaluation).
* `LocalPolicy`: everything on the device, most compressed data (repair raises the data quality
  and, when even raw data fails, moves the task to the user's own edge server).
* `NearestPolicy`: the user's own AP's edge server, raw data, the most complex model.
* `GreedyPolicy`: knows the condition (through the environment it was reset on): each user's
  fastest accuracy-feasible option ignoring capacity, written as an action.
* `BlindGreedyPolicy`: the same greedy rule on the mean of the task set's six DT conditions
  (`dt_mean_condition`): it knows the distribution of conditions, not this one.
* `IdentifyGreedyPolicy(n_context)`: the digital twin synchronised from telemetry. It knows the
  system model but not the condition; PEARL's adaptation protocol gives it ``n_context`` slots of
  telemetry in a separate environment of the condition, from which `TwinIdentifier` estimates every
  user's models exactly where the telemetry reveals them (DT mean elsewhere); it then acts with the
  greedy rule on that estimated twin. ``n_context = 0`` is `BlindGreedyPolicy`.

The last two bracket an adapting learner: blind (no adaptation) and identified (adaptation done
by system identification). They follow PEARL's protocol exactly (`ecmeta_lib.training`): on
``reset(env)`` the context is collected in a *separate* `EdgeCloudEnv` of the evaluated condition,
reset with `CONTEXT_SEED` (the seed PEARL uses), then the twin is frozen; the evaluated
environment's slot stream is untouched, so common random numbers hold.

The oracle is not a policy: the cloud is not an action (only P2 sends users there), so
`ecmeta_lib.oracle` is reported as a per-slot latency line by `evaluation.evaluate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .conditions import Condition, TaskSet
from .detection import executed_latency
from .env import EdgeCloudEnv, decisions_of
from .slot import OptionTable, option_table, outcome_of
from .system import System, UserState

CONTEXT_SEED = 4_000
"""Seed of the separate environment in which an adapting policy collects its context: PEARL's
(`ecmeta_lib.training.CONTEXT_SEED`) and the yardsticks' `IdentifyGreedyPolicy` alike."""


def _unwrap(env: Any) -> EdgeCloudEnv:
    base = getattr(env, "unwrapped", env)
    if not isinstance(base, EdgeCloudEnv):
        raise TypeError(f"expected an EdgeCloudEnv (or a wrapper of one), got {type(env).__name__}")
    return base


class _Heuristic:
    """Shared plumbing: remembers the environment's sizes; `observe` does nothing."""

    name = "heuristic"

    def __init__(self) -> None:
        self._env: EdgeCloudEnv | None = None

    def reset(self, env: Any) -> None:
        self._env = _unwrap(env)

    @property
    def env(self) -> EdgeCloudEnv:
        if self._env is None:
            raise RuntimeError(f"{type(self).__name__}: call reset(env) before act()")
        return self._env

    def _sizes(self) -> tuple[int, int, int, int]:
        cfg = self.env.config.system
        return cfg.n_users, cfg.n_servers, cfg.n_methods, cfg.n_models

    def observe(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray,
                info: dict[str, Any]) -> None:
        """Heuristics do not learn."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class RandomPolicy(_Heuristic):
    """Uniformly random action; the stream restarts from `seed` at every `reset`."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = int(seed)
        self._rng = np.random.default_rng(self.seed)

    def reset(self, env: Any) -> None:
        super().reset(env)
        self._rng = np.random.default_rng(self.seed)

    def act(self, obs: np.ndarray) -> np.ndarray:
        nvec = self.env.action_space.nvec
        return (self._rng.random(nvec.shape) * nvec).astype(np.int64)

    def __repr__(self) -> str:
        return f"RandomPolicy(seed={self.seed})"


class LocalPolicy(_Heuristic):
    """Every task on its device with the most compressed data (method 0) and model 0."""

    name = "local"

    def act(self, obs: np.ndarray) -> np.ndarray:
        n_users = self._sizes()[0]
        return np.zeros(3 * n_users, dtype=np.int64)


class NearestPolicy(_Heuristic):
    """Every task to its own access point's edge server, raw data, the most complex model."""

    name = "nearest"

    def act(self, obs: np.ndarray) -> np.ndarray:
        n_users, n_servers, n_methods, n_models = self._sizes()
        onehot = np.asarray(obs, dtype=float).reshape(n_users, -1)[:, :n_servers]
        ap = onehot.argmax(axis=1)  # the observation's one-hot access point
        act = np.empty((n_users, 3), dtype=np.int64)
        act[:, 0], act[:, 1], act[:, 2] = n_methods - 1, ap + 1, n_models - 1
        return act.ravel()


def greedy_action(table: OptionTable) -> np.ndarray:
    """(U, 3) action that realises every user's fastest accuracy-feasible option, ignoring
    capacity (a user no option satisfies takes its fastest option of maximum accuracy).

    Local (m) -> [m, 0, 0]; edge (m, j, h) -> [m, h + 1, j]. The cloud is no action, so a user
    whose best option is the cloud with method m is sent as [m, h + 1, |F| - 1] to the server h
    where that model is slowest: its cloud latency beats that edge latency, so P2 never keeps it
    and forwards it to the cloud with the same m and model, exactly the intended option.
    """
    n_users, n_methods, n_models, n_servers = table.edge_s.shape
    u = np.arange(n_users)
    best_acc = table.accuracy.reshape(n_users, -1).max(axis=1)
    thr = np.minimum(table.accuracy_req, best_acc)[:, None]
    local = np.where(table.local_accuracy >= thr, table.local_s, np.inf)  # (U, M)
    cloud = np.where(table.cloud_accuracy >= thr, table.cloud_s, np.inf)  # (U, M)
    edge = np.where((table.accuracy >= thr[:, :, None])[..., None], table.edge_s, np.inf)
    edge_flat = edge.reshape(n_users, -1)
    e_idx = edge_flat.argmin(axis=1)
    e_m, e_j, e_h = np.unravel_index(e_idx, (n_methods, n_models, n_servers))
    d_edge = edge_flat[u, e_idx]
    l_m, c_m = local.argmin(axis=1), cloud.argmin(axis=1)
    d_local, d_cloud = local[u, l_m], cloud[u, c_m]
    choice = np.argmin(np.stack([d_local, d_edge, d_cloud], axis=1), axis=1)  # ties: local first
    cloud_host = table.edge_s[u, c_m, n_models - 1, :].argmax(axis=1)
    act = np.empty((n_users, 3), dtype=np.int64)
    act[:, 0] = np.select([choice == 0, choice == 1], [l_m, e_m], c_m)
    act[:, 1] = np.select([choice == 0, choice == 1], [0, e_h + 1], cloud_host + 1)
    act[:, 2] = np.select([choice == 0, choice == 1], [0, e_j], n_models - 1)
    return act


class GreedyPolicy(_Heuristic):
    """Each user's fastest accuracy-feasible option ignoring capacity (the env's P2 then handles
    capacity). It is informed: it reads the current slot's option table from the environment it
    was reset on, i.e. it knows the condition, which no learned policy does."""

    name = "greedy"

    def _table(self) -> OptionTable:
        """The option table the greedy rule reads: here the true one of the current slot."""
        table = self.env.option_table
        if table is None:
            raise RuntimeError(f"{type(self).__name__}: the environment has no current slot; "
                               "reset it first")
        return table

    def act(self, obs: np.ndarray) -> np.ndarray:
        return greedy_action(self._table()).ravel()


# --------------------------------------------------------------------------------------------
# yardsticks for adaptation: greedy on a twin condition (the DT mean, or identified)
# --------------------------------------------------------------------------------------------
def dt_mean_condition(conditions: TaskSet | Sequence[Condition],
                      name: str = "DT mean") -> Condition:
    """The mean of the digital-twin conditions (a task set's six DTs, or any given list).

    Per user and per model, the arithmetic mean of each parameter across the conditions: compute
    intensity rho_u^j (FLOP/bit), peak accuracy a_u^j, memory R_u^j (rounded to whole MB, as a
    condition's memory is) and, per user, the accuracy exponent gamma_u. Every option's latency is
    affine in rho, so on the mean rho each option's latency is its mean over the DTs; the accuracy
    of the mean parameters approximates the mean accuracy (within a fraction of a point here).
    """
    conds = list(conditions.dt) if isinstance(conditions, TaskSet) else list(conditions)
    if not conds:
        raise ValueError("dt_mean_condition needs at least one condition")
    shape = conds[0].flop_per_bit.shape
    if any(c.flop_per_bit.shape != shape for c in conds):
        raise ValueError("dt_mean_condition: the conditions have different (users, models) shapes")

    def mean(field: str) -> np.ndarray:
        return np.mean([getattr(c, field) for c in conds], axis=0)

    return Condition(flop_per_bit=mean("flop_per_bit"), memory_mb=np.rint(mean("memory_mb")),
                     peak_accuracy=mean("peak_accuracy"),
                     quality_exponent=mean("quality_exponent"), name=name)


@dataclass(frozen=True)
class TwinEstimate:
    """A condition estimated from telemetry, with what the telemetry identified exactly."""

    condition: Condition
    """The estimated condition; the prior's (DT mean's) values where nothing was observed."""
    flop_observed: np.ndarray
    """(U, F) bool: rho_u^j seen (exact) in at least one slot."""
    peak_identified: np.ndarray
    """(U, F) bool: a_u^j exact (seen on raw data, or seen at all with gamma_u identified)."""
    exponent_identified: np.ndarray
    """(U,) bool: gamma_u exact (some model of u seen at two data qualities)."""
    n_slots: int
    """Slots of telemetry the estimate used."""


class TwinIdentifier:
    """Synchronises a digital twin's condition from per-slot telemetry (system identification).

    It knows the system model (the `System`, each slot's observed `UserState` and the slot
    physics of `ecmeta_lib.slot`) but not the condition. Per slot, ``add(state, info)`` reads the
    final decisions and outcomes of every user (``info``: latency, placement, ds, model, accuracy)
    and records what they reveal exactly:

    * Compute intensity. Given the state and the final (placement, ds, model), a user's latency is
      affine in the rho of the model that ran: ``latency = c0 + rho * c1`` (device: c0 = 0, c1 =
      input bits / device FLOP/s; edge: c0 = uplink + forwarding, c1 = input bits / server FLOP/s;
      cloud: c0 = uplink + backhaul, c1 = input bits / cloud FLOP/s). c0 and c1 come from the slot
      model itself, as the latency of the same decisions under rho = 0 and rho = 1 (no formula is
      re-implemented), and ``rho = (latency - c0) / c1``: exact to rounding for the (user, model)
      that ran, whichever the placement (the device reveals rho^0, the cloud rho^{|F|-1}).
    * Accuracy. ``accuracy = a_u^j * alpha_{u,m}^gamma_u`` with alpha known, i.e. ``log A = log a_j
      + gamma_u log alpha_m``: gamma_u is the within-model least-squares slope over the distinct
      (model, method) pairs seen for the user - exact as soon as one model was seen at two data
      qualities (the DT mean's gamma_u otherwise) - and ``a_j = A / alpha^gamma`` averaged over the
      pairs seen, exact on raw data (alpha = 1) or once gamma_u is identified.
    * Memory is revealed only through P2's keep/overflow decisions (inequalities), and the greedy
      rule ignores capacity, so it stays at the prior.

    Whatever was never observed keeps the prior's value (the DT mean). Vectorised over users.
    """

    def __init__(self, system: System, prior: Condition) -> None:
        self.system, self.prior = system, prior
        u, f = prior.flop_per_bit.shape
        m = system.n_methods
        self._zero = replace(prior, flop_per_bit=np.zeros((u, f)))
        self._unit = replace(prior, flop_per_bit=np.ones((u, f)))
        self._flop_sum, self._flop_n = np.zeros((u, f)), np.zeros((u, f), dtype=np.int64)
        self._acc_sum, self._acc_n = np.zeros((u, m, f)), np.zeros((u, m, f), dtype=np.int64)
        self.n_slots = 0

    def add(self, state: UserState, info: dict[str, Any]) -> None:
        """Record one slot: `state` is the user state the slot's action answered."""
        n_servers, n_models = self.system.n_servers, self.prior.n_models
        ds = np.asarray(info["ds"], dtype=np.int64)
        place = np.asarray(info["placement"], dtype=np.int64)
        model = np.asarray(info["model"], dtype=np.int64)
        u = np.arange(ds.shape[0])

        def latency(cond: Condition) -> np.ndarray:
            table = option_table(self.system, cond, state)
            return outcome_of(table, ds, place, model, n_servers, n_models, u).latency

        c0 = latency(self._zero)
        c1 = latency(self._unit) - c0
        self._flop_sum[u, model] += (np.asarray(info["latency"], dtype=float) - c0) / c1
        self._flop_n[u, model] += 1
        self._acc_sum[u, ds, model] += np.asarray(info["accuracy"], dtype=float)
        self._acc_n[u, ds, model] += 1
        self.n_slots += 1

    def forget(self, users: np.ndarray) -> None:
        """Drop everything recorded for `users` ((U,) bool mask or user indices): their twin
        returns to the prior until new telemetry arrives (a per-user re-synchronisation, e.g.
        after an upgrade of their AI service functions). Other users and `n_slots` are kept."""
        idx = np.asarray(users)
        if idx.dtype == bool and idx.shape != self._flop_n.shape[:1]:
            raise ValueError(f"users mask must have shape {self._flop_n.shape[:1]}, "
                             f"got {idx.shape}")
        for arr in (self._flop_sum, self._flop_n, self._acc_sum, self._acc_n):
            arr[idx] = 0

    def estimate(self) -> TwinEstimate:
        """The condition the telemetry so far identifies (the prior where it says nothing)."""
        prior = self.prior
        seen = self._flop_n > 0
        flop = np.where(seen, self._flop_sum / np.maximum(self._flop_n, 1), prior.flop_per_bit)
        obs = self._acc_n > 0  # (U, M, F)
        acc = np.where(obs, self._acc_sum / np.maximum(self._acc_n, 1), 1.0)
        x = np.broadcast_to(np.log(self.system.ds_ratio)[:, :, None], obs.shape)  # log alpha
        y = np.log(acc)
        n_j = obs.sum(axis=1, keepdims=True)  # pairs seen per (user, model)
        x_bar = np.where(obs, x, 0.0).sum(axis=1, keepdims=True) / np.maximum(n_j, 1)
        y_bar = np.where(obs, y, 0.0).sum(axis=1, keepdims=True) / np.maximum(n_j, 1)
        dx = np.where(obs, x - x_bar, 0.0)
        sxx = (dx * dx).sum(axis=(1, 2))
        sxy = (dx * np.where(obs, y - y_bar, 0.0)).sum(axis=(1, 2))
        gamma_id = sxx > 1e-12  # some model seen at two data qualities
        gamma = np.where(gamma_id, sxy / np.where(gamma_id, sxx, 1.0), prior.quality_exponent)
        raw = obs & (x == 0.0)  # seen on raw data: the accuracy is the peak itself
        peak_all = (np.where(obs, acc * np.exp(-gamma[:, None, None] * x), 0.0).sum(axis=1)
                    / np.maximum(n_j[:, 0, :], 1))
        peak_raw = np.where(raw, acc, 0.0).sum(axis=1) / np.maximum(raw.sum(axis=1), 1)
        seen_acc, seen_raw = n_j[:, 0, :] > 0, raw.any(axis=1)
        peak = np.where(seen_raw, peak_raw,
                        np.where(seen_acc, peak_all, prior.peak_accuracy))
        cond = replace(prior, flop_per_bit=flop, peak_accuracy=peak, quality_exponent=gamma,
                       name="identified")
        return TwinEstimate(condition=cond, flop_observed=seen,
                            peak_identified=seen_raw | (seen_acc & gamma_id[:, None]),
                            exponent_identified=gamma_id, n_slots=self.n_slots)


def context_action(t: int, state: UserState, n_methods: int, n_models: int) -> np.ndarray:
    """(U, 3) informative context action of slot `t` answering `state` (IdentifyGreedyPolicy's).

    A round-robin in blocks of |F| slots. The first slot of a block runs model 0 on every device
    (no capacity limit there, so every user's rho^0 is seen; it is the model the informed greedy
    uses most, ~60 % of its choices on T1-T3); the |F| - 1 others run the heavier models on the
    user's own AP's edge server (no forwarding delay, so P2 keeps a task whenever the edge beats
    the cloud at all; an overflowed one still reveals rho^{|F|-1} on the cloud), staggered across
    users so that each slot spreads them over the models and every user meets each of them once
    per block. The data quality is the same for a whole block and climbs from the most compressed
    method block by block, cycling: a quality that misses the accuracy requirement is raised to
    raw data by the repair, so rho is seen all the same, while one that passes shows the accuracy
    at a second quality, which identifies gamma. After |F| slots every (user, model) has been asked
    for, after |F| x |M| every (model, quality) pair.

    Chosen by measurement (greedy gap at n = 1..50 on T1-T3, task seeds 0 and 101, confirmed on
    task seeds 7 and 23 with another slot seed), each alternative was worse: uniform random
    actions by 2-3 points at n = 20 and 0.6-1.8 at n = 50 (where this order has reached the
    informed greedy), all users staggered over all models by 3-7 points at n = 1, tasks dealt to
    the servers by cores rather than to the own AP by 2-4 points at n = 5-10, and raw data first
    by ~1-2 points at n = 3-5.
    """
    u = np.arange(state.ap.shape[0])
    first = t % n_models == 0
    model = np.zeros(u.size, dtype=np.int64) if first else 1 + (u + t) % (n_models - 1)
    act = np.empty((u.size, 3), dtype=np.int64)
    act[:, 0] = (t // n_models) % n_methods
    act[:, 1] = np.where(model == 0, 0, state.ap + 1)
    act[:, 2] = model
    return act


def _check_count(name: str, value: Any) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


class BlindGreedyPolicy(GreedyPolicy):
    """The greedy rule on the mean of the six DT conditions of the environment's task set
    (`dt_mean_condition`): it knows the distribution of conditions, not the evaluated one.

    Each slot it computes the option table of the observed user state under that twin condition
    and realises every user's fastest option the twin deems accuracy-feasible (`greedy_action`);
    the environment then repairs and runs P2 under the true condition.
    """

    name = "blind_greedy"

    def __init__(self) -> None:
        super().__init__()
        self.twin: Condition | None = None

    def reset(self, env: Any) -> None:
        super().reset(env)
        self.twin = self._fit_twin()

    def _fit_twin(self) -> Condition:
        return dt_mean_condition(self.env.task_set)

    def _table(self) -> OptionTable:
        env = self.env
        if self.twin is None or env.user_state is None:
            raise RuntimeError(f"{type(self).__name__}: call reset(env) on a reset environment "
                               "before act()")
        return option_table(env.system, self.twin, env.user_state)


class IdentifyGreedyPolicy(BlindGreedyPolicy):
    """The digital twin synchronised from ``n_context`` slots of telemetry, then greedy on it.

    ``reset(env)`` follows PEARL's adaptation protocol: it runs ``n_context`` slots in a separate
    `EdgeCloudEnv` of the evaluated condition (same task set and config), reset with
    `context_seed` (episodes chained as in the evaluation), playing `context_action` (a
    round-robin over models and data qualities chosen to be informative: every (user, model) is
    asked for within |F| slots, every (model, quality) within |F| x |M|); `TwinIdentifier` turns
    each slot's observed user state and ``info`` into the estimated condition, which is then
    frozen. The evaluated environment is never stepped, so its slot stream is untouched (common
    random numbers). Only the physical system's answers are read from the context environment
    (its user states and ``info``), never its condition. ``n_context = 0`` is `BlindGreedyPolicy`.

    After ``reset``, ``estimate`` holds the `TwinEstimate` (what was identified exactly).
    """

    def __init__(self, n_context: int, *, context_seed: int = CONTEXT_SEED,
                 name: str | None = None) -> None:
        super().__init__()
        self.n_context = _check_count("n_context", n_context)
        self.context_seed = _check_count("context_seed", context_seed)
        self.name = name or f"identify_greedy[{self.n_context}]"
        self.estimate: TwinEstimate | None = None

    def _fit_twin(self) -> Condition:
        base = self.env
        self.estimate = identify_condition(base.condition, base.task_set, base.config,
                                           self.n_context, self.context_seed,
                                           dt_mean_condition(base.task_set))
        return self.estimate.condition

    def __repr__(self) -> str:
        return f"IdentifyGreedyPolicy(n_context={self.n_context}, context_seed={self.context_seed})"


def twin_latency(system: System, twin: Condition, state: UserState,
                 info: dict[str, Any]) -> np.ndarray:
    """(U,) latency (s) that `twin` predicts for the decisions the slot executed (its ``info``)
    on the user `state` it met: what the change detectors compare each latency with."""
    return executed_latency(option_table(system, twin, state), decisions_of(info))


def identify_condition(condition: Condition | str, task_set: TaskSet, config: Any,
                       n_slots: int, seed: int, prior: Condition) -> TwinEstimate:
    """The twin `TwinIdentifier` synchronises from ``n_slots`` slots of `condition`'s telemetry
    (an `EdgeCloudEnv` of it reset with `seed`, playing `context_action`; episodes chained), with
    `prior`'s values where nothing was observed. Only the physical system's answers (its user
    states and ``info``) are read, never its condition."""
    ident = TwinIdentifier(task_set.system, prior)
    if n_slots > 0:
        ctx = EdgeCloudEnv(condition=condition, task_set=task_set, config=config)
        ctx.reset(seed=seed)
        n_models = ctx.config.system.n_models
        for t in range(n_slots):
            state = ctx.user_state
            action = context_action(t, state, ctx.system.n_methods, n_models)
            _, _, _, truncated, info = ctx.step(action.ravel())
            ident.add(state, info)
            if truncated:
                ctx.reset()  # no seed: the context stream continues, as in the evaluation
    return ident.estimate()


def identified_twins(task_set: TaskSet, config: Any, n_slots: int,
                     seed: int = CONTEXT_SEED) -> tuple[TaskSet, list[dict[str, float]]]:
    """`task_set` with each of the six DTs replaced by the twin identified from ``n_slots`` slots
    of its own condition's telemetry (`identify_condition`; the prior for what was not observed
    is the mean of the six DTs), and per DT the twin's error: mean |log(rho_est / rho_true)|
    over all (user, model), over the identified ones, the share of (user, model) identified,
    and the mean |a_est - a_true| of the peak accuracies (points). The test conditions are
    untouched. ``n_slots = 0`` returns the DT mean as every twin."""
    prior = dt_mean_condition(task_set)
    conds, errors = dict(task_set.conditions), []
    for true in task_set.dt:
        est = identify_condition(true, task_set, config, n_slots, seed, prior)
        conds[true.name] = replace(est.condition, name=true.name)
        log_err = np.abs(np.log(est.condition.flop_per_bit / true.flop_per_bit))
        seen = est.flop_observed
        errors.append({"twin": true.name, "telemetry_slots": int(n_slots),
                       "log_rho_error_all": float(log_err.mean()),
                       "log_rho_error_identified": float(log_err[seen].mean())
                       if seen.any() else float("nan"),
                       "identified_share": float(seen.mean()),
                       "peak_accuracy_error_pts": float(np.abs(
                           est.condition.peak_accuracy - true.peak_accuracy).mean())})
    return TaskSet(seed=task_set.seed, system=task_set.system, conditions=conds), errors


HEURISTICS: dict[str, type[_Heuristic]] = {
    "random": RandomPolicy, "local": LocalPolicy, "nearest": NearestPolicy,
    "greedy": GreedyPolicy, "blind_greedy": BlindGreedyPolicy,
    "identify_greedy": IdentifyGreedyPolicy,
}


def make_heuristic(name: str, **kwargs: Any) -> _Heuristic:
    """Build a heuristic by name ("random", "local", "nearest", "greedy", "blind_greedy",
    "identify_greedy" - the last with ``n_context=...``)."""
    try:
        cls = HEURISTICS[name]
    except KeyError:
        raise ValueError(f"unknown heuristic {name!r}; choose one of {sorted(HEURISTICS)}") \
            from None
    return cls(**kwargs)
