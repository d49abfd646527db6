"""Run model work over many items in length-sorted batches that shrink on GPU out-of-memory.

Generation and likelihood scoring both spend most of their time on padding when prompts of mixed length share a
batch, and both can run out of GPU memory on a long batch hours into a run. One loop serves both: it sorts items
by length (least padding), shows a progress bar, halves the batch size on CUDA OOM and retries, and returns
results in the input order.
"""

from __future__ import annotations

import copy
import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from tqdm.auto import tqdm

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)


def run_batched(
    items: Sequence[T],
    fn: Callable[[list[T]], list[R]],
    *,
    batch_size: int,
    sort_key: Callable[[T], int] | None = None,
    desc: str = "batches",
) -> list[R]:
    """``fn`` over ``items`` in batches (longest first when ``sort_key`` is given); results in input order."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(items)
    order = list(range(n))
    if sort_key is not None:
        order.sort(key=lambda i: sort_key(items[i]), reverse=True)
    results: list[R | None] = [None] * n
    pos = 0
    with tqdm(total=n, desc=desc, unit="item", leave=False) as bar:
        while pos < n:
            index = order[pos : pos + batch_size]
            try:
                out = fn([items[i] for i in index])
            except torch.cuda.OutOfMemoryError:
                if batch_size == 1:
                    raise
                batch_size //= 2
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                log.warning("%s: CUDA out of memory; retrying with batch size %d", desc, batch_size)
                continue
            if len(out) != len(index):
                raise RuntimeError(f"{desc}: batch function returned {len(out)} results for {len(index)} items")
            for i, result in zip(index, out, strict=True):
                results[i] = result
            pos += len(index)
            bar.update(len(index))
    return results  # type: ignore[return-value]


def cache_kwarg(model: torch.nn.Module) -> str:
    """The name under which this transformers version's forward takes a KV cache (``cache`` since 5.2x, before
    that ``past_key_values``, which still works with a deprecation warning)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(inner.forward).parameters else "past_key_values"


def returned_cache(output: object) -> object:
    """The KV cache of a forward's output, under either name."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


#: A shared opening shorter than this many tokens is not worth its own forward pass
MIN_SHARED_PREFIX = 8
#: Whether prompts' shared parts run once (generation, likelihood, training); ``benchmarks/`` turns it off to
#: measure what that buys. Results are the same either way, up to float rounding.
SHARE_PROMPTS = True


def common_prefix_length(sequences: Sequence[Sequence[int]], limit: int | None = None) -> int:
    """Tokens at the start of every sequence that are identical, at most ``limit``; 0 when that is below
    :data:`MIN_SHARED_PREFIX` or there are fewer than two sequences."""
    if len(sequences) < 2 or not SHARE_PROMPTS:
        return 0
    first, n = sequences[0], min(len(s) for s in sequences)
    if limit is not None:
        n = min(n, limit)
    length = next((i for i in range(n) if any(s[i] != first[i] for s in sequences)), n)
    return length if length >= MIN_SHARED_PREFIX else 0


@dataclass(frozen=True)
class Opening:
    """The KV cache of the tokens every prompt opens with (one row), computed once; batches continue from copies."""

    tokens: tuple[int, ...]
    cache: Any  # noqa: ANN401 (a transformers Cache)

    @property
    def length(self) -> int:
        return len(self.tokens)

    def copies(self, rows: int) -> Any:  # noqa: ANN401
        """A copy of the cache for a batch of ``rows`` prompts."""
        cache = copy.deepcopy(self.cache)
        cache.batch_repeat_interleave(rows)
        return cache


def sliding_window(model: torch.nn.Module) -> int | None:
    """The model's sliding attention window in tokens (Gemma 3's local layers), or None when it has none."""
    config = model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return getattr(text, "sliding_window", None)


def left_padded(rows: Sequence[Sequence[int]], pad: int, cached: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids ``[n, width]``, left-padded, and their attention mask ``[n, cached + width]`` whose first
    ``cached`` columns (an opening already in the KV cache) are all ones."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), cached + width), dtype=torch.long)
    mask[:, :cached] = 1
    for row, tokens in enumerate(rows):
        if tokens:
            ids[row, width - len(tokens) :] = torch.tensor(list(tokens))
            mask[row, cached + width - len(tokens) :] = 1
    return ids, mask


@torch.inference_mode()
def shared_opening(model: torch.nn.Module, prompts: Sequence[Sequence[int]], tail: int) -> Opening | None:
    """The opening all ``prompts`` (token ids) share, e.g. a chat template's system turn, with its KV cache;
    ``None`` when there is none worth sharing. One token of every prompt stays outside it, so a prompt's own pass
    ends on the position that predicts what follows.

    Batches then put their padding between the opening and each prompt's rest, which lengthens distances by
    index: a model with sliding-window attention shares an opening only when every padded row (the longest
    prompt and ``tail`` more tokens) fits in its window.
    """
    if len(prompts) < 2:
        return None
    shared = common_prefix_length(prompts, limit=min(len(p) for p in prompts) - 1)
    window = sliding_window(model) if shared else None
    if not shared or (window and max(len(p) for p in prompts) + tail > window):
        return None
    tokens = tuple(prompts[0][:shared])
    ids = torch.tensor([list(tokens)], device=model.device)
    return Opening(tokens, returned_cache(model(input_ids=ids, use_cache=True, logits_to_keep=1)))
