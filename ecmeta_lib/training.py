"""Meta-training (PEARL, Algorithm 1) and the SAC baselines, with resumable runs and profiles.

Methods (what each agent trains on, all evaluated on the unseen test conditions T1-T3):

==============  =========================  ====================================================
method          training conditions        agent
==============  =========================  ====================================================
``pearl``       the six DTs (G1 ... G3)    SAC + context encoder, adapted on each test condition
``sac_dt``      the six DTs                SAC, no encoder
``sac_t_m``     T1, T2, T3 together        SAC, no encoder
``sac_aisf_i``  Ti only                    SAC, no encoder
==============  =========================  ====================================================

Every method follows Algorithm 1's loop (`_Trainer`, one method per step of the algorithm): per
iteration, collect ``collect_steps`` slots in every training condition (lines 2-5, a fresh
episode each iteration), draw K' conditions once (line 6), then ``t_train`` epochs on them
(lines 7-19). Fairness: every method runs the same number of iterations and epochs (hence the
same gradient steps) and sees the same samples per gradient step: K' x ``batch_size`` slots (a
single-condition method draws all of them from its one condition). Env steps on the curves count
all slots the agent collected, summed over its training conditions.

Early stopping (no test leakage): every ``eval_every`` iterations the greedy policy is scored on
the agent's *own* training conditions (validation seed, PEARL adapted with ``eval_context``
transitions on each DT); the best-scoring weights are kept and used for ``final.csv``. The
learning curve on T1-T3 (``curve.csv``) is recorded at the same points but never used to select.

Adaptation protocol (`PEARLPolicy`, `adaptation_curve`): on a condition, the meta-policy collects
``n`` context transitions in a *separate* environment (seeded by ``context_seed``; z re-inferred
as a posterior draw after each transition, actions sampled - PEARL's posterior sampling), then
freezes z at the posterior mean of those ``n`` transitions and acts greedily for the evaluation.
``n = 0`` is the prior mean z = 0. No gradient step is taken; the encoder is frozen. The
evaluation environment's slot stream is untouched, so every n (and every method) is scored on the
very same slots (common random numbers).

Design choices (ours)
---------------------
The ``paper`` profile keeps Table I and the paper's PEARL (flat 5 x 700 MLPs, a scalar reward, one
global z, (s, a, r, s') contexts, soft Bellman targets). The ``quick`` profile switches on choices
of ours, each a field of `SACConfig` or `Profile` with its reason in that field's docstring: the
structured per-user networks, the per-user reward (each user's critic value regresses that user's
latency), gamma = 0 (slots are i.i.d. and independent of the action, so the greedy action does not
depend on gamma and the critic becomes a regressor with fixed targets), a joint categorical actor
per user, a log-latency critic on log-scaled inputs with the accuracy requirement read as its
z-score (``tau_zscore``), one critic instead of twins, a larger learning rate for the critic and
encoder than for the actor (``critic_lr``), a cosine learning-rate decay, a target entropy of 30 %
of the maximum, per-user latents whose encoder reads the executed decisions and the log latency,
the prior as a posterior factor, a small KL weight (1e-4, chosen on validation against 1e-2, 1e-3
and 1e-5: with the log-latency critic's small loss, beta = 0.1 collapses z to the prior),
random exploration of every option while collecting (``explore_fraction``), PEARL contexts
collected with uniformly random actions (``random_context``), meta-training on twin samples
besides the six DTs (``twin_samples``) and acting on the critic's per-user argmin instead of the
actor's mode (``greedy_critic``; SAC_DT and SAC_T_M keep their actor's mode,
``actor_mode_methods``, a per-method setting chosen on their own validation runs: their critics
cannot tell conditions apart). Context sizes sampled from 1..N
(``context_size_sampling``) are switched off: validation preferred full contexts.

Evidence: settings are chosen on validation data only, with ``python -m ecmeta_lib tune`` on task
seeds >= 100 (never on T1-T3 of a reported task seed); its CSVs are in ``docs/tuning/``. Each
choice is switched off one at a time, with seeds, on a held-out task seed in
``notebooks/06_ablations`` (``python -m ecmeta_lib ablate``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .agents import (
    ActionSpec,
    ContextBuffer,
    DiscreteSACAgent,
    NonFiniteLossError,
    ReplayBuffer,
    SACConfig,
)
from .checkpoints import DATACLASSES, UnsafeCheckpointError, safe_load, safe_save
from .conditions import (
    DT_NAMES,
    TEST_NAMES,
    Condition,
    TaskSet,
    make_task_set,
    twin_sample_names,
    with_twin_samples,
)
from .config import EnvConfig
from .env import EdgeCloudEnv
from .evaluation import evaluate
from .policies import CONTEXT_SEED  # one context seed for PEARL and the yardsticks

METHODS: tuple[str, ...] = ("pearl", "sac_dt", "sac_t_m", "sac_aisf_1", "sac_aisf_2",
                            "sac_aisf_3")
CHECKPOINT = "checkpoint.pt"
BEST_AGENT = "agent.pt"
CHECKPOINT_VERSION = 3
CURVE_SEED = 1_000
"""Slot-state seed of every learning-curve evaluation on T1-T3 (common to all methods)."""
VALIDATION_SEED = 2_000
"""Slot-state seed of the validation on the agent's own training conditions."""
FINAL_SEED = 3_000
"""Slot-state seed of final.csv (and the default of `adaptation_curve`)."""
HELDOUT_SEED = 5_000
"""Slot-state and action seed of the random-action slots the critic's error is measured on."""

__all__ = ["METHODS", "PROFILES", "CheckpointError", "NonFiniteLossError", "PEARLPolicy",
           "AgentPolicy", "Profile", "TrainResult", "adaptation_curve", "get_profile",
           "load_agent", "train", "training_conditions"]


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or belongs to another method/profile/config."""


# ============================================================================================
# profiles
# ============================================================================================
def _pos_int(name: str, v: Any) -> None:
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
        raise ValueError(f"profile field {name} must be a positive integer, got {v!r}")


@dataclass(frozen=True)
class Profile:
    """Everything a run needs besides method and seed. ``agent.latent_dim`` is PEARL's; the SAC
    baselines use the same agent config with ``latent_dim = 0``."""

    name: str
    agent: SACConfig
    """Networks, optimiser and losses."""
    iterations: int
    """Outer iterations of Algorithm 1 (line 1)."""
    collect_steps: int
    """Slots collected per training condition per iteration (lines 2-5)."""
    initial_random_steps: int
    """Slots of uniform random actions per training condition before learning starts."""
    t_train: int
    """Update epochs per iteration, T_train (paper: 40)."""
    k_prime: int
    """Conditions sampled per epoch, |K'| (paper: 2); capped by the number of training ones."""
    lambda1: int
    """Temperature update every lambda1 epochs (paper: 10)."""
    lambda2: int
    """Actor update and target soft update every lambda2 epochs (paper: 40)."""
    batch_size: int
    """Transitions per condition per epoch (paper: 256)."""
    buffer_capacity: int
    """Replay capacity per training condition."""
    context_size: int
    """Transitions in one training context c^k."""
    context_capacity: int
    """Most recent transitions per condition that contexts are drawn from."""
    eval_every: int
    """Iterations between learning-curve / validation points (the last iteration always is one)."""
    eval_slots: int
    """Slots per test condition of a learning-curve point."""
    val_slots: int
    """Slots per training condition of a validation (early-stopping) point."""
    eval_context: int
    """Context transitions PEARL collects on a condition before a curve/validation/final score."""
    final_slots: int
    """Slots per test condition of final.csv (with the oracle)."""
    checkpoint_every: int
    """Iterations between checkpoints (the last iteration always is one)."""
    context_size_sampling: bool = False
    """PEARL (ours): each training context holds U{1..context_size} transitions instead of
    context_size, so the few-transition posteriors of adaptation are in distribution. Off in
    the quick profile: always-32 contexts did better on validation task seeds 102 and 103
    (`docs/tuning/context_size_sampling.csv`); the smoke profile keeps it on to test the path."""
    explore_fraction: float = 0.0
    """Every method (ours): while collecting, each user's action is replaced by a uniformly random
    one with this probability, so the per-user critic (a regressor under gamma = 0) keeps seeing
    every option, not only those its actor already prefers; 0 = SAC's own sampling only."""
    context_steps: int = 0
    """PEARL with ``agent.random_context``: slots of uniformly random actions per training
    condition per iteration that fill the context buffer (and the replay buffer)."""
    twin_samples: int = 0
    """PEARL and SAC_DT (ours): meta-train on the six DTs plus this many conditions the twin
    draws from its prior over conditions (`conditions.with_twin_samples`, domain randomisation);
    the slots collected per iteration stay those of the six DTs, spread over all conditions.
    Validation and the critic's held-out error stay on the six DTs. 0 = the DTs only (paper)."""
    actor_mode_methods: tuple[str, ...] = ()
    """Methods whose greedy policy takes the actor's mode although ``agent.greedy_critic`` is on
    (a per-method setting, chosen for each listed method by ``python -m ecmeta_lib tune`` on
    validation task seeds). Training is unchanged; only acting greedily (validation, early
    stopping, final scores) is. It enters `config_hash` only for the listed methods, so listing
    one leaves every other run's key and cache as they were."""
    heldout_slots: int = 20
    """Random-action slots per training condition on which the critic's per-user latency error
    (``critic_rmse_s``) is measured; never trained on."""
    env: EnvConfig = field(default_factory=EnvConfig)
    """Environment config (the paper's system unless a test shrinks it)."""
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.agent, SACConfig):
            raise TypeError(f"profile.agent must be a SACConfig, got {type(self.agent).__name__}")
        if not isinstance(self.env, EnvConfig):
            raise TypeError(f"profile.env must be an EnvConfig, got {type(self.env).__name__}")
        for name in ("iterations", "collect_steps", "t_train", "k_prime", "lambda1", "lambda2",
                     "batch_size", "buffer_capacity", "context_size", "context_capacity",
                     "eval_every", "eval_slots", "val_slots", "final_slots", "checkpoint_every",
                     "heldout_slots"):
            _pos_int(name, getattr(self, name))
        for name in ("initial_random_steps", "eval_context", "context_steps", "twin_samples"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
                raise ValueError(f"profile field {name} must be an integer >= 0, got {v!r}")
        if self.lambda1 > self.t_train or self.lambda2 > self.t_train:
            raise ValueError(f"lambda1 ({self.lambda1}) and lambda2 ({self.lambda2}) must not "
                             f"exceed t_train ({self.t_train}), or those updates never happen")
        if self.context_size > self.context_capacity:
            raise ValueError("context_size cannot exceed context_capacity")
        if not (isinstance(self.explore_fraction, (int, float))
                and 0.0 <= self.explore_fraction <= 1.0):
            raise ValueError(f"explore_fraction must be in [0, 1], got {self.explore_fraction!r}")
        if self.agent.random_context and self.context_steps < 1:
            raise ValueError("agent.random_context needs context_steps >= 1 (random slots that "
                             "fill the context buffer)")
        if self.agent.latent_dim < 1:
            raise ValueError("profile.agent.latent_dim is PEARL's latent size and must be >= 1")
        if not isinstance(self.actor_mode_methods, tuple) or any(
                m not in METHODS for m in self.actor_mode_methods):
            raise ValueError(f"actor_mode_methods must be a tuple of methods out of {METHODS}, "
                             f"got {self.actor_mode_methods!r}")

    def agent_config(self, method: str) -> SACConfig:
        """The agent config of `method`: the SAC baselines have no encoder, hence no z_u, so
        their learned per-user embedding is their only way to tell users apart (kept on); a
        method of ``actor_mode_methods`` acts on its actor's mode."""
        cfg = self.agent
        if method != "pearl":
            cfg = replace(cfg, latent_dim=0, user_embedding=True, random_context=False)
        if method in self.actor_mode_methods:
            cfg = replace(cfg, greedy_critic=False)
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", description="seconds: CI tests and notebooks under CI",
        agent=SACConfig(arch="structured", hidden=32, n_layers=1, embed_dim=4, latent_dim=2,
                        encoder_hidden=32, encoder_layers=1, lr=3e-3, critic_lr=1e-2,
                        temperature_lr=3e-3,
                        target_entropy=0.3, init_temperature=0.05, per_user_reward=True,
                        latent_per_user=True, posterior_prior_factor=True, pooled=False,
                        joint_actor=True, log_latency_critic=True, lr_cosine=True,
                        encoder_decisions=True, random_context=True, tau_zscore=True,
                        greedy_critic=True),
        iterations=10, collect_steps=10, initial_random_steps=10, t_train=6, k_prime=2,
        lambda1=1, lambda2=1, batch_size=32, buffer_capacity=200, context_size=8,
        context_capacity=40, eval_every=5, eval_slots=4, val_slots=4, eval_context=4,
        final_slots=4, checkpoint_every=2, context_size_sampling=True, heldout_slots=4,
        explore_fraction=0.5, context_steps=4, twin_samples=2,
        actor_mode_methods=("sac_dt", "sac_t_m")),
    "quick": Profile(
        name="quick", description="make reproduce default (run times: see the README)",
        agent=SACConfig(arch="structured", hidden=96, n_layers=2, embed_dim=16, latent_dim=8,
                        encoder_hidden=64, encoder_layers=2, lr=3e-3, critic_lr=1e-2,
                        temperature_lr=3e-3,
                        tau=0.02, target_entropy=0.3, init_temperature=0.05, kl_weight=1e-4,
                        per_user_reward=True, latent_per_user=True,
                        posterior_prior_factor=True, pooled=False, joint_actor=True,
                        log_latency_critic=True, lr_cosine=True, encoder_decisions=True,
                        twin_critics=False, log_inputs=True, user_embedding=False,
                        random_context=True, tau_zscore=True, greedy_critic=True,
                        compiled_update=True),
        iterations=100, collect_steps=40, initial_random_steps=40, t_train=80, k_prime=2,
        lambda1=4, lambda2=4, batch_size=32, buffer_capacity=4000, context_size=32,
        context_capacity=200, eval_every=10, eval_slots=20, val_slots=20, eval_context=20,
        final_slots=100, checkpoint_every=25, context_size_sampling=False,
        explore_fraction=0.5, context_steps=10, twin_samples=24,
        actor_mode_methods=("sac_dt", "sac_t_m")),
    "paper": Profile(
        name="paper", description="Table I: AdamW 3e-5, batch 256, 5 x 700, lambda 10/40, "
                                  "T_train 40, beta 0.1, K' 2",
        agent=SACConfig(arch="flat", hidden=700, n_layers=5, latent_dim=8, encoder_hidden=200,
                        encoder_layers=3, lr=3e-5, temperature_lr=3e-5, kl_weight=0.1),
        iterations=2000, collect_steps=20, initial_random_steps=200, t_train=40, k_prime=2,
        lambda1=10, lambda2=40, batch_size=256, buffer_capacity=40_000, context_size=64,
        context_capacity=400, eval_every=50, eval_slots=50, val_slots=50, eval_context=20,
        final_slots=200, checkpoint_every=50),
}


def get_profile(name: str | Profile) -> Profile:
    """A profile by name ("smoke", "quick", "paper"), or a `Profile` passed through."""
    if isinstance(name, Profile):
        return name
    try:
        return PROFILES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}") from None


def training_conditions(method: str) -> tuple[str, ...]:
    """Names of the conditions `method` trains (and validates) on."""
    if method in ("pearl", "sac_dt"):
        return DT_NAMES
    if method == "sac_t_m":
        return TEST_NAMES
    if method.startswith("sac_aisf_") and method[len("sac_aisf_"):] in ("1", "2", "3"):
        return (TEST_NAMES[int(method[-1]) - 1],)
    raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# ============================================================================================
# policies wrapping an agent (the evaluation harness's Policy protocol)
# ============================================================================================
class AgentPolicy:
    """Greedy (argmax) policy of a trained agent with a fixed z (None for the SAC baselines)."""

    def __init__(self, agent: DiscreteSACAgent, name: str = "agent",
                 z: torch.Tensor | None = None) -> None:
        self.agent, self.name, self.z = agent, name, z

    def reset(self, env: Any) -> None:
        pass

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.agent.act(obs, self.z, greedy=True)

    def observe(self, obs, action, reward, next_obs, info) -> None:
        pass


def collect_context(agent: DiscreteSACAgent, env: EdgeCloudEnv, n: int,
                    seed: int) -> dict[str, np.ndarray]:
    """Run the meta-policy for ``n`` slots on ``env`` (reset with `seed`): before each slot z is
    drawn from the posterior of the transitions so far (the prior at first) and the action is
    sampled from pi(s, z), or (``random_context``) uniformly random; returns the ``n``
    transitions as a context."""
    if agent.cfg.random_context and n > 0:  # ours: an exploration policy shows every option
        return random_slots(env, n, seed)
    buf = ContextBuffer(max(n, 1), env.observation_space.shape[0],
                        (agent.spec.n_users, len(agent.spec.heads)))
    if n == 0:
        return buf.recent(0)
    gen_state = agent.generator.get_state()
    agent.generator.manual_seed(int(seed))
    obs, _ = env.reset(seed=int(seed))
    for _ in range(n):
        z = agent.infer_z(buf.recent(n), sample=True)
        action = agent.act(obs, z, greedy=False)
        next_obs, reward, _, truncated, info = env.step(action)
        buf.add(obs, action, reward, next_obs, info["latency"], decisions_of(info))
        obs = env.reset()[0] if truncated else next_obs
    agent.generator.set_state(gen_state)  # adaptation does not disturb the agent's training RNG
    return buf.recent(n)


class PEARLPolicy:
    """PEARL adapted on the evaluated condition with a fixed context of ``n_context`` transitions.

    ``reset(env)`` collects the context in a separate copy of ``env``'s condition (seeded with
    ``context_seed``, so the evaluated slots are untouched) and freezes z at the posterior mean;
    ``act`` is greedy. With ``online=True`` the policy instead starts from the prior and, for the
    first ``n_context`` evaluated slots, adds each observed transition to its context and
    re-infers z (posterior mean) - adaptation while acting.
    """

    def __init__(self, agent: DiscreteSACAgent, n_context: int, *, context_seed: int = CONTEXT_SEED,
                 online: bool = False, name: str | None = None) -> None:
        if agent.encoder is None:
            raise ValueError("PEARLPolicy needs an agent with a context encoder")
        if n_context < 0:
            raise ValueError(f"n_context must be >= 0, got {n_context}")
        self.agent, self.n_context, self.context_seed, self.online = (agent, int(n_context),
                                                                      int(context_seed), online)
        self.name = name or f"pearl[{n_context}]"
        self.z: torch.Tensor | None = None
        self._online_buf: ContextBuffer | None = None

    def reset(self, env: Any) -> None:
        base: EdgeCloudEnv = env.unwrapped
        if self.online:
            spec = self.agent.spec
            self._online_buf = ContextBuffer(max(self.n_context, 1), spec.obs_dim,
                                             (spec.n_users, len(spec.heads)))
            self.z = self.agent.infer_z(None, sample=False)
            return
        ctx_env = EdgeCloudEnv(condition=base.condition, task_set=base.task_set,
                               config=base.config)
        self.context = collect_context(self.agent, ctx_env, self.n_context, self.context_seed)
        self.z = self.agent.infer_z(self.context, sample=False)

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.agent.act(obs, self.z, greedy=True)

    def observe(self, obs, action, reward, next_obs, info) -> None:
        buf = self._online_buf
        if self.online and buf is not None and buf.size < self.n_context:
            buf.add(obs, action, reward, next_obs, info["latency"], decisions_of(info))
            self.z = self.agent.infer_z(buf.recent(buf.size), sample=False)


def make_policy(agent: DiscreteSACAgent, method: str, n_context: int) -> AgentPolicy | PEARLPolicy:
    if agent.encoder is not None:
        return PEARLPolicy(agent, n_context, name=method)
    return AgentPolicy(agent, name=method)


# ============================================================================================
# checkpoints
# ============================================================================================
def config_hash(method: str, profile: Profile, seed: int, task_seed: int) -> str:
    """The run's key: its method, profile, seeds and the checkpoint version. A per-method field
    enters only the keys of the methods it changes (adding it keeps every other run's cache)."""
    prof = profile.to_dict()
    if not prof["agent"]["compiled_update"]:
        # off, the update is the eager code that ran before the field existed, bit for bit:
        # such runs keep their keys (and caches)
        del prof["agent"]["compiled_update"]
    actor_mode = prof.pop("actor_mode_methods")
    payload = {"method": method, "profile": prof, "seed": seed, "task_seed": task_seed,
               "version": CHECKPOINT_VERSION}
    if method in actor_mode:
        payload["actor_mode"] = True
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def atomic_save(obj: Any, path: Path) -> None:
    """Write `obj` (a dict) as a safe checkpoint (`ecmeta_lib.checkpoints`: numpy arrays and
    dataclasses become tagged plain values) to a temporary file, then os.replace (atomic)."""
    safe_save(obj, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint, turning any unreadable file into a clear `CheckpointError`."""
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:  # weights_only: opening a (shared) results folder never runs code
        state = safe_load(path, (*DATACLASSES, Profile))
    except UnsafeCheckpointError as exc:
        raise CheckpointError(f"checkpoint {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable: {exc}") from exc
    if not isinstance(state, dict) or "config_hash" not in state:
        raise CheckpointError(f"checkpoint {path} is corrupt: missing its config header")
    return state


def _check_header(state: dict[str, Any], path: Path, method: str, profile: Profile,
                  seed: int, task_seed: int) -> None:
    want = {"method": method, "profile": profile.name, "seed": seed, "task_seed": task_seed,
            "config_hash": config_hash(method, profile, seed, task_seed)}
    for key, value in want.items():
        if state.get(key) != value:
            raise CheckpointError(
                f"checkpoint {path} belongs to another run: {key} is {state.get(key)!r}, this "
                f"run has {value!r}; use a fresh run_dir or delete the checkpoint")


# ============================================================================================
# training
# ============================================================================================
@dataclass
class TrainResult:
    """What `train` returns (the CSVs are also on disk in ``run_dir``)."""

    method: str
    seed: int
    run_dir: Path
    agent: DiscreteSACAgent
    """The best agent (by validation on its own training conditions)."""
    curve: pd.DataFrame
    train_log: pd.DataFrame
    final: pd.DataFrame
    best_iteration: int
    wall_s: float
    """Wall time of this call (a resumed run: the resumed part only)."""
    resumed_from: int
    """Iteration the run resumed from (0 = fresh start)."""


def _score(agent: DiscreteSACAgent, method: str, conditions: Sequence[str], task_set: TaskSet,
           profile: Profile, n_slots: int, seed: int, with_oracle: bool = False) -> list[dict]:
    out = []
    for name in conditions:
        pol = make_policy(agent, method, profile.eval_context)
        out.append(evaluate(pol, name, n_slots=n_slots, seed=seed, task_set=task_set,
                            config=profile.env, with_oracle=with_oracle).summary)
    return out


def decisions_of(info: dict[str, Any]) -> np.ndarray:
    """The executed (post-repair) decisions of a slot, (U, 3): DS, placement, model."""
    return np.stack([info["ds"], info["placement"], info["model"]], axis=-1)


def random_slots(env: EdgeCloudEnv, n: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` slots of uniformly random actions on ``env`` (reset with `seed`, actions seeded by
    it), as a context dict: the held-out data on which the critic's per-user latency error is
    measured, and PEARL's contexts under ``random_context``."""
    spec = ActionSpec.from_env(env)
    buf = ContextBuffer(n, spec.obs_dim, (spec.n_users, len(spec.heads)))
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    for _ in range(n):
        action = rng.integers(0, env.action_space.nvec).astype(np.int64)
        next_obs, reward, _, truncated, info = env.step(action)
        buf.add(obs, action, reward, next_obs, info["latency"], decisions_of(info))
        obs = env.reset()[0] if truncated else next_obs
    return buf.recent(n)


def critic_error(agent: DiscreteSACAgent, data: dict[str, np.ndarray],
                 n_context: int = 0) -> float:
    """RMS error (s) of the critics' per-user latency on the slots of `data` (PEARL: z is the
    posterior mean of the first ``n_context`` slots, scored on the rest); NaN without a per-user
    critic."""
    if not agent.cfg.per_user_reward:
        return float("nan")
    ctx = {k: v[:n_context] for k, v in data.items()}
    test = {k: v[n_context:] for k, v in data.items()}
    with torch.no_grad():
        z = agent.infer_z(ctx, sample=False)
        zz = None if z is None else z.unsqueeze(0).expand(len(test["reward"]), *z.shape)
        pred = agent.predicted_latency(agent._t(test["obs"]),
                                       agent._t(test["action"], torch.int64), zz)
    return float(np.sqrt(np.mean((pred.cpu().numpy() - test["latency"]) ** 2)))


class _Trainer:
    """One run of Algorithm 1, in the steps a reader can match to the paper:

    ``collect`` (lines 2-5: data in every training condition), ``sample_tasks`` (line 6: K'
    conditions, once per iteration), ``train_epochs`` (lines 7-19: T_train epochs of critic,
    encoder, temperature and actor updates), plus ``evaluate`` (learning curve, validation for
    early stopping, the critic's held-out error), ``save``/``restore`` (atomic, bit-exact resume)
    and ``finish`` (best agent, final.csv). `train` drives it."""

    def __init__(self, method: str, profile: Profile, seed: int, run_dir: Path, task_seed: int,
                 device: torch.device) -> None:
        self.method, self.profile, self.seed, self.run_dir = method, profile, seed, run_dir
        self.task_seed = task_seed
        # validation and the held-out critic error use `val_names`; training may add twin samples
        self.val_names = training_conditions(method)
        self.task_set = make_task_set(task_seed, profile.env.system, profile.env.conditions)
        self.names = self.val_names
        if profile.twin_samples and self.val_names == DT_NAMES:
            self.task_set = with_twin_samples(self.task_set, profile.twin_samples,
                                              profile.env.conditions)
            self.names = DT_NAMES + twin_sample_names(profile.twin_samples)
        # the same slots per iteration as on the six DTs, spread over all training conditions
        share = len(self.val_names) / len(self.names)
        self.steps = {k: math.ceil(getattr(profile, k) * share)
                      for k in ("collect_steps", "initial_random_steps", "context_steps")}
        # everything random derives from `seed`
        ss_agent, ss_train, ss_env = np.random.SeedSequence(seed).spawn(3)
        self.envs = {n: EdgeCloudEnv(condition=n, task_set=self.task_set, config=profile.env)
                     for n in self.names}
        for env, ss in zip(self.envs.values(), ss_env.spawn(len(self.names)), strict=True):
            env.reset(seed=int(ss.generate_state(1)[0]))
        self.spec = ActionSpec.from_env(next(iter(self.envs.values())))
        self.acfg = profile.agent_config(method)
        self.agent = DiscreteSACAgent(self.spec, self.acfg,
                                      seed=int(ss_agent.generate_state(1)[0]), device=device)
        self.agent.set_lr_horizon(profile.iterations * profile.t_train)
        self.rng = np.random.default_rng(ss_train)
        random.seed(seed)
        torch.manual_seed(seed)
        shape = (self.spec.n_users, len(self.spec.heads))
        self.replay = {n: ReplayBuffer(profile.buffer_capacity, self.spec.obs_dim, shape)
                       for n in self.names}
        self.ctxbuf = {n: ContextBuffer(profile.context_capacity, self.spec.obs_dim, shape)
                       for n in self.names}
        # K' of Algorithm 1; single-condition methods draw their one condition with K' times
        # the batch, so every method gets the same samples per gradient step
        self.k_prime = min(profile.k_prime, len(self.names))
        self.batch = profile.batch_size * profile.k_prime // self.k_prime
        self.iteration, self.env_steps = 0, 0
        self.best: dict[str, Any] = {"score": float("inf"), "iteration": 0, "state": None}
        self.curve_rows: list[dict] = []
        self.log_rows: list[dict] = []
        self._heldout: dict[str, dict[str, np.ndarray]] | None = None
        self.header = {"method": method, "profile": profile.name, "seed": seed,
                       "task_seed": task_seed,
                       "config_hash": config_hash(method, profile, seed, task_seed),
                       "version": CHECKPOINT_VERSION}

    # --- Algorithm 1 ----------------------------------------------------------------------
    def collect(self) -> None:
        """Lines 2-5: a fresh episode in every training condition; PEARL acts on z drawn from
        the posterior of a context of that condition (the prior before it has any data). With
        ``random_context`` PEARL's context buffer is filled by separate random-action slots."""
        p, agent = self.profile, self.agent
        random_ctx = agent.encoder is not None and agent.cfg.random_context
        for n in self.names:
            warm = len(self.replay[n]) < self.steps["initial_random_steps"]
            if random_ctx:
                self._episode(n, self.steps["context_steps"], None, explore=1.0,
                              to_context=True)
            z = None
            if agent.encoder is not None:
                ctx = (self.ctxbuf[n].sample_context(p.context_size, self.rng)
                       if len(self.ctxbuf[n]) else None)
                z = agent.infer_z(ctx, sample=True)
            if warm:
                self._episode(n, self.steps["initial_random_steps"], z, explore=1.0,
                              to_context=not random_ctx)
            else:
                self._episode(n, self.steps["collect_steps"], z, explore=p.explore_fraction,
                              to_context=not random_ctx)

    def _episode(self, name: str, n_steps: int, z: torch.Tensor | None, *, explore: float,
                 to_context: bool) -> None:
        """``n_steps`` slots on condition `name` into its replay (and context) buffer: the
        agent's sampled actions, each user's replaced by a uniformly random one with probability
        `explore` (1 = all random)."""
        env = self.envs[name]
        nvec = env.action_space.nvec.reshape(self.spec.n_users, -1)
        bufs = (self.replay[name], self.ctxbuf[name]) if to_context else (self.replay[name],)
        obs, _ = env.reset()
        for _ in range(n_steps):
            if explore >= 1.0:
                action = self.rng.integers(0, nvec).astype(np.int64).ravel()
            else:
                action = self.agent.act(obs, z, greedy=False).reshape(nvec.shape)
                if explore > 0.0:
                    swap = self.rng.random(self.spec.n_users) < explore
                    action[swap] = self.rng.integers(0, nvec[swap]).astype(np.int64)
                action = action.ravel()
            next_obs, reward, _, truncated, info = env.step(action)
            for buf in bufs:
                buf.add(obs, action, reward, next_obs, info["latency"], decisions_of(info))
            obs = env.reset()[0] if truncated else next_obs
        self.env_steps += n_steps

    def sample_tasks(self) -> list[str]:
        """Line 6: the K' conditions of this iteration's epochs."""
        idx = self.rng.choice(len(self.names), size=self.k_prime, replace=False)
        return [self.names[i] for i in idx]

    def _context_size(self) -> int:
        p = self.profile
        if p.context_size_sampling:  # ours: the small contexts of adaptation are in distribution
            return int(self.rng.integers(1, p.context_size + 1))
        return p.context_size

    def train_epochs(self, chosen: Sequence[str]) -> dict[str, float]:
        """Lines 7-19: T_train epochs, each on a fresh batch (and context) of every chosen
        condition; returns the epochs' mean diagnostics."""
        p, agent, diags = self.profile, self.agent, []
        for epoch in range(1, p.t_train + 1):
            batches = [self.replay[n].sample(self.batch, self.rng) for n in chosen]
            contexts = None
            if agent.encoder is not None:
                contexts = [self.ctxbuf[n].sample_context(self._context_size(), self.rng)
                            for n in chosen]
            try:
                diags.append(agent.update(batches, contexts, epoch, p.lambda1, p.lambda2))
            except NonFiniteLossError as exc:
                raise NonFiniteLossError(
                    f"{self.method} seed {self.seed}, iteration {self.iteration}, epoch {epoch}: "
                    f"{exc}; the last good checkpoint ({self.run_dir / CHECKPOINT}) is kept"
                ) from exc
        return pd.DataFrame(diags).mean(numeric_only=True).to_dict()

    # --- evaluation ----------------------------------------------------------------------
    def heldout(self) -> dict[str, dict[str, np.ndarray]]:
        """Random-action slots per training condition that training never sees (its own seed)."""
        if self._heldout is None:
            p = self.profile
            n = p.heldout_slots + (p.eval_context if self.agent.encoder is not None else 0)
            self._heldout = {
                name: random_slots(EdgeCloudEnv(condition=name, task_set=self.task_set,
                                                 config=p.env), n, HELDOUT_SEED)
                for name in self.val_names}
        return self._heldout

    def critic_rmse(self) -> float:
        """The critic's per-user latency RMS error (s) on the held-out slots of the training
        conditions (PEARL: z from the first ``eval_context`` of them)."""
        n_ctx = self.profile.eval_context if self.agent.encoder is not None else 0
        errs = [critic_error(self.agent, d, n_ctx) ** 2 for d in self.heldout().values()]
        return float(np.sqrt(np.mean(errs)))

    def evaluate(self) -> None:
        """The learning curve on T1-T3 (recorded only) and the validation on the agent's own
        training conditions (selects the best weights: no test leakage)."""
        p, it = self.profile, self.iteration
        for s in _score(self.agent, self.method, TEST_NAMES, self.task_set, p, p.eval_slots,
                        CURVE_SEED):
            self.curve_rows.append({"method": self.method, "seed": self.seed,
                                    "env_steps": self.env_steps, "iteration": it,
                                    "condition": s["condition"],
                                    "mean_latency_s": s["mean_latency_s"],
                                    "cloud_share": s["cloud_share"],
                                    "accuracy_violation_rate": s["accuracy_violation_rate"]})
        val = _score(self.agent, self.method, self.val_names, self.task_set, p, p.val_slots,
                     VALIDATION_SEED)
        score = float(np.mean([s["mean_latency_s"] for s in val]))
        self.log_rows[-1]["validation_latency_s"] = score
        self.log_rows[-1]["critic_rmse_s"] = self.critic_rmse()
        if score < self.best["score"]:
            self.best = {"score": score, "iteration": it,
                         "state": {k: v.detach().cpu().clone()
                                   for k, v in self.agent.state_dict().items()}}

    # --- persistence ---------------------------------------------------------------------
    def save(self) -> None:
        atomic_save({**self.header, "iteration": self.iteration, "env_steps": self.env_steps,
                     "agent": self.agent.full_state(),
                     "replay": {n: b.state_dict() for n, b in self.replay.items()},
                     "context": {n: b.state_dict() for n, b in self.ctxbuf.items()},
                     "env_rng": {n: e.np_random.bit_generator.state
                                 for n, e in self.envs.items()},
                     "rng": self.rng.bit_generator.state, "python_rng": random.getstate(),
                     "torch_rng": torch.get_rng_state(), "best": self.best,
                     "curve": self.curve_rows, "train_log": self.log_rows},
                    self.run_dir / CHECKPOINT)

    def restore(self) -> None:
        """Resume from ``run_dir/checkpoint.pt`` if it exists (refusing another run's)."""
        path = self.run_dir / CHECKPOINT
        if not path.exists():
            return
        state = load_checkpoint(path)
        _check_header(state, path, self.method, self.profile, self.seed, self.task_seed)
        try:
            self.agent.load_full_state(state["agent"])
            for n in self.names:
                self.replay[n].load_state_dict(state["replay"][n])
                self.ctxbuf[n].load_state_dict(state["context"][n])
                self.envs[n].np_random.bit_generator.state = state["env_rng"][n]
            self.rng.bit_generator.state = state["rng"]
            random.setstate(state["python_rng"])
            torch.set_rng_state(state["torch_rng"])
        except (KeyError, ValueError, RuntimeError, TypeError) as exc:
            raise CheckpointError(f"checkpoint {path} does not fit this run: {exc}") from exc
        self.iteration, self.env_steps = state["iteration"], state["env_steps"]
        self.best, self.curve_rows = state["best"], state["curve"]
        self.log_rows = state["train_log"]

    def write_csvs(self) -> None:
        pd.DataFrame(self.curve_rows, columns=CURVE_COLUMNS).to_csv(self.run_dir / "curve.csv",
                                                                    index=False)
        pd.DataFrame(self.log_rows).to_csv(self.run_dir / "train_log.csv", index=False)

    def finish(self) -> pd.DataFrame:
        """Best agent -> agent.pt; its greedy policy on T1-T3 with the oracle -> final.csv."""
        agent = self.agent
        if self.best["state"] is not None:
            agent.load_state_dict(self.best["state"])
        atomic_save({"method": self.method, "seed": self.seed, "task_seed": self.task_seed,
                     "spec": self.spec, "agent_config": self.acfg, "profile": self.profile,
                     "best_iteration": self.best["iteration"],
                     "model": {k: v.detach().cpu() for k, v in agent.state_dict().items()}},
                    self.run_dir / BEST_AGENT)
        rmse = self.critic_rmse()
        rows = [{**s, "method": self.method, "seed": self.seed,
                 "best_iteration": self.best["iteration"], "env_steps": self.env_steps,
                 "critic_rmse_s": rmse}
                for s in _score(agent, self.method, TEST_NAMES, self.task_set, self.profile,
                                self.profile.final_slots, FINAL_SEED, with_oracle=True)]
        final = pd.DataFrame(rows)
        final.to_csv(self.run_dir / "final.csv", index=False)
        self.write_csvs()
        return final


def train(method: str, profile: str | Profile, seed: int, run_dir: str | os.PathLike, *,
          task_seed: int = 0, device: str = "auto", progress: bool = True,
          num_threads: int | None = 1,
          hook: Callable[[int, DiscreteSACAgent], None] | None = None) -> TrainResult:
    """Train `method` under `profile` with `seed`; resumable from ``run_dir/checkpoint.pt``.

    Args:
        method: one of `METHODS`.
        profile: a profile name or a `Profile`.
        seed: training seed (networks, exploration, buffer sampling, collection env streams).
        run_dir: folder of the run (created); an existing checkpoint of the same run is resumed,
            one of another run is refused (`CheckpointError`).
        task_seed: seed of the task set (system, DTs, test conditions).
        device: "auto" (CUDA when available), "cpu", "cuda", ...
        progress: show a tqdm progress bar.
        num_threads: torch CPU threads for this process (None: leave as is).
        hook: called as ``hook(iteration, agent)`` after each iteration (after its checkpoint);
            tests use it to interrupt a run. Not part of the run's identity.
    Writes ``curve.csv``, ``train_log.csv`` (per iteration: losses, temperature, entropy, KL;
    at evaluation points the validation latency and the critic's held-out per-user latency
    RMS error ``critic_rmse_s``), ``final.csv``, ``agent.pt`` (best agent) and
    ``checkpoint.pt`` in `run_dir`. Raises `NonFiniteLossError` on a NaN/inf loss (the last good
    checkpoint stays on disk).
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    profile = get_profile(profile)
    training_conditions(method)  # refuses an unknown method before any work
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    run = _Trainer(method, profile, int(seed), run_dir, int(task_seed), resolve_device(device))
    run.restore()
    start_iter = run.iteration
    bar = tqdm(total=profile.iterations, initial=start_iter, desc=f"{method} s{seed}",
               disable=not progress, leave=False)
    try:
        for it in range(start_iter + 1, profile.iterations + 1):
            run.iteration = it
            run.collect()
            diag = run.train_epochs(run.sample_tasks())
            run.log_rows.append({"iteration": it, "env_steps": run.env_steps, **diag})
            if it % profile.eval_every == 0 or it == profile.iterations:
                run.evaluate()
                run.write_csvs()
                bar.set_postfix(val=f"{run.log_rows[-1]['validation_latency_s']:.4f}",
                                best=f"{run.best['score']:.4f}")
            if it % profile.checkpoint_every == 0 or it == profile.iterations:
                run.save()
            bar.update(1)
            if hook is not None:
                hook(it, run.agent)
    finally:
        bar.close()
    final = run.finish()
    return TrainResult(method=method, seed=int(seed), run_dir=run_dir, agent=run.agent,
                       curve=pd.DataFrame(run.curve_rows, columns=CURVE_COLUMNS),
                       train_log=pd.DataFrame(run.log_rows), final=final,
                       best_iteration=run.best["iteration"], wall_s=time.perf_counter() - t0,
                       resumed_from=start_iter)


CURVE_COLUMNS = ["method", "seed", "env_steps", "iteration", "condition", "mean_latency_s",
                 "cloud_share", "accuracy_violation_rate"]


def load_agent(run_dir: str | os.PathLike, *, device: str = "cpu") -> DiscreteSACAgent:
    """The best agent a finished run saved in ``run_dir/agent.pt`` (its ``method`` and the run's
    ``profile`` attached)."""
    path = Path(run_dir) / BEST_AGENT
    if not path.is_file():
        raise CheckpointError(f"no trained agent at {path} (has the run finished?)")
    try:
        state = safe_load(path, (*DATACLASSES, Profile))
    except UnsafeCheckpointError as exc:
        raise CheckpointError(f"agent file {exc}") from exc
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"agent file {path} is corrupt or unreadable: {exc}") from exc
    try:
        agent = DiscreteSACAgent(state["spec"], state["agent_config"],
                                 device=resolve_device(device))
        agent.load_state_dict(state["model"])
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"agent file {path} is corrupt or unreadable: {exc}") from exc
    agent.method = state["method"]  # type: ignore[attr-defined]
    agent.profile = state.get("profile")  # type: ignore[attr-defined]  # the run's own system
    return agent


def adaptation_curve(agent: DiscreteSACAgent, condition: str | Condition, *,
                     n_context: Sequence[int] = (0, 1, 2, 5, 10, 20, 50), eval_slots: int = 50,
                     seed: int = FINAL_SEED, task_set: TaskSet | None = None, task_seed: int = 0,
                     config: EnvConfig | None = None, context_seed: int = CONTEXT_SEED,
                     with_oracle: bool = False) -> pd.DataFrame:
    """PEARL's latency on `condition` against the number of context transitions (no gradient step).

    For each n in `n_context`: a `PEARLPolicy` collects n transitions on the condition in a
    separate environment (``context_seed``), freezes z at the posterior mean, and is evaluated
    greedily by the harness for `eval_slots` slots from `seed` (same slots for every n).
    Returns columns: condition, n_context, mean_latency_s, ci_low_s, ci_high_s,
    oracle_latency_s, gap_to_oracle_pct (NaN without the oracle), accuracy_violation_rate.
    """
    if agent.encoder is None:
        raise ValueError("adaptation_curve needs a PEARL agent (one with a context encoder)")
    cfg = config or EnvConfig()
    if task_set is None:
        task_set = make_task_set(task_seed, cfg.system, cfg.conditions)
    rows = []
    for n in n_context:
        s = evaluate(PEARLPolicy(agent, int(n), context_seed=context_seed), condition,
                     n_slots=eval_slots, seed=seed, task_set=task_set, config=config,
                     with_oracle=with_oracle).summary
        rows.append({"condition": s["condition"], "n_context": int(n),
                     **{k: s[k] for k in ("mean_latency_s", "ci_low_s", "ci_high_s",
                                          "oracle_latency_s", "gap_to_oracle_pct",
                                          "accuracy_violation_rate")}})
    return pd.DataFrame(rows)
