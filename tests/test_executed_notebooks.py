"""The executed notebooks committed in notebooks/executed/ (written by `make reproduce`) exist for
every notebook source and were executed from the committed source; the runner's sanitiser keeps
them stable and free of progress bars and kernel warnings."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
PUBLISHED = ROOT / "notebooks" / "executed"


def _runner():
    spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "tools" /
                                                  "run_notebooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_executed_notebook_comes_from_the_committed_source(source: Path) -> None:
    executed = PUBLISHED / f"{source.stem}.ipynb"
    assert executed.is_file(), f"{executed} is missing: run `make reproduce` and commit it"
    nb = nbformat.read(executed, as_version=4)
    meta = nb.metadata.get("ecmeta", {})
    assert meta.get("source") == f"notebooks/{source.name}"
    assert meta.get("source_sha256") == hashlib.sha256(source.read_bytes()).hexdigest(), (
        f"{executed.name} was executed from another version of {source.name}: rerun "
        "`make reproduce` and commit notebooks/executed/")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert outputs, "an executed notebook has outputs"
    assert not [o for o in outputs if o.output_type == "error"]
    text = json.dumps(outputs)
    assert "without encryption" not in text and "widget-view" not in text


def test_sanitize_strips_progress_warnings_and_timings() -> None:
    rn = _runner()
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"start_time": "2026-01-01T00:00:00", "duration": 3.0,
                                "parameters": {"profile": "smoke"}}
    cell = nbformat.v4.new_code_cell("x = 1")
    cell.metadata["execution"] = {"iopub.execute_input": "2026-01-01T00:00:00"}
    cell.metadata["papermill"] = {"duration": 1.0}
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stderr",
                               text="Kernel is running over TCP without encryption.\n"
                                    "grid: 50%|#####     | 1/2 [00:01<00:01]\r"
                                    "grid: 100%|##########| 2/2 [00:02<00:00]\n"),
        nbformat.v4.new_output("display_data", data={
            "application/vnd.jupyter.widget-view+json": {"model_id": "abc"},
            "text/plain": "HBox()"}),
        nbformat.v4.new_output("stream", name="stdout", text="result 42\n")]
    nb.cells = [cell]
    out = rn.sanitize(nb, SOURCES[0], "smoke")
    assert "papermill" not in out.metadata
    assert out.metadata["ecmeta"]["source_sha256"] == rn.source_sha256(SOURCES[0])
    assert out.metadata["ecmeta"]["parameters"] == {"profile": "smoke"}
    (only,) = out.cells[0].outputs
    assert only.text == "result 42\n"
    assert "execution" not in out.cells[0].metadata and "papermill" not in out.cells[0].metadata


def test_the_runner_lives_outside_notebooks() -> None:
    assert not (ROOT / "notebooks" / "run_notebooks.py").exists()
    assert "tools/run_notebooks.py" in (ROOT / "Makefile").read_text()
