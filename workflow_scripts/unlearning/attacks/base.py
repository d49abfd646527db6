"""What every attack is: a way to turn one variant into the model (and the questions) that the attacker gets."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from ..core.errors import InputError, did_you_mean
from ..inference.prompting import PromptStyle
from ..models.checkpoints import Manifest

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass(frozen=True)
class AttackInputs:
    """One attack job's inputs: the model's manifest, the variant's unlearn output (None for base), its export
    folder (None when the attack needs none), the QA table, the held-out known questions to score, the prompt
    style, the attack's settings, the run's ``train:`` block (for attacks that train) and the scratch folder."""

    model: str
    variant: str
    manifest: Manifest
    adapter: Path | None
    export_dir: Path | None
    qa: pd.DataFrame
    questions: pd.DataFrame
    style: PromptStyle
    settings: Mapping[str, Any]
    train: Mapping[str, Any]
    seed: int
    scratch: Path
    requested_gpu: bool = False


class Attack(ABC):
    """An attack kind. ``settings`` checks and completes an entry's keys; ``attacked`` returns the attacked model,
    its tokenizer and the questions to ask it (usually ``inputs.questions`` as they are), plus metadata for the
    score file (counts, the attack's own timings). ``on_base``: whether it runs on the base model too."""

    kind: ClassVar[str]
    on_base: ClassVar[bool] = True
    needs_export: ClassVar[bool] = False
    defaults: ClassVar[Mapping[str, Any]] = {}

    @classmethod
    def settings(cls, spec: Mapping[str, Any], where: str, config: Mapping[str, Any]) -> dict[str, Any]:  # noqa: ARG003
        unknown = sorted(set(spec) - set(cls.defaults))
        if unknown:
            allowed = ", ".join(sorted(cls.defaults)) or "none"
            raise InputError(
                f"{where}: unknown key(s) {', '.join(unknown)} for attack {cls.kind!r}; allowed: {allowed}"
                + did_you_mean(unknown, cls.defaults)
            )
        return {**cls.defaults, **spec}

    @abstractmethod
    def attacked(
        self, inputs: AttackInputs
    ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, pd.DataFrame, dict[str, Any]]:
        """The attacked model, its tokenizer, the questions to ask it and the score file's extra metadata."""
