"""The embedded default through Snakemake: a run from an empty ``results/``, a no-op rerun, and the rerun after one
scoring setting changes (which must rerun only scoring and the report), plus each job's time and peak memory from
Snakemake's own ``benchmark:`` files."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SCORING_RERUN = {"score", "summarize", "report"}


def snakemake(work_dir: Path, *args: str) -> tuple[float, str]:
    """Seconds and combined output of one Snakemake call on the repository's Snakefile in ``work_dir``."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work_dir)]
    start = time.perf_counter()
    proc = subprocess.run([*cmd, "--cores", "all", *args], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"snakemake {' '.join(args)} failed in {work_dir}:\n{output[-4000:]}")
    return seconds, output


def jobs_run(output: str) -> set[str]:
    """Rules that ran, from the 'Job stats' table Snakemake prints."""
    table = output.split("Job stats:", 1)[1] if "Job stats:" in output else ""
    rules = {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+$", table, flags=re.M)}
    return rules - {"total", "all"}


def job_costs(results: Path) -> list[dict]:
    """Wall seconds and peak resident memory (MB) of every job that wrote a ``benchmark:`` file."""
    rows = []
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        with tsv.open() as f:
            record = next(csv.DictReader(f, delimiter="\t"))
        job = tsv.relative_to(results / "benchmarks").with_suffix("").as_posix()
        rows.append(
            {
                "benchmark": f"job {job}",
                "seconds": float(record["s"]),
                "peak_rss_mb": float(record["max_rss"]),
            }
        )
    return rows


def ensure_pairs(work_dir: Path) -> None:
    """The imported model and the DPO pairs of the embedded default, for the training benchmark alone."""
    snakemake(work_dir, "results/perturb/dpo_pairs.parquet", "results/data/truthfulqa.parquet")


def bench_workflow(work_dir: Path) -> list[dict]:
    """Full run from empty, no-op rerun, scoring-setting rerun; ``work_dir`` must hold no ``results/``."""
    if (work_dir / "results").exists():
        raise FileExistsError(f"{work_dir / 'results'} exists; the end-to-end benchmark starts from an empty one")
    work_dir.mkdir(parents=True, exist_ok=True)
    full, out = snakemake(work_dir)
    rows = [{"benchmark": "snakemake --cores all, empty results/", "seconds": full, "reran": sorted(jobs_run(out))}]
    noop, out = snakemake(work_dir)
    if "Nothing to be done" not in out:
        raise RuntimeError(f"the rerun of an up-to-date workflow did work:\n{out[-3000:]}")
    rows.append({"benchmark": "no-op rerun", "seconds": noop, "reran": []})
    costs = job_costs(work_dir / "results")
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config.setdefault("score", {})["batch_size"] = 2 * int(config.get("score", {}).get("batch_size", 16))
    changed = work_dir / "changed_score_setting.yaml"
    changed.write_text(yaml.safe_dump(config))
    seconds, out = snakemake(work_dir, "--configfile", str(changed))
    reran = jobs_run(out)
    if reran != SCORING_RERUN:
        raise RuntimeError(f"changing score.batch_size reran {sorted(reran)}, expected {sorted(SCORING_RERUN)}")
    rows.append({"benchmark": "rerun after a scoring setting change", "seconds": seconds, "reran": sorted(reran)})
    return rows + costs
