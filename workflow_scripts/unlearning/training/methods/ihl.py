"""IHL: the inverted hinge loss (Cha et al. 2025, "Towards Robust and Parameter-Efficient Knowledge Unlearning for
LLMs" (LoKU), ICLR; reference code csm9493/efficient-llm-unlearning).

At each answer position t, with p the softmax over the vocabulary of the model's (adapter on) logits and y_t the
true next token:

    IHL_t = max(0, 1 + p(y_t) - max_{v != y_t} p(v)),   L = mean_t IHL_t + retain_weight * retain term

averaged over the answer tokens of the batch. Unlike gradient ascent, which pushes the true token's probability
down without bound and spreads the freed mass anywhere, the loss is bounded (in [0, 2]) and its gradient moves the
mass from the true token to the runner-up, the token the model would otherwise say: the answer changes while the
generation stays fluent. It flattens once the true token is far below the runner-up (zero when p(y_t) = 0 and the
runner-up takes all the mass). No reference model and no settings. The paper pairs it with LoRA and an NLL retain
term (its Fisher-weighted LoRA initialisation is not part of this method). Logged: ``true_token_prob``, the mean
probability of the true answer tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...inference.packed_rows import answer_logits
from . import register
from .base import Method


def ihl_loss(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean of ``max(0, 1 + p(y_t) - max_{v != y_t} p(v))`` over the ``n`` answer positions of ``logits [n,
    vocab]`` with true tokens ``targets [n]``, and ``p(y_t)`` per position ``[n]``."""
    probs = F.softmax(logits.float(), dim=-1)
    true_prob = probs.gather(1, targets[:, None]).squeeze(1)
    runner_up = probs.scatter(1, targets[:, None], -1.0).amax(dim=-1)  # every other token's probability is >= 0
    return torch.clamp(1.0 + true_prob - runner_up, min=0.0).mean(), true_prob


@register
class IHL(Method):
    name = "ihl"

    def forget_loss(self, model, batch):  # noqa: ANN001, ANN201
        logits, targets, _ = answer_logits(model, batch["forget"])
        loss, true_prob = ihl_loss(logits, targets)
        return loss, {"true_token_prob": true_prob.detach().mean()}
