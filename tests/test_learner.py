"""The per-user learner of the quick profile: joint actor, log-latency critic, log inputs, one
critic, cosine learning rate, executed-decision encoder inputs, and the trainer's fairness rules
(same samples per gradient step, K' drawn once per iteration, the critic's held-out error)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from test_agents import SMALL, _threads  # noqa: F401 - the 2-user system and 1-thread fixture
from test_training import TINY as TRAINING_TINY
from test_training import TINY_ENV

from ecmeta_lib.agent_policies import collect_context
from ecmeta_lib.agents import ActionSpec, DiscreteSACAgent, ReplayBuffer, SACConfig
from ecmeta_lib.agents.networks import (
    InputScaling,
    joint_action,
    joint_index,
    one_hot_actions,
    split_joint_index,
)
from ecmeta_lib.agents.sac import resolve_device
from ecmeta_lib.agents.updates import joint_critic_objective
from ecmeta_lib.conditions import DT_NAMES
from ecmeta_lib.env import (
    EdgeCloudEnv,
    accuracy_req_moments,
    positive_feature_ranges,
)
from ecmeta_lib.rollout import decisions_of, random_slots
from ecmeta_lib.training import Trainer, critic_error, train

TINY = replace(TRAINING_TINY, iterations=4)
JOINT = SACConfig.from_flat(hidden=32, n_layers=2, embed_dim=4, lr=3e-3, temperature_lr=3e-3,
                  per_user_reward=True, pooled=False, joint_actor=True, log_latency_critic=True)


def _spec() -> ActionSpec:
    return ActionSpec.from_env(EdgeCloudEnv(condition="T1", config=SMALL))


def test_joint_index_matches_the_outer_product_and_inverts() -> None:
    spec = _spec()
    acts = torch.tensor([[[m, t, f] for m in range(3) for t in range(3) for f in range(3)]])
    idx = joint_index(acts, spec)
    assert idx.tolist() == [list(range(27))]  # row-major over (DS, TA, MS)
    onehot = joint_action(one_hot_actions(acts, spec), spec)  # (1, 27, 27) outer products
    assert torch.equal(onehot.argmax(-1), idx)
    assert torch.equal(split_joint_index(idx, spec), acts)


def test_log_inputs_by_hand() -> None:
    spec = _spec()
    h = SMALL.system.n_servers
    assert spec.log_ranges == positive_feature_ranges(SMALL.system)
    lo, hi = SMALL.system.bandwidth_mhz_range
    x = torch.zeros(1, 2, spec.obs_per_user)
    x[0, 0, h] = 0.5  # bandwidth half-way in its range: lo + (hi - lo) / 2 MHz
    x[0, 0, h + 2] = 0.3  # noise (dBm, already logarithmic) passes unchanged
    y = InputScaling(spec)(x)
    want = (math.log((lo + hi) / 2) - math.log(lo)) / (math.log(hi) - math.log(lo))
    assert y[0, 0, h].item() == pytest.approx(want, rel=1e-6)
    assert y[0, 0, h + 2].item() == pytest.approx(0.3)
    assert y[0, 1, h].item() == pytest.approx(0.0, abs=1e-7)  # the range's low end stays 0


def test_tau_zscore_by_hand() -> None:
    """The accuracy requirement (observed as tau / 100) becomes (tau - mean) / std; the log
    columns are untouched without ``log``, and the input tensor is not modified in place."""
    spec = _spec()
    col, mean, std = accuracy_req_moments(SMALL.system)
    assert spec.tau_moments == (col, mean, std)
    sys_cfg = SMALL.system
    assert (mean, std) == (sys_cfg.accuracy_req_mean / 100, sys_cfg.accuracy_req_std / 100)
    x = torch.full((1, 2, spec.obs_per_user), 0.5)
    x[0, 0, col] = 0.80  # tau = 80 %: two std above the mean of 70 % (std 5 points)
    x[0, 1, col] = 0.70
    y = InputScaling(spec, log=False, tau_zscore=True)(x)
    assert y[0, 0, col].item() == pytest.approx((80 - 70) / 5)
    assert y[0, 1, col].item() == pytest.approx(0.0, abs=1e-6)
    others = [c for c in range(spec.obs_per_user) if c != col]
    assert torch.equal(y[..., others], x[..., others])
    assert x[0, 0, col].item() == pytest.approx(0.80)
    both = InputScaling(spec, log=True, tau_zscore=True)(x)
    assert torch.equal(both[..., col], y[..., col])
    log_col = spec.log_ranges[0][0]
    assert torch.equal(both[..., log_col], InputScaling(spec)(x)[..., log_col])
    agent = DiscreteSACAgent(spec, JOINT.with_(tau_zscore=True), seed=0)
    assert all(net.scaling is not None and net.scaling.tau == (col, mean, std)
               for net in (agent.actor, *agent.critics))


def test_joint_actor_acts_in_range_and_greedy_is_deterministic() -> None:
    env = EdgeCloudEnv(condition="T1", config=SMALL)
    agent = DiscreteSACAgent(ActionSpec.from_env(env), JOINT, seed=0)
    obs, _ = env.reset(seed=0)
    a1, a2 = agent.act(obs, greedy=True), agent.act(obs, greedy=True)
    assert np.array_equal(a1, a2) and env.action_space.contains(a1)
    draws = {tuple(agent.act(obs, greedy=False)) for _ in range(30)}
    assert len(draws) > 1 and all(env.action_space.contains(np.array(d)) for d in draws)


@pytest.mark.parametrize("twin", [False, True])
def test_greedy_critic_acts_on_each_users_least_predicted_latency(twin: bool) -> None:
    """With ``greedy_critic`` the greedy action is every user's argmin of its (pessimistic)
    critic latency, computed here by hand from the critics' raw outputs; exploration still
    samples the actor, the same draws as without the switch."""
    env = EdgeCloudEnv(condition="T1", config=SMALL)
    spec = ActionSpec.from_env(env)
    cfg = JOINT.with_(twin_critics=twin)
    agent = DiscreteSACAgent(spec, cfg.with_(greedy_critic=True), seed=0)
    plain = DiscreteSACAgent(spec, cfg, seed=0)
    obs, _ = env.reset(seed=3)
    with torch.no_grad():
        o = torch.as_tensor(obs, dtype=torch.float32).reshape(1, -1)
        log_lat = torch.stack([c.values(o, None, None)[0] for c in agent.critics])
        best = log_lat.max(0).values.argmin(-1)  # the pessimistic twin: the larger latency
        mode = agent.actor(o, None)[0].argmax(-1)
    act = agent.act(obs, greedy=True)
    assert np.array_equal(act, split_joint_index(best, spec).numpy().ravel())
    assert np.array_equal(plain.act(obs, greedy=True),
                          split_joint_index(mode, spec).numpy().ravel())
    assert env.action_space.contains(act)
    for _ in range(5):
        assert np.array_equal(agent.act(obs, greedy=False), plain.act(obs, greedy=False))


def _random_slots(env: EdgeCloudEnv, n: int, seed: int) -> ReplayBuffer:
    spec = ActionSpec.from_env(env)
    buf = ReplayBuffer(n, spec.obs_dim, (spec.n_users, 3))
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    for _ in range(n):
        a = rng.integers(0, env.action_space.nvec)
        nxt, r, _, trunc, info = env.step(a)
        buf.add(obs, a, r, nxt, info["latency"], decisions_of(info))
        obs = env.reset()[0] if trunc else nxt
    return buf


@pytest.mark.parametrize("twin", [True, False])
def test_log_latency_critic_regresses_each_users_latency(twin: bool) -> None:
    """Fitted on random-action slots of 2 users, the critic's held-out per-user latency error
    falls well below the spread of the latencies themselves, with one critic or two."""
    env = EdgeCloudEnv(condition="T1", config=SMALL)
    cfg = JOINT.with_(twin_critics=twin, lr_cosine=True)
    agent = DiscreteSACAgent(ActionSpec.from_env(env), cfg, seed=0)
    assert len(agent.critics) == (2 if twin else 1)
    agent.set_lr_horizon(600)
    buf, rng = _random_slots(env, 1500, 0), np.random.default_rng(0)
    test = random_slots(EdgeCloudEnv(condition="T1", config=SMALL), 200, 7)
    before = critic_error(agent, test)
    for _ in range(600):
        agent.update([buf.sample(64, rng)], None, epoch=1, lambda1=1, lambda2=1)
    after = critic_error(agent, test)
    spread = float(np.std(test["latency"]))
    assert after < 0.5 * spread < before and after < 0.1 * before, (before, after, spread)


def test_cosine_learning_rate_by_hand() -> None:
    spec = _spec()
    cfg = JOINT.with_(lr=1e-2, lr_cosine=True, lr_final_factor=0.1)
    agent = DiscreteSACAgent(spec, cfg, seed=0)
    agent.set_lr_horizon(10)
    env = EdgeCloudEnv(condition="T1", config=SMALL)
    batch = _random_slots(env, 8, 0).recent(8)
    lrs = []
    for _ in range(11):
        agent.update([batch], None, 1, 1, 1)
        lrs.append(agent.critic_opt.param_groups[0]["lr"])
    # the lr of update k (0-based) is set from k / horizon before the step
    assert lrs[0] == pytest.approx(1e-2)
    assert lrs[5] == pytest.approx(1e-2 * (0.1 + 0.9 * 0.5))
    assert lrs[10] == pytest.approx(1e-3)
    assert agent.actor_opt.param_groups[0]["lr"] == pytest.approx(1e-3)
    assert int(agent.n_updates) == 11


def test_critic_lr_drives_critics_and_encoder_under_the_same_schedule() -> None:
    spec = _spec()
    cfg = JOINT.with_(lr=1e-3, critic_lr=1e-2, lr_cosine=True, lr_final_factor=0.1,
                  latent_dim=2, latent_per_user=True, encoder_decisions=True)
    agent = DiscreteSACAgent(spec, cfg, seed=0)
    # the encoder learns with the critic (it is trained through the critic's loss)
    enc = {id(p) for p in agent.encoder.parameters()}
    assert enc <= {id(p) for g in agent.critic_opt.param_groups for p in g["params"]}
    assert agent.critic_opt.param_groups[0]["lr"] == pytest.approx(1e-2)
    assert agent.actor_opt.param_groups[0]["lr"] == pytest.approx(1e-3)
    agent.set_lr_horizon(4)
    env = EdgeCloudEnv(condition="T1", config=SMALL)
    slots = _random_slots(env, 8, 0)
    batch, ctx = slots.recent(8), slots.recent(4)
    for _ in range(5):
        agent.update([batch], [ctx], 1, 1, 1)
    assert agent.critic_opt.param_groups[0]["lr"] == pytest.approx(1e-3)
    assert agent.actor_opt.param_groups[0]["lr"] == pytest.approx(1e-4)
    # None keeps the paper's single learning rate
    assert DiscreteSACAgent(spec, JOINT.with_(lr=2e-3), seed=0).critic_base_lr == 2e-3


def test_encoder_reads_executed_decisions_and_refuses_missing_ones() -> None:
    env = EdgeCloudEnv(condition="T1", config=SMALL)
    cfg = JOINT.with_(latent_dim=2, latent_per_user=True, encoder_decisions=True,
                  posterior_prior_factor=True)
    agent = DiscreteSACAgent(ActionSpec.from_env(env), cfg, seed=0)
    ctx = _random_slots(env, 6, 0).recent(6)
    mu, _ = agent.posterior(ctx)
    assert mu.shape == (2, 2)
    # the executed decisions, not the requested action, move the posterior
    moved = dict(ctx, decision=ctx["decision"].copy())
    moved["decision"][:, :, 1] = (moved["decision"][:, :, 1] + 1) % 4
    assert not torch.allclose(agent.posterior(moved)[0], mu)
    same_action = dict(ctx, action=(ctx["action"] + 1) % 3)
    assert torch.allclose(agent.posterior(same_action)[0], mu)
    with pytest.raises(ValueError, match="executed decisions"):
        agent.posterior(dict(ctx, decision=np.full_like(ctx["decision"], -1)))


@pytest.mark.parametrize("bad", [dict(joint_actor=True, gamma=0.5),
                                 dict(log_latency_critic=True, per_user_reward=False,
                                      joint_actor=False),
                                 dict(twin_critics=False, joint_actor=False),
                                 dict(encoder_decisions=True, latent_per_user=False),
                                 dict(lr_final_factor=0.0), dict(log_inputs=True, arch="flat",
                                                                 per_user_reward=False,
                                                                 joint_actor=False,
                                                                 log_latency_critic=False),
                                 dict(tau_zscore=True, arch="flat", per_user_reward=False,
                                      joint_actor=False, log_latency_critic=False),
                                 dict(tau_zscore=1), dict(critic_lr=0.0),
                                 dict(critic_lr=float("nan")), dict(critic_lr=True),
                                 dict(greedy_critic=True, pooled=True),
                                 dict(greedy_critic=True, joint_actor=False,
                                      log_latency_critic=False),
                                 dict(greedy_critic=1)])
def test_learner_flags_refuse_invalid_combinations(bad) -> None:
    with pytest.raises(ValueError):
        JOINT.with_(**bad)


@pytest.mark.parametrize("method", ["sac_aisf_1", "sac_dt", "pearl"])
def test_every_method_gets_the_same_samples_per_step_and_kprime_once(method, tmp_path,
                                                                     monkeypatch) -> None:
    """Single-condition methods take K' x batch_size slots of their one condition; the others
    batch_size of each of K' conditions drawn once per iteration (Algorithm 1, line 6)."""
    seen: list[tuple[int, ...]] = []
    orig = DiscreteSACAgent.update

    def spy(self, batches, contexts, epoch, lambda1, lambda2):
        seen.append(tuple(len(b["reward"]) for b in batches))
        return orig(self, batches, contexts, epoch, lambda1, lambda2)

    draws: list[list[str]] = []
    orig_tasks = Trainer.sample_tasks

    def spy_tasks(self):
        out = orig_tasks(self)
        draws.append(out)
        return out

    monkeypatch.setattr(DiscreteSACAgent, "update", spy)
    monkeypatch.setattr(Trainer, "sample_tasks", spy_tasks)
    train(method, TINY, 0, tmp_path, progress=False)
    assert {sum(s) for s in seen} == {TINY.batch_size * TINY.k_prime}
    assert len(draws) == TINY.iterations and len(seen) == TINY.iterations * TINY.t_train


def test_critic_error_is_logged_and_in_final(tmp_path) -> None:
    res = train("sac_aisf_1", TINY, 0, tmp_path, progress=False)
    logged = res.train_log["critic_rmse_s"].dropna()
    assert len(logged) == TINY.iterations // TINY.eval_every
    assert (logged > 0).all() and np.isfinite(logged).all()
    assert res.final["critic_rmse_s"].nunique() == 1 and res.final["critic_rmse_s"].iloc[0] > 0
    assert (res.final["seed"] == 0).all()  # the training seed, not the slots' seed


def test_heldout_slots_are_deterministic_and_the_trainer_never_trains_on_them() -> None:
    env = EdgeCloudEnv(condition="T1", config=TINY_ENV)
    a, b = random_slots(env, 5, 11), random_slots(env, 5, 11)
    assert all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)
    run = Trainer("sac_aisf_1", TINY, 0, None, 0, resolve_device("cpu"))  # type: ignore[arg-type]
    run.collect()
    held = run.heldout()["T1"]["obs"]
    stored = run.replay["T1"].obs[: len(run.replay["T1"])].astype(np.float32)
    assert not any((stored == row).all(axis=1).any() for row in held)


def test_random_context_is_the_same_whatever_the_weights() -> None:
    """With ``random_context`` the adaptation context is an exploration policy's (uniform random
    actions from the context seed), so two differently initialised agents collect the same one;
    with posterior sampling they do not."""
    env = EdgeCloudEnv(condition="T1", config=SMALL)
    cfg = JOINT.with_(latent_dim=2, latent_per_user=True, encoder_decisions=True,
                  posterior_prior_factor=True)
    spec = ActionSpec.from_env(env)
    for random_context in (True, False):
        c = cfg.with_(random_context=random_context)
        a = collect_context(DiscreteSACAgent(spec, c, seed=1), env, 12, 7)
        b = collect_context(DiscreteSACAgent(spec, c, seed=2), env, 12, 7)
        assert np.array_equal(a["action"], b["action"]) == random_context
    counts = np.bincount(a["action"][:, :, 2].ravel(), minlength=3)  # posterior sampling here
    ctx = collect_context(DiscreteSACAgent(spec, cfg.with_(random_context=True), seed=1),
                          env, 60, 7)
    models = np.bincount(ctx["action"][:, :, 2].ravel(), minlength=3)
    assert (models > 0.2 * models.sum()).all(), (models, counts)  # every model is seen
    with pytest.raises(ValueError, match="random_context"):
        JOINT.with_(random_context=True)  # no encoder


def test_explore_fraction_and_context_steps(tmp_path) -> None:
    """``explore_fraction`` 1 makes every collected action uniform random (0: the agent's own);
    ``random_context`` fills PEARL's context buffer only from its ``context_steps`` random slots;
    bad values are refused with the field's name."""
    prof = replace(TINY, iterations=2, initial_random_steps=0, twin_samples=0)
    for frac in (0.0, 1.0):
        tr = Trainer("sac_aisf_1", replace(prof, explore_fraction=frac), 0, tmp_path / str(frac),
                      0, resolve_device("cpu"))
        tr.agent.actor = _Constant(tr.spec)  # the agent always picks joint action 0
        tr.collect()
        acts = tr.replay["T1"].recent(prof.collect_steps)["action"]
        assert (acts == 0).all() == (frac == 0.0)
    pearl = replace(prof, context_steps=3,
                    agent=prof.agent.with_(random_context=True))
    tr = Trainer("pearl", pearl, 0, tmp_path / "pearl", 0, resolve_device("cpu"))
    tr.collect()
    for n in tr.names:
        assert len(tr.ctxbuf[n]) == 3 and len(tr.replay[n]) == 3 + prof.collect_steps
    with pytest.raises(ValueError, match="explore_fraction"):
        replace(prof, explore_fraction=1.5)
    with pytest.raises(ValueError, match="context_steps"):
        replace(prof, context_steps=0, agent=prof.agent.with_(random_context=True))


class _Constant(torch.nn.Module):
    """An actor whose logits always prefer joint action 0."""

    def __init__(self, spec: ActionSpec) -> None:
        super().__init__()
        self.spec = spec

    def forward(self, obs: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        n_joint = int(np.prod(self.spec.heads))
        logits = torch.full((obs.shape[0], self.spec.n_users, n_joint), -1e9)
        logits[..., 0] = 0.0
        return logits


def test_twin_samples_add_training_conditions_but_not_slots(tmp_path) -> None:
    """PEARL and SAC_DT meta-train on the DTs plus the twin's samples with the DTs' slots per
    iteration spread over them; validation stays on the six DTs; SAC_AiSF is unaffected."""
    prof = replace(TINY, twin_samples=6)
    tr = Trainer("pearl", prof, 0, tmp_path / "p", 0, resolve_device("cpu"))
    assert tr.names[:6] == DT_NAMES and tr.names[6:] == tuple(f"S{i}" for i in range(1, 7))
    assert tr.val_names == DT_NAMES and set(tr.heldout()) == set(DT_NAMES)
    assert tr.steps["collect_steps"] == math.ceil(prof.collect_steps / 2)
    tr.collect()
    per_condition = (math.ceil(prof.initial_random_steps / 2)
                     + math.ceil(prof.context_steps / 2))  # warm-up and random context slots
    assert sum(len(b) for b in tr.replay.values()) == 12 * per_condition
    assert Trainer("sac_aisf_2", prof, 0, tmp_path / "a", 0,
                    resolve_device("cpu")).names == ("T2",)


def test_compiled_update_follows_the_eager_update_and_is_reproducible() -> None:
    """compiled_update changes only the rounding: from the same weights and samples, a few
    updates of the compiled objectives and the fused AdamW stay within float32 noise of the
    eager ones (K' = 2 conditions with contexts, actor and temperature steps included), and two
    compiled agents of one seed agree bit for bit."""
    env = EdgeCloudEnv(condition="T1", config=SMALL)
    spec = ActionSpec.from_env(env)
    cfg = JOINT.with_(latent_dim=2, latent_per_user=True, encoder_decisions=True,
                  posterior_prior_factor=True, greedy_critic=True)
    slots = _random_slots(env, 40, 0)
    rng = np.random.default_rng(1)
    batches = [slots.sample(16, rng) for _ in range(2)]
    contexts = [slots.sample(6, rng) for _ in range(2)]

    def trained(compiled: bool) -> tuple[DiscreteSACAgent, list[dict[str, float]]]:
        agent = DiscreteSACAgent(spec, cfg.with_(compiled_update=compiled), seed=3)
        diags = [agent.update(batches, contexts, epoch, 2, 2) for epoch in range(1, 7)]
        return agent, diags

    eager, d_eager = trained(False)
    comp, d_comp = trained(True)
    assert "joint_critic_objective" in comp._compiled and not eager._compiled
    assert comp.critic_opt.defaults["fused"] and eager.critic_opt.defaults["foreach"]
    for a, b in zip(d_eager, d_comp, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            assert b[k] == pytest.approx(a[k], rel=1e-4, abs=1e-6), k
    for (name, p), q in zip(eager.state_dict().items(), comp.state_dict().values(), strict=True):
        assert torch.allclose(p.float(), q.float(), rtol=1e-4, atol=1e-5), name
    again, d_again = trained(True)
    assert d_again == d_comp
    assert all(torch.equal(p, q) for p, q in zip(comp.state_dict().values(),
                                                 again.state_dict().values(), strict=True))


def test_compiled_update_needs_the_joint_actor_and_keeps_eager_keys() -> None:
    with pytest.raises(ValueError, match="compiled_update covers the joint-actor update"):
        SACConfig.from_flat(compiled_update=True)
    from ecmeta_lib.cache import run_key as config_hash
    from ecmeta_lib.profiles import get_profile

    quick = get_profile("quick")
    assert quick.agent.optim.compiled_update
    off = replace(quick, agent=quick.agent.with_(compiled_update=False))
    assert config_hash("pearl", quick, 0, 0) != config_hash("pearl", off, 0, 0)
    # off, the field stays out of the key: runs cached before it existed keep their keys
    payload = off.to_dict()
    payload["agent"] = off.agent.flat()  # the key reads the agent flat (as before grouping)
    del payload["agent"]["compiled_update"]
    del payload["agent"]["context_probe"]  # "random", the code before it: out of the key too
    del payload["env"]["conditions"]["source"]  # at its default, out of every key
    del payload["twin_telemetry_slots"]  # likewise (0: exact twins)
    actor_mode = payload.pop("actor_mode_methods")
    assert "pearl" not in actor_mode
    import hashlib
    import json

    from ecmeta_lib.cache import KEY_VERSION as CHECKPOINT_VERSION
    text = json.dumps({"method": "pearl", "profile": payload, "seed": 0, "task_seed": 0,
                       "version": CHECKPOINT_VERSION}, sort_keys=True, default=str)
    assert config_hash("pearl", off, 0, 0) == hashlib.sha256(text.encode()).hexdigest()[:16]


def test_compiled_update_without_a_cpp_compiler_says_so(monkeypatch) -> None:
    """No compiler: a plain error naming the way out, before inductor fails deep inside."""
    import ecmeta_lib.agents.sac as sac_module

    env = EdgeCloudEnv(condition="T1", config=SMALL)
    agent = DiscreteSACAgent(ActionSpec.from_env(env), JOINT.with_(compiled_update=True),
                             seed=0)
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(sac_module.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match=r"no C\+\+ compiler.*compiled_update=False"):
        agent._objective(joint_critic_objective)
    assert not agent._compiled
