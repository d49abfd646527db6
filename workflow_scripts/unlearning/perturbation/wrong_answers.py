"""Plausible wrong answers for the forget questions: written by a perturber LLM, or taken from a file.

DPO unlearning learns to prefer a wrong answer over the true one, so the wrong answers must be plausible (same
kind and length as the truth), really wrong (not a paraphrase of the truth) and varied. The perturber samples
candidates, each is cleaned and filtered, and questions that are still short get more sampling rounds. Pre-made
wrong answers pass the same filters, with the same counted reasons. Every row records who made it, with which
template, seed and round, so a pair can always be traced back.

A candidate is rejected, for the first reason that applies (counted per reason in the stage's log and metadata):
``empty``; ``meta_answer``: a label or a comment instead of an answer ("Incorrect:", "No, that is not correct.",
"Correct answer: Apple Inc.", "I don't know"); ``not_an_answer``: a question, or the question echoed back;
``duplicate`` (of an answer already kept); ``wrong_type``: not the same kind of answer as the truth (a year for a
year, a number for a number, a capitalised name, place or title for one, see :func:`answer_kind`); ``too_long``:
far longer than the truth (more than 3 x its words + 5); ``too_close``: it restates the truth (contains it as a
phrase, holds every key fact or every fact word of it, or its fact words match the truth's above
``rouge_threshold``).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..core.errors import InputError
from ..core.parquet_io import TEXT_DTYPE, typed_frame
from ..data.sources import load_local
from ..inference.prompting import build_prompt

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)
#: The perturbation table's columns and dtypes, kept when it has no rows (no perturber, every candidate rejected)
PERTURBATION_DTYPES = {
    "source_id": TEXT_DTYPE,
    "question": TEXT_DTYPE,
    "answer": TEXT_DTYPE,
    "perturbed": TEXT_DTYPE,
    "kind": TEXT_DTYPE,
    "perturber": TEXT_DTYPE,
    "template_hash": TEXT_DTYPE,
    "seed": "int64",
    "round": "int64",
}
PERTURBATION_COLUMNS = list(PERTURBATION_DTYPES)
REJECT_REASONS = ("empty", "meta_answer", "not_an_answer", "duplicate", "wrong_type", "too_long", "too_close")
# list markers and labels that announce a *wrong* answer are stripped; "Correct answer: ..." is not (it is the truth)
_PREFIX = re.compile(
    r"^\s*(?:[-*•](?=\s*\S)|\d+[.)](?=\s+\S)|(?:the\s+|a\s+)?(?:(?:plausible\s+)?(?:wrong|incorrect|false)\s+)?answer\s*(?:is)?\s*[:：-])\s*",
    re.I,
)
# a bare label or verdict ("Incorrect:", "No, ...", "True.", "Unanswerable") where an answer should be, or a
# one-word label before a colon ("Science:", "Capital: New York City")
_META_LABEL = re.compile(
    r"^\s*(?:(?:no|yes|none|n/?a|unknown|unanswerable|incorrect|correct|wrong|false|true|right|answer|question|"
    r"not\s+(?:true|correct|sure|known))\s*(?:[:,.!;?\-–]|$)|[^\W\d_]+\s*:)",
    re.I,
)
# a comment about answers instead of an answer ("Correct answer: X", "that is not correct", "you are correct",
# "I don't know", "I am a helpful AI ...", "the answer depends on ...")
_META_PHRASE = re.compile(
    r"\b(?:(?:in)?correct|wrong|right|false|true|real|actual)\s+answer\b|\bthe\s+answer\s+(?:to|is|depends)\b|"
    r"\b(?:is|are|was|'s|'re)\s+(?:not\s+)?(?:in)?correct\b|\bnot\s+correct\b|\bi\s+(?:am|do|don't|cannot|can't|think|believe)\b|"
    r"\bi'm\b|\bas\s+an\s+ai\b|\bai\s+(?:assistant|language\s+model|model)\b",
    re.I,
)
_YES_NO = re.compile(r"^\s*(?:yes|no)\b", re.I)
_YEAR = re.compile(r"^(?:1\d{3}|20\d{2})$")
_NUMBER = re.compile(r"^\d+(?:st|nd|rd|th|s)?$", re.I)
_ERA = re.compile(r"\b\d{1,4}\s*(?:bc|bce|ad|ce)\b", re.I)
_NUMBER_WORDS = frozenset(
    """zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen
    seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand million
    billion first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth dozen""".split()  # noqa: SIM905
)
# a sentence ends at . ! ? and a space, but not after an initial or a title ("Harry S. Truman", "St. Peter's")
_SENTENCE_END = re.compile(
    r"(?<![A-Z]\.)(?<!\bSt\.)(?<!\bDr\.)(?<!\bMr\.)(?<!\bMs\.)(?<!\bJr\.)(?<!\bSr\.)(?<!\bMrs\.)(?<=[.!?])\s+"
)


def template_hash(template: str) -> str:
    return hashlib.sha256(template.encode()).hexdigest()[:16]


def load_template(cfg: Mapping[str, Any]) -> str:
    """The prompt template from ``template_file`` or ``template``; it must use {question} and {answer}."""
    if cfg.get("template_file"):
        path = Path(cfg["template_file"])
        if not path.is_file():
            raise InputError(f"perturb.template_file {path}: file not found")
        template = path.read_text(encoding="utf-8")
    else:
        template = cfg.get("template") or (Path(__file__).parent / "templates" / "perturb.txt").read_text()
    for name in ("{question}", "{answer}"):
        if name not in template:
            raise InputError(f"perturb template must contain {name}; got {template[:80]!r}...")
    return template


def fill_template(template: str, question: str, answer: str) -> str:
    """Plain substitution (never ``str.format``: dataset text must not be interpreted as a format string)."""
    return template.replace("{question}", question).replace("{answer}", answer)


def normalize(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


_STOPWORD_TEXT = """a an the of in on at to for from by with and or is was were are be been his her their its he she it
they who which what when where how did does do has had have as that this"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def fact_tokens(text: str, question: str) -> list[str]:
    """The words of an answer that carry its fact: not in the question and not function words.

    Answers that repeat the question ("Marie Curie was born in Warsaw.") share most words with any good wrong
    answer ("Marie Curie was born in Berlin."); comparing only the fact words tells a paraphrase of the truth
    from a real alternative.
    """
    asked = set(normalize(question).split())
    words = [w for w in normalize(text).split() if w not in STOPWORDS]
    facts = [w for w in words if w not in asked]
    return facts or words


def key_facts(text: str, question: str) -> set[str]:
    """Numbers and capitalised words of an answer that the question does not contain: its checkable core.

    A wrong answer that still contains all of them ("In 1973, Picasso died." for "Pablo Picasso died in 1973.")
    repeats the truth, however it is worded.
    """
    asked = set(normalize(question).split())
    words = re.findall(r"\w+", text)
    return {
        w.casefold()
        for w in words
        if (w.isdigit() or w[:1].isupper()) and w.casefold() not in asked and w.casefold() not in STOPWORDS
    }


def answer_kind(text: str, question: str, *, initial_caps: bool = True) -> set[str]:
    """What kind of answer ``text`` is, from its words that the question does not contain: a subset of ``year``
    (1000-2099, or a number with BC/AD), ``number`` (digits, number words, ordinals such as "44th" or "first"),
    ``name`` (a person, place, nationality or title: a capitalised word inside the text, or a text whose words are
    all capitalised, such as "Hamlet" or "Mona Lisa") and ``text`` (a lowercase word other than a function word).
    A capital at the start of a sentence alone says nothing when lowercase words follow ("Speech, balance and
    coordination" is ``text``); ``initial_caps=False`` ignores such capitals altogether. A heuristic, deliberately
    simple: it tells "1938" from "German" from "a sculptor"."""
    asked = set(normalize(question).split())
    kinds: set[str] = set()
    if _ERA.search(text):
        kinds.add("year")
    initial = False
    for match in re.finditer(r"[^\W_]+", text):
        word = match.group()
        low = word.casefold()
        if low in asked or low in STOPWORDS or (len(word) == 1 and word.islower()):  # "s" of "Devil's"
            continue
        if _YEAR.match(word):
            kinds.add("year")
        elif _NUMBER.match(word) or low in _NUMBER_WORDS:
            kinds.add("number")
        elif word[:1].isupper():
            before = text[: match.start()].rstrip()
            if not before or before[-1] in ".!?:;\n":
                initial = True
            else:
                kinds.add("name")
        else:
            kinds.add("text")
    if initial and initial_caps and "text" not in kinds:
        kinds.add("name")
    return kinds


def same_kind(candidate: str, truth: str, question: str) -> bool:
    """Whether a candidate is the same kind of answer as the truth: a year for a year, a number (or year) for a
    number, a name, place or title for one; any answer that is not only a number for the rest.

    A one-word capitalised truth ("Apartheid", "Physicist", "Apple") may be a name or a common noun written as a
    span: a candidate then only has to be capitalised the same way ("Colonial rule" passes, "wampgadcat" does not).
    """
    want, got = answer_kind(truth, question), answer_kind(candidate, question)
    if "year" in want:
        return "year" in got
    if "number" in want:
        return bool(got & {"year", "number"})
    if "name" in want:
        if "name" in got:
            return True
        ambiguous = "name" not in answer_kind(truth, question, initial_caps=False)
        return ambiguous and candidate.lstrip()[:1].isupper() and bool(got - {"year", "number"})
    return bool(got - {"year", "number"})


def is_meta_answer(text: str, truth: str = "") -> bool:
    """A label, verdict or comment instead of an answer ("Incorrect:", "No, that is not correct.", "Correct answer:
    Apple Inc.", "I don't know", "Science:"). A one-word label before a colon is an answer when the truth has a
    colon too (a title such as "Alien: Covenant")."""
    label = _META_LABEL.match(text)
    if label and label.group().rstrip().endswith(":") and ":" in truth:
        label = None
    return bool(label or _META_PHRASE.search(text))


def contains_phrase(text: str, phrase: str) -> bool:
    """Whether the words of ``phrase`` appear in ``text`` in a row (after :func:`normalize`): "In 1938." holds
    "1938" and "Austro-German." holds "German", but "Germany" does not hold "German"."""
    words, sub = normalize(text).split(), normalize(phrase).split()
    return bool(sub) and any(words[i : i + len(sub)] == sub for i in range(len(words) - len(sub) + 1))


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def lcs_f1(a: list[str], b: list[str]) -> float:
    """ROUGE-L F1 of two token lists (longest common subsequence)."""
    if not a or not b:
        return 0.0
    prev = [0] * (len(b) + 1)
    for x in a:
        row = [0]
        for j, y in enumerate(b):
            row.append(prev[j] + 1 if x == y else max(prev[j + 1], row[j]))
        prev = row
    lcs = prev[-1]
    return 0.0 if lcs == 0 else 2 * lcs / (len(a) + len(b))


def clean_candidate(text: str) -> str:
    """First non-empty line, first sentence, without list markers, "Answer:" prefixes or wrapping quotes."""
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    line = _PREFIX.sub("", line, count=1).strip()
    line = _SENTENCE_END.split(line, maxsplit=1)[0]
    return line.strip().strip("\"'“”*`").strip()


@dataclass
class CandidateFilter:
    """Accepts cleaned candidates for one question and counts why others were rejected."""

    truth: str
    question: str
    threshold: float
    accepted: list[str] = field(default_factory=list)
    rejected: Counter = field(default_factory=Counter)

    def offer(self, candidate: str) -> bool:
        reason = self.reject_reason(candidate)
        if reason is None:
            self.accepted.append(candidate)
            return True
        self.rejected[reason] += 1
        return False

    def reject_reason(self, candidate: str) -> str | None:
        """The first reason (of :data:`REJECT_REASONS`) that rules the candidate out, or None to keep it."""
        norm = normalize(candidate)
        if not norm:
            return "empty"
        if is_meta_answer(candidate, self.truth) and not (_YES_NO.match(self.truth) and _YES_NO.match(candidate)):
            return "meta_answer"  # "No, ..." is a fine wrong answer to a yes/no question whose truth is "Yes"
        if candidate.rstrip().endswith("?") or norm == normalize(self.question):
            return "not_an_answer"
        if norm in {normalize(a) for a in self.accepted}:
            return "duplicate"
        if not same_kind(candidate, self.truth, self.question):
            return "wrong_type"
        if len(norm.split()) > 3 * len(normalize(self.truth).split()) + 5:
            return "too_long"
        if contains_phrase(candidate, self.truth) or self.closeness(candidate) > self.threshold:
            return "too_close"
        return None

    def closeness(self, candidate: str) -> float:
        """1.0 when the candidate holds every key fact or every fact word of the truth (in any order: "a sculptor and
        a painter" restates "a painter and sculptor"), else the ROUGE-L F1 of their fact words."""
        keys = key_facts(self.truth, self.question)
        if keys and keys <= set(normalize(candidate).split()):
            return 1.0
        truth_facts = fact_tokens(self.truth, self.question)
        candidate_facts = fact_tokens(candidate, self.question)
        if truth_facts and {_stem(w) for w in truth_facts} <= {_stem(w) for w in candidate_facts}:
            return 1.0
        return lcs_f1(candidate_facts, truth_facts)


@dataclass
class PerturbResult:
    table: pd.DataFrame
    stats: dict[str, Any]


def perturb_with_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget: pd.DataFrame,
    cfg: Mapping[str, Any],
    *,
    perturber: str,
    seed: int,
    chat_template: bool = True,
) -> PerturbResult:
    """``cfg['k']`` filtered wrong answers per question, sampling up to ``max_rounds`` rounds."""
    from ..inference.generation import generate  # torch only where the perturber runs: build_pairs stays light

    template = load_template(cfg)
    thash = template_hash(template)
    k = int(cfg["k"])
    threshold = float(cfg["rouge_threshold"])
    filters = {row.id: CandidateFilter(row.answer, row.question, threshold) for row in forget.itertuples()}
    rounds_of: dict[str, list[int]] = {qid: [] for qid in filters}
    by_id = forget.set_index("id")
    for rnd in range(1, int(cfg["max_rounds"]) + 1):
        short = [qid for qid, f in filters.items() if len(f.accepted) < k]
        if not short:
            break
        prompts, owners = [], []
        for qid in short:
            text = fill_template(template, by_id.at[qid, "question"], by_id.at[qid, "answer"])
            prompt = build_prompt(tokenizer, text, chat_template=chat_template)
            prompts += [prompt] * k
            owners += [qid] * k
        outputs = generate(
            model,
            tokenizer,
            prompts,
            max_new_tokens=int(cfg["max_new_tokens"]),
            batch_size=int(cfg["batch_size"]),
            do_sample=True,
            temperature=float(cfg["temperature"]),
            top_p=float(cfg["top_p"]),
            seed=seed * 1000 + rnd,
            desc=f"perturb round {rnd}",
        )
        for qid, out in zip(owners, outputs, strict=True):
            f = filters[qid]
            if len(f.accepted) < k and f.offer(clean_candidate(out.text)):
                rounds_of[qid].append(rnd)
    rows = []
    for qid, f in filters.items():
        for text, rnd in zip(f.accepted, rounds_of[qid], strict=True):
            rows.append(
                [
                    qid,
                    by_id.at[qid, "question"],
                    by_id.at[qid, "answer"],
                    text,
                    "perturbed",
                    perturber,
                    thash,
                    seed,
                    rnd,
                ]
            )
    table = typed_frame(rows, PERTURBATION_DTYPES)
    rejected = sum((f.rejected for f in filters.values()), Counter())
    offered = sum(len(f.accepted) for f in filters.values()) + sum(rejected.values())
    none = sorted(qid for qid, f in filters.items() if not f.accepted)
    stats = {
        "questions": len(filters),
        "candidates": offered,
        "accepted": len(table),
        "rejected": {r: rejected.get(r, 0) for r in REJECT_REASONS},
        "questions_without_perturbation": len(none),
        "questions_short_of_k": sum(1 for f in filters.values() if len(f.accepted) < k),
    }
    for qid in none:
        log.warning("perturb: no valid wrong answer for %s: %r", qid, by_id.at[qid, "question"])
    max_failed = float(cfg["max_failed_fraction"])
    if filters and len(none) / len(filters) > max_failed:
        raise RuntimeError(
            f"perturb: {len(none)} of {len(filters)} forget questions got no valid wrong answer after "
            f"{cfg['max_rounds']} rounds (more than perturb.max_failed_fraction={max_failed}); "
            f"rejections: {stats['rejected']}. Try another perturber, template or temperature"
        )
    return PerturbResult(table, stats)


def _read_premade(path: Path) -> list[tuple[str, str | None, str]]:
    """(question, correct answer or None, wrong answer) triples from the two supported pre-made formats, read by
    content whatever the extension (:func:`unlearning.data.sources.load_local`): records with ``question,
    correct_answer, wrong_answers`` (a list; a JSON list or JSON Lines), or rows ``question, answer, is_correct``."""
    df = load_local(path)
    if "wrong_answers" in df.columns:
        out = []
        for i, item in enumerate(df.to_dict("records")):
            if "question" not in item or not isinstance(item.get("wrong_answers"), list):
                raise InputError(f"{path}: item {i}: expected keys question, correct_answer, wrong_answers (a list)")
            out += [(str(item["question"]), item.get("correct_answer"), str(w)) for w in item["wrong_answers"]]
        return out
    missing = [c for c in ("question", "answer", "is_correct") if c not in df.columns]
    if missing:
        raise InputError(
            f"{path}: missing column(s) {missing}; expected question, answer, is_correct (rows) or question, "
            "correct_answer, wrong_answers (records)"
        )
    wrong = df[~df["is_correct"].astype(str).str.lower().isin(["true", "1"])]
    return [(str(q), None, str(a)) for q, a in zip(wrong["question"], wrong["answer"], strict=True)]


def _names(items: list[str], limit: int = 10) -> str:
    shown = "; ".join(repr(x) for x in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def perturb_from_file(
    path: str | Path,
    forget: pd.DataFrame,
    held_out: pd.DataFrame,
    *,
    seed: int,
    threshold: float = 0.5,
) -> PerturbResult:
    """Pre-made wrong answers matched to ``forget`` (the questions to perturb) by normalised question text.

    Every pre-made answer passes the same filters as the perturber's (:class:`CandidateFilter`), with the same
    counted reasons. ``stats["uncovered_ids"]`` lists the forget_train questions left without any wrong answer
    (not in the file, or every answer rejected); a warning names them.
    """
    path = Path(path)
    triples = _read_premade(path)
    train_ids = {normalize(q): i for q, i in zip(forget["question"], forget["id"], strict=True)}
    test_q = {normalize(q) for q in held_out["question"]}
    by_id = forget.set_index("id")
    filters: dict[str, CandidateFilter] = {}
    unmatched, held = set(), set()
    for question, _, wrong in triples:
        key = normalize(question)
        qid = train_ids.get(key)
        if qid is None:
            (held if key in test_q else unmatched).add(key)
            continue
        if qid not in filters:
            # a multiple-choice probe lists its options in the question, so no option has words of its own there:
            # its wrong answers are judged against the truth alone
            multiple_choice = "kind" in by_id.columns and by_id.at[qid, "kind"] == "multiple_choice"
            asked = "" if multiple_choice else by_id.at[qid, "question"]
            filters[qid] = CandidateFilter(by_id.at[qid, "answer"], asked, threshold)
        filters[qid].offer(clean_candidate(wrong))
    if not filters:
        raise InputError(
            f"{path}: none of its {len({normalize(q) for q, _, _ in triples})} questions matches a question to "
            "perturb (matching ignores case, spaces and punctuation); check that the file belongs to this forget set"
        )
    if unmatched:
        log.warning("%s: %d question(s) match no forget question and were not used", path, len(unmatched))
    if held:
        log.info("%s: %d question(s) are held out (forget_test) and were not used for training", path, len(held))
    rows = [
        [qid, by_id.at[qid, "question"], by_id.at[qid, "answer"], wrong, "premade", str(path), "", seed, 0]
        for qid, f in filters.items()
        for wrong in f.accepted
    ]
    table = typed_frame(rows, PERTURBATION_DTYPES)
    rejected = sum((f.rejected for f in filters.values()), Counter())
    covered = set(table["source_id"])
    uncovered = [qid for qid in forget["id"] if qid not in covered]
    if uncovered:
        log.warning(
            "%s: %d forget_train question(s) have no usable pre-made wrong answer (not in the file, or every answer "
            "rejected) and get no pair from it: %s",
            path,
            len(uncovered),
            _names([by_id.at[q, "question"] for q in uncovered]),
        )
    stats = {
        "questions": len(forget),
        "candidates": len(table) + sum(rejected.values()),
        "accepted": len(table),
        "rejected": {r: rejected.get(r, 0) for r in REJECT_REASONS},
        "file_questions_unmatched": len(unmatched),
        "file_questions_held_out": len(held),
        "questions_without_perturbation": len(uncovered),
        "uncovered_ids": uncovered,
    }
    return PerturbResult(table, stats)


def combine(premade: PerturbResult, filled: PerturbResult) -> PerturbResult:
    """Pre-made answers plus the perturber's answers for the questions the file left uncovered."""
    table = pd.concat([premade.table, filled.table], ignore_index=True)
    still = [q for q in premade.stats["uncovered_ids"] if q not in set(filled.table["source_id"])]
    stats = {
        **premade.stats,
        "filled_by_perturber": {k: v for k, v in filled.stats.items() if k != "questions"},
        "filled_questions": len(premade.stats["uncovered_ids"]) - len(still),
        "questions_without_perturbation": len(still),
        "accepted": len(table),
    }
    return PerturbResult(table, stats)


def empty_table() -> pd.DataFrame:
    """The perturbation table with no rows, with the columns and dtypes of :data:`PERTURBATION_DTYPES`."""
    return typed_frame([], PERTURBATION_DTYPES)


def forget_questions(qa: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The forget_train QA pairs (the DPO pairs' questions) and the held-out forget_test ones (never trained on);
    probe rows (``kind`` other than ``qa``) are scored only, never trained on."""
    if "kind" in qa.columns:
        qa = qa[qa["kind"] == "qa"]
    return qa[qa["split"] == "forget_train"].reset_index(drop=True), qa[qa["split"] == "forget_test"].reset_index(
        drop=True
    )


SCORED_ROLES = ("forget_", "retain_")


def scored_questions(qa: pd.DataFrame) -> pd.DataFrame:
    """Every question (QA pair or probe) of the forget and hard-retain sets, train and held-out: the perturbation
    stage writes wrong answers for all of them, which the scoring stage needs for the truth ratio and the
    multiple-choice figures. Only the forget_train QA pairs' wrong answers ever become DPO pairs."""
    return qa[qa["split"].astype(str).str.startswith(SCORED_ROLES)].reset_index(drop=True)
