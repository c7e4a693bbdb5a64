"""Profiles: everything a run needs besides its method and seed, by name (``smoke``,
``quick``, ``paper``), and the methods with the conditions each trains on.

Torch-free: reading a profile (tables, tuning, the CLI's checks) imports no PyTorch.

Methods (what each agent trains on; all are evaluated on the unseen test conditions T1-T3):

==============  =========================  ====================================================
method          training conditions        agent
==============  =========================  ====================================================
``pearl``       the six DTs (G1 ... G3)    SAC + context encoder, adapted on each test condition
``sac_dt``      the six DTs                SAC, no encoder
``sac_t_m``     T1, T2, T3 together        SAC, no encoder
``sac_aisf_i``  Ti only                    SAC, no encoder
==============  =========================  ====================================================

The ``paper`` profile keeps Table I and the paper's PEARL (flat 5 x 700 MLPs, a scalar reward,
one global z, (s, a, r, s') contexts, soft Bellman targets). The ``quick`` profile switches on
choices of ours, each a field of `SACConfig` (`ecmeta_lib.agents.config`) or `Profile` with its
reason in that field's docstring; `docs/CHOICES.md` lists them with their evidence. Settings are
chosen on validation data only (``python -m ecmeta_lib tune`` on task seeds >= 100); each choice
is switched off one at a time in ``notebooks/06_ablations`` (``python -m ecmeta_lib ablate``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from .agents.config import (
    ActorConfig,
    CriticConfig,
    EncoderConfig,
    NetworkConfig,
    OptimConfig,
    SACConfig,
)
from .agents.config import target_entropy as _target_entropy
from .conditions import DT_NAMES, TEST_NAMES
from .config import ConditionConfig, EnvConfig

METHODS: tuple[str, ...] = ("pearl", "sac_dt", "sac_t_m", "sac_aisf_1", "sac_aisf_2",
                            "sac_aisf_3")
"""The learned methods, in the order every table, figure and CLI lists them."""
BASELINES: tuple[str, ...] = ("greedy", "identify_greedy", "blind_greedy", "random", "oracle")
"""The deterministic policies scored beside them (`ecmeta_lib.analysis.baselines`), in order."""
METHOD_LABELS: dict[str, str] = {
    "pearl": "PEARL (adapted on Ti)",
    "sac_dt": "SAC_DT",
    "sac_t_m": "SAC_T_M",
    "sac_aisf_1": "SAC_AiSF_1",
    "sac_aisf_2": "SAC_AiSF_2",
    "sac_aisf_3": "SAC_AiSF_3",
    "oracle": "oracle (per-slot MILP)",
    "greedy": "greedy (knows condition)",
    "random": "random",
    "blind_greedy": "blind greedy (never sees the condition)",
    "identify_greedy": "identify-then-greedy",
}
"""Display name of every method and baseline (`label`)."""


def label(method: str) -> str:
    """Display name of a method, heuristic or yardstick (names like ``identify_greedy[20]``
    keep their bracket)."""
    base, _, rest = method.partition("[")
    return METHOD_LABELS.get(method, METHOD_LABELS.get(base, base) + (f" [{rest}" if rest else ""))


def method_rank(method: str) -> int:
    """Sort key of a method or baseline (by base name): the learned methods in `METHODS` order,
    then the `BASELINES`, then anything else."""
    order = {m: i for i, m in enumerate(METHODS + BASELINES)}
    return order.get(method.partition("[")[0], 50)

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
    curve_iterations: tuple[int, ...] = ()
    """Iterations, besides every ``eval_every``-th, at which the learning curve on T1-T3 is
    scored (0: before any update, the untrained policy). Recorded only: validation, early
    stopping and everything random in training are untouched, so a run's weights and final
    scores are the same with or without them."""
    twin_telemetry_slots: int = 0
    """PEARL and SAC_DT: 0 = the six DTs are exact copies of their conditions (the paper's
    assumption); n > 0 = each DT is the twin `policies.identified_twins` synchronises from n
    slots of its own condition's telemetry (IdentifyGreedy's identification; what was never
    observed keeps the DTs' mean), so meta-training sees twins with their identification error
    (`twin_errors.csv` in the run folder). Validation and the critic's held-out error are then
    on those twins too: the operator has nothing else."""
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
        for name in ("initial_random_steps", "eval_context", "context_steps", "twin_samples",
                     "twin_telemetry_slots"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
                raise ValueError(f"profile field {name} must be an integer >= 0, got {v!r}")
        bad = [i for i in self.curve_iterations
               if not isinstance(i, (int, np.integer)) or isinstance(i, bool)
               or not 0 <= i <= self.iterations]
        if bad:
            raise ValueError(f"curve_iterations must be integers in [0, iterations="
                             f"{self.iterations}], got {bad}")
        if self.lambda1 > self.t_train or self.lambda2 > self.t_train:
            raise ValueError(f"lambda1 ({self.lambda1}) and lambda2 ({self.lambda2}) must not "
                             f"exceed t_train ({self.t_train}), or those updates never happen")
        if self.context_size > self.context_capacity:
            raise ValueError("context_size cannot exceed context_capacity")
        if not (isinstance(self.explore_fraction, (int, float))
                and 0.0 <= self.explore_fraction <= 1.0):
            raise ValueError(f"explore_fraction must be in [0, 1], got {self.explore_fraction!r}")
        if self.agent.encoder.random_context and self.context_steps < 1:
            raise ValueError("agent.random_context needs context_steps >= 1 (random slots that "
                             "fill the context buffer)")
        if self.agent.encoder.latent_dim < 1:
            raise ValueError("profile.agent.encoder.latent_dim is PEARL's latent size and must "
                             "be >= 1")
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
            cfg = cfg.with_(latent_dim=0, user_embedding=True, random_context=False,
                            context_probe="random", adaptation_probe=None)
        if method in self.actor_mode_methods:
            cfg = cfg.with_(greedy_critic=False)
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", description="seconds: CI tests and notebooks under CI",
        agent=SACConfig(
            net=NetworkConfig(arch="structured", hidden=32, n_layers=1, embed_dim=4,
                              pooled=False, tau_zscore=True),
            critic=CriticConfig(per_user_reward=True, log_latency_critic=True),
            actor=ActorConfig(joint_actor=True, greedy_critic=True, init_temperature=0.05,
                              target_entropy=0.3),
            encoder=EncoderConfig(latent_dim=2, latent_per_user=True, encoder_hidden=32,
                                  encoder_layers=1, posterior_prior_factor=True,
                                  encoder_decisions=True, random_context=True,
                                  adaptation_probe="round_robin_first"),
            optim=OptimConfig(lr=3e-3, critic_lr=1e-2, temperature_lr=3e-3, lr_cosine=True)),
        iterations=10, collect_steps=10, initial_random_steps=10, t_train=6, k_prime=2,
        lambda1=1, lambda2=1, batch_size=32, buffer_capacity=200, context_size=8,
        context_capacity=40, eval_every=5, eval_slots=4, val_slots=4, eval_context=4,
        final_slots=4, checkpoint_every=2, context_size_sampling=True, heldout_slots=4,
        explore_fraction=0.5, context_steps=4, twin_samples=2,
        actor_mode_methods=("sac_dt", "sac_t_m"), curve_iterations=(0, 1)),
    "quick": Profile(
        name="quick", description="make reproduce default (run times: see the README)",
        agent=SACConfig(
            net=NetworkConfig(arch="structured", hidden=96, n_layers=2, embed_dim=16,
                              user_embedding=False, pooled=False, log_inputs=True,
                              tau_zscore=True),
            critic=CriticConfig(per_user_reward=True, log_latency_critic=True,
                                twin_critics=False, tau=0.02),
            actor=ActorConfig(joint_actor=True, greedy_critic=True, init_temperature=0.05,
                              target_entropy=0.3),
            encoder=EncoderConfig(latent_dim=8, latent_per_user=True, encoder_hidden=64,
                                  encoder_layers=2, kl_weight=1e-4, posterior_prior_factor=True,
                                  encoder_decisions=True, random_context=True,
                                  adaptation_probe="round_robin_first"),
            optim=OptimConfig(lr=3e-3, critic_lr=1e-2, temperature_lr=3e-3, lr_cosine=True,
                              compiled_update=True)),
        iterations=100, collect_steps=40, initial_random_steps=40, t_train=80, k_prime=2,
        lambda1=4, lambda2=4, batch_size=32, buffer_capacity=4000, context_size=32,
        context_capacity=200, eval_every=10, eval_slots=20, val_slots=20, eval_context=20,
        final_slots=100, checkpoint_every=25, context_size_sampling=False,
        explore_fraction=0.5, context_steps=10, twin_samples=24,
        actor_mode_methods=("sac_dt", "sac_t_m"), curve_iterations=(0, 1, 2, 3, 5, 7)),
    "paper": Profile(
        name="paper", description="Table I: AdamW 3e-5, batch 256, 5 x 700, lambda 10/40, "
                                  "T_train 40, beta 0.1, K' 2",
        agent=SACConfig(
            net=NetworkConfig(arch="flat", hidden=700, n_layers=5),
            encoder=EncoderConfig(latent_dim=8, encoder_hidden=200, encoder_layers=3,
                                  kl_weight=0.1),
            optim=OptimConfig(lr=3e-5, temperature_lr=3e-5)),
        iterations=2000, collect_steps=20, initial_random_steps=200, t_train=40, k_prime=2,
        lambda1=10, lambda2=40, batch_size=256, buffer_capacity=40_000, context_size=64,
        context_capacity=400, eval_every=50, eval_slots=50, val_slots=50, eval_context=20,
        final_slots=200, checkpoint_every=50),
}
PROFILES["catalogue"] = replace(
    PROFILES["quick"], name="catalogue",
    description="the quick profile on conditions from published models (ecmeta_lib.catalogue)",
    env=EnvConfig(conditions=ConditionConfig(source="catalogue")), curve_iterations=())
"""The quick profile's learners and budget on catalogue conditions: twins from the twin
families, T1-T3 from held-out ones (`docs/MODEL.md` §3.1); its runs have keys of their own.
No Fig. 3 is drawn for it, so it scores no extra curve points (they change nothing else, and
its SAC baselines keep their runs)."""


PROFILES["paper_8k"] = replace(
    PROFILES["paper"], name="paper_8k", iterations=200,
    description="Table I as specified at the quick profile's budget: 200 iterations x T_train "
                "40 = 8,000 gradient steps")
"""The paper's settings (Table I, the paper's PEARL) trained for the quick profile's 8,000
gradient steps instead of the paper's 80,000, so that a reader sees what Table I as specified
does here at the budget every quick result has (~35 min a run on one core)."""


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


def target_entropy(profile: str | Profile) -> float:
    """The entropy the temperature of `profile`'s agents steers towards (nats, summed over users
    and heads), from the one definition the agent uses (`agents.config.target_entropy`)."""
    prof = get_profile(profile)
    sys_cfg = prof.env.system
    heads = (sys_cfg.n_methods, sys_cfg.n_servers + 1, sys_cfg.n_models)
    return _target_entropy(prof.agent, sys_cfg.n_users, heads)
