"""Where a figure or table came from: the commit (clean or which source files differ), the
machine, the command and its wall time. `make reproduce` writes ``figures/PROVENANCE.md``
(`tools/run_notebooks.py`); a command of ``python -m ecmeta_lib`` that writes a figures folder
writes ``PROVENANCE_<command>.md`` beside the files it wrote (`write_command_provenance`), so
neither overwrites the other's record."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parent.parent
"""The checkout this package runs from (its git repository, when it has one)."""

OUTPUTS = ("figures/", "notebooks/executed/", "notebooks/_executed/")
"""What the project's own runs write: changes there do not make the source dirty."""


def git(*args: str, cwd: Path = SOURCE_ROOT) -> str:
    """Output of ``git args`` in the package's checkout; "unknown" without git or a repository."""
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def source_changes(cwd: Path = SOURCE_ROOT) -> list[str] | None:
    """Tracked source files that differ from HEAD (outputs left out); None without git. Read it
    before a run writes anything, so the run's own outputs never count."""
    status = git("diff", "--name-only", "HEAD", cwd=cwd)  # staged or not, one path a line
    if status == "unknown":
        return None
    return [f for f in status.splitlines() if f and not f.startswith(OUTPUTS)]


def commit_line(changed: list[str] | None, cwd: Path = SOURCE_ROOT) -> str:
    """The commit and whether the source was exactly that commit, for a provenance table."""
    if changed is None:
        state = "(git unavailable: clean or not unknown)"
    elif changed:
        state = f"(with uncommitted changes to {', '.join(f'`{f}`' for f in changed)})"
    else:
        state = "(clean: the source is this commit exactly)"
    return f"`{git('rev-parse', 'HEAD', cwd=cwd)}` {state}"


def file_mtimes(folder: Path | str) -> dict[str, int]:
    """Modification time (ns) of each file directly in `folder` ({} if it does not exist): what
    changed between two calls is what a run wrote there."""
    path = Path(folder)
    return ({f.name: f.stat().st_mtime_ns for f in path.iterdir() if f.is_file()}
            if path.is_dir() else {})


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line() -> str:
    """CPU, logical CPUs and OS, for a provenance table."""
    return (f"{cpu_model()}, {os.cpu_count()} logical CPUs, {platform.system()} "
            f"{platform.release()}")


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")


def write_command_provenance(out_dir: Path | str, command: str, argv: Iterable[str],
                             files: Iterable[Path | str], seconds: float,
                             changed: list[str] | None) -> Path:
    """``<out_dir>/PROVENANCE_<command>.md``: the command line, date, commit (clean or not:
    `changed` as `source_changes` read it before the command wrote anything), machine, wall
    time and the files it wrote there. Returns the path."""
    out = Path(out_dir)
    names = sorted({Path(f).name for f in files})
    lines = [f"# Provenance of the files `{command}` wrote here", "",
             f"Written by `python -m ecmeta_lib {' '.join(argv)}`.", "",
             "| | |", "|---|---|",
             f"| date (UTC) | {utc_now()} |",
             f"| commit | {commit_line(changed)} |",
             f"| machine | {machine_line()} |",
             f"| python | {platform.python_version()} |",
             f"| wall time | {seconds:.0f} s (reading cached runs; training time is in each "
             "run's done.json) |", "",
             "Files:", "", *[f"* `{n}`" for n in names], ""]
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"PROVENANCE_{command}.md"
    path.write_text("\n".join(lines))
    return path
