"""Teacher-forced log-likelihood of continuations given prompts, batched.

Answer probability (TOFU's "probability"), TruthfulQA MC1/MC2 and the perplexity of generations all reduce to
the same quantity: the sum of token log-probabilities of a continuation after a prompt, and its token count.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .batching import run_batched

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogLik:
    """Sum of the continuation's token log-probabilities and how many tokens were scored."""

    total: float
    tokens: int

    @property
    def mean(self) -> float:
        return self.total / self.tokens if self.tokens else float("nan")


def continuation_logliks(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    continuations: Sequence[str],
    *,
    batch_size: int,
    max_length: int | None = None,
    desc: str = "log-likelihood",
) -> list[LogLik]:
    """Log-likelihood of each continuation after its prompt (prompt and continuation tokenised separately).

    Pairs longer than ``max_length`` tokens keep their prompt and lose the end of the continuation; a warning
    counts them.
    """
    if len(prompts) != len(continuations):
        raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations")
    max_length = max_length or getattr(model.config, "max_position_embeddings", None) or 2048
    pairs = []
    truncated = 0
    for prompt, cont in zip(prompts, continuations, strict=True):
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        text = cont.strip() if prompt.endswith((" ", "\n")) else " " + cont.strip()
        c = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(p) + len(c) > max_length:
            truncated += 1
            c = c[: max(0, max_length - len(p))]
        pairs.append((p, c))
    if truncated:
        log.warning("%s: %d of %d continuations truncated to %d tokens in all", desc, truncated, len(pairs), max_length)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    @torch.inference_mode()
    def run(batch: list[tuple[list[int], list[int]]]) -> list[LogLik]:
        # Left padding ends every row at the same column, so the LM head needs only the last ``keep`` positions
        # (those that predict a continuation token) instead of every prompt position: the head is the costliest
        # layer of a small model with a large vocabulary. Position ids skip the padding, as in generation.
        width = max(len(p) + len(c) for p, c in batch)
        keep = max(len(c) for _, c in batch) + 1
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, (p, c) in enumerate(batch):
            seq = p + c
            ids[row, width - len(seq) :] = torch.tensor(seq)
            mask[row, width - len(seq) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(
            input_ids=ids.to(model.device),
            attention_mask=mask.to(model.device),
            position_ids=positions.to(model.device),
            logits_to_keep=keep,
        ).logits.float()
        results = []
        for row, (_, c) in enumerate(batch):
            if not c:
                results.append(LogLik(0.0, 0))
                continue
            # the last ``keep`` positions; position t predicts token t + 1, the last one predicts nothing
            step = logits[row, keep - 1 - len(c) : keep - 1]
            target = torch.tensor(c, device=step.device)
            lp = step.gather(1, target[:, None]).squeeze(1) - torch.logsumexp(step, dim=-1)
            results.append(LogLik(float(lp.sum()), len(c)))
        return results

    return run_batched(pairs, run, batch_size=batch_size, sort_key=lambda pc: len(pc[0]) + len(pc[1]), desc=desc)
