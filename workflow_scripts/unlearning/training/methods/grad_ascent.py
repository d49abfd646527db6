"""Gradient ascent on the forget answers: the simplest baseline, known to collapse the model (open-unlearning
``trainer/unlearn/grad_ascent.py``; Jang et al. 2023, "Knowledge Unlearning for Mitigating Privacy Risks").

    L = -NLL(forget answers)        (mean over answer tokens)

It has no retain term by definition: its retain weight is 0 unless its ``unlearn:`` entry sets ``retain_weight``
itself (a global ``train.retain_weight`` does not apply to it).
"""

from __future__ import annotations

from . import register
from .base import Method, answer_nll


@register
class GradAscent(Method):
    name = "grad_ascent"
    default_retain_weight = 0.0

    def forget_loss(self, model, batch):  # noqa: ANN001, ANN201
        return -answer_nll(model, batch["forget"]), {}
