"""One benchmark of every heavy stage on the embedded default (SmolLM2-135M-Instruct and the sample data), each
against its baseline in the same process run. Prints a Markdown table and writes it as JSON.

    python benchmarks/run.py                          # everything (well over an hour on 2 CPU cores)
    python benchmarks/run.py --only methods --method-epochs 1 --precision fp32
    python benchmarks/run.py --only methods --method-epochs 1 --repeats 3   # median of three runs each
    python benchmarks/run.py --only curves --scales 1 2 4

Sections: ``workflow`` (Snakemake from an empty results/, no-op rerun, rerun after a scoring setting change, each
job's time and peak memory), ``training`` (plain trl.DPOTrainer with default settings against this project's
training, with each speed-up's share), ``methods`` (every registered method: this project's training against a
plain Hugging Face Trainer with the same loss), ``generation`` and ``likelihood`` (batched against one item at a
time, each speed-up on its own), ``curves`` (the DAG and each heavy stage at 1x, 2x, 4x the forget set). A
short matmul probe gives the machine's FLOP/s, the ceiling of the training rows' percentages. The workflow section
runs first and its artifacts (imported model, DPO pairs) feed the others; without it, Snakemake makes just those.
Runs unchanged on CUDA (bf16 there).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch
import yaml
from bench_inference import bench_inference
from bench_methods import LOSS_TOLERANCE as METHOD_TOLERANCE
from bench_methods import bench_methods
from bench_training import LOSS_TOLERANCE, bench_training
from bench_workflow import INFERENCE_INPUTS, bench_curves, bench_workflow, ensure, ensure_pairs, weight_loads
from hardware import machine, matmul_flops
from snakemake.utils import validate

from unlearning.methods import METHODS
from unlearning.models import Manifest, load_model, pick_device
from unlearning.parquet_io import read_parquet
from unlearning.prompting import PromptStyle
from unlearning.settings import prompt_style, unlearn_settings

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("workflow", "training", "methods", "generation", "likelihood", "curves")
COLUMNS = {
    "benchmark": "benchmark",
    "seconds": "s",
    "items": "items",
    "tokens": "tokens",
    "tokens_per_s": "tokens/s",
    "items_per_s": "items/s",
    "pairs_per_s": "pairs/s",
    "ratio_vs_baseline": "× baseline",
    "last_epoch_loss": "loss (last epoch)",
    "final_loss": "final loss",
    "flops_per_s": "GFLOP/s",
    "pct_of_matmul_peak": "% of matmul",
    "peak_rss_mb": "peak RSS MB",
    "expected_s": "expected s",
    "measured_over_expected": "measured / expected",
    "detail": "detail",
}


def default_config() -> dict:
    """config.yaml with the schema's defaults filled in, as the Snakefile sees it."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    validate(config, str(ROOT / "schemas" / "config.schema.yaml"))
    return config


def detail(row: dict) -> str:
    """The per-row facts that are not numbers: what reran, whether results agree."""
    parts = [row["detail_text"]] if "detail_text" in row else []
    if len(row.get("runs_s", ())) > 1:
        parts.append("median of " + ", ".join(f"{s:.1f}" for s in row["runs_s"]) + " s")
    if "reran" in row:
        parts.append("reran: " + (", ".join(row["reran"]) or "nothing"))
    if "loss_agrees" in row and "method" in row:
        relative, absolute = METHOD_TOLERANCE
        verdict = "agrees" if row["loss_agrees"] else "DIFFERS"
        parts.append(f"{row['dtype']}, loss {verdict} (±{relative:.0%}, at least ±{absolute})")
        if not row.get("same_tokens", True):
            parts.append("token counts differ")
    elif "loss_agrees" in row:
        parts.append(f"{row['dtype']}, loss {'agrees' if row['loss_agrees'] else 'DIFFERS'} (±{LOSS_TOLERANCE})")
    elif "dtype" in row:
        parts.append(row["dtype"])
    if "identical_outputs" in row:
        parts.append(f"{100 * row['identical_outputs']:.0f}% identical answers")
    if "max_abs_loglik_diff" in row:
        parts.append(f"max |Δ log-lik| {row['max_abs_loglik_diff']:.1e}")
    return "; ".join(parts)


def markdown(rows: list[dict]) -> str:
    shown = [c for c in COLUMNS if any(c in r for r in rows) or c == "detail"]
    lines = ["| " + " | ".join(COLUMNS[c] for c in shown) + " |", "|" + "---|" * len(shown)]
    for row in rows:
        row = {**row, "detail": detail(row)}
        if "flops_per_s" in row:
            row["flops_per_s"] = row["flops_per_s"] / 1e9
        cells = []
        for c in shown:
            value = row.get(c, "")
            cells.append(f"{value:.3g}" if isinstance(value, float) else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only these sections (repeatable)")
    parser.add_argument("--epochs", type=float, help="training epochs of the TRL section (default: the config's)")
    parser.add_argument("--method-epochs", type=float, help="training epochs of the methods section")
    parser.add_argument("--methods", nargs="+", help="registered methods of the methods section (default: all)")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="runs of the baseline and of each variant in the methods section, interleaved; the table shows the "
        "run of median time and lists every run's seconds (default: 1)",
    )
    parser.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32"),
        help="train.precision of both sides (default: the config's, auto: bf16 where it is native)",
    )
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 2, 4], help="forget-set scales of the curves")
    parser.add_argument("--curve-epochs", type=float, help="train.epochs of the cost-curve runs (default: config)")
    parser.add_argument("--work-dir", type=Path, help="where the workflow runs (default: a temporary folder)")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "benchmarks" / "results.json",
        help="the rows as JSON, with the machine and the command, rewritten after every section "
        "(default: benchmarks/results.json)",
    )
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    only = set(args.only or SECTIONS)
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="unlearning-benchmark-"))
    config = default_config()
    model_name = next(iter(config["models"]))

    peaks = {dtype: matmul_flops(dtype) for dtype in (torch.float32, torch.bfloat16)}
    rows: list[dict] = [
        {"benchmark": f"matmul probe, {str(d).removeprefix('torch.')}", "flops_per_s": f} for d, f in peaks.items()
    ]
    where = machine()

    def save() -> None:
        """The rows so far, after every section: a run stopped part-way keeps what it measured."""
        frame = pd.DataFrame(rows)
        records = json.loads(frame.to_json(orient="records"))
        args.out.write_text(json.dumps({"machine": where, "command": command, "rows": records}, indent=2))

    command = " ".join(["python", "benchmarks/run.py", *sys.argv[1:]])
    loads = weight_loads()
    rows.append({"benchmark": "weight loads per heavy job (static check)",
                 "detail_text": ", ".join(f"{k} {v}" for k, v in loads.items())})  # fmt: skip
    if any(n != 1 for n in loads.values()):
        raise RuntimeError(f"a heavy job loads the weights more than once: {loads}")
    overrides = {"train": {"precision": args.precision}} if args.precision else {}
    if "workflow" in only:
        rows += bench_workflow(work_dir, overrides)
        save()
    results = work_dir / "results"
    style = PromptStyle(**prompt_style(config, model_name))
    if only & {"generation", "likelihood"}:  # first: they need no preference pairs
        ensure(work_dir, INFERENCE_INPUTS)
        manifest = Manifest.load(results / "models" / model_name / "model.json")
        model, tokenizer = load_model(manifest, device=pick_device())
        qa, tqa = read_parquet(results / "data" / "qa.parquet"), read_parquet(results / "data" / "truthfulqa.parquet")
        rows += bench_inference(model, tokenizer, qa, tqa, style, config, only)
        save()
        del model
    if only & {"training", "methods"}:
        ensure_pairs(work_dir)
        manifest = Manifest.load(results / "models" / model_name / "model.json")
    if "training" in only:
        cfg = unlearn_settings({**config, "unlearn": {"dpo": {"method": "dpo"}}}, model_name, "dpo")
        if args.epochs:
            cfg["epochs"] = args.epochs
        if args.precision:
            cfg["precision"] = args.precision
        pairs = read_parquet(results / "perturb" / "dpo_pairs.parquet")
        rows += bench_training(manifest, pairs, cfg, style, peaks.__getitem__, work_dir / "training")
        save()
    if "methods" in only:
        qa = read_parquet(results / "data" / "qa.parquet")
        pairs = read_parquet(results / "perturb" / "dpo_pairs.parquet")
        for name in args.methods or sorted(METHODS):
            rows += bench_methods(manifest, config, model_name, qa, pairs, style, work_dir / "methods",
                                  methods=[name], epochs=args.method_epochs, precision=args.precision,
                                  repeats=args.repeats)  # fmt: skip
            save()
    if "curves" in only:
        if args.curve_epochs:
            overrides = {"train": {**overrides.get("train", {}), "epochs": args.curve_epochs}}
        rows += bench_curves(work_dir / "curves", tuple(args.scales), overrides)
        save()

    print(f"\nMachine: {where}; model: {model_name}; work dir: {work_dir}\n")
    print(markdown(rows))
    save()
    print(f"\nwritten to {args.out}")
    if args.work_dir is None:
        shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
