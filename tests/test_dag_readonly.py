"""Parsing the DAG never changes a file: a dry run and --lint leave the file tree as it was, even with a truncated
artifact planted (which only a real run removes, through the checkpoint remove_truncated_artifacts)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from unlearning.core.parquet_io import write_parquet

ROOT = Path(__file__).resolve().parents[1]


def snakemake(*args: str, cwd: Path) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), *args],
        cwd=cwd, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def listing(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root`` (but Snakemake's own .snakemake/ bookkeeping): mtime and size."""
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size)
        for p in root.rglob("*")
        if ".snakemake" not in p.relative_to(root).parts
    }


def test_dry_run_and_lint_touch_no_file(tmp_path: Path) -> None:
    results = tmp_path / "results"
    frame = pd.DataFrame({"id": ["a", "b"], "value": [1.0, 2.0]})
    truncated = write_parquet(frame, results / "score" / "smollm2" / "base.parquet", stage="score", config={})
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    write_parquet(frame, results / "score" / "summary.parquet", stage="summarize", config={})
    (results / "report").mkdir(parents=True)
    (results / "report" / "report.html").write_text("<!DOCTYPE html><title>old report</title>")
    before = listing(tmp_path)
    workflow_before = listing(ROOT / "rules")

    out = snakemake("-n", "--directory", str(tmp_path), cwd=tmp_path)
    assert "remove_truncated_artifacts" in out, "a dry run plans the removal"
    assert listing(tmp_path) == before
    out = snakemake("--lint", "--directory", str(tmp_path), cwd=tmp_path)
    assert "Congratulations" in out
    assert listing(tmp_path) == before
    assert listing(ROOT / "rules") == workflow_before
