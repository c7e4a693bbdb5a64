"""The lifecycle setting: upgrade scenarios, the lifecycle env, stream scoring and metrics."""

from __future__ import annotations

import warnings
from dataclasses import replace

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env

import ecmeta_lib  # noqa: F401  (registers the environments)
from ecmeta_lib import make_task_set
from ecmeta_lib.evaluation import _ORACLE_CACHE
from ecmeta_lib.lifecycle import (
    LIFECYCLE_ENV_ID,
    REPORTED_SCENARIO_SEEDS,
    SCENARIO_PROFILES,
    VALIDATION_SCENARIO_SEED_MIN,
    EdgeCloudLifecycleEnv,
    LiveIdentifyGreedy,
    ScenarioConfig,
    make_scenario,
    validation_scenario_seeds,
)
from ecmeta_lib.lifecycle_scoring import TRACE_COLUMNS, score_stream, stream_metrics
from ecmeta_lib.policies import (
    BlindGreedyPolicy,
    GreedyPolicy,
    RandomPolicy,
    TwinIdentifier,
    dt_mean_condition,
    greedy_action,
)
from ecmeta_lib.slot import option_table
from ecmeta_lib.system import sample_user_state


@pytest.fixture(scope="module")
def task_set():
    return make_task_set(0)


@pytest.fixture(scope="module")
def smoke(task_set):
    return make_scenario(task_set, 0, "smoke")


def _same_condition(a, b) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f))
               for f in ("flop_per_bit", "memory_mb", "peak_accuracy", "quality_exponent"))


# --- scenario ---------------------------------------------------------------------------------
def test_profiles_sizes(task_set):
    smoke, quick, paper = (SCENARIO_PROFILES[p] for p in ("smoke", "quick", "paper"))
    assert smoke.n_slots <= 200 and quick.n_slots >= 2000 and paper.n_slots > quick.n_slots
    for seed in REPORTED_SCENARIO_SEEDS:
        assert 2 <= len(make_scenario(task_set, seed, "smoke").events) <= 3
        assert len(make_scenario(task_set, seed, "quick").events) >= 6


def test_scenario_is_reproducible_and_well_formed(task_set, smoke):
    again = make_scenario(task_set, 0, "smoke")
    other = make_scenario(task_set, 1, "smoke")
    np.testing.assert_array_equal(smoke.event_slots, again.event_slots)
    assert not np.array_equal(smoke.event_slots, other.event_slots)
    for (s1, c1), (s2, c2) in zip(smoke.segments, again.segments, strict=True):
        assert s1 == s2 and _same_condition(c1, c2) and c1.name == c2.name
    for e1, e2 in zip(smoke.events, again.events, strict=True):
        np.testing.assert_array_equal(e1.upgraded, e2.upgraded)
        np.testing.assert_array_equal(e1.replaced, e2.replaced)
    gaps = np.diff(np.concatenate([[0], smoke.event_slots]))
    assert gaps.min() >= smoke.config.min_gap_slots
    assert _same_condition(smoke.condition_at(0), task_set["T1"])
    prev = smoke.segments[0][1]
    for e in smoke.events:
        assert smoke.condition_at(e.slot) is e.condition
        assert smoke.condition_at(e.slot - 1) is prev
        assert not (e.replaced & ~e.upgraded).any()
        changed = (e.condition.flop_per_bit != prev.flop_per_bit).any(axis=1)
        np.testing.assert_array_equal(changed, e.upgraded)  # exactly the flagged users change
        keep = ~e.upgraded
        np.testing.assert_array_equal(e.condition.memory_mb[keep], prev.memory_mb[keep])
        up = e.upgraded & ~e.replaced  # upgraded (not replaced): lighter models
        assert (e.condition.flop_per_bit[up] < prev.flop_per_bit[up]).all()
        prev = e.condition
    # a longer stream with the same law and seed starts with the same events
    longer = make_scenario(task_set, 0, replace(smoke.config, n_slots=400))
    np.testing.assert_array_equal(longer.event_slots[:len(smoke.events)], smoke.event_slots)


def test_fresh_start_and_seed_split(task_set):
    cfg = replace(SCENARIO_PROFILES["smoke"], start_condition="fresh")
    a, b = make_scenario(task_set, 0, cfg), make_scenario(task_set, 1, cfg)
    c0 = a.condition_at(0)
    assert c0.name == "fresh" and not _same_condition(c0, b.condition_at(0))
    assert not any(_same_condition(c0, c) for c in task_set.conditions.values())
    assert min(validation_scenario_seeds(3)) == VALIDATION_SCENARIO_SEED_MIN == 100
    assert max(REPORTED_SCENARIO_SEEDS) < VALIDATION_SCENARIO_SEED_MIN


@pytest.mark.parametrize("kwargs, match", [
    ({"n_slots": 0}, "n_slots"),
    ({"min_gap_slots": 0}, "min_gap_slots"),
    ({"mean_interarrival_slots": 10.0, "min_gap_slots": 20}, "mean_interarrival"),
    ({"mean_interarrival_slots": float("inf")}, "mean_interarrival"),
    ({"upgrade_prob": 1.5}, "upgrade_prob"),
    ({"replace_prob": -0.1}, "replace_prob"),
    ({"start_condition": "G1"}, "start condition"),
])
def test_bad_scenario_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ScenarioConfig(**kwargs)


def test_bad_make_scenario_inputs(task_set, smoke):
    with pytest.raises(ValueError, match="scenario seed"):
        make_scenario(task_set, -1)
    with pytest.raises(ValueError, match="unknown scenario profile"):
        make_scenario(task_set, 0, "huge")
    with pytest.raises(TypeError, match="TaskSet"):
        make_scenario(0, 0)
    with pytest.raises(ValueError, match="slots"):
        smoke.condition_at(smoke.n_slots)
    with pytest.raises(ValueError, match="not a catalogue condition"):
        make_scenario(task_set, 0, condition_config=ecmeta_lib.ConditionConfig(
            source="catalogue"))
    with pytest.raises(ValueError, match="options"):
        EdgeCloudLifecycleEnv(scenario=smoke).reset(options={"condition": "T2"})


# --- environment ------------------------------------------------------------------------------
def test_check_env_passes():
    env = gym.make(LIFECYCLE_ENV_ID, profile="smoke")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)


def test_episode_is_the_stream_and_reset_restarts_it(task_set):
    cfg = ScenarioConfig(n_slots=12, mean_interarrival_slots=5.0, min_gap_slots=4)
    env = EdgeCloudLifecycleEnv(profile=cfg, task_set=task_set)
    first, _ = env.reset(seed=1)
    act = env.action_space.sample()
    for t in range(12):
        _, _, terminated, truncated, info = env.step(act)
        assert info["slot"] == t and not terminated and truncated == (t == 11)
    with pytest.raises(RuntimeError, match="ended"):
        env.step(act)
    again, _ = env.reset(seed=99)  # the seed does not move the stream
    np.testing.assert_array_equal(first, again)


def _run(env, policy, n):
    """Play `policy` for `n` slots; the user states, actions and infos of each slot."""
    obs, info0 = env.reset()
    policy.reset(env)
    states, actions, infos = [], [], [info0]
    for _ in range(n):
        states.append(env.unwrapped.user_state)
        a = np.asarray(policy.act(obs))
        nxt, r, _, _, info = env.step(a)
        policy.observe(obs, a, r, nxt, info)
        actions.append(a)
        infos.append(info)
        obs = nxt
    return states, actions, infos


def test_user_state_stream_is_common_to_controllers(smoke):
    n = smoke.n_slots
    s1, a1, _ = _run(EdgeCloudLifecycleEnv(scenario=smoke), RandomPolicy(seed=3), n)
    s2, a2, _ = _run(EdgeCloudLifecycleEnv(scenario=smoke), GreedyPolicy(), n)
    assert not np.array_equal(np.stack(a1), np.stack(a2))
    for x, y in zip(s1, s2, strict=True):
        for f in ("ap", "bandwidth_hz", "distance_m", "task_bits", "accuracy_req"):
            np.testing.assert_array_equal(getattr(x, f), getattr(y, f))
    # and it is the scenario's own stream, not the env's np_random
    rng = smoke.state_rng()
    for x in s1[:5]:
        want = sample_user_state(rng, ecmeta_lib.EnvConfig().system)
        np.testing.assert_array_equal(x.distance_m, want.distance_m)


def test_announcements(smoke):
    events = {e.slot: e.upgraded for e in smoke.events}
    _, _, infos = _run(EdgeCloudLifecycleEnv(scenario=smoke, announce=True), RandomPolicy(),
                       smoke.n_slots)
    # infos[k] comes with the observation of slot k (reset's for k = 0)
    flagged = [k for k, info in enumerate(infos) if info["upgrade"]]
    assert flagged == sorted(events)
    for k, info in enumerate(infos):
        expect = events.get(k, np.zeros(80, dtype=bool))
        np.testing.assert_array_equal(info["upgraded_users"], expect)
        if k > 0:
            assert info["next_slot"] == k and info["slot"] == k - 1
            assert info["condition"] == smoke.condition_at(k - 1).name
    _, _, quiet = _run(EdgeCloudLifecycleEnv(scenario=smoke, announce=False), RandomPolicy(),
                       smoke.n_slots)
    assert not any(info["upgrade"] or info["upgraded_users"].any() for info in quiet)
    assert {info["condition"] for info in quiet} == {"T1"}


def test_informed_greedy_rereads_condition_and_never_beats_oracle(smoke):
    env = EdgeCloudLifecycleEnv(scenario=smoke)
    states, actions, _ = _run(env, GreedyPolicy(), smoke.n_slots)
    for t, (s, a) in enumerate(zip(states, actions, strict=True)):
        want = greedy_action(option_table(env.system, smoke.condition_at(t), s)).ravel()
        np.testing.assert_array_equal(a, want)
    trace = score_stream(GreedyPolicy(), smoke)
    assert list(trace.columns) == list(TRACE_COLUMNS) and len(trace) == smoke.n_slots
    assert (trace["oracle_latency_s"] <= trace["mean_latency_s"] + 1e-9).all()
    np.testing.assert_array_equal(np.flatnonzero(trace["upgrade"]), smoke.event_slots)
    assert trace["segment"].iloc[-1] == len(smoke.events)


def test_oracle_is_cached_per_slot(smoke):
    key = [k for k in _ORACLE_CACHE if k[0] == "lifecycle" and k[2] == smoke.key]
    if not key:
        score_stream(RandomPolicy(), smoke, n_slots=10)
        key = [k for k in _ORACLE_CACHE if k[0] == "lifecycle" and k[2] == smoke.key]
    cached = _ORACLE_CACHE[key[0]].copy()
    a = score_stream(BlindGreedyPolicy(), smoke, n_slots=30)
    np.testing.assert_array_equal(a["oracle_latency_s"].to_numpy()[:10], cached[:10])
    assert np.isfinite(_ORACLE_CACHE[key[0]][:30]).all()
    b = score_stream(BlindGreedyPolicy, smoke, n_slots=30, with_oracle=False)  # a factory
    assert b["oracle_latency_s"].isna().all()
    np.testing.assert_array_equal(a["mean_latency_s"], b["mean_latency_s"])


def test_live_identify_greedy_resyncs_upgraded_users(smoke):
    n_ctx = 3
    pol = LiveIdentifyGreedy(n_ctx)
    env = EdgeCloudLifecycleEnv(scenario=smoke)
    obs, _ = env.reset()
    pol.reset(env)
    e0 = smoke.events[0]
    for t in range(e0.slot + n_ctx + 1):
        in_ctx = pol.in_context.copy()
        if t < n_ctx:
            assert in_ctx.all()
        elif e0.slot <= t < e0.slot + n_ctx:
            np.testing.assert_array_equal(in_ctx, e0.upgraded)
        else:
            assert not in_ctx.any()
        a = pol.act(obs)
        nxt, r, _, _, info = env.step(a)
        pol.observe(obs, a, r, nxt, info)
        if t == e0.slot - 1:  # the announcement: the upgraded users' twins back to the prior
            est = pol.estimate
            assert not est.flop_observed[e0.upgraded].any()
            assert est.flop_observed[~e0.upgraded].any(axis=1).all()
        obs = nxt
    # after the context, the re-identified rho of the upgraded users' lightest model is exact
    est = pol.estimate.condition
    true = smoke.condition_at(e0.slot)
    seen = pol.estimate.flop_observed[:, 0] & e0.upgraded
    assert seen.sum() > 0.9 * e0.upgraded.sum()
    np.testing.assert_allclose(est.flop_per_bit[seen, 0], true.flop_per_bit[seen, 0], rtol=1e-9)
    with pytest.raises(ValueError, match="n_context"):
        LiveIdentifyGreedy(-1)


def test_twin_identifier_forget(task_set):
    env = ecmeta_lib.EdgeCloudEnv("T1", task_set=task_set)
    env.reset(seed=0)
    ident = TwinIdentifier(env.system, dt_mean_condition(task_set))
    for _ in range(3):
        state = env.user_state
        _, _, _, _, info = env.step(env.action_space.sample())
        ident.add(state, info)
    before = ident.estimate()
    mask = np.zeros(80, dtype=bool)
    mask[:5] = True
    ident.forget(mask)
    after = ident.estimate()
    assert not after.flop_observed[:5].any() and after.n_slots == 3
    np.testing.assert_array_equal(after.flop_observed[5:], before.flop_observed[5:])
    np.testing.assert_array_equal(after.condition.flop_per_bit[5:],
                                  before.condition.flop_per_bit[5:])
    np.testing.assert_array_equal(after.condition.flop_per_bit[:5],
                                  ident.prior.flop_per_bit[:5])
    with pytest.raises(ValueError, match="mask"):
        ident.forget(np.zeros(3, dtype=bool))


# --- metrics ----------------------------------------------------------------------------------
def test_stream_metrics_by_hand():
    # 12 slots, one upgrade at slot 4; window 2, tolerance 6 points, early horizons 2 and 10
    lat = np.array([1.0, 1.0, 1.0, 1.0, 2.0, 1.5, 1.2, 1.1, 1.1, 1.1, 1.1, 1.1])
    orc = np.ones(12)
    trace = pd.DataFrame({"slot": np.arange(12), "segment": [0] * 4 + [1] * 8,
                          "upgrade": np.arange(12) == 4, "mean_latency_s": lat,
                          "oracle_latency_s": orc, "decision_ms": np.arange(12.0)})
    m = stream_metrics(trace, window=2, tol_pts=6.0, early=(2, 10))
    s, row = m.summary, m.per_upgrade.iloc[0]
    assert s["stream_gap_pct"] == pytest.approx(100 * 2.2 / 12)  # sum 14.2 s against 12 s
    assert s["regret_s"] == pytest.approx(2.2)
    assert s["decision_ms_p50"] == pytest.approx(5.5)
    assert s["decision_ms_p99"] == pytest.approx(np.percentile(np.arange(12.0), 99))
    assert s["n_upgrades"] == 1
    # segment [4, 12): level = gap over [8, 12) = 10 %; moving gaps (window 2) ending at slots
    # 5..11: 75, 35, 15, 10, 10, 10, 10 -> in band (<= 6 points off) from slot 7 on, for 2
    # positions -> recovery = 7 + 1 - 4 = 4 slots
    assert row["level_pct"] == pytest.approx(10.0)
    assert row["recovery_slots"] == pytest.approx(4.0)
    assert row["gap_first2_pct"] == pytest.approx(75.0)
    assert np.isnan(row["gap_first10_pct"])  # the segment has 8 slots
    # never settling -> NaN
    lat2 = lat.copy()
    lat2[4:] = [2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 1.3, 1.0]
    m2 = stream_metrics(trace.assign(mean_latency_s=lat2), window=2, tol_pts=1.0)
    assert np.isnan(m2.per_upgrade["recovery_slots"].iloc[0])
    with pytest.raises(ValueError, match="column"):
        stream_metrics(trace.drop(columns="upgrade"))


# --- Stable-Baselines3 ------------------------------------------------------------------------
def test_stable_baselines3_ppo_trains_unmodified():
    sb3 = pytest.importorskip("stable_baselines3")
    env = gym.make(LIFECYCLE_ENV_ID, profile="smoke", scenario_seed=0)
    model = sb3.PPO("MlpPolicy", env, n_steps=128, batch_size=64, n_epochs=1, seed=0,
                    device="cpu", verbose=0)
    model.learn(total_timesteps=256)
    obs, _ = env.reset()
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action)
