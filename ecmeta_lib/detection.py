"""Finding unannounced upgrades: a CUSUM per user on a residual the controller computes itself.

A provider may upgrade its models without saying so. The controller still sees, every slot,
each user's latency and the decision it executed, and it has a model that predicts that latency:
the identifying greedy its twin (`policies.TwinIdentifier`'s estimate), PEARL its critic under the
current z_u. The residual r_u = log(observed latency) - log(predicted latency) of user u is
centred while the model fits and jumps when the user's AI models change (an upgrade scales
every model's compute intensity by 0.6-0.9, a replacement redraws them).

`CusumDetector` runs Page's two-sided CUSUM on each user's standardised residual (Page 1954;
Montgomery, *Statistical Quality Control*, ch. 9): with z = (r - m_u) / s_u, where m_u and s_u are
the mean and standard deviation of the user's first ``warmup`` residuals since its last reset
(its in-control reference, then frozen; or, with ``track``, of all its unflagged residuals since
then; the sd floored at ``min_sd``),

    S+_u <- max(0, S+_u + z - k),   S-_u <- max(0, S-_u - z - k),

and the user is flagged when either exceeds ``h``. ``k`` (allowance, in standard deviations) and
``h`` (threshold) set the trade-off between delay and false alarms: with k = 0.5 and h = 5 the
in-control average run length of a Gaussian residual is ~930 slots per user and side, a shift
of 1 sd is found in ~10 slots, one of 3 sd in ~2-3. The first ``warmup`` residuals after a
reset only estimate m_u and s_u. A flagged user's statistics restart (its model is being
re-identified, so its residuals are not in control yet).

`detection_metrics` scores a detector's flags against the stream's true events: the delay
(slots) per upgraded user, the upgrades missed before the next event, and the false alarms per
1,000 slots (summed over users).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


class CusumDetector:
    """Two-sided CUSUM on each user's standardised residual (module docstring).

    Args:
        n_users: users, each with its own statistics.
        k: allowance, in standard deviations of the in-control residual.
        h: decision threshold, in standard deviations.
        warmup: residuals after a reset that estimate the in-control mean and sd (then frozen).
        min_sd: floor of the residual's sd (log units): a model that predicts exactly would
            otherwise flag any rounding.
        track: keep the reference the running mean and sd of every unflagged residual since
            the reset instead of freezing it after the warm-up: it absorbs the slow change of a
            model that keeps sharpening (PEARL's accumulating posterior), at the price of a
            slower, less sensitive detection of a step.
    """

    def __init__(self, n_users: int, *, k: float = 0.5, h: float = 5.0, warmup: int = 10,
                 min_sd: float = 0.02, track: bool = False) -> None:
        if not (k >= 0 and h > 0 and warmup >= 2 and min_sd > 0):
            raise ValueError(f"CUSUM needs k >= 0, h > 0, warmup >= 2, min_sd > 0; got k={k}, "
                             f"h={h}, warmup={warmup}, min_sd={min_sd}")
        self.k, self.h, self.warmup, self.min_sd = float(k), float(h), int(warmup), float(min_sd)
        self.track = bool(track)
        self.n = np.zeros(n_users, dtype=np.int64)
        self.mean = np.zeros(n_users)
        self.m2 = np.zeros(n_users)
        self.pos = np.zeros(n_users)
        self.neg = np.zeros(n_users)

    def reset(self, users: np.ndarray) -> None:
        """Forget the statistics of the users of the (U,) bool mask."""
        for a in (self.n, self.mean, self.m2, self.pos, self.neg):
            a[users] = 0

    def update(self, residual: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """Feed one residual per user (only where `valid`); returns the (U,) bool flags (their
        statistics restart)."""
        r = np.asarray(residual, dtype=float)
        ok = np.isfinite(r) if valid is None else (np.asarray(valid, bool) & np.isfinite(r))
        sd = np.maximum(np.sqrt(self.m2 / np.maximum(self.n - 1, 1)), self.min_sd)
        z = np.where(ok, (r - self.mean) / sd, 0.0)
        armed = ok & (self.n >= self.warmup)
        self.pos = np.where(armed, np.maximum(0.0, self.pos + z - self.k), self.pos)
        self.neg = np.where(armed, np.maximum(0.0, self.neg - z - self.k), self.neg)
        flags = armed & ((self.pos > self.h) | (self.neg > self.h))
        # Welford on the first `warmup` residuals (the reference, then frozen), or with `track`
        # on every unflagged residual since the reset
        learn = ok & ~flags if self.track else ok & (self.n < self.warmup)
        n1 = self.n + learn
        delta = np.where(learn, r - self.mean, 0.0)
        self.mean = self.mean + np.where(learn, delta / np.maximum(n1, 1), 0.0)
        self.m2 = self.m2 + np.where(learn, delta * (r - self.mean), 0.0)
        self.n = n1
        self.reset(flags)
        return flags


def executed_latency(table: Any, decisions: np.ndarray) -> np.ndarray:
    """(U,) latency (s) that an option table predicts for each user's executed decision
    (DS m, placement p: 0 device, 1..H edge server, H + 1 cloud; model j)."""
    u = np.arange(decisions.shape[0])
    m, p, j = decisions[:, 0], decisions[:, 1], decisions[:, 2]
    n_servers = table.edge_s.shape[-1]
    edge = table.edge_s[u, m, j, np.clip(p - 1, 0, n_servers - 1)]
    return np.where(p == 0, table.local_s[u, m], np.where(p > n_servers, table.cloud_s[u, m],
                                                          edge))


def detection_metrics(events: Sequence[Any], detections: pd.DataFrame, n_slots: int,
                      n_users: int) -> dict[str, float]:
    """Delay, misses and false alarms of `detections` (columns slot, user: the user was flagged
    after playing that slot) against the stream's `events` (`lifecycle.UpgradeEvent`: slot,
    upgraded mask).

    A flag of user u at slot t >= e is the detection of u's upgrade at event e (the last event
    at or before t that touched u) if it is u's first flag since e; any other flag is a false
    alarm. An upgrade not detected before the next event that touches u again (or the stream's
    end) is missed. Returns the median and mean delay (slots from the event slot to the flagged
    slot, so 0 = flagged after playing the upgrade's first slot), the counts, the miss rate and
    the false alarms per 1,000 slots (all users together)."""
    last_event = np.full(n_users, -1)
    detected = np.ones(n_users, dtype=bool)  # nothing pending before the first event
    ev = sorted(events, key=lambda e: e.slot)
    flags = detections.sort_values("slot")[["slot", "user"]].to_numpy()
    delays, false_alarms, missed, upgrades = [], 0, 0, 0
    ei, fi = 0, 0
    for t in range(n_slots):
        while ei < len(ev) and ev[ei].slot == t:
            users = np.asarray(ev[ei].upgraded, dtype=bool)
            missed += int((~detected & users).sum())  # upgraded again before being found
            upgrades += int(users.sum())
            last_event[users], detected[users] = t, False
            ei += 1
        while fi < len(flags) and flags[fi][0] == t:
            u = int(flags[fi][1])
            if not detected[u] and last_event[u] >= 0:
                delays.append(t - last_event[u])
                detected[u] = True
            else:
                false_alarms += 1
            fi += 1
    missed += int((~detected & (last_event >= 0)).sum())
    d = np.asarray(delays, dtype=float)
    return {"upgrades": float(upgrades), "detected": float(d.size), "missed": float(missed),
            "miss_rate": missed / upgrades if upgrades else float("nan"),
            "delay_median_slots": float(np.median(d)) if d.size else float("nan"),
            "delay_mean_slots": float(d.mean()) if d.size else float("nan"),
            "false_alarms": float(false_alarms),
            "false_alarms_per_1000_slots": 1000.0 * false_alarms / n_slots}
