"""Teacher-forced log-likelihood of continuations given prompts, batched.

Answer probability (TOFU's "probability"), TruthfulQA MC1/MC2 and the perplexity of generations all reduce to
the same quantity: the sum of token log-probabilities of a continuation after a prompt, and its token count. With
``details=True`` the same pass also keeps, per continuation token, its log-probability, whether it is the
teacher-forced greedy (argmax) token, and the mean and variance of the log-probability under the model's own
next-token distribution: what extraction strength, exact memorization, truth ratio and the LOSS / Min-K%++
membership scores need (:mod:`unlearning.scoring.metrics`), without another forward pass.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .batching import run_batched, shared_opening
from .packed_rows import answer_logits

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


def encode_pair(tokenizer: PreTrainedTokenizerBase, prompt: str, continuation: str) -> tuple[list[int], list[int]]:
    """The token ids of a prompt and of its continuation, each tokenised on its own: the continuation stripped, after
    a space unless the prompt ends with one or with a line break."""
    text = continuation.strip() if prompt.endswith((" ", "\n")) else " " + continuation.strip()
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    return prompt_ids, tokenizer(text, add_special_tokens=False)["input_ids"]


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
        p, c = encode_pair(tokenizer, prompt, cont)
        if len(p) + len(c) > max_length:
            truncated += 1
            c = c[: max(0, max_length - len(p))]
        pairs.append((p, c, flags[len(pairs)]))
    if truncated:
        log.warning("%s: %d of %d continuations truncated to %d tokens in all", desc, truncated, len(pairs), max_length)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    # Requests that share a prompt (a question's true and wrong answers, a TruthfulQA item's options, a question's
    # generation judged in the same pass) form one group; a batch holds whole groups. Its rows run packed without
    # padding, each group's prompt once per packed sequence and the opening every prompt shares (a chat template's
    # system turn) once per call, its KV cache copied into every packed sequence; the LM head projects only the
    # positions that predict a continuation token (:func:`unlearning.inference.packed_rows.answer_logits`, the
    # training forward): on the scoring stage's requests, six of ten positions of a padded batch were padding.
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, (p, _, _) in enumerate(pairs):
        if not p:
            raise ValueError(f"{desc}: request {index} has an empty prompt (no position predicts its first token)")
        groups.setdefault(tuple(p), []).append(index)
    items = list(groups.items())
    results: list[LogLik | None] = [None] * len(pairs)
    # the opening of every prompt runs once for the whole call, and each packed sequence continues from its cache
    prefix = shared_opening(model, [p for p, _ in items], max((len(c) for _, c, _ in pairs), default=0))

    def row_result(step: torch.Tensor, c: list[int], detail: bool) -> LogLik:
        """A continuation's LogLik from ``step``: one row of logits per continuation token (row t predicts c[t])."""
        target = torch.tensor(c, device=step.device)
        if not detail:
            lp = step.gather(1, target[:, None]).squeeze(1) - torch.logsumexp(step, dim=-1)
            return LogLik(float(lp.sum()), len(c))
        logp = torch.log_softmax(step, dim=-1)
        lp = logp.gather(1, target[:, None]).squeeze(1)
        probs = logp.exp()
        # 0 * log 0 is 0 here: a probability that underflows to 0 has log-prob -inf, masked out
        finite_logp = torch.where(probs > 0, logp, torch.zeros_like(logp))
        mean = (probs * finite_logp).sum(-1)
        # two passes (the deviations from the mean, then their weighted squares): E[x^2] - E[x]^2 cancels in float32
        # (about 117 - 116.97 for a flat distribution over 49k tokens) and amplified a 1e-6 logit change 400-fold
        deviation = torch.where(probs > 0, logp - mean[:, None], torch.zeros_like(logp))
        var = (probs * deviation.square()).sum(-1)
        return LogLik(
            float(lp.sum()),
            len(c),
            token_logprobs=tuple(lp.tolist()),
            greedy=tuple((step.argmax(-1) == target).tolist()),
            vocab_mean=tuple(mean.tolist()),
            vocab_var=tuple(var.tolist()),
        )

    @torch.inference_mode()
    def run(batch: list[tuple[tuple[int, ...], list[int]]]) -> list[int]:
        # one row per distinct continuation of a prompt (TruthfulQA's best answer is also one of its correct
        # answers; a wrong answer can repeat the generation): its copies take its result, details only if asked
        copies: dict[tuple[int, tuple[int, ...]], list[int]] = {}
        for g, (_, members) in enumerate(batch):
            for i in members:
                if pairs[i][1]:
                    copies.setdefault((g, tuple(pairs[i][1])), []).append(i)
                else:
                    results[i] = LogLik(0.0, 0)
        rows = [next((i for i in same if pairs[i][2]), same[0]) for same in copies.values()]
        if not rows:
            return [0] * len(batch)
        width = max(len(pairs[i][0]) + len(pairs[i][1]) for i in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        labels = torch.full_like(ids, -100)
        for r, i in enumerate(rows):
            p, c, _ = pairs[i]
            ids[r, : len(p) + len(c)] = torch.tensor(p + c)
            mask[r, : len(p) + len(c)] = 1
            labels[r, len(p) : len(p) + len(c)] = torch.tensor(c)
        device = model.device
        batch_tensors = {"input_ids": ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}
        logits, _, _ = answer_logits(model, batch_tensors, prefix)  # [continuation tokens, vocab], row by row
        start = 0
        for i, same in zip(rows, copies.values(), strict=True):
            _, c, detail = pairs[i]
            result = row_result(logits[start : start + len(c)], c, detail)
            for j in same:
                results[j] = result if pairs[j][2] == detail else LogLik(result.total, result.tokens)
            start += len(c)
        return [0] * len(batch)

    run_batched(items, run, batch_size=batch_size, sort_key=lambda g: len(g[0]), desc=desc)
    return results  # type: ignore[return-value]
