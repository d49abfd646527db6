"""A loaded LoRA adapter (PEFT) at inference: its weights merged for speed, and tied embeddings kept apart.

PEFT runs a LoRA layer as ``W x + scale * B (A x)``: two more small products, an addition and PEFT's Python
dispatch per adapted layer and forward pass (210 layers on SmolLM2 with ``all-linear``). With one token per row,
as in greedy decoding, that overhead is most of the step on a CPU. Merged, the same layers compute
``(W + scale * B A) x`` with one product each (:func:`merged_for_inference`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

log = logging.getLogger(__name__)


def _embedding_layers(model: Any) -> tuple[Any, Any] | None:  # noqa: ANN401
    """The output and input embedding modules of a PEFT model's base model (``None`` where it has none)."""
    base = model.get_base_model()
    output, inputs = base.get_output_embeddings(), base.get_input_embeddings()
    return None if output is None or inputs is None else (output, inputs)


def adapts_tied_embeddings(model: Any) -> bool:  # noqa: ANN401
    """Whether the input and output embeddings share one tensor and the adapter changes either of them."""
    layers = _embedding_layers(model)
    if layers is None or not any(hasattr(m, "base_layer") for m in layers):
        return False
    output, inputs = (getattr(m, "base_layer", m) for m in layers)
    return output.weight is inputs.weight


def untie_adapted_embeddings(model: Any) -> bool:  # noqa: ANN401
    """Give the output embeddings a weight of their own when the input and output embeddings share one tensor
    (``tie_word_embeddings``, as SmolLM2 and Gemma do) and the adapter changes either of them.

    The adapter model changes only the layer it targets (a LoRA on ``lm_head`` leaves the input embeddings as they
    were), but merging writes the delta into the one shared tensor, so both change, and a reload re-ties them:
    the merged checkpoint then answers differently from the adapter it came from (PEFT warns of this, see
    huggingface/peft#2777). Untying first (and saving ``tie_word_embeddings: false``) keeps them equal. Returns
    whether it untied; a model whose tied embeddings carry no adapter stays tied (no second copy is saved).
    """
    if not adapts_tied_embeddings(model):
        return False
    output, _ = _embedding_layers(model)  # type: ignore[misc]
    out_layer = getattr(output, "base_layer", output)
    out_layer.weight = torch.nn.Parameter(out_layer.weight.detach().clone(), requires_grad=False)
    base = model.get_base_model()
    for config in {id(c): c for c in (base.config, base.config.get_text_config())}.values():
        config.tie_word_embeddings = False
    log.info("the adapter changes a tied embedding: the merged model gets separate input and output embeddings")
    return True


@contextmanager
def merged_for_inference(model: Any) -> Iterator[bool]:  # noqa: ANN401
    """Run the forward passes inside the block on the adapter merged into the weights; unmerged again after it.

    Yields whether it merged. It merges only where the merged model computes what the adapter model does, up to
    float32 rounding (about 1e-6 of a logit): a model with an adapter (PEFT's ``merge_adapter``), float32 weights
    (a bf16 weight's rounding step, 2^-8 of its size, is larger than most LoRA deltas, which would vanish), and no
    adapter on a tied embedding (merging would change both tied layers). Elsewhere the block runs the adapter as
    it is. Unmerging subtracts the delta again, which can leave a weight one float32 rounding step off: a pass that
    needs the base model exactly (the fluency judge) runs before the block.
    """
    if not hasattr(model, "merge_adapter"):
        yield False
        return
    dtypes = {p.dtype for p in model.parameters()}
    if dtypes != {torch.float32} or adapts_tied_embeddings(model):
        log.info("the adapter stays unmerged for inference (weights %s)", sorted(map(str, dtypes)))
        yield False
        return
    model.merge_adapter()
    try:
        yield True
    finally:
        model.unmerge_adapter()
