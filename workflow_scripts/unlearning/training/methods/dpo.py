"""DPO towards a plausible wrong answer: the original study's method (WPU, Shiyu-Lab; TRL's DPOTrainer).

Each pair holds a forget question, ``chosen`` = a wrong answer from the perturbation stage and ``rejected`` = the
truth. With ``d(y) = log pi_theta(y|x) - log pi_ref(y|x)`` (summed over answer tokens, reference = the model with
its adapter disabled, precomputed once), the sigmoid loss of Rafailov et al. 2023 ("Direct Preference
Optimization", eq. 7), as TRL's ``loss_type: sigmoid``:

    L = -log sigmoid(beta * (d(chosen) - d(rejected)))

Default beta = 0.1 (TRL's and the study's). Logged: DPO's implicit rewards ``beta * d`` of chosen and rejected,
their margin and the share of pairs with a positive margin (TRL's ``rewards/*``).

``pairing`` picks the pairs file the entry's unlearn job reads (rules/common.smk ``pairs_inputs``): ``short``
(default, the study's) = results/perturb/dpo_pairs.parquet, the short wrong answer over the short true one;
``own_answer`` = results/perturb/own_pairs/{model}.parquet, the base model's own answer with the true answer
swapped for the wrong one over the answer itself, so that chosen and rejected differ only in the fact
(:func:`unlearning.perturbation.pairs.build_own_pairs`). The loss is the same for both.

Corpus rows (``forget_data: corpus`` or ``both``, :mod:`unlearning.corpus.training_rows`) have no wrong answer: the
perturbation stage writes short wrong answers to short questions, and a rewritten description would differ from the
model's own in far more than its facts. Their pair is the one IdkDPO uses: ``chosen`` = a refusal
(:data:`unlearning.perturbation.pairs.DEFAULT_REFUSALS`, one per text, seeded), ``rejected`` = the description.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd
import torch
import torch.nn.functional as F

from ...perturbation.pairs import DEFAULT_REFUSALS, build_pairs
from . import register
from .base import Method, sequence_logprob, sources


@dataclass(frozen=True)
class DPOSettings:
    beta: float = 0.1  # strength of the implicit KL constraint to the reference
    pairing: Literal["short", "own_answer"] = "short"  # which pairs the entry trains on (see the module docstring)


def dpo_loss(
    chosen_log_ratio: torch.Tensor, rejected_log_ratio: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``-log sigmoid(beta * (d_chosen - d_rejected))`` averaged over the batch, from log-ratios ``d`` ``[batch]``;
    also the implicit rewards ``beta * d`` of chosen and rejected, ``[batch]`` each."""
    chosen, rejected = beta * chosen_log_ratio, beta * rejected_log_ratio
    return -F.logsigmoid(chosen - rejected).mean(), chosen, rejected


def refusal_pairs(rows: pd.DataFrame, phrasings: tuple[str, ...], per_question: int, seed: int) -> pd.DataFrame:
    """Pairs of ``rows`` (``id, question, answer``, optional ``source``) with ``chosen`` a refusal (``per_question``
    of ``phrasings`` per row, seeded) and ``rejected`` the row's answer: ``prompt, chosen, rejected, source``."""
    refusals = {"mode": "only", "per_question": per_question, "phrasings": list(phrasings)}
    no_perturbations = pd.DataFrame(columns=["source_id", "perturbed", "kind"])
    built = build_pairs(rows, no_perturbations, per_question=None, refusals=refusals, seed=seed)
    source_of = dict(zip(rows["id"], sources(rows), strict=True))
    return built[["prompt", "chosen", "rejected"]].assign(source=built["source_id"].map(source_of).to_numpy())


def preference_loss(
    model: torch.nn.Module, batch: Mapping[str, Any], beta: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """DPO's sigmoid loss on a batch of (chosen, rejected) pairs, with TRL's reward statistics."""
    n = batch["chosen"]["input_ids"].shape[0]
    # one forward for both halves: chosen and rejected right-padded to a common width
    width = max(batch["chosen"]["input_ids"].shape[1], batch["rejected"]["input_ids"].shape[1])
    both = {
        key: torch.cat(
            [F.pad(batch[h][key], (0, width - batch[h][key].shape[1]), value=-100 if key == "labels" else 0)
             for h in ("chosen", "rejected")]
        )
        for key in ("input_ids", "attention_mask", "labels")
    }  # fmt: skip
    logp, _ = sequence_logprob(model, both)
    loss, chosen, rejected = dpo_loss(logp[:n] - batch["ref_chosen"], logp[n:] - batch["ref_rejected"], beta)
    margins = (chosen - rejected).detach()
    return loss, {
        "rewards_chosen": chosen.detach().mean(),
        "rewards_rejected": rejected.detach().mean(),
        "rewards_margins": margins.mean(),
        "rewards_accuracies": (margins > 0).float().mean(),
    }


@register
class DPO(Method):
    name = "dpo"
    Settings = DPOSettings
    needs_pairs = True
    sequences = ("chosen", "rejected")
    reference_sequences = ("chosen", "rejected")

    def training_texts(self, forget: pd.DataFrame, pairs: pd.DataFrame | None) -> pd.DataFrame:
        is_qa = pd.Series(sources(forget), index=forget.index) == "qa"
        parts = []
        if is_qa.any():
            if pairs is None:
                raise ValueError(f"method {self.name} trains on preference pairs, and none were given")
            chosen = pairs[pairs["source_id"].isin(forget.loc[is_qa, "id"])]
            parts.append(chosen[["prompt", "chosen", "rejected"]].assign(source="qa"))
        if not is_qa.all():
            parts.append(refusal_pairs(forget[~is_qa], DEFAULT_REFUSALS, 1, self.seed))
        return pd.concat(parts, ignore_index=True)

    def forget_loss(self, model, batch):  # noqa: ANN001, ANN201
        return preference_loss(model, batch, self.settings.beta)
