"""Every registered method's training: this project's ``unlearning.training.engine.train`` against a plain
implementation of the same loss, as a careful user writes it with Hugging Face's ``Trainer`` (open-unlearning's way).

The plain baseline is a ``Trainer`` subclass whose ``compute_loss`` calls ``model(...).logits`` (the LM head on
every position, full vocabulary), runs the reference (the same model with its adapter disabled) forward at every
step where the method has a reference, and trains fp32 weights, under bf16 autocast where bf16 is native (the
usual ``bf16=True`` of a user on such a machine) and in plain fp32 elsewhere or when ``precision: fp32`` is forced.
Attention is the model's default (SDPA). Everything else is the same as the project's run: the examples (the
project's tokenisation), the retain batches, the LoRA config and its seeded initialisation, the optimiser,
learning rate, batch size and number of steps. Each plain loss is one small function below; the scalar formulas
(``npo_loss``, ``dpo_loss``, ...) are the project's, so a difference in the final loss comes from precision and
the order of floating-point work only, and the table checks it against :data:`LOSS_TOLERANCE`.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from inference_speed import prompts_not_shared, switched
from peft import get_peft_model
from transformers import Trainer, TrainingArguments, set_seed

from unlearning.data.qa_table import trainable
from unlearning.inference.prompting import PromptStyle
from unlearning.models.checkpoints import Manifest, load_model
from unlearning.models.devices import pick_device, training_dtype
from unlearning.training import lora_dropout
from unlearning.training.engine import ExampleCollator, RetainBatches, lora_config, tokenize_examples, train
from unlearning.training.methods import METHODS, get_method
from unlearning.training.methods.base import Method
from unlearning.training.methods.dpo import dpo_loss
from unlearning.training.methods.ihl import ihl_loss
from unlearning.training.methods.npo import npo_loss
from unlearning.training.methods.rmu import masked_mse
from unlearning.training.methods.simnpo import simnpo_loss
from unlearning.training.methods.undial import undial_loss

# |difference| allowed between the two runs' mean loss over the last epoch: 5% of the baseline's, at least 0.05
LOSS_TOLERANCE = (0.05, 0.05)
Batch = Mapping[str, torch.Tensor]


def loss_agrees(ours: float, plain: float) -> bool:
    relative, absolute = LOSS_TOLERANCE
    return abs(ours - plain) <= max(absolute, relative * abs(plain))


# ------------------------------------------------------------------------------------- the plain way, per position


def full_logits(model: torch.nn.Module, seqs: Batch) -> torch.Tensor:
    """The usual forward: logits ``[batch, length, vocab]`` at every position."""
    return model(input_ids=seqs["input_ids"], attention_mask=seqs["attention_mask"]).logits.float()


def reference(fn: Callable[[], torch.Tensor], model: torch.nn.Module) -> torch.Tensor:
    """``fn()`` under the reference policy (adapter disabled), without gradients: paid at every step."""
    with torch.no_grad(), model.disable_adapter():
        return fn()


def summed_logprob(model: torch.nn.Module, seqs: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """``log pi(y|x)`` per row from the full logits (shifted, masked by the labels), and the answer lengths."""
    logits, labels = full_logits(model, seqs)[:, :-1], seqs["labels"][:, 1:]
    keep = labels != -100
    logp = torch.log_softmax(logits, -1).gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1)
    return (logp * keep).sum(-1), keep.sum(-1).float()


def mean_nll(model: torch.nn.Module, seqs: Batch) -> torch.Tensor:
    logits = full_logits(model, seqs)
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), seqs["labels"][:, 1:].flatten(), ignore_index=-100)


def log_ratio(model: torch.nn.Module, seqs: Batch) -> torch.Tensor:
    logp, _ = summed_logprob(model, seqs)
    return logp - reference(lambda: summed_logprob(model, seqs)[0], model)


# ------------------------------------------------------------------------------------- one function per method


def plain_dpo(model: torch.nn.Module, batch: Mapping[str, Any], method: Method) -> torch.Tensor:
    chosen, rejected = log_ratio(model, batch["chosen"]), log_ratio(model, batch["rejected"])
    return dpo_loss(chosen, rejected, method.settings.beta)[0]


def plain_grad_ascent(model: torch.nn.Module, batch: Mapping[str, Any], method: Method) -> torch.Tensor:
    return -mean_nll(model, batch["forget"])


def plain_npo(model: torch.nn.Module, batch: Mapping[str, Any], method: Method) -> torch.Tensor:
    return npo_loss(log_ratio(model, batch["forget"]), method.settings.beta)


def plain_simnpo(model: torch.nn.Module, batch: Mapping[str, Any], method: Method) -> torch.Tensor:
    logp, lengths = summed_logprob(model, batch["forget"])
    return simnpo_loss(-logp / lengths, method.settings.beta, method.settings.delta)


def plain_undial(model: torch.nn.Module, batch: Mapping[str, Any], method: Method) -> torch.Tensor:
    seqs = batch["forget"]
    keep = seqs["labels"][:, 1:] != -100
    ref = reference(lambda: full_logits(model, seqs), model)[:, :-1][keep]
    return undial_loss(full_logits(model, seqs)[:, :-1][keep], ref, seqs["labels"][:, 1:][keep], method.settings.beta)


def plain_ihl(model: torch.nn.Module, batch: Mapping[str, Any], method: Method) -> torch.Tensor:
    seqs = batch["forget"]
    keep = seqs["labels"][:, 1:] != -100
    return ihl_loss(full_logits(model, seqs)[:, :-1][keep], seqs["labels"][:, 1:][keep])[0]


def hidden_after(model: torch.nn.Module, seqs: Batch, layer: int) -> torch.Tensor:
    """Layer ``layer``'s output the usual way: a whole forward with every hidden state returned."""
    out = model(input_ids=seqs["input_ids"], attention_mask=seqs["attention_mask"], output_hidden_states=True)
    return out.hidden_states[layer + 1]


def plain_rmu(model: torch.nn.Module, batch: Mapping[str, Any], method: Method) -> torch.Tensor:
    seqs = batch["forget"]
    h = hidden_after(model, seqs, method.layer)
    return masked_mse(h, method.control.to(h.device), seqs["labels"])


PLAIN_FORGET: dict[str, Callable[[torch.nn.Module, Mapping[str, Any], Method], torch.Tensor]] = {
    "dpo": plain_dpo,
    "idk_dpo": plain_dpo,
    "grad_ascent": plain_grad_ascent,
    "grad_diff": plain_grad_ascent,
    "npo": plain_npo,
    "simnpo": plain_simnpo,
    "undial": plain_undial,
    "ihl": plain_ihl,
    "rmu": plain_rmu,
}


def plain_retain(model: torch.nn.Module, seqs: Batch, method: Method) -> torch.Tensor:
    """The retain term the usual way: NLL, KL to the reference (full logits), or RMU's activation match."""
    if method.name == "rmu":
        ref = reference(lambda: hidden_after(model, seqs, method.layer), model)
        return masked_mse(hidden_after(model, seqs, method.layer), ref, seqs["labels"])
    if method.retain_kind == "kl":
        keep = seqs["labels"] != -100
        ref = reference(lambda: full_logits(model, seqs), model)[:, :-1][keep[:, 1:]]
        logits = full_logits(model, seqs)[:, :-1][keep[:, 1:]]
        return F.kl_div(F.log_softmax(logits, -1), F.log_softmax(ref, -1), reduction="batchmean", log_target=True)
    return mean_nll(model, seqs)


class PlainTrainer(Trainer):
    """``Trainer`` with the method's loss written in ``compute_loss``; counts the tokens it trains on."""

    def __init__(self, *args: Any, method: Method, retain: RetainBatches | None, retain_weight: float, **kw: Any):
        super().__init__(*args, **kw)
        self.method, self.retain, self.retain_weight = method, retain, retain_weight
        self.micro_step = self.tokens = 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001, ANN201
        loss = PLAIN_FORGET[self.method.name](model, inputs, self.method)
        self.tokens += sum(int(inputs[n]["attention_mask"].sum()) for n in self.method.sequences)
        if self.retain_weight:
            batch = {k: v.to(self.accelerator.device) for k, v in self.retain[self.micro_step].items()}
            loss = loss + self.retain_weight * plain_retain(model, batch, self.method)
            self.tokens += int(batch["attention_mask"].sum())
        self.micro_step += 1
        return (loss, None) if return_outputs else loss


# ------------------------------------------------------------------------------------- the two runs, compared


def method_cfg(config: Mapping[str, Any], model: str, name: str, epochs: float | None, precision: str | None) -> dict:
    from unlearning.config.settings import unlearn_settings

    cfg = unlearn_settings({**config, "unlearn": {name: {"method": name}}}, model, name)
    cfg["save_steps"] = 10**6
    if epochs:
        cfg["epochs"] = epochs
    if precision:
        cfg["precision"] = precision
    return cfg


def run_plain(
    manifest: Manifest, cfg: Mapping[str, Any], data: Mapping[str, Any], style: PromptStyle, out_dir: Path
) -> dict:
    """The plain baseline of ``cfg["method"]``: seconds, tokens, per-step losses, dtype."""
    method_cls = get_method(cfg["method"])
    seed = int(cfg["seed"])
    method = method_cls(method_cls.settings_from(cfg["settings"], "plain"), retain_kind=cfg["retain_kind"], seed=seed)
    device = pick_device()
    autocast = training_dtype(cfg["precision"], device) == torch.bfloat16
    start = time.perf_counter()
    model, tokenizer = load_model(manifest, device=device, dtype=torch.float32)
    lengths = {"max_length": int(cfg["max_length"]), "max_prompt_length": int(cfg["max_prompt_length"])}
    texts = method.training_texts(data["forget"], data["pairs"])
    examples, _ = tokenize_examples(texts, method.sequences, tokenizer, style, **lengths)
    set_seed(seed)
    model = get_peft_model(model, lora_config(model, cfg["lora"]))
    collate = ExampleCollator(method.sequences, tokenizer.pad_token_id)
    retain_weight = float(cfg["retain_weight"])
    retain = None
    if retain_weight:
        rt = pd.DataFrame({"prompt": data["retain"]["question"].to_numpy(), "answer": data["retain"]["answer"]})
        retain_examples, _ = tokenize_examples(rt, ("answer",), tokenizer, style, **lengths)
        retain = RetainBatches([e["answer"] for e in retain_examples], int(cfg["batch_size"]), seed,
                               tokenizer.pad_token_id)  # fmt: skip
    if method.name == "rmu":  # its fixed steering vector and coefficient: set-up, not a per-step cost
        size = 2 * int(cfg["batch_size"])
        method.prepare(model, "plain", (collate(examples[i : i + size]) for i in range(0, len(examples), size)))
    args = TrainingArguments(
        output_dir=str(out_dir),
        per_device_train_batch_size=int(cfg["batch_size"]),
        gradient_accumulation_steps=int(cfg["grad_accum"]),
        learning_rate=float(cfg["learning_rate"]),
        num_train_epochs=float(cfg["epochs"]),
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=seed,
        data_seed=seed,
        bf16=autocast,
        use_cpu=device.type == "cpu",
        remove_unused_columns=False,
        disable_tqdm=True,
    )
    trainer = PlainTrainer(model=model, args=args, train_dataset=examples, data_collator=collate, method=method,
                           retain=retain, retain_weight=retain_weight)  # fmt: skip
    trainer.train()
    seconds = time.perf_counter() - start
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h and "step" in h]
    dtype = "bf16 autocast" if autocast else "fp32"
    return {"seconds": seconds, "tokens": trainer.tokens, "losses": losses, "dtype": dtype, "examples": len(examples)}


def run_ours(
    manifest: Manifest, cfg: Mapping[str, Any], data: Mapping[str, Any], style: PromptStyle, out_dir: Path
) -> dict:
    """This project's ``train`` on the same data and settings (model loading included, as in the plain run)."""
    start = time.perf_counter()
    result = train(manifest, cfg, forget=data["forget"], pairs=data["pairs"], style=style,
                   retain=data["retain"] if float(cfg["retain_weight"]) else None,
                   adapter_dir=out_dir / "adapter", checkpoint_dir=out_dir / "ckpt", entry=cfg["method"])  # fmt: skip
    seconds = time.perf_counter() - start
    dtype = str(training_dtype(cfg["precision"], pick_device())).removeprefix("torch.")
    return {"seconds": seconds, "tokens": int(result.log["num_tokens"].iloc[-1]),
            "losses": result.log["loss"].tolist(), "dtype": dtype}  # fmt: skip


def steps_per_epoch(examples: int, cfg: Mapping[str, Any]) -> int:
    return max(1, math.ceil(math.ceil(examples / int(cfg["batch_size"])) / int(cfg["grad_accum"])))


#: This project's variants of each method's run, in table order: every prompt run whole (the padded batch),
#: torch's LoRA dropout instead of :mod:`unlearning.training.lora_dropout`'s, and the default (both speed-ups on)
VARIANTS = {
    "whole": "this project's train, every prompt run whole (padded rows)",
    "torch_dropout": "this project's train, torch's LoRA dropout",
    "ours": "this project's train",
}


def compare_rows(name: str, plain: dict, runs: Mapping[str, dict], per_epoch: int) -> list[dict]:
    """The table rows of one method: the plain baseline, then each of this project's ``runs`` (keys of
    :data:`VARIANTS`) with tokens/s, the ratio to plain, and whether the last epoch's mean loss agrees with plain's."""
    last_plain = float(pd.Series(plain["losses"][-per_epoch:]).mean())
    rate_plain = plain["tokens"] / plain["seconds"]
    common = {"method": name, "steps": len(plain["losses"])}
    rows = [{"benchmark": f"{name}: plain Trainer (full LM head, reference every step, {plain['dtype']})", **common,
             "seconds": plain["seconds"], "runs_s": plain.get("runs_s", [plain["seconds"]]), "tokens": plain["tokens"],
             "tokens_per_s": rate_plain, "last_epoch_loss": last_plain, "dtype": plain["dtype"]}]  # fmt: skip
    for key, run in runs.items():
        last = float(pd.Series(run["losses"][-per_epoch:]).mean())
        rate = run["tokens"] / run["seconds"]
        rows.append({"benchmark": f"{name}: {VARIANTS[key]} ({run['dtype']})", **common, "seconds": run["seconds"],
                     "runs_s": run.get("runs_s", [run["seconds"]]), "tokens": run["tokens"], "tokens_per_s": rate,
                     "ratio_vs_baseline": rate / rate_plain, "last_epoch_loss": last,
                     "loss_agrees": loss_agrees(last, last_plain), "same_tokens": run["tokens"] == plain["tokens"],
                     "dtype": run["dtype"]})  # fmt: skip
    return rows


def median_run(runs: Sequence[dict]) -> dict:
    """The run of median time (the lower of the two middle ones for an even count), with every run's seconds in
    ``runs_s``; the runs train the same tokens with the same seed, so only their clocks differ."""
    seconds = [r["seconds"] for r in runs]
    middle = statistics.median_low(seconds)
    return {**runs[seconds.index(middle)], "runs_s": seconds}


def training_data(qa: pd.DataFrame, pairs: pd.DataFrame | None, retain_split: Sequence[str]) -> dict[str, Any]:
    """The forget, pairs and retain inputs of the unlearn rule (QA pairs only: probes are scored, never trained on)."""
    qa = trainable(qa)
    return {"forget": qa[qa["split"] == "forget_train"], "pairs": pairs, "retain": qa[qa["split"].isin(retain_split)]}


def bench_methods(
    manifest: Manifest,
    config: Mapping[str, Any],
    model: str,
    qa: pd.DataFrame,
    pairs: pd.DataFrame,
    style: PromptStyle,
    work_dir: Path,
    *,
    methods: Sequence[str] | None = None,
    epochs: float | None = None,
    precision: str | None = None,
    repeats: int = 1,
) -> list[dict]:
    """A row per registered method for the plain baseline and for each of this project's :data:`VARIANTS`, with
    its ratio to the baseline. Each is run ``repeats`` times, interleaved (baseline, variants, baseline, ...), and
    the run of median time is shown: on a shared machine one run's clock can be off by a third."""
    rows = []
    for name in methods or sorted(METHODS):
        cfg = method_cfg(config, model, name, epochs, precision)
        data = training_data(qa, pairs, cfg["retain_split"])
        plain, runs = [], {key: [] for key in VARIANTS}
        for _ in range(repeats):
            plain.append(run_plain(manifest, cfg, data, style, work_dir / name / "plain"))
            with prompts_not_shared():
                runs["whole"].append(run_ours(manifest, cfg, data, style, work_dir / name / "whole"))
            with switched(lora_dropout, "FAST_DROPOUT", False):
                runs["torch_dropout"].append(run_ours(manifest, cfg, data, style, work_dir / name / "torch_dropout"))
            runs["ours"].append(run_ours(manifest, cfg, data, style, work_dir / name / "ours"))
        medians = {key: median_run(every) for key, every in runs.items()}
        rows += compare_rows(name, median_run(plain), medians, steps_per_epoch(plain[0]["examples"], cfg))
    return rows
