"""The unlearning engine: LoRA training of one model with one registered method, resumable, with a per-step log.

Everything a method does not define lives here (see :mod:`unlearning.training.methods.base` for what it does define):

* LoRA (PEFT) on the configured target modules and layers; only the adapter is saved. ``lora.init: fila`` starts
  it from the Fisher-weighted initialisation of LoKU (:mod:`unlearning.training.fila`).
* Or ``adapter: full``: every weight trains, in float32 master weights (bf16 autocast where bf16 is native), and the
  whole model is saved as safetensors where the adapter would go.
* The reference policy is the same model with its adapter disabled: memory holds one copy of the weights (with
  ``adapter: full``, a frozen copy of the starting weights: :class:`unlearning.models.full_weights.FullWeights`).
  The reference log-probabilities a method declares (``reference_sequences``) are computed once, before training.
* The shared retain term: ``retain_weight`` x (NLL or KL to the reference) on batches of the ``retain_split``
  QA, drawn in a seeded order that depends only on the step (so a resumed run sees the same batches).
* Speed-ups: the LM head projects only answer positions; the decoder runs a batch's rows packed without padding,
  the prompts' shared opening once and each prompt once for the DPO family's pairs
  (:mod:`unlearning.inference.packed_rows`); LoRA dropout on the CPU draws a quarter of the random numbers
  (:mod:`unlearning.training.lora_dropout`); weights are bf16 wherever bf16 is native (``precision: auto``); attention
  is eager on the CPU (SDPA's CPU backward is slow for short padded sequences); ``benchmarks/run.py`` measures
  what each buys.
* Checkpoints go to a folder that is not a Snakemake output, keyed by the settings' hash, so a killed job resumes
  from its last checkpoint while changed settings start afresh.
* A guard against silent no-ops: training that leaves every LoRA B matrix at zero fails (PEFT with gradient
  checkpointing and no input gradients trains nothing; open-unlearning issue 178).

The per-step log has the columns :data:`LOG_COLUMNS` for every method, plus the method's own.
"""

from __future__ import annotations

import logging
import math
import random
import shutil
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from peft import LoraConfig, get_peft_model
from transformers import PreTrainedTokenizerBase, Trainer, TrainingArguments, set_seed
from transformers.trainer_callback import TrainerCallback, TrainerControl, TrainerState
from transformers.trainer_utils import get_last_checkpoint

from ..core.errors import InputError
from ..core.file_modes import apply_umask
from ..core.parquet_io import config_hash
from ..inference.prompting import PromptStyle, build_prompt
from ..models.adapters import untie_adapted_embeddings
from ..models.checkpoints import Manifest, load_model
from ..models.devices import pick_device, training_dtype
from ..models.full_weights import FullWeights
from . import fila
from .layers import layer_index
from .lora_dropout import speed_up_lora_dropout
from .lora_targets import resolve_target_modules
from .methods import get_method
from .methods.base import Method, sequence_logprob, sources
from .quantization_aware import enable as enable_quantization_aware

log = logging.getLogger(__name__)
LOG_COLUMNS = ("step", "epoch", "loss", "forget_loss", "retain_loss", "learning_rate", "num_tokens", "seconds")
TokenSeq = tuple[list[int], int]  # token ids of prompt + answer, and the prompt's length


@dataclass
class TrainResult:
    log: pd.DataFrame
    resumed_from_step: int
    seconds: float
    device: str
    truncated_prompts: int
    fisher_seconds: float | None = None  # FILA's Fisher pass (part of ``seconds``); None without FILA


def fit_prompt(tokenizer: PreTrainedTokenizerBase, question: str, style: PromptStyle, limit: int) -> tuple[str, bool]:
    """The question, cut from the left until the templated prompt has at most ``limit`` tokens."""
    text = question
    for _ in range(8):
        n = len(tokenizer(build_prompt(tokenizer, text, **vars(style)), add_special_tokens=False)["input_ids"])
        if n <= limit:
            return text, text != question
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        text = tokenizer.decode(ids[min(len(ids) - 1, n - limit) :])
    return text, True


def tokenize_examples(
    texts: pd.DataFrame,
    names: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    style: PromptStyle,
    *,
    max_length: int,
    max_prompt_length: int,
) -> tuple[list[dict[str, TokenSeq]], int]:
    """Per row of ``texts`` (``prompt`` + one answer column per name): ``{name: (ids, prompt_length)}``.

    The answer is followed by the EOS token (the end of the assistant's turn in a chat template); prompts over
    ``max_prompt_length`` tokens are cut from the left of the question, sequences over ``max_length`` lose the end
    of the answer. A row whose ``source`` is ``corpus`` (a describe request and the model's description,
    :mod:`unlearning.corpus`) is prompted without ``style``'s instruction, as the describe stage prompted it.
    Returns the examples and how many prompts were cut.
    """
    examples, truncated = [], 0
    lead = "" if style.chat_template else " "
    plain = replace(style, instruction=None)
    for row, source in zip(texts.itertuples(index=False), sources(texts), strict=True):
        row_style = plain if source == "corpus" else style
        question, cut = fit_prompt(tokenizer, row.prompt, row_style, max_prompt_length)
        truncated += cut
        prompt = tokenizer(build_prompt(tokenizer, question, **vars(row_style)), add_special_tokens=False)["input_ids"]
        example = {}
        for name in names:
            answer = tokenizer(lead + str(getattr(row, name)), add_special_tokens=False)["input_ids"]
            ids = (prompt + answer + [tokenizer.eos_token_id])[:max_length]
            example[name] = (ids, min(len(prompt), len(ids) - 1))
        examples.append(example)
    if truncated:
        log.warning("%d of %d prompts were longer than max_prompt_length and were cut", truncated, len(texts))
    return examples, truncated


def collate_sequences(items: Sequence[TokenSeq], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (-100 off the answer), each ``[n, width]``."""
    width = max(len(ids) for ids, _ in items)
    input_ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full_like(input_ids, -100)
    mask = torch.zeros_like(input_ids)
    for row, (ids, plen) in enumerate(items):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, plen : len(ids)] = torch.tensor(ids[plen:])
        mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


class ExampleCollator:
    """Batches of examples: a batch of sequences per name, and each precomputed ``ref_*`` as a ``[n]`` tensor."""

    def __init__(self, names: Sequence[str], pad_id: int) -> None:
        self.names, self.pad_id = tuple(names), pad_id

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        batch: dict[str, Any] = {n: collate_sequences([e[n] for e in examples], self.pad_id) for n in self.names}
        for key in examples[0]:
            if key.startswith("ref_"):
                batch[key] = torch.tensor([e[key] for e in examples], dtype=torch.float32)
        return batch


class RetainBatches:
    """Seeded retain batches indexed by micro-step: batch ``i`` is the same whenever it is asked for."""

    def __init__(self, examples: Sequence[TokenSeq], batch_size: int, seed: int, pad_id: int) -> None:
        self.examples, self.batch_size, self.seed, self.pad_id = list(examples), batch_size, seed, pad_id
        self.per_pass = math.ceil(len(self.examples) / batch_size)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        order = list(range(len(self.examples)))
        random.Random(f"{self.seed}-{i // self.per_pass}").shuffle(order)
        start = (i % self.per_pass) * self.batch_size
        return collate_sequences([self.examples[j] for j in order[start : start + self.batch_size]], self.pad_id)


class NonFiniteLoss(InputError):
    """A training step's loss (or one of its parts) is NaN or infinite; nothing trained after it is saved."""


def check_finite_loss(parts: Mapping[str, float], *, step: int, method: str, lr: float) -> None:
    """Stop training at the first step whose loss or any loss part is NaN or infinite.

    A diverged run (fp16 gradient ascent, a learning rate far too large) otherwise goes on: the Trainer's
    ``logging_nan_inf_filter`` logs the last finite loss instead, and the NaN adapter is saved and evaluated.
    ``parts`` maps each part's name (``forget_loss``, ``retain_loss``, ``loss``) to its value at optimizer step
    ``step`` (1-based). Raises :class:`NonFiniteLoss` naming the step, the method and every part.
    """
    bad = [name for name, value in parts.items() if not math.isfinite(value)]
    if bad:
        shown = ", ".join(f"{name} {value:.6g}" for name, value in parts.items())
        raise NonFiniteLoss(
            f"training stopped at step {step}: method {method!r} gave a non-finite {' and '.join(bad)} ({shown}); "
            f"nothing is saved. The run diverged: lower the learning rate (now {lr:g}), or train in fp32 "
            "(train.precision: fp32)"
        )


class UnlearningTrainer(Trainer):
    """Hugging Face Trainer whose loss is a method's forget loss plus the weighted retain term; logs the parts."""

    loss_is_scaled_for_ga = False  # the loss is a per-batch mean: the Trainer divides it by the accumulation steps

    def __init__(
        self,
        *args: Any,
        method: Method,
        retain: RetainBatches | None,
        retain_weight: float,
        full_weights: FullWeights | None = None,
        **kwargs: Any,
    ) -> None:
        # the clock starts before the Trainer's own set-up, as the reference pass started before this
        self._clock = time.monotonic()
        self._seconds_before = 0.0
        self._tokens = 0
        self._micro_step = 0
        self._pending: dict[str, list[float]] = defaultdict(list)
        super().__init__(*args, **kwargs)
        self.method, self.retain, self.retain_weight = method, retain, retain_weight
        # full fine-tuning: the Trainer trains (and checkpoints) the plain model; the method sees it beside its
        # frozen reference, behind the calls it makes on a LoRA model (get_base_model, disable_adapter)
        self.full_weights = full_weights

    def resume_counters(self, state: TrainerState) -> None:
        """Carry the seconds, tokens and retain position of the run that was interrupted."""
        rows = [h for h in state.log_history if "seconds" in h]
        self._seconds_before = max((h["seconds"] for h in rows), default=0.0)
        self._tokens = int(max((h.get("num_tokens", 0) for h in rows), default=0))
        self._micro_step = state.global_step * self.args.gradient_accumulation_steps

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001, ANN201
        model = self.full_weights if self.full_weights is not None else model
        forget_loss, extras = self.method.forget_loss(model, inputs)
        loss = forget_loss
        parts = {"forget_loss": float(forget_loss.detach())}
        self._tokens += sum(int(inputs[n]["attention_mask"].sum()) for n in self.method.sequences)
        if self.retain_weight:
            batch = _to_device(self.retain[self._micro_step], self.accelerator.device)
            retain_loss = self.method.retain_loss(model, batch)
            loss = loss + self.retain_weight * retain_loss
            self._tokens += int(batch["attention_mask"].sum())
            parts["retain_loss"] = float(retain_loss.detach())
        parts["loss"] = float(loss.detach())
        check_finite_loss(parts, step=self.state.global_step + 1, method=self.method.name, lr=self.args.learning_rate)
        for key, value in [*parts.items(), *extras.items()]:
            if key != "loss":
                self._pending[key].append(float(value))
        self._micro_step += 1
        return (loss, None) if return_outputs else loss

    def floating_point_ops(self, inputs: dict[str, Any]) -> int:
        """Not estimated here (the inputs are nested); benchmarks/ counts executed FLOPs."""
        return 0

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            for key, values in self._pending.items():
                logs[key] = sum(values) / len(values)
            self._pending.clear()
            logs["num_tokens"] = float(self._tokens)
            logs["seconds"] = self._seconds_before + time.monotonic() - self._clock
        super().log(logs, start_time)


class NoFinalCheckpoint(TrainerCallback):
    """No checkpoint at the last step: the Trainer saves one at the end of training (adapter, optimizer state, RNG
    states; about a second of CPU time for SmolLM2), but :func:`train` saves the adapter itself right after and
    deletes the checkpoint folder. Checkpoints every ``save_steps`` before the last (for resuming a killed job) stay.
    """

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        if state.global_step >= state.max_steps:
            control.should_save = False
        return control


def _prepare_checkpoints(folder: Path, key: str) -> str | None:
    """The last checkpoint in ``folder`` if it was made with the same settings, else a clean folder."""
    stamp = folder / "config_hash.txt"
    if folder.exists() and (not stamp.exists() or stamp.read_text().strip() != key):
        log.info("training settings changed: discarding old checkpoints in %s", folder)
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp.write_text(key + "\n")
    return get_last_checkpoint(str(folder))


def qa_sequences(
    qa: pd.DataFrame, tokenizer: PreTrainedTokenizerBase, style: PromptStyle, lengths: Mapping[str, int]
) -> list[TokenSeq]:
    """The token sequence of every row's question and answer (the retain term's and FILA's data: QA pairs, corpus
    texts or both, by each row's ``source``)."""
    texts = pd.DataFrame(
        {"prompt": qa["question"].to_numpy(), "answer": qa["answer"].to_numpy(), "source": sources(qa)}
    )
    return [e["answer"] for e in tokenize_examples(texts, ("answer",), tokenizer, style, **lengths)[0]]


def _sequence_batches(
    sequences: Sequence[TokenSeq], size: int, pad_id: int, device: torch.device
) -> Iterator[dict[str, torch.Tensor]]:
    for start in range(0, len(sequences), size):
        yield _to_device(collate_sequences(sequences[start : start + size], pad_id), device)


def _batches(examples: Sequence[Mapping[str, Any]], collate: ExampleCollator, size: int) -> Iterator[dict]:
    for start in range(0, len(examples), size):
        yield collate(examples[start : start + size])


def _to_device(batch: Any, device: torch.device) -> Any:  # noqa: ANN401
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch.to(device)


@torch.no_grad()
def add_reference_logprobs(
    model: torch.nn.Module, examples: list[dict[str, Any]], names: Sequence[str], collate: ExampleCollator, size: int
) -> None:
    """Store ``ref_<name>`` = log pi_ref(y|x) (adapter disabled) in every example, once, before training."""
    if not names:
        return
    device = next(model.parameters()).device
    with model.disable_adapter():
        for start in range(0, len(examples), size):
            chunk = examples[start : start + size]
            batch = _to_device(collate(chunk), device)
            for name in names:
                logp, _ = sequence_logprob(model, batch[name])
                for example, value in zip(chunk, logp.tolist(), strict=True):
                    example[f"ref_{name}"] = value


def lora_b_matrices(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Copies of every LoRA B matrix, by parameter name: taken before training, what :func:`check_adapter_trained`
    compares with (zero under PEFT's default initialisation, FILA's start otherwise)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}


def check_adapter_trained(model: torch.nn.Module, initial: Mapping[str, torch.Tensor] | None = None) -> None:
    """Fail when a trained weight is NaN or infinite (a last step that diverged after its finite loss), or when
    training left every LoRA B matrix as it was (``initial``, from :func:`lora_b_matrices`; None: zero, PEFT's
    default) or, for full fine-tuning (:class:`FullWeights`), every weight equal to the reference: the result
    would be a silent no-op."""
    broken = [n for n, p in model.named_parameters() if p.requires_grad and not bool(torch.isfinite(p).all())]
    if broken:
        raise NonFiniteLoss(
            f"training left non-finite values in {len(broken)} trained weight(s) ({broken[0]}, ...): the last "
            "optimizer step diverged; nothing is saved. Lower the learning rate, or train in fp32"
        )
    if isinstance(model, FullWeights):
        if not model.changed_weights():
            raise RuntimeError("full fine-tuning left every weight as it was: check the learning rate")
        return
    b_weights = {n: p.detach() for n, p in model.named_parameters() if "lora_B" in n}
    if not b_weights:
        raise RuntimeError("the model has no LoRA B matrices: no adapter was attached")
    unchanged = [
        bool(p.abs().max() == 0) if initial is None else torch.equal(p, initial[n]) for n, p in b_weights.items()
    ]
    if all(unchanged):
        raise RuntimeError(
            "training left every LoRA B matrix at its initial value, so the adapter changes nothing. Typical causes: "
            "gradient checkpointing without input gradients (PEFT), a learning rate of 0, or no trainable LoRA "
            "target (check lora.target_modules and lora.layers)"
        )


def lora_config(model: torch.nn.Module, lora: Mapping[str, Any]) -> LoraConfig:
    """PEFT's LoraConfig from the ``lora:`` settings: ``target_modules`` (``all-linear``, the presets ``attention``
    and ``mlp``, or module names) resolved on the model by :func:`.lora_targets.resolve_target_modules`, which also
    names the modules where ``layers`` (PEFT's ``layers_to_transform``) needs names rather than ``all-linear``.
    ``layers`` may count from the end (-1 is the last decoder layer); a layer the model lacks, or one named twice,
    raises InputError."""
    layers = lora.get("layers")
    if layers is not None:  # a negative index counts from the last layer, so one setting fits models of any depth
        try:
            resolved = [layer_index(model, int(i)) for i in layers]
        except InputError as exc:
            raise InputError(f"lora.layers {list(layers)}: {exc}") from None
        if len(set(resolved)) != len(resolved):
            raise InputError(f"lora.layers {list(layers)} names a decoder layer twice (as {sorted(resolved)})")
        layers = sorted(resolved)
    targets = resolve_target_modules(model, lora["target_modules"], layers)
    return LoraConfig(
        r=int(lora["r"]),
        lora_alpha=int(lora["alpha"]),
        lora_dropout=float(lora["dropout"]),
        target_modules=targets,
        layers_to_transform=layers,
        task_type="CAUSAL_LM",
    )


def train(
    manifest: Manifest,
    cfg: Mapping[str, Any],
    *,
    forget: pd.DataFrame,
    pairs: pd.DataFrame | None = None,
    retain: pd.DataFrame | None = None,
    style: PromptStyle,
    adapter_dir: str | Path,
    checkpoint_dir: str | Path,
    entry: str = "unlearn",
    requested_gpu: bool = False,
) -> TrainResult:
    """Train a LoRA adapter that makes ``manifest``'s model forget ``forget`` with the method ``cfg["method"]``.

    ``cfg`` is an entry's resolved settings (``unlearning.config.settings.unlearn_settings``): ``method``, the method's
    own ``settings``, and the shared ``lora``, ``learning_rate``, ``epochs``, ``batch_size``, ``grad_accum``,
    ``max_length``, ``max_prompt_length``, ``retain_weight``, ``retain_kind``, ``precision``,
    ``gradient_checkpointing``, ``save_steps``, ``seed`` and ``adapter`` (``lora``, the default, or ``full``).
    ``forget`` is the forget term's rows, ``pairs`` the DPO pairs (methods with ``needs_pairs``), ``retain`` the rows
    of the retain term (and of FILA's retain Fisher); rows are QA pairs, corpus texts or both
    (``forget_data`` / ``retain_data``, :func:`unlearning.corpus.training_rows.training_rows`). Saves only the
    adapter (with ``adapter: full``, the whole model).

    Raises ValueError on settings that contradict the data (a retain weight without retain questions, a method
    that needs pairs without them, FILA without retain questions) and RuntimeError when training leaves the
    adapter (or every weight) unchanged.
    """
    method_cls = get_method(cfg["method"])
    seed = int(cfg["seed"])
    method = method_cls(
        method_cls.settings_from(cfg.get("settings") or {}, entry), retain_kind=cfg["retain_kind"], seed=seed
    )
    retain_weight = float(cfg["retain_weight"])
    if retain_weight and (retain is None or retain.empty):
        raise ValueError(f"unlearn.{entry}: retain_weight is {retain_weight} but the retain split has no questions")
    full = cfg.get("adapter", "lora") == "full"
    use_fila = fila.selected(cfg)
    if use_fila and (retain is None or retain.empty):
        raise ValueError(f"unlearn.{entry}: lora.init fila needs retain questions (retain_split) for its Fisher pass")
    device = pick_device(requested_gpu)
    dtype = training_dtype(cfg.get("precision", "auto"), device)
    # full fine-tuning keeps float32 master weights: a bf16 weight's rounding step (2^-8 of its size) swallows most
    # single updates; bf16 then runs as autocast (the Trainer's bf16 flag), as mixed-precision training does
    autocast = full and dtype == torch.bfloat16
    attention = "eager" if device.type == "cpu" else None
    quantization_aware = None if full else cfg["lora"].get("quantization_aware")
    # full fine-tuning keeps float32 master weights; quantization-aware LoRA needs the base weights on the GGUF grid
    load_dtype = torch.float32 if full or quantization_aware else dtype
    log.info("unlearning with %s (%s) on %s in %s", method.name, "full" if full else "LoRA", device, load_dtype)
    model, tokenizer = load_model(manifest, device=device, dtype=load_dtype, attn_implementation=attention)
    texts = method.training_texts(forget, pairs)
    lengths = {"max_length": int(cfg["max_length"]), "max_prompt_length": int(cfg["max_prompt_length"])}
    examples, truncated = tokenize_examples(texts, method.sequences, tokenizer, style, **lengths)
    if not examples:
        raise ValueError(f"unlearn.{entry}: method {method.name} has no training examples")
    set_seed(seed)  # LoRA's A matrices are drawn here, before the Trainer seeds anything
    batch_size = int(cfg["batch_size"])
    start = time.monotonic()
    retain_examples: list[TokenSeq] = []
    if retain_weight or use_fila:
        retain_examples = qa_sequences(retain, tokenizer, style, lengths)
    full_weights, fisher = None, None
    if full:
        full_weights = FullWeights.from_policy(model)
        view: torch.nn.Module = full_weights
    else:
        peft_config = lora_config(model, cfg["lora"])
        model = get_peft_model(model, fila.doubled_rank(peft_config) if use_fila else peft_config)
        if use_fila:
            forget_examples = qa_sequences(forget, tokenizer, style, lengths)
            fisher = fila.initialise(
                model,
                _sequence_batches(forget_examples, batch_size, tokenizer.pad_token_id, device),
                _sequence_batches(retain_examples, batch_size, tokenizer.pad_token_id, device),
            )
        if device.type == "cpu":
            speed_up_lora_dropout(model)
        if quantization_aware:
            n = enable_quantization_aware(model, quantization_aware)
            log.info("quantization-aware: %d LoRA layers compute with their merged weight in %s", n, quantization_aware)
        view = model
    initial_b = lora_b_matrices(model)
    collate = ExampleCollator(method.sequences, tokenizer.pad_token_id)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):  # as the Trainer's steps will run
        add_reference_logprobs(view, examples, method.reference_sequences, collate, 2 * batch_size)
        method.prepare(view, entry, (_to_device(b, device) for b in _batches(examples, collate, 2 * batch_size)))
    retain_batches = None
    if retain_weight:
        retain_batches = RetainBatches(retain_examples, batch_size, seed, tokenizer.pad_token_id)
    if cfg.get("gradient_checkpointing"):
        model.enable_input_require_grads()  # without it PEFT + checkpointing trains nothing (checked below)
    checkpoint_dir = Path(checkpoint_dir)
    key = config_hash({"cfg": cfg, "style": vars(style), "n": len(examples)})
    resume = _prepare_checkpoints(checkpoint_dir, key)
    args = TrainingArguments(
        output_dir=str(checkpoint_dir),
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=int(cfg["grad_accum"]),
        learning_rate=float(cfg["learning_rate"]),
        num_train_epochs=float(cfg["epochs"]),
        activation_checkpointing=bool(cfg.get("gradient_checkpointing", False)),
        activation_checkpointing_kwargs={"use_reentrant": False},
        logging_steps=1,
        save_strategy="steps",
        save_steps=int(cfg["save_steps"]),
        save_total_limit=2,
        report_to=[],
        seed=seed,
        data_seed=seed,
        bf16=autocast,  # LoRA: the weights already have the training dtype, autocast would only re-cast them
        use_cpu=device.type == "cpu",
        dataloader_num_workers=0,
        remove_unused_columns=False,
        disable_tqdm=False,
    )
    trainer = UnlearningTrainer(
        model=model,
        args=args,
        train_dataset=examples,
        data_collator=collate,
        method=method,
        retain=retain_batches,
        retain_weight=retain_weight,
        full_weights=full_weights,
        callbacks=[NoFinalCheckpoint()],
    )
    trainer._clock = start
    resumed_from = 0
    if resume:
        state = TrainerState.load_from_json(str(Path(resume) / "trainer_state.json"))
        resumed_from = state.global_step
        trainer.resume_counters(state)
        log.info("resuming training from %s (step %d)", resume, resumed_from)
    trainer.train(resume_from_checkpoint=resume)
    seconds = time.monotonic() - start
    check_adapter_trained(view, initial_b)
    trainer.model.save_pretrained(str(adapter_dir), safe_serialization=True)
    apply_umask(adapter_dir)
    table = training_log(trainer.state.log_history)
    shutil.rmtree(checkpoint_dir)
    return TrainResult(table, resumed_from, seconds, str(device), truncated, fisher.seconds if fisher else None)


def training_log(history: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The per-step rows of a Trainer's log history: :data:`LOG_COLUMNS`, then the method's own columns."""
    rows = [h for h in history if "loss" in h and "step" in h and "train_runtime" not in h]
    extra = sorted({k for h in rows for k in h} - set(LOG_COLUMNS) - {"grad_norm"})
    columns = [*LOG_COLUMNS, *extra]
    table = pd.DataFrame([{c: h.get(c, math.nan) for c in columns} for h in rows], columns=columns)
    return table.astype({c: "float64" for c in columns if c != "step"}).astype({"step": "int64"})


def merge_adapter(model: Any, tokenizer: PreTrainedTokenizerBase, out_dir: str | Path) -> Any:  # noqa: ANN401
    """Fold a loaded LoRA adapter into the base weights (or take ``adapter: full``'s trained weights) and save a
    plain safetensors checkpoint whose logits equal the adapter model's (tied embeddings that the adapter changes
    are untied first: :func:`untie_adapted_embeddings`). Returns the merged model, as saved."""
    if isinstance(model, FullWeights):  # adapter: full: the trained weights are the merged model
        merged = model.policy
    else:
        untie_adapted_embeddings(model)
        merged = model.merge_and_unload()
    merged.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
    apply_umask(out_dir)
    return merged
