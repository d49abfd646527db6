"""Forgetting measured on the held-out templates of the corpus: what a run without QA pairs can be scored on.

Per held-out text of every person (the base model's own description, from a template no method trains on), one
row in the shape of a score table (:mod:`unlearning.scoring.evaluation`), so the summary's figures, changes against
base, person-bootstrap intervals and verdicts apply unchanged. Its ``split`` is ``{set}_corpus``
(:data:`unlearning.scoring.evaluation.CORPUS_SPLITS`), and its columns:

* ``answer_prob``: the model's length-normalised probability of the base text after the request, ``exp`` of the mean
  token log-probability (TOFU's probability, on the text); a fact removed makes the base model's description of
  it less likely;
* ``rougeL_recall``: the ROUGE-L recall of the base text in the model's own greedy answer to the same request
  (``max_new_tokens`` as the describe stage), with ``generation`` and ``reference`` kept for reading;
* ``loss`` and ``mink_pp``: the LOSS (mean token NLL) and Min-K%++ membership scores of the base text (Yeom et al.
  2018; Zhang et al. 2025), from which the summary computes the MIA AUC of the forget persons' texts against the
  neighbours' (``forget_corpus`` against ``retain_corpus``), RWKU's relative membership inference.

Every figure compares the unlearned model with the base model on the *same* base texts, so the base model's own
figures are the reference, and a method that only rewords its answers moves ``rougeL_recall`` but not the
likelihood of the base text.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

import pandas as pd

from ..inference.prompting import PromptStyle, build_prompt, stops_at_newline
from ..scoring import metrics

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

CORPUS_SCORE_COLUMNS = [
    "id", "split", "kind", "person", "template", "question", "reference", "generation", "new_tokens",
    "answer_prob", "rougeL_recall", "loss", "mink_pp",
]  # fmt: skip


def held_out_texts(corpus: pd.DataFrame) -> pd.DataFrame:
    """The corpus rows of the held-out templates (what :func:`score_corpus` scores)."""
    return corpus[corpus["held_out"].astype(bool)].reset_index(drop=True)


def score_corpus(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    corpus: pd.DataFrame,
    style: PromptStyle,
    *,
    max_new_tokens: int,
    batch_size: int,
    generate_batch_size: int,
) -> pd.DataFrame:
    """One row per held-out corpus text (:data:`CORPUS_SCORE_COLUMNS`), scored under ``model``.

    ``corpus`` is the base model's describe table (results/corpus/{model}.parquet). Requests are prompted as the
    describe stage prompted them (``style`` without its QA instruction); each distinct request is answered once,
    greedily. Raises ValueError when the corpus has no held-out text.
    """
    from ..inference.generation import generate
    from ..inference.likelihood import continuation_logliks

    held = held_out_texts(corpus)
    if held.empty:
        raise ValueError("the corpus has no held-out text to score (describe.held_out)")
    plain = replace(style, instruction=None)
    prompt_of = {r: build_prompt(tokenizer, r, **vars(plain)) for r in dict.fromkeys(held["prompt"])}
    requests = list(prompt_of)
    answers = generate(
        model,
        tokenizer,
        [prompt_of[r] for r in requests],
        max_new_tokens=max_new_tokens,
        batch_size=generate_batch_size,
        stop_at_newline=stops_at_newline(style),
        desc="corpus answers",
    )
    answer_of = dict(zip(requests, answers, strict=True))
    lls = continuation_logliks(
        model,
        tokenizer,
        [prompt_of[r] for r in held["prompt"]],
        held["text"].tolist(),
        batch_size=batch_size,
        details=True,
        desc="corpus likelihood",
    )
    generations = [answer_of[r].text for r in held["prompt"]]
    recall = metrics.rouge(generations, held["text"].tolist())["rougeL_recall"]
    return pd.DataFrame(
        {
            "id": held["id"],
            "split": held["set"] + "_corpus",
            "kind": "qa",
            "person": held["person"],
            "template": held["template"],
            "question": held["prompt"],
            "reference": held["text"],
            "generation": generations,
            "new_tokens": [answer_of[r].new_tokens for r in held["prompt"]],
            "answer_prob": [math.exp(ll.mean) if ll.tokens else math.nan for ll in lls],
            "rougeL_recall": recall.to_numpy(),
            "loss": [metrics.loss_score(ll.token_logprobs) for ll in lls],
            "mink_pp": [metrics.min_k_plus_plus(ll.token_logprobs, ll.vocab_mean, ll.vocab_var) for ll in lls],
        },
        columns=CORPUS_SCORE_COLUMNS,
    )
