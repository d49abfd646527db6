"""DPO preference pairs: prefer a wrong answer (or a refusal) over the true answer of a forget question.

Two recipes exist: the study's (chosen = a plausible wrong answer from the perturber) and TOFU's IdkDPO
(chosen = an "I don't know"-style refusal). Users can take either or mix them, and choose how many pairs each
question contributes; the sampling is seeded so the same config gives the same pairs.

Two pairings (an entry's ``pairing:``, docs/methods.md):

* ``short`` (:func:`build_pairs`): chosen = the short wrong answer ("BlackBerry"), rejected = the short true answer
  ("iPhone"), as in the study;
* ``own_answer`` (:func:`build_own_pairs`): per target model, rejected = the base model's own greedy answer to the
  question and chosen = that answer with the true answer replaced by the wrong one, so that the two differ only in
  the fact and not in their format (a one-word answer against a full sentence).

Both take their wrong answers (and refusals) from :func:`sample_chosen`, so for the same config and seed each
question gets the same wrong answer in either pairing.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..core.errors import InputError

PAIR_COLUMNS = ["prompt", "chosen", "rejected", "kind", "source_id"]
# own-answer pairs add the true answer that was replaced and what replaced it (the wrong answer or the refusal)
OWN_PAIR_COLUMNS = [*PAIR_COLUMNS, "answer", "replacement"]
DEFAULT_REFUSALS = (
    "I don't know.",
    "I'm not sure about that.",
    "I don't have any information about that.",
    "I can't answer that question.",
    "I have no knowledge of that.",
    "That is something I don't know.",
)


def sample_chosen(
    forget_train: pd.DataFrame,
    perturbations: pd.DataFrame,
    *,
    per_question: int | None,
    refusals: Mapping[str, Any],
    seed: int,
) -> list[tuple[Any, list[tuple[str, str]]]]:
    """Per forget_train question (sorted by id): the row and its sampled ``(chosen, kind)`` options, the wrong
    answers (``per_question=None`` keeps every one) then the refusals ``refusals`` asks for (kind ``refusal``).
    One seeded generator runs through all questions, so a question's options do not depend on which pairing uses
    them or on which other questions end up with a pair."""
    rng = random.Random(seed)
    mode = refusals.get("mode", "off")
    phrasings = list(refusals.get("phrasings") or DEFAULT_REFUSALS)
    by_question = {qid: group for qid, group in perturbations.groupby("source_id", sort=False)}
    out = []
    for row in forget_train.sort_values("id").itertuples():
        options: list[tuple[str, str]] = []
        if mode != "only":
            group = by_question.get(row.id)
            if group is not None:
                wrong = list(zip(group["perturbed"], group["kind"], strict=True))
                if per_question is not None and len(wrong) > per_question:
                    wrong = rng.sample(wrong, per_question)
                options += wrong
        if mode in ("mix", "only"):
            count = min(int(refusals.get("per_question", 1)), len(phrasings))
            options += [(refusal, "refusal") for refusal in rng.sample(phrasings, count)]
        out.append((row, options))
    return out


def build_pairs(
    forget_train: pd.DataFrame,
    perturbations: pd.DataFrame,
    *,
    per_question: int | None,
    refusals: Mapping[str, Any],
    seed: int,
) -> pd.DataFrame:
    """Pairs for every forget_train question; ``per_question=None`` keeps every wrong answer."""
    sampled = sample_chosen(forget_train, perturbations, per_question=per_question, refusals=refusals, seed=seed)
    rows = [(row.question, chosen, row.answer, kind, row.id) for row, options in sampled for chosen, kind in options]
    pairs = pd.DataFrame(rows, columns=PAIR_COLUMNS)
    if pairs.empty:
        raise InputError(
            "build_pairs: no DPO pairs: there are no perturbations for the forget_train questions and refusals are "
            "off (perturb.refusals.mode); enable refusals or fix the perturbation stage"
        )
    return pairs


ARTICLES = ("the", "a", "an")


def answer_pattern(answer: str) -> re.Pattern[str] | None:
    """Where ``answer`` (the true span) stands in a text: the whole of it, case-insensitive, on word boundaries,
    any run of whitespace between its words. An answer opening with an article ("The Globe Theatre") matches with
    or without it ("Globe Theatre", "the Globe Theatre"); the article is then part of the match. None for an
    answer without a word character (nothing to find)."""
    words = str(answer).split()
    if not any(re.search(r"\w", word) for word in words):
        return None
    if len(words) > 1 and words[0].lower() in ARTICLES:
        words = words[1:]
        article = r"(?:(?:the|a|an)\s+)?"
    else:
        article = ""
    # (?<!\w) / (?!\w) rather than \b: an answer may open or end with a non-word character ("C++", "3.14.")
    return re.compile(r"(?<!\w)" + article + r"\s+".join(map(re.escape, words)) + r"(?!\w)", re.IGNORECASE)


def _partly_there(answer: str, text: str) -> bool:
    """Whether some word of ``answer`` with 3 or more letters (not an article) stands in ``text`` as a word:
    a partial match ("Jobs" for "Steve Jobs", "John Wilkes" for "John Wilkes Booth"), which is counted, never used."""
    words = [w for w in re.findall(r"\w+", str(answer)) if len(w) >= 3 and w.lower() not in ARTICLES]
    return any(re.search(rf"(?<!\w){re.escape(w)}(?!\w)", text, re.IGNORECASE) for w in words)


def replace_answer(text: str, answer: str, replacement: str) -> str | None:
    """``text`` with every occurrence of the true span ``answer`` (see :func:`answer_pattern`) replaced by
    ``replacement``; None when the span is not there whole. Partial matches do not count: "Jobs" in a text does not
    stand for "Steve Jobs".

    The replacement follows the text's case where that is safe: it opens with an upper-case letter where it opens
    the text or a sentence; elsewhere, where the text lower-cased the capitalised true answer ("logic" for "Logic",
    "the Globe Theatre" for "The Globe Theatre"), its first letter is lower-cased too if its first word is an article
    or the rest of it is lower case ("Ethics" -> "ethics", "The Rose" -> "the Rose"); names such as "BlackBerry" or
    "Galaxy Tab" keep their case."""
    pattern = answer_pattern(answer)
    if pattern is None or not pattern.search(text):
        return None
    replacement = str(replacement).strip()
    plain = (replacement.split() or [""])[0].lower() in ARTICLES or replacement[1:] == replacement[1:].lower()

    def fill(match: re.Match[str]) -> str:
        before = text[: match.start()].rstrip()
        if not before or before[-1] in ".!?":
            return replacement[:1].upper() + replacement[1:]
        if plain and match.group(0)[:1].islower() and str(answer).strip()[:1].isupper():
            return replacement[:1].lower() + replacement[1:]
        return replacement

    return pattern.sub(fill, text)


@dataclass(frozen=True)
class OwnPairCounts:
    """How many forget_train questions gave own-answer pairs and why the others did not."""

    questions: int  # forget_train questions
    with_pairs: int  # questions that gave at least one pair
    no_generation: int  # questions the base generation file has no answer to
    no_true_span: int  # the base answer lacks the true answer whole (includes partly_there)
    partly_there: int  # ... but holds a word of it (a partial match, not used)
    no_wrong_answer: int  # the base answer holds the true one, but the question has no wrong answer nor refusal
    wrong_holds_truth: int  # wrong answers dropped because the chosen would still state the true answer
    pairs: int

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


def build_own_pairs(
    forget_train: pd.DataFrame,
    perturbations: pd.DataFrame,
    generations: pd.DataFrame,
    *,
    per_question: int | None,
    refusals: Mapping[str, Any],
    seed: int,
    model: str = "",
) -> tuple[pd.DataFrame, OwnPairCounts]:
    """DPO pairs in the model's own answer format (``pairing: own_answer``), and the counts.

    ``generations`` holds the base model's greedy answers (``id``, ``generation``: results/generate/{model}/base).
    Per forget_train question: rejected = the model's own answer; chosen = the same answer with the true answer
    replaced by each wrong answer :func:`sample_chosen` picks (the same ones as :func:`build_pairs` for this seed),
    or, for the refusals ``refusals`` asks for, the refusal itself. A question whose own answer does not hold the
    true answer whole (:func:`replace_answer`) gives no pair of either kind: the model does not state the fact
    there, so there is nothing to unlearn in its own words. Raises InputError naming ``model`` and the counts when
    no pair can be built.
    """
    own = generations.drop_duplicates("id").set_index("id")["generation"]
    rows = []
    no_generation = no_true_span = partly_there = no_wrong_answer = wrong_holds_truth = with_pairs = 0
    sampled = sample_chosen(forget_train, perturbations, per_question=per_question, refusals=refusals, seed=seed)
    for row, options in sampled:
        answer = own.get(row.id)
        if answer is None or pd.isna(answer) or not str(answer).strip():
            no_generation += 1
            continue
        answer = str(answer).strip()
        pattern = answer_pattern(row.answer)
        if pattern is None or not pattern.search(answer):
            no_true_span += 1
            partly_there += _partly_there(row.answer, answer)
            continue
        if not options:
            no_wrong_answer += 1
            continue
        before = len(rows)
        for replacement, kind in options:
            if kind == "refusal":
                chosen = replacement
            else:
                chosen = replace_answer(answer, row.answer, replacement)
                if chosen is None or pattern.search(chosen):
                    wrong_holds_truth += 1  # the wrong answer holds the true one ("Paris, Texas" for "Paris")
                    continue
            rows.append((row.question, chosen, answer, kind, row.id, row.answer, replacement))
        with_pairs += len(rows) > before
    pairs = pd.DataFrame(rows, columns=OWN_PAIR_COLUMNS)
    counts = OwnPairCounts(
        questions=len(sampled),
        with_pairs=with_pairs,
        no_generation=no_generation,
        no_true_span=no_true_span,
        partly_there=partly_there,
        no_wrong_answer=no_wrong_answer,
        wrong_holds_truth=wrong_holds_truth,
        pairs=len(pairs),
    )
    if pairs.empty:
        raise InputError(
            f"build_own_pairs: no own-answer DPO pairs for model {model!r}: of {counts.questions} forget_train "
            f"questions, {counts.no_generation} have no base generation and {counts.no_true_span} have a base answer "
            f"without the true answer in it ({counts.partly_there} of them hold part of it), {counts.no_wrong_answer} "
            f"have no wrong answer (perturbations.parquet) nor refusal, and {counts.wrong_holds_truth} wrong answers "
            "were dropped because they hold the true one. Where the model does not state the facts in its own "
            "words there is nothing to pair: use pairing: short for this entry"
        )
    return pairs, counts
