"""Where a job runs and in which dtype: the CUDA device or the CPU, the scheduler's GPU assignment, native bf16."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping

import torch

log = logging.getLogger(__name__)

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
