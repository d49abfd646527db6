"""The teacher-forced forward of training and likelihood scoring: a batch's rows packed into sequences without
padding, each shared prompt part once, and the LM head on answer positions only (:func:`answer_logits`).

A batch's rows are chat-templated prompts followed by answers. Every prompt opens with the same system turn (30
tokens of SmolLM2-Instruct's ~45-token prompts with the default instruction), the DPO family's chosen and rejected
answers follow the same prompt, and right-padding a batch to its longest row adds a fifth or more tokens that
carry no information. The decoder therefore runs once over *packed* sequences made of segments:

1. the *opening* every row shares (when it is at least :data:`unlearning.inference.batching.MIN_SHARED_PREFIX` tokens);
2. each distinct rest of a prompt that several rows share (a DPO pair's prompt: everything before the position
   that predicts the first answer token), once;
3. each row's own tokens, from the end of the shared parts to its last token, without padding.

A 4-D attention mask lets a token see the earlier tokens of its own segment and every token of the segments its
row continues (opening, shared prompt); position ids restart each row at its place in the unpacked row. The
attention scores and hidden states of every answer position are then those of one plain forward over the padded
rows (``tests/test_speedups.py`` checks the logits and every LoRA gradient, without dropout). With LoRA dropout,
a shared segment runs once, so the rows that continue it share its dropout mask there, where padded rows would
each draw their own: every row still sees a valid dropout draw, and its expected gradient is unchanged; only the
noise of rows that share a prompt is correlated over that prompt. Rows go into sequences of at most
:data:`PACK_TOKENS` tokens (whole groups of rows that share a prompt), so that the attention over a packed
sequence, which is square in its length and mostly masked, stays small next to the linear layers.

The plain padded forward is used instead where nothing is shared (packing alone does not pay on a CPU: the eager
attention over a packed sequence costs about what the padding did, ``docs/performance.md``), where prompts are not
shared at all (:data:`unlearning.inference.batching.SHARE_PROMPTS` off, as the benchmark measures), and where a custom
mask cannot express the model's attention: with FlashAttention kernels (no 4-D masks), and for a sliding-window model
(Gemma 3's local layers) whose rows are longer than its window, since one mask serves every layer. Activation
checkpointing works as with the plain forward: a packed sequence is one ordinary forward, with no KV cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from . import batching
from .batching import common_prefix_length, sliding_window

#: The most tokens of one packed sequence: its attention is ``[T, T]`` per head and layer, mostly masked, so longer
#: sequences cost more than they save (on 2 CPU cores, rows of 80 tokens: 256 as fast as 512 with shared prompts,
#: 30% faster without)
PACK_TOKENS = 256


def _plain(
    decoder: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One forward over the padded rows; the hidden states of the positions that predict an answer token."""
    hidden = decoder(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
    targets = labels[:, 1:]
    keep = targets != -100
    rows = torch.arange(ids.shape[0], device=ids.device)[:, None].expand_as(targets)
    return hidden[keep], targets[keep], rows[keep]


@dataclass
class _Sequence:
    """One packed sequence under construction: its tokens, their positions and segments, and which segment each
    segment may see (itself and the segments its rows continue)."""

    tokens: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    segments: list[int] = field(default_factory=list)
    sees: list[set[int]] = field(default_factory=list)

    def add(self, tokens: list[int], first_position: int, parents: set[int]) -> tuple[int, int]:
        """Append a segment that may see ``parents``; its segment id and the index of its first token."""
        segment, start = len(self.sees), len(self.tokens)
        self.tokens += tokens
        self.positions += range(first_position, first_position + len(tokens))
        self.segments += [segment] * len(tokens)
        self.sees.append({segment, *parents})
        return segment, start


def _mask(
    sequences: list[_Sequence], width: int, dtype: torch.dtype, device: torch.device, cached: int = 0
) -> torch.Tensor:
    """The additive attention mask ``[n, 1, width, cached + width]``: 0 where a query may see a key (the ``cached``
    opening tokens already in the KV cache, an earlier or the same token of its own segment or of a segment it
    continues), the dtype's minimum elsewhere; padding sees itself."""
    allowed = torch.zeros((len(sequences), width, width), dtype=torch.bool)
    causal = torch.ones((width, width), dtype=torch.bool).tril()
    for i, seq in enumerate(sequences):
        n = len(seq.tokens)
        sees = torch.zeros((len(seq.sees), len(seq.sees)), dtype=torch.bool)
        for segment, visible in enumerate(seq.sees):
            sees[segment, list(visible)] = True
        seg = torch.tensor(seq.segments)
        allowed[i, :n, :n] = sees[seg[:, None], seg[None, :]] & causal[:n, :n]
        allowed[i, range(n, width), range(n, width)] = True
    allowed = torch.cat([torch.ones((len(sequences), width, cached), dtype=torch.bool), allowed], dim=-1)
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
    return mask[:, None].to(device)


def answer_states(
    decoder: torch.nn.Module, batch: Mapping[str, torch.Tensor], prefix: batching.Opening | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The decoder's hidden state at every position that predicts an answer token: ``hidden [n, hidden_size]``,
    the token each predicts ``targets [n]`` and its batch row ``rows [n]``, in row order and, within a row, in
    sequence order (as from one plain forward over the padded rows).

    ``batch`` is a right-padded batch of sequences (``input_ids``, ``attention_mask``, ``labels`` with -100 off
    the answer, each ``[rows, length]``). ``prefix`` (inference only: no gradient reaches it) is the KV cache of
    an opening computed once for many batches (:func:`unlearning.inference.batching.shared_opening`); when every
    row opens with its tokens, the packed sequences continue from copies of it instead of running it again.
    """
    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    device = ids.device
    is_answer = labels != -100
    if not batching.SHARE_PROMPTS or not bool(is_answer.any()):
        return _plain(decoder, ids, mask, labels)
    row_lengths = mask.sum(1)
    lengths = row_lengths.tolist()
    first = torch.where(is_answer.any(1), is_answer.long().argmax(1), row_lengths).tolist()
    starts = [max(0, a - 1) for a in first]  # the position that predicts each row's first answer token
    tokens = [row[:n].tolist() for row, n in zip(ids, lengths, strict=True)]
    contexts = [row[:s] for row, s in zip(tokens, starts, strict=True)]
    opening = common_prefix_length(contexts, limit=min(starts))
    groups: dict[tuple[int, ...], list[int]] = {}
    for r, context in enumerate(contexts):  # rows that share their whole prompt (a DPO pair) form one group
        groups.setdefault(tuple(context[opening:]), []).append(r)
    if not opening and all(len(rows) == 1 or not middle for middle, rows in groups.items()):
        return _plain(decoder, ids, mask, labels)  # nothing shared
    window = sliding_window(decoder)
    if "flash" in (getattr(decoder.config, "_attn_implementation", None) or "") or (window and max(lengths) > window):
        return _plain(decoder, ids, mask, labels)  # a 4-D mask cannot express this model's attention

    # the opening already in ``prefix``'s cache runs no more; the packed sequences hold the rest of the opening
    reusable = prefix is not None and prefix.length <= opening and contexts[0][: prefix.length] == list(prefix.tokens)
    cached = prefix.length if reusable else 0
    sequences: list[_Sequence] = []
    where: dict[int, tuple[int, int, int]] = {}  # row -> (sequence, index of its own first token, its position)
    plans = []
    for middle, rows in groups.items():
        shared = len(rows) > 1 and len(middle) > 0
        own_from = [starts[r] if shared else opening for r in rows]
        cost = (len(middle) if shared else 0) + sum(lengths[r] - s for r, s in zip(rows, own_from, strict=True))
        plans.append((cost, middle, rows, shared, own_from))
    # first fit, largest group first: sequences filled close to PACK_TOKENS, so little padding to the widest
    for cost, middle, rows, shared, own_from in sorted(plans, key=lambda plan: -plan[0]):
        target = next((i for i, seq in enumerate(sequences) if len(seq.tokens) + cost <= PACK_TOKENS), None)
        if target is None:
            sequences.append(_Sequence())
            target = len(sequences) - 1
            if opening > cached:
                sequences[-1].add(tokens[rows[0]][cached:opening], cached, set())
        seq = sequences[target]
        parents = {0} if opening > cached else set()
        if shared:
            segment, _ = seq.add(list(middle), opening, parents)
            parents = parents | {segment}
        for r, s in zip(rows, own_from, strict=True):
            _, index = seq.add(tokens[r][s:], s, parents)
            where[r] = (target, index, s)

    width = max(len(s.tokens) for s in sequences)
    packed_ids = torch.zeros((len(sequences), width), dtype=torch.long)
    positions = torch.zeros_like(packed_ids)
    for i, seq in enumerate(sequences):
        packed_ids[i, : len(seq.tokens)] = torch.tensor(seq.tokens)
        positions[i, : len(seq.tokens)] = torch.tensor(seq.positions)
    dtype = decoder.get_input_embeddings().weight.dtype
    past = {batching.cache_kwarg(decoder): prefix.copies(len(sequences))} if cached else {}
    hidden = decoder(
        input_ids=packed_ids.to(device),
        attention_mask=_mask(sequences, width, dtype, device, cached),
        position_ids=positions.to(device),
        **past,
    ).last_hidden_state
    # every answer token, in row order: the hidden state one position before it predicts it
    seq_index, token_index, targets, rows = [], [], [], []
    for r, row_labels in enumerate(labels.tolist()):
        s, index, own_start = where[r]
        for p in range(max(first[r], 1), lengths[r]):
            if row_labels[p] != -100:
                seq_index.append(s)
                token_index.append(index + p - 1 - own_start)
                targets.append(row_labels[p])
                rows.append(r)
    picked = hidden[torch.tensor(seq_index, device=device), torch.tensor(token_index, device=device)]
    return picked, torch.tensor(targets, device=device), torch.tensor(rows, device=device)


def backbone_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The decoder stack (embeddings to final norm) and the LM head of a causal LM, PEFT-wrapped or not.

    LoRA layers are injected into the wrapped modules, so calling the decoder directly runs the adapter (and
    ``model.disable_adapter()`` still turns it off).
    """
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inner.get_decoder(), inner.get_output_embeddings()


def answer_logits(
    model: torch.nn.Module, batch: Mapping[str, torch.Tensor], prefix: batching.Opening | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits at the positions that predict an answer token, and nothing else.

    The LM head is the costliest layer of a small model with a large vocabulary; projecting only the answer
    positions (a few per row) instead of every prompt and padding position saves most of it in training. The
    decoder runs the rows packed, each shared part of the prompts once, and continues from ``prefix``'s cached
    opening when given (:func:`answer_states`).

    Returns ``logits [n, vocab]`` (float32), ``targets [n]`` (the answer token each position predicts) and
    ``rows [n]`` (the batch row of each), where ``n`` is the number of answer tokens in the batch.
    """
    decoder, head = backbone_and_head(model)
    hidden, targets, rows = answer_states(decoder, batch, prefix)
    logits = head(hidden).float()
    softcap = getattr(getattr(model, "config", None), "final_logit_softcapping", None)
    if softcap:  # Gemma-style logit soft-capping, as the model's own forward applies it
        logits = torch.tanh(logits / softcap) * softcap
    return logits, targets, rows
