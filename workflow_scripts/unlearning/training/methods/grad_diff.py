"""Gradient difference: ascent on the forget answers, descent on the retain answers (open-unlearning
``trainer/unlearn/grad_diff.py``; Liu et al. 2022, "Continual Learning and Private Unlearning").

    L = -NLL(forget answers) + retain_weight * retain term     (retain term: NLL, or KL to the reference)

Defaults: the config's ``train.retain_weight`` (open-unlearning's alpha = 1) and ``train.retain_kind`` (NLL).
"""

from __future__ import annotations

from . import register
from .grad_ascent import GradAscent


@register
class GradDiff(GradAscent):
    name = "grad_diff"
    default_retain_weight = None
