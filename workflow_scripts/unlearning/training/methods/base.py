"""What every unlearning method shares: its declaration (settings, inputs, reference) and the answer-token maths.

A method is a subclass of :class:`Method` in a module of its own under ``unlearning/methods/``, registered with
:func:`unlearning.training.methods.register`. It declares

* ``name``: the value of ``method:`` in a config's ``unlearn:`` entry;
* ``Settings``: a frozen dataclass of its own settings with defaults (an entry may override each; unknown keys are
  rejected with the entry's and the method's name);
* ``needs_pairs``: whether it trains on preference pairs from the perturbation stage (the DPO family) or on the
  forget QA alone (then its DAG chain does not wait on the perturber);
* ``sequences``: the named token sequences of one training example (``("forget",)`` or ``("chosen",
  "rejected")``), and ``reference_sequences``: those whose summed reference log-probabilities it needs; the engine
  computes them once, before training, with the LoRA adapter disabled, so no step pays a reference forward for them;
* ``forget_loss(model, batch)``: the loss on one batch of forget examples, plus any extra columns for the log.

The engine (:mod:`unlearning.training.engine`) owns everything else: LoRA, the reference policy (the same model with the
adapter disabled: one copy of the weights), the shared retain term (:meth:`Method.retain_loss`, NLL or KL, which a
method may replace, as RMU does), checkpoints and resume, the per-step log and the speed-ups.

Tensors: a *batch of sequences* is a mapping with ``input_ids``, ``attention_mask`` and ``labels``, each
``[batch, length]`` (right-padded; ``labels`` is -100 on prompt and padding positions, the token id on answer
positions).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import pandas as pd
import torch
import torch.nn.functional as F

from ...core.errors import did_you_mean
from ...inference.packed_rows import answer_logits

Batch = Mapping[str, torch.Tensor]


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``log p(target)`` per position, ``[n]``, from ``logits [n, vocab]``."""
    return logits.gather(1, targets[:, None]).squeeze(1) - torch.logsumexp(logits, dim=-1)


def per_row_sum(values: torch.Tensor, rows: torch.Tensor, n_rows: int) -> torch.Tensor:
    """Sum of ``values [n]`` per batch row: ``[n_rows]``."""
    return torch.zeros(n_rows, dtype=values.dtype, device=values.device).index_add(0, rows, values)


def sequence_logprob(model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed answer log-probability ``log pi(y|x)`` per row, ``[batch]``, and answer length ``|y|`` per row."""
    logits, targets, rows = answer_logits(model, batch)
    n_rows = batch["input_ids"].shape[0]
    logp = per_row_sum(token_logprobs(logits, targets), rows, n_rows)
    lengths = per_row_sum(torch.ones_like(targets, dtype=logp.dtype), rows, n_rows)
    return logp, lengths


def answer_nll(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """Mean negative log-likelihood per answer token over the whole batch (a scalar), as a causal LM's loss."""
    logits, targets, _ = answer_logits(model, batch)
    return F.cross_entropy(logits, targets)


def kl_to_reference(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """Mean over answer positions of KL(pi_ref || pi_theta), the reference being the model with its adapter off.

    The direction of open-unlearning's ``compute_kl_divergence`` (reference as the target distribution).
    """
    with torch.no_grad(), model.disable_adapter():
        ref_logits, _, _ = answer_logits(model, batch)
    logits, _, _ = answer_logits(model, batch)
    return F.kl_div(
        F.log_softmax(logits, dim=-1), F.log_softmax(ref_logits, dim=-1), reduction="batchmean", log_target=True
    )


def sources(rows: pd.DataFrame) -> list[str]:
    """Each training row's ``source`` (``qa`` where the table has no such column)."""
    return rows["source"].tolist() if "source" in rows.columns else ["qa"] * len(rows)


def _matches(value: Any, hint: Any) -> bool:  # noqa: ANN401
    """Whether a config value (from YAML) fits a settings field's type: float takes ints too, never booleans."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arm) for arm in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin is tuple:
        item = typing.get_args(hint)[0]
        return isinstance(value, list | tuple) and all(_matches(v, item) for v in value)
    if isinstance(value, bool):
        return hint is bool
    if hint is float:
        return isinstance(value, int | float)
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:  # noqa: ANN401
    if typing.get_origin(hint) is typing.Literal:
        return "value (one of " + ", ".join(map(repr, typing.get_args(hint))) + ")"
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")


@dataclasses.dataclass(frozen=True)
class NoSettings:
    """A method without settings of its own."""


class Method:
    """Base of every unlearning method; see the module docstring for what a subclass declares."""

    name: ClassVar[str]
    Settings: ClassVar[type] = NoSettings
    needs_pairs: ClassVar[bool] = False
    sequences: ClassVar[tuple[str, ...]] = ("forget",)
    reference_sequences: ClassVar[tuple[str, ...]] = ()
    default_retain_weight: ClassVar[float | None] = None  # None: the config's train.retain_weight
    #: False for a method that teaches rather than forgets (grad_descent, the relearning attack's training)
    unlearns: ClassVar[bool] = True

    def __init__(self, settings: Any, *, retain_kind: str = "nll", seed: int = 0) -> None:
        self.settings = settings
        self.retain_kind = retain_kind
        self.seed = seed

    @classmethod
    def settings_from(cls, values: Mapping[str, Any], entry: str, *, other_keys: Iterable[str] = ()) -> Any:
        """The method's settings from an ``unlearn:`` entry's own keys; unknown keys name the entry and method,
        with the closest valid key (a method setting or one of ``other_keys``, e.g. the train: keys) as a hint."""
        fields = {f.name for f in dataclasses.fields(cls.Settings)}
        unknown = sorted(set(values) - fields)
        if unknown:
            allowed = ", ".join(sorted(fields)) or "none"
            raise ValueError(
                f"unlearn.{entry}: unknown setting(s) {', '.join(unknown)} for method {cls.name!r} "
                f"(its own settings: {allowed}; any key of train: is accepted too)"
                + did_you_mean(unknown, fields | set(other_keys))
            )
        hints = typing.get_type_hints(cls.Settings)
        for key, value in values.items():
            if not _matches(value, hints[key]):
                raise ValueError(
                    f"unlearn.{entry}.{key}: {value!r} is not a valid {_type_name(hints[key])} for method {cls.name!r}"
                )
        return cls.Settings(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def training_texts(self, forget: pd.DataFrame, pairs: pd.DataFrame | None) -> pd.DataFrame:
        """One row per training example: ``prompt`` (the question), one text column per name in ``sequences`` and
        ``source`` (``qa``, or ``corpus`` for the describe stage's texts, whose prompt goes without the QA
        instruction).

        ``forget`` is the forget term's rows (``id, person, question, answer`` and optionally ``source``: the
        forget_train QA, corpus texts or both, :mod:`unlearning.corpus.training_rows`); ``pairs`` the DPO pairs when
        ``needs_pairs``. By default every forget question with its true answer.
        """
        return pd.DataFrame(
            {"prompt": forget["question"].to_numpy(), "forget": forget["answer"].to_numpy(), "source": sources(forget)}
        )

    def prepare(self, model: torch.nn.Module, entry: str, forget_batches: Iterable[Mapping[str, Any]] = ()) -> None:
        """Called once with the LoRA-wrapped model and the forget batches before training (checks, fixed tensors,
        scales measured on the reference); does nothing by default."""

    def forget_loss(
        self, model: torch.nn.Module, batch: Mapping[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss on one batch of forget examples and extra log columns (scalars).

        ``batch[name]`` is a batch of sequences for each name in ``sequences``, and ``batch["ref_" + name]`` the
        precomputed reference ``log pi_ref(y|x)`` ``[batch]`` for each name in ``reference_sequences``.
        """
        raise NotImplementedError

    def retain_loss(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        """The shared retain term on a batch of retain QA: ``nll`` (mean token NLL of the true answers, as
        GradDiff) or ``kl`` (KL to the reference on the retain answers, as open-unlearning's retain_loss_type KL)."""
        if self.retain_kind == "kl":
            return kl_to_reference(model, batch)
        return answer_nll(model, batch)
