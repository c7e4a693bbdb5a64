"""The agent's configuration: five groups of hyper-parameters and every rule that ties them.

Torch-free, so a profile can be read (``ecmeta_lib.profiles``) without importing PyTorch.

``SACConfig`` holds five frozen groups, each a documented dataclass:

==========  ==================================================================================
group       holds
==========  ==================================================================================
``net``     the actor's and critics' architecture and how they read the observation
``critic``  what the critic regresses (per-user, log latency), twins, discount, target rate
``actor``   the actor's form (joint per user), acting on the critic, the temperature
``encoder`` PEARL's context encoder q(z|c) and what its contexts hold
``optim``   learning rates, their schedule, weight decay, clipping, compilation
==========  ==================================================================================

Paper values (Table I) are noted in the fields' docstrings; the rest are ours. Every field has a
unique name across the groups, so a flat name (``"hidden"``, ``"kl_weight"``) addresses one field:
`SACConfig.flat` gives the flat dict (the run key hashes exactly it, so grouping kept every
cached run's key), `SACConfig.from_flat` builds a config from flat names, and `SACConfig.with_`
replaces fields by flat name.

Compatibility rules live in `RULES`, in one place: `SACConfig.__post_init__` checks them (a
clear error names the rule), and `SACConfig.switch` applies an override and then turns off
whatever the rules no longer allow (`couplings`), which is how an ablation switches one choice
off without re-encoding the rules.

Which update runs follows from the config (`SACConfig.update_rule`): the paper's soft-Bellman
discrete SAC (``"soft_bellman"``, `ecmeta_lib.agents.updates.soft_bellman_update`) or ours, the
per-user myopic joint update (``"myopic_joint"``, `ecmeta_lib.agents.updates.myopic_joint_update`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any


@dataclass(frozen=True)
class NetworkConfig:
    """Actor and critic networks."""

    arch: str = "structured"
    """'flat' (paper: MLP over the flat vectors) or 'structured' (ours: per-user shared network)."""
    hidden: int = 128
    """Hidden width (paper: 700)."""
    n_layers: int = 2
    """Hidden layers of actor and critics (paper: 5)."""
    embed_dim: int = 16
    """Learned per-user embedding width ('structured' only)."""
    user_embedding: bool = True
    """'structured': the networks (actor, critics and the per-user encoder) read a learned
    per-user embedding; off (ours, PEARL): users are told apart by their inputs and z_u alone,
    so everything user- and condition-specific must come from the context through z_u rather
    than be memorised per user for the six twins (only three independent draws per user)."""
    pooled: bool = True
    """'structured': feed the mean over users of (features, actions) to every user's networks;
    off (ours): each user's networks read only that user's inputs (P2 coupling is ~1e-4)."""
    log_inputs: bool = False
    """'structured': read bandwidth, distance, task and result size on a log scale (ours)."""
    tau_zscore: bool = False
    """'structured': read the accuracy requirement as its z-score (tau - mean) / std instead of
    tau / 100 (ours; see `InputScaling`)."""


@dataclass(frozen=True)
class CriticConfig:
    """What the critic learns."""

    per_user_reward: bool = False
    """Regress each user's critic value on that user's own latency (ours; 'structured' only)."""
    log_latency_critic: bool = False
    """Each per-user critic output regresses the log of the user's latency (ours): latency is a
    product of ratios, nearly additive in log space; q_u = -reward_scale * exp(output). Needs
    ``per_user_reward`` and ``gamma=0`` (the targets are then fixed, the critic a regressor)."""
    twin_critics: bool = True
    """Two critics and their minimum (SAC's guard against bootstrapped overestimation); off
    (ours, ``joint_actor`` only): with gamma = 0 nothing is bootstrapped, so one critic
    regresses the same latencies at half the cost."""
    gamma: float = 0.0
    """Discount (the paper gives none). Slots are i.i.d. and action-independent: myopic optimum."""
    tau: float = 0.01
    """Soft target update rate (ours)."""
    reward_scale: float = 10.0
    """Rewards (minus mean latency in s) are multiplied by this before learning (ours)."""


@dataclass(frozen=True)
class ActorConfig:
    """The actor, how the agent acts greedily, and the temperature."""

    joint_actor: bool = False
    """'structured': one categorical per user over its joint (DS, TA, MS) actions instead of three
    independent heads (ours); needs ``per_user_reward`` and ``gamma=0``. With ``pooled`` the
    critics' load features come from the sampled slot's actions."""
    greedy_critic: bool = False
    """Acting greedily (evaluation, adaptation, validation), each user takes the joint action of
    least latency under its critic instead of the actor's mode (ours; ``joint_actor`` only).
    Under gamma = 0 the actor is an amortised argmin of the critic that lags it (updated every
    lambda2 epochs at a smaller rate); the argmin over the 45 values of one critic pass is exact
    and cheaper. Exploration while collecting still samples the actor. Needs ``pooled=False``."""
    init_temperature: float = 1e-3
    """Initial xi (ours)."""
    target_entropy: float | str = 0.2
    """Fraction of the maximum entropy sum_u sum_heads log|W| (ours), or 'paper' (-3|U|)."""


CONTEXT_PROBES = ("random", "round_robin", "round_robin_first")
"""The exploration policies of PEARL's context slots (`EncoderConfig.context_probe`)."""


@dataclass(frozen=True)
class EncoderConfig:
    """PEARL's context encoder q_phi(z|c); ``latent_dim = 0`` means none (plain SAC)."""

    latent_dim: int = 0
    """Dimension of z; 0 = no encoder (plain SAC). (ours: 8 for PEARL)"""
    latent_per_user: bool = False
    """PEARL: one latent z_u in R^latent_dim per user from a shared per-user encoder (ours;
    'structured' only); off: one global z (paper)."""
    encoder_hidden: int = 128
    """Hidden width of the per-transition encoder MLP."""
    encoder_layers: int = 2
    """Hidden layers of the per-transition encoder MLP."""
    encoder_next_obs: bool = False
    """Feed s' to the encoder (paper: yes); off since slots are i.i.d. (ours)."""
    kl_weight: float = 0.1
    """beta of eq. (29) (paper: 0.1)."""
    posterior_prior_factor: bool = False
    """PEARL: multiply the prior N(0, I) into the product of per-transition factors, so the
    posterior starts at the prior and narrows monotonically (ours); off: PEARL's plain product."""
    encoder_decisions: bool = False
    """PEARL per-user encoder reads the executed (DS, placement, model) and the log latency
    instead of the requested action (ours; see `PerUserContextEncoder`)."""
    random_context: bool = False
    """PEARL: context transitions (the encoder's training contexts and the n slots of adaptation)
    are collected with uniformly random actions, an exploration policy (ours); off: posterior
    sampling, whose contexts show mostly the options the policy already prefers."""
    context_probe: str = "random"
    """PEARL with ``random_context``: the exploration policy of the context slots, in meta-training
    and in adaptation alike - "random" (uniform actions), "round_robin" (IdentifyGreedy's
    informative order, `policies.context_action`: every (user, model) within |F| slots) or
    "round_robin_first" (its first block of |F| slots, then uniform; `rollout.probe_action`).
    Ours. Both round-robins made meta-training worse on validation (`docs/tuning/
    context_probe.csv`): "random" is the quick profile's."""
    adaptation_probe: str | None = None
    """PEARL with ``random_context``: the probe of the n adaptation slots alone (None: the
    ``context_probe`` of meta-training). Ours: "round_robin_first" in the quick profile - its
    first |F| slots show every user each model once, so one transition already helps (chosen
    on validation task seed 100, `docs/tuning/adaptation_probe.csv`)."""


@dataclass(frozen=True)
class OptimConfig:
    """Optimisers, their schedule and how the update is executed."""

    lr: float = 3e-4
    """AdamW learning rate of the actor, and of the critics and encoder unless ``critic_lr`` is
    set (paper: 3e-5)."""
    critic_lr: float | None = None
    """AdamW learning rate of the critics and the encoder; None = ``lr`` (paper: one rate).
    Ours: under gamma = 0 the critic is a regressor with fixed targets and tolerates a larger
    step than the actor, which follows it."""
    temperature_lr: float = 3e-4
    """AdamW learning rate of log xi (ours; the paper gives one learning rate)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    grad_clip: float = 0.0
    """Max gradient norm per optimiser step; 0 = off."""
    lr_cosine: bool = False
    """Cosine-decay the learning rates of actor, critics and encoder over the run's updates to
    ``lr * lr_final_factor`` (ours); the trainer sets the horizon (`set_lr_horizon`)."""
    lr_final_factor: float = 0.05
    """Final fraction of ``lr`` under ``lr_cosine``."""
    compiled_update: bool = False
    """Speed (ours; ``joint_actor`` only): the update's two objectives (encoder + critic loss;
    actor loss) run through ``torch.compile`` and AdamW takes its fused kernel. The same
    algorithm on the same samples: only the rounding differs from eager PyTorch, so runs are
    reproducible but not bit-identical to ``compiled_update=False``. A process's first update
    compiles (~30 s on 2 cores; inductor caches the result on disk for later processes)."""


GROUPS: dict[str, type] = {"net": NetworkConfig, "critic": CriticConfig, "actor": ActorConfig,
                           "encoder": EncoderConfig, "optim": OptimConfig}
"""The groups of `SACConfig`, by attribute name."""
FIELD_GROUP: dict[str, str] = {f.name: g for g, cls in GROUPS.items() for f in fields(cls)}
"""Flat field name -> its group (names are unique across groups)."""
assert len(FIELD_GROUP) == sum(len(fields(c)) for c in GROUPS.values()), "duplicate field name"


@dataclass(frozen=True)
class Rule:
    """A compatibility rule: when ``when(flat)`` holds, ``needs(flat)`` must hold too.

    ``off``: the flat field (and its value) that `couplings` sets to restore the rule when an
    override breaks it - the dependent choice goes, never the override itself."""

    text: str
    when: Callable[[dict[str, Any]], bool]
    needs: Callable[[dict[str, Any]], bool]
    off: tuple[str, Any]


def _on(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda c: bool(c[name])


_STRUCTURED_ONLY = ("per_user_reward", "latent_per_user", "joint_actor", "log_latency_critic",
                    "log_inputs", "tau_zscore")

RULES: tuple[Rule, ...] = (
    *(Rule(f"{n} needs arch='structured' (per-user networks)", _on(n),
           lambda c: c["arch"] == "structured", (n, False)) for n in _STRUCTURED_ONLY),
    Rule("joint_actor needs gamma=0 and per_user_reward=True", _on("joint_actor"),
         lambda c: c["gamma"] == 0 and c["per_user_reward"], ("joint_actor", False)),
    Rule("log_latency_critic needs per_user_reward=True and gamma=0", _on("log_latency_critic"),
         lambda c: c["per_user_reward"] and c["gamma"] == 0, ("log_latency_critic", False)),
    Rule("greedy_critic needs joint_actor=True and pooled=False (per-user critics of every "
         "joint action that read no other user's action)", _on("greedy_critic"),
         lambda c: c["joint_actor"] and not c["pooled"], ("greedy_critic", False)),
    Rule("compiled_update covers the joint-actor update (joint_actor=True); the paper's flat "
         "networks spend their update in matrix products anyway", _on("compiled_update"),
         _on("joint_actor"), ("compiled_update", False)),
    Rule("twin_critics=False needs joint_actor=True (gamma = 0 updates)",
         lambda c: not c["twin_critics"], _on("joint_actor"), ("twin_critics", True)),
    Rule("random_context needs a context encoder (latent_dim >= 1)", _on("random_context"),
         lambda c: c["latent_dim"] >= 1, ("random_context", False)),
    Rule("context_probe other than 'random' needs random_context=True (it is that policy's "
         "order)", lambda c: c["context_probe"] != "random", _on("random_context"),
         ("context_probe", "random")),
    Rule("adaptation_probe needs random_context=True (it is that policy's order)",
         lambda c: c["adaptation_probe"] is not None, _on("random_context"),
         ("adaptation_probe", None)),
    Rule("encoder_decisions needs latent_per_user=True (per-user encoder)",
         _on("encoder_decisions"), _on("latent_per_user"), ("encoder_decisions", False)),
)


def couplings(flat: dict[str, Any]) -> dict[str, Any]:
    """The fields a config (flat dict) must change for every rule to hold: each broken rule turns
    its dependent choice off, until none is broken. Empty for a valid config."""
    c, out = dict(flat), {}
    for _ in range(len(RULES) + 1):
        broken = [r for r in RULES if r.when(c) and not r.needs(c)]
        if not broken:
            return out
        for r in broken:
            name, value = r.off
            c[name] = out[name] = value
    raise ValueError("the compatibility rules do not settle (a cycle in RULES)")


def _check(flat: dict[str, Any]) -> None:
    """Every field's type and range, then every rule, with an error that names the field."""
    for name in ("hidden", "n_layers", "encoder_hidden", "encoder_layers", "embed_dim"):
        v = flat[name]
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if flat["context_probe"] not in CONTEXT_PROBES:
        raise ValueError(f"context_probe must be one of {CONTEXT_PROBES}, "
                         f"got {flat['context_probe']!r}")
    if flat["adaptation_probe"] not in (None, *CONTEXT_PROBES):
        raise ValueError(f"adaptation_probe must be None or one of {CONTEXT_PROBES}, "
                         f"got {flat['adaptation_probe']!r}")
    if flat["arch"] not in ("flat", "structured"):
        raise ValueError(f"arch must be 'flat' or 'structured', got {flat['arch']!r}")
    v = flat["latent_dim"]
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise ValueError(f"latent_dim must be an integer >= 0, got {v!r}")
    for name in ("lr", "temperature_lr", "init_temperature", "reward_scale"):
        v = flat[name]
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive finite number, got {v!r}")
    for name in ("weight_decay", "kl_weight", "grad_clip"):
        v = flat[name]
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    for name, group in FIELD_GROUP.items():
        default = next(f.default for f in fields(GROUPS[group]) if f.name == name)
        if isinstance(default, bool) and not isinstance(flat[name], bool):
            raise ValueError(f"{name} must be a bool, got {flat[name]!r}")
    if not 0.0 <= flat["gamma"] < 1.0:
        raise ValueError(f"gamma must be in [0, 1), got {flat['gamma']!r}")
    c = flat["critic_lr"]
    if c is not None and not (isinstance(c, (int, float)) and not isinstance(c, bool)
                              and math.isfinite(c) and c > 0):
        raise ValueError(f"critic_lr must be None or a positive finite number, got {c!r}")
    if not 0.0 < flat["lr_final_factor"] <= 1.0:
        raise ValueError(f"lr_final_factor must be in (0, 1], got {flat['lr_final_factor']!r}")
    if not 0.0 < flat["tau"] <= 1.0:
        raise ValueError(f"tau must be in (0, 1], got {flat['tau']!r}")
    te = flat["target_entropy"]
    ok = te == "paper" if isinstance(te, str) else (
        isinstance(te, (int, float)) and 0.0 < te < 1.0)
    if not ok:
        raise ValueError(f"target_entropy must be a fraction in (0, 1) or 'paper', got {te!r}")
    for rule in RULES:
        if rule.when(flat) and not rule.needs(flat):
            raise ValueError(rule.text)


@dataclass(frozen=True)
class SACConfig:
    """Hyper-parameters of the agent, in five groups (see the module docstring)."""

    net: NetworkConfig = field(default_factory=NetworkConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)
    actor: ActorConfig = field(default_factory=ActorConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self) -> None:
        for name, cls in GROUPS.items():
            if not isinstance(getattr(self, name), cls):
                raise TypeError(f"SACConfig.{name} must be a {cls.__name__}, got "
                                f"{type(getattr(self, name)).__name__}")
        _check(self.flat())

    @classmethod
    def from_flat(cls, **flat: Any) -> SACConfig:
        """A config from flat field names (``SACConfig.from_flat(hidden=96, kl_weight=1e-4)``);
        the others keep their defaults. Unknown names are refused."""
        unknown = sorted(set(flat) - set(FIELD_GROUP))
        if unknown:
            raise ValueError(f"unknown agent field(s) {unknown}; valid: {sorted(FIELD_GROUP)}")
        groups = {g: GROUPS[g](**{k: v for k, v in flat.items() if FIELD_GROUP[k] == g})
                  for g in GROUPS}
        return cls(**groups)

    def flat(self) -> dict[str, Any]:
        """Every field by its flat name (what the run key hashes)."""
        return {k: v for g in GROUPS for k, v in asdict(getattr(self, g)).items()}

    def with_(self, **flat: Any) -> SACConfig:
        """A copy with fields replaced by flat name, validated (no couplings applied)."""
        unknown = sorted(set(flat) - set(FIELD_GROUP))
        if unknown:
            raise ValueError(f"unknown agent field(s) {unknown}; valid: {sorted(FIELD_GROUP)}")
        groups = {g: replace(getattr(self, g), **{k: v for k, v in flat.items()
                                                   if FIELD_GROUP[k] == g}) for g in GROUPS}
        return replace(self, **groups)

    def switch(self, **flat: Any) -> SACConfig:
        """`with_` the overrides, then every dependent choice the rules no longer allow turned
        off (`couplings`): an ablation names its switch, the rules supply the rest."""
        unknown = sorted(set(flat) - set(FIELD_GROUP))
        if unknown:
            raise ValueError(f"unknown agent field(s) {unknown}; valid: {sorted(FIELD_GROUP)}")
        merged = {**self.flat(), **flat}
        return self.with_(**flat, **couplings(merged))

    @property
    def update_rule(self) -> str:
        """Which update trains this agent: ``"myopic_joint"`` (ours: per-user, gamma = 0, joint
        actor) or ``"soft_bellman"`` (the paper's discrete SAC)."""
        return "myopic_joint" if self.actor.joint_actor else "soft_bellman"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def uniform_entropy(n_users: int, heads: Sequence[int]) -> float:
    """Entropy (nats) of the uniform policy over `n_users` users, each choosing one option of
    every head (sizes `heads`, in action order (|M|, |H|+1, |F|)), summed over users and heads."""
    return float(n_users * sum(math.log(h) for h in heads))


def target_entropy(cfg: SACConfig, n_users: int, heads: Sequence[int]) -> float:
    """The one definition of the entropy the temperature steers towards (nats, summed over users
    and heads): ``cfg.actor.target_entropy`` times `uniform_entropy`, or the paper's -3|U|
    (``"paper"``). The agent (`DiscreteSACAgent.target_entropy`) and the figures
    (`ecmeta_lib.profiles.target_entropy`) both call it."""
    te = cfg.actor.target_entropy
    if te == "paper":
        return -3.0 * n_users
    return float(te) * uniform_entropy(n_users, heads)
