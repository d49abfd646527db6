"""Batched generation with left padding and a KV cache, greedy or seeded sampling.

Used both by the perturber (sampling several wrong answers) and by the generate stage (one greedy answer per
question). Batching is what makes the stage cheap: the study generated one prompt at a time.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .batching import run_batched

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Generation:
    """One decoded answer and how many tokens the model produced for it (up to and including EOS)."""

    text: str
    new_tokens: int


def _batch_seed(seed: int, prompts: Sequence[str]) -> int:
    """A sampling seed that depends on the run's seed and the batch's content, not on timing or device."""
    digest = hashlib.sha256(("\x1e".join(prompts) + f"\x1f{seed}").encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def _eos_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> set[int]:
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    desc: str = "generate",
) -> list[Generation]:
    """Answers for full prompt strings (already templated), in the order of ``prompts``.

    A prompt that leaves no room for ``max_new_tokens`` in the model's context keeps its end (where the question
    and the generation prompt are); a warning counts them.
    """
    tokenizer.padding_side = "left"
    eos = _eos_ids(model, tokenizer)
    room = (getattr(model.config, "max_position_embeddings", None) or 2048) - max_new_tokens
    if room < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens} leaves no room for a prompt in the model's context")
    ids_of = {p: tokenizer(p, add_special_tokens=False)["input_ids"] for p in set(prompts)}
    fitted = {p: tokenizer.decode(ids[-room:]) if len(ids) > room else p for p, ids in ids_of.items()}
    cut = sum(1 for p in prompts if len(ids_of[p]) > room)
    if cut:
        log.warning(
            "%s: %d of %d prompts were longer than the context allows and lost their start", desc, cut, len(prompts)
        )
    lengths = {p: min(len(ids), room) for p, ids in ids_of.items()}

    @torch.inference_mode()
    def run(batch: list[str]) -> list[Generation]:
        texts = [fitted[p] for p in batch]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        kwargs = {"do_sample": do_sample, "max_new_tokens": max_new_tokens, "pad_token_id": tokenizer.pad_token_id}
        if do_sample:
            torch.manual_seed(_batch_seed(seed, batch))
            kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        out = model.generate(**enc, **kwargs, use_cache=True)
        new = out[:, enc["input_ids"].shape[1] :].tolist()
        results = []
        for row in new:
            stop = next((i for i, tok in enumerate(row) if tok in eos), None)
            kept = row if stop is None else row[:stop]
            n = len(row) if stop is None else stop + 1
            results.append(Generation(tokenizer.decode(kept, skip_special_tokens=True).strip(), n))
        return results

    return run_batched(list(prompts), run, batch_size=batch_size, sort_key=lengths.__getitem__, desc=desc)
