"""One slot: the option table by hand (docs/MODEL.md §5), accuracy repair, P2 per server
(docs/MODEL.md §6), and property tests of C2-C6 over random small systems, conditions, states
and actions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import slot_cases
from hypothesis import given

from ecmeta_lib.conditions import Condition
from ecmeta_lib.knapsack import brute_force_p2
from ecmeta_lib.slot import option_table, outcome_of, repair, run_slot
from ecmeta_lib.system import System, UserState

INF = np.inf


def hand_rate(bandwidth_hz: float, d2: float, noise_dbm: float, p_dbm: float = 20.0) -> float:
    d3 = math.sqrt(d2**2 + 33.5**2)
    pl = (20 * math.log10(40 * math.pi * d3 * 3.5 / 3) + min(0.03 * 5**1.72, 10) * math.log10(d3)
          - min(0.044 * 5**1.72, 14.77) + 0.002 * math.log10(5) * d3)
    snr = 10 ** ((p_dbm - 30) / 10) * 10 ** (-pl / 10) / 10 ** ((noise_dbm - 30) / 10)
    return bandwidth_hz * math.log2(1 + snr)


def tiny(n_users: int = 1, tau: float = 70.0, cores: int = 2,
         memory_mb: float = 1024.0) -> tuple[System, Condition, UserState]:
    """Two servers, identical users attached to AP 0, round numbers for hand computation."""
    u = n_users
    system = System(
        n_users=u, n_servers=2,
        es_flops=np.array([100e9, 50e9]), es_cores=np.array([cores, cores]),
        es_memory_mb=np.array([memory_mb, memory_mb]), cloud_flops=400e9,
        local_flops=np.full(u, 25e9), ds_ratio=np.tile([0.5, 1.0], (u, 1)),
        ap_rate=np.array([[INF, 100e6], [100e6, INF]]), ap_delay=np.array([[0.0, 0.015],
                                                                          [0.015, 0.0]]),
        cloud_rate=np.array([80e6, 60e6]), cloud_delay=np.array([0.04, 0.03]), tx_power_dbm=20.0,
    )
    condition = Condition(flop_per_bit=np.tile([500.0, 1000.0], (u, 1)),
                          memory_mb=np.tile([300.0, 600.0], (u, 1)),
                          peak_accuracy=np.tile([80.0, 90.0], (u, 1)),
                          quality_exponent=np.full(u, 0.25), name="tiny")
    state = UserState(ap=np.zeros(u, dtype=np.int64), bandwidth_hz=np.full(u, 20e6),
                      distance_m=np.full(u, 100.0), noise_dbm=np.full(u, -100.0),
                      task_bits=np.full(u, 8e6), result_bits=np.full(u, 1e5),
                      accuracy_req=np.full(u, tau))
    return system, condition, state


def test_each_latency_term_by_hand():
    system, condition, state = tiny()
    t = option_table(system, condition, state)
    r = hand_rate(20e6, 100.0, -100.0)
    assert t.rate_bps[0] == pytest.approx(r, rel=1e-12)
    d_bits = {0: 4e6 + 1e5, 1: 8e6 + 1e5}  # D_u = V^T alpha + V^R
    for m, d in d_bits.items():
        # eq. 1: device -> AP
        assert t.comm_s[0, m] == pytest.approx(d / r, rel=1e-12)
        # eq. 2: AP 0 -> AP 1 forwarding; nothing to forward on the own AP
        assert t.forward_s[0, m, 0] == 0.0
        assert t.forward_s[0, m, 1] == pytest.approx(d / 100e6 + 0.015, rel=1e-12)
    # eqs. 3-4: inference on the edge, V^T alpha rho / P^f_h
    assert t.edge_proc_s[0, 0, 1, 0] == pytest.approx(4e6 * 1000 / 100e9)  # 0.04 s
    assert t.edge_proc_s[0, 0, 1, 1] == pytest.approx(4e6 * 1000 / 50e9)  # 0.08 s
    assert t.edge_proc_s[0, 1, 0, 1] == pytest.approx(8e6 * 500 / 50e9)  # 0.08 s
    # eq. 5 (edge case): d^c + d^f + d^p
    assert t.edge_s[0, 0, 1, 1] == pytest.approx(4.1e6 / r + 0.056 + 0.08, rel=1e-12)
    assert t.edge_s[0, 1, 0, 0] == pytest.approx(8.1e6 / r + 0.04, rel=1e-12)
    # cloud: d^c + backhaul from AP 0 + delay + most complex model at 400 GFLOP/s
    assert t.cloud_s[0, 0] == pytest.approx(4.1e6 / r + 4.1e6 / 80e6 + 0.04 + 4e9 / 400e9,
                                            rel=1e-12)
    assert t.cloud_s[0, 1] == pytest.approx(8.1e6 / r + 8.1e6 / 80e6 + 0.04 + 8e9 / 400e9,
                                            rel=1e-12)
    # eq. 5 (local case): lightest model on the device
    assert t.local_s[0, 0] == pytest.approx(4e6 * 500 / 25e9)  # 0.08 s
    assert t.local_s[0, 1] == pytest.approx(8e6 * 500 / 25e9)  # 0.16 s
    # eq. 6 with A = a q^gamma
    assert t.accuracy[0, 0, 0] == pytest.approx(80 * 0.5**0.25)  # 67.27 %
    assert t.accuracy[0, 0, 1] == pytest.approx(90 * 0.5**0.25)  # 75.68 %
    np.testing.assert_allclose(t.accuracy[0, 1], [80.0, 90.0])
    np.testing.assert_allclose(t.local_accuracy[0], [80 * 0.5**0.25, 80.0])
    np.testing.assert_allclose(t.cloud_accuracy[0], [90 * 0.5**0.25, 90.0])


def one(ds: int, ta: int, ms: int) -> np.ndarray:
    return np.array([[ds, ta, ms]])


@pytest.mark.parametrize("tau, action, expected, ok", [
    # 67.3 % < 70: raw data on the device meets it (80 %)
    (70.0, (0, 0, 1), (1, 0, 0), True),
    # the device cannot reach 85 %: own AP's server with the most complex model (ours)
    (85.0, (0, 0, 0), (1, 1, 1), True),
    # on an edge server: raw data is enough for the chosen light model
    (75.0, (0, 2, 0), (1, 2, 0), True),
    # raw data is not enough: the most complex model on the chosen server
    (85.0, (0, 2, 0), (1, 2, 1), True),
    # already meeting the requirement: untouched
    (60.0, (0, 2, 0), (0, 2, 0), True),
    # nothing reaches 95 %: stays as repaired and counts as a violation
    (95.0, (0, 2, 0), (1, 2, 1), False),
])
def test_repair_by_hand(tau, action, expected, ok):
    system, condition, state = tiny(tau=tau)
    t = option_table(system, condition, state)
    ds, ta, ms = repair(t, *(np.array([a]) for a in action))
    assert (ds[0], ta[0], ms[0]) == expected
    out = run_slot(system, t, one(*action))
    assert bool(out.accuracy_ok[0]) is ok


def test_knapsack_keeps_the_best_users_by_hand():
    # three identical users on server 0 with 2 cores: two stay, one is pushed to the cloud
    system, condition, state = tiny(n_users=3, tau=0.0, cores=2, memory_mb=10_000)
    t = option_table(system, condition, state)
    out = run_slot(system, t, np.array([[1, 1, 1]] * 3))
    assert np.sum(out.placement == 1) == 2 and np.sum(out.placement == 3) == 1
    assert out.to_cloud == 1
    cloud_user = int(np.flatnonzero(out.placement == 3)[0])
    assert out.model[cloud_user] == 1  # the cloud runs the most complex model
    assert out.latency[cloud_user] == pytest.approx(t.cloud_s[cloud_user, 1])
    # memory binds instead: 1000 MB holds one 600 MB model only
    system, condition, state = tiny(n_users=3, tau=0.0, cores=3, memory_mb=1000)
    out = run_slot(system, option_table(system, condition, state), np.array([[1, 1, 1]] * 3))
    assert np.sum(out.placement == 1) == 1 and out.to_cloud == 2


def test_cloud_never_kept_when_edge_is_slower():
    # a user whose cloud latency beats the edge goes to the cloud although capacity is free
    system, condition, state = tiny(tau=0.0, cores=5, memory_mb=10_000)
    t = option_table(system, condition, state)
    assert t.cloud_s[0, 1] < t.edge_s[0, 1, 1, 1]  # raw data, heavy model, slow remote server
    out = run_slot(system, t, one(1, 2, 1))
    assert out.placement[0] == 3 and out.to_cloud == 1


def unrepaired_accuracy(table, action: np.ndarray) -> np.ndarray:
    u = np.arange(action.shape[0])
    model = np.where(action[:, 1] == 0, 0, action[:, 2])  # the device runs the lightest model
    return table.accuracy[u, action[:, 0], model]


@given(slot_cases())
def test_slot_constraints_hold(case):
    system, condition, state, table, action = case
    u_count, h_count = system.n_users, system.n_servers
    n_methods, n_models = system.n_methods, condition.n_models
    out = run_slot(system, table, action)
    # C4-C6: one method, one model, one placement per user, each in range
    for arr in (out.latency, out.placement, out.ds, out.model, out.accuracy, out.accuracy_ok):
        assert arr.shape == (u_count,)
    assert np.all((out.ds >= 0) & (out.ds < n_methods))
    assert np.all((out.model >= 0) & (out.model < n_models))
    assert np.all((out.placement >= 0) & (out.placement <= h_count + 1))
    assert np.all(out.model[out.placement == 0] == 0)
    assert np.all(out.model[out.placement == h_count + 1] == n_models - 1)
    # C2 and C3 on every edge server
    for h in range(h_count):
        on_h = out.placement == h + 1
        assert on_h.sum() <= system.es_cores[h]
        assert table.memory_mb[on_h, out.model[on_h]].sum() <= system.es_memory_mb[h] + 1e-9
    # latency finite and positive, and the one the table gives for the final decision
    assert np.all(np.isfinite(out.latency)) and np.all(out.latency > 0)
    again = outcome_of(table, out.ds, out.placement, out.model, h_count, n_models)
    np.testing.assert_allclose(out.latency, again.latency)
    assert out.mean_latency == pytest.approx(out.latency.mean())


@given(slot_cases())
def test_repair_never_lowers_accuracy(case):
    system, condition, state, table, action = case
    before = unrepaired_accuracy(table, action)
    ds, ta, ms = repair(table, action[:, 0], action[:, 1], action[:, 2])
    repaired = unrepaired_accuracy(table, np.stack([ds, ta, ms], axis=1))
    assert np.all(repaired >= before - 1e-12)
    out = run_slot(system, table, action)
    assert np.all(out.accuracy >= before - 1e-12)  # the cloud's model is the most accurate
    # a violation remains only where no option at all meets the requirement
    best = table.accuracy.max(axis=(1, 2))
    assert np.all(best[~out.accuracy_ok] < table.accuracy_req[~out.accuracy_ok])
    np.testing.assert_array_equal(out.accuracy_ok, out.accuracy >= table.accuracy_req)


@given(slot_cases())
def test_each_server_solves_p2_optimally(case):
    system, condition, state, table, action = case
    ds, ta, ms = repair(table, action[:, 0], action[:, 1], action[:, 2])
    out = run_slot(system, table, action)
    pushed = 0
    for h in range(system.n_servers):
        users = np.flatnonzero(ta == h + 1)
        if users.size == 0:
            continue
        saving = table.cloud_s[users, ds[users]] - table.edge_s[users, ds[users], ms[users], h]
        kept = out.placement[users] == h + 1
        assert np.all(out.placement[users][~kept] == system.n_servers + 1)
        pushed += int((~kept).sum())
        if users.size <= 12:
            best = brute_force_p2(saving, table.memory_mb[users, ms[users]],
                                  int(system.es_cores[h]), float(system.es_memory_mb[h]))
            assert saving[kept].sum() == pytest.approx(max(best, 0.0), abs=1e-9)
    assert out.to_cloud == pushed
