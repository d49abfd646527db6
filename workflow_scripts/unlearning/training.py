"""DPO + LoRA unlearning of one model, resumable, with a per-step log.

The reference policy is the same model with its adapter disabled (TRL does this for PEFT models), so memory holds
one copy of the weights; its log-probabilities are computed once, before the first epoch, and reused by every epoch.
Weights are bf16 wherever bf16 is native (``train.precision: auto``), and on the CPU the LM head projects only the
answer positions (``completion_positions_only``) and attention is eager; benchmarks/run.py measures what each buys.

Checkpoints go to a folder that is not a Snakemake output, keyed by the training config's hash, so a killed job
resumes from its last checkpoint while a changed config starts afresh. An optional retain term (alpha x NLL of
retain answers, as in GradDiff) limits collateral forgetting.
"""

from __future__ import annotations

import logging
import random
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import trl.trainer.utils as trl_utils
from datasets import Dataset
from peft import LoraConfig
from transformers import PreTrainedTokenizerBase
from transformers.trainer_callback import TrainerState
from transformers.trainer_utils import get_last_checkpoint
from trl import DPOConfig, DPOTrainer

from .models import Manifest, load_model, pick_device, training_dtype
from .parquet_io import config_hash
from .prompting import PromptStyle, build_prompt, user_message

log = logging.getLogger(__name__)
LOG_COLUMNS = {
    "step": "step",
    "epoch": "epoch",
    "loss": "loss",
    "rewards_chosen": "rewards/chosen",
    "rewards_rejected": "rewards/rejected",
    "rewards_margins": "rewards/margins",
    "rewards_accuracies": "rewards/accuracies",
    "learning_rate": "learning_rate",
    "num_tokens": "num_tokens",
    "seconds": "seconds",
    "retain_nll": "retain_nll",
}


@dataclass
class TrainResult:
    log: pd.DataFrame
    resumed_from_step: int
    seconds: float
    device: str
    truncated_prompts: int


def _fit_prompt(tokenizer: PreTrainedTokenizerBase, question: str, style: PromptStyle, limit: int) -> tuple[str, bool]:
    """The question, cut from the left until the templated prompt has at most ``limit`` tokens."""
    text = question
    for _ in range(8):
        n = len(tokenizer(build_prompt(tokenizer, text, **vars(style)), add_special_tokens=False)["input_ids"])
        if n <= limit:
            return text, text != question
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        text = tokenizer.decode(ids[min(len(ids) - 1, n - limit) :])
    return text, True


def preference_dataset(
    pairs: pd.DataFrame, tokenizer: PreTrainedTokenizerBase, style: PromptStyle, max_prompt_length: int
) -> tuple[Dataset, int]:
    """TRL's conversational (chat template on) or plain preference format; prompts over the limit are cut."""
    rows, truncated = [], 0
    for prompt, chosen, rejected in zip(pairs["prompt"], pairs["chosen"], pairs["rejected"], strict=True):
        question, cut = _fit_prompt(tokenizer, prompt, style, max_prompt_length)
        truncated += cut
        if style.chat_template:
            messages = [{"role": "system", "content": style.system}] if style.system else []
            messages.append({"role": "user", "content": user_message(question, style.instruction)})
            rows.append(
                {
                    "prompt": messages,
                    "chosen": [{"role": "assistant", "content": chosen}],
                    "rejected": [{"role": "assistant", "content": rejected}],
                }
            )
        else:
            prompt_text = build_prompt(tokenizer, question, **vars(style))
            rows.append({"prompt": prompt_text, "chosen": " " + chosen, "rejected": " " + rejected})
    if truncated:
        log.warning("%d of %d DPO prompts were longer than max_prompt_length and were cut", truncated, len(rows))
    return Dataset.from_list(rows), truncated


def _retain_examples(
    retain: pd.DataFrame, tokenizer: PreTrainedTokenizerBase, style: PromptStyle, max_length: int
) -> list[tuple[list[int], int]]:
    """(token ids of prompt + true answer, prompt length) for the retain term."""
    out = []
    for question, answer in zip(retain["question"], retain["answer"], strict=True):
        prompt = build_prompt(tokenizer, question, **vars(style))
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        a = tokenizer((" " if not style.chat_template else "") + answer, add_special_tokens=False)["input_ids"]
        ids = (p + a + [tokenizer.eos_token_id])[:max_length]
        out.append((ids, min(len(p), len(ids) - 1)))
    return out


class UnlearningDPOTrainer(DPOTrainer):
    """DPOTrainer plus an optional retain NLL term and wall-clock seconds in every log row."""

    def __init__(self, *args: Any, retain: list[tuple[list[int], int]], retain_weight: float, **kwargs: Any):
        # the clock starts before TRL's __init__, which precomputes the reference log-probabilities
        self._clock = time.monotonic()
        self._seconds_before = 0.0
        super().__init__(*args, **kwargs)
        self.retain_weight = retain_weight
        self._retain_iter = self._cycle(retain, self.args.per_device_train_batch_size) if retain_weight else None

    def _cycle(self, examples: list[tuple[list[int], int]], batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
        rng = random.Random(self.args.seed)
        pad = self.processing_class.pad_token_id
        while True:
            order = list(range(len(examples)))
            rng.shuffle(order)
            for start in range(0, len(order), batch_size):
                batch = [examples[i] for i in order[start : start + batch_size]]
                width = max(len(ids) for ids, _ in batch)
                input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
                labels = torch.full_like(input_ids, -100)
                mask = torch.zeros_like(input_ids)
                for row, (ids, plen) in enumerate(batch):
                    input_ids[row, : len(ids)] = torch.tensor(ids)
                    labels[row, plen : len(ids)] = torch.tensor(ids[plen:])
                    mask[row, : len(ids)] = 1
                yield {"input_ids": input_ids, "attention_mask": mask, "labels": labels}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001
        result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if self._retain_iter is None:
            return result
        batch = {k: v.to(self.accelerator.device) for k, v in next(self._retain_iter).items()}
        nll = model(**batch, use_cache=False, fused_lm_head=True).loss
        self._metrics["train"]["retain_nll"].append(float(nll.detach()))
        if return_outputs:
            loss, outputs = result
            return loss + self.retain_weight * nll, outputs
        return result + self.retain_weight * nll

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        logs["seconds"] = self._seconds_before + time.monotonic() - self._clock
        super().log(logs, start_time)


@contextmanager
def completion_positions_only() -> Iterator[None]:
    """Make TRL's fused LM head project only the answer positions on the CPU too.

    TRL scores only positions with a label on Triton devices but every position elsewhere (to keep shapes static
    for compiling backends such as Neuron). On the CPU that spends most of the head, the costliest layer of a small
    model with a large vocabulary, on prompt and padding positions whose log-probabilities are thrown away. The
    log-probabilities are the same either way (tests/test_training.py checks it).
    """
    if not hasattr(trl_utils, "_use_triton"):
        raise RuntimeError(
            "this TRL version no longer exposes trl.trainer.utils._use_triton; update "
            "unlearning.training.completion_positions_only for it"
        )
    original = trl_utils._use_triton
    trl_utils._use_triton = lambda device: device.type == "cpu" or original(device)
    try:
        yield
    finally:
        trl_utils._use_triton = original


def _prepare_checkpoints(folder: Path, key: str) -> str | None:
    """The last checkpoint in ``folder`` if it was made with the same config, else a clean folder."""
    stamp = folder / "config_hash.txt"
    if folder.exists() and (not stamp.exists() or stamp.read_text().strip() != key):
        log.info("training config changed: discarding old checkpoints in %s", folder)
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp.write_text(key + "\n")
    return get_last_checkpoint(str(folder))


def train(
    manifest: Manifest,
    pairs: pd.DataFrame,
    cfg: Mapping[str, Any],
    *,
    style: PromptStyle,
    adapter_dir: str | Path,
    checkpoint_dir: str | Path,
    retain: pd.DataFrame | None = None,
    requested_gpu: bool = False,
) -> TrainResult:
    """Train a LoRA adapter with DPO on ``pairs``; save only the adapter; return the per-step log."""
    lora, dpo = cfg["lora"], cfg["dpo"]
    device = pick_device(requested_gpu)
    dtype = training_dtype(cfg.get("precision", "auto"), device)
    log.info("training on %s in %s", device, dtype)
    # On the CPU, eager attention trains faster than SDPA, whose CPU backward is slow for short padded sequences
    # (18% of a whole run of the embedded default; benchmarks/run.py)
    attention = "eager" if device.type == "cpu" else None
    model, tokenizer = load_model(manifest, device=device, dtype=dtype, attn_implementation=attention)
    dataset, truncated = preference_dataset(pairs, tokenizer, style, int(dpo["max_prompt_length"]))
    retain_weight = float(cfg.get("retain_weight") or 0.0)
    retain_examples = []
    if retain_weight:
        if retain is None or retain.empty:
            raise ValueError("train.retain_weight is set but the retain split has no questions")
        retain_examples = _retain_examples(retain, tokenizer, style, int(dpo["max_length"]))
    checkpoint_dir = Path(checkpoint_dir)
    resume = _prepare_checkpoints(checkpoint_dir, config_hash({"cfg": cfg, "style": vars(style), "n": len(pairs)}))
    args = DPOConfig(
        output_dir=str(checkpoint_dir),
        per_device_train_batch_size=int(dpo["batch_size"]),
        gradient_accumulation_steps=int(dpo["grad_accum"]),
        learning_rate=float(dpo["learning_rate"]),
        num_train_epochs=float(dpo["epochs"]),
        beta=float(dpo["beta"]),
        loss_type=[dpo["loss_type"]],
        max_length=int(dpo["max_length"]),
        precompute_ref_log_probs=True,
        precompute_ref_batch_size=2 * int(dpo["batch_size"]),
        gradient_checkpointing=bool(cfg.get("gradient_checkpointing", False)),
        logging_steps=1,
        save_strategy="steps",
        save_steps=int(cfg["save_steps"]),
        save_total_limit=2,
        report_to=[],
        seed=int(cfg["seed"]),
        data_seed=int(cfg["seed"]),
        # the weights already have the training dtype: autocast would only re-cast them on every operation
        bf16=False,
        use_cpu=device.type == "cpu",
        dataloader_num_workers=0,
        disable_tqdm=False,
    )
    peft_config = LoraConfig(
        r=int(lora["r"]),
        lora_alpha=int(lora["alpha"]),
        lora_dropout=float(lora["dropout"]),
        target_modules=lora["target_modules"],
        task_type="CAUSAL_LM",
    )
    start = time.monotonic()
    with completion_positions_only():
        # the reference log-probabilities are computed here, before training starts
        trainer = UnlearningDPOTrainer(
            model=model,
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=peft_config,
            retain=retain_examples,
            retain_weight=retain_weight,
        )
        resumed_from = 0
        if resume:
            state = TrainerState.load_from_json(str(Path(resume) / "trainer_state.json"))
            resumed_from = state.global_step
            # the restored log history carries the seconds spent before the interruption
            trainer._seconds_before = max((h.get("seconds", 0.0) for h in state.log_history), default=0.0)
            log.info("resuming training from %s (step %d)", resume, resumed_from)
        trainer.train(resume_from_checkpoint=resume)
    seconds = time.monotonic() - start
    adapter_dir = Path(adapter_dir)
    trainer.model.save_pretrained(str(adapter_dir), safe_serialization=True)
    rows = [h for h in trainer.state.log_history if "loss" in h and "step" in h]
    table = pd.DataFrame([{ours: h.get(theirs) for ours, theirs in LOG_COLUMNS.items()} for h in rows])
    table = table.astype({c: "float64" for c in table.columns if c != "step"}).astype({"step": "int64"})
    shutil.rmtree(checkpoint_dir)
    return TrainResult(table, resumed_from, seconds, str(device), truncated)


def merge_adapter(model: Any, tokenizer: PreTrainedTokenizerBase, out_dir: str | Path) -> None:
    """Fold a loaded LoRA adapter into the base weights and save a plain safetensors checkpoint."""
    merged = model.merge_and_unload()
    merged.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
