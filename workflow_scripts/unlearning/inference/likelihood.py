"""Teacher-forced log-likelihood of continuations given prompts, batched.

Answer probability (TOFU's "probability"), TruthfulQA MC1/MC2 and the perplexity of generations all reduce to
the same quantity: the sum of token log-probabilities of a continuation after a prompt, and its token count. With
``details=True`` the same pass also keeps, per continuation token, its log-probability, whether it is the
teacher-forced greedy (argmax) token, and the mean and variance of the log-probability under the model's own
next-token distribution: what extraction strength, exact memorization, truth ratio and the LOSS / Min-K%++
membership scores need (:mod:`unlearning.scoring.metrics`), without another forward pass.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .batching import cache_kwarg, left_padded, returned_cache, run_batched, shared_opening

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

    # Requests that share a prompt (a question's true and wrong answers, a TruthfulQA item's options) share one
    # prompt pass: the prompt runs once with a KV cache, then all its continuations run as one batch on copies of
    # that cache. The prompt is most of each request's tokens, so this is what keeps the scoring stage's cost
    # near one pass per question however many answers each question has.
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, (p, _, _) in enumerate(pairs):
        if not p:
            raise ValueError(f"{desc}: request {index} has an empty prompt (no position predicts its first token)")
        groups.setdefault(tuple(p), []).append(index)
    items = list(groups.items())
    results: list[LogLik | None] = [None] * len(pairs)
    max_rows = max(1, 4 * batch_size)  # continuation rows per forward pass
    cache_arg = cache_kwarg(model)
    # The opening every prompt shares (a chat template's system turn: 30 of SmolLM2-Instruct's ~45 prompt tokens
    # with the default instruction) runs once for the whole call; each batch continues from copies of its cache.
    opening = shared_opening(model, [p for p, _ in items], max((len(c) for _, c, _ in pairs), default=0))
    shared = opening.length if opening is not None else 0

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
        device = model.device
        # 1. every prompt once after the shared opening, left-padded (position ids skip the padding, as in
        #    generation); the LM head runs on the last position only, which predicts each continuation's first token
        ids, mask = left_padded([p[shared:] for p, _ in batch], pad, shared)
        cached = {cache_arg: opening.copies(len(batch))} if opening is not None else {}
        out = model(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=(mask.cumsum(-1) - 1).clamp(min=0)[:, shared:].to(device),
            use_cache=True,
            logits_to_keep=1,
            **cached,
        )
        first = out.logits[:, -1].float()
        cache = returned_cache(out)
        lengths = mask.sum(-1)
        # 2. the continuations (longer than one token) on copies of their prompt's cache, right-padded: padding
        #    after the real tokens cannot change them under the causal mask
        rows = [(row, i) for row, (_, members) in enumerate(batch) for i in members]
        for row, i in rows:
            p, c, detail = pairs[i]
            if len(c) <= 1:
                results[i] = row_result(first[row : row + 1, :], c, detail) if c else LogLik(0.0, 0)
        # by length, so each chunk pads its continuations to about their own length (generations judged in the
        # same pass run to max_new_tokens where a reference answer has a few tokens)
        longer = sorted(((row, i) for row, i in rows if len(pairs[i][1]) > 1), key=lambda ri: len(pairs[ri[1]][1]))
        for start in range(0, len(longer), max_rows):
            chunk = longer[start : start + max_rows]
            tail = max(len(pairs[i][1]) for _, i in chunk) - 1  # the last token predicts nothing
            cont = torch.full((len(chunk), tail), pad, dtype=torch.long)
            cont_mask = torch.zeros_like(cont)
            for r, (_, i) in enumerate(chunk):
                c = pairs[i][1][:-1]
                cont[r, : len(c)] = torch.tensor(c)
                cont_mask[r, : len(c)] = 1
            index = torch.tensor([row for row, _ in chunk])
            chunk_cache = copy.deepcopy(cache) if start + max_rows < len(longer) else cache
            chunk_cache.batch_select_indices(index.to(device))
            positions = lengths[index][:, None] + torch.arange(tail)[None, :]
            logits = model(
                input_ids=cont.to(device),
                attention_mask=torch.cat([mask[index], cont_mask], dim=1).to(device),
                position_ids=positions.to(device),
                use_cache=True,
                **{cache_arg: chunk_cache},
            ).logits.float()
            for r, (row, i) in enumerate(chunk):
                _, c, detail = pairs[i]
                step = torch.cat([first[row : row + 1], logits[r, : len(c) - 1]], dim=0)
                results[i] = row_result(step, c, detail)
        return [0] * len(batch)

    run_batched(items, run, batch_size=batch_size, sort_key=lambda g: len(g[0]), desc=desc)
    return results  # type: ignore[return-value]
