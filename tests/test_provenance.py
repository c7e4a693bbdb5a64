"""Provenance records: the commit line says clean, which files differ, or that git is missing;
a command's record names its command line and the files it wrote."""

from __future__ import annotations

from pathlib import Path

from ecmeta_lib import provenance


def test_commit_line_states_clean_changed_or_unknown(monkeypatch) -> None:
    monkeypatch.setattr(provenance, "git", lambda *a, **k: "abc123")
    assert provenance.commit_line([]) == "`abc123` (clean: the source is this commit exactly)"
    assert provenance.commit_line(["a.py", "b.py"]) == (
        "`abc123` (with uncommitted changes to `a.py`, `b.py`)")
    assert "clean or not unknown" in provenance.commit_line(None)


def test_outputs_do_not_make_the_source_dirty(monkeypatch) -> None:
    monkeypatch.setattr(provenance, "git", lambda *a, **k: "figures/x.png\nREADME.md\n"
                        "notebooks/executed/01.ipynb\necmeta_lib/env.py")
    assert provenance.source_changes() == ["README.md", "ecmeta_lib/env.py"]
    monkeypatch.setattr(provenance, "git", lambda *a, **k: "unknown")
    assert provenance.source_changes() is None


def test_command_record_lists_its_files(tmp_path: Path) -> None:
    path = provenance.write_command_provenance(tmp_path, "report", ["report", "--profile", "smoke"],
                                               [tmp_path / "b.csv", "a.png"], 3.4, [])
    text = path.read_text()
    assert path.name == "PROVENANCE_report.md"
    assert "`python -m ecmeta_lib report --profile smoke`" in text
    assert "* `a.png`\n* `b.csv`" in text and "| wall time | 3 s" in text
    assert "(clean: the source is this commit exactly)" in text or "unknown" in text
