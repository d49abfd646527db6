"""The training forward that runs each shared part of a batch's prompts once, with gradients.

A batch's rows are chat-templated prompts followed by answers. Every prompt opens with the same system turn (30
tokens of SmolLM2-Instruct's ~45-token prompts with the default instruction), and the DPO family's chosen and
rejected answers follow the same prompt. The decoder therefore runs in up to three passes, each on a KV cache
from the one before:

1. the *opening* every row shares, as a batch of one;
2. each distinct rest of the prompts (the *context*: everything before the position that predicts the first
   answer token), once per distinct context, when some rows share one (DPO's pairs);
3. each row's own tokens, from the position that predicts its first answer token to its end.

Cache copies carry gradients back into the earlier passes (LoRA on a prompt changes the keys and values its
answers attend to), so the answer logits and every gradient equal those of one forward over the padded rows, up
to float rounding (``tests/test_speedups.py`` checks both). Padding inside a row (after a shorter context) is
masked and skipped by the position ids, as in batched generation; a model with sliding-window attention, whose
window is measured in cache slots, gets the passes only where every padded row fits in its window. Activation
checkpointing drops KV caches, so under it the forward is the plain one.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .. import batching
from ..batching import cache_kwarg, common_prefix_length, returned_cache, sliding_window


def _checkpointing(decoder: torch.nn.Module) -> bool:
    """Whether activation checkpointing would drop a KV cache in this forward (training with gradients)."""
    return (
        decoder.training
        and torch.is_grad_enabled()
        and any(getattr(m, "gradient_checkpointing", False) for m in decoder.modules())
    )


def _padded(rows: list[list[int]], width: int, fill: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``ids [n, width]`` and their mask."""
    ids = torch.full((len(rows), width), fill, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, row in enumerate(rows):
        ids[r, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[r, : len(row)] = 1
    return ids, mask


def answer_states(decoder: torch.nn.Module, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``hidden [rows, width, hidden]`` and ``targets [rows, width]``: the hidden state at ``[r, j]`` predicts
    token ``targets[r, j]`` (-100 where it predicts no answer token).

    ``batch`` is a right-padded batch of sequences (``input_ids``, ``attention_mask``, ``labels``, each ``[rows,
    length]``). Every answer token of every row has exactly one position here, in row order and, within a row,
    in sequence order, as with one plain forward (``width = length - 1``, ``targets = labels[:, 1:]``).
    """
    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    device = ids.device

    def plain() -> tuple[torch.Tensor, torch.Tensor]:
        return decoder(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1], labels[:, 1:]

    is_answer = labels != -100
    if ids.shape[0] < 2 or not bool(is_answer.any()) or not batching.SHARE_PROMPTS:
        return plain()
    lengths = mask.sum(1).tolist()
    first = torch.where(is_answer.any(1), is_answer.long().argmax(1), mask.sum(1)).tolist()
    starts = [max(0, a - 1) for a in first]  # the position that predicts each row's first answer token
    tokens = [row[:n].tolist() for row, n in zip(ids, lengths, strict=True)]
    contexts = [row[:s] for row, s in zip(tokens, starts, strict=True)]
    opening = common_prefix_length(contexts, limit=min(starts))
    groups: dict[tuple[int, ...], int] = {}
    group_of = [groups.setdefault(tuple(c[opening:]), len(groups)) for c in contexts]
    middle = max(len(g) for g in groups)
    grouped = len(groups) < len(contexts) and middle > 0
    if grouped:
        width = max(n - s for n, s in zip(lengths, starts, strict=True))
        window = sliding_window(decoder)
        grouped = not window or opening + middle + width <= window
    if not grouped:
        starts, middle = [opening] * len(starts), 0
        width = max(n - opening for n in lengths)
    if (not opening and not grouped) or _checkpointing(decoder):
        return plain()

    name, cache = cache_kwarg(decoder), None
    past = torch.ones((1, opening), dtype=mask.dtype, device=device)
    if opening:
        cache = returned_cache(decoder(input_ids=ids[:1, :opening], use_cache=True))
    if grouped:
        g_ids, g_mask = _padded([list(g) for g in groups], middle, 0)
        g_mask = torch.cat([past.expand(len(groups), -1), g_mask.to(device)], dim=1)
        if cache is not None:
            cache.batch_repeat_interleave(len(groups))
        out = decoder(
            input_ids=g_ids.to(device),
            attention_mask=g_mask,
            position_ids=(opening + torch.arange(middle, device=device)).expand(len(groups), -1),
            use_cache=True,
            **({name: cache} if cache is not None else {}),
        )
        cache = returned_cache(out)
        index = torch.tensor(group_of, device=device)
        cache.batch_select_indices(index)
        past = g_mask[index]
    else:
        cache.batch_repeat_interleave(ids.shape[0])
        past = past.expand(ids.shape[0], -1)
    own, own_mask = _padded([row[s:] for row, s in zip(tokens, starts, strict=True)], width, 0)
    positions = torch.tensor(starts, device=device)[:, None] + torch.arange(width, device=device)[None, :]
    hidden = decoder(
        input_ids=own.to(device),
        attention_mask=torch.cat([past, own_mask.to(device)], dim=1),
        position_ids=positions,
        use_cache=True,
        **{name: cache},
    ).last_hidden_state
    # hidden [r, j] sits at position starts[r] + j and predicts the label one further on
    shifted = torch.nn.functional.pad(labels, (0, width + 1), value=-100)
    take = (positions + 1).clamp(max=shifted.shape[1] - 1)
    targets = shifted.gather(1, take)
    targets = targets.masked_fill(own_mask.to(device) == 0, -100)
    return hidden, targets
