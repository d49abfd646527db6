"""Plausible wrong answers for the forget questions: written by a perturber LLM, or taken from a file.

DPO unlearning learns to prefer a wrong answer over the true one, so the wrong answers must be plausible (same
kind and length as the truth), really wrong (not a paraphrase of the truth) and varied. The perturber samples
candidates, each is cleaned and filtered, and questions that are still short get more sampling rounds. Every row
records who made it, with which template, seed and round, so a pair can always be traced back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .data_sources import load_local
from .errors import InputError
from .generation import generate
from .prompting import build_prompt

log = logging.getLogger(__name__)
PERTURBATION_COLUMNS = [
    "source_id",
    "question",
    "answer",
    "perturbed",
    "kind",
    "perturber",
    "template_hash",
    "seed",
    "round",
]
REJECT_REASONS = ("empty", "not_an_answer", "duplicate", "too_close")
_PREFIX = re.compile(
    r"^\s*(?:[-*•]|\d+[.)]|(?:the\s+)?(?:wrong|incorrect|false|plausible|correct)?\s*answer\s*(?:is)?\s*[:：-])\s*",
    re.I,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


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
        norm = normalize(candidate)
        truth = normalize(self.truth)
        if not norm:
            reason = "empty"
        elif candidate.rstrip().endswith("?") or norm == normalize(self.question):
            reason = "not_an_answer"
        elif norm in {normalize(a) for a in self.accepted}:
            reason = "duplicate"
        elif truth in norm or self.closeness(candidate) > self.threshold:
            reason = "too_close"
        else:
            self.accepted.append(candidate)
            return True
        self.rejected[reason] += 1
        return False

    def closeness(self, candidate: str) -> float:
        """1.0 when the candidate holds every key fact of the truth, else the ROUGE-L F1 of their fact words."""
        keys = key_facts(self.truth, self.question)
        if keys and keys <= set(normalize(candidate).split()):
            return 1.0
        return lcs_f1(fact_tokens(candidate, self.question), fact_tokens(self.truth, self.question))


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
    table = pd.DataFrame(rows, columns=PERTURBATION_COLUMNS)
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
    """(question, correct answer or None, wrong answer) triples from the two supported pre-made formats."""
    if path.suffix.lower() == ".json":
        try:
            items = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: not a UTF-8 JSON file ({exc})") from exc
        if not isinstance(items, list):
            raise InputError(f"{path}: expected a JSON list of {{question, correct_answer, wrong_answers}}")
        out = []
        for i, item in enumerate(items):
            if not isinstance(item, dict) or "question" not in item or not isinstance(item.get("wrong_answers"), list):
                raise InputError(f"{path}: item {i}: expected keys question, correct_answer, wrong_answers (a list)")
            out += [(str(item["question"]), item.get("correct_answer"), str(w)) for w in item["wrong_answers"]]
        return out
    df = load_local(path)
    missing = [c for c in ("question", "answer", "is_correct") if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; expected question, answer, is_correct")
    wrong = df[~df["is_correct"].astype(str).str.lower().isin(["true", "1"])]
    return [(str(q), None, str(a)) for q, a in zip(wrong["question"], wrong["answer"], strict=True)]


def perturb_from_file(path: str | Path, forget: pd.DataFrame, held_out: pd.DataFrame, *, seed: int) -> PerturbResult:
    """Pre-made wrong answers matched to the forget_train questions by normalised question text."""
    path = Path(path)
    triples = _read_premade(path)
    train_ids = {normalize(q): i for q, i in zip(forget["question"], forget["id"], strict=True)}
    test_q = {normalize(q) for q in held_out["question"]}
    by_id = forget.set_index("id")
    rows, unmatched, held = [], set(), set()
    seen: set[tuple[str, str]] = set()
    for question, _, wrong in triples:
        key = normalize(question)
        qid = train_ids.get(key)
        if qid is None:
            (held if key in test_q else unmatched).add(key)
            continue
        wrong = " ".join(wrong.split())
        if not wrong or (qid, normalize(wrong)) in seen or normalize(wrong) == normalize(by_id.at[qid, "answer"]):
            continue
        seen.add((qid, normalize(wrong)))
        rows.append([qid, by_id.at[qid, "question"], by_id.at[qid, "answer"], wrong, "premade", str(path), "", seed, 0])
    if not rows:
        raise InputError(
            f"{path}: none of its {len({normalize(q) for q, _, _ in triples})} questions matches a forget_train "
            "question (matching ignores case, spaces and punctuation); check that the file belongs to this forget set"
        )
    if unmatched:
        log.warning("%s: %d question(s) match no forget question and were not used", path, len(unmatched))
    if held:
        log.warning("%s: %d question(s) are held out (forget_test) and were not used for training", path, len(held))
    table = pd.DataFrame(rows, columns=PERTURBATION_COLUMNS)
    stats = {
        "questions": len(forget),
        "accepted": len(table),
        "file_questions_unmatched": len(unmatched),
        "file_questions_held_out": len(held),
        "questions_without_perturbation": int(len(forget) - table["source_id"].nunique()),
    }
    return PerturbResult(table, stats)


def empty_table() -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype="int64" if c in ("seed", "round") else "object") for c in PERTURBATION_COLUMNS}
    )


def forget_questions(qa: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The forget_train questions (to perturb) and the held-out forget_test ones (never trained on)."""
    return qa[qa["split"] == "forget_train"].reset_index(drop=True), qa[qa["split"] == "forget_test"].reset_index(
        drop=True
    )
