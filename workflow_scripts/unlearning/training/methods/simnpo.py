"""SimNPO: reference-free, length-normalised NPO (Fan et al. 2024, "Simplicity Prevails: Rethinking Negative
Preference Optimization for LLM Unlearning", eq. 4; open-unlearning ``trainer/unlearn/simnpo.py``).

With ``nll = -log pi_theta(y|x) / |y|`` the mean negative log-likelihood per answer token of each forget answer:

    L = -(2 / beta) * log sigmoid(beta * (nll - delta))        (mean over the batch) + retain_weight * retain term

No reference model is involved. Defaults beta = 4.5, delta = 0 (open-unlearning's SimNPO config). Logged:
``forget_nll``, the batch mean of ``nll``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import register
from .base import Method, sequence_logprob


@dataclass(frozen=True)
class SimNPOSettings:
    beta: float = 4.5
    delta: float = 0.0  # the margin the normalised NLL must exceed before the loss flattens


def simnpo_loss(nll: torch.Tensor, beta: float, delta: float) -> torch.Tensor:
    """``-(2 / beta) * log sigmoid(beta * (nll - delta))`` averaged over the batch, from the length-normalised
    NLL of each forget answer ``[batch]``."""
    return -(2.0 / beta) * F.logsigmoid(beta * (nll - delta)).mean()


@register
class SimNPO(Method):
    name = "simnpo"
    Settings = SimNPOSettings

    def forget_loss(self, model, batch):  # noqa: ANN001, ANN201
        s = self.settings
        logp, lengths = sequence_logprob(model, batch["forget"])
        nll = -logp / lengths
        return simnpo_loss(nll, s.beta, s.delta), {"forget_nll": nll.detach().mean()}
