"""The README's Python examples run as written (in a scratch folder: they write results/)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_examples_run_as_written(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) >= 2
    # the first block's env and evaluation; the second trains a smoke PEARL and adapts it
    check = "\nimport math\nassert math.isfinite(float(curve.gap_to_oracle_pct.iloc[-1]))\n"
    script = "\n".join(blocks) + check
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "results" / "my-run" / "final.csv").is_file()
