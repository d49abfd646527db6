"""The benchmarks of this project, one entry point: each section measures one stage on the embedded default
(SmolLM2-135M-Instruct and the sample data), against its baseline in the same process run where it has one. Prints
a Markdown table and writes its rows as JSON (``--out``); ``sample``, ``plausibility`` and ``frontier`` print
reports instead.

    python benchmarks/run.py                          # the default sections (well over an hour on 2 CPU cores)
    python benchmarks/run.py --only methods --method-epochs 1 --precision fp32
    python benchmarks/run.py --only methods --method-epochs 1 --repeats 3   # median of three runs each
    python benchmarks/run.py --only curves --scales 1 2 4
    python benchmarks/run.py --only memory --method dpo --precision fp32 --work-dir benchmarks/.cache/bench
    python benchmarks/run.py --only sample --per-question
    python benchmarks/run.py --only plausibility --premade
    python benchmarks/run.py --only memory --method npo --adapter full --work-dir benchmarks/.cache/bench
    python benchmarks/run.py --only frontier --work-dir <a finished run> --persons npo dpo
    bash benchmarks/gpu_check.sh                      # the gpu section on a CUDA machine

Sections, each with its helper module (named by what it measures); the first six are the default:

  workflow      Snakemake from an empty results/ (--workflow-runs times, the median), a no-op rerun, the rerun
                after a scoring setting changes (only scoring and the report may rerun), each job's time and peak
                memory, and each heavy job's FLOP/s and share of the matmul probe (workflow_time.py)
  training      plain trl.DPOTrainer with its default settings against this project's training, with each
                speed-up's share and the FLOP/s against the matmul probe (training_speed.py)
  methods       every registered method: this project's training against a plain Hugging Face Trainer with the
                same loss, and each speed-up turned off on its own (methods_speed.py)
  generation    batched greedy generation against one prompt at a time, each speed-up on its own
                (inference_speed.py)
  likelihood    batched likelihood scoring against one item at a time, each speed-up on its own
                (inference_speed.py)
  curves        the DAG and each heavy stage at 1x, 2x, 4x the forget set, against time proportional to the work
                (workflow_time.py)
  memory        peak RSS and time of one training job (--method, --precision, --adapter lora or full) in a fresh
                process, to check the config's resources: mem_mb (training_memory.py)
  sample        how many facts of the sample the base model knows, by the workflow's generate stage and
                known-fact rule: the table the sample's README quotes (sample_known_facts.py)
  plausibility  the wrong answers of the perturber LLM (or, --premade, of the pre-made file) for the forget_train
                questions, their filter counts and a seeded sample to judge by hand (perturb_plausibility.py)
  gpu           on one CUDA device: DPO and NPO training in bf16, batched generation and scoring (tokens/s, MFU,
                peak GPU memory) and a forced CUDA out-of-memory that must halve the batch (gpu_check.py); fails
                at once without CUDA
  frontier      reads a finished run (--work-dir): per entry, held-out forgetting against the damage to neighbours
                and general persons with intervals, and whether it meets the target; per person (--persons)
                (frontier.py)

A short matmul probe (matmul_peak.py) gives the machine's FLOP/s, the ceiling of the training rows' percentages,
whenever a table section runs. The workflow section runs first and its artifacts (imported model, QA, DPO pairs)
feed the others; without it, Snakemake makes just those in the work dir (keep one with --work-dir to reuse them).
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
from frontier import frontier_report
from gpu_check import cuda_missing, gpu_check
from inference_speed import bench_inference
from matmul_peak import machine, matmul_flops
from methods_speed import LOSS_TOLERANCE as METHOD_TOLERANCE
from methods_speed import bench_methods
from perturb_plausibility import PLAUSIBILITY_BATCH, forget_train, model_answers, premade_answers, report
from sample_known_facts import SAMPLE_FILES, dump, known_sample_facts, per_file, per_person
from snakemake.utils import validate
from training_memory import training_memory
from training_speed import LOSS_TOLERANCE, bench_training
from workflow_time import INFERENCE_INPUTS, bench_curves, bench_workflow, ensure, ensure_pairs, weight_loads

from unlearning.config.settings import prompt_style, unlearn_settings
from unlearning.core.parquet_io import read_parquet
from unlearning.inference.prompting import PromptStyle
from unlearning.models.checkpoints import Manifest, load_model, resolve
from unlearning.models.devices import pick_device
from unlearning.training.methods import METHODS

ROOT = Path(__file__).resolve().parents[1]
#: what ``run.py`` without ``--only`` runs, in this order
DEFAULT_SECTIONS = ("workflow", "training", "methods", "generation", "likelihood", "curves")
#: run only when named with ``--only``
EXTRA_SECTIONS = ("memory", "sample", "plausibility", "gpu", "frontier")
SECTIONS = DEFAULT_SECTIONS + EXTRA_SECTIONS
#: the sections whose rows make the table (``sample`` and ``plausibility`` print their own reports)
TABLE_SECTIONS = frozenset(SECTIONS) - {"sample", "plausibility", "frontier"}
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
    "mfu": "MFU %",
    "peak_rss_mb": "peak RSS MB",
    "peak_gpu_gib": "peak GPU GiB",
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
    if "batch_sizes" in row:
        parts.append("batch sizes tried " + ", ".join(map(str, row["batch_sizes"])))
    if "halvings" in row:
        parts.append("halved to " + (", ".join(map(str, row["halvings"])) or "nothing"))
    return "; ".join(parts)


def markdown(rows: list[dict]) -> str:
    shown = [c for c in COLUMNS if any(c in r for r in rows) or c == "detail"]
    lines = ["| " + " | ".join(COLUMNS[c] for c in shown) + " |", "|" + "---|" * len(shown)]
    for row in rows:
        row = {**row, "detail": detail(row)}
        if "flops_per_s" in row:
            row["flops_per_s"] = row["flops_per_s"] / 1e9
        if row.get("mfu") is not None:
            row["mfu"] = 100 * row["mfu"]
        cells = []
        for c in shown:
            value = row.get(c)
            cells.append(f"{value:.3g}" if isinstance(value, float) else "" if value is None else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--only",
        choices=SECTIONS,
        action="append",
        metavar="SECTION",
        help=f"run only this section (repeatable), one of: {', '.join(SECTIONS)}. Default: "
        f"{', '.join(DEFAULT_SECTIONS)}; {', '.join(EXTRA_SECTIONS)} run only when named",
    )
    parser.add_argument("--work-dir", type=Path, help="where the workflow runs (default: a temporary folder)")
    parser.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32"),
        help="train.precision of the training, methods and memory sections (default: the config's, auto: bf16 "
        "where it is native)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "benchmarks" / "results.json",
        help="the table's rows as JSON, with the machine and the command, rewritten after every section "
        "(default: benchmarks/results.json; not written when only sample or plausibility run)",
    )
    training = parser.add_argument_group("training and methods")
    training.add_argument("--epochs", type=float, help="training epochs of the training section (default: config)")
    training.add_argument("--method-epochs", type=float, help="training epochs of the methods section")
    training.add_argument("--methods", nargs="+", help="registered methods of the methods section (default: all)")
    training.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="runs of the baseline and of each variant in the methods section, interleaved; the table shows the "
        "run of median time and lists every run's seconds (default: 1)",
    )
    workflow = parser.add_argument_group("workflow")
    workflow.add_argument(
        "--workflow-runs",
        type=int,
        default=3,
        help="runs from an empty results/; the table shows the median and every run's seconds (default: 3)",
    )
    curves = parser.add_argument_group("curves")
    curves.add_argument("--scales", type=int, nargs="+", default=[1, 2, 4], help="forget-set scales (default: 1 2 4)")
    curves.add_argument("--curve-epochs", type=float, help="train.epochs of the cost-curve runs (default: config)")
    memory = parser.add_argument_group("memory")
    memory.add_argument("--method", default="dpo", help="the registered method of the memory section (default: dpo)")
    memory.add_argument("--adapter", choices=("lora", "full"), default="lora",
                        help="LoRA (default) or full fine-tuning (adapter: full) in the memory section")  # fmt: skip
    sample = parser.add_argument_group("sample")
    sample.add_argument("--csv", type=Path, nargs="*", help="title,question,answer files (default: the sample's "
                        "forget.csv, hard_retain.csv, general_retain.csv)")  # fmt: skip
    sample.add_argument("--per-question", action="store_true", help="print every question, answer and verdict")
    sample.add_argument("--dump", type=Path, help="write every question with the model's answer and scores to a TSV")
    sample.add_argument("--max-new-tokens", type=int, help="default: generate.max_new_tokens of the config")
    sample.add_argument("--threshold", type=float, help="known-fact threshold (default: score.known_threshold)")
    sample.add_argument(
        "--batch-size",
        type=int,
        help=f"batch size of the sample section (default: generate.batch_size) and of the plausibility section's "
        f"perturber (default: {PLAUSIBILITY_BATCH})",
    )
    front = parser.add_argument_group("frontier (reads the finished run in --work-dir)")
    front.add_argument("--persons", nargs="*", default=[], help="entries to show per person (default: none)")
    plausible = parser.add_argument_group("plausibility")
    plausible.add_argument("--premade", action="store_true", help="filter the shipped pre-made answers instead")
    plausible.add_argument("--questions", type=int, help="perturb a seeded subset of this many forget_train questions")
    plausible.add_argument("--max-rounds", type=int, help="default: perturb.max_rounds of the config")
    plausible.add_argument("--sample", type=int, default=40, help="kept answers to show for judging (default: 40)")
    plausible.add_argument("--sample-seed", type=int, default=0, help="seed of the subset and the sample (default: 0)")
    plausible.add_argument("--kept-csv", type=Path, help="write every kept wrong answer to this CSV")
    return parser


def imported_model(work_dir: Path, name: str) -> tuple:
    """Model and tokenizer of ``name`` as the workflow imported it in ``work_dir`` (Snakemake makes it if absent)."""
    ensure(work_dir, (f"results/models/{name}",))
    return load_model(Manifest.load(work_dir / "results" / "models" / name / "model.json"), device=pick_device())


def known_facts_section(args: argparse.Namespace, work_dir: Path, config: dict, model_name: str) -> None:
    model, tokenizer = imported_model(work_dir, model_name)
    score = {**config["score"], **({} if args.threshold is None else {"known_threshold": args.threshold})}
    generate, style = config["generate"], PromptStyle(**prompt_style(config, model_name))
    table = known_sample_facts(model, tokenizer, args.csv or SAMPLE_FILES, style, score,
                               max_new_tokens=args.max_new_tokens or generate["max_new_tokens"],
                               batch_size=args.batch_size or generate["batch_size"])  # fmt: skip
    print(f"\nknown-fact threshold: ROUGE-L recall >= {score['known_threshold']}\n")
    print(per_file(table) + "\n\n" + per_person(table, args.per_question))
    if args.dump:
        dump(table, args.dump)


def plausibility_section(args: argparse.Namespace, work_dir: Path, config: dict) -> None:
    ensure(work_dir, ("results/data/qa.parquet",))
    train, held_out = forget_train(read_parquet(work_dir / "results" / "data" / "qa.parquet"), args.questions,
                                   args.sample_seed)  # fmt: skip
    if args.premade:
        result = premade_answers(config, train, held_out)
    else:
        perturber = config["perturb"]["model"]
        if perturber in config["models"]:
            model, tokenizer = imported_model(work_dir, perturber)
        else:  # a hub id or local checkpoint, as the perturb stage takes it
            model, tokenizer = load_model(resolve(perturber, {"path": perturber}), device=pick_device())
        result = model_answers(model, tokenizer, config, train, batch_size=args.batch_size or PLAUSIBILITY_BATCH,
                               max_rounds=args.max_rounds)  # fmt: skip
    print(report(result, args.sample, args.sample_seed))
    if args.kept_csv:
        result.table.to_csv(args.kept_csv, index=False)


def main() -> None:
    parser = arguments()
    args = parser.parse_args()
    if args.repeats < 1 or args.workflow_runs < 1:
        parser.error(f"--repeats and --workflow-runs must be at least 1, got {args.repeats}, {args.workflow_runs}")
    only = set(args.only or DEFAULT_SECTIONS)
    if "gpu" in only and cuda_missing():
        sys.exit(f"run.py: {cuda_missing()}")
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="unlearning-benchmark-"))
    config = default_config()
    model_name = next(iter(config["models"]))
    table = bool(only & TABLE_SECTIONS)
    command = " ".join(["python", "benchmarks/run.py", *sys.argv[1:]])
    where = machine()
    rows: list[dict] = []

    def save() -> None:
        """The rows so far, after every section: a run stopped part-way keeps what it measured."""
        records = json.loads(pd.DataFrame(rows).to_json(orient="records"))
        args.out.write_text(json.dumps({"machine": where, "command": command, "rows": records}, indent=2))

    if table:
        peaks = {dtype: matmul_flops(dtype) for dtype in (torch.float32, torch.bfloat16)}
        rows += [{"benchmark": f"matmul probe, {str(d).removeprefix('torch.')}", "flops_per_s": f}
                 for d, f in peaks.items()]  # fmt: skip
        loads = weight_loads()
        rows.append({"benchmark": "weight loads per heavy job (static check)",
                     "detail_text": ", ".join(f"{k} {v}" for k, v in loads.items())})  # fmt: skip
        if any(n != 1 for n in loads.values()):
            raise RuntimeError(f"a heavy job loads the weights more than once: {loads}")
    overrides = {"train": {"precision": args.precision}} if args.precision else {}
    if "workflow" in only:
        rows += bench_workflow(work_dir, overrides, runs=args.workflow_runs, peak=peaks.__getitem__)
        save()
    results = work_dir / "results"
    style = PromptStyle(**prompt_style(config, model_name))
    if only & {"generation", "likelihood"}:  # first: they need no preference pairs
        ensure(work_dir, INFERENCE_INPUTS)
        model, tokenizer = imported_model(work_dir, model_name)
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
    if "memory" in only:
        rows.append(training_memory(work_dir, config, model_name, args.method, args.precision, args.adapter))
        save()
    if "gpu" in only:
        rows += gpu_check(work_dir, config, model_name)
        save()
    if "frontier" in only:
        if not args.work_dir:
            parser.error("--only frontier reads a finished run: give its folder with --work-dir")
        print(frontier_report(results, args.persons))
    if "sample" in only:
        known_facts_section(args, work_dir, config, model_name)
    if "plausibility" in only:
        plausibility_section(args, work_dir, config)

    if table:
        print(f"\nMachine: {where}; model: {model_name}; work dir: {work_dir}\n")
        print(markdown(rows))
        save()
        print(f"\nwritten to {args.out}")
    if args.work_dir is None:
        shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
