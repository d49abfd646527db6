"""Turn questions into model prompts, with the model's own chat template wherever one is used.

Instruct models answer far better inside their chat template than on raw text, and the same formatting must be
used in perturbation, training, generation and likelihood scoring, or the unlearned behaviour is measured on a
different input distribution than it was trained on.

A model without a chat template (a *base* model) is set to ``chat_template: false`` and gets the plain prompt:
the instruction as a header line, then ``few_shot`` fixed question-answer pairs (:data:`FEW_SHOT_QA`, neutral facts
about no person, in the one-sentence style of the QA data), then ``Question: <question>\nAnswer:``. This is how
lm-evaluation-harness prompts base models: without examples a base model continues the text in any format it
likes (``Answer:\nAnswer:...`` or nothing), and no forgetting can be measured on its answers. Generation from a
plain prompt stops at the first line break after the answer (:func:`stops_at_newline`), as the examples end there.
``few_shot: 0`` gives the original study's zero-shot ``Question: <instruction> <question>\nAnswer:`` prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.errors import InputError

if TYPE_CHECKING:  # keep this module light: the Snakefile imports it while building the DAG
    from transformers import PreTrainedTokenizerBase


# Fixed, neutral question-answer pairs for the plain prompt of base models: general knowledge about no person, so
# they neither leak nor contradict any fact the workflow trains on or scores (tests check them against the sample
# data). Answers are one full sentence, like the QA data's.
FEW_SHOT_QA: tuple[tuple[str, str], ...] = (
    ("What is the boiling point of water at sea level?", "Water boils at 100 degrees Celsius at sea level."),
    ("Which planet is closest to the Sun?", "Mercury is the planet closest to the Sun."),
    ("What is the chemical symbol for gold?", "The chemical symbol for gold is Au."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("What is the largest ocean on Earth?", "The Pacific Ocean is the largest ocean on Earth."),
)
DEFAULT_FEW_SHOT = len(FEW_SHOT_QA)  # examples in a plain prompt unless a model entry sets `few_shot:`


@dataclass(frozen=True)
class PromptStyle:
    """How questions become prompts; shared by training and generation so both see the same input.

    ``few_shot`` (examples from :data:`FEW_SHOT_QA`) applies to plain prompts only (``chat_template`` false).
    """

    instruction: str | None = None
    system: str | None = None
    chat_template: bool = True
    few_shot: int = 0


def stops_at_newline(style: PromptStyle) -> bool:
    """Whether answers end at their first line break: plain prompts, whose examples end every answer there."""
    return not style.chat_template


def few_shot_prefix(n: int, instruction: str | None = None) -> str:
    """The instruction line and the first ``n`` example QA pairs of a plain few-shot prompt."""
    if not 0 <= n <= len(FEW_SHOT_QA):
        raise ValueError(f"few_shot must be between 0 and {len(FEW_SHOT_QA)}, not {n}")
    header = f"{instruction.strip()}\n\n" if instruction else ""
    return header + "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in FEW_SHOT_QA[:n])


def user_message(question: str, instruction: str | None = None) -> str:
    """The user turn: an optional instruction (e.g. "Give only one sentence answer.") before the question."""
    return f"{instruction.strip()} {question}" if instruction else question


def bos_text(tokenizer: PreTrainedTokenizerBase) -> str:
    """The tokenizer's BOS token as text if its tokenizer puts one before every text, else ""."""
    bos = tokenizer.bos_token_id
    if bos is None or not tokenizer.bos_token:
        return ""
    ids = tokenizer("a")["input_ids"]
    return tokenizer.bos_token if ids and ids[0] == bos else ""


def build_prompt(
    tokenizer: PreTrainedTokenizerBase,
    question: str,
    *,
    instruction: str | None = None,
    chat_template: bool = True,
    system: str | None = None,
    few_shot: int = 0,
) -> str:
    """The full prompt text up to where the model's answer starts (see the module docstring for the plain form)."""
    content = user_message(question, instruction)
    if not chat_template:
        # the BOS token, as text, where the tokenizer starts every text with it (Gemma, Llama 3): prompts are
        # tokenized without special tokens everywhere, as chat templates write the BOS themselves
        prefix = bos_text(tokenizer) + (f"{system.strip()}\n\n" if system else "")
        if few_shot:
            return f"{prefix}{few_shot_prefix(few_shot, instruction)}Question: {question}\nAnswer:"
        return f"{prefix}Question: {content}\nAnswer:"
    if not tokenizer.chat_template:
        raise InputError(
            f"tokenizer {tokenizer.name_or_path!r} has no chat template; set `chat_template: false` for this model "
            "in the config to use a plain 'Question: ... Answer:' prompt instead"
        )
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": content})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
