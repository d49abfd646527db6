"""The model describes each person: RWKU's forget corpus (Jin et al. 2024, "RWKU: Benchmarking Real-World Knowledge
Unlearning for Large Language Models", NeurIPS Datasets and Benchmarks; jinzhuoran/RWKU), written per model.

RWKU builds each target's forget corpus by asking the original model to describe the target, so the corpus holds
what that model knows (or believes) about the person, not what a dataset says. Here every person of every set
(forget, hard retain, general) is described from each of ``describe.templates`` (a request with ``{person}``:
biography, what the person is known for, life events, works), ``samples`` texts per template, sampled with
``temperature`` / ``top_p`` and a seed that depends only on the run's seed and the round. A text is rejected, and the
reason counted, when it is

* ``too_short``: fewer than ``min_words`` words;
* ``degenerate``: a word 3-gram occurs 3 or more times (:func:`unlearning.scoring.metrics.is_degenerate`);
* ``unnamed``: it names none of the person's name words (words of 3 or more letters outside parentheses, matched as
  whole words, ignoring case), so it may describe someone else;
* ``duplicate``: its ROUGE-L F1 to a text already kept for the person is at least ``duplicate_rouge``.

Slots left short are sampled again, up to ``max_rounds`` rounds. ``held_out`` templates per person, drawn per person
from the run's seed, are never trained on: the corpus evaluation (:mod:`.evaluation`) scores them.

A person who ends with no kept text in a training template or in a held-out one fails the job, naming the person
and the rejection counts (a silent gap would make the person's forgetting look measured when it is not).
"""

from __future__ import annotations

import logging
import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from ..core.errors import InputError, capped
from ..data.person_names import person_key
from ..data.qa_table import stable_id
from ..inference.prompting import PromptStyle, build_prompt, stops_at_newline
from ..scoring.metrics import is_degenerate, rouge

log = logging.getLogger(__name__)
CORPUS_COLUMNS = ["id", "person", "set", "template", "prompt", "text", "seed", "held_out"]
REJECTIONS = ("too_short", "degenerate", "unnamed", "duplicate")
SETS = ("forget", "retain", "general")


@dataclass(frozen=True)
class DescribeSettings:
    """``describe:`` (schemas/config.schema.yaml): the requests, how many texts each, and the filters."""

    templates: Mapping[str, str]
    samples: int = 2
    held_out: int = 1
    max_rounds: int = 3
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 128
    batch_size: int = 32
    min_words: int = 20
    duplicate_rouge: float = 0.8

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> DescribeSettings:
        keys = {f for f in cls.__dataclass_fields__ if f in cfg}
        settings = cls(**{k: cfg[k] for k in keys})
        bad = [name for name, text in settings.templates.items() if "{person}" not in text]
        if bad:
            raise InputError(f"describe.templates: {capped(bad)} lack the placeholder {{person}}")
        if not 0 < settings.held_out < len(settings.templates):
            raise InputError(
                f"describe.held_out is {settings.held_out}: it must leave at least one of the "
                f"{len(settings.templates)} templates to train on and hold out at least one"
            )
        return settings


def request(template: str, person: str) -> str:
    """The describe request for ``person``: the template with ``{person}`` replaced (no other placeholder)."""
    return template.replace("{person}", person)


def name_words(person: str) -> list[str]:
    """The words a text must contain one of to name ``person``: case-folded words of 3 or more letters outside
    parentheses (``"Mauro Bergamasco (rugby union)"`` gives ``mauro``, ``bergamasco``); all words if none is that
    long."""
    words = re.findall(r"\w+", re.sub(r"\([^)]*\)", " ", person).casefold())
    return [w for w in words if len(w) >= 3] or words


def names_person(text: str, person: str) -> bool:
    """Whether ``text`` contains one of :func:`name_words` as a whole word, ignoring case."""
    folded = text.casefold()
    return any(re.search(rf"\b{re.escape(w)}\b", folded) for w in name_words(person))


def held_out_templates(person: str, templates: Sequence[str], n: int, seed: int) -> list[str]:
    """The ``n`` templates held out for ``person``: drawn from ``seed`` and the person's identity alone, so adding
    a person or a template elsewhere leaves every other person's choice as it was."""
    return sorted(random.Random(f"{seed}\x1f{person_key(person)}").sample(sorted(templates), n))


class PersonTexts:
    """The texts kept for one person, and each offered text's rejection reason."""

    def __init__(self, person: str, min_words: int, duplicate_rouge: float) -> None:
        self.person, self.min_words, self.duplicate_rouge = person, min_words, duplicate_rouge
        self.kept: list[str] = []

    def reason(self, text: str) -> str | None:
        """Why ``text`` is rejected (one of :data:`REJECTIONS`), or None; a kept text is remembered."""
        if len(text.split()) < self.min_words:
            return "too_short"
        if is_degenerate(text):
            return "degenerate"
        if not names_person(text, self.person):
            return "unnamed"
        if self.kept and rouge([text] * len(self.kept), self.kept)["rougeL_f1"].max() >= self.duplicate_rouge:
            return "duplicate"
        self.kept.append(text)
        return None


@dataclass
class DescribeResult:
    table: pd.DataFrame  # CORPUS_COLUMNS
    stats: dict[str, Any]  # counts per template, per person and in all (the Parquet's metadata)


def _counts() -> dict[str, int]:
    return {"sampled": 0, "kept": 0, **dict.fromkeys(REJECTIONS, 0)}


def describe_persons(
    model: Any,  # noqa: ANN401 (a transformers causal LM)
    tokenizer: Any,  # noqa: ANN401
    persons: pd.DataFrame,
    settings: DescribeSettings,
    *,
    style: PromptStyle,
    seed: int,
) -> DescribeResult:
    """The corpus of ``persons`` (columns ``person``, ``set``) as ``model`` describes them.

    Requests are put in the model's prompt format without the QA instruction (a one-sentence instruction would
    cut every description to one sentence). Returns the table (:data:`CORPUS_COLUMNS`; ``seed`` is the sampling
    seed of the row's round) and the counts. Raises InputError naming every person left without a kept text in a
    training or a held-out template, with that person's rejection counts.
    """
    from ..inference.generation import generate  # torch only where the model runs

    plain = replace(style, instruction=None)
    names = list(settings.templates)
    texts = {p: PersonTexts(p, settings.min_words, settings.duplicate_rouge) for p in persons["person"]}
    set_of = dict(zip(persons["person"], persons["set"], strict=True))
    kept: dict[tuple[str, str], list[tuple[str, int]]] = {(p, t): [] for p in texts for t in names}
    per_template = {t: _counts() for t in names}
    per_person = {p: _counts() for p in texts}
    for rnd in range(1, settings.max_rounds + 1):
        slots = [(p, t) for (p, t), got in kept.items() if len(got) < settings.samples]
        if not slots:
            break
        prompts, owners = [], []
        for p, t in slots:
            prompt = build_prompt(tokenizer, request(settings.templates[t], p), **vars(plain))
            missing = settings.samples - len(kept[p, t])
            prompts += [prompt] * missing
            owners += [(p, t)] * missing
        round_seed = seed * 1000 + rnd
        outputs = generate(
            model,
            tokenizer,
            prompts,
            max_new_tokens=settings.max_new_tokens,
            batch_size=settings.batch_size,
            do_sample=True,
            temperature=settings.temperature,
            top_p=settings.top_p,
            seed=round_seed,
            stop_at_newline=stops_at_newline(style),
            desc=f"describe round {rnd}",
        )
        for (p, t), out in zip(owners, outputs, strict=True):
            text = " ".join(out.text.split())
            reason = texts[p].reason(text)
            for counts in (per_template[t], per_person[p]):
                counts["sampled"] += 1
                counts["kept" if reason is None else reason] += 1
            if reason is None:
                kept[p, t].append((text, round_seed))
    rows, empty = [], []
    for p in texts:
        held = held_out_templates(p, names, settings.held_out, seed)
        trained = [t for t in names if t not in held]
        if not any(kept[p, t] for t in trained) or not any(kept[p, t] for t in held):
            side = "a training template" if not any(kept[p, t] for t in trained) else "a held-out template"
            counts = ", ".join(f"{k} {v}" for k, v in per_person[p].items())
            empty.append(f"{p!r} ({set_of[p]}; no text kept in {side}; {counts})")
        for t in names:
            for text, round_seed in kept[p, t]:
                prompt = request(settings.templates[t], p)
                rows.append([stable_id("corpus", p, t, text), p, set_of[p], t, prompt, text, round_seed, t in held])
    if empty:
        raise InputError(
            f"describe: the model wrote no valid text for {len(empty)} person(s) in {settings.max_rounds} round(s): "
            f"{'; '.join(empty[:10])}{' and more' if len(empty) > 10 else ''}. Raise describe.max_rounds or "
            "max_new_tokens, lower describe.min_words, or check the name is spelled as the model knows it"
        )
    totals = Counter()
    for counts in per_template.values():
        totals.update(counts)
    table = pd.DataFrame(rows, columns=CORPUS_COLUMNS)
    table = table.sort_values(["set", "person", "template", "id"], ignore_index=True)
    stats = {"totals": dict(totals), "per_template": per_template, "per_person": per_person}
    log.info("describe: kept %d of %d sampled texts; rejected %s", totals["kept"], totals["sampled"],
             {r: totals[r] for r in REJECTIONS})  # fmt: skip
    return DescribeResult(table, stats)
