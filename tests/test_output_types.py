"""Every Parquet the DAG writes keeps its contract's Arrow types, also when it has no rows.

pandas stores an empty (or all-missing) column of Python objects as ``object``, which pyarrow can only type as
``null``: a run without a sweep used to write ``results/score/operating_points.parquet`` with Null-typed ``model,
sweep, entry, forgetting, damage`` columns (and a double ``pareto``), which clash with a sweep's table when a user
unions the two in Polars or DuckDB. These tests write the real tables through ``write_parquet`` and read the
schema back.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from unlearning.core.parquet_io import TEXT_DTYPE, typed_frame, write_parquet
from unlearning.perturbation.wrong_answers import PERTURBATION_COLUMNS, empty_table, perturb_from_file
from unlearning.scoring.operating_points import SWEEP_COLUMNS, sweep_table


def written_schema(df: pd.DataFrame, path: Path) -> pa.Schema:
    """The Arrow schema of ``df`` as write_parquet stores it, without the metadata."""
    write_parquet(df, path, stage="test", config={})
    return pq.read_schema(path).remove_metadata()


def is_text(dtype: pa.DataType) -> bool:
    return pa.types.is_string(dtype) or pa.types.is_large_string(dtype)


# --------------------------------------------------------------------------------------------- operating points


def summary() -> pd.DataFrame:
    """Training-side ROUGE-L recall (known facts) of the base model, one entry outside any sweep (dpo) and two
    points of the sweep ``s``; base 0.8 everywhere."""
    side = {"base": (0.8, 0.8, 0.8), "dpo": (0.5, 0.7, 0.7), "s_lr1": (0.6, 0.78, 0.76), "s_lr2": (0.2, 0.7, 0.74)}
    rows = [
        ("m", variant, split, "known", "rougeL_recall", value)
        for variant, values in side.items()
        for split, value in zip(("forget_train", "retain_train", "general_train"), values, strict=True)
    ]
    return pd.DataFrame(rows, columns=["model", "variant", "split", "subset", "metric", "value"])


def test_operating_points_without_a_sweep_keep_their_types(tmp_path: Path) -> None:
    no_sweep = sweep_table(summary(), {"dpo": "dpo"}, max_damage=0.1)
    assert no_sweep.empty and list(no_sweep.columns) == SWEEP_COLUMNS
    schema = written_schema(no_sweep, tmp_path / "none" / "operating_points.parquet")
    types = dict(zip(schema.names, schema.types, strict=True))
    assert list(types) == SWEEP_COLUMNS
    assert all(is_text(types[c]) for c in ("model", "sweep", "entry")), types
    assert all(types[c] == pa.float64() for c in ("forgetting", "damage")), types
    assert all(types[c] == pa.bool_() for c in ("within_bound", "pareto", "chosen")), types

    # the same file from a run with a sweep has the very same schema, so the two union (Arrow's concat_tables
    # refuses any difference, as Polars' concat does)
    with_sweep = sweep_table(summary(), {"dpo": "dpo", "s_lr1": "s", "s_lr2": "s"}, max_damage=0.1)
    assert with_sweep["entry"].tolist() == ["s_lr1", "s_lr2"] and with_sweep["chosen"].tolist() == [True, False]
    assert written_schema(with_sweep, tmp_path / "sweep" / "operating_points.parquet") == schema
    union = pa.concat_tables(
        [pq.read_table(tmp_path / d / "operating_points.parquet").replace_schema_metadata() for d in ("none", "sweep")]
    )
    assert union.num_rows == 2 and union.schema.remove_metadata() == schema


# ----------------------------------------------------------------------------------------------- perturbations


def forget() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["forget_train-0", "forget_train-1"],
            "person": "Ada",
            "question": ["In which city was person 0 born?", "In which city was person 1 born?"],
            "answer": ["London", "Paris"],
            "split": "forget_train",
        }
    )


def premade(path: Path, wrong: list[str]) -> Path:
    question = forget()["question"].iloc[0]
    pd.DataFrame({"question": question, "answer": wrong, "is_correct": False}).to_csv(path, index=False)
    return path


def test_empty_perturbation_tables_keep_their_types(tmp_path: Path) -> None:
    questions = forget()
    accepted = perturb_from_file(premade(tmp_path / "ok.csv", ["Manchester."]), questions, questions.iloc[:0], seed=0)
    assert accepted.table["perturbed"].tolist() == ["Manchester."]
    full = written_schema(accepted.table, tmp_path / "full.parquet")
    assert full.names == PERTURBATION_COLUMNS
    assert full.field("seed").type == full.field("round").type == pa.int64()
    assert all(is_text(full.field(c).type) for c in PERTURBATION_COLUMNS if c not in ("seed", "round"))

    # every pre-made answer rejected (each restates the truth): a table with no rows, same schema
    rejected = perturb_from_file(premade(tmp_path / "bad.csv", ["In London."]), questions, questions.iloc[:0], seed=0)
    assert rejected.table.empty and rejected.stats["rejected"]["too_close"] == 1
    assert written_schema(rejected.table, tmp_path / "rejected.parquet") == full
    # no perturber and no pre-made file: the perturb stage writes empty_table()
    assert written_schema(empty_table(), tmp_path / "none.parquet") == full


# ---------------------------------------------------------------------------------------------- write_parquet


@pytest.mark.parametrize(
    ("frame", "untyped"),
    [
        (pd.DataFrame({"value": [1.0, 2.0], "note": [None, None]}), ["note"]),  # all missing
        (pd.DataFrame(columns=["model", "entry"]), ["model", "entry"]),  # no rows, no dtypes
        (pd.DataFrame({"id": ["a", "b"], "answers": [[], []]}), ["answers"]),  # a list of nulls
    ],
)
def test_write_parquet_refuses_null_typed_columns(frame: pd.DataFrame, untyped: list[str], tmp_path: Path) -> None:
    path = tmp_path / "out" / "table.parquet"
    with pytest.raises(TypeError, match="Arrow type null") as caught:
        write_parquet(frame, path, stage="test", config={})
    message = str(caught.value)
    assert str(path) in message and str(untyped) in message
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir()), "nothing is written"


def test_typed_frame_writes_without_rows(tmp_path: Path) -> None:
    dtypes = {"name": TEXT_DTYPE, "count": "int64", "score": "float64", "flag": "bool"}
    schema = written_schema(typed_frame([], dtypes), tmp_path / "empty.parquet")
    assert schema == written_schema(typed_frame([("a", 1, 0.5, True)], dtypes), tmp_path / "full.parquet")
    assert [is_text(schema.field("name").type), schema.field("count").type, schema.field("flag").type] == [
        True,
        pa.int64(),
        pa.bool_(),
    ]
