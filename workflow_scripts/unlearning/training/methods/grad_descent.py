"""Gradient descent on the answers: plain supervised fine-tuning, the relearning attack's training
(open-unlearning's ``GradDescent`` trainer, which fine-tunes the target models; Deeb & Roger 2024, "Do unlearning
methods remove information from language model weights?", fine-tune an unlearned model on some of the forgotten
facts and measure the others).

    L = NLL(answers)        (mean over answer tokens)

It teaches rather than forgets: as an ``unlearn:`` entry it is a control, not an unlearning method. Its retain
weight is 0 unless its entry sets ``retain_weight`` itself.
"""

from __future__ import annotations

from . import register
from .base import Method, answer_nll


@register
class GradDescent(Method):
    name = "grad_descent"
    default_retain_weight = 0.0
    unlearns = False

    def forget_loss(self, model, batch):  # noqa: ANN001, ANN201
        return answer_nll(model, batch["forget"]), {}
