"""Safe checkpoint files: written with `torch.save`, read with ``torch.load(weights_only=True)``.

A results folder is shared between cluster nodes and people, so opening a ``checkpoint.pt`` or an
``agent.pt`` must never run code. A plain pickle can (its GLOBAL/REDUCE opcodes import and call
anything); PyTorch's weights-only unpickler accepts only tensors, numbers, strings, ``None`` and
dicts / lists / tuples of them. The training state holds more than that - numpy arrays (replay
buffers), numpy scalars (scores), and frozen dataclasses (the agent's config, the profile) - so
`encode` turns each of those into a *tagged dict* of plain values and `decode` turns them back:

* numpy array  -> ``{"__ecmeta__": "ndarray", "dtype": "<f2", "shape": [...], "data": uint8
  tensor}`` (the raw bytes, so every numeric dtype and byte order round-trips bit-exactly);
* numpy scalar -> ``{"__ecmeta__": "npscalar", "dtype": "<f8", "value": python number}``;
* dataclass    -> ``{"__ecmeta__": "dataclass", "type": "module.QualName", "fields": {...}}``,
  rebuilt only when its type is in the caller's allowlist (never imported by name).

Everything else passes through unchanged: tensors (including the torch RNG state), Python ints of
any size (numpy bit-generator states hold 128-bit ints), floats (NaN, inf), tuples (Python's
``random.getstate()``), ``None``, strings and dicts with str/int keys. The top-level dict gets
the marker key `FORMAT_KEY`, so a raw ``torch.load(path, weights_only=True)`` still reads the
file as the same dict (handy for inspection) and `safe_load` can tell our files from others.

Below the dataclass helpers sit the run's files: `load_checkpoint` (a training checkpoint,
refused with a `CheckpointError` that says why when it is missing, corrupt or another run's) and
`load_agent` (the best agent of a finished run). Files written before the agent's config was
grouped (a flat ``SACConfig``, ``training.Profile``) still load: `LEGACY_TYPES` rebuilds them.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .agents.config import (
    ActorConfig,
    CriticConfig,
    EncoderConfig,
    NetworkConfig,
    OptimConfig,
    SACConfig,
)
from .agents.networks import ActionSpec
from .cache import KEY_VERSION, run_key, write_atomic
from .config import ConditionConfig, EnvConfig, SystemConfig
from .profiles import Profile

FORMAT_KEY = "__ecmeta_format__"
"""Key of the top-level dict holding the format version (absent: not one of our files)."""
FORMAT_VERSION = 1
TAG = "__ecmeta__"
"""Key that marks an encoded (tagged) value; a user dict may not use it."""
DATACLASSES: tuple[type, ...] = (SACConfig, NetworkConfig, CriticConfig, ActorConfig,
                                 EncoderConfig, OptimConfig, ActionSpec, EnvConfig, SystemConfig,
                                 ConditionConfig, Profile)
"""The dataclasses every checkpoint may rebuild."""
LEGACY_TYPES: dict[str, Any] = {"ecmeta_lib.agents.sac.SACConfig": SACConfig.from_flat,
                                "ecmeta_lib.training.Profile": Profile}
"""Type names of files written before a move, and what rebuilds them from their fields."""
_NUMERIC_KINDS = "biufc"  # bool, int, uint, float, complex: raw bytes + dtype string are exact
_KEY_TYPES = (str, int)


class UnsafeCheckpointError(ValueError):
    """A file is refused: loading it would run code, or it is not an ecmeta safe checkpoint, or
    it holds a tagged value outside the allowlist. Nothing in the file was executed."""


def _type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _check_dtype(dtype: np.dtype, where: str) -> None:
    if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise TypeError(f"{where}: numpy dtype {dtype} cannot go in a safe checkpoint (only "
                        "bool, integer, float and complex arrays can)")


def encode(obj: Any, where: str = "state") -> Any:
    """`obj` as tensors, plain numbers, strings and containers (see the module docstring).

    Raises `TypeError` naming the offending entry (``where``, a path like ``state/agent/x``) for
    any value that has no safe encoding, e.g. an arbitrary object or an object-dtype array.
    """
    # exact types: a subclass (an IntEnum, a str subclass) would pickle as a GLOBAL and be refused
    if obj is None or type(obj) in (bool, str, bytes, int, float, complex):
        return obj
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, np.ndarray):
        _check_dtype(obj.dtype, where)
        raw = np.ascontiguousarray(obj).reshape(-1).view(np.uint8)
        return {TAG: "ndarray", "dtype": obj.dtype.str, "shape": list(obj.shape),
                "data": torch.from_numpy(raw.copy())}
    if isinstance(obj, np.generic):  # before int/float: np.float64 subclasses float
        _check_dtype(obj.dtype, where)
        return {TAG: "npscalar", "dtype": obj.dtype.str, "value": obj.item()}
    if is_dataclass(obj) and not isinstance(obj, type):
        return {TAG: "dataclass", "type": _type_name(type(obj)),
                "fields": {f.name: encode(getattr(obj, f.name), f"{where}.{f.name}")
                           for f in fields(obj)}}
    if isinstance(obj, dict):
        if TAG in obj:
            raise TypeError(f"{where}: the key {TAG!r} is reserved for tagged values")
        out = {}
        for k, v in obj.items():
            if not isinstance(k, _KEY_TYPES) or isinstance(k, bool):
                raise TypeError(f"{where}: dict key {k!r} ({type(k).__name__}) cannot go in a "
                                "safe checkpoint (str and int keys can)")
            out[k] = encode(v, f"{where}/{k}")
        return out
    if type(obj) in (list, tuple):  # exact types: a namedtuple would come back as a tuple
        items = [encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    raise TypeError(f"{where}: a {type(obj).__module__}.{type(obj).__qualname__} cannot go in a "
                    "safe checkpoint (tensors, numpy arrays/scalars, numbers, strings, None, "
                    "dataclasses and dicts/lists/tuples of them can)")


def decode(obj: Any, allowed: Iterable[type] = DATACLASSES, where: str = "state") -> Any:
    """Inverse of `encode`: rebuild tagged values; dataclasses only from `allowed`."""
    allowed = tuple(allowed)
    registry: dict[str, Any] = {_type_name(cls): cls for cls in allowed}
    registry.update({k: v for k, v in LEGACY_TYPES.items()
                     if getattr(v, "__self__", v) in allowed})
    return _decode(obj, registry, where)


def _decode(obj: Any, registry: dict[str, type], where: str) -> Any:
    if isinstance(obj, dict):
        tag = obj.get(TAG)
        if tag is None:
            return {k: _decode(v, registry, f"{where}/{k}") for k, v in obj.items()}
        if tag == "ndarray":
            dtype = np.dtype(str(obj["dtype"]))  # a dtype *string*: parsing it runs no code
            _check_dtype(dtype, where)
            shape = tuple(int(n) for n in obj["shape"])
            data = obj["data"]
            if not isinstance(data, torch.Tensor) or data.dtype != torch.uint8:
                raise UnsafeCheckpointError(f"{where}: an ndarray entry without its byte tensor")
            return data.numpy().view(dtype).reshape(shape).copy()
        if tag == "npscalar":
            dtype = np.dtype(str(obj["dtype"]))
            _check_dtype(dtype, where)
            return dtype.type(obj["value"])
        if tag == "dataclass":
            cls = registry.get(obj["type"])
            if cls is None:
                raise UnsafeCheckpointError(
                    f"{where}: dataclass {obj['type']!r} is not in the allowlist "
                    f"({', '.join(sorted(registry)) or 'empty'})")
            values = {k: _decode(v, registry, f"{where}.{k}") for k, v in obj["fields"].items()}
            if not isinstance(cls, type):  # a legacy builder (`LEGACY_TYPES`)
                return cls(**values)
            init = {f.name for f in fields(cls) if f.init}
            out = cls(**{k: v for k, v in values.items() if k in init})
            for k, v in values.items():  # init=False fields: restore as saved
                if k not in init:
                    object.__setattr__(out, k, v)
            return out
        raise UnsafeCheckpointError(f"{where}: unknown tag {tag!r}")
    if isinstance(obj, list):
        return [_decode(v, registry, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, tuple):
        return tuple(_decode(v, registry, f"{where}[{i}]") for i, v in enumerate(obj))
    return obj


def safe_save(obj: dict[str, Any], path: Path | str) -> None:
    """Encode `obj` (a dict) and `torch.save` it to a temporary file in the same folder, then
    `os.replace` it over `path` (atomic on POSIX: a reader sees the old or the new file)."""
    if not isinstance(obj, dict):
        raise TypeError(f"a checkpoint is a dict, got {type(obj).__name__}")
    if FORMAT_KEY in obj:
        raise TypeError(f"{FORMAT_KEY!r} is reserved for the checkpoint format")
    payload = {FORMAT_KEY: FORMAT_VERSION, **encode(obj)}
    write_atomic(path, lambda tmp: torch.save(payload, tmp))


_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def safe_load(path: Path | str, allowed: Iterable[type] = DATACLASSES) -> dict[str, Any]:
    """Read a file written by `safe_save` without running any code from it.

    ``torch.load(..., weights_only=True)`` refuses every pickle opcode that imports or calls
    (a crafted file stops there, before anything runs); the result must carry `FORMAT_KEY`, and
    its tagged dataclasses must be in `allowed`. Raises `UnsafeCheckpointError` when the file is
    refused (naming the global it asked for, if any), other exceptions (``OSError``,
    ``RuntimeError`` from torch) when it is unreadable.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():  # torch warns about a raw pickle's protocol first
            warnings.simplefilter("ignore", UserWarning)
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch wraps every refusal in UnpicklingError
        glob = _GLOBAL.search(str(exc))
        if glob:
            raise UnsafeCheckpointError(
                f"{path} is refused: loading it would import and call {glob.group(1)}, and "
                "ecmeta checkpoints hold only tensors, numbers, strings and containers. It was "
                "written by an older ecmeta (pickled objects) or crafted to run code; nothing in "
                "it was run. Delete the run folder to recompute the run.") from None
        if "Weights only load failed" in str(exc):
            detail = str(exc).split("WeightsUnpickler error:")[-1].strip().splitlines()[0]
            raise UnsafeCheckpointError(
                f"{path} is corrupt or not an ecmeta checkpoint (the weights-only unpickler "
                f"refused it: {detail}); nothing in it was run") from None
        raise
    if not isinstance(raw, dict) or raw.get(FORMAT_KEY) != FORMAT_VERSION:
        found = raw.get(FORMAT_KEY) if isinstance(raw, dict) else type(raw).__name__
        raise UnsafeCheckpointError(
            f"{path} is not an ecmeta safe checkpoint (format {found!r}, want "
            f"{FORMAT_VERSION}); delete the run folder to recompute the run")
    state = {k: v for k, v in raw.items() if k != FORMAT_KEY}
    return decode(state, allowed)


# ============================================================================================
# the run's files: training checkpoints and the best agent
# ============================================================================================
CHECKPOINT = "checkpoint.pt"
BEST_AGENT = "agent.pt"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or belongs to another method/profile/config."""


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint, turning any unreadable file into a clear `CheckpointError`."""
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:  # weights_only: opening a (shared) results folder never runs code
        state = safe_load(path)
    except UnsafeCheckpointError as exc:
        raise CheckpointError(f"checkpoint {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable: {exc}") from exc
    if not isinstance(state, dict) or "config_hash" not in state:
        raise CheckpointError(f"checkpoint {path} is corrupt: missing its config header")
    return state


def run_header(method: str, profile: Profile, seed: int, task_seed: int) -> dict[str, Any]:
    """What a checkpoint records of its run, and what `check_header` compares."""
    return {"method": method, "profile": profile.name, "seed": seed, "task_seed": task_seed,
            "config_hash": run_key(method, profile, seed, task_seed), "version": KEY_VERSION}


def check_header(state: dict[str, Any], path: Path, method: str, profile: Profile,
                 seed: int, task_seed: int) -> None:
    """Refuse a checkpoint of another run (method, profile, seeds or config)."""
    want = run_header(method, profile, seed, task_seed)
    want.pop("version")
    for key, value in want.items():
        if state.get(key) != value:
            raise CheckpointError(
                f"checkpoint {path} belongs to another run: {key} is {state.get(key)!r}, this "
                f"run has {value!r}; use a fresh run_dir or delete the checkpoint")


def load_agent(run_dir: str | os.PathLike, *, device: str = "cpu"):  # -> DiscreteSACAgent
    """The best agent a finished run saved in ``run_dir/agent.pt`` (its ``method`` and the run's
    ``profile`` attached)."""
    from .agents.sac import DiscreteSACAgent, resolve_device

    path = Path(run_dir) / BEST_AGENT
    if not path.is_file():
        raise CheckpointError(f"no trained agent at {path} (has the run finished?)")
    try:
        state = safe_load(path)
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
