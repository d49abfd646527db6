"""Person names: how two spellings are one person, and person sets given by names only.

Light on purpose (pandas and the project's errors only): the workflow reads it while it parses the config, to find
names-only sets and to check a names list before any job (``rules/common.smk``, ``config.preflight``).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ..core.errors import InputError


def person_key(name: str) -> str:
    """The identity of a person name: Unicode compatibility-normalised (NFKC, so composed and decomposed accents
    match), case-folded and with runs of whitespace made one space, as Unicode's caseless matching of identifiers
    does. ``person_key("ADA  Lovelace") == person_key("ada lovelace")``."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return " ".join(folded.split())


def names_only_columns(columns: Sequence[str], mapping: Mapping[str, str]) -> bool:
    """Whether a file with ``columns`` gives its persons by name only: it has the person column and neither the
    question nor the answer column (a file with one of them but not the other is a QA file missing a column)."""
    return mapping["person"] in columns and mapping["question"] not in columns and mapping["answer"] not in columns


def clean_names(names: Sequence[Any], where: str, unit: str = "data row") -> pd.DataFrame:
    """A names-only person set: one row per name (``person``), whitespace collapsed. An empty cell, an empty list
    and a name given twice (as :func:`person_key` compares names) are InputErrors naming the ``unit`` (``data row``
    of a file, ``item`` of a config list) and, for a repeat, both spellings."""
    if not len(names):
        raise InputError(f"{where}: the list of names is empty: nothing to describe")
    seen: dict[str, int] = {}
    cleaned = []
    for i, value in enumerate(names):
        if value is None or (isinstance(value, float) and pd.isna(value)) or not str(value).strip():
            raise InputError(f"{where}: {unit} {i + 1}: the person's name is empty (expected text)")
        key = person_key(str(value))
        if key in seen:
            first = seen[key]
            raise InputError(
                f"{where}: {unit} {i + 1} names {value!r} again ({names[first]!r}, {unit} {first + 1}); names are "
                "compared ignoring letter case, spacing and Unicode form"
            )
        seen[key] = i
        cleaned.append(" ".join(str(value).split()))
    return pd.DataFrame({"person": cleaned})
