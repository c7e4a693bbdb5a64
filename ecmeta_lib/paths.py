"""Where a notebook finds the repository's folders, whatever its working directory (torch-free,
so notebooks 01-02 can use it without loading the training stack)."""

from __future__ import annotations

from pathlib import Path


def project_root(start: Path | str | None = None) -> Path:
    """The repository root (the folder holding pyproject.toml) above `start` (default: cwd), so
    notebooks find results/ and figures/ whatever folder their kernel runs in."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "ecmeta_lib").is_dir():
            return folder
    raise FileNotFoundError(f"no ecmeta project (pyproject.toml + ecmeta_lib/) above {here}")


def figures_path(figures_dir: Path | str) -> Path:
    """A notebook's figures folder, created: an absolute path as is, a relative one under the
    repository root (so "figures" means <repo>/figures from notebooks/ or anywhere else)."""
    path = Path(figures_dir)
    if not path.is_absolute():
        path = project_root() / path
    path.mkdir(parents=True, exist_ok=True)
    return path
