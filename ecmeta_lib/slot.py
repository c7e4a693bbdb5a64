"""One time slot: the option table, accuracy repair, P2 on every edge server, cloud overflow.

The option table holds the latency (eqs. 1-5 and the cloud path) and accuracy (eq. 6) of every
option of every user, vectorised over users. It is computed once per slot and serves the repair,
the knapsack, the greedy policy and the oracle alike.

Placement codes: 0 = local device, 1..H = edge server h-1, H+1 = cloud server.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .conditions import Condition
from .knapsack import solve_p2
from .physics import accuracy_pct, uplink_rate_bps
from .system import System, UserState


@dataclass(frozen=True)
class OptionTable:
    """Latency (s) and accuracy (%) of every (pre-processing m, model j, place) of every user."""

    rate_bps: np.ndarray
    """(U,) uplink rate r_u, bit/s."""
    comm_s: np.ndarray
    """(U, M) device-to-AP delay d^c (eq. 1), s."""
    forward_s: np.ndarray
    """(U, M, H) AP-to-serving-AP delay d^f (eq. 2), s; 0 for the user's own AP."""
    edge_proc_s: np.ndarray
    """(U, M, F, H) inference delay d^p on edge server h (eqs. 3-4), s."""
    edge_s: np.ndarray
    """(U, M, F, H) total latency on an edge server: d^c + d^f + d^p, s."""
    cloud_s: np.ndarray
    """(U, M) latency on the cloud (most complex model, backhaul from the user's AP), s."""
    local_s: np.ndarray
    """(U, M) latency on the device (lightest model, eq. 5 first case), s."""
    accuracy: np.ndarray
    """(U, M, F) accuracy of model j on data pre-processed by method m, %."""
    memory_mb: np.ndarray
    """(U, F) memory of each model, MB."""
    accuracy_req: np.ndarray
    """(U,) accuracy requirement tau_u, %."""
    ap: np.ndarray
    """(U,) the user's access point, 0-based."""

    @property
    def local_accuracy(self) -> np.ndarray:
        """(U, M) accuracy on the device (lightest model)."""
        return self.accuracy[:, :, 0]

    @property
    def cloud_accuracy(self) -> np.ndarray:
        """(U, M) accuracy on the cloud (most complex model)."""
        return self.accuracy[:, :, -1]


def option_table(system: System, condition: Condition, state: UserState) -> OptionTable:
    """Compute every option's latency and accuracy for one slot."""
    ap = state.ap
    rate = uplink_rate_bps(state.bandwidth_hz, state.distance_m, state.noise_dbm,
                           system.tx_power_dbm)
    input_bits = state.task_bits[:, None] * system.ds_ratio  # (U, M) pre-processed task
    sent_bits = input_bits + state.result_bits[:, None]  # D_u: task up, result back
    comm = sent_bits / rate[:, None]
    with np.errstate(divide="ignore"):
        forward = (sent_bits[:, :, None] / system.ap_rate[ap][:, None, :]
                   + system.ap_delay[ap][:, None, :])
    flops = input_bits[:, :, None] * condition.flop_per_bit[:, None, :]  # (U, M, F)
    edge_proc = flops[..., None] / system.es_flops[None, None, None, :]
    edge = comm[:, :, None, None] + forward[:, :, None, :] + edge_proc
    cloud = (comm + sent_bits / system.cloud_rate[ap][:, None] + system.cloud_delay[ap][:, None]
             + flops[:, :, -1] / system.cloud_flops)
    local = flops[:, :, 0] / system.local_flops[:, None]
    accuracy = accuracy_pct(condition.peak_accuracy[:, None, :], system.ds_ratio[:, :, None],
                            condition.quality_exponent[:, None, None])
    return OptionTable(rate_bps=rate, comm_s=comm, forward_s=forward, edge_proc_s=edge_proc,
                       edge_s=edge, cloud_s=cloud, local_s=local, accuracy=accuracy,
                       memory_mb=condition.memory_mb, accuracy_req=state.accuracy_req, ap=ap)


@dataclass(frozen=True)
class SlotOutcome:
    """What one slot did to every user (arrays of length U), after repair and knapsack."""

    latency: np.ndarray
    """Service latency per user, s."""
    placement: np.ndarray
    """0 local, 1..H edge server, H+1 cloud."""
    ds: np.ndarray
    """Final pre-processing method, 0-based."""
    model: np.ndarray
    """Final AI model, 0-based (0 on the device, |F|-1 on the cloud)."""
    accuracy: np.ndarray
    """Achieved accuracy, %."""
    accuracy_ok: np.ndarray
    """Whether the accuracy meets the requirement (constraint C1)."""
    to_cloud: int
    """Number of users the knapsack pushed from an edge server to the cloud."""

    @property
    def mean_latency(self) -> float:
        return float(self.latency.mean())


def repair(table: OptionTable, ds: np.ndarray, ta: np.ndarray,
           ms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Accuracy repair (Sec. IV-B): raw data first, then the most complex model on an edge server;
    a local task that still fails moves to its own AP's edge server with that model (ours).

    Returns the repaired (ds, ta, ms); a request no choice can satisfy stays as repaired.
    """
    n_methods, n_models = table.accuracy.shape[1], table.accuracy.shape[2]
    u = np.arange(ds.shape[0])
    ds, ta, ms = ds.copy(), ta.copy(), np.where(ta == 0, 0, ms)
    tau = table.accuracy_req

    def failing() -> np.ndarray:
        return table.accuracy[u, ds, ms] < tau

    ds = np.where(failing(), n_methods - 1, ds)
    fail = failing()
    ms = np.where(fail, n_models - 1, ms)  # on an edge server: the most complex model
    local_fail = fail & (ta == 0)
    ta = np.where(local_fail, table.ap + 1, ta)  # the device cannot run it: own AP's server
    return ds, ta, ms


def run_slot(system: System, table: OptionTable, action: np.ndarray) -> SlotOutcome:
    """Apply one (U, 3) action [DS, TA, MS]: repair, P2 on every edge server, cloud overflow."""
    n_servers = system.n_servers
    n_models = table.accuracy.shape[2]
    ds, ta, ms = repair(table, action[:, 0], action[:, 1], action[:, 2])
    u = np.arange(ds.shape[0])
    placement = ta.copy()
    for h in range(n_servers):
        users = np.flatnonzero(ta == h + 1)
        if users.size == 0:
            continue
        d_edge = table.edge_s[users, ds[users], ms[users], h]
        d_cloud = table.cloud_s[users, ds[users]]
        keep = solve_p2(d_cloud - d_edge, table.memory_mb[users, ms[users]],
                        int(system.es_cores[h]), float(system.es_memory_mb[h]))
        placement[users[~keep]] = n_servers + 1
    return outcome_of(table, ds, placement, ms, n_servers, n_models, u,
                      to_cloud=int(np.sum((ta >= 1) & (placement == n_servers + 1))))


def outcome_of(table: OptionTable, ds: np.ndarray, placement: np.ndarray, ms: np.ndarray,
               n_servers: int, n_models: int, u: np.ndarray | None = None,
               to_cloud: int = 0) -> SlotOutcome:
    """Latency and accuracy of final decisions (placement codes as in SlotOutcome)."""
    if u is None:
        u = np.arange(ds.shape[0])
    local, cloud = placement == 0, placement == n_servers + 1
    model = np.where(local, 0, np.where(cloud, n_models - 1, ms))
    server = np.clip(placement - 1, 0, n_servers - 1)
    latency = np.where(local, table.local_s[u, ds],
                       np.where(cloud, table.cloud_s[u, ds], table.edge_s[u, ds, model, server]))
    accuracy = table.accuracy[u, ds, model]
    return SlotOutcome(latency=latency, placement=placement, ds=ds, model=model,
                       accuracy=accuracy, accuracy_ok=accuracy >= table.accuracy_req,
                       to_cloud=to_cloud)
