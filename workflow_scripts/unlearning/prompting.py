"""Turn questions into model prompts, with the model's own chat template wherever one is used.

Instruct models answer far better inside their chat template than on raw text, and the same formatting must be
used in perturbation, training, generation and likelihood scoring, or the unlearned behaviour is measured on a
different input distribution than it was trained on. The raw ``Question: ... Answer:`` form exists only to
reproduce the original study, which did not apply templates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import InputError

if TYPE_CHECKING:  # keep this module light: the Snakefile imports it while building the DAG
    from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class PromptStyle:
    """How questions become prompts; shared by training and generation so both see the same input."""

    instruction: str | None = None
    system: str | None = None
    chat_template: bool = True


def user_message(question: str, instruction: str | None = None) -> str:
    """The user turn: an optional instruction (e.g. "Give only one sentence answer.") before the question."""
    return f"{instruction.strip()} {question}" if instruction else question


def build_prompt(
    tokenizer: PreTrainedTokenizerBase,
    question: str,
    *,
    instruction: str | None = None,
    chat_template: bool = True,
    system: str | None = None,
) -> str:
    """The full prompt text up to where the model's answer starts."""
    content = user_message(question, instruction)
    if not chat_template:
        prefix = f"{system.strip()}\n\n" if system else ""
        return f"{prefix}Question: {content}\nAnswer:"
    if not tokenizer.chat_template:
        raise InputError(
            f"tokenizer {tokenizer.name_or_path!r} has no chat template; set `chat_template: false` for this model "
            "in the config to use a plain 'Question: ... Answer:' prompt instead"
        )
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": content})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
