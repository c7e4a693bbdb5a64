"""ecmeta: adaptive edge-AI service management with digital twins and PEARL meta-RL."""

from __future__ import annotations

import gymnasium as gym

from .conditions import (
    CONDITION_NAMES,
    DT_NAMES,
    TEST_NAMES,
    Condition,
    TaskSet,
    make_task_set,
    upgrade_condition,
)
from .config import ConditionConfig, EnvConfig, SystemConfig
from .env import ENV_ID, EdgeCloudEnv
from .evaluation import EvalResult, Policy, compare, evaluate
from .knapsack import solve_p2
from .lifecycle import LIFECYCLE_ENV_ID, EdgeCloudLifecycleEnv, ScenarioConfig, make_scenario

# The function `oracle` rebinds the attribute `ecmeta_lib.oracle` (public contract: the call is
# `ecmeta_lib.oracle(...)`); the module stays importable as `from ecmeta_lib.oracle import ...`.
from .oracle import OracleResult, oracle
from .policies import (
    BlindGreedyPolicy,
    GreedyPolicy,
    IdentifyGreedyPolicy,
    LocalPolicy,
    NearestPolicy,
    RandomPolicy,
)
from .slot import OptionTable, SlotOutcome, option_table, run_slot
from .stats import bootstrap_ci
from .system import System, UserState

__version__ = "0.1.0"

if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point="ecmeta_lib.env:EdgeCloudEnv")
if LIFECYCLE_ENV_ID not in gym.registry:
    gym.register(id=LIFECYCLE_ENV_ID, entry_point="ecmeta_lib.lifecycle:EdgeCloudLifecycleEnv")

# Profiles are torch-free; training and the learned policies pull in torch, so they load only
# when one of their names is asked for.
_LAZY_NAMES = {"METHODS": "profiles", "PROFILES": "profiles", "Profile": "profiles",
               "get_profile": "profiles", "adaptation_curve": "agent_policies",
               "load_agent": "checkpoints", "train": "training"}
_TRAINING_NAMES = tuple(_LAZY_NAMES)


def __getattr__(name: str):
    if name in _LAZY_NAMES:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY_NAMES[name]}", __name__), name)
    raise AttributeError(f"module 'ecmeta_lib' has no attribute {name!r}")


__all__ = [*_TRAINING_NAMES,
    "CONDITION_NAMES", "DT_NAMES", "TEST_NAMES", "ENV_ID", "Condition", "ConditionConfig",
    "EdgeCloudEnv", "EnvConfig", "OptionTable", "SlotOutcome", "System", "SystemConfig",
    "TaskSet", "UserState", "make_task_set", "option_table", "run_slot", "solve_p2",
    "upgrade_condition",
    "BlindGreedyPolicy", "EvalResult", "GreedyPolicy", "IdentifyGreedyPolicy", "LocalPolicy",
    "NearestPolicy", "OracleResult", "Policy", "RandomPolicy", "bootstrap_ci", "compare",
    "evaluate", "oracle",
    "LIFECYCLE_ENV_ID", "EdgeCloudLifecycleEnv", "ScenarioConfig", "make_scenario",
]
