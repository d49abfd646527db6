"""The embedded default through Snakemake: a run from an empty ``results/``, a no-op rerun, and the rerun after one
scoring setting changes (which must rerun only scoring and the report), plus each job's time and peak memory from
Snakemake's own ``benchmark:`` files."""

from __future__ import annotations

import ast
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import torch
import yaml
from safetensors import safe_open
from snakemake.utils import validate
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from unlearning.config.settings import deep_merge, expand_unlearn, prompt_style, unlearn_settings
from unlearning.inference.batching import common_prefix_length
from unlearning.inference.likelihood import encode_pair
from unlearning.inference.prompting import PromptStyle
from unlearning.models.devices import training_dtype
from unlearning.report.load import load_benchmarks
from unlearning.scoring.evaluation import likelihood_requests, prompts_for
from unlearning.scoring.field_scores import add_wrong_requests, wrong_answers

ROOT = Path(__file__).resolve().parents[1]
# scores feed the base model's known facts, the summary, the operating-point selection and the report
SCORING_RERUN = {"score", "known_facts", "summarize", "select_operating_points", "report"}


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
    """Wall seconds and peak resident memory (MB) of every job that wrote a ``benchmark:`` file, read by the
    report's own reader."""
    root = results / "benchmarks"
    files = {tsv.relative_to(root).with_suffix("").as_posix(): tsv for tsv in sorted(root.rglob("*.tsv"))}
    table = load_benchmarks(files)
    return [{"benchmark": f"job {job}", "seconds": seconds, "peak_rss_mb": rss}
            for job, seconds, rss in zip(table["job"], table["seconds"], table["max_rss_mb"], strict=True)]  # fmt: skip


INFERENCE_INPUTS = ("results/models/smollm2", "results/data/qa.parquet", "results/data/truthfulqa.parquet")
TRAINING_INPUTS = (*INFERENCE_INPUTS, "results/perturb/dpo_pairs.parquet")


def ensure(work_dir: Path, targets: tuple[str, ...]) -> None:
    """Make ``targets`` of the embedded default with Snakemake, unless they are all there already."""
    if not all((work_dir / t).exists() for t in targets):
        snakemake(work_dir, *targets)


def ensure_pairs(work_dir: Path) -> None:
    """The imported model, the data and the DPO pairs of the embedded default, for the training benchmarks."""
    ensure(work_dir, TRAINING_INPUTS)


def merged_config(overrides: dict | None = None) -> dict:
    """config.yaml with ``overrides`` merged in (``{"train": {"precision": "fp32"}}``)."""
    return deep_merge(yaml.safe_load((ROOT / "config.yaml").read_text()), overrides)


def bench_workflow(
    work_dir: Path,
    overrides: dict | None = None,
    *,
    runs: int = 3,
    peak: Callable[[torch.dtype], float] | None = None,
) -> list[dict]:
    """Full run from empty (``runs`` times: the median, and every job's median seconds), no-op rerun,
    scoring-setting rerun; ``work_dir`` must hold no ``results/``. The first run stays in ``work_dir`` for the
    other sections, the others run in folders of it that are removed afterwards.

    ``overrides`` (e.g. ``{"train": {"precision": "fp32"}}``) go into a config file given to every call. With
    ``peak`` (dtype -> the matmul probe's FLOP/s), every training, generation and scoring job gets its achieved
    FLOP/s and share of that peak (:func:`job_flops`)."""
    if runs < 1:
        raise ValueError(f"runs must be at least 1, got {runs}")
    if (work_dir / "results").exists():
        raise FileExistsError(f"{work_dir / 'results'} exists; the end-to-end benchmark starts from an empty one")
    work_dir.mkdir(parents=True, exist_ok=True)
    config = merged_config(overrides)
    base = work_dir / "benchmark_config.yaml"
    base.write_text(yaml.safe_dump(config))
    full, out = snakemake(work_dir, "--configfile", str(base))
    run_seconds, run_costs = [full], [job_costs(work_dir / "results")]
    for k in range(2, runs + 1):
        again = work_dir / f"repeat{k}"
        run_seconds.append(snakemake(again, "--configfile", str(base))[0])
        run_costs.append(job_costs(again / "results"))
        shutil.rmtree(again)
    rows = [{"benchmark": "snakemake --cores all, empty results/", "seconds": statistics.median(run_seconds),
             "runs_s": run_seconds, "reran": sorted(jobs_run(out))}]  # fmt: skip
    noop, out = snakemake(work_dir, "--configfile", str(base))
    if "Nothing to be done" not in out:
        raise RuntimeError(f"the rerun of an up-to-date workflow did work:\n{out[-3000:]}")
    rows.append({"benchmark": "no-op rerun", "seconds": noop, "reran": []})
    costs = median_costs(run_costs)
    if peak is not None:
        costs = with_peak_share(costs, job_flops(work_dir / "results", config), peak)
    config.setdefault("score", {})["batch_size"] = 2 * int(config.get("score", {}).get("batch_size", 16))
    changed = work_dir / "changed_score_setting.yaml"
    changed.write_text(yaml.safe_dump(config))
    seconds, out = snakemake(work_dir, "--configfile", str(changed))
    reran = jobs_run(out)
    if reran != SCORING_RERUN:
        raise RuntimeError(f"changing score.batch_size reran {sorted(reran)}, expected {sorted(SCORING_RERUN)}")
    rows.append({"benchmark": "rerun after a scoring setting change", "seconds": seconds, "reran": sorted(reran)})
    return rows + costs


def median_costs(runs: Sequence[list[dict]]) -> list[dict]:
    """Every job's median seconds over ``runs`` (each :func:`job_costs` of one run) and its largest peak RSS."""
    by_job: dict[str, list[dict]] = {}
    for costs in runs:
        for row in costs:
            by_job.setdefault(row["benchmark"], []).append(row)
    return [{"benchmark": job, "seconds": statistics.median(r["seconds"] for r in rows),
             "peak_rss_mb": max(r["peak_rss_mb"] for r in rows),
             **({"runs_s": [r["seconds"] for r in rows]} if len(rows) > 1 else {})}
            for job, rows in by_job.items()]  # fmt: skip


# ------------------------------------------------------------------------------------- share of the matmul peak


def parameter_count(model_dir: Path) -> int:
    """Parameters of an imported checkpoint (a tied embedding once), from its safetensors headers."""
    total = 0
    for file in sorted(model_dir.glob("*.safetensors")):
        with safe_open(file, "pt") as weights:
            total += sum(math.prod(weights.get_slice(name).get_shape()) for name in weights.keys())  # noqa: SIM118
    if not total:
        raise FileNotFoundError(f"{model_dir}: no safetensors weights to count")
    return total


def pass_tokens(pairs: Sequence[tuple[list[int], list[int]]]) -> int:
    """Tokens one forward pass over ``(prompt ids, continuation ids)`` must run at least: the opening every prompt
    shares once, the rest of every distinct prompt once, and every distinct continuation of each prompt."""
    prompts = list({tuple(p): None for p, _ in pairs})
    opening = common_prefix_length(prompts, limit=min((len(p) - 1 for p in prompts), default=0))
    continuations = {(tuple(p), tuple(c)) for p, c in pairs}
    return opening + sum(len(p) - opening for p in prompts) + sum(len(c) for _, c in continuations)


def inference_tokens(
    results: Path, model: str, variant: str, tokenizer: PreTrainedTokenizerBase, style: PromptStyle
) -> tuple[int, int]:
    """Tokens of one variant's ``generate`` job (each prompt and its greedy answer) and ``score`` job (the
    variant's pass over every true, wrong and TruthfulQA answer, and the base model's judging pass over the
    generations: one pass for ``base``, which judges itself), each as :func:`pass_tokens` counts them."""
    table = pd.read_parquet(results / "generate" / model / f"{variant}.parquet")
    prompts = prompts_for(tokenizer, table["question"], style)
    prompt_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    generate = pass_tokens([(p, []) for p in prompt_ids]) + int(table["new_tokens"].sum())
    requests, _ = likelihood_requests(table, prompts, pd.read_parquet(results / "data" / "truthfulqa.parquet"))
    perturbations = results / "perturb" / "perturbations.parquet"
    wrong = wrong_answers(pd.read_parquet(perturbations)) if perturbations.exists() else {}
    add_wrong_requests(requests, table["id"], prompts, wrong)
    judged = list(zip(prompts, table["generation"], strict=True))
    passes = [requests + judged] if variant == "base" else [requests, judged]
    score = sum(pass_tokens([encode_pair(tokenizer, p, c) for p, c in pairs]) for pairs in passes)
    return generate, score


def job_flops(results: Path, config: dict) -> dict[str, tuple[float, torch.dtype]]:
    """FLOPs and matmul dtype of every training, generation and scoring job of a finished run (``job
    unlearn/smollm2/npo`` -> ...): 6 x parameters x tokens trained (the training log's ``num_tokens``, every
    forget and retain row of every step; the reference pass is not counted), 2 x parameters x tokens for inference
    (:func:`inference_tokens`; scoring runs in float32)."""
    config = json.loads(json.dumps(config))
    validate(config, str(ROOT / "schemas" / "config.schema.yaml"))  # the schema's defaults, as the Snakefile sees
    out: dict[str, tuple[float, torch.dtype]] = {}
    for model in config["models"]:
        model_dir = results / "models" / model
        params = parameter_count(model_dir)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        style = PromptStyle(**prompt_style(config, model))
        for entry in expand_unlearn(config):
            log = pd.read_parquet(results / "unlearn" / model / entry / "log.parquet")
            dtype = training_dtype(unlearn_settings(config, model, entry)["precision"], torch.device("cpu"))
            out[f"job unlearn/{model}/{entry}"] = (6.0 * params * float(log["num_tokens"].max()), dtype)
        for variant in ["base", *expand_unlearn(config)]:
            generate, score = inference_tokens(results, model, variant, tokenizer, style)
            out[f"job generate/{model}/{variant}"] = (2.0 * params * generate, torch.float32)
            out[f"job score/{model}/{variant}"] = (2.0 * params * score, torch.float32)
    return out


def with_peak_share(
    costs: list[dict], flops: dict[str, tuple[float, torch.dtype]], peak: Callable[[torch.dtype], float]
) -> list[dict]:
    """``costs`` with achieved FLOP/s and the share of the matmul probe's peak in the job's dtype, where known."""
    out = []
    for row in costs:
        if row["benchmark"] in flops:
            work, dtype = flops[row["benchmark"]]
            rate = work / row["seconds"]
            row = {**row, "flops_per_s": rate, "pct_of_matmul_peak": 100 * rate / peak(dtype),
                   "dtype": str(dtype).removeprefix("torch.")}  # fmt: skip
        out.append(row)
    return out


# ------------------------------------------------------------------------------------- cost curves

ROMAN = ("", " II", " III", " IV", " V", " VI", " VII", " VIII")
HEAVY_STAGES = ("perturb", "unlearn", "generate", "score", "export", "attack")


def replicate_persons(table: pd.DataFrame, factor: int, persons: list[str], question: str = "question") -> pd.DataFrame:
    """``table`` ``factor`` times: in copy ``k`` every name of ``persons`` becomes its ``k``-th copy ("Marie Curie"
    -> "Marie Curie II", III, ...) in every text cell, so each copy is a distinct person with the same kind of facts.
    Copies after the first keep only the rows whose ``question`` column names one of ``persons`` (a reverse probe,
    "Which physicist is best known for relativity?", would repeat its question); cells that are not text (missing
    values of optional columns) stay as they are."""
    if not 1 <= factor <= len(ROMAN):
        raise ValueError(f"factor must be 1..{len(ROMAN)}, not {factor}")
    text = [c for c in table.columns if pd.api.types.is_string_dtype(table[c])]
    pattern = "|".join(re.escape(p) for p in sorted(persons, key=len, reverse=True))
    named = table[question].str.contains(pattern, regex=True, na=False)
    copies = [table]
    for k in range(1, factor):
        copy = table[named].copy()
        for column in text:
            copy[column] = copy[column].str.replace(pattern, lambda m, k=k: m.group(0) + ROMAN[k], regex=True)
        copies.append(copy)
    return pd.concat(copies, ignore_index=True)


def scaled_config(config: dict, work_dir: Path, factor: int) -> Path:
    """A config file of ``config`` whose forget persons are replicated ``factor`` times, with their pre-made wrong
    answers (so the perturb stage does the same kind of work at every scale)."""
    forget = config["data"]["persons"]["forget"]
    source = pd.read_csv(ROOT / forget["path"])
    work_dir.mkdir(parents=True, exist_ok=True)
    columns = {**config["data"]["persons"].get("columns", {}), **(forget.get("columns") or {})}
    persons = list(source[columns.get("person", "title")].unique())
    scaled = work_dir / f"forget_x{factor}.csv"
    replicate_persons(source, factor, persons, columns.get("question", "question")).to_csv(scaled, index=False)
    out = json.loads(json.dumps(config))
    out["data"]["persons"]["forget"] = {**forget, "path": str(scaled)}
    for spec in out["data"]["persons"].values():  # the other files stay where the repository has them
        if isinstance(spec, dict) and spec.get("source") == "local" and not Path(spec["path"]).is_absolute():
            spec["path"] = str(ROOT / spec["path"])
    tqa = out["data"]["truthfulqa"]
    if tqa.get("source") == "local" and not Path(tqa["path"]).is_absolute():
        tqa["path"] = str(ROOT / tqa["path"])
    premade = out.get("perturb", {}).get("premade")
    if premade:
        wrong = work_dir / f"wrong_answers_x{factor}.csv"
        replicate_persons(pd.read_csv(ROOT / premade), factor, persons).to_csv(wrong, index=False)
        out["perturb"]["premade"] = str(wrong)
    path = work_dir / f"config_x{factor}.yaml"
    path.write_text(yaml.safe_dump(out, sort_keys=False))
    return path


def stage_of(job: str) -> str:
    """``job unlearn/smollm2/dpo`` -> ``unlearn``; ``job perturb`` -> ``perturb``."""
    return job.removeprefix("job ").split("/", 1)[0]


def stage_costs(costs: list[dict]) -> dict[str, dict[str, float]]:
    """Per heavy stage: seconds summed over its jobs, the largest job's peak RSS and the number of jobs."""
    out: dict[str, dict[str, float]] = {}
    for row in costs:
        stage = stage_of(row["benchmark"])
        if stage in HEAVY_STAGES:
            agg = out.setdefault(stage, {"seconds": 0.0, "peak_rss_mb": 0.0, "jobs": 0})
            agg["seconds"] += row["seconds"]
            agg["peak_rss_mb"] = max(agg["peak_rss_mb"], row["peak_rss_mb"])
            agg["jobs"] += 1
    return out


def work_counts(results: Path) -> dict[str, int]:
    """The units each heavy stage's work is proportional to, read from the run's own artifacts: questions the
    perturber answers (forget), training examples of every entry (pairs or forget_train rows, times epochs),
    evaluation questions (generate, score: every variant answers and is scored on all of them), variants exported,
    and questions attacked (every attack run's held-out known facts)."""
    qa = pd.read_parquet(results / "data" / "qa.parquet")
    pairs = results / "perturb" / "dpo_pairs.parquet"
    n_pairs = len(pd.read_parquet(pairs)) if pairs.exists() else 0
    n_tqa = len(pd.read_parquet(results / "data" / "truthfulqa.parquet"))
    forget = int(qa["split"].str.startswith("forget").sum())
    attacked = sum(len(pd.read_parquet(p, columns=["id"])) for p in (results / "attack").glob("*/*/*.parquet"))
    return {"perturb": forget, "unlearn": n_pairs + int((qa["split"] == "forget_train").sum()),
            "generate": len(qa) + n_tqa, "score": len(qa) + n_tqa,
            "export": len(list((results / "export").glob("*/*/export.json"))), "attack": attacked}  # fmt: skip


def curve_rows(points: dict[int, dict]) -> list[dict]:
    """One row per (scale, stage) and per scale for the DAG: measured seconds, the time expected from the 1x point
    if cost were proportional to the stage's work (``work_counts``), and measured / expected."""
    base = points[min(points)]
    rows = []
    for factor, point in sorted(points.items()):
        expected_total = 0.0
        for stage in HEAVY_STAGES:
            if stage not in point["stages"] or stage not in base["stages"]:
                continue
            measured = point["stages"][stage]["seconds"]
            expected = base["stages"][stage]["seconds"] * point["work"][stage] / base["work"][stage]
            expected_total += expected
            rows.append({"benchmark": f"cost curve x{factor}: {stage}", "scale": factor, "stage": stage,
                         "items": point["work"][stage], "seconds": measured, "expected_s": expected,
                         "measured_over_expected": measured / expected,
                         "peak_rss_mb": point["stages"][stage]["peak_rss_mb"]})  # fmt: skip
        base_total = sum(s["seconds"] for s in base["stages"].values())
        expected_dag = base["dag_seconds"] * expected_total / base_total
        rows.append({"benchmark": f"cost curve x{factor}: DAG wall time", "scale": factor, "stage": "DAG",
                     "seconds": point["dag_seconds"], "expected_s": expected_dag,
                     "measured_over_expected": point["dag_seconds"] / expected_dag})  # fmt: skip
    return rows


def bench_curves(work_dir: Path, factors: tuple[int, ...], overrides: dict | None = None) -> list[dict]:
    """The DAG from an empty ``results/`` at each scale of the forget set, and the stage costs of each run."""
    config = merged_config(overrides)
    points = {}
    for factor in factors:
        run_dir = work_dir / f"x{factor}"
        configfile = scaled_config(config, run_dir, factor)
        seconds, _ = snakemake(run_dir, "--configfile", str(configfile))
        costs = job_costs(run_dir / "results")
        points[factor] = {"dag_seconds": seconds, "stages": stage_costs(costs),
                          "work": work_counts(run_dir / "results")}  # fmt: skip
        # each point as it is measured: ``curve_rows(json.load(...))`` rebuilds the table of a run stopped part-way
        (work_dir / "points.json").write_text(json.dumps(points, indent=2))
    return curve_rows(points)


# ------------------------------------------------------------------------------------- one copy of the weights


HEAVY_ENTRIES = {
    "perturb": "perturb.py", "unlearn": "unlearn.py", "generate": "generate.py", "score": "score.py",
    "describe": "describe.py", "corpus_score": "corpus_score.py",
}  # fmt: skip
LOADERS = {"load_model", "load_imported", "from_pretrained"}


def loader_calls(tree: ast.AST, loaders: set[str]) -> int:
    """Calls of a function named in ``loaders`` (plain or as an attribute) anywhere in ``tree``."""
    calls = [n.func for n in ast.walk(tree) if isinstance(n, ast.Call)]
    return sum((f.id if isinstance(f, ast.Name) else getattr(f, "attr", "")) in loaders for f in calls)


def weight_loads(scripts: Path = ROOT / "workflow_scripts") -> dict[str, int]:
    """How many times each heavy entry script loads the weights (``load_model``, ``load_imported``,
    ``from_pretrained``; the unlearn entry through the engine's ``train``, counted inside it); each must be 1: the
    reference policy and the perplexity judge are the same weights with the adapter disabled."""
    counts = {stage: loader_calls(ast.parse((scripts / name).read_text()), LOADERS) for stage, name in
              HEAVY_ENTRIES.items()}  # fmt: skip
    tree = ast.parse((scripts / "unlearning" / "training" / "engine.py").read_text())
    train_fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "train")
    counts["unlearn"] += loader_calls(ast.parse((scripts / "unlearn.py").read_text()), {"train"}) * loader_calls(
        train_fn, LOADERS
    )
    return counts
