"""The benchmark's own arithmetic and parsing, so that its table means what it says."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_training import ABLATION, TokenStats, Variant, executed_flops, linear_params  # noqa: E402
from bench_workflow import jobs_run  # noqa: E402
from hardware import matmul_flops  # noqa: E402


def test_executed_flops_count_what_each_variant_runs() -> None:
    stats, params = TokenStats(sequence_tokens=10, answer_tokens=4), (100, 50)
    # forward 2*100*10 + 2*50*10 = 3000; policy 2 x 3000 x 3 epochs; reference 3000 x 3; recompute 2*100*10 x 3
    assert executed_flops(stats, params, 3, ABLATION[0]) == 18_000 + 9_000 + 6_000
    ours = Variant("ours", gradient_checkpointing=False, autocast_bf16=False, compact_head=True, precompute_ref=True)
    # forward 2000 + 2*50*4 = 2400; policy 2 x 2400 x 3; reference once
    assert executed_flops(stats, params, 3, ours) == 14_400 + 2_400


def test_linear_params_split_backbone_and_head_and_skip_lora() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 5))
    model.get_output_embeddings = lambda: model[1]
    model.add_module("lora_A", torch.nn.Linear(4, 2))
    assert linear_params(model) == (12, 15)


def test_jobs_run_reads_snakemakes_job_stats() -> None:
    output = "Job stats:\njob          count\n---------  -------\nall              1\nreport           1\n"
    output += "score            2\nsummarize        1\ntotal            5\n\nSelect jobs to execute..."
    assert jobs_run(output) == {"report", "score", "summarize"}
    assert jobs_run("Nothing to be done (all requested files are present and up to date).") == set()


def test_matmul_probe_measures_a_real_product() -> None:
    assert matmul_flops(torch.float32, (32, 32, 32), seconds=0.05) > 1e6
