"""The Gymnasium environment: API conformity, determinism, the info contract and bad input."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from conftest import small_system_configs
from gymnasium.utils.env_checker import check_env
from hypothesis import given
from hypothesis import strategies as st

import ecmeta_lib  # noqa: F401  (registers ecmeta/EdgeCloud-v0)
from ecmeta_lib import ENV_ID, EdgeCloudEnv, EnvConfig, SystemConfig, make_task_set

INFO_ARRAYS = ("latency", "placement", "ds", "model", "accuracy", "accuracy_ok")


def test_check_env_passes_with_warnings_as_errors():
    env = gym.make(ENV_ID)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)


def test_check_env_small_system():
    cfg = EnvConfig(system=SystemConfig(n_users=6, n_servers=2, es_gflops=(50.0, 70.0),
                                        es_memory_gb=(2.0, 3.0), es_cores=(2, 3)),
                    episode_slots=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gym.make(ENV_ID, condition="T1", config=cfg).unwrapped)


def test_spaces():
    env = gym.make(ENV_ID)
    assert isinstance(env.action_space, gym.spaces.MultiDiscrete)
    np.testing.assert_array_equal(env.action_space.nvec, np.tile([3, 5, 3], 80))
    assert env.observation_space.shape == (80 * (4 + 6),)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert info["condition"] == "G1"


def test_make_vec_two_envs():
    venv = gym.make_vec(ENV_ID, num_envs=2)
    try:
        obs, _ = venv.reset(seed=5)
        assert obs.shape == (2, 80 * 10)
        obs, reward, terminated, truncated, info = venv.step(venv.action_space.sample())
        assert reward.shape == (2,) and np.all(reward < 0)
        assert info["latency"].shape == (2, 80)
        assert not np.array_equal(obs[0], obs[1])  # the two copies draw different states
    finally:
        venv.close()


def test_step_contract_and_reward():
    env = gym.make(ENV_ID, condition="G2'")
    env.reset(seed=1)
    action = env.action_space.sample()
    obs, reward, terminated, truncated, info = env.step(action)
    for key in INFO_ARRAYS:
        assert info[key].shape == (80,), key
    assert isinstance(info["to_cloud"], int)
    assert reward == pytest.approx(-info["latency"].mean())
    assert info["mean_latency"] == pytest.approx(-reward)
    assert info["condition"] == "G2'"
    assert not terminated and not truncated
    assert env.observation_space.contains(obs)


def test_episode_is_truncated_after_20_slots():
    env = gym.make(ENV_ID)
    env.reset(seed=0)
    flags = [env.step(env.action_space.sample())[2:4] for _ in range(20)]
    assert [t for _, t in flags] == [False] * 19 + [True]
    assert not any(term for term, _ in flags)


def rollout(seed: int, n: int = 25, condition: str = "G1", action_seed: int = 0):
    env = EdgeCloudEnv(condition=condition, task_seed=0)
    env.action_space.seed(action_seed)
    obs, _ = env.reset(seed=seed)
    traj = [obs]
    for _ in range(n):
        obs, reward, _, truncated, info = env.step(env.action_space.sample())
        traj += [obs, np.array([reward]), info["latency"], info["placement"]]
        if truncated:
            obs, _ = env.reset()
            traj.append(obs)
    return traj


def test_same_seed_same_trajectory():
    a, b = rollout(3), rollout(3)
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    c = rollout(4)
    assert not np.array_equal(a[0], c[0])


def test_states_do_not_depend_on_actions():
    # common random numbers: the same seed gives every policy the same slot states
    a, b = rollout(3, action_seed=0), rollout(3, action_seed=1)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])  # the next observation
    assert not np.array_equal(a[4], b[4])  # placements differ


def test_user_state_and_table_are_exposed():
    env = gym.make(ENV_ID)
    env.reset(seed=2)
    u = env.unwrapped
    assert u.user_state.ap.shape == (80,)
    assert u.option_table.edge_s.shape == (80, 3, 3, 4)
    assert u.condition.name == "G1"
    assert u.system is u.task_set.system


def test_reset_switches_condition():
    env = EdgeCloudEnv()
    _, info = env.reset(seed=0, options={"condition": "T2"})
    assert info["condition"] == "T2" and env.condition is env.task_set["T2"]
    env.reset(options={"condition": env.task_set["G3"]})
    assert env.condition.name == "G3"


@given(small_system_configs(), st.integers(0, 1000))
def test_small_systems_step(cfg, seed):
    env = EdgeCloudEnv(condition="G1''", config=EnvConfig(system=cfg, episode_slots=3),
                       task_seed=seed)
    env.action_space.seed(seed)
    env.reset(seed=seed)
    for _ in range(3):
        obs, reward, _, _, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
        assert np.isfinite(reward) and reward < 0
        counts = np.bincount(info["placement"], minlength=cfg.n_servers + 2)[1:-1]
        assert np.all(counts <= np.asarray(cfg.es_cores))


# --- bad input ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def env():
    e = EdgeCloudEnv()
    e.reset(seed=0)
    return e


def test_wrong_action_shape(env):
    with pytest.raises(ValueError, match=r"action must have shape \(240,\).*got shape \(80, 3\)"):
        env.step(np.zeros((80, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="action must have shape"):
        env.step(np.zeros(239, dtype=np.int64))


def test_wrong_action_dtype(env):
    with pytest.raises(TypeError, match="action must hold integers, got dtype float64"):
        env.step(np.zeros(240))


@pytest.mark.parametrize("index, val, message", [
    (0, 3, r"user 0 DS = 3, allowed 0\.\.2"),
    (4, 5, r"user 1 TA = 5, allowed 0\.\.4"),
    (239, -1, r"user 79 MS = -1, allowed 0\.\.2"),
])
def test_action_out_of_range(env, index, val, message):
    action = np.zeros(240, dtype=np.int64)
    action[index] = val
    with pytest.raises(ValueError, match="action out of range: " + message):
        env.step(action)


def test_step_before_reset():
    with pytest.raises(RuntimeError, match=r"call reset\(\) before step\(\)"):
        EdgeCloudEnv().step(np.zeros(240, dtype=np.int64))


def test_zero_users():
    with pytest.raises(ValueError, match="n_users must be a positive integer, got 0"):
        EnvConfig(system=SystemConfig(n_users=0))


def test_negative_capacity():
    with pytest.raises(ValueError, match="es_memory_gb: every value must be positive"):
        SystemConfig(es_memory_gb=(24.0, -24.0, 32.0, 32.0))
    with pytest.raises(ValueError, match="es_cores: every value must be positive"):
        SystemConfig(es_cores=(10, 24, 16, -1))


def test_unknown_condition_name():
    with pytest.raises(KeyError, match="unknown condition name 'G7'"):
        EdgeCloudEnv(condition="G7")
    with pytest.raises(KeyError, match="unknown condition name 'X'"):
        EdgeCloudEnv().reset(options={"condition": "X"})


def test_condition_of_wrong_shape():
    small = make_task_set(0, SystemConfig(n_users=5))
    with pytest.raises(ValueError, match=r"condition has shape \(5, 3\)"):
        EdgeCloudEnv(condition=small["G1"])


def test_wrong_reset_option():
    with pytest.raises(ValueError, match=r"unknown reset option\(s\) \['cond'\]"):
        EdgeCloudEnv().reset(options={"cond": "G1"})


def test_wrong_config_type():
    with pytest.raises(TypeError, match="config must be an EnvConfig"):
        EdgeCloudEnv(config=SystemConfig())
    with pytest.raises(ValueError, match="episode_slots must be a positive integer"):
        EnvConfig(episode_slots=0)
