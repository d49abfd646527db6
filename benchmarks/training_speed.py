"""DPO + LoRA training throughput: plain ``trl.DPOTrainer`` with its default settings against this project's
``unlearning.training.engine.train`` with method ``dpo``, on the same pairs, LoRA config, hyper-parameters and number of
steps, with the speed-ups added one at a time in between so that each one's share is measured.

FLOP/s are the FLOPs each variant executes on real (non-padding) tokens: the backbone's linear layers and the LM head
(2 FLOPs per weight per token for a forward, as much again for the backward's input gradients; LoRA's own products,
attention scores and padding are left out), divided by the wall time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import trl.trainer.utils as trl_utils
from datasets import Dataset
from transformers import PreTrainedTokenizerBase
from trl import DPOConfig, DPOTrainer

from unlearning.inference.prompting import PromptStyle, build_prompt, user_message
from unlearning.models.checkpoints import Manifest, load_model
from unlearning.models.devices import pick_device, training_dtype
from unlearning.training.engine import fit_prompt, lora_config, train

LOSS_TOLERANCE = 0.05  # |difference| allowed between the mean losses of the last epoch


def preference_dataset(
    pairs: pd.DataFrame, tokenizer: PreTrainedTokenizerBase, style: PromptStyle, max_prompt_length: int
) -> Dataset:
    """The pairs in TRL's conversational (chat template on) or plain preference format, prompts cut as ours are."""
    rows = []
    for prompt, chosen, rejected in zip(pairs["prompt"], pairs["chosen"], pairs["rejected"], strict=True):
        question, _ = fit_prompt(tokenizer, prompt, style, max_prompt_length)
        if style.chat_template:
            messages = [{"role": "system", "content": style.system}] if style.system else []
            messages.append({"role": "user", "content": user_message(question, style.instruction)})
            rows.append({"prompt": messages, "chosen": [{"role": "assistant", "content": chosen}],
                         "rejected": [{"role": "assistant", "content": rejected}]})  # fmt: skip
        else:
            prompt_text = build_prompt(tokenizer, question, **vars(style))
            rows.append({"prompt": prompt_text, "chosen": " " + chosen, "rejected": " " + rejected})
    return Dataset.from_list(rows)


@contextmanager
def completion_positions_only() -> Iterator[None]:
    """Make TRL's fused LM head project only the answer positions on the CPU too (it does so only on Triton
    devices), so the ablation can measure what that speed-up alone buys a plain DPOTrainer."""
    original = trl_utils._use_triton
    trl_utils._use_triton = lambda device: device.type == "cpu" or original(device)
    try:
        yield
    finally:
        trl_utils._use_triton = original


@dataclass(frozen=True)
class Variant:
    """One row of the ablation: which speed-ups a plain DPOTrainer gets."""

    label: str
    gradient_checkpointing: bool = True
    autocast_bf16: bool = True  # TRL's default: fp32 weights under bf16 autocast
    compact_head: bool = False
    eager_attention: bool = False
    precompute_ref: bool = False
    fp32: bool = False  # fp32 weights, no autocast: what a careful user runs where bf16 is not native


FP32_BASELINE = Variant("plain trl.DPOTrainer, default settings but fp32 (bf16=False)", autocast_bf16=False, fp32=True)
ABLATION = [
    Variant("plain trl.DPOTrainer, default settings (baseline)"),
    Variant("+ LM head on answer positions only", compact_head=True),
    Variant("+ no gradient checkpointing", compact_head=True, gradient_checkpointing=False),
    Variant(
        "+ weights in the training dtype, no autocast",
        compact_head=True,
        gradient_checkpointing=False,
        autocast_bf16=False,
    ),
    Variant(
        "+ eager attention instead of SDPA",
        compact_head=True,
        gradient_checkpointing=False,
        autocast_bf16=False,
        eager_attention=True,
    ),
]


@dataclass(frozen=True)
class TokenStats:
    """Real tokens of one epoch: every prompt+answer sequence, and the answer tokens alone."""

    sequence_tokens: int
    answer_tokens: int


def token_stats(dataset: Any) -> TokenStats:  # noqa: ANN401
    """From TRL's tokenised preference dataset (prompt_ids, chosen_ids, rejected_ids)."""
    seq = ans = 0
    for row in dataset:
        p = len(row["prompt_ids"])
        for key in ("chosen_ids", "rejected_ids"):
            seq += p + len(row[key])
            ans += len(row[key])
    return TokenStats(seq, ans)


def linear_params(model: torch.nn.Module) -> tuple[int, int]:
    """Weights of the backbone's linear layers and of the LM head (LoRA layers excluded)."""
    head = model.get_output_embeddings()
    backbone = sum(
        m.weight.numel()
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and m is not head and "lora_" not in name
    )
    return backbone, head.weight.numel()


def executed_flops(stats: TokenStats, params: tuple[int, int], epochs: float, variant: Variant) -> float:
    """FLOPs a variant executes on real tokens over ``epochs`` (see the module docstring)."""
    backbone, head = params
    head_rows = stats.answer_tokens if variant.compact_head else stats.sequence_tokens
    forward = 2 * backbone * stats.sequence_tokens + 2 * head * head_rows
    policy = 2 * forward * epochs  # forward + input-gradient backward
    reference = forward * (1 if variant.precompute_ref else epochs)
    recompute = 2 * backbone * stats.sequence_tokens * epochs if variant.gradient_checkpointing else 0
    return policy + reference + recompute


def _trl_config(out_dir: Path, cfg: dict, variant: Variant, device: torch.device) -> DPOConfig:
    kwargs: dict[str, Any] = {
        "output_dir": str(out_dir),
        "per_device_train_batch_size": cfg["batch_size"],
        "gradient_accumulation_steps": cfg["grad_accum"],
        "learning_rate": cfg["learning_rate"],
        "beta": cfg["settings"].get("beta", 0.1),
        "max_length": cfg["max_length"],
        "num_train_epochs": cfg["epochs"],
        "seed": cfg["seed"],
        "data_seed": cfg["seed"],
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": [],
        "disable_tqdm": True,
        "use_cpu": device.type == "cpu",
    }
    if not variant.gradient_checkpointing:
        kwargs["gradient_checkpointing"] = False
    if not variant.autocast_bf16:
        kwargs["bf16"] = False
    if variant.precompute_ref:
        kwargs.update(precompute_ref_log_probs=True, precompute_ref_batch_size=2 * cfg["batch_size"])
    return DPOConfig(**kwargs)


def _row(label: str, seconds: float, history: list[dict], pairs: float, flops: float, peak: float) -> dict:
    logged = [h for h in history if "loss" in h and "step" in h]
    losses = [h["loss"] for h in logged]
    tokens = max(h.get("num_tokens", 0) for h in logged)
    return {
        "benchmark": f"training: {label}",
        "items": pairs,
        "steps": max(h["step"] for h in logged),
        "tokens": int(tokens),
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
        "pairs_per_s": pairs / seconds,
        "final_loss": losses[-1],
        "losses": losses,
        "flops_per_s": flops / seconds,
        "pct_of_matmul_peak": 100 * flops / seconds / peak,
    }


def run_variant(
    manifest: Manifest,
    pairs: pd.DataFrame,
    cfg: dict,
    style: PromptStyle,
    variant: Variant,
    peak: Callable[[torch.dtype], float],
    work_dir: Path,
) -> tuple[dict, TokenStats, tuple[int, int]]:
    """A plain DPOTrainer with the variant's speed-ups; the clock includes any reference precomputation."""
    device = pick_device()
    dtype = torch.float32 if variant.autocast_bf16 or variant.fp32 else training_dtype(cfg["precision"], device)
    attention = "eager" if variant.eager_attention else None
    model, tokenizer = load_model(manifest, device=device, dtype=dtype, attn_implementation=attention)
    dataset = preference_dataset(pairs, tokenizer, style, cfg["max_prompt_length"])
    peft = lora_config(model, cfg["lora"])  # the project's LoRA, as its own training builds it
    args = _trl_config(work_dir / "trl", cfg, variant, device)
    start = time.perf_counter()
    with completion_positions_only() if variant.compact_head else nullcontext():
        trainer = DPOTrainer(
            model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=peft
        )
        trainer.train()
    seconds = time.perf_counter() - start
    stats = token_stats(trainer.train_dataset)
    epochs = cfg["epochs"]
    params = linear_params(trainer.model)
    # on Triton devices TRL's head is compact for every variant
    executed = replace(variant, compact_head=True) if device.type != "cpu" else variant
    flops = executed_flops(stats, params, epochs, executed)
    compute_dtype = torch.bfloat16 if variant.autocast_bf16 or dtype == torch.bfloat16 else torch.float32
    row = _row(variant.label, seconds, trainer.state.log_history, len(pairs) * epochs, flops, peak(compute_dtype))
    row["dtype"] = str(compute_dtype).removeprefix("torch.")
    return row, stats, params


def run_project(
    manifest: Manifest,
    pairs: pd.DataFrame,
    cfg: dict,
    style: PromptStyle,
    stats: TokenStats,
    params: tuple[int, int],
    peak: Callable[[torch.dtype], float],
    work_dir: Path,
) -> dict:
    """This project's ``train`` with method dpo and the same settings (retain term off, as plain TRL has none)."""
    epochs = cfg["epochs"]
    run_cfg = {**cfg, "method": "dpo", "retain_weight": 0.0, "save_steps": 10**6}
    forget = pairs.drop_duplicates("source_id").rename(columns={"prompt": "question", "rejected": "answer"})
    start = time.perf_counter()
    result = train(
        manifest, run_cfg, forget=forget, pairs=pairs, style=style,
        adapter_dir=work_dir / "adapter", checkpoint_dir=work_dir / "ckpt",
    )  # fmt: skip
    seconds = time.perf_counter() - start
    device = pick_device()
    dtype = training_dtype(cfg["precision"], device)
    on_cpu = device.type == "cpu"
    variant = Variant("this project", gradient_checkpointing=False, autocast_bf16=False,
                      compact_head=True, eager_attention=on_cpu, precompute_ref=True)  # fmt: skip
    flops = executed_flops(stats, params, epochs, variant)
    history = result.log.to_dict("records")
    row = _row(
        "this project (unlearning.training.engine.train, method dpo, + reference log-probs precomputed once)",
        seconds, history, len(pairs) * epochs, flops, peak(dtype),
    )  # fmt: skip
    row["dtype"] = str(dtype).removeprefix("torch.")
    return row


def last_epoch_mean(row: dict, steps_per_epoch: int) -> float:
    return float(pd.Series(row["losses"][-steps_per_epoch:]).mean())


def compare(rows: list[dict], steps_per_epoch: int) -> None:
    """Ratios against the baseline (first row) and whether each variant's losses agree with it."""
    base = rows[0]
    base_loss = last_epoch_mean(base, steps_per_epoch)
    for row in rows:
        row["ratio_vs_baseline"] = row["tokens_per_s"] / base["tokens_per_s"]
        row["last_epoch_loss"] = last_epoch_mean(row, steps_per_epoch)
        row["loss_agrees"] = abs(row["last_epoch_loss"] - base_loss) <= LOSS_TOLERANCE


def bench_training(
    manifest: Manifest,
    pairs: pd.DataFrame,
    cfg: dict,
    style: PromptStyle,
    peak: Callable[[torch.dtype], float],
    work_dir: Path,
) -> list[dict]:
    """The ablation rows, then this project's ``train``, each compared with the first (plain TRL): TRL's defaults
    where bf16 is native, else TRL in fp32 (its bf16 autocast is emulated, and slow, there); both rows are shown."""
    rows = []
    native = training_dtype("auto", pick_device()) == torch.bfloat16
    for variant in (ABLATION[:1] + [FP32_BASELINE] if native else [FP32_BASELINE, ABLATION[0]]) + ABLATION[1:]:
        row, stats, params = run_variant(manifest, pairs, cfg, style, variant, peak, work_dir)
        rows.append(row)
    rows.append(run_project(manifest, pairs, cfg, style, stats, params, peak, work_dir))
    steps_per_epoch = math.ceil(len(pairs) / (cfg["batch_size"] * cfg["grad_accum"]))
    compare(rows, steps_per_epoch)
    return rows
