"""The per-slot optimum of P1 (the "oracle", docs/MODEL.md §7): a bound on every policy's latency.

With the condition and the slot's user state known, every user picks exactly one option among
(m, j, edge server h), (m, cloud) and (m, local) whose accuracy meets tau_u (a user that no option
can satisfy is restricted to its options of maximum accuracy), each edge server h hosts at most
P^n_h users (C2) whose models fit its memory R_h in MB (C3), and the total latency is minimal.

Every option's latency and accuracy come from `slot.option_table`, so the oracle and the simulator
share one physics. The MILP is reduced before it is built, every step exact:

1. a user's local and cloud options use no edge resource, so only the fastest feasible one of them
   (the "free" option, latency f_u) can be optimal; the model charges it as a constant;
2. an edge option slower than f_u, or not on the (latency, memory) Pareto front of the user's
   feasible options on that server, is dominated and dropped (at most |F| options per user/server);
3. if every user's fastest remaining option fits every server, that assignment is optimal outright;
4. a server whose capacities cannot bind even if it got every candidate gets no rows, and a user
   with candidates only on such servers is fixed to its fastest option.

What is left is a small multiple-choice, two-constraint knapsack: maximise the latency saved over
the free options, sum_k (f_u - d_k) x_k, with sum_k x_k <= 1 per user and C2/C3 per server.
With ``prune=False`` the model holds every feasible option of every user instead (a reference).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from .conditions import Condition
from .slot import OptionTable, option_table
from .system import System, UserState

log = logging.getLogger(__name__)

BACKENDS = ("highs", "gurobi", "auto")
GUROBI_SIZE_LIMIT_ERRNO = 10010  # "Model too large for size-limited license"
_MIP_REL_GAP = 1e-9  # the optimum to ~solver precision, not the solvers' default 1e-4 gap
_MIP_ABS_GAP = 1e-10  # seconds of total saving


@dataclass(frozen=True)
class OracleResult:
    """The slot's optimum. Arrays have length U; placement 0 local, 1..H edge server, H+1 cloud."""

    mean_latency: float
    """Mean latency over users, s."""
    total_latency: float
    """Sum of the users' latencies, s (the objective)."""
    ds: np.ndarray
    """Pre-processing method per user, 0-based."""
    placement: np.ndarray
    """0 local, 1..H edge server, H+1 cloud."""
    model: np.ndarray
    """AI model per user, 0-based (0 on the device, |F|-1 on the cloud)."""
    latency: np.ndarray
    """Latency per user, s."""
    accuracy: np.ndarray
    """Accuracy per user, %."""
    accuracy_ok: np.ndarray
    """Whether the accuracy meets tau_u (False only for users no option can satisfy)."""
    status: str
    """"optimal" (solved by the MILP) or "optimal-unconstrained" (no capacity binds, no solve)."""
    backend: str
    """Solver that was used: "highs" or "gurobi" ("none" when no model was needed)."""
    solve_time_s: float
    """Wall time of the whole call (pruning, model building and solving), s."""
    n_vars: int
    """Binary variables in the model that was solved (0 when none was needed)."""
    n_constraints: int
    """Rows in the model that was solved."""
    pruned: bool
    """Whether dominated options were removed before building the model."""


class GurobiLicenseError(RuntimeError):
    """Gurobi refused the model, e.g. because the size-limited pip licence is too small for it."""


# --------------------------------------------------------------------------------------------
# candidate options
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Candidates:
    """Options that enter the model, flattened: one entry per binary variable."""

    user: np.ndarray  # (K,) user index
    place: np.ndarray  # (K,) placement code
    ds: np.ndarray  # (K,) method m
    model: np.ndarray  # (K,) model j (final: 0 local, F-1 cloud)
    latency: np.ndarray  # (K,) s
    memory: np.ndarray  # (K,) MB on its edge server (0 for local/cloud)


def _threshold(table: OptionTable) -> np.ndarray:
    """Accuracy each user must reach: tau_u, or its best achievable accuracy if tau_u is out of
    reach (the options of maximum accuracy then form its feasible set). Shape (U,), %."""
    best = table.accuracy.reshape(table.accuracy.shape[0], -1).max(axis=1)
    return np.minimum(table.accuracy_req, best)


def _free_options(table: OptionTable, thr: np.ndarray,
                  n_servers: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each user's fastest feasible local or cloud option: (latency s, placement, method)."""
    u = np.arange(thr.shape[0])
    local = np.where(table.local_accuracy >= thr[:, None], table.local_s, np.inf)
    cloud = np.where(table.cloud_accuracy >= thr[:, None], table.cloud_s, np.inf)
    m_local, m_cloud = local.argmin(axis=1), cloud.argmin(axis=1)
    d_local, d_cloud = local[u, m_local], cloud[u, m_cloud]
    use_local = d_local <= d_cloud  # ties: stay on the device
    return (np.where(use_local, d_local, d_cloud),
            np.where(use_local, 0, n_servers + 1),
            np.where(use_local, m_local, m_cloud))


def _edge_candidates(table: OptionTable, thr: np.ndarray, free_s: np.ndarray) -> _Candidates:
    """Undominated edge options: fastest feasible m per (u, j, h), faster than the free option,
    and on the (latency, memory) Pareto front over j of that user on that server."""
    n_users, n_methods, n_models, n_servers = table.edge_s.shape
    feas = table.accuracy >= thr[:, None, None]  # (U, M, F)
    edge = np.where(feas[..., None], table.edge_s, np.inf)  # (U, M, F, H)
    m_best = edge.argmin(axis=1)  # (U, F, H)
    lat = np.take_along_axis(edge, m_best[:, None], axis=1)[:, 0]  # (U, F, H)
    lat = np.where(lat < free_s[:, None, None], lat, np.inf)
    mem = table.memory_mb[:, :, None]  # (U, F, 1)
    # j' dominates j: no slower, no heavier, and strictly better in one (or an earlier twin)
    lat_a, lat_b = lat[:, :, None, :], lat[:, None, :, :]  # a = j (candidate), b = j' (rival)
    mem_a, mem_b = mem[:, :, None, :], mem[:, None, :, :]
    earlier = (np.arange(n_models)[None, :] < np.arange(n_models)[:, None])[None, :, :, None]
    dominated = ((lat_b <= lat_a) & (mem_b <= mem_a)
                 & ((lat_b < lat_a) | (mem_b < mem_a) | earlier) & np.isfinite(lat_b))
    keep = np.isfinite(lat) & ~dominated.any(axis=2)  # (U, F, H)
    uu, jj, hh = np.nonzero(keep)
    return _Candidates(user=uu, place=hh + 1, ds=m_best[uu, jj, hh], model=jj,
                       latency=lat[uu, jj, hh], memory=table.memory_mb[uu, jj].astype(float))


def _all_candidates(table: OptionTable, thr: np.ndarray) -> _Candidates:
    """Every feasible option of every user (the unpruned model)."""
    n_users, n_methods, n_models, n_servers = table.edge_s.shape
    parts = []
    lu, lm = np.nonzero(table.local_accuracy >= thr[:, None])
    parts.append((lu, np.zeros_like(lu), lm, np.zeros_like(lu), table.local_s[lu, lm],
                  np.zeros(lu.size)))
    cu, cm = np.nonzero(table.cloud_accuracy >= thr[:, None])
    parts.append((cu, np.full_like(cu, n_servers + 1), cm, np.full_like(cu, n_models - 1),
                  table.cloud_s[cu, cm], np.zeros(cu.size)))
    feas = np.broadcast_to((table.accuracy >= thr[:, None, None])[..., None], table.edge_s.shape)
    eu, em, ej, eh = np.nonzero(feas)
    parts.append((eu, eh + 1, em, ej, table.edge_s[eu, em, ej, eh],
                  table.memory_mb[eu, ej].astype(float)))
    cols = [np.concatenate(c) for c in zip(*parts, strict=True)]
    return _Candidates(*cols)


# --------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Model:
    """min cost @ x, x binary; A x <= ub, A x >= lb (CSC by column)."""

    cost: np.ndarray
    a_start: np.ndarray
    a_index: np.ndarray
    a_value: np.ndarray
    row_lower: np.ndarray
    row_upper: np.ndarray

    @property
    def n_vars(self) -> int:
        return int(self.cost.size)

    @property
    def n_rows(self) -> int:
        return int(self.row_lower.size)


def _build_model(cand: _Candidates, cost: np.ndarray, system: System, must_choose: np.ndarray,
                 binding: np.ndarray) -> _Model:
    """Rows: one choice per user (== 1 where `must_choose[u]`, else <= 1: an implicit free option),
    then cores and memory of every binding server. Each column has 1 or 3 nonzeros."""
    users, user_row = np.unique(cand.user, return_inverse=True)
    n_user_rows = users.size
    srv = cand.place - 1
    on_edge = (cand.place >= 1) & (cand.place <= system.n_servers)
    srv_rows = np.full(system.n_servers, -1)
    srv_rows[binding] = np.arange(int(binding.sum()))
    srv_row = np.where(on_edge, srv_rows[np.clip(srv, 0, system.n_servers - 1)], -1)
    has_srv = srv_row >= 0
    n_bind = int(binding.sum())
    # nonzeros per column, in row order: user row, cores row, memory row
    nnz = 1 + 2 * has_srv
    start = np.concatenate([[0], np.cumsum(nnz)])
    index = np.empty(start[-1], dtype=np.int32)
    value = np.empty(start[-1])
    index[start[:-1]] = user_row
    value[start[:-1]] = 1.0
    s = start[:-1][has_srv]
    index[s + 1] = n_user_rows + srv_row[has_srv]
    value[s + 1] = 1.0
    index[s + 2] = n_user_rows + n_bind + srv_row[has_srv]
    value[s + 2] = cand.memory[has_srv]
    bind_idx = np.flatnonzero(binding)
    row_upper = np.concatenate([np.ones(n_user_rows), system.es_cores[bind_idx].astype(float),
                                system.es_memory_mb[bind_idx].astype(float)])
    row_lower = np.concatenate([must_choose[users].astype(float), np.zeros(2 * n_bind)])
    return _Model(cost=np.asarray(cost, float), a_start=start.astype(np.int32), a_index=index,
                  a_value=value, row_lower=row_lower, row_upper=row_upper)


def _solve_highs(model: _Model) -> np.ndarray:
    import highspy

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", _MIP_REL_GAP)
    h.setOptionValue("mip_abs_gap", _MIP_ABS_GAP)
    n = model.n_vars
    h.passModel(n, model.n_rows, int(model.a_value.size), int(highspy.MatrixFormat.kColwise),
                int(highspy.ObjSense.kMinimize), 0.0, model.cost, np.zeros(n), np.ones(n),
                model.row_lower, model.row_upper, model.a_start, model.a_index, model.a_value,
                np.ones(n, dtype=np.int32))
    h.run()
    status = h.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        raise RuntimeError(f"HiGHS did not prove optimality: {h.modelStatusToString(status)}")
    return np.asarray(h.getSolution().col_value) > 0.5


_GUROBI_ENV = None


def _gurobi_env():  # noqa: ANN202 - gurobipy is optional
    """One silent Gurobi environment per process (starting one checks the licence, ~ms)."""
    global _GUROBI_ENV
    if _GUROBI_ENV is None:
        import gurobipy as gp

        env = gp.Env(empty=True)
        env.setParam("OutputFlag", 0)
        env.start()
        _GUROBI_ENV = env
    return _GUROBI_ENV


def _solve_gurobi(model: _Model) -> np.ndarray:
    import gurobipy as gp
    import scipy.sparse as sp
    from gurobipy import GRB

    a = sp.csc_matrix((model.a_value, model.a_index, model.a_start),
                      shape=(model.n_rows, model.n_vars)).tocsr()
    try:
        with gp.Model(env=_gurobi_env()) as m:
            m.Params.MIPGap = _MIP_REL_GAP
            m.Params.MIPGapAbs = _MIP_ABS_GAP
            x = m.addMVar(model.n_vars, vtype=GRB.BINARY, obj=model.cost)
            eq = model.row_lower == model.row_upper
            if eq.any():
                m.addConstr(a[eq] @ x == model.row_upper[eq])
            if (~eq).any():
                m.addConstr(a[~eq] @ x <= model.row_upper[~eq])
            m.optimize()
            if m.Status != GRB.OPTIMAL:
                raise RuntimeError(f"Gurobi did not prove optimality (status code {m.Status})")
            return np.asarray(x.X) > 0.5
    except gp.GurobiError as err:
        if getattr(err, "errno", None) == GUROBI_SIZE_LIMIT_ERRNO:
            raise GurobiLicenseError(
                f"Gurobi's licence refused the model ({model.n_vars} variables, {model.n_rows} "
                f"constraints): the size-limited pip licence allows at most 2000 variables and "
                f"2000 constraints. Use backend='highs' or 'auto', prune=True, or a full "
                f"licence. Gurobi said: {err}") from err
        raise


_auto_notes: set[str] = set()
_gurobi_refused: tuple[int, int] | None = None  # smallest (vars, rows) the licence refused


def _note_once(msg: str) -> None:
    if msg not in _auto_notes:
        _auto_notes.add(msg)
        log.info(msg)


def _solve_auto(model: _Model) -> tuple[np.ndarray, str]:
    """Gurobi when it is installed and its licence accepts the model, otherwise HiGHS."""
    global _gurobi_refused
    try:
        import gurobipy  # noqa: F401
    except ImportError:
        _note_once("oracle backend 'auto': gurobipy is not installed, using HiGHS")
        return _solve_highs(model), "highs"
    size = (model.n_vars, model.n_rows)
    if _gurobi_refused is not None and size[0] >= _gurobi_refused[0] \
            and size[1] >= _gurobi_refused[1]:
        return _solve_highs(model), "highs"  # refused before at a smaller size: don't retry
    try:
        x = _solve_gurobi(model)
    except GurobiLicenseError:
        _gurobi_refused = size
        _note_once("oracle backend 'auto': Gurobi's size-limited licence refused a model "
                   f"of {size[0]} variables and {size[1]} constraints, using HiGHS for it "
                   "and larger ones")
        return _solve_highs(model), "highs"
    except Exception as err:  # noqa: BLE001 - any licence/start failure falls back to HiGHS
        if type(err).__name__ != "GurobiError":
            raise
        _note_once(f"oracle backend 'auto': Gurobi is unavailable ({err}), using HiGHS")
        return _solve_highs(model), "highs"
    _note_once("oracle backend 'auto': using Gurobi (installed and its licence accepts the "
               "models so far)")
    return x, "gurobi"


# --------------------------------------------------------------------------------------------
# public entry point
# --------------------------------------------------------------------------------------------
def _check_inputs(system: System, condition: Condition, user_state: UserState) -> None:
    n_users = system.n_users
    if condition.flop_per_bit.ndim != 2 or condition.flop_per_bit.shape[0] != n_users:
        raise ValueError(f"condition has {condition.flop_per_bit.shape} models per user "
                         f"(flop_per_bit), the system has {n_users} users: expected "
                         f"shape ({n_users}, n_models)")
    for name in ("memory_mb", "peak_accuracy"):
        if getattr(condition, name).shape != condition.flop_per_bit.shape:
            raise ValueError(f"condition.{name} has shape {getattr(condition, name).shape}, "
                             f"expected {condition.flop_per_bit.shape}")
    if condition.quality_exponent.shape != (n_users,):
        raise ValueError(f"condition.quality_exponent has shape "
                         f"{condition.quality_exponent.shape}, expected ({n_users},)")
    for name in ("ap", "bandwidth_hz", "distance_m", "noise_dbm", "task_bits", "result_bits",
                 "accuracy_req"):
        arr = np.asarray(getattr(user_state, name))
        if arr.shape != (n_users,):
            raise ValueError(f"user_state.{name} has shape {arr.shape}, the system has "
                             f"{n_users} users: expected ({n_users},)")
    ap = np.asarray(user_state.ap)
    if ap.size and (ap.min() < 0 or ap.max() >= system.n_servers):
        raise ValueError(f"user_state.ap must lie in 0..{system.n_servers - 1}, "
                         f"got {ap.min()}..{ap.max()}")


def oracle(system: System, condition: Condition, user_state: UserState,
           backend: str = "highs", *, prune: bool = True,
           table: OptionTable | None = None) -> OracleResult:
    """Exact per-slot optimum of P1 (minimum total latency under accuracy, cores and memory).

    Args:
        system, condition, user_state: the slot (`env.unwrapped` objects).
        backend: "highs" (default), "gurobi" (raises `GurobiLicenseError` when the licence
            refuses the model's size) or "auto" (Gurobi if installed and licensed for the model,
            else HiGHS; which one and why is logged once).
        prune: remove dominated options and skip the solver when no capacity binds (exact);
            False builds the full model over every feasible option (a reference, slower).
        table: the slot's `OptionTable` if already computed (e.g. ``env.unwrapped.option_table``);
            it must belong to these three objects.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown oracle backend {backend!r}; choose one of {BACKENDS}")
    t0 = time.perf_counter()
    _check_inputs(system, condition, user_state)
    if table is None:
        table = option_table(system, condition, user_state)
    elif table.edge_s.shape[0] != system.n_users or table.edge_s.shape[3] != system.n_servers:
        raise ValueError(f"option table of shape {table.edge_s.shape} does not match the system "
                         f"({system.n_users} users, {system.n_servers} servers)")
    n_users, n_servers = system.n_users, system.n_servers
    n_models = table.accuracy.shape[2]
    thr = _threshold(table)

    if prune:
        free_s, free_place, free_ds = _free_options(table, thr, n_servers)
        cand = _edge_candidates(table, thr, free_s)
        # each user's fastest remaining option, ignoring capacity
        best = np.full(n_users, -1)
        if cand.user.size:
            order = np.lexsort((cand.latency, cand.user))
            first = np.concatenate([[True], cand.user[order][1:] != cand.user[order][:-1]])
            best[cand.user[order][first]] = order[first]
        chosen = _fits(cand, best[best >= 0], system)
        if chosen:
            x = np.zeros(cand.user.size, dtype=bool)
            x[best[best >= 0]] = True
            return _result(table, cand, x, free_s, free_place, free_ds, n_servers, n_models,
                           "optimal-unconstrained", "none", t0, 0, 0, True)
        binding = _binding_servers(cand, system)
        # users whose candidates all sit on non-binding servers take their fastest one
        on_binding = binding[cand.place - 1]
        user_binds = np.zeros(n_users, dtype=bool)
        user_binds[cand.user[on_binding]] = True
        fixed = np.zeros(cand.user.size, dtype=bool)
        loose = best >= 0
        loose &= ~user_binds
        fixed[best[loose]] = True
        in_model = user_binds[cand.user]
        sub = _subset(cand, in_model)
        # a user without a feasible local/cloud option (only with non-monotone custom
        # conditions) must take an edge option: its row is "== 1" and its cost the latency
        no_free = ~np.isfinite(free_s)
        cost = sub.latency - np.where(no_free, 0.0, free_s)[sub.user]
        model = _build_model(sub, cost, system, must_choose=no_free, binding=binding)
    else:
        free_s = np.zeros(n_users)
        free_place = np.zeros(n_users, dtype=np.int64)
        free_ds = np.zeros(n_users, dtype=np.int64)
        cand = _all_candidates(table, thr)
        in_model = np.ones(cand.user.size, dtype=bool)
        fixed = np.zeros(cand.user.size, dtype=bool)
        sub = cand
        model = _build_model(sub, sub.latency, system, must_choose=np.ones(n_users, dtype=bool),
                             binding=np.ones(n_servers, dtype=bool))

    if backend == "highs":
        xs, used = _solve_highs(model), "highs"
    elif backend == "gurobi":
        xs, used = _solve_gurobi(model), "gurobi"
    else:
        xs, used = _solve_auto(model)
    x = fixed.copy()
    x[np.flatnonzero(in_model)[xs]] = True
    return _result(table, cand, x, free_s, free_place, free_ds, n_servers, n_models, "optimal",
                   used, t0, model.n_vars, model.n_rows, prune)


def _subset(cand: _Candidates, mask: np.ndarray) -> _Candidates:
    return _Candidates(*(getattr(cand, f)[mask] for f in
                         ("user", "place", "ds", "model", "latency", "memory")))


def _fits(cand: _Candidates, idx: np.ndarray, system: System) -> bool:
    """Whether the edge options `idx` respect every server's cores and memory."""
    srv = cand.place[idx] - 1
    count = np.bincount(srv, minlength=system.n_servers)
    mem = np.bincount(srv, weights=cand.memory[idx], minlength=system.n_servers)
    return bool(np.all(count <= system.es_cores) and np.all(mem <= system.es_memory_mb))


def _binding_servers(cand: _Candidates, system: System) -> np.ndarray:
    """(H,) bool: servers whose capacities could bind, i.e. whose candidate users, each with its
    heaviest candidate there, exceed the cores or the memory."""
    srv = cand.place - 1
    key = cand.user * system.n_servers + srv
    n = system.n_users * system.n_servers
    heaviest = np.zeros(n)
    np.maximum.at(heaviest, key, cand.memory)
    present = np.zeros(n, dtype=bool)
    present[key] = True
    count = present.reshape(system.n_users, system.n_servers).sum(axis=0)
    mem = heaviest.reshape(system.n_users, system.n_servers).sum(axis=0)
    return (count > system.es_cores) | (mem > system.es_memory_mb)


def _result(table: OptionTable, cand: _Candidates, x: np.ndarray, free_s: np.ndarray,
            free_place: np.ndarray, free_ds: np.ndarray, n_servers: int, n_models: int,
            status: str, backend: str, t0: float, n_vars: int, n_rows: int,
            pruned: bool) -> OracleResult:
    """Decisions: the chosen candidate of each user, else its free option."""
    ds, place = free_ds.astype(np.int64).copy(), free_place.astype(np.int64).copy()
    model = np.where(place == n_servers + 1, n_models - 1, 0)
    latency = free_s.copy()
    k = np.flatnonzero(x)
    u = cand.user[k]
    if np.unique(u).size != u.size:
        raise RuntimeError("oracle chose two options for one user (solver tolerance problem)")
    ds[u], place[u], model[u], latency[u] = cand.ds[k], cand.place[k], cand.model[k], \
        cand.latency[k]
    if not pruned and u.size != latency.size:
        raise RuntimeError("oracle left a user without an option")
    uu = np.arange(ds.size)
    accuracy = table.accuracy[uu, ds, model]
    total = float(latency.sum())
    return OracleResult(mean_latency=total / latency.size, total_latency=total, ds=ds,
                        placement=place, model=model, latency=latency, accuracy=accuracy,
                        accuracy_ok=accuracy >= table.accuracy_req, status=status,
                        backend=backend, solve_time_s=time.perf_counter() - t0,
                        n_vars=n_vars, n_constraints=n_rows, pruned=pruned)
