"""CUSUM change detection and its scoring against the stream's true events."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ecmeta_lib.detection import CusumDetector, detection_metrics, executed_latency


def test_cusum_flags_a_shift_and_not_noise() -> None:
    rng = np.random.default_rng(0)
    det = CusumDetector(2, k=0.5, h=8.0, warmup=50, min_sd=0.01)
    flags = []
    for t in range(400):
        r = rng.normal(0.0, 0.05, size=2)
        if t >= 200:
            r[1] += 0.3  # user 1's models change: a 6-sd shift
        flags.append(det.update(r))
    flags = np.array(flags)
    assert not flags[:, 0].any()  # 400 in-control residuals, ARL0 ~ 900 per side
    first = int(np.flatnonzero(flags[:, 1])[0])
    assert 200 <= first <= 203  # a 6-sd shift is found within a few slots


def test_cusum_by_hand() -> None:
    """Exact residuals (sd floored at 0.1): after 2 warm-up zeros, +0.3 gives z = 3, so S+
    grows by 3 - 1 = 2 per slot and passes h = 3 on the second shifted slot; invalid entries
    change nothing; a flag restarts the user."""
    det = CusumDetector(1, k=1.0, h=3.0, warmup=2, min_sd=0.1)
    assert not det.update(np.array([0.0]))[0] and not det.update(np.array([0.0]))[0]
    assert not det.update(np.array([0.3]))[0] and det.pos[0] == pytest.approx(2.0)
    assert not det.update(np.array([9.9]), valid=np.array([False]))[0]
    assert det.update(np.array([0.3]))[0]
    assert det.n[0] == 0 and det.pos[0] == 0.0


def test_cusum_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="CUSUM"):
        CusumDetector(3, h=0.0)


def test_detection_metrics_by_hand() -> None:
    ev = [SimpleNamespace(slot=10, upgraded=np.array([True, True, False])),
          SimpleNamespace(slot=50, upgraded=np.array([True, False, False]))]
    flags = pd.DataFrame({"slot": [5, 12, 13, 20, 60], "user": [2, 0, 0, 2, 0]})
    m = detection_metrics(ev, flags, n_slots=100, n_users=3)
    # user 0: found at 12 (delay 2), flagged again at 13 (false), found again at 60 (delay 10);
    # user 1: never found (missed); user 2: never upgraded, flagged twice (false)
    assert m["upgrades"] == 3 and m["detected"] == 2 and m["missed"] == 1
    assert m["delay_median_slots"] == 6.0 and m["false_alarms"] == 3
    assert m["false_alarms_per_1000_slots"] == pytest.approx(30.0)


def test_executed_latency_picks_the_placement() -> None:
    table = SimpleNamespace(local_s=np.array([[1.0, 2.0]]), cloud_s=np.array([[9.0, 8.0]]),
                            edge_s=np.arange(2 * 2 * 2, dtype=float).reshape(1, 2, 2, 2))
    dec = np.array([[1, 0, 0]])
    assert executed_latency(table, dec)[0] == 2.0  # device, method 1
    assert executed_latency(table, np.array([[0, 3, 1]]))[0] == 9.0  # cloud (H + 1 = 3)
    assert executed_latency(table, np.array([[1, 2, 1]]))[0] == table.edge_s[0, 1, 1, 1]


def test_a_tracking_reference_absorbs_a_slow_change() -> None:
    """A residual that creeps by 0.001 per slot (a model that keeps sharpening): the frozen
    reference flags it three times in 300 slots, the tracking one (the running mean of all that
    is unflagged) later and once. The price: a step of 10 sd, which the frozen reference flags
    on its third slot, the tracking one learns in part before flagging it, or never."""
    creep = np.arange(300) * 0.001
    frozen = CusumDetector(1, k=1.0, h=20.0, warmup=5, min_sd=0.05)
    track = CusumDetector(1, k=1.0, h=20.0, warmup=5, min_sd=0.05, track=True)
    f = [t for t, d in enumerate(creep) if frozen.update(np.array([d]))[0]]
    g = [t for t, d in enumerate(creep) if track.update(np.array([d]))[0]]
    assert len(f) == 3 and len(g) == 1 and g[0] > f[0]
    first = {}
    for name, det in (("frozen", frozen), ("track", track)):
        det.reset(np.array([True]))
        for _ in range(5):
            det.update(np.array([0.0]))
        hits = [t for t in range(50) if det.update(np.array([0.5]))[0]]
        first[name] = hits[0] if hits else 99
    assert first["frozen"] == 2 and first["track"] > first["frozen"]
