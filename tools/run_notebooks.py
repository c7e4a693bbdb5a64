"""Run the numbered notebooks headlessly, in order, with papermill, and write them sanitised.

Every ``notebooks/[0-9][0-9]_*.py`` (a jupytext percent script) is converted to .ipynb and
executed with cwd = notebooks/ and the parameters ``profile``, ``seed`` and ``figures_dir``
injected after its cell tagged ``parameters``. A new notebook joins `make test` and
`make reproduce` by its file name alone.

The executed notebooks are written *sanitised*, so a rerun on the same machine gives the same
files: no timestamps or durations in the metadata, no progress bars (widgets or text), no kernel
warnings. Each carries ``metadata.ecmeta.source_sha256``, the SHA-256 of the .py source it was
executed from (``tests/test_executed_notebooks.py`` checks it against the committed sources).

While a notebook runs, the terminal shows its name and, when it trains the grid, the grid's
progress bar with its ETA (mirrored from the kernel through ``$ECMETA_PROGRESS_FILE``).

    python tools/run_notebooks.py --profile smoke --out notebooks/_executed \
        --figures-dir notebooks/_executed/figures
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import jupytext
import nbformat
import papermill
from ipykernel.kernelspec import install as install_kernelspec

from ecmeta_lib.provenance import commit_line, file_mtimes, machine_line, source_changes, utc_now

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
PATTERN = "[0-9][0-9]_*.py"
KERNEL_NAME = "ecmeta"
PROFILES = ("smoke", "quick", "paper")
PROGRESS_ENV = "ECMETA_PROGRESS_FILE"  # = ecmeta_lib.runner.PROGRESS_MIRROR_ENV

# stderr lines a reader should not see: kernel start-up chatter and progress-bar fallbacks
_NOISE = re.compile(r"running over TCP without encryption|TqdmWarning|IProgress not found|"
                    r"Debugger warning|PYDEVD_DISABLE_FILE_VALIDATION|frozen modules|"
                    r"Running HiGHS|Copyright \(c\)|THIRD_PARTY_NOTICES")
_PROGRESS = re.compile(r"\d+%\|")  # a tqdm text bar


def source_sha256(path: Path) -> str:
    """SHA-256 of a notebook source (the jupytext .py), as stored in the executed copy."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ensure_kernel() -> str:
    """Register a kernelspec inside this interpreter's prefix whose argv is this very interpreter.

    papermill would otherwise pick whatever ``python3`` kernelspec comes first on Jupyter's path,
    which may belong to another environment. The kernel logs errors only: its start-up warning
    about TCP without encryption (a local kernel) would otherwise print once per notebook.
    """
    spec_dir = Path(sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME
    spec = spec_dir / "kernel.json"
    if not spec.exists() or sys.executable not in spec.read_text() \
            or "log_level" not in spec.read_text():
        install_kernelspec(kernel_name=KERNEL_NAME, display_name=f"ecmeta ({sys.prefix})",
                           prefix=sys.prefix)
        data = json.loads(spec.read_text())
        data["argv"] = [*data["argv"], "--IPKernelApp.log_level=ERROR"]
        spec.write_text(json.dumps(data, indent=1))
    return KERNEL_NAME


def notebooks(only: list[str] | None) -> list[Path]:
    found = sorted(NOTEBOOK_DIR.glob(PATTERN))
    if only:
        found = [p for p in found if any(p.stem.startswith(o) for o in only)]
        if not found:
            names = [p.stem for p in notebooks(None)]
            raise SystemExit(f"no notebook matches {only}; have {names}")
    return found


def _clean_stream(text: str) -> str:
    lines = []
    for line in text.replace("\r\n", "\n").split("\n"):
        line = line.rsplit("\r", 1)[-1]  # a text progress bar keeps only its last state
        if _NOISE.search(line) or _PROGRESS.search(line):
            continue
        lines.append(line)
    return "\n".join(lines)


def sanitize(nb: Any, source: Path, profile: str) -> Any:
    """Strip what changes between two runs of the same notebook (timings, progress output,
    kernel warnings, temporary paths) and record where it came from."""
    meta = nb.metadata
    pm = meta.pop("papermill", {})
    meta["ecmeta"] = {"source": source.relative_to(REPO_ROOT).as_posix(),
                      "source_sha256": source_sha256(source), "profile": profile,
                      "parameters": pm.get("parameters", {})}
    meta.pop("widgets", None)
    for i, cell in enumerate(nb.cells):
        # stable ids (the converter draws random ones): index and source decide them
        cell.id = hashlib.sha256(f"{i}:{cell.source}".encode()).hexdigest()[:8]
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        outputs = []
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                out.text = _clean_stream(out.text)
                if not out.text.strip():
                    continue
            elif out.output_type in ("display_data", "execute_result"):
                data = out.get("data", {})
                if "application/vnd.jupyter.widget-view+json" in data:
                    continue  # a live progress bar: no state to show once the run is over
            outputs.append(out)
        cell.outputs = outputs
    return nb


def run(path: Path, out_dir: Path, parameters: dict[str, object], kernel: str,
        profile: str) -> float:
    """Convert one jupytext script, execute it, write it sanitised; returns the wall time (s)."""
    nb = jupytext.read(path)
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    out = out_dir / f"{path.stem}.ipynb"
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"{path.stem}.ipynb"
        raw = Path(tmp) / f"{path.stem}.out.ipynb"
        jupytext.write(nb, src)
        papermill.execute_notebook(str(src), str(raw), parameters=parameters, kernel_name=kernel,
                                   cwd=str(NOTEBOOK_DIR), progress_bar=False)
        done = sanitize(nbformat.read(raw, as_version=4), path, parameters["profile"])
    # a stable kernelspec name (the one on this machine names its prefix)
    done.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                   "language": "python"}
    nbformat.write(done, out)
    return time.perf_counter() - start


class _Mirror:
    """Tail the kernel's progress file onto this terminal's stderr while a notebook runs."""

    def __init__(self, path: Path) -> None:
        self.path, self._stop = path, threading.Event()
        path.write_text("")
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> _Mirror:
        os.environ[PROGRESS_ENV] = str(self.path)
        self._thread.start()
        return self

    def _loop(self) -> None:
        with open(self.path) as fh:
            while not self._stop.is_set():
                chunk = fh.read()
                if chunk:
                    sys.stderr.write(chunk)
                    sys.stderr.flush()
                time.sleep(0.5)
            sys.stderr.write(fh.read())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        os.environ.pop(PROGRESS_ENV, None)


def write_provenance(path: Path, profile: str, seconds: dict[str, float],
                     changed: list[str] | None, written: dict[str, str],
                     command: str) -> None:
    """Which machine, date, commit (clean or not) and command produced the figures and executed
    notebooks, and which notebook wrote each figure in how many seconds."""
    import torch

    lines = [
        "# Provenance of the committed figures and executed notebooks", "",
        f"Written by `make reproduce`: `{command}`.", "",
        "| | |", "|---|---|",
        f"| date (UTC) | {utc_now()} |",
        f"| commit | {commit_line(changed, REPO_ROOT)} |",
        f"| profile | {profile} |",
        f"| machine | {machine_line()} |",
        f"| python / torch | {platform.python_version()} / {torch.__version__} |",
        "", "Wall time per notebook in this run. A notebook trains or computes only what is not in",
        "`results/` yet (the training grid runs in 03, the ablations in 06 read `make ablations`'",
        "runs, the lifecycle in 07 reads `python -m ecmeta_lib lifecycle`'s); a short time means",
        "it read cached runs. From an empty `results/`, `make reproduce` takes about 30 minutes",
        "on 2 cores (`docs/RESULTS.md`).", "",
        "| notebook | seconds |", "|---|---|",
        *[f"| {name} | {sec:.0f} |" for name, sec in seconds.items()],
        f"| total | {sum(seconds.values()):.0f} |", "",
        "Each file of the figures folder written in this run, and by which notebook:", "",
        "| file | notebook |", "|---|---|",
        *[f"| `{fig}` | {nb} |" for fig, nb in sorted(written.items())], "",
        "A rerun on the same machine gives bit-identical numbers; another CPU (other floating-",
        "point kernels) gives slightly different learned numbers, within their confidence",
        "intervals. The heuristics, yardsticks and the oracle do not depend on the CPU.", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick", choices=PROFILES)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="notebooks/_executed",
                    help="folder of the executed .ipynb files (relative to the repo root)")
    ap.add_argument("--figures-dir", default="figures",
                    help="where notebooks save figures (relative to the repo root)")
    ap.add_argument("--only", nargs="*", help="run only notebooks whose name starts so (e.g. 01)")
    ap.add_argument("--provenance", help="write the machine, date and commit to this Markdown "
                                         "file (relative to the repo root)")
    args = ap.parse_args(argv)

    out_dir = (REPO_ROOT / args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    selected = notebooks(args.only)
    if not args.only:  # a renamed or deleted notebook must not linger and be validated
        for stale in out_dir.glob("*.ipynb"):
            stale.unlink()
    figures = (REPO_ROOT / args.figures_dir).resolve()
    figures.mkdir(parents=True, exist_ok=True)
    # Relative to the repository root when inside it (the notebooks resolve it there, see
    # ecmeta_lib.paths): the executed notebooks then carry no absolute path of this machine.
    fig_param = (figures.relative_to(REPO_ROOT).as_posix() if figures.is_relative_to(REPO_ROOT)
                 else str(figures))
    parameters = {"profile": args.profile, "seed": args.seed, "figures_dir": fig_param}
    kernel = ensure_kernel()
    # The kernels draw inline (figures in the executed notebooks), whatever the caller's backend
    # (the Makefile exports MPLBACKEND=Agg for the tests).
    os.environ.pop("MPLBACKEND", None)
    seconds: dict[str, float] = {}
    changed, written = source_changes(REPO_ROOT), {}
    with tempfile.TemporaryDirectory() as tmp, _Mirror(Path(tmp) / "progress.txt"):
        for i, path in enumerate(selected, 1):
            print(f"[run_notebooks] ({i}/{len(selected)}) {path.name} "
                  f"(profile={args.profile}) ...", file=sys.stderr, flush=True)
            before = file_mtimes(figures)
            seconds[path.stem] = run(path, out_dir, parameters, kernel, args.profile)
            written.update({name: path.stem for name, t in file_mtimes(figures).items()
                            if before.get(name) != t})
            print(f"[run_notebooks] {path.name} done in {seconds[path.stem]:.1f} s -> "
                  f"{out_dir / path.stem}.ipynb", file=sys.stderr, flush=True)
    if args.provenance:
        command = "python tools/run_notebooks.py " + " ".join(argv if argv is not None
                                                               else sys.argv[1:])
        write_provenance(REPO_ROOT / args.provenance, args.profile, seconds, changed, written,
                         command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
