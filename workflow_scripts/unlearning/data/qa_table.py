"""Build the QA table of the run: validate persons' QA pairs and split every person set into train and test.

The split decides what the model is trained on and what it is scored on, so it must be deterministic (the same
seed gives byte-identical Parquet), must hold out questions of every person of every set (forget, hard retain,
general), so that no headline figure is computed on a question a method trained on (the forget term trains on
forget_train, the retain term on retain_train/general_train), and must never put one person on both sides.

Probes (RWKU's idea): a person file may carry, besides its QA pairs, probe rows that ask the same facts another way.
Their ``kind`` column (optional; empty or absent means ``qa``) is one of :data:`KINDS`, and ``probe_of`` (optional)
names the question of the person's QA pair the probe tests. Only ``qa`` rows are split and trained on; a probe takes
the split of the pair it probes (a probe of a held-out fact is held out too), or the set's ``_test`` split when it
names none. Columns named ``kind`` and ``probe_of`` are picked up without a mapping.

Person names are compared as :func:`person_key` has them, ignoring letter case, spacing and Unicode normalisation:
``Ada Lovelace`` and ``ada  lovelace``, or ``Zoë`` with a composed or a decomposed ``ë``, are one person. That person
is split as one, must not be in the forget set and another set at once, and is written to ``qa.parquet`` under one
spelling: the first seen (forget file first, then retain, then general; top to bottom), spaces collapsed and
NFC-normalised (:func:`unify_persons`).
"""

from __future__ import annotations

import ast
import hashlib
import io
import logging
import random
import re
import tokenize
import unicodedata
from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..core.errors import InputError, capped
from ..core.parquet_io import TEXT_DTYPE, typed_frame
from .person_names import clean_names, names_only_columns, person_key
from .sources import describe, load_source, map_columns
from .truthfulqa import from_multiple_choice, is_multiple_choice

log = logging.getLogger(__name__)
QA_COLUMNS = ["id", "person", "question", "answer", "split", "kind"]
#: probe kinds: the QA pair itself, fill-in-the-blank, a reworded question, the truth among wrong options (scored
#: by generation and by likelihood), the fact given and the person asked, and a jailbreak-style prefix
KINDS = ("qa", "cloze", "paraphrase", "multiple_choice", "reverse", "prefix_injection")
PROBE_COLUMNS = ("kind", "probe_of")
ROLES = ("forget", "retain", "general")
SPLITS = tuple(f"{role}_{part}" for role in ROLES for part in ("train", "test"))
TRAIN_SPLITS = tuple(s for s in SPLITS if s.endswith("_train"))
TEST_SPLITS = tuple(s for s in SPLITS if s.endswith("_test"))
MAX_NAMES = 10  # persons named in one warning; the rest are counted
WPU_COLUMNS = {"person": "title", "question": "question", "answer": "answer"}
# our names -> the columns of the official TruthfulQA CSV (the hub's generation config uses snake_case names)
OFFICIAL_TRUTHFULQA_COLUMNS = {
    "question": "Question",
    "best_answer": "Best Answer",
    "correct_answers": "Correct Answers",
    "incorrect_answers": "Incorrect Answers",
    "category": "Category",
}
TRUTHFULQA_COLUMNS = ["id", "category", "question", "best_answer", "correct_answers", "incorrect_answers"]


def stable_id(prefix: str, *parts: str) -> str:
    """An id that depends only on the text, so reruns and reorderings keep ids."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:12]
    return f"{prefix}-{digest}"


def clean_qa(df: pd.DataFrame, where: str) -> pd.DataFrame:
    """Strip text and reject null or empty cells and duplicate questions, naming the data row (1-based)."""
    df = df.reset_index(drop=True).copy()
    for column in ("person", "question", "answer"):
        values = df[column]
        for i, value in enumerate(values):
            if value is None or (isinstance(value, float) and pd.isna(value)) or not str(value).strip():
                hint = (
                    f" (person {df.at[i, 'person']!r}); a person set given by names only is a file with just the "
                    "person column (or names: in the config), and a QA file needs a question and an answer on every row"
                    if column != "person"
                    else ""
                )
                raise InputError(f"{where}: data row {i + 1}: column {column!r} is empty (expected text){hint}")
        df[column] = values.map(lambda v: " ".join(str(v).split()))
    kinds = df["kind"] if "kind" in df.columns else pd.Series("qa", index=df.index)
    kinds = kinds.map(lambda v: "qa" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v).strip() or "qa")
    bad = ~kinds.isin(KINDS)
    if bad.any():
        i = int(bad.idxmax())
        raise InputError(f"{where}: data row {i + 1}: kind {kinds[i]!r} is not one of {', '.join(KINDS)}")
    df["kind"] = kinds
    if "probe_of" in df.columns:
        df["probe_of"] = df["probe_of"].map(lambda v: "" if v is None or pd.isna(v) else " ".join(str(v).split()))
    dup = df["question"].duplicated(keep="first")
    if dup.any():
        i = int(dup.idxmax())
        first = int((df["question"] == df.loc[i, "question"]).idxmax())
        raise InputError(
            f"{where}: data row {i + 1} repeats the question of data row {first + 1}: {df.loc[i, 'question']!r}"
        )
    return df


def spelling_difference(a: str, b: str) -> str:
    """How two spellings of one :func:`person_key` differ, in words: letter case, spacing, Unicode form."""
    nfkc = lambda text: unicodedata.normalize("NFKC", text)  # noqa: E731
    ways = []
    if " ".join(nfkc(a).split()) != " ".join(nfkc(b).split()):
        ways.append("letter case")
    if re.split(r"\S+", a) != re.split(r"\S+", b):  # the runs of white space between words (and around them)
        ways.append("spacing")
    if " ".join(a.casefold().split()) != " ".join(b.casefold().split()):
        ways.append("Unicode form (composed vs decomposed accents, or compatibility characters)")
    return " and ".join(ways) or "nothing"


def check_disjoint(
    tables: Mapping[str, pd.DataFrame], written: Mapping[str, pd.Series], persons: Mapping[str, Any]
) -> None:
    """Refuse a person of the forget set who is also in the retain or general set, spelled alike or not
    (:func:`person_key`). ``written`` holds each set's person cells as written in the file, for the message,
    which names the other set's spellings, and for spellings that differ, both spellings with their files and data
    rows and how they differ."""
    forget = describe(persons["forget"])
    first: dict[str, int] = {}
    for i, name in enumerate(tables["forget"]["person"]):
        first.setdefault(person_key(name), i)
    for role in ("retain", "general"):
        if role not in tables:
            continue
        where = describe(persons[role])
        names, variants, seen = set(), [], set()
        for i, name in enumerate(tables[role]["person"]):
            key = person_key(name)
            if key not in first:
                continue
            names.add(name)
            j = first[key]
            theirs, ours = str(written["forget"].iloc[j]), str(written[role].iloc[i])
            if ours != theirs and (ours, theirs) not in seen:
                seen.add((ours, theirs))
                how = spelling_difference(ours, theirs)
                show = ascii if "Unicode" in how else repr  # 'Zoe\u0308' and 'Zo\xeb' look alike printed
                variants.append(
                    f"{show(ours)} (data row {i + 1} of {where}) is {show(theirs)} (data row {j + 1} of {forget}), "
                    f"written with another {how}"
                )
        if names:
            message = (
                f"{where}: person(s) {capped(sorted(names))} are also in the forget set ({forget}); a person is "
                "either forgotten or retained"
            )
            if variants:
                shown = "; ".join(variants[:3]) + (f"; and {len(variants) - 3} more" if len(variants) > 3 else "")
                message += f". Names are compared ignoring letter case, spacing and Unicode normalisation: {shown}"
            raise InputError(message)


def unify_persons(
    tables: Mapping[str, pd.DataFrame], written: Mapping[str, pd.Series], persons: Mapping[str, Any]
) -> list[str]:
    """Write every person under one spelling, in place: the first seen of its :func:`person_key` (sets in the order
    of ``tables``, rows top to bottom), spaces collapsed and NFC-normalised. Returns the notes that name the
    spellings taken as another (each once, with its first data row)."""
    canonical: dict[str, tuple[str, str, int]] = {}
    notes = []
    for role, df in tables.items():
        where = describe(persons[role])
        merged: set[str] = set()
        spellings = []
        for i, name in enumerate(df["person"]):
            key, spelling = person_key(name), unicodedata.normalize("NFC", name)
            if key not in canonical:
                canonical[key] = (spelling, where, i)
            target, source, row = canonical[key]
            ours = str(written[role].iloc[i])
            if spelling != target and ours not in merged:
                merged.add(ours)
                at = f"data row {row + 1}" + ("" if source == where else f" of {source}")
                spellings.append(f"{ours!r} (data row {i + 1}) as {target!r} ({at})")
        df["person"] = [canonical[person_key(name)][0] for name in df["person"]]
        if spellings:
            notes.append(
                f"{where}: {len(spellings)} person name(s) written differently (letter case, spacing or Unicode "
                f"normalisation) are taken as one person: {'; '.join(spellings[:MAX_NAMES])}"
                + (f" and {len(spellings) - MAX_NAMES} more" if len(spellings) > MAX_NAMES else "")
            )
    return notes


def _names(persons: list[str]) -> str:
    shown = ", ".join(persons[:MAX_NAMES])
    return shown + (f" and {len(persons) - MAX_NAMES} more" if len(persons) > MAX_NAMES else "")


def held_out_count(n: int, fraction: float) -> int:
    """How many of a person's ``n`` QA pairs are held out: ``round(fraction * n)``, at least 1 when the fraction is
    above 0, and at most ``n - 1`` so that every person keeps a training question. 0 holds out nothing; a person
    with a single pair holds out nothing."""
    if fraction <= 0 or n < 2:
        return 0
    return min(max(1, round(fraction * n)), n - 1)


def split_person_set(df: pd.DataFrame, role: str, fraction: float, seed: int) -> tuple[pd.Series, list[str]]:
    """``{role}_train``/``{role}_test`` labels per row and the warnings the split raises.

    Per person, a seeded shuffle (seed and person name, independent of row order) holds out
    :func:`held_out_count` questions. Warnings name the persons with a single QA pair (nothing held out for them),
    those who hold out fewer than the fraction asks (to keep a training question), and an empty held-out or
    training split with its reason.
    """
    train, test = f"{role}_train", f"{role}_test"
    labels = pd.Series(train, index=df.index)
    single, reduced = [], []
    for person, group in df.groupby("person", sort=True):
        order = sorted(group.index, key=lambda i: df.at[i, "question"])
        random.Random(f"{seed}:{person}").shuffle(order)
        n_test = held_out_count(len(order), fraction)
        labels.loc[order[:n_test]] = test
        if fraction > 0 and len(order) == 1:
            single.append(str(person))
        elif fraction > 0 and n_test < round(fraction * len(order)):
            reduced.append(str(person))
    warnings = []
    if (labels == test).sum() == 0 and len(df):
        reason = (
            "data.test_fraction is 0"
            if fraction <= 0
            else f"every {role} person has a single QA pair (as in WPU's subsets), and a person's only pair is "
            "trained on"
        )
        warnings.append(f"{test} is empty: {reason}; no held-out figures for this set")
    elif single:
        warnings.append(
            f"{role}: {len(single)} person(s) have a single QA pair, kept in {train} with nothing held out: "
            f"{_names(single)}"
        )
    if reduced:
        warnings.append(
            f"{role}: {len(reduced)} person(s) hold out fewer than data.test_fraction={fraction} of their pairs, "
            f"so that each keeps a training question: {_names(reduced)}"
        )
    if (labels == train).sum() == 0 and len(df):
        warnings.append(f"{train} is empty: no {role} question is trained on")
    return labels, warnings


def load_person_sets(persons: Mapping[str, Any]) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Every configured person set, loaded, checked and unified (:func:`unify_persons`), by role, and the notes on
    spellings taken as one person.

    A set is given as QA pairs (a file with person, question and answer columns, and optional probe columns) or by
    names only (``names: [...]`` in the config, or a file with just the person column): a names-only table has the
    single column ``person``. A file whose rows hold questions for some persons and none for others is an error
    naming the first empty row.
    """
    tables, written = {}, {}
    for role in ROLES:
        spec = persons.get(role)
        if spec is None:
            continue
        where = describe(spec)
        if "names" in spec:
            tables[role] = clean_names(spec["names"], where, "item")
            written[role] = pd.Series([str(n) for n in spec["names"]])
            continue
        raw = load_source(spec)
        mapping = {**persons["columns"], **(spec.get("columns") or {})}
        if names_only_columns(list(raw.columns), mapping):
            mapped = map_columns(raw, {"person": mapping["person"]}, where)
            written[role] = mapped["person"].reset_index(drop=True)
            tables[role] = clean_names(list(mapped["person"]), where)
            continue
        for column in PROBE_COLUMNS:  # probe columns under their own names need no mapping
            if column not in mapping and column in raw.columns:
                mapping[column] = column
        mapped = map_columns(raw, mapping, where)
        written[role] = mapped["person"].reset_index(drop=True)
        tables[role] = clean_qa(mapped, where)
    if "forget" not in tables:
        raise InputError("config key data.persons.forget is required: nothing to forget")
    check_disjoint(tables, written, persons)
    return tables, unify_persons(tables, written, persons)


def persons_table(persons: Mapping[str, Any]) -> pd.DataFrame:
    """Every person of every set: ``person``, ``set`` (forget, retain, general) and ``has_qa`` (False for a set given
    by names only), in set order, then by name; the describe stage's input."""
    tables, _ = load_person_sets(persons)
    rows = [
        (person, role, "question" in df.columns) for role, df in tables.items() for person in sorted(set(df["person"]))
    ]
    return pd.DataFrame(rows, columns=["person", "set", "has_qa"])


def build_qa(persons: Mapping[str, Any], fraction: float, seed: int, warnings: list[str] | None = None) -> pd.DataFrame:
    """The run's QA table from the configured forget/retain/general sources, every set split into train and test;
    sets given by names only (:func:`load_person_sets`) have no rows here.

    The split's warnings are logged and appended to ``warnings`` when a list is given (prepare_data stores them in
    the table's metadata, so the report can show them).
    """
    tables, notes = load_person_sets(persons)
    for note in notes:
        log.warning("persons: %s", note)
        if warnings is not None:
            warnings.append(note)
    seen: dict[str, str] = {}
    parts = []
    for role, df in tables.items():
        if "question" not in df.columns:  # names only
            continue
        for question in df["question"]:
            if question in seen:
                raise InputError(f"{describe(persons[role])}: question {question!r} also appears in {seen[question]}")
            seen[question] = describe(persons[role])
        df = df.copy()
        is_qa = df["kind"] == "qa"
        df["split"] = pd.Series(f"{role}_test", index=df.index)
        df.loc[is_qa, "split"], notes = split_person_set(df[is_qa], role, fraction, seed)
        notes += probe_splits(df, role, describe(persons[role]))
        for note in notes:
            log.warning("split: %s", note)
        if warnings is not None:
            warnings += notes
        parts.append(df)
    if not parts:  # every set given by names only
        return typed_frame([], dict.fromkeys(QA_COLUMNS, TEXT_DTYPE))
    qa = pd.concat(parts, ignore_index=True)
    qa["id"] = [stable_id(s, p, q) for s, p, q in zip(qa["split"], qa["person"], qa["question"], strict=True)]
    order = {s: i for i, s in enumerate(SPLITS)}
    qa = qa.sort_values(["split", "person", "question"], key=lambda c: c.map(order) if c.name == "split" else c)
    return qa[QA_COLUMNS].reset_index(drop=True)


def trainable(qa: pd.DataFrame) -> pd.DataFrame:
    """The QA pairs a method may train on (forget term, retain term): probes are scored, never trained on."""
    return qa[qa["kind"] == "qa"] if "kind" in qa.columns else qa


def probe_splits(df: pd.DataFrame, role: str, where: str) -> list[str]:
    """Give every probe row of ``df`` (``kind`` other than ``qa``; ``split`` already set on the QA rows) the split
    of the QA pair of the same person its ``probe_of`` names (case and spacing ignored), in place; a probe naming
    no pair, or one that is not there, keeps ``{role}_test``. Returns the warnings (probes whose pair is missing)."""
    if "probe_of" not in df.columns:
        return []
    key = lambda text: " ".join(str(text).casefold().split())  # noqa: E731
    qa = df[df["kind"] == "qa"]
    split_of = {(p, key(q)): s for p, q, s in zip(qa["person"], qa["question"], qa["split"], strict=True)}
    missing = []
    for i in df.index[(df["kind"] != "qa") & (df["probe_of"] != "")]:
        found = split_of.get((df.at[i, "person"], key(df.at[i, "probe_of"])))
        if found is None:
            missing.append(df.at[i, "question"])
        else:
            df.at[i, "split"] = found
    if missing:
        return [
            f"{where}: {len(missing)} probe(s) name a probe_of question that is not a QA pair of the same person; "
            f"they are scored in {role}_test: {capped(missing)}"
        ]
    return []


def parse_printed_list(text: str) -> list[str] | None:
    """The items of a list of strings printed as text, or None when ``text`` is not one.

    ``DataFrame.to_csv`` and ``datasets.Dataset.to_csv`` write list cells as their printed form: Python's
    ``['a', 'b']`` or numpy's ``['a' 'b']`` (no commas, wrapped over lines). Python would read the numpy form as
    *one* string (adjacent literals concatenate), so the string literals are read one by one instead.
    """
    try:
        tokens = [
            t
            for t in tokenize.generate_tokens(io.StringIO(text.strip()).readline)
            if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.ENDMARKER, tokenize.INDENT, tokenize.DEDENT)
        ]
    except (tokenize.TokenError, SyntaxError):
        return None
    if len(tokens) < 2 or tokens[0].string != "[" or tokens[-1].string != "]":
        return None
    items = []
    for token in tokens[1:-1]:
        if token.type == tokenize.STRING:
            value = ast.literal_eval(token.string)
            if not isinstance(value, str):
                return None
            items.append(value)
        elif token.string != ",":
            return None
    return items


def _as_list(value: Any, where: str, row: int, column: str) -> list[str]:
    """TruthfulQA answer lists come as ';'-separated strings (official CSV), as lists (hub) or as printed lists
    (a hub export written by ``to_csv``)."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            items = parse_printed_list(stripped)
            if items is None:
                raise InputError(
                    f"{where}: data row {row + 1}: column {column!r} holds {stripped[:80]!r}, which looks like a "
                    "printed list but is not a list of quoted strings; write the answers separated by ';' "
                    "(as the official TruthfulQA CSV does: 'answer one; answer two') or as a list in JSON/Parquet"
                )
        else:
            items = value.split(";")
    elif value is None or (isinstance(value, float) and pd.isna(value)):
        items = []
    else:
        items = list(value)
    items = [" ".join(str(x).split()) for x in items if str(x).strip()]
    if not items:
        raise InputError(f"{where}: data row {row + 1}: column {column!r} has no answers (expected a list)")
    return items


def build_truthfulqa(spec: Mapping[str, Any], seed: int) -> pd.DataFrame:
    """TruthfulQA items with list-valued answers, optionally a seeded subset of ``limit`` items.

    The official CSV and the hub's ``generation`` config go through the ``columns`` mapping; the hub's
    ``multiple_choice`` config (``mc1_targets``, ``mc2_targets``) is recognised by its columns and converted by
    :func:`unlearning.data.truthfulqa.from_multiple_choice` (its items then carry ``mc1_incorrect``, lm-eval's MC1
    options).
    """
    where = describe(spec)
    raw = load_source(spec)
    multiple_choice = is_multiple_choice(raw)
    if multiple_choice:
        df = from_multiple_choice(raw, where)
        names = {c: c for c in df.columns}
    else:
        df = map_columns(raw, spec["columns"], where).reset_index(drop=True)
        names = spec["columns"]
    rows = []
    for i, rec in enumerate(df.to_dict("records")):
        question = str(rec.get("question") or "").strip()
        best = str(rec.get("best_answer") or "").strip()
        if not question or not best:
            raise InputError(f"{where}: data row {i + 1}: empty question or best answer")
        rows.append(
            {
                "id": stable_id("truthfulqa", question),
                "category": str(rec.get("category") or ""),
                "question": question,
                "best_answer": best,
                "correct_answers": _as_list(rec["correct_answers"], where, i, names["correct_answers"]),
                "incorrect_answers": _as_list(rec["incorrect_answers"], where, i, names["incorrect_answers"]),
            }
        )
        if multiple_choice:
            rows[-1]["mc1_incorrect"] = _as_list(rec["mc1_incorrect"], where, i, "mc1_targets")
    out = pd.DataFrame(rows, columns=TRUTHFULQA_COLUMNS + (["mc1_incorrect"] if multiple_choice else []))
    dup = out["question"].duplicated()
    if dup.any():
        raise InputError(f"{where}: data row {int(dup.idxmax()) + 1} repeats a question: {out.question[dup].iloc[0]!r}")
    limit = spec.get("limit")
    if limit is not None and limit < len(out):
        out = out.sample(n=limit, random_state=seed)
    return out.sort_values("id").reset_index(drop=True)
