"""Batched generation with left padding and a KV cache, greedy or seeded sampling.

Used both by the perturber (sampling several wrong answers) and by the generate stage (one greedy answer per
question). Batching is what makes the stage cheap: the study generated one prompt at a time.

Batches are length-bucketed (prompts sorted by length, so a batch holds prompts of about one length and little
padding). Greedy decoding runs its own loop that drops every finished row (EOS, or the end of its line) from the
batch and its KV cache at once, instead of carrying it, padded, until the longest answer of the batch ends (as
``model.generate`` does): most answers are a short sentence, a few run to ``max_new_tokens``. It picks the same
tokens as ``model.generate`` (``tests/test_models.py`` checks identical answers); sampling uses ``model.generate``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, StoppingCriteria, StoppingCriteriaList

from .batching import cache_kwarg, left_padded, returned_cache, run_batched, shared_opening

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


@dataclass(frozen=True)
class _LineBreaks:
    """The vocabulary's tokens that hold a line break, and which of them hold answer text before it (``.\n``)."""

    any: frozenset[int]
    after_text: frozenset[int]
    blank: frozenset[int]  # whitespace only

    @classmethod
    def of(cls, tokenizer: PreTrainedTokenizerBase) -> _LineBreaks:
        breaks, after_text, blank = set(), set(), set()
        for token, i in tokenizer.get_vocab().items():
            # one token at a time, so byte-level (Ġ, Ċ) and sentencepiece (▁, <0x0A>) vocabularies both decode
            text = tokenizer.convert_tokens_to_string([token])
            if not text.strip():
                blank.add(i)
            if "\n" in text:
                breaks.add(i)
                if text.split("\n", 1)[0].strip():
                    after_text.add(i)
        return cls(frozenset(breaks), frozenset(after_text), frozenset(blank))

    def first_line_end(self, row: Sequence[int]) -> int | None:
        """Index of the first line-break token that ends some answer text (leading line breaks are skipped)."""
        started = False
        for i, tok in enumerate(row):
            if tok in self.any and (started or tok in self.after_text):
                return i
            started = started or tok not in self.blank
        return None


class _LineEnd(StoppingCriteria):
    """Per-row stop once a row's answer has reached a line break (rows still running keep generating)."""

    def __init__(self, breaks: _LineBreaks, prompt_width: int):
        self.breaks = breaks
        self.prompt_width = prompt_width

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: object) -> torch.BoolTensor:
        rows = input_ids[:, self.prompt_width :].tolist()
        done = [self.breaks.first_line_end(row) is not None for row in rows]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


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
    stop_at_newline: bool = False,
    desc: str = "generate",
    prune_finished: bool = True,
) -> list[Generation]:
    """Answers for full prompt strings (already templated), in the order of ``prompts``.

    A prompt that leaves no room for ``max_new_tokens`` in the model's context keeps its end (where the question
    and the generation prompt are); a warning counts them. ``stop_at_newline`` ends each answer at its first line
    break after some text (plain few-shot prompts, whose example answers end there); the line break is not kept.
    ``prune_finished`` (greedy only) drops finished rows from the batch as they finish; off, ``model.generate``
    decodes every row until the whole batch has finished.
    """
    tokenizer.padding_side = "left"
    eos = _eos_ids(model, tokenizer)
    breaks = _LineBreaks.of(tokenizer) if stop_at_newline else None
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
    greedy = prune_finished and not do_sample
    opening = shared_opening(model, list(ids_of.values()), max_new_tokens) if greedy and not cut else None
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    @torch.inference_mode()
    def run(batch: list[str]) -> list[Generation]:
        if greedy and opening is not None:
            ids, mask = left_padded([ids_of[p][opening.length :] for p in batch], pad, opening.length)
            cache = opening.copies(len(batch))
            rows = greedy_pruned(model, ids.to(model.device), mask.to(model.device), max_new_tokens, eos, breaks, cache)
            return [_decoded(row) for row in rows]
        texts = [fitted[p] for p in batch]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        if greedy:
            rows = greedy_pruned(model, enc["input_ids"], enc["attention_mask"], max_new_tokens, eos, breaks)
            return [_decoded(row) for row in rows]
        kwargs = {"do_sample": do_sample, "max_new_tokens": max_new_tokens, "pad_token_id": tokenizer.pad_token_id}
        if do_sample:
            torch.manual_seed(_batch_seed(seed, batch))
            kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if breaks:
            kwargs["stopping_criteria"] = StoppingCriteriaList([_LineEnd(breaks, enc["input_ids"].shape[1])])
        out = model.generate(**enc, **kwargs, use_cache=True)
        return [_decoded(row) for row in out[:, enc["input_ids"].shape[1] :].tolist()]

    def _decoded(row: list[int]) -> Generation:
        stop = next((i for i, tok in enumerate(row) if tok in eos), None)
        kept = row if stop is None else row[:stop]
        n = len(row) if stop is None else stop + 1
        text = tokenizer.decode(kept, skip_special_tokens=True).strip()
        line_end = breaks.first_line_end(kept) if breaks else None
        if line_end is not None:
            # the line-break token may carry the answer's last characters (".\n"): cut the text, not the ids
            text = tokenizer.decode(kept[: line_end + 1], skip_special_tokens=True).strip().split("\n", 1)[0]
            n = line_end + 1
        return Generation(text.strip(), n)

    return run_batched(list(prompts), run, batch_size=batch_size, sort_key=lengths.__getitem__, desc=desc)


def greedy_pruned(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    max_new_tokens: int,
    eos: set[int],
    breaks: _LineBreaks | None = None,
    cache: Any = None,  # noqa: ANN401 (a transformers Cache)
) -> list[list[int]]:
    """Greedy new tokens per left-padded row; a row leaves the batch (and the KV cache) as soon as it has produced
    an EOS token or, with ``breaks``, ended its first line. Each row's tokens end with the one that finished it.

    With ``cache`` (one row per prompt, holding an opening every prompt shares), ``input_ids [batch, n]`` are the
    prompts' rest and ``attention_mask [batch, cached + n]`` covers the opening too."""
    out: list[list[int]] = [[] for _ in range(len(input_ids))]
    alive = list(range(len(input_ids)))
    mask, name = attention_mask, cache_kwarg(model)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, mask.shape[1] - input_ids.shape[1] :]
    opening = {name: cache} if cache is not None else {}
    step = model(
        input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1, **opening
    )
    cache, next_pos = returned_cache(step), positions[:, -1:] + 1
    for i in range(max_new_tokens):
        tokens = step.logits[:, -1].argmax(-1)
        keep = []
        for j, (row, token) in enumerate(zip(alive, tokens.tolist(), strict=True)):
            out[row].append(token)
            if token not in eos and not (breaks and breaks.first_line_end(out[row]) is not None):
                keep.append(j)
        if not keep or i == max_new_tokens - 1:
            break
        if len(keep) < len(alive):
            index = torch.tensor(keep, device=input_ids.device)
            cache.reorder_cache(index)
            mask, next_pos, tokens = mask[index], next_pos[index], tokens[index]
            alive = [alive[j] for j in keep]
        mask = torch.cat([mask, mask.new_ones((len(alive), 1))], dim=1)
        inputs = {"input_ids": tokens[:, None], "attention_mask": mask, "position_ids": next_pos, name: cache}
        step = model(**inputs, use_cache=True)
        next_pos = next_pos + 1
    return out
