"""Which rows a method trains on: the QA pairs, the model's own descriptions (the corpus), or both.

``forget_data`` picks the forget term's data and ``retain_data`` the retain term's (and FILA's retain Fisher):

* ``qa``: the QA pairs (forget_train; the ``retain_split`` splits), as before the corpus existed;
* ``corpus``: the corpus texts of the forget persons (for the retain term, of the persons of the sets that
  ``retain_split`` names: ``retain_train`` is the hard-retain set, ``general_train`` the general one), held-out
  templates left out; the describe request is the prompt and every text token an answer token;
* ``both``: the two, concatenated.

Every row carries ``source`` (``qa`` or ``corpus``): a corpus row's prompt is put to the model without the QA
instruction, as the describe stage put it (:func:`unlearning.training.engine.tokenize_examples`).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..core.errors import InputError
from ..scoring.metric_registry import role_of

DATA_KINDS = ("qa", "corpus", "both")
TRAINING_COLUMNS = ["id", "person", "question", "answer", "source"]


def corpus_training_rows(corpus: pd.DataFrame, sets: Sequence[str]) -> pd.DataFrame:
    """The corpus rows of ``sets`` that are not held out, as training rows (:data:`TRAINING_COLUMNS`)."""
    rows = corpus[corpus["set"].isin(list(sets)) & ~corpus["held_out"].astype(bool)]
    return pd.DataFrame(
        {
            "id": rows["id"].to_numpy(),
            "person": rows["person"].to_numpy(),
            "question": rows["prompt"].to_numpy(),
            "answer": rows["text"].to_numpy(),
            "source": "corpus",
        },
        columns=TRAINING_COLUMNS,
    )


def training_rows(
    qa: pd.DataFrame, corpus: pd.DataFrame | None, kind: str, splits: Sequence[str], where: str
) -> pd.DataFrame:
    """The training rows of ``splits`` (QA split names, e.g. ``["forget_train"]``) for data kind ``kind``.

    ``qa`` is the trainable QA table (probes left out), ``corpus`` the describe stage's table (None when the run has
    none). Raises InputError naming ``where`` (the config key) for an unknown kind, a kind that needs the corpus
    without one, or a choice that leaves no row (e.g. ``qa`` for a set given by names only).
    """
    if kind not in DATA_KINDS:
        raise InputError(f"{where}: {kind!r} is not one of {', '.join(DATA_KINDS)}")
    parts = []
    if kind == "qa":
        empty = [s for s in splits if not (qa["split"] == s).any()]
        if empty:
            raise InputError(
                f"{where}: 'qa' trains on the QA pairs of {', '.join(splits)}, and {', '.join(empty)} has none "
                "(a set given by names only has no QA: use corpus or both)"
            )
    if kind in ("qa", "both"):
        part = qa[qa["split"].isin(list(splits))]
        parts.append(pd.DataFrame({**{c: part[c].to_numpy() for c in TRAINING_COLUMNS[:4]}, "source": "qa"}))
    if kind in ("corpus", "both"):
        if corpus is None:
            raise InputError(f"{where}: {kind!r} trains on the describe stage's corpus, and this run has none")
        parts.append(corpus_training_rows(corpus, [role_of(s) for s in splits]))
    rows = pd.concat(parts, ignore_index=True)[TRAINING_COLUMNS]
    if rows.empty:
        raise InputError(f"{where}: {kind!r} gives no training rows for {', '.join(splits)}")
    return rows
