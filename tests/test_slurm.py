"""The DAG on a real one-node SLURM cluster (Debian's slurmctld/slurmd on loopback, a fake GPU).

Needs root (it installs and starts the daemons); CI runs it. Heavy jobs must go through sbatch, GPU rules must
ask for a GPU, and a failing cluster job must make snakemake exit non-zero.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_workflow import tiny_config

from unlearning.core.parquet_io import read_parquet

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("perturb", "unlearn", "generate", "score")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("apt-get"), reason="needs root and apt-get"),
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    state = tmp_path_factory.mktemp("slurm_state")
    subprocess.run(["bash", str(ROOT / "tests/slurm/start_cluster.sh"), str(state)], check=True, timeout=900)
    yield state
    subprocess.run(["bash", str(ROOT / "tests/slurm/stop_cluster.sh"), str(state)], check=False, timeout=120)


def run_on_slurm(workdir: Path, configfile: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    cmd = [
        sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
        "--workflow-profile", str(ROOT / "profiles" / "slurm"), "--jobs", "2", "--max-threads", str(os.cpu_count()),
        "--retries", "0", "--slurm-init-seconds-before-status-checks", "2", "--configfile", str(configfile),
    ]  # fmt: skip
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=1500)


def test_heavy_jobs_go_through_sbatch_with_gpu_requests(cluster: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_model_dir)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    out = run_on_slurm(tmp_path, tmp_path / "config.yaml")
    assert out.returncode == 0, out.stderr[-5000:]
    assert len(read_parquet(tmp_path / "results" / "score" / "summary.parquet")) > 0
    logs = tmp_path / ".snakemake" / "slurm_logs"
    for rule in HEAVY:
        job_logs = list((logs / f"rule_{rule}").rglob("*.log"))
        assert job_logs, f"{rule} did not run as a SLURM job"
        job_id = job_logs[0].stem
        assert job_id.isdigit()
        shown = subprocess.run(["scontrol", "show", "job", "-d", job_id], capture_output=True, text=True).stdout
        assert "Partition=gpu" in shown and re.search(r"gres[:/]gpu[:=]1", shown), shown
    for rule in ("prepare_data", "import_model", "build_pairs", "summarize", "report"):
        assert not (logs / f"rule_{rule}").exists(), f"{rule} should run locally"


def test_failing_cluster_job_fails_the_run(cluster: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_model_dir)
    premade = tmp_path / "premade.json"
    premade.write_text('[{"question": "Unrelated?", "correct_answer": "x", "wrong_answers": ["y"]}]')
    config["perturb"]["premade"] = str(premade)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    out = run_on_slurm(tmp_path, tmp_path / "config.yaml")
    assert out.returncode != 0
    assert list((tmp_path / ".snakemake" / "slurm_logs" / "rule_perturb").rglob("*.log"))
    assert not (tmp_path / "results" / "perturb" / "perturbations.parquet").exists()
