"""Agents: the discrete SAC learns a tiny contextual bandit; the PEARL encoder's properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ecmeta_lib.agents import (
    ActionSpec,
    ContextBuffer,
    ContextEncoder,
    DiscreteSACAgent,
    PerUserContextEncoder,
    ReplayBuffer,
    SACConfig,
)
from ecmeta_lib.agents.networks import one_hot_actions
from ecmeta_lib.agents.updates import soft_actor_loss
from ecmeta_lib.config import EnvConfig, SystemConfig
from ecmeta_lib.env import EdgeCloudEnv
from ecmeta_lib.slot import run_slot

SMALL = EnvConfig(system=SystemConfig(n_users=2, n_servers=2, es_gflops=(60.0, 120.0),
                                      es_memory_gb=(24.0, 32.0), es_cores=(10, 16)))


@pytest.fixture(autouse=True)
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def small_env(condition: str = "T1") -> EdgeCloudEnv:
    return EdgeCloudEnv(condition=condition, config=SMALL)


def best_latency(env: EdgeCloudEnv) -> float:
    """Exact optimum of the current slot over all actions. With 2 users the servers' capacities
    (>= 10 cores, >= 24 GB; a model needs <= 2 GB) never bind, so P2 treats users independently
    (it only sends a user to the cloud when that is faster) and each user takes its best of its 27
    actions."""
    per_user = [np.array([m, t, f]) for m in range(3) for t in range(3) for f in range(3)]
    lat = []
    for a in per_user:
        out = run_slot(env.system, env.option_table, np.stack([a, a]))
        lat.append(out.latency)
    return float(np.min(np.stack(lat), axis=0).mean())


def test_sac_learns_tiny_contextual_bandit() -> None:
    env = small_env()
    spec = ActionSpec.from_env(env)
    agent = DiscreteSACAgent(spec, SACConfig.from_flat(hidden=64, n_layers=2, embed_dim=4, lr=3e-3,
                                             temperature_lr=3e-3, target_entropy=0.3,
                                             init_temperature=0.05), seed=0)
    buf = ReplayBuffer(3000, spec.obs_dim, (spec.n_users, 3))
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    for it in range(2500):
        greedy_warm = it < 200
        action = (rng.integers(0, env.action_space.nvec) if greedy_warm
                  else agent.act(obs, greedy=False))
        next_obs, r, _, trunc, _ = env.step(action)
        buf.add(obs, action, r, next_obs)
        obs = env.reset()[0] if trunc else next_obs
        if it >= 200:
            agent.update([buf.sample(64, rng)], None, epoch=1, lambda1=1, lambda2=1)
    # evaluate greedy vs the exact optimum and vs random on the same slots
    lat, opt, rnd = [], [], []
    obs, _ = env.reset(seed=123)
    for _ in range(40):
        opt.append(best_latency(env))
        rnd.append(run_slot(env.system, env.option_table,
                            rng.integers(0, 3, size=(2, 3))).mean_latency)
        obs, r, _, trunc, _ = env.step(agent.act(obs, greedy=True))
        lat.append(-r)
        if trunc:
            obs, _ = env.reset()
    gap = np.mean(lat) / np.mean(opt) - 1
    assert np.mean(lat) - np.mean(opt) < 0.25 * (np.mean(rnd) - np.mean(opt))
    assert gap < 0.10, f"greedy SAC latency {np.mean(lat):.4f} vs optimum {np.mean(opt):.4f}"


def _context(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    env = small_env("G1")
    buf = ContextBuffer(max(n, 1), env.observation_space.shape[0], (2, 3))
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    for _ in range(n):
        a = rng.integers(0, env.action_space.nvec)
        nxt, r, _, _, info = env.step(a)
        buf.add(obs, a, r, nxt, info["latency"])
        obs = nxt
    return buf.recent(n)


def _encoder() -> tuple[ContextEncoder, ActionSpec]:
    spec = ActionSpec.from_env(small_env())
    torch.manual_seed(0)
    return ContextEncoder(spec, latent_dim=3, hidden=16, n_layers=1), spec


def _post(enc: ContextEncoder, c: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    return enc.posterior(torch.as_tensor(c["obs"]), torch.as_tensor(c["action"]),
                         torch.as_tensor(c["reward"]))


def test_encoder_is_permutation_invariant() -> None:
    enc, _ = _encoder()
    c = _context(12)
    perm = np.random.default_rng(1).permutation(12)
    mu1, var1 = _post(enc, c)
    mu2, var2 = _post(enc, {k: v[perm] for k, v in c.items()})
    torch.testing.assert_close(mu1, mu2, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(var1, var2, rtol=1e-5, atol=1e-6)


def test_posterior_narrows_as_context_grows() -> None:
    enc, _ = _encoder()
    c = _context(40)
    prev = torch.ones(3)  # the prior's variance (empty context)
    mu0, var0 = _post(enc, {k: v[:0] for k, v in c.items()})
    assert torch.equal(mu0, torch.zeros(3)) and torch.equal(var0, torch.ones(3))
    for n in (1, 2, 5, 10, 20, 40):
        _, var = _post(enc, {k: v[:n] for k, v in c.items()})
        assert (var < prev).all() if n > 1 else True
        prev = var
    _, var1 = _post(enc, {k: v[:1] for k, v in c.items()})
    assert (prev < var1).all()


def test_prior_factor_posterior_starts_at_prior_and_only_narrows() -> None:
    spec = ActionSpec.from_env(small_env())
    torch.manual_seed(0)
    enc = ContextEncoder(spec, latent_dim=3, hidden=16, n_layers=1, prior_factor=True)
    c = _context(40)
    prev = torch.ones(3)
    for n in (0, 1, 2, 5, 10, 20, 40):
        mu, var = _post(enc, {k: v[:n] for k, v in c.items()})
        assert (var <= prev).all() and (var < 1).all() if n else torch.equal(var, prev)
        prev = var
    # the prior is one more factor: precision = 1 + sum of the plain product's precision
    plain = ContextEncoder(spec, latent_dim=3, hidden=16, n_layers=1)
    plain.load_state_dict(enc.state_dict())
    mu_p, var_p = _post(plain, c)
    mu, var = _post(enc, c)
    torch.testing.assert_close(1.0 / var, 1.0 / var_p + 1.0)
    torch.testing.assert_close(mu / var, mu_p / var_p)


def _pearl_agent(per_user: bool = False) -> tuple[DiscreteSACAgent, list[dict], list[dict]]:
    env = small_env("G1")
    spec = ActionSpec.from_env(env)
    agent = DiscreteSACAgent(spec, SACConfig.from_flat(hidden=16, n_layers=1, latent_dim=3,
                                             encoder_hidden=16, encoder_layers=1,
                                             per_user_reward=per_user, latent_per_user=per_user),
                             seed=0)
    c = _context(16)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 16, size=8)
    batch = {k: v[idx] for k, v in c.items()}
    return agent, [batch], [c]


@pytest.mark.parametrize("per_user", [False, True])
def test_actor_loss_does_not_reach_the_encoder(per_user) -> None:
    agent, batches, contexts = _pearl_agent(per_user)
    obs = torch.as_tensor(batches[0]["obs"])
    mu, var = agent.posterior(contexts[0])
    z = ContextEncoder.sample(mu, var)  # z WITH a graph to the encoder
    z = z.expand(obs.shape[0], *z.shape)
    loss, _ = soft_actor_loss(agent, obs, z)
    loss.backward()
    for p in agent.encoder.parameters():
        assert p.grad is None or torch.count_nonzero(p.grad) == 0
    assert any(p.grad is not None and torch.count_nonzero(p.grad) > 0
               for p in agent.actor.parameters())


@pytest.mark.parametrize("per_user", [False, True])
def test_encoder_learns_only_from_critic_and_kl(per_user) -> None:
    """During a full update (critic, temperature and actor all stepping) exactly one backward pass
    - the critic + KL loss - reaches the encoder."""
    agent, batches, contexts = _pearl_agent(per_user)
    calls = []
    first = next(agent.encoder.parameters())
    first.register_hook(lambda g: calls.append(float(g.abs().sum())))
    before = {k: v.clone() for k, v in agent.encoder.state_dict().items()}
    diag = agent.update(batches, contexts, epoch=1, lambda1=1, lambda2=1)
    assert {"critic_loss", "actor_loss", "temperature_loss", "kl"} <= set(diag)
    assert len(calls) == 1 and calls[0] > 0
    after = agent.encoder.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_kl_term_reaches_encoder_alone() -> None:
    agent, _, contexts = _pearl_agent()
    mu, var = agent.posterior(contexts[0])
    ContextEncoder.kl_to_prior(mu, var).backward()
    assert any(p.grad is not None and torch.count_nonzero(p.grad) > 0
               for p in agent.encoder.parameters())
    assert float(ContextEncoder.kl_to_prior(torch.zeros(3), torch.ones(3))) == 0.0


def test_sampling_explores_and_greedy_is_deterministic() -> None:
    env = small_env()
    agent = DiscreteSACAgent(ActionSpec.from_env(env), SACConfig.from_flat(hidden=8, n_layers=1),
                             seed=0)
    obs, _ = env.reset(seed=0)
    greedy = {tuple(agent.act(obs, greedy=True)) for _ in range(5)}
    sampled = {tuple(agent.act(obs, greedy=False)) for _ in range(30)}
    assert len(greedy) == 1 and len(sampled) > 1
    for a in sampled:
        env.as_user_actions(np.array(a))  # every sample is a valid action


def test_paper_target_entropy_and_fraction() -> None:
    spec = ActionSpec(n_users=80, obs_per_user=10, heads=(3, 5, 3))
    paper = DiscreteSACAgent(spec, SACConfig.from_flat(hidden=4, n_layers=1,
                                                       target_entropy="paper"))
    assert paper.target_entropy == -240.0
    frac = DiscreteSACAgent(spec, SACConfig.from_flat(hidden=4, n_layers=1, target_entropy=0.25))
    assert frac.target_entropy == pytest.approx(0.25 * 80 * np.log(45))


@pytest.mark.parametrize("bad", [dict(arch="cnn"), dict(hidden=0), dict(lr=-1.0),
                                 dict(gamma=1.0), dict(target_entropy=1.5),
                                 dict(target_entropy="max"), dict(tau=0.0), dict(latent_dim=-1)])
def test_sac_config_rejects_bad_values(bad) -> None:
    with pytest.raises(ValueError):
        SACConfig.from_flat(**bad)


def test_replay_buffer_roundtrip_and_wraparound() -> None:
    buf = ReplayBuffer(5, 4, (2, 3))
    for i in range(7):
        buf.add(np.full(4, i / 10), np.full(6, i % 3), -float(i), np.full(4, i / 10))
    assert len(buf) == 5 and buf.recent(2)["reward"].tolist() == [-5.0, -6.0]
    other = ReplayBuffer(5, 4, (2, 3))
    other.load_state_dict(buf.state_dict())
    rng1, rng2 = np.random.default_rng(0), np.random.default_rng(0)
    a, b = buf.sample(10, rng1), other.sample(10, rng2)
    for k, v in a.items():
        np.testing.assert_array_equal(v, b[k])


# --- per-user reward decomposition and per-user latents (ours) -------------------------------
def _per_user_encoder() -> tuple[PerUserContextEncoder, ActionSpec]:
    spec = ActionSpec.from_env(small_env())
    torch.manual_seed(0)
    return PerUserContextEncoder(spec, latent_dim=3, hidden=16, n_layers=1, embed_dim=4), spec


def _post_u(enc, c: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    return enc.posterior(torch.as_tensor(c["obs"]), torch.as_tensor(c["action"]),
                         torch.as_tensor(c["latency"]))


def test_per_user_encoder_shapes_invariance_and_narrowing() -> None:
    enc, spec = _per_user_encoder()
    c = _context(20)
    mu0, var0 = _post_u(enc, {k: v[:0] for k, v in c.items()})
    assert torch.equal(mu0, torch.zeros(2, 3)) and torch.equal(var0, torch.ones(2, 3))
    mu, var = _post_u(enc, c)
    assert mu.shape == var.shape == (spec.n_users, 3)
    perm = np.random.default_rng(1).permutation(20)
    mu2, var2 = _post_u(enc, {k: v[perm] for k, v in c.items()})
    torch.testing.assert_close(mu, mu2, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(var, var2, rtol=1e-5, atol=1e-6)
    _, var5 = _post_u(enc, {k: v[:5] for k, v in c.items()})
    assert (var < var5).all()
    # a user's posterior depends on its own latencies only through its own factors
    c2 = {k: v.copy() for k, v in c.items()}
    c2["latency"][:, 1] *= 3.0
    mu3, _ = _post_u(enc, c2)
    torch.testing.assert_close(mu3[0], mu[0])
    assert not torch.allclose(mu3[1], mu[1])
    kl = PerUserContextEncoder.kl_to_prior(mu, var)
    torch.testing.assert_close(kl, ContextEncoder.kl_to_prior(mu, var).mean())


def test_per_user_agent_z_shape_and_acting() -> None:
    agent, _, contexts = _pearl_agent(per_user=True)
    mu, var = agent.posterior(contexts[0])
    assert mu.shape == var.shape == agent.latent_shape == (2, 3)
    assert agent.posterior(None)[0].shape == (2, 3)
    z = agent.infer_z(contexts[0], sample=True)
    obs, _ = small_env().reset(seed=0)
    a = agent.act(obs, z, greedy=True)
    assert a.shape == (6,)
    # user 0's logits do not depend on user 1's latent beyond the pooled features (none here)
    o = torch.as_tensor(obs).reshape(1, -1)
    z1 = z.clone().unsqueeze(0)
    z2 = z1.clone()
    z2[0, 1] += 1.0
    l1, l2 = agent.actor(o, z1), agent.actor(o, z2)
    torch.testing.assert_close(l1[0, 0], l2[0, 0])
    assert not torch.allclose(l1[0, 1], l2[0, 1])


def test_per_user_reward_critic_targets_each_users_latency() -> None:
    env = small_env()
    spec = ActionSpec.from_env(env)
    cfg = SACConfig.from_flat(hidden=16, n_layers=1, embed_dim=4, per_user_reward=True)
    agent = DiscreteSACAgent(spec, cfg, seed=0)
    batch = _context(16)
    obs = torch.as_tensor(batch["obs"])
    act = one_hot_actions(torch.as_tensor(batch["action"]), spec)
    with torch.no_grad():
        y = -torch.as_tensor(batch["latency"]) * cfg.critic.reward_scale
        want = sum(((c.per_user(obs, act, None) - y) ** 2).mean()
                   for c in (agent.critic1, agent.critic2))
        # the reward is minus the users' mean latency: mean_u y_u is the scaled reward
        torch.testing.assert_close(y.mean(1),
                                   torch.as_tensor(batch["reward"]) * cfg.critic.reward_scale)
    diag = agent.update([batch], None, epoch=1, lambda1=1, lambda2=1)
    assert diag["critic_loss"] == pytest.approx(float(want), rel=1e-5)
    no_lat = {**batch, "latency": np.full_like(batch["latency"], np.nan)}
    with pytest.raises(ValueError, match="per-user latency"):
        agent.update([no_lat], None, epoch=1, lambda1=1, lambda2=1)


def test_per_user_critic_with_discount_runs() -> None:
    agent = DiscreteSACAgent(ActionSpec.from_env(small_env()),
                             SACConfig.from_flat(hidden=8, n_layers=1, embed_dim=4, gamma=0.5,
                                       per_user_reward=True, latent_per_user=True, latent_dim=2,
                                       encoder_hidden=8, encoder_layers=1), seed=0)
    c = _context(8)
    diag = agent.update([c], [c], epoch=1, lambda1=1, lambda2=1)
    assert np.isfinite(diag["critic_loss"]) and np.isfinite(diag["kl"])


@pytest.mark.parametrize("flag", ["per_user_reward", "latent_per_user"])
def test_per_user_options_need_structured_arch(flag) -> None:
    with pytest.raises(ValueError, match="structured"):
        SACConfig.from_flat(arch="flat", **{flag: True})
    with pytest.raises(ValueError, match="bool"):
        SACConfig.from_flat(**{flag: 1})


def test_buffer_keeps_per_user_latency_through_checkpoint() -> None:
    buf = ReplayBuffer(4, 4, (2, 3))
    buf.add(np.zeros(4), np.zeros(6), -0.5, np.zeros(4), np.array([0.2, 0.8]))
    buf.add(np.zeros(4), np.zeros(6), -0.5, np.zeros(4))
    np.testing.assert_array_equal(buf.recent(2)["latency"][0], np.float32([0.2, 0.8]))
    assert np.isnan(buf.recent(2)["latency"][1]).all()
    other = ReplayBuffer(4, 4, (2, 3))
    other.load_state_dict(buf.state_dict())
    np.testing.assert_array_equal(other.recent(2)["latency"], buf.recent(2)["latency"])
