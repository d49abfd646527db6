"""In-context relearning: each held-out question is asked after the same person's training facts in the prompt
(the forget persons' forget_train QA before a forget_test question, and likewise for neighbours and general persons).
The model's weights are the variant's own. Forgetting that holds does not come back from a reminder of the person's
other facts; a model that merely learnt to withhold them may answer again (Łucki et al. 2024, "An adversarial
perspective on machine unlearning for AI safety", which recovers unlearned knowledge with in-context examples).

The context is ``Facts about {person}:`` and one ``question answer`` line per training fact, then a blank line and
the question, all inside the model's usual prompt.
"""

from __future__ import annotations

import pandas as pd

from ..models.checkpoints import load_model
from ..models.devices import pick_device
from . import register
from .base import Attack, AttackInputs
from .scoring import training_facts


def with_context(questions: pd.DataFrame, qa: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """``questions`` with each question prefixed by its person's facts from the matching train split; and how many
    questions had no such facts (asked as they are)."""
    out = questions.copy()
    texts, bare = [], 0
    for person, split, question in zip(out["person"], out["split"], out["question"], strict=True):
        train = training_facts(qa, split.replace("_test", "_train"))
        facts = train[train["person"] == person]
        if facts.empty:
            bare += 1
            texts.append(question)
            continue
        lines = "\n".join(f"{q} {a}" for q, a in zip(facts["question"], facts["answer"], strict=True))
        texts.append(f"Facts about {person}:\n{lines}\n\n{question}")
    out["question"] = texts
    return out, bare


@register
class InContext(Attack):
    kind = "in_context"

    def attacked(self, inputs: AttackInputs):  # noqa: ANN201
        model, tokenizer = load_model(
            inputs.manifest, adapter=inputs.adapter, device=pick_device(requested_gpu=inputs.requested_gpu)
        )
        questions, bare = with_context(inputs.questions, inputs.qa)
        return model, tokenizer, questions, {"questions_without_context": bare}
