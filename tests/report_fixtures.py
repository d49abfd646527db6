"""Synthetic inputs of the report: 2 models x (base + 2 methods), with a summary in the contract's long format."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from unlearning.core.parquet_io import write_parquet
from unlearning.data.known_facts import known_facts
from unlearning.scoring.evaluation import ATTACK_SPLITS, build_summary

EVIL = "<script>alert('x')</script>"
METHODS = ("dpo", "npo")
MODELS = ("smollm2", "odd/model")
# general_train is absent on purpose: a split may be missing
SPLIT_ROWS = {
    "forget_train": 4,
    "forget_test": 4,
    "retain_train": 2,
    "retain_test": 3,
    "general_test": 3,
    "truthfulqa": 2,
}
# (forget strength, collateral) per (model, method): how far recall on forget falls, how much elsewhere falls
EFFECTS = {
    ("smollm2", "dpo"): (0.1, 0.0),
    ("smollm2", "npo"): (0.3, 0.15),
    ("odd/model", "dpo"): (0.6, 0.01),
    ("odd/model", "npo"): (0.05, 0.3),
}
SCORE_METRICS = ("rougeL_f1", "rougeL_recall", "rouge1_f1", "bleu", "answer_prob", "perplexity")
BENCH_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def make_config(models=MODELS) -> dict:
    entries = {
        "smollm2": {"path": "HuggingFaceTB/SmolLM2-135M-Instruct", "trust_remote_code": False},
        "odd/model": {"gguf": {"repo": "someone/odd-GGUF", "file": "odd.Q8_0.gguf"}, "trust_remote_code": True},
    }
    return {
        "seed": 1234,
        "models": {m: entries[m] for m in models},
        "perturb": {"model": "HuggingFaceTB/SmolLM2-360M-Instruct", "seed": 7},
        "data": {"forget": "sample_data/forget.csv", "retain": "sample_data/hard_retain.csv"},
        "unlearn": {m: {"method": m} for m in METHODS},
        "score": {"known_threshold": 0.5},
    }


def score_frame(model: str, variant: str) -> pd.DataFrame:
    """Per-row scores; a method forgets the forget splits and damages the others per :data:`EFFECTS`."""
    strength, collateral = EFFECTS.get((model, variant), (1.0, 0.0))
    rows = []
    for split, n in SPLIT_ROWS.items():
        for i in range(n):
            recall = 0.9 - 0.15 * i  # the last forget question is not known to the base model
            recall = recall * strength if split.startswith("forget") else recall - collateral
            question, generation = f"Question {i} about {split}?", f"{variant} answer {i}\nsecond line"
            if split == "forget_test" and i == 0:
                question, generation = f"Who is {EVIL}?", f"{variant} says {EVIL} | pipe"
            rows.append(
                {
                    "id": f"{split}-{i:03d}",
                    "split": split,
                    "person": f"Person {i}",
                    "question": question,
                    "reference": f"True answer {i} for {split}.",
                    "generation": generation,
                    "rougeL_f1": recall * 0.9,
                    "rougeL_recall": recall,
                    "rouge1_f1": recall * 0.95,
                    "bleu": recall * 0.5,
                    "answer_prob": recall * 0.7,
                    "perplexity": 8.0 + 10 * collateral,
                    "degenerate": variant != "base" and i == 0,
                    "mc1": 0.5 if split == "truthfulqa" else None,
                    "mc2": 0.55 - collateral if split == "truthfulqa" else None,
                }
            )
    return pd.DataFrame(rows).iloc[::-1].reset_index(drop=True)  # "first by id" is not file order


def summary_frame(frames: dict[str, dict[str, pd.DataFrame]]) -> pd.DataFrame:
    """The workflow's own summary of the frames (intervals included); ``known`` = base recall >= 0.5."""
    runs = {(model, variant): df for model, variants in frames.items() for variant, df in variants.items()}
    known = {model: known_facts(variants["base"], {"known_threshold": 0.5}) for model, variants in frames.items()}
    attacked = {}
    if "smollm2" in frames and "dpo" in frames["smollm2"]:  # an export that undid dpo's forgetting entirely
        base, ids = frames["smollm2"]["base"], set(known["smollm2"].loc[known["smollm2"]["known"], "id"])
        attacked[("smollm2", "dpo", "quantization")] = base[base["split"].isin(ATTACK_SPLITS) & base["id"].isin(ids)]
    return build_summary(runs, known, seed=0, attacked=attacked)


def training_log(method: str, steps: int = 6) -> pd.DataFrame:
    log = pd.DataFrame(
        {
            "step": list(range(1, steps + 1)),
            "epoch": [s / 3 for s in range(1, steps + 1)],
            "loss": [0.69 - 0.08 * s for s in range(steps)],
            "forget_loss": [0.7 - 0.1 * s for s in range(steps)],
            "retain_loss": [1.2 - 0.02 * s for s in range(steps)],
            "learning_rate": [1e-4] * steps,
            "num_tokens": [100 * s for s in range(1, steps + 1)],
            "seconds": [2.5 * s for s in range(1, steps + 1)],
        }
    )
    if method == "dpo":
        log["rewards_margins"] = [0.15 * s for s in range(steps)]
    return log


def build_inputs(root: Path, models=MODELS, methods=METHODS, untrained=(("odd/model", "npo"),)) -> dict:
    """Write every input of ``render_report`` under ``root``; return its keyword arguments."""
    config = make_config(models)
    variants = ["base", *methods]
    frames = {m: {v: score_frame(m, v) for v in variants} for m in models}
    scores = {
        m: {v: write_parquet(df, root / "score" / m / f"{v}.parquet", stage="score", config={}) for v, df in fr.items()}
        for m, fr in frames.items()
    }
    summary = write_parquet(
        summary_frame(frames), root / "summary.parquet", stage="summarize", config=config, seed=1234
    )
    logs = {
        m: {
            t: write_parquet(training_log(t), root / "unlearn" / m / t / "log.parquet", stage="unlearn", config={})
            for t in methods
            if (m, t) not in untrained
        }
        for m in models
    }
    bench = root / "benchmarks" / "unlearn_smollm2_dpo.tsv"
    bench.parent.mkdir(parents=True, exist_ok=True)
    bench.write_text(BENCH_HEADER + "3725.5\t1:02:05\t2048.4\t4096\t1900\t1950\t10\t20\t95.1\t3500\n")
    # a sweep whose points are the methods above, so that the held-out figures exist in the summary
    points = pd.DataFrame(
        {
            "model": models[0], "sweep": "grid", "entry": list(methods),
            "forgetting": [0.5 - 0.2 * i for i in range(len(methods))],
            "forgetting_low": [0.3 - 0.2 * i for i in range(len(methods))],
            "forgetting_high": [0.7 - 0.2 * i for i in range(len(methods))],
            "damage": [0.05 + 0.1 * i for i in range(len(methods))],
        }
    ).assign(within_bound=lambda d: d["damage"] <= 0.1, pareto=True, chosen=lambda d: d.index == 0,
             tied=lambda d: d.index == 1)  # fmt: skip
    operating_points = write_parquet(points, root / "operating_points.parquet", stage="select", config={})
    return {
        "summary": summary,
        "operating_points": operating_points,
        "scores": scores,
        "training_logs": logs,
        "config": config,
        "benchmarks": {"unlearn[smollm2/dpo]": bench},
        "out_html": root / "report" / "report.html",
        "out_md": root / "report" / "report.md",
        "plot_dir": root / "report",
        "data_sizes": dict(SPLIT_ROWS),
    }
