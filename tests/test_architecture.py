"""The house rules of docs/ARCHITECTURE.md, checked on the source.

`FLOORS` is the one table of the package's layers, lowest first: a module may import modules of
its own floor or of a floor below it, never one above (every ``ecmeta_lib`` import counts:
relative or absolute, at module level or inside a function). A new module must be given a
floor here. ``python tests/test_architecture.py`` prints each floor with what its modules
import (the list docs/ARCHITECTURE.md describes).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ecmeta_lib"

FLOORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundations", ("config", "physics", "paths", "cache", "stats", "executors", "knapsack",
                     "detection", "provenance")),
    ("conditions and state", ("system", "aisf", "catalogue", "conditions")),
    ("slot", ("slot", "oracle")),
    ("env", ("env", "policies", "rollout", "agents.buffers", "agents.config")),
    ("evaluation", ("evaluation", "lifecycle", "lifecycle_scoring", "__init__")),
    ("agents", ("agents", "agents.networks", "agents.encoder", "agents.sac", "agents.updates",
                "lifecycle_controllers", "twin_pool")),
    ("training", ("profiles", "profile_table", "agent_policies", "checkpoints", "training",
                  "tuning")),
    ("experiments", ("study", "ablations", "claims", "analysis", "decisions", "runner",
                     "lifecycle_runner", "profile_comparison")),
    ("figures and command line", ("plots", "lifecycle_plots", "__main__")),
)
"""(floor, modules) from the bottom of the data flow to the top. ``__init__`` is the package
itself (``from ecmeta_lib import ...``, ``from . import __version__``)."""

FLOOR_OF = {m: i for i, (_, mods) in enumerate(FLOORS) for m in mods}
TORCH_FREE = ("profiles", "tuning", "profile_table", "study")


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(name: str) -> str | None:
    """The module of FLOORS an imported dotted name (below ``ecmeta_lib``) belongs to."""
    parts = name.split(".") if name else []
    while parts:
        candidate = ".".join(parts)
        if candidate in FLOOR_OF:
            return candidate
        if (PACKAGE / Path(*parts)).with_suffix(".py").is_file() or \
                (PACKAGE / Path(*parts) / "__init__.py").is_file():
            return candidate  # a module with no floor: reported by the test
        parts.pop()
    return "__init__"


def imports(path: Path) -> set[str]:
    """Every ``ecmeta_lib`` module `path` imports (module level or inside functions)."""
    mod = _module_name(path)
    package = mod.split(".")[:-1] if path.name != "__init__.py" else \
        ([] if mod == "__init__" else mod.split("."))
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
                prefix = ".".join([*base, node.module] if node.module else base)
            elif node.module and (node.module == "ecmeta_lib"
                                  or node.module.startswith("ecmeta_lib.")):
                prefix = node.module.removeprefix("ecmeta_lib").lstrip(".")
            else:
                continue
            for alias in node.names:  # `from . import runner` imports the module runner
                full = f"{prefix}.{alias.name}" if prefix else alias.name
                target = _resolve(full)
                found.add(target if target != "__init__" else (_resolve(prefix) or "__init__"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "ecmeta_lib" or alias.name.startswith("ecmeta_lib."):
                    found.add(_resolve(alias.name.removeprefix("ecmeta_lib").lstrip(".")) or
                              "__init__")
    found.discard(mod)
    return found


def modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_has_a_floor() -> None:
    missing = sorted(set(modules()) - set(FLOOR_OF))
    assert not missing, (f"give {missing} a floor in tests/test_architecture.py FLOORS "
                         "(and docs/ARCHITECTURE.md)")


def test_no_module_imports_one_above_it() -> None:
    upward = []
    for mod, path in modules().items():
        if mod not in FLOOR_OF:
            continue
        for dep in sorted(imports(path)):
            if dep in FLOOR_OF and FLOOR_OF[dep] > FLOOR_OF[mod]:
                upward.append(f"{mod} ({FLOORS[FLOOR_OF[mod]][0]}) imports {dep} "
                              f"({FLOORS[FLOOR_OF[dep]][0]})")
    assert not upward, "imports against the data flow:\n" + "\n".join(upward)


def test_the_checker_sees_every_kind_of_import(tmp_path: Path) -> None:
    """Relative, absolute and function-local imports are all found."""
    assert {"training", "stats", "profiles"} <= imports(PACKAGE / "tuning.py")  # local one
    assert "analysis" in imports(PACKAGE / "decisions.py")  # inside grid_decisions
    assert "env" in imports(PACKAGE / "agents" / "networks.py")  # `from ..env import`
    assert "runner" in imports(PACKAGE / "__main__.py")  # `from . import runner`


@pytest.mark.parametrize("module", TORCH_FREE)
def test_torch_free_modules(module: str) -> None:
    code = (f"import sys, ecmeta_lib.{module}; "
            "sys.exit('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, f"importing ecmeta_lib.{module} loads torch\n{proc.stderr}"


if __name__ == "__main__":
    for i, (floor, mods) in enumerate(FLOORS):
        print(f"{i} {floor}")
        for m in mods:
            path = modules().get(m)
            deps = sorted(imports(path)) if path else []
            print(f"    {m:22s} imports {', '.join(deps) or '-'}")
