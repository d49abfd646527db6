"""Write an unlearned model as a GGUF file in the tensor types of the GGUF it was imported from.

Every tensor the unlearning left unchanged is copied byte for byte from the source file, so the base model exported
unchanged *is* the source file's content. A changed tensor is the source tensor, dequantized, plus the variant's
change, quantized again with the ``gguf`` package's own quantizers (``gguf.quants.quantize``, the numpy port of
llama.cpp's reference quantization). A change smaller than half a quantization step rounds back onto the source
value: that is what a user who deploys the unlearned model as GGUF gets, and what the quantization attack measures
(Zhang et al., ICLR 2025, "Does your LLM truly unlearn? An embarrassingly simple approach").

Tensor names and layouts: transformers dequantizes a GGUF with a per-architecture tensor processor (llama's Q and K
rows are permuted back to Hugging Face's order, Gemma's norm weights are stored plus one). The change is mapped the
other way through the same processor: applied to an index array, it gives the permutation, so no layout rule is
written twice. Metadata (architecture, hyperparameters, tokenizer, chat template) is copied from the source file.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.errors import InputError

log = logging.getLogger(__name__)
#: tensor types the ``gguf`` package can write (quantize) as well as read
WRITABLE_TYPES = ("F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0")
FLOAT_TYPES = ("F32", "F16", "BF16")


@dataclass(frozen=True)
class ExportStats:
    """What one export did: tensors copied unchanged and re-quantized; of the weights the variant changed, how many
    the re-quantization put back exactly on the source value (``snapped_weights``); and ``kept_share``, how much
    of the change itself the export kept: the projection of the exported change on the variant's change,
    ``<Q(W + d) - W, d> / <d, d>`` over every changed tensor (1: kept exactly; 0: gone, though re-quantizing a
    block can still move its other weights a little; NaN without a change)."""

    copied: int
    requantized: int
    changed_weights: int
    snapped_weights: int
    kept_share: float
    tensor_types: dict[str, int]


def check_writable(gguf_type: str | None, where: str) -> None:
    """A config error before any job when ``gguf_type`` is not one the ``gguf`` package can write."""
    if gguf_type is not None and gguf_type not in WRITABLE_TYPES:
        raise InputError(
            f"{where}: GGUF type {gguf_type!r} cannot be written by the gguf package's quantizers; "
            f"use one of {', '.join(WRITABLE_TYPES)}"
        )


def source_types(source: Path) -> dict[str, int]:
    """How many tensors of each type the GGUF file ``source`` holds (e.g. ``{"Q4_1": 210, "F32": 61}``)."""
    from gguf import GGUFReader

    counts: dict[str, int] = {}
    for tensor in GGUFReader(source).tensors:
        counts[tensor.tensor_type.name] = counts.get(tensor.tensor_type.name, 0) + 1
    return counts


def check_source_writable(source: Path, gguf_type: str | None, model: str) -> None:
    """An InputError naming the model when the source file's quantized types (or ``gguf_type``, which replaces
    them) include one the ``gguf`` package cannot write (K-quants such as Gemma's Q4_K)."""
    if gguf_type is not None:
        check_writable(gguf_type, f"model {model}")
        return
    bad = sorted(t for t in source_types(source) if t not in WRITABLE_TYPES)
    if bad:
        raise InputError(
            f"model {model}: its GGUF {source.name} holds tensors of type {', '.join(bad)}, which the gguf package "
            f"cannot write; set `export: {{gguf_type: Q8_0}}` (or another of {', '.join(WRITABLE_TYPES)}) to "
            "export in one writable type instead"
        )


def _processor(config: object):  # noqa: ANN202 (transformers' TensorProcessor)
    from transformers.modeling_gguf_pytorch_utils import TENSOR_PROCESSORS, TensorProcessor

    arch = getattr(config, "model_type", "")
    cls = TENSOR_PROCESSORS.get(arch) or TENSOR_PROCESSORS.get(arch.replace("_text", ""), TensorProcessor)
    return cls(config=config.to_dict())


def _to_gguf_layout(processor: object, name: str, delta: np.ndarray) -> np.ndarray:
    """``delta`` (Hugging Face layout) in the GGUF tensor's layout: the processor maps GGUF -> HF by an affine map
    ``x -> x[perm] + offset``; a change is mapped back through ``perm`` alone (the offset cancels)."""
    index = np.arange(delta.size, dtype=np.float64).reshape(delta.shape)
    offset = processor.process(weights=np.zeros(delta.shape), name=name).weights
    perm = (processor.process(weights=index, name=name).weights - offset).astype(np.int64).ravel()
    if not np.array_equal(np.sort(perm), np.arange(delta.size)):
        raise RuntimeError(f"tensor {name}: transformers' GGUF processor is not a permutation; cannot export it")
    out = np.empty(delta.size, dtype=delta.dtype)
    out[perm] = delta.ravel()
    return out.reshape(delta.shape)


def _copy_metadata(reader: object, writer: object) -> None:
    from gguf import GGUFValueType

    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture":
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), vtype, sub_type=sub)


def write_gguf(
    source: Path,
    base: Mapping[str, torch.Tensor],
    merged: Mapping[str, torch.Tensor],
    config: object,
    out_file: Path,
    *,
    gguf_type: str | None = None,
) -> ExportStats:
    """Write ``merged`` (a Hugging Face state dict of the unlearned model) as a GGUF file like ``source``.

    ``base`` is the state dict ``source`` was imported as (``results/models/{model}``) and ``config`` the model's
    transformers config. Tensors where ``merged`` equals ``base`` are copied from ``source`` unchanged; the others
    are written as source + change, in their source type, or in ``gguf_type`` for every tensor the source stores
    quantized (float tensors stay as they are). Raises InputError when a changed weight has no GGUF tensor, and
    when a type cannot be written.
    """
    import gguf
    from transformers.modeling_gguf_pytorch_utils import get_gguf_hf_weights_map

    reader = gguf.GGUFReader(source)
    processor = _processor(config)
    arch = str(reader.fields["general.architecture"].contents())
    hf_model = _ShapeOnly(merged, config)
    name_map = get_gguf_hf_weights_map(hf_model, processor)
    changed = {k for k in merged if k in base and not torch.equal(merged[k], base[k])}
    missing = [k for k in merged if k not in base]
    if missing:
        raise InputError(f"the exported model has weights the base model lacks (first: {missing[0]}); cannot export")
    unmapped = changed - {name_map[t.name] for t in reader.tensors if t.name in name_map}
    if unmapped:
        raise InputError(
            f"{len(unmapped)} changed weight(s) have no tensor in {source.name} (first: {sorted(unmapped)[0]}); "
            "a GGUF export cannot hold them"
        )
    out_file.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(out_file, arch)
    _copy_metadata(reader, writer)
    copied = requantized = n_changed = n_snapped = 0
    kept = intended = 0.0
    types: dict[str, int] = {}
    for tensor in reader.tensors:
        source_type = tensor.tensor_type
        hf_name = name_map.get(tensor.name)
        target = source_type
        if gguf_type is not None and source_type.name not in FLOAT_TYPES:
            target = gguf.GGMLQuantizationType[gguf_type]
        if hf_name not in changed and target == source_type:
            writer.add_tensor(tensor.name, tensor.data, raw_shape=tensor.data.shape, raw_dtype=source_type)
            copied += 1
        else:
            original = gguf.quants.dequantize(tensor.data, source_type).astype(np.float32)
            value = original
            if hf_name in changed:
                delta = (merged[hf_name].float() - base[hf_name].float()).numpy().reshape(original.shape)
                delta = _to_gguf_layout(processor, tensor.name, delta)
                value = original + delta
            data = gguf.quants.quantize(value, target)
            if hf_name in changed:
                back = gguf.quants.dequantize(data, target)
                moved = value != original
                n_changed += int(moved.sum())
                n_snapped += int((moved & (back == original)).sum())
                kept += float(np.sum((back - original).astype(np.float64) * delta))
                intended += float(np.sum(delta.astype(np.float64) ** 2))
            writer.add_tensor(tensor.name, data, raw_shape=data.shape, raw_dtype=target)
            requantized += 1
        types[target.name] = types.get(target.name, 0) + 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file(progress=False)
    writer.close()
    return ExportStats(copied, requantized, n_changed, n_snapped, kept / intended if intended else math.nan, types)


def load_gguf_weights(model: torch.nn.Module, file: Path) -> int:
    """Overwrite ``model``'s weights with those of the GGUF ``file`` (an export of the same architecture), each
    dequantized by ``gguf.quants`` and mapped to its Hugging Face name and layout by transformers' own GGUF tensor
    processor: what ``from_pretrained(gguf_file=...)`` computes, without parsing the file's tokenizer and config
    again (a test checks the two agree exactly). Returns how many tensors were read.

    Raises InputError when the file lacks one of the model's weights (a tied output head excepted) or holds one the
    model does not have.
    """
    import gguf
    from transformers.modeling_gguf_pytorch_utils import get_gguf_hf_weights_map

    reader = gguf.GGUFReader(file)
    processor = _processor(model.config)
    name_map = get_gguf_hf_weights_map(model, processor)
    params = model.state_dict()
    loaded = set()
    with torch.no_grad():
        for tensor in reader.tensors:
            hf_name = name_map.get(tensor.name)
            if hf_name not in params:
                raise InputError(f"{file.name}: tensor {tensor.name} has no weight in the model it should load into")
            weights = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
            weights = processor.process(weights=weights, name=tensor.name).weights
            params[hf_name].copy_(torch.from_numpy(np.array(weights, dtype=np.float32)).reshape(params[hf_name].shape))
            loaded.add(hf_name)
    tied = {"lm_head.weight"} if getattr(model.config, "tie_word_embeddings", False) else set()
    lacking = sorted(set(params) - loaded - tied)
    if lacking:
        raise InputError(f"{file.name} lacks {len(lacking)} of the model's weights (first: {lacking[0]})")
    return len(loaded)


class _ShapeOnly(torch.nn.Module):
    """What ``get_gguf_hf_weights_map`` reads of a model (its config and state-dict names), without weights."""

    def __init__(self, state: Mapping[str, torch.Tensor], config: object) -> None:
        super().__init__()
        self.config = config
        self._names = list(state)

    def state_dict(self, *args: object, **kwargs: object) -> dict[str, None]:  # noqa: ARG002
        return dict.fromkeys(self._names)


def gguf_name(gguf_type: str | None) -> str:
    """The file name of an export in ``gguf_type`` (None: the source file's own types) inside its export folder."""
    return "model.gguf" if gguf_type is None else f"model-{gguf_type}.gguf"
