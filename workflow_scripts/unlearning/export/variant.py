"""One variant's export folder, ``results/export/{model}/{variant}/``:

* ``merged/``: the unlearned model as a plain Hugging Face safetensors checkpoint with its tokenizer (a LoRA adapter
  merged into float32 weights; ``adapter: full`` saves its trained weights);
* for a model imported from GGUF, ``model.gguf`` in the source file's tensor types and ``model-{TYPE}.gguf`` for
  every other type asked for (:mod:`unlearning.export.gguf_file`);
* ``export.json``: per GGUF file, the tensors copied and re-quantized and how many changed weights snapped back.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from ..core.file_modes import apply_umask
from ..models.checkpoints import Manifest, load_model
from ..models.gguf import locate_gguf
from .gguf_file import check_source_writable, gguf_name, write_gguf

log = logging.getLogger(__name__)


def export_variant(
    manifest: Manifest,
    adapter: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    *,
    gguf: dict | None,
    gguf_types: Sequence[str | None],
) -> dict[str, dict]:
    """Write ``out_dir`` (see the module doc) for the model of ``manifest`` with the unlearn output ``adapter``
    (None: the base model). ``gguf`` is the model's ``gguf:`` entry (None: not imported from GGUF, so no GGUF file);
    ``gguf_types`` the types to write (None: the source's). Returns the content of ``export.json``.

    Raises InputError when the source holds a type the ``gguf`` package cannot write and no type replaces it.
    """
    from ..training.engine import merge_adapter

    out_dir = Path(out_dir)
    merged_dir = out_dir / "merged"
    cpu = torch.device("cpu")
    if gguf is not None:
        source = locate_gguf(gguf)
        for gguf_type in gguf_types:  # before the merge: a bad type costs nothing
            check_source_writable(source, gguf_type, manifest.name)
    # float32: a LoRA delta merged into bf16 weights would round away (a bf16 step is 2^-8 of a weight)
    model, tokenizer = load_model(manifest, adapter=adapter, device=cpu, dtype=torch.float32)
    if adapter is None:
        model.save_pretrained(merged_dir, safe_serialization=True)
        tokenizer.save_pretrained(merged_dir)
        apply_umask(merged_dir)
        merged = model
    else:
        merged = merge_adapter(model, tokenizer, merged_dir)
    stats: dict[str, dict] = {}
    if gguf is not None:
        base = AutoModelForCausalLM.from_pretrained(manifest.path, dtype=torch.float32, use_safetensors=True)
        for gguf_type in dict.fromkeys(gguf_types):
            name = gguf_name(gguf_type)
            result = write_gguf(
                source, base.state_dict(), merged.state_dict(), base.config, out_dir / name, gguf_type=gguf_type
            )
            kept = result.kept_share if math.isfinite(result.kept_share) else None  # JSON has no NaN
            stats[name] = {**asdict(result), "kept_share": kept, "bytes": (out_dir / name).stat().st_size}
            log.info(
                "%s: %d tensors copied, %d re-quantized; %d of %d changed weights snapped back onto the source; "
                "the export keeps %.1f%% of the change",
                name, result.copied, result.requantized, result.snapped_weights, result.changed_weights,
                100 * result.kept_share,
            )  # fmt: skip
    (out_dir / "export.json").write_text(json.dumps(stats, indent=2, sort_keys=True))
    apply_umask(out_dir)
    return stats
