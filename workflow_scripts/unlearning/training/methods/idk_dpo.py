"""IdkDPO: DPO towards a refusal (TOFU, Maini et al. 2024; open-unlearning ``trainer/unlearn/dpo.py`` with the
``idk`` data).

Like :mod:`.dpo` but ``chosen`` is an "I don't know"-style refusal instead of a wrong answer, so it needs no
perturbation stage: each forget question gets ``per_question`` refusals, seeded, from ``refusals`` (default: the
project's six phrasings). Loss and logged rewards as DPO; default beta = 0.1 (open-unlearning's IdkDPO).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ...perturbation.pairs import DEFAULT_REFUSALS
from . import register
from .dpo import DPO, refusal_pairs


@dataclass(frozen=True)
class IdkDPOSettings:
    beta: float = 0.1
    per_question: int = 1  # refusals per forget question
    refusals: tuple[str, ...] = DEFAULT_REFUSALS


@register
class IdkDPO(DPO):
    name = "idk_dpo"
    Settings = IdkDPOSettings
    needs_pairs = False

    def training_texts(self, forget: pd.DataFrame, pairs: pd.DataFrame | None) -> pd.DataFrame:
        return refusal_pairs(forget, self.settings.refusals, self.settings.per_question, self.seed)
