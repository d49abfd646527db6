"""Teacher-forced log-likelihood of continuations given prompts, batched.

Answer probability (TOFU's "probability"), TruthfulQA MC1/MC2 and the perplexity of generations all reduce to
the same quantity: the sum of token log-probabilities of a continuation after a prompt, and its token count. With
``details=True`` the same pass also keeps, per continuation token, its log-probability, whether it is the
teacher-forced greedy (argmax) token, and the mean and variance of the log-probability under the model's own
next-token distribution: what extraction strength, exact memorization, truth ratio and the LOSS / Min-K%++
membership scores need (:mod:`unlearning.metrics`), without another forward pass.
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
    """Sum of the continuation's token log-probabilities and how many tokens were scored; with ``details``, per
    token: ``token_logprobs`` (log p of the true token), ``greedy`` (the true token is the argmax, teacher-forced),
    ``vocab_mean`` (E_{z~p}[log p(z)]) and ``vocab_var`` (Var_{z~p}[log p(z)]) of that position's distribution."""

    total: float
    tokens: int
    token_logprobs: tuple[float, ...] = ()
    greedy: tuple[bool, ...] = ()
    vocab_mean: tuple[float, ...] = ()
    vocab_var: tuple[float, ...] = ()

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
    details: bool | Sequence[bool] = False,
) -> list[LogLik]:
    """Log-likelihood of each continuation after its prompt (prompt and continuation tokenised separately).

    ``details`` (one flag for all, or one per pair) fills :class:`LogLik`'s per-token fields for those pairs; the
    others (e.g. TruthfulQA options) pay for nothing beyond the log-softmax of their own tokens.

    Pairs longer than ``max_length`` tokens keep their prompt and lose the end of the continuation; a warning
    counts them.
    """
    if len(prompts) != len(continuations):
        raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations")
    flags = [bool(details)] * len(prompts) if isinstance(details, bool) else [bool(d) for d in details]
    if len(flags) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(flags)} details flags")
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
        pairs.append((p, c, flags[len(pairs)]))
    if truncated:
        log.warning("%s: %d of %d continuations truncated to %d tokens in all", desc, truncated, len(pairs), max_length)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    @torch.inference_mode()
    def run(batch: list[tuple[list[int], list[int], bool]]) -> list[LogLik]:
        # Left padding ends every row at the same column, so the LM head needs only the last ``keep`` positions
        # (those that predict a continuation token) instead of every prompt position: the head is the costliest
        # layer of a small model with a large vocabulary. Position ids skip the padding, as in generation.
        width = max(len(p) + len(c) for p, c, _ in batch)
        keep = max(len(c) for _, c, _ in batch) + 1
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, (p, c, _) in enumerate(batch):
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
        for row, (_, c, detail) in enumerate(batch):
            if not c:
                results.append(LogLik(0.0, 0))
                continue
            # the last ``keep`` positions; position t predicts token t + 1, the last one predicts nothing
            step = logits[row, keep - 1 - len(c) : keep - 1]
            target = torch.tensor(c, device=step.device)
            if not detail:
                lp = step.gather(1, target[:, None]).squeeze(1) - torch.logsumexp(step, dim=-1)
                results.append(LogLik(float(lp.sum()), len(c)))
                continue
            logp = torch.log_softmax(step, dim=-1)
            lp = logp.gather(1, target[:, None]).squeeze(1)
            probs = logp.exp()
            # 0 * log 0 is 0 here: a probability that underflows to 0 has log-prob -inf, masked out
            finite_logp = torch.where(probs > 0, logp, torch.zeros_like(logp))
            mean = (probs * finite_logp).sum(-1)
            var = ((probs * finite_logp.square()).sum(-1) - mean.square()).clamp(min=0.0)
            results.append(
                LogLik(
                    float(lp.sum()),
                    len(c),
                    token_logprobs=tuple(lp.tolist()),
                    greedy=tuple((step.argmax(-1) == target).tolist()),
                    vocab_mean=tuple(mean.tolist()),
                    vocab_var=tuple(var.tolist()),
                )
            )
        return results

    return run_batched(pairs, run, batch_size=batch_size, sort_key=lambda pc: len(pc[0]) + len(pc[1]), desc=desc)
