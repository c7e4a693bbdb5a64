"""Safe checkpoints: everything training saves round-trips exactly, and a file that would run code
when unpickled is refused with a clear error before anything in it runs."""

from __future__ import annotations

import os
import pickle
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from ecmeta_lib.agents import ActionSpec, SACConfig
from ecmeta_lib.checkpoints import (
    FORMAT_KEY,
    CheckpointError,
    UnsafeCheckpointError,
    decode,
    encode,
    load_agent,
    load_checkpoint,
    safe_load,
    safe_save,
)
from ecmeta_lib.config import EnvConfig
from ecmeta_lib.profiles import PROFILES, Profile


class _RunsCode:
    """Unpickling this calls os.system: what a crafted checkpoint.pt / agent.pt would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _same(a, b) -> bool:
    """Exact equality, types included, through containers, arrays and tensors."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, float) and np.isnan(a):
        return bool(np.isnan(b))
    return a == b


def test_everything_training_saves_round_trips_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    rng.random(3)
    state = {
        "config_hash": "abc", "iteration": 4, "score": float("inf"), "nan": float("nan"),
        "np_rng": rng.bit_generator.state,  # 128-bit Python ints
        "python_rng": random.getstate(), "torch_rng": torch.get_rng_state(),
        "gen": torch.Generator().manual_seed(3).get_state(),
        "buffers": {"obs": rng.random((5, 3)).astype(np.float16),
                    "action": rng.integers(0, 5, (5, 2, 3)).astype(np.int8),
                    "latency": np.full((5, 2), np.nan, np.float32), "empty": np.zeros((0, 4)),
                    "fortran": np.asfortranarray(rng.random((3, 4))), "flag": np.bool_(True)},
        "rows": [{"mean_latency_s": np.float64(0.125), "n": np.int64(3), "cond": "T1"}],
        "opt": {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(2, 2)}},
                "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0],
                                  "foreach": None}]},
        "spec": ActionSpec(n_users=3, obs_per_user=4, heads=(3, 5, 3)),
        "agent_config": SACConfig.from_flat(latent_dim=2), "profile": PROFILES["smoke"],
        "env": EnvConfig(), "none": None, "tuple": (1, (2.5, "x"), [np.float32(1.5)]),
    }
    safe_save(state, tmp_path / "c.pt")
    back = load_checkpoint(tmp_path / "c.pt")
    assert _same(state, back)
    assert isinstance(back["profile"], Profile) and back["profile"] == PROFILES["smoke"]
    assert back["buffers"]["obs"].flags.writeable  # the buffers are written into after a resume
    # the file itself is a plain dict of tensors and numbers: weights-only loading reads it
    raw = torch.load(tmp_path / "c.pt", weights_only=True)
    assert raw[FORMAT_KEY] == 1 and raw["iteration"] == 4


def test_values_without_a_safe_encoding_are_refused_when_saving(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"state/bad: a pathlib.*PosixPath"):
        safe_save({"bad": Path("x")}, tmp_path / "c.pt")
    with pytest.raises(TypeError, match="numpy dtype object"):
        encode({"a": np.array([object()])})
    with pytest.raises(TypeError, match="reserved"):
        encode({"__ecmeta__": 1})
    assert not (tmp_path / "c.pt").exists()


@pytest.mark.parametrize("filename", ["checkpoint.pt", "agent.pt"])
@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_a_crafted_pickle_is_refused_and_never_runs(tmp_path: Path, filename: str,
                                                    writer: str) -> None:
    marker = tmp_path / "pwned"
    payload = {"config_hash": "x", "spec": _RunsCode(marker)}
    path = tmp_path / filename
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(CheckpointError) as err:
        if filename == "checkpoint.pt":
            load_checkpoint(path)
        else:
            load_agent(tmp_path)
    assert str(path) in str(err.value)
    if writer == "torch.save":  # names what it would have called
        assert "refused" in str(err.value) and "system" in str(err.value)
    assert not marker.exists(), "loading the crafted file ran its code"


def test_files_that_are_not_ours_are_refused(tmp_path: Path) -> None:
    torch.save({"config_hash": "x", "iteration": 1}, tmp_path / "old.pt")  # no format marker
    with pytest.raises(CheckpointError, match="not an ecmeta safe checkpoint"):
        load_checkpoint(tmp_path / "old.pt")
    torch.save({"a": np.zeros(3)}, tmp_path / "np.pt")  # a pickled numpy array (older format)
    with pytest.raises(UnsafeCheckpointError, match="older ecmeta"):
        safe_load(tmp_path / "np.pt")


@dataclass(frozen=True)
class _Foreign:
    x: int = 1


def test_a_dataclass_outside_the_allowlist_is_not_rebuilt(tmp_path: Path) -> None:
    safe_save({"config_hash": "x", "f": _Foreign()}, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="_Foreign' is not in the allowlist"):
        load_checkpoint(tmp_path / "c.pt")
    assert decode(encode(_Foreign(3)), [_Foreign]) == _Foreign(3)
