"""The benchmark's own arithmetic and parsing, so that its table means what it says, and its one entry point."""

from __future__ import annotations

import ast
import json
import math
import re
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from matmul_peak import matmul_flops  # noqa: E402
from training_speed import ABLATION, TokenStats, Variant, executed_flops, linear_params  # noqa: E402
from workflow_time import jobs_run, median_costs, pass_tokens, with_peak_share  # noqa: E402

EVERY_SECTION = ("workflow", "training", "methods", "generation", "likelihood", "curves", "memory", "sample",
                 "plausibility", "gpu", "frontier")  # fmt: skip


# ------------------------------------------------------------------------------------- one entry point, its sections


def test_run_help_lists_every_section_and_the_default_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    from run import DEFAULT_SECTIONS, SECTIONS, arguments

    assert SECTIONS == EVERY_SECTION
    assert DEFAULT_SECTIONS == ("workflow", "training", "methods", "generation", "likelihood", "curves"), "as before"
    monkeypatch.setenv("COLUMNS", "200")
    out = arguments().format_help()  # what `python benchmarks/run.py --help` prints
    for section in EVERY_SECTION:
        assert re.search(rf"^  {section} +\S", out, flags=re.M), f"--help does not describe the section {section}"
    words = " ".join(out.split())
    extra = ", ".join(EVERY_SECTION[6:])
    assert f"Default: {', '.join(EVERY_SECTION[:6])}; {extra} run only when named" in words
    for option in ("--only", "--work-dir", "--precision", "--method", "--adapter", "--persons", "--premade",
                   "--questions", "--max-rounds", "--sample", "--sample-seed", "--per-question", "--csv",
                   "--dump"):  # fmt: skip
        assert re.search(rf"^  {option}( |$)", out, flags=re.M), f"--help lacks {option}"


def test_run_py_is_the_only_entry_point() -> None:
    """No helper has a ``__main__`` block or its own argument parser: every benchmark is a section of run.py."""
    for path in sorted(BENCHMARKS.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        mains = [node for node in tree.body if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)]
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        if path.name == "run.py":
            assert len(mains) == 1 and "argparse" in imported
        else:
            assert not mains, f"{path.name} has a __main__ block: make it a section of run.py"
            assert "argparse" not in imported, f"{path.name} parses its own arguments"


def test_gpu_section_fails_at_once_without_cuda(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import run
    from gpu_check import cuda_missing, gpu_check

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "needs a CUDA device" in cuda_missing()
    with pytest.raises(RuntimeError, match="needs a CUDA device"):
        gpu_check(tmp_path, {}, "smollm2")
    monkeypatch.setattr(sys, "argv", ["run.py", "--only", "gpu", "--work-dir", str(tmp_path / "work")])
    with pytest.raises(SystemExit, match="the gpu section needs a CUDA device"):
        run.main()
    assert not (tmp_path / "work").exists(), "nothing ran before the check"


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


def test_job_costs_read_snakemakes_benchmark_files(tmp_path: Path) -> None:
    from workflow_time import job_costs

    header = "s\th:m:s\tmax_rss\tmax_vms\n"
    (tmp_path / "benchmarks" / "unlearn" / "smollm2").mkdir(parents=True)
    (tmp_path / "benchmarks" / "unlearn" / "smollm2" / "dpo.tsv").write_text(header + "60.5\t0:01:00\t4000.2\t5000\n")
    (tmp_path / "benchmarks" / "summarize.tsv").write_text(header + "2.0\t0:00:02\t300\t400\n")
    assert job_costs(tmp_path) == [
        {"benchmark": "job summarize", "seconds": 2.0, "peak_rss_mb": 300.0},
        {"benchmark": "job unlearn/smollm2/dpo", "seconds": 60.5, "peak_rss_mb": 4000.2},
    ]


def test_pass_tokens_count_the_shared_opening_once_and_each_distinct_continuation() -> None:
    opening = list(range(100, 110))  # 10 tokens every prompt shares
    a, b = [*opening, 1, 2], [*opening, 3]
    # a's prompt twice (one distinct continuation twice, another once), b once; an empty continuation adds nothing
    pairs = [(a, [7, 8]), (a, [7, 8]), (a, [9]), (b, [5, 6, 7]), (b, [])]
    assert pass_tokens(pairs) == 10 + 2 + 1 + (2 + 1 + 3)
    assert pass_tokens([([1, 2, 3], [4])]) == 3 + 1  # one prompt: nothing shared


def test_workflow_jobs_get_their_median_and_share_of_the_peak_in_their_dtype() -> None:
    runs = [[{"benchmark": "job score/m/base", "seconds": s, "peak_rss_mb": m}] for s, m in ((10, 5), (30, 7), (20, 6))]
    [row] = median_costs(runs)
    assert row["seconds"] == 20 and row["peak_rss_mb"] == 7 and row["runs_s"] == [10, 30, 20]
    peaks = {torch.float32: 100.0, torch.bfloat16: 400.0}
    flops = {"job score/m/base": (1000.0, torch.float32), "job unlearn/m/npo": (8000.0, torch.bfloat16)}
    costs = [row, {"benchmark": "job unlearn/m/npo", "seconds": 40.0, "peak_rss_mb": 1.0},
             {"benchmark": "job perturb", "seconds": 2.0, "peak_rss_mb": 1.0}]  # fmt: skip
    score, unlearn, perturb = with_peak_share(costs, flops, peaks.__getitem__)
    assert score["flops_per_s"] == 50.0 and score["pct_of_matmul_peak"] == 50.0 and score["dtype"] == "float32"
    assert unlearn["flops_per_s"] == 200.0 and unlearn["pct_of_matmul_peak"] == 50.0
    assert "pct_of_matmul_peak" not in perturb


def test_matmul_probe_measures_a_real_product() -> None:
    assert matmul_flops(torch.float32, (32, 32, 32), seconds=0.05) > 1e6


# ------------------------------------------------------------------------------------- every method vs plain Trainer


def test_method_rows_ratio_and_loss_tolerance() -> None:
    from methods_speed import LOSS_TOLERANCE, compare_rows, loss_agrees, steps_per_epoch

    assert steps_per_epoch(25, {"batch_size": 8, "grad_accum": 1}) == 4
    assert steps_per_epoch(25, {"batch_size": 8, "grad_accum": 3}) == 2
    assert LOSS_TOLERANCE == (0.05, 0.05)
    assert loss_agrees(10.4, 10.0) and not loss_agrees(10.6, 10.0), "5% of the baseline's loss"
    assert loss_agrees(0.04, 0.0) and not loss_agrees(0.06, 0.0), "at least 0.05"
    ours = {"seconds": 10.0, "tokens": 1000, "losses": [3.0, 2.0, 1.0, 1.0], "dtype": "bfloat16"}
    whole = {"seconds": 20.0, "tokens": 1000, "losses": [3.0, 2.0, 1.0, 1.2], "dtype": "bfloat16"}
    plain = {"seconds": 40.0, "tokens": 1000, "losses": [3.0, 2.0, 1.02, 1.0], "dtype": "bf16 autocast"}
    base, whole, row = compare_rows("npo", plain, {"whole": whole, "ours": ours}, per_epoch=2)
    assert base["tokens_per_s"] == 25.0 and row["tokens_per_s"] == 100.0 and row["ratio_vs_baseline"] == 4.0
    assert whole["ratio_vs_baseline"] == 2.0 and "every prompt run whole (padded rows)" in whole["benchmark"]
    assert base["last_epoch_loss"] == 1.01 and row["last_epoch_loss"] == 1.0
    assert row["loss_agrees"] and row["same_tokens"] and row["steps"] == 4
    assert not whole["loss_agrees"], "1.1 against 1.01 is beyond 5%"


def test_repeated_runs_show_the_median_run_and_list_every_clock() -> None:
    from methods_speed import median_run
    from run import detail

    runs = [{"seconds": s, "losses": [float(s)]} for s in (30.0, 10.0, 20.0)]
    assert median_run(runs) == {"seconds": 20.0, "losses": [20.0], "runs_s": [30.0, 10.0, 20.0]}
    assert median_run(runs[:2])["seconds"] == 10.0, "the lower middle of an even count: a run that happened"
    assert "median of 30.0, 10.0, 20.0 s" in detail({"runs_s": [30.0, 10.0, 20.0]})
    assert "median" not in detail({"runs_s": [30.0]})


@pytest.mark.parametrize(
    "method", ["dpo", "idk_dpo", "grad_ascent", "grad_diff", "npo", "simnpo", "rmu", "undial", "ihl"]
)
def test_plain_baseline_trains_the_same_loss_as_the_project(tiny_manifest, tmp_path: Path, method: str) -> None:  # noqa: ANN001
    """On the tiny model in fp32 the plain Trainer and the project's engine see the same tokens and agree on every
    step's loss: the speed-ups (answer-position head, precomputed reference, early-exit RMU) change no result."""
    from methods_speed import run_ours, run_plain, training_data
    from test_training import PAIRS, STYLE, settings

    qa = pd.concat([
        pd.DataFrame({"id": PAIRS["source_id"], "person": "painter", "question": PAIRS["prompt"],
                      "answer": PAIRS["rejected"], "split": "forget_train"}),
        pd.DataFrame({"id": ["r0", "r1", "r2", "r3"], "person": "composer", "split": "retain",
                      "question": [f"Where was the composer number {i} born?" for i in range(4)],
                      "answer": [f"The composer was born in Vienna in {1700 + i}." for i in range(4)]}),
    ])  # fmt: skip
    retain_weight = 0.0 if method == "grad_ascent" else 1.0
    cfg = settings(method=method, settings={}, epochs=1, learning_rate=1e-3, retain_weight=retain_weight,
                   save_steps=10**6)  # fmt: skip
    data = training_data(qa, PAIRS, cfg["retain_split"])
    plain = run_plain(tiny_manifest, cfg, data, STYLE, tmp_path / "plain")
    ours = run_ours(tiny_manifest, cfg, data, STYLE, tmp_path / "ours")
    assert plain["tokens"] == ours["tokens"] and len(plain["losses"]) == len(ours["losses"]) == 2
    assert ours["losses"] == pytest.approx(plain["losses"], rel=1e-3, abs=1e-4)


# ------------------------------------------------------------------------------------- inference, curves, machine


def test_unshared_calls_hold_distinct_prompts_and_every_request_once() -> None:
    from inference_speed import without_shared_prompts

    prompts = ["a", "b", "a", "c", "a", "b"]
    calls = without_shared_prompts(prompts, ["x"] * len(prompts))
    assert calls == [[0, 1, 3], [2, 5], [4]]
    assert all(len({prompts[i] for i in call}) == len(call) for call in calls)


def test_ratios_and_identical_share_are_against_the_last_row() -> None:
    from inference_speed import against_baseline

    rows = [{"tokens_per_s": 80.0}, {"tokens_per_s": 40.0}, {"tokens_per_s": 10.0}]
    against_baseline(rows, [["a", "b"], ["a", "x"], ["a", "b"]], "tokens_per_s", lambda a, b: a == b)
    assert [r.get("ratio_vs_baseline") for r in rows] == [8.0, 4.0, None]
    assert rows[0]["identical_outputs"] == 1.0 and rows[1]["identical_outputs"] == 0.5


def test_replicated_persons_are_distinct_people_with_the_same_facts() -> None:
    from workflow_time import replicate_persons

    persons = pd.DataFrame({"title": ["Ada Lovelace", "Ada Lovelace", "Alan Turing", "Alan Turing"],
                            "question": ["Where was Ada Lovelace born?", "When was Ada Lovelace born?",
                                         "Where did Alan Turing work?", "Who broke Enigma?"],
                            "answer": ["Ada Lovelace was born in London.", "1815.", "At Bletchley Park.",
                                       "Alan Turing"],
                            "kind": [None, "paraphrase", None, "reverse"]})  # fmt: skip
    out = replicate_persons(persons, 3, ["Ada Lovelace", "Alan Turing"])
    assert len(out) == 10 and out["title"].nunique() == 6
    assert out["question"].is_unique, "a reverse probe (no name in its question) is not copied"
    assert "Ada Lovelace III" in set(out["title"]) and "Where was Ada Lovelace II born?" in set(out["question"])
    assert "Ada Lovelace III was born in London." in set(out["answer"])
    assert out["kind"].isna().sum() == 6, "missing values stay missing (not the text 'nan')"
    assert out.iloc[:4].equals(persons), "the first copy is the original"
    wrong = pd.DataFrame({"question": ["Where was Ada Lovelace born?", "Where was Bob born?"], "answer": ["Paris"] * 2})
    copied = replicate_persons(wrong, 2, ["Ada Lovelace"])
    assert copied["question"].tolist() == [*wrong["question"], "Where was Ada Lovelace II born?"]


def test_cost_curve_expected_time_scales_the_1x_point_by_the_work() -> None:
    from workflow_time import curve_rows, stage_costs

    costs = [{"benchmark": "job unlearn/smollm2/dpo", "seconds": 60.0, "peak_rss_mb": 4000.0},
             {"benchmark": "job unlearn/smollm2/npo", "seconds": 40.0, "peak_rss_mb": 3000.0},
             {"benchmark": "job generate/smollm2/base", "seconds": 30.0, "peak_rss_mb": 1500.0},
             {"benchmark": "job summarize", "seconds": 2.0, "peak_rss_mb": 300.0}]  # fmt: skip
    stages = stage_costs(costs)
    assert stages == {"unlearn": {"seconds": 100.0, "peak_rss_mb": 4000.0, "jobs": 2},
                      "generate": {"seconds": 30.0, "peak_rss_mb": 1500.0, "jobs": 1}}  # fmt: skip
    twice = {"unlearn": {"seconds": 190.0, "peak_rss_mb": 4100.0, "jobs": 2},
             "generate": {"seconds": 36.0, "peak_rss_mb": 1500.0, "jobs": 1}}  # fmt: skip
    points = {1: {"dag_seconds": 200.0, "stages": stages, "work": {"unlearn": 100, "generate": 300}},
              2: {"dag_seconds": 300.0, "stages": twice, "work": {"unlearn": 200, "generate": 330}}}  # fmt: skip
    rows = {(r["scale"], r["stage"]): r for r in curve_rows(points)}
    assert rows[(2, "unlearn")]["expected_s"] == 200.0 and rows[(2, "unlearn")]["measured_over_expected"] == 0.95
    assert rows[(2, "generate")]["expected_s"] == pytest.approx(33.0)
    # the DAG's expected wall time: the 1x wall time scaled by the expected stage total (233 of 130 s)
    assert rows[(2, "DAG")]["expected_s"] == pytest.approx(200.0 * 233.0 / 130.0)
    assert rows[(1, "DAG")]["measured_over_expected"] == pytest.approx(1.0)


def test_no_heavy_job_loads_the_weights_twice() -> None:
    from workflow_time import weight_loads

    assert weight_loads() == {"perturb": 1, "unlearn": 1, "generate": 1, "score": 1, "describe": 1, "corpus_score": 1}


def test_cpu_features_say_whether_bf16_is_native() -> None:
    from matmul_peak import cpu_features

    assert cpu_features("fpu avx2 fma") == "avx2; bf16 emulated"
    assert cpu_features("avx2 avx512f avx512_bf16") == "avx2 avx512f avx512_bf16; bf16 native"
    assert cpu_features("amx_bf16 amx_tile avx2").endswith("bf16 native")


def test_gpu_check_knows_the_bf16_peaks_and_reads_the_halvings(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    from gpu_check import Halvings, bf16_peak

    monkeypatch.delenv("GPU_BF16_PEAK_TFLOPS", raising=False)
    assert bf16_peak("NVIDIA H200") == 989e12 and bf16_peak("NVIDIA H100 PCIe") == 756e12
    assert bf16_peak("NVIDIA A100-SXM4-80GB") == 312e12 and bf16_peak("Some GPU") is None
    monkeypatch.setenv("GPU_BF16_PEAK_TFLOPS", "100")
    assert bf16_peak("Some GPU") == 100e12
    handler = Halvings()
    logger = logging.getLogger("test-halvings")
    logger.addHandler(handler)
    logger.warning("%s: CUDA out of memory; retrying with batch size %d", "likelihood", 8)
    logger.warning("unrelated")
    assert handler.sizes == [8]


def test_inference_rows_on_the_tiny_model(tiny_manifest) -> None:  # noqa: ANN001
    """Every generation and likelihood row runs on a real model: the project's rows, each speed-up turned off on its
    own, the one-at-a-time baseline; same answers and log-likelihoods throughout."""
    from inference_speed import bench_generation, bench_likelihood

    from unlearning.inference.prompting import build_prompt
    from unlearning.models.checkpoints import load_model

    model, tokenizer = load_model(tiny_manifest, device=torch.device("cpu"))
    prompts = [build_prompt(tokenizer, q) for q in ["Who?", "Where was she born?", "When did she move to Paris?"]]
    gen = bench_generation(model, tokenizer, prompts, batch_size=2, max_new_tokens=6)
    assert [r["benchmark"].split(", ")[-1] for r in gen] == [
        "finished rows dropped (this project)", "no shared opening", "model.generate (finished rows kept)",
        "model.generate (baseline)"]  # fmt: skip
    assert all(r["identical_outputs"] == 1.0 and r["ratio_vs_baseline"] > 0 for r in gen[:-1])
    requests = [(prompts[0], "Marie Curie."), (prompts[0], "Pierre."), (prompts[1], "Warsaw"), (prompts[2], "1891")]
    lik = bench_likelihood(model, tokenizer, requests, batch_size=2)
    assert len(lik) == 4 and "nothing packed" in lik[1]["benchmark"] and "no prompt shared" in lik[2]["benchmark"]
    assert all(r["max_abs_loglik_diff"] < 1e-4 for r in lik[:-1])


# ------------------------------------------------------------------------------------- memory, sample, plausibility


def test_training_memory_measures_a_fresh_process(tiny_manifest, tmp_path: Path) -> None:  # noqa: ANN001
    """The memory section's job runs in its own process and reports that process's peak: on the tiny model a
    real training run, whose peak holds at least torch (over 100 MB) but not this test process's history."""
    from test_training import PAIRS, STYLE, settings
    from training_memory import in_fresh_process

    from unlearning.core.parquet_io import write_parquet

    tiny_manifest.save(tmp_path / "model.json")
    qa = pd.DataFrame({"id": PAIRS["source_id"], "person": "painter", "question": PAIRS["prompt"],
                       "answer": PAIRS["rejected"], "split": "forget_train"})  # fmt: skip
    write_parquet(qa, tmp_path / "qa.parquet", stage="test", config={}, seed=0)
    cfg = settings(method="npo", settings={}, epochs=1, retain_weight=0.0, save_steps=10**6)
    spec = {"cfg": cfg, "manifest": str(tmp_path / "model.json"), "qa": str(tmp_path / "qa.parquet"), "pairs": None,
            "style": vars(STYLE), "out_dir": str(tmp_path / "job")}  # fmt: skip
    result = in_fresh_process(spec)
    assert result["steps"] == 2 and result["dtype"] in ("float32", "bfloat16")
    assert 100 < result["peak_rss_mb"] < 4000
    assert json.loads((tmp_path / "job" / "job.json").read_text())["cfg"]["method"] == "npo"


def test_sample_known_facts_tables_per_file_and_person(tmp_path: Path) -> None:
    from sample_known_facts import SAMPLE_FILES, dump, per_file, per_person, sample_questions

    assert all(path.is_file() for path in SAMPLE_FILES)
    csv = tmp_path / "mine.csv"
    csv.write_text("title,question,answer\nAda,Where was Ada born?,London\nAda,When?,1815\nAlan,Where?,Wilmslow\n")
    table = sample_questions([csv])
    assert table["split"].eq("mine.csv").all() and table["reference"].tolist() == ["London", "1815", "Wilmslow"]
    assert table["id"].is_unique
    table["generation"] = ["In London.", "1816", "Wilmslow"]
    table["rougeL_recall"], table["known"] = [1.0, 0.0, 1.0], [True, False, True]
    assert per_file(table).splitlines()[-1] == "| mine.csv | 2 | 3 | 2 | 67% | 0.667 |"
    assert per_person(table).splitlines() == ["mine.csv\tAda\tknown 1/2", "mine.csv\tAlan\tknown 1/1"]
    assert "  - 0.00  Q: When?  A: 1815\n\tM: 1816" in per_person(table, per_question=True)
    dump(table, tmp_path / "out.tsv")
    assert (tmp_path / "out.tsv").read_text().splitlines()[
        0
    ] == "file\ttitle\tquestion\tanswer\toutput\trougeL_recall\tknown"


def test_plausibility_subset_and_report() -> None:
    from perturb_plausibility import forget_train, report

    from unlearning.perturbation.wrong_answers import PerturbResult

    qa = pd.DataFrame({"id": [f"q{i}" for i in range(6)], "question": [f"Q{i}?" for i in range(6)],
                       "answer": [f"A{i}" for i in range(6)], "kind": ["qa"] * 5 + ["reverse"],
                       "split": ["forget_train"] * 4 + ["forget_test", "forget_train"]})  # fmt: skip
    train, held_out = forget_train(qa, None, 0)
    assert train["id"].tolist() == ["q0", "q1", "q2", "q3"] and held_out["id"].tolist() == ["q4"]
    subset, _ = forget_train(qa, 2, 0)
    assert len(subset) == 2 and set(subset["id"]) <= set(train["id"])
    assert subset.equals(forget_train(qa, 2, 0)[0]), "the subset is seeded"
    kept = pd.DataFrame({"question": ["Q0?", "Q1?"], "answer": ["A0", "A1"], "perturbed": ["B0", "B1"]})
    text = report(PerturbResult(kept, {"accepted": 2, "uncovered_ids": ["q9"]}), sample=5, seed=0)
    assert json.loads(text.split("\n 1. ")[0]) == {"accepted": 2}
    assert "| truth: A0 | wrong: B0" in text and len(text.splitlines()) == 5


def _frontier_summary(retain_high: float) -> pd.DataFrame:
    """A summary of base and one variant: recall 0.8 on every held-out known split, and the variant's changes."""
    rows = []
    for split in ("forget_train", "forget_test", "retain_test", "general_test"):
        rows.append(("base", split, "known", "rougeL_recall", 0.8, math.nan, math.nan))
        for variant, value in (("base", 4.0), ("v", 4.1)):
            rows.append((variant, split, "all", "fluency_entropy", value, math.nan, math.nan))
    rows += [
        ("v", "forget_test", "known", "rougeL_recall_drop", 0.48, 0.40, 0.56),  # 60% of 0.8
        ("v", "forget_train", "known", "rougeL_recall_drop", 0.64, 0.56, 0.72),
        ("v", "retain_test", "known", "rougeL_recall_drop", 0.02, -0.02, retain_high),
        ("v", "general_test", "known", "rougeL_recall_drop", 0.0, -0.04, 0.04),
        ("v", "forget_test", "known", "answer_prob_change", -0.2, -0.3, -0.1),
        ("v", "truthfulqa", "all", "mc2_change", 0.01, -0.01, 0.03),
    ]
    table = pd.DataFrame(rows, columns=["variant", "split", "subset", "metric", "value", "ci_low", "ci_high"])
    return table.assign(model="m", kind="all", ci_note="")


@pytest.mark.parametrize(("retain_high", "meets"), [(0.08, "yes"), (0.12, "no")])
def test_frontier_reads_drops_as_shares_of_the_base_and_checks_the_target(
    tmp_path: Path, retain_high: float, meets: str
) -> None:
    from frontier import frontier

    (tmp_path / "score").mkdir()
    _frontier_summary(retain_high).to_parquet(tmp_path / "score" / "summary.parquet")
    row = frontier(tmp_path).iloc[0]
    assert row["forget_test"] == "+60% [+50%, +70%]" and row["forget_train"] == "+80% [+70%, +90%]"
    assert row["retain_test"] == f"+2% [-2%, +{100 * retain_high / 0.8:.0f}%]"
    assert row["judgement"] == "removed" and row["fluency"] == "+2%" and row["MC2"] == "+0.010 [-0.010, +0.030]"
    assert row["target"] == meets, "the neighbours' interval must end at or below 10% of the base figure"
