"""What the machine can do: its name and a short matmul probe, the ceiling the training FLOP/s are compared to."""

from __future__ import annotations

import platform
import time
from pathlib import Path

import torch


def machine() -> str:
    """The accelerator, or the CPU model and the torch threads the benchmark uses."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda}), torch {torch.__version__}"
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        model = names[0] if names else model
    return f"{model} ({cpu_features()}), {torch.get_num_threads()} torch threads, torch {torch.__version__}"


FEATURES = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_features(flags: str | None = None) -> str:
    """The CPU features that decide the training dtype (``precision: auto``) and matmul speed, and whether bf16 is
    native (AVX512-BF16 or AMX) or emulated."""
    if flags is None:
        cpuinfo = Path("/proc/cpuinfo")
        lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
        flags = next((line.split(":", 1)[1] for line in lines if line.startswith("flags")), "")
    present = [f for f in FEATURES if f in flags.split()]
    native = "avx512_bf16" in present or "amx_bf16" in present
    return f"{' '.join(present) or 'none of ' + '/'.join(FEATURES)}; bf16 {'native' if native else 'emulated'}"


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def matmul_flops(dtype: torch.dtype, shape: tuple[int, int, int] = (1024, 576, 1536), seconds: float = 2.0) -> float:
    """Achieved FLOP/s of ``(m x k) @ (k x n)`` products in ``dtype``, repeated for about ``seconds``.

    The default shape is a SmolLM2-135M MLP projection over a batch of 1024 tokens, the bulk of training's work.
    """
    m, k, n = shape
    dev = device()
    a = torch.randn(m, k, dtype=dtype, device=dev)
    b = torch.randn(k, n, dtype=dtype, device=dev)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(3):
        a @ b
    sync()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(8):
            a @ b
        count += 8
        sync()
    return 2 * m * k * n * count / (time.perf_counter() - start)
