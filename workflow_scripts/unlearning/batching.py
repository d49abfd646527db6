"""Run model work over many items in length-sorted batches that shrink on GPU out-of-memory.

Generation and likelihood scoring both spend most of their time on padding when prompts of mixed length share a
batch, and both can run out of GPU memory on a long batch hours into a run. One loop serves both: it sorts items
by length (least padding), shows a progress bar, halves the batch size on CUDA OOM and retries, and returns
results in the input order.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

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
