"""Run the numbered notebooks headlessly, in order, with papermill.

Every ``notebooks/[0-9][0-9]_*.py`` (a jupytext percent script) is converted to .ipynb and
executed with cwd = notebooks/ and the parameters ``profile``, ``seed`` and ``figures_dir``
injected after its cell tagged ``parameters``. A new notebook joins `make test` and
`make reproduce` by its file name alone.

    python notebooks/run_notebooks.py --profile smoke --out notebooks/_executed \
        --figures-dir notebooks/_executed/figures
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import jupytext
import papermill
from ipykernel.kernelspec import install as install_kernelspec

NOTEBOOK_DIR = Path(__file__).resolve().parent
REPO_ROOT = NOTEBOOK_DIR.parent
PATTERN = "[0-9][0-9]_*.py"
KERNEL_NAME = "ecmeta"
PROFILES = ("smoke", "quick", "paper")


def ensure_kernel() -> str:
    """Register a kernelspec inside this interpreter's prefix whose argv is this very interpreter.

    papermill would otherwise pick whatever ``python3`` kernelspec comes first on Jupyter's path,
    which may belong to another environment.
    """
    spec_dir = Path(sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME
    spec = spec_dir / "kernel.json"
    if not spec.exists() or sys.executable not in spec.read_text():
        install_kernelspec(kernel_name=KERNEL_NAME, display_name=f"ecmeta ({sys.prefix})",
                           prefix=sys.prefix)
    return KERNEL_NAME


def notebooks(only: list[str] | None) -> list[Path]:
    found = sorted(NOTEBOOK_DIR.glob(PATTERN))
    if only:
        found = [p for p in found if any(p.stem.startswith(o) for o in only)]
        if not found:
            names = [p.stem for p in notebooks(None)]
            raise SystemExit(f"no notebook matches {only}; have {names}")
    return found


def run(path: Path, out_dir: Path, parameters: dict[str, object], kernel: str) -> float:
    """Convert one jupytext script and execute it; returns the wall time in seconds."""
    nb = jupytext.read(path)
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    out = out_dir / f"{path.stem}.ipynb"
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"{path.stem}.ipynb"
        jupytext.write(nb, src)
        papermill.execute_notebook(str(src), str(out), parameters=parameters, kernel_name=kernel,
                                   cwd=str(NOTEBOOK_DIR), progress_bar=False)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick", choices=PROFILES)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="notebooks/_executed",
                    help="folder of the executed .ipynb files (relative to the repo root)")
    ap.add_argument("--figures-dir", default="figures",
                    help="where notebooks save figures (relative to the repo root)")
    ap.add_argument("--only", nargs="*", help="run only notebooks whose name starts so (e.g. 01)")
    args = ap.parse_args(argv)

    out_dir = (REPO_ROOT / args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    selected = notebooks(args.only)
    if not args.only:  # a renamed or deleted notebook must not linger and be validated
        for stale in out_dir.glob("*.ipynb"):
            stale.unlink()
    figures = (REPO_ROOT / args.figures_dir).resolve()
    figures.mkdir(parents=True, exist_ok=True)
    # Absolute paths: the notebook may run with another cwd (nbval re-executes it elsewhere).
    parameters = {"profile": args.profile, "seed": args.seed, "figures_dir": str(figures)}
    kernel = ensure_kernel()
    for path in selected:
        print(f"[run_notebooks] {path.name} (profile={args.profile}) ...", flush=True)
        seconds = run(path, out_dir, parameters, kernel)
        print(f"[run_notebooks] {path.name} done in {seconds:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
