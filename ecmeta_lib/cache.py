"""The results cache: content keys and atomic writes, one scheme for every file we cache.

* `run_key`: a training run's identity (method, profile, seeds, key version). The agent config
  enters flat (`SACConfig.flat`), so grouping its fields left every cached run's key unchanged.
  A field added later enters the key only when it moves away from the value that reproduces the
  code from before it existed (`KEY_SILENT_DEFAULTS`), and a per-method profile field enters only
  the keys of the methods it changes (``actor_mode_methods``): adding either kept every other
  run's key and cache.
* `digest`: the key of a derived file (baselines, yardstick curves, decision tables): a hash of
  a JSON payload, dataclasses included (`jsonable`).
* `write_atomic`, `write_json`, `write_csv`, `cached_csv`: write to a temporary file in the same
  folder, then ``os.replace`` (atomic on POSIX): a killed write leaves the old file or none,
  never a half file that a later call would trust. Checkpoints (`checkpoints.safe_save`) follow
  the same rule.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import pandas as pd

KEY_VERSION = 3
"""Version of the run key and of the checkpoint layout (bumped when old runs become invalid)."""
RUN_KEY_SILENT: dict[str, Any] = {"compiled_update": False, "context_probe": "random",
                                  "adaptation_probe": None}
"""Agent fields that leave the run key when they take this value, the one that runs the code from
before the field existed, bit for bit (the eager update; uniformly random context slots), so
such runs keep their keys."""
PEARL_ONLY_KEY_FIELDS: tuple[str, ...] = ("context_probe", "adaptation_probe")
"""Agent fields added after the grid existed that only PEARL reads (its context slots): they
enter PEARL's key alone, so choosing them kept every SAC baseline's key and cache."""
KEY_SILENT_DEFAULTS: dict[tuple[str, str], Any] = {("ConditionConfig", "source"): "uniform",
                                                   ("Profile", "twin_telemetry_slots"): 0,
                                                   ("Profile", "curve_iterations"): ()}
"""(dataclass, field) left out of every key and config.json at this value: a field added later
whose default reproduces the code from before it, so earlier keys and files stay valid."""


_NO_DEFAULT = object()


def jsonable(obj: Any) -> Any:
    """`obj` as plain JSON values: dataclasses as dicts of their fields (an agent config flat),
    tuples as lists."""
    if hasattr(obj, "flat") and is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(obj.flat())
    if is_dataclass(obj) and not isinstance(obj, type):
        name = type(obj).__name__
        return {f.name: jsonable(getattr(obj, f.name)) for f in fields(obj)
                if KEY_SILENT_DEFAULTS.get((name, f.name), _NO_DEFAULT) != getattr(obj, f.name)}
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj  # anything else (numpy scalars included) is left to json's default=str


def digest(payload: Any, length: int = 10) -> str:
    """A hex key of `payload` (sorted-key JSON of `jsonable(payload)`, SHA-256)."""
    text = json.dumps(jsonable(payload), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def profile_payload(profile: Any, method: str = "pearl") -> dict[str, Any]:
    """A profile as it enters a key: `jsonable`, less the agent fields at their silent value
    (`RUN_KEY_SILENT`) and, for a method other than PEARL, PEARL's own (`PEARL_ONLY_KEY_FIELDS`)."""
    prof = jsonable(profile)
    agent = prof["agent"]
    for name, silent in RUN_KEY_SILENT.items():
        if agent.get(name) == silent or (method != "pearl" and name in PEARL_ONLY_KEY_FIELDS):
            agent.pop(name, None)
    return prof


def run_key(method: str, profile: Any, seed: int, task_seed: int) -> str:
    """The run's key (16 hex digits): its method, profile, seeds and `KEY_VERSION`."""
    prof = profile_payload(profile, method)
    actor_mode = prof.pop("actor_mode_methods")
    payload = {"method": method, "profile": prof, "seed": seed, "task_seed": task_seed,
               "version": KEY_VERSION}
    if method in actor_mode:
        payload["actor_mode"] = True
    return digest(payload, 16)


def write_atomic(path: Path | str, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside `path`, then move it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path | str, payload: Any) -> None:
    """`payload` as indented, sorted JSON, atomically."""
    text = json.dumps(jsonable(payload), indent=2, sort_keys=True)
    write_atomic(path, lambda tmp: tmp.write_text(text))


def write_csv(path: Path | str, frame: pd.DataFrame, **kwargs: Any) -> None:
    """`frame` as CSV (no index; ``compression`` etc. pass through), atomically."""
    write_atomic(path, lambda tmp: frame.to_csv(tmp, index=False, **kwargs))


def cached_csv(path: Path | str, compute: Callable[[], pd.DataFrame],
               **kwargs: Any) -> pd.DataFrame:
    """The CSV at `path`, or `compute()` written there atomically and returned."""
    path = Path(path)
    if path.exists():
        return pd.read_csv(path)
    out = compute()
    write_csv(path, out, **kwargs)
    return out
