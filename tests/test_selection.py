"""The operating-point rule: the most forgetting within the damage bound, read from training-side splits only."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from unlearning.scoring.operating_points import SELECTION_SPLITS, relative_drop, sweep_table

SPLITS = ("forget_train", "forget_test", "retain_train", "retain_test", "general_train", "general_test", "truthfulqa")
# ROUGE-L recall on known facts per (variant, split): base 0.8 everywhere
TRAIN_SIDE = {
    "base": (0.8, 0.8, 0.8),
    "s_lr1": (0.6, 0.78, 0.76),  # forgets 25%, damage max(2.5%, 5%) = 5%
    "s_lr2": (0.2, 0.70, 0.74),  # forgets 75%, damage 12.5%: beyond a 10% bound
    "s_lr3": (0.4, 0.76, 0.74),  # forgets 50%, damage 7.5%
    "s_lr4": (0.5, 0.728, 0.78),  # forgets 37.5%, damage 9%, dominated by s_lr3
}


def summary(test_value: float = 0.5) -> pd.DataFrame:
    rows = []
    for variant, (forget, retain, general) in TRAIN_SIDE.items():
        side = {"forget_train": forget, "retain_train": retain, "general_train": general}
        for split in SPLITS:
            for subset in ("all", "known"):
                value = side.get(split, test_value if variant != "base" else 0.8)
                rows.append(("m", variant, split, subset, "rougeL_recall", value - (0.1 if subset == "all" else 0)))
    return pd.DataFrame(rows, columns=["model", "variant", "split", "subset", "metric", "value"])


SWEEPS = {"dpo": "dpo", **{f"s_lr{i}": "s" for i in range(1, 5)}}


def test_relative_drop() -> None:
    assert relative_drop(0.8, 0.2) == pytest.approx(0.75)
    assert math.isnan(relative_drop(0.0, 0.0)) and math.isnan(relative_drop(math.nan, 0.5))


def test_the_most_forgetting_within_the_bound_is_chosen() -> None:
    table = sweep_table(summary(), SWEEPS, max_damage=0.10).set_index("entry")
    assert list(table.index) == ["s_lr1", "s_lr2", "s_lr3", "s_lr4"], "entries without a grid are not a sweep"
    assert table.loc["s_lr3", "forgetting"] == pytest.approx(0.5) and table.loc["s_lr3", "damage"] == pytest.approx(
        0.075
    )
    assert table["within_bound"].tolist() == [True, False, True, True]
    assert table["chosen"].tolist() == [False, False, True, False]
    assert table["pareto"].tolist() == [True, True, True, False]
    # a tighter bound moves the choice; a bound nothing meets chooses nothing
    assert sweep_table(summary(), SWEEPS, max_damage=0.06).set_index("entry")["chosen"].idxmax() == "s_lr1"
    assert not sweep_table(summary(), SWEEPS, max_damage=0.01)["chosen"].any()


def test_the_rule_never_reads_a_split_that_a_headline_figure_uses() -> None:
    """Held-out splits and TruthfulQA may hold anything: the choice and every figure stay the same."""
    reference = sweep_table(summary(), SWEEPS, max_damage=0.10)
    poisoned = summary()
    held_out = ~poisoned["split"].isin(SELECTION_SPLITS)
    assert held_out.any() and set(poisoned.loc[held_out, "split"]) == set(SPLITS) - set(SELECTION_SPLITS)
    rng = np.random.default_rng(0)
    poisoned.loc[held_out, "value"] = rng.uniform(-5, 5, held_out.sum())
    pd.testing.assert_frame_equal(sweep_table(poisoned, SWEEPS, max_damage=0.10), reference)
    without = summary()[~held_out]
    pd.testing.assert_frame_equal(sweep_table(without, SWEEPS, max_damage=0.10), reference)


def test_points_whose_forgetting_interval_overlaps_the_chosen_ones_are_tied() -> None:
    """s_lr3 (chosen, forgets 50%) has the drop interval [0.32, 0.48] (40% to 60% of the base 0.8); s_lr4's
    [0.2, 0.34] (25% to 42.5%) overlaps it, s_lr1's [0.1, 0.25] (12.5% to 31%) does not."""
    intervals = {"s_lr1": (0.1, 0.25), "s_lr2": (0.55, 0.65), "s_lr3": (0.32, 0.48), "s_lr4": (0.2, 0.34)}
    base = summary().assign(ci_low=math.nan, ci_high=math.nan)
    drops = [
        ("m", v, "forget_train", "known", "rougeL_recall_drop", 0.0, low, high) for v, (low, high) in intervals.items()
    ]
    extra = pd.DataFrame(drops, columns=[*base.columns[:6], "ci_low", "ci_high"])
    table = sweep_table(pd.concat([base, extra], ignore_index=True), SWEEPS, max_damage=0.10).set_index("entry")
    assert table.loc["s_lr3", "forgetting_low"] == pytest.approx(0.4)
    assert table.loc["s_lr3", "forgetting_high"] == pytest.approx(0.6)
    assert table["chosen"].idxmax() == "s_lr3"
    assert table["tied"].tolist() == [False, False, False, True]  # s_lr2 overlaps too, but is beyond the bound
    # a summary from before intervals: no bounds, nothing tied
    plain = sweep_table(summary(), SWEEPS, max_damage=0.10)
    assert plain["forgetting_low"].isna().all() and not plain["tied"].any()
