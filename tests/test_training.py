"""Training: profiles, a smoke meta-training run, bit-exact resume, refused checkpoints, NaNs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from ecmeta_lib.agent_policies import adaptation_curve
from ecmeta_lib.agents import NonFiniteLossError
from ecmeta_lib.checkpoints import CheckpointError, load_agent
from ecmeta_lib.config import EnvConfig, SystemConfig
from ecmeta_lib.evaluation import evaluate
from ecmeta_lib.policies import RandomPolicy
from ecmeta_lib.profiles import METHODS, PROFILES, Profile, get_profile, training_conditions
from ecmeta_lib.training import CURVE_COLUMNS, train

TINY_ENV = EnvConfig(system=SystemConfig(n_users=4, n_servers=2, es_gflops=(60.0, 120.0),
                                         es_memory_gb=(24.0, 32.0), es_cores=(2, 3)))
TINY = replace(PROFILES["smoke"], name="tiny", env=TINY_ENV, iterations=5, checkpoint_every=2,
               eval_every=2, final_slots=3)


def test_profiles_exist_and_paper_matches_table_1() -> None:
    assert set(PROFILES) == {"smoke", "quick", "paper", "paper_8k", "catalogue"}
    p8 = get_profile("paper_8k")
    assert p8.iterations * p8.t_train == 8_000 == get_profile("quick").iterations * get_profile(
        "quick").t_train
    assert p8.agent == get_profile("paper").agent
    p = get_profile("paper")
    a = p.agent.flat()
    assert (a["lr"], a["hidden"], a["n_layers"], a["kl_weight"], a["arch"]) == (
        3e-5, 700, 5, 0.1, "flat")
    assert (p.batch_size, p.lambda1, p.lambda2, p.t_train, p.k_prime) == (256, 10, 40, 40, 2)
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("fast")


@pytest.mark.parametrize("bad", [dict(iterations=0), dict(batch_size=-1), dict(lambda2=99),
                                 dict(context_size=10_000), dict(eval_context=-1)])
def test_profile_rejects_bad_values(bad) -> None:
    with pytest.raises(ValueError):
        replace(PROFILES["smoke"], **bad)


def test_methods_and_their_training_conditions() -> None:
    assert training_conditions("pearl") == training_conditions("sac_dt")
    assert len(training_conditions("sac_dt")) == 6
    assert training_conditions("sac_t_m") == ("T1", "T2", "T3")
    assert training_conditions("sac_aisf_2") == ("T2",)
    assert len(METHODS) == 6
    with pytest.raises(ValueError, match="unknown method"):
        training_conditions("sac_aisf_4")


def test_actor_mode_methods_is_per_method_and_keys_only_those_runs() -> None:
    from ecmeta_lib.cache import run_key as config_hash

    assert PROFILES["quick"].actor_mode_methods == ("sac_dt", "sac_t_m")  # chosen on validation
    base = replace(PROFILES["smoke"], actor_mode_methods=())
    assert base.agent.actor.greedy_critic
    prof = replace(base, actor_mode_methods=("sac_dt",))
    assert not prof.agent_config("sac_dt").actor.greedy_critic
    assert prof.agent_config("sac_t_m").actor.greedy_critic
    assert prof.agent_config("pearl").actor.greedy_critic
    assert prof.agent_config("sac_dt") == base.agent_config("sac_dt").with_(greedy_critic=False)
    # the other methods keep their run keys (and their cached runs); the listed one gets a new key
    for method in ("pearl", "sac_t_m", "sac_aisf_1"):
        assert config_hash(method, prof, 0, 0) == config_hash(method, base, 0, 0)
    assert config_hash("sac_dt", prof, 0, 0) != config_hash("sac_dt", base, 0, 0)
    with pytest.raises(ValueError, match="actor_mode_methods"):
        replace(base, actor_mode_methods=("sac_xx",))
    with pytest.raises(ValueError, match="actor_mode_methods"):
        replace(base, actor_mode_methods="sac_dt")


def test_smoke_pearl_beats_random_and_writes_outputs(tmp_path) -> None:
    res = train("pearl", "smoke", 0, tmp_path, progress=False)
    curve = pd.read_csv(tmp_path / "curve.csv")
    assert list(curve.columns) == CURVE_COLUMNS
    assert set(curve.condition) == {"T1", "T2", "T3"}
    assert (np.diff(curve.env_steps.unique()) > 0).all()
    log = pd.read_csv(tmp_path / "train_log.csv")
    assert {"critic_loss", "actor_loss", "temperature", "kl", "entropy"} <= set(log.columns)
    final = pd.read_csv(tmp_path / "final.csv")
    assert list(final.condition) == ["T1", "T2", "T3"]
    assert (final.gap_to_oracle_pct > 0).all()
    prof = get_profile("smoke")
    rnd = evaluate(RandomPolicy(seed=0), "T1", n_slots=prof.final_slots, seed=3_000,
                   with_oracle=False).summary["mean_latency_s"]
    assert final.mean_latency_s.iloc[0] < rnd
    agent = load_agent(tmp_path)
    assert agent.method == "pearl" and agent.profile == prof
    ad = adaptation_curve(agent, "T1", n_context=(0, 2, 5), eval_slots=4, seed=0)
    assert list(ad.n_context) == [0, 2, 5] and np.isfinite(ad.mean_latency_s).all()
    # per-user latents (smoke default): the posterior is (U, L) and narrows with the context
    assert prof.agent.encoder.latent_per_user and prof.agent.critic.per_user_reward
    mu, var = agent.posterior(agent_ctx := _smoke_context(agent, 6))
    assert mu.shape == var.shape == (prof.env.system.n_users, prof.agent.encoder.latent_dim)
    _, var2 = agent.posterior({k: v[:2] for k, v in agent_ctx.items()})
    assert (var < var2).all()
    assert res.best_iteration >= 1


def _smoke_context(agent, n: int) -> dict[str, np.ndarray]:
    from ecmeta_lib.agent_policies import collect_context
    from ecmeta_lib.env import EdgeCloudEnv
    return collect_context(agent, EdgeCloudEnv(condition="T2"), n, seed=5)


class Killed(Exception):
    pass


def _kill_at(n: int):
    def hook(it, agent):
        if it == n:
            raise Killed
    return hook


TINY_GLOBAL = replace(TINY, name="tiny_global",
                      agent=TINY.agent.with_(per_user_reward=False, latent_per_user=False,
                                    joint_actor=False, log_latency_critic=False,
                                    encoder_decisions=False, pooled=True, twin_critics=True,
                                    greedy_critic=False))


@pytest.mark.parametrize(("method", "profile"), [("pearl", TINY), ("sac_t_m", TINY),
                                                 ("pearl", TINY_GLOBAL)])
def test_resume_after_kill_equals_uninterrupted(tmp_path, method, profile) -> None:
    torch.set_num_threads(1)
    full = train(method, profile, 3, tmp_path / "full", progress=False)
    with pytest.raises(Killed):
        train(method, profile, 3, tmp_path / "cut", progress=False, hook=_kill_at(3))
    resumed = train(method, profile, 3, tmp_path / "cut", progress=False)
    assert resumed.resumed_from == 2  # checkpoint_every=2: iteration 3 is redone
    pd.testing.assert_frame_equal(full.curve, resumed.curve)
    pd.testing.assert_frame_equal(full.final, resumed.final)
    a, b = full.agent.state_dict(), resumed.agent.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    pd.testing.assert_frame_equal(full.train_log, resumed.train_log)


def test_corrupt_and_mismatched_checkpoints_are_refused(tmp_path) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        train("sac_aisf_1", TINY, 0, tmp_path / "bad", progress=False)
    train("sac_aisf_1", TINY, 0, tmp_path / "run", progress=False)
    with pytest.raises(CheckpointError, match="method"):
        train("sac_aisf_2", TINY, 0, tmp_path / "run", progress=False)
    with pytest.raises(CheckpointError, match="config_hash"):
        train("sac_aisf_1", replace(TINY, batch_size=8), 0, tmp_path / "run", progress=False)
    with pytest.raises(CheckpointError, match="no trained agent"):
        load_agent(tmp_path / "bad")


def test_nan_loss_stops_with_clear_error_and_keeps_checkpoint(tmp_path) -> None:
    def poison(it, agent):
        if it == 2:
            with torch.no_grad():
                for p in agent.critic1.parameters():
                    p.fill_(float("nan"))

    with pytest.raises(NonFiniteLossError, match="critic loss"):
        train("sac_aisf_1", TINY, 0, tmp_path, progress=False, hook=poison)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert state["iteration"] == 2
    assert all(torch.isfinite(v).all() for v in state["agent"]["model"].values())


def test_profile_type_errors() -> None:
    with pytest.raises(TypeError):
        Profile(**{**PROFILES["smoke"].__dict__, "agent": "sac"})


def test_curve_iterations_add_points_and_change_nothing_else(tmp_path) -> None:
    """Extra curve points (iteration 0, the untrained policy, and early ones) are recorded
    only: the weights, the validation log and the final scores are those of a run without
    them, bit for bit; the curve has the extra iterations and keeps every eval_every point."""
    plain = train("pearl", replace(TINY, curve_iterations=()), 0, tmp_path / "plain",
                  progress=False)
    dense = train("pearl", replace(TINY, curve_iterations=(0, 1, 3)), 0, tmp_path / "dense",
                  progress=False)
    assert sorted(set(plain.curve.iteration)) == [2, 4, 5]
    assert sorted(set(dense.curve.iteration)) == [0, 1, 2, 3, 4, 5]
    merged = dense.curve[dense.curve.iteration.isin([2, 4, 5])].reset_index(drop=True)
    pd.testing.assert_frame_equal(merged, plain.curve)
    pd.testing.assert_frame_equal(dense.final, plain.final)
    for k, v in plain.agent.state_dict().items():
        assert torch.equal(v, dense.agent.state_dict()[k]), k
    assert dense.curve[dense.curve.iteration == 0].env_steps.eq(0).all()
    with pytest.raises(ValueError, match="curve_iterations must be integers in"):
        replace(TINY, curve_iterations=(0, 6))


def test_identified_twins_are_what_meta_training_sees(tmp_path) -> None:
    """``twin_telemetry_slots``: the trainer's DTs are the identified twins (validation too),
    their errors land in twin_errors.csv; T1-T3 stay the true conditions."""
    from ecmeta_lib.conditions import DT_NAMES, TEST_NAMES, make_task_set
    from ecmeta_lib.policies import identified_twins
    from ecmeta_lib.training import Trainer

    prof = replace(TINY, iterations=1, twin_telemetry_slots=1)
    run = Trainer("pearl", prof, 0, tmp_path, 0, torch.device("cpu"))
    truth = make_task_set(0, prof.env.system, prof.env.conditions)
    want, errors = identified_twins(truth, prof.env, 1)
    for n in DT_NAMES:
        assert np.array_equal(run.task_set[n].flop_per_bit, want[n].flop_per_bit)
    for n in TEST_NAMES:
        assert np.array_equal(run.task_set[n].flop_per_bit, truth[n].flop_per_bit)
    run.write_csvs()
    assert pd.read_csv(tmp_path / "twin_errors.csv").twin.tolist() == list(DT_NAMES)
    assert errors[0]["identified_share"] < 1.0  # one slot cannot show every model
