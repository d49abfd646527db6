"""The GPU path, checked on one CUDA device (the ``gpu`` section of ``run.py``; ``benchmarks/gpu_check.sh`` runs it on
a device machine). The embedded default's imported model, QA and DPO pairs are made with Snakemake first.

1. DPO and NPO training of SmolLM2-135M-Instruct in bf16 (``train.precision: bf16``), the project's ``train``;
2. batched generation and likelihood scoring of every evaluation question (bf16, as the stages run on CUDA);
3. a forced CUDA out-of-memory: first a synthetic batch function whose allocation grows with the batch (it must
   halve from 32 to 8), then the real likelihood scoring asked for one batch of every request replicated far beyond
   the GPU's memory (it must halve until a batch fits, and give the same log-likelihoods as a normal batch).

Gives tokens/s, model FLOP utilisation (MFU) against the GPU's dense bf16 peak, and peak GPU memory of each part as
rows of ``run.py``'s table. MFU counts the model's nominal training FLOPs, 6 x (linear weights, LM head included) per
trained token (PaLM's convention; LoRA's frozen weights need no weight gradient, so the executed work is nearer 4x
and true utilisation higher), and 2x per token for inference.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import torch
from methods_speed import method_cfg, run_ours, training_data
from training_speed import linear_params
from workflow_time import TRAINING_INPUTS, ensure

from unlearning.config.settings import prompt_style
from unlearning.core.parquet_io import read_parquet
from unlearning.inference.batching import run_batched
from unlearning.inference.generation import generate
from unlearning.inference.likelihood import continuation_logliks
from unlearning.inference.prompting import PromptStyle
from unlearning.models.checkpoints import Manifest, load_model
from unlearning.scoring.evaluation import evaluation_questions, likelihood_requests, prompts_for

# dense bf16 tensor-core peaks (TFLOP/s, no sparsity) by a substring of torch.cuda.get_device_name();
# GPU_BF16_PEAK_TFLOPS overrides (a GPU not listed, or a power-capped one)
BF16_PEAK_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0,
                    "A10": 125.0, "RTX 4090": 165.0, "RTX 3090": 71.0, "B200": 2250.0}  # fmt: skip


def bf16_peak(name: str) -> float | None:
    """The GPU's dense bf16 peak in FLOP/s, or None when unknown (MFU is then not printed)."""
    if os.environ.get("GPU_BF16_PEAK_TFLOPS"):
        return float(os.environ["GPU_BF16_PEAK_TFLOPS"]) * 1e12
    return next((tflops * 1e12 for key, tflops in BF16_PEAK_TFLOPS.items() if key in name), None)


def peak_gib() -> float:
    return torch.cuda.max_memory_allocated() / 2**30


def report(label: str, tokens: float, seconds: float, flops_per_token: float, peak: float | None) -> dict:
    rate = tokens / seconds
    mfu = rate * flops_per_token / peak if peak else None
    row = {"benchmark": label, "seconds": seconds, "tokens": tokens, "tokens_per_s": rate, "mfu": mfu,
           "peak_gpu_gib": peak_gib()}  # fmt: skip
    shown = f"{100 * mfu:.1f}%" if mfu is not None else "n/a (unknown GPU peak)"
    print(f"{label}: {rate:,.0f} tokens/s, MFU {shown}, peak GPU memory {row['peak_gpu_gib']:.2f} GiB, {seconds:.1f} s")
    return row


class Halvings(logging.Handler):
    """Counts the batch loop's 'CUDA out of memory; retrying with batch size N' warnings."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "CUDA out of memory" in message:
            self.sizes.append(int(message.rsplit(" ", 1)[1]))


def forced_oom() -> list[dict]:
    """The batch halving on real CUDA OOMs: synthetic, then the real scoring with an impossible batch."""
    halvings = Halvings()
    logging.getLogger("unlearning.inference.batching").addHandler(halvings)
    torch.cuda.empty_cache()  # what the allocator keeps cached would otherwise absorb part of the request
    free, _ = torch.cuda.mem_get_info()
    per_item = free // 12  # a batch of 8 needs 2/3 of the free memory; 16 needs 4/3: out of memory
    seen: list[int] = []

    def grows(batch: list[int]) -> list[int]:
        seen.append(len(batch))
        block = torch.empty(len(batch) * per_item, dtype=torch.uint8, device="cuda")
        del block
        return batch

    assert run_batched(list(range(32)), grows, batch_size=32, desc="forced OOM") == list(range(32))
    assert seen[:3] == [32, 16, 8] and set(seen[2:]) == {8}, seen
    print(f"forced OOM (synthetic): batch sizes tried {seen}; halvings logged {halvings.sizes}")
    return [{"benchmark": "forced OOM, synthetic", "batch_sizes": seen, "halvings": list(halvings.sizes)}]


def cuda_missing() -> str | None:
    """Why the gpu section cannot run here, or None when torch sees a CUDA device."""
    if torch.cuda.is_available():
        return None
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
    return (f"the gpu section needs a CUDA device, and torch {torch.__version__} ({build}) sees none; run it on a "
            "machine with a GPU and a CUDA build of torch (benchmarks/gpu_check.sh)")  # fmt: skip


def gpu_check(work: Path, config: dict[str, Any], model_name: str) -> list[dict]:
    """Every part above as rows of ``run.py``'s table, after a row naming the GPU and its bf16 peak; without CUDA
    it fails with :func:`cuda_missing`'s message."""
    missing = cuda_missing()
    if missing:
        raise RuntimeError(missing)
    name = torch.cuda.get_device_name(0)
    peak = bf16_peak(name)
    print(f"GPU: {name}; bf16 peak {peak / 1e12 if peak else 'unknown'} TFLOP/s; torch {torch.__version__}")
    ensure(work, TRAINING_INPUTS)
    results = work / "results"
    manifest = Manifest.load(results / "models" / model_name / "model.json")
    style = PromptStyle(**prompt_style(config, model_name))
    qa, pairs = read_parquet(results / "data" / "qa.parquet"), read_parquet(results / "perturb" / "dpo_pairs.parquet")
    tqa = read_parquet(results / "data" / "truthfulqa.parquet")
    unknown = "" if peak else "; bf16 peak unknown (GPU_BF16_PEAK_TFLOPS): no MFU"
    gpu = {"benchmark": f"GPU {name}, dense bf16 peak",
           "detail_text": f"torch {torch.__version__}, CUDA {torch.version.cuda}{unknown}"}  # fmt: skip
    rows: list[dict] = [{**gpu, "flops_per_s": peak} if peak else gpu]

    for method in ("dpo", "npo"):
        cfg = method_cfg(config, model_name, method, epochs=None, precision="bf16")
        torch.cuda.reset_peak_memory_stats()
        ours = run_ours(manifest, cfg, training_data(qa, pairs, cfg["retain_split"]), style, work / "gpu" / method)
        if method == "dpo":
            cpu_model, _ = load_model(manifest, device=torch.device("cpu"))
            n_linear = sum(linear_params(cpu_model))
            del cpu_model
        rows.append(report(f"train {method} (bf16, {len(ours['losses'])} steps, load and reference included)",
                           ours["tokens"], ours["seconds"], 6 * n_linear, peak))  # fmt: skip

    model, tokenizer = load_model(manifest, device=torch.device("cuda"))
    print(f"inference dtype: {model.dtype}")
    questions = evaluation_questions(qa, tqa)
    prompts = prompts_for(tokenizer, questions["question"], style)
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    gens = generate(model, tokenizer, prompts, max_new_tokens=config["generate"]["max_new_tokens"],
                    batch_size=config["generate"]["batch_size"])  # fmt: skip
    torch.cuda.synchronize()
    prompt_tokens = sum(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts)
    new_tokens = sum(g.new_tokens for g in gens)
    rows.append(report(f"generate {len(prompts)} answers (new tokens; prompts' {prompt_tokens} also computed)",
                       new_tokens, time.perf_counter() - start, 2 * n_linear, peak))  # fmt: skip

    requests, _ = likelihood_requests(questions, prompts, tqa)
    ps, cs = [r[0] for r in requests], [r[1] for r in requests]
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    lls = continuation_logliks(model, tokenizer, ps, cs, batch_size=config["score"]["batch_size"])
    torch.cuda.synchronize()
    scored = sum(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in ps) + sum(ll.tokens for ll in lls)
    rows.append(report(f"score {len(requests)} likelihoods (prompt + continuation tokens, no prompt sharing counted)",
                       scored, time.perf_counter() - start, 2 * n_linear, peak))  # fmt: skip

    rows += forced_oom()
    halvings = Halvings()
    logging.getLogger("unlearning.inference.batching").addHandler(halvings)
    copies = 200
    big = continuation_logliks(model, tokenizer, ps * copies, cs * copies, batch_size=len(ps) * copies)
    same = max(abs(a.total - b.total) for a, b in zip(big[: len(lls)], lls, strict=True))
    assert halvings.sizes, "the impossible batch did not run out of memory: raise `copies`"
    print(f"forced OOM (real scoring, {len(ps) * copies} requests in one batch): halved to {halvings.sizes}; "
          f"max |Δ log-lik| against normal batches {same:.2e}")  # fmt: skip
    rows.append(
        {"benchmark": "forced OOM, real scoring", "halvings": list(halvings.sizes), "max_abs_loglik_diff": same}
    )

    return rows
