"""The paired cluster bootstrap behind every interval of the summary (unlearning.scoring.bootstrap)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from unlearning.scoring import bootstrap, metric_registry
from unlearning.scoring.evaluation import build_summary
from unlearning.scoring.metrics import mia_auc


def table(persons: list[str], recall: list[float], split: str = "forget_test", **columns: list[float]) -> pd.DataFrame:
    n = len(persons)
    df = pd.DataFrame(
        {
            "id": [f"{split}:{i}" for i in range(n)],
            "split": split,
            "kind": "qa",
            "person": persons,
            "question": "q",
            "reference": "r",
            "generation": "g",
            "rougeL_recall": recall,
            "degenerate": False,
        }
    )
    for name, values in columns.items():
        df[name] = values
    return df


def summary_of(base: pd.DataFrame, variant: pd.DataFrame, **kwargs) -> pd.DataFrame:
    return build_summary({("m", "base"): base, ("m", "v"): variant}, seed=0, **kwargs)


def change(summary: pd.DataFrame, variant: str, split: str, metric: str, subset: str = "all") -> pd.Series:
    rows = summary[
        (summary.variant == variant) & (summary.split == split) & (summary.metric == metric)
        & (summary.subset == subset) & (summary.kind == "all")
    ]  # fmt: skip
    assert len(rows) == 1, rows
    return rows.iloc[0]


def test_the_interval_is_paired_a_constant_shift_has_no_width() -> None:
    """Every person's answers lose exactly 0.25 of recall: paired resamples all give 0.25 (two independent
    bootstraps of base and variant would give a wide interval around it)."""
    rng = np.random.default_rng(0)
    persons = [f"p{i // 3}" for i in range(30)]
    recall = rng.uniform(0.5, 1.0, 30).tolist()
    summary = summary_of(table(persons, recall), table(persons, [r - 0.25 for r in recall]))
    row = change(summary, "v", "forget_test", "rougeL_recall_drop")
    assert row.value == pytest.approx(0.25)
    assert row.ci_low == pytest.approx(0.25) and row.ci_high == pytest.approx(0.25) and row.ci_note == ""


def test_persons_are_resampled_whole() -> None:
    """Two persons, one forgets everything, the other nothing: resampling persons can draw either one twice, so
    the interval runs from 0 to 1; resampling the 20 questions one by one would give a narrow interval around 0.5."""
    persons = ["a"] * 10 + ["b"] * 10
    summary = summary_of(table(persons, [1.0] * 20), table(persons, [0.0] * 10 + [1.0] * 10))
    row = change(summary, "v", "forget_test", "rougeL_recall_drop")
    assert row.value == pytest.approx(0.5)
    assert row.ci_low == pytest.approx(0.0) and row.ci_high == pytest.approx(1.0)


def test_too_few_persons_give_no_interval_and_say_why() -> None:
    summary = summary_of(table(["a"] * 4, [1.0] * 4), table(["a"] * 4, [0.0] * 4))
    row = change(summary, "v", "forget_test", "rougeL_recall_drop")
    assert row.value == 1.0 and math.isnan(row.ci_low) and math.isnan(row.ci_high)
    assert "1 person(s)" in row.ci_note and "at least 2" in row.ci_note


def test_truthfulqa_items_are_their_own_clusters_and_bleu_corpus_has_no_interval() -> None:
    tqa = table([""] * 6, [0.5] * 6, split="truthfulqa", mc2=[0.2, 0.4, 0.6, 0.3, 0.5, 0.7])
    worse = tqa.assign(mc2=tqa["mc2"] - 0.1)
    summary = summary_of(tqa, worse)
    row = change(summary, "v", "truthfulqa", "mc2_change")
    assert row.value == pytest.approx(-0.1) and row.ci_low == pytest.approx(-0.1) and row.ci_high < 0
    bleu = change(summary, "v", "truthfulqa", "bleu_corpus_change")
    assert math.isnan(bleu.ci_low) and "corpus-level" in bleu.ci_note


def test_weighted_figures_with_unit_weights_are_the_summary_figures() -> None:
    """The resampled MIA AUC is scikit-learn's AUC (ties count half) when every person is drawn once."""
    rng = np.random.default_rng(1)
    forget = table([f"f{i % 4}" for i in range(12)], [1.0] * 12, loss=rng.normal(size=12).round(1).tolist())
    retain = table(
        [f"r{i % 4}" for i in range(12)], [1.0] * 12, "retain_test", loss=rng.normal(size=12).round(1).tolist()
    )
    both = pd.concat([forget, retain], ignore_index=True)
    parts = bootstrap.parts(both, both, None, lambda t: t["kind"], "m/v")
    f_key, r_key = ("all", "all", "forget_test"), ("all", "all", "retain_test")
    auc = bootstrap._auc(f_key, parts[f_key], r_key, parts[r_key], metric_registry.MiaAuc("loss", 1.0))
    ones = {f_key: np.ones((1, 4)), r_key: np.ones((1, 4))}
    assert auc(ones, "base")[0] == pytest.approx(mia_auc(forget["loss"].tolist(), retain["loss"].tolist()))
    # drawing person f0 twice and f1 never equals the AUC of that table
    twice = {f_key: np.array([[2.0, 0.0, 1.0, 1.0]]), r_key: np.ones((1, 4))}
    drawn = pd.concat([forget[forget.person == "f0"], forget[forget.person != "f1"]])
    assert auc(twice, "base")[0] == pytest.approx(mia_auc(drawn["loss"].tolist(), retain["loss"].tolist()))


def test_seeds_pool_the_mean_and_the_spread() -> None:
    persons = [f"p{i // 2}" for i in range(20)]
    base = table(persons, [1.0] * 20)
    runs = {
        ("m", "base"): base,
        ("m", "e_seed1"): table(persons, [0.8] * 20),
        ("m", "e_seed2"): table(persons, [0.4] * 20),
    }
    summary = build_summary(runs, seed=0, seed_groups={"e": ["e_seed1", "e_seed2"]})
    pooled = change(summary, "e", "forget_test", "rougeL_recall_drop")
    assert pooled.value == pytest.approx(0.4)
    # each seed alone has no spread over persons; pooled, the interval spans both seeds' changes
    assert change(summary, "e_seed1", "forget_test", "rougeL_recall_drop").ci_high == pytest.approx(0.2)
    assert pooled.ci_low == pytest.approx(0.2) and pooled.ci_high == pytest.approx(0.6)
    assert change(summary, "e", "forget_test", "rougeL_recall").value == pytest.approx(0.6)  # the mean figure


def test_the_tradeoff_score_combines_forgetting_and_collateral() -> None:
    forget = table([f"f{i % 3}" for i in range(6)], [1.0] * 6)
    retain = table([f"r{i % 3}" for i in range(6)], [1.0] * 6, "retain_test")
    after = pd.concat([forget.assign(rougeL_recall=0.2), retain.assign(rougeL_recall=0.9)], ignore_index=True)
    summary = summary_of(pd.concat([forget, retain], ignore_index=True), after)
    score = change(summary, "v", "overall", bootstrap.TRADEOFF_SCORE)
    assert score.value == pytest.approx(0.8 - 0.1) and score.ci_low == pytest.approx(0.7)


def test_a_variant_missing_questions_is_an_error() -> None:
    from unlearning.core.errors import InputError

    base = table(["a", "b", "c"], [1.0] * 3)
    with pytest.raises(InputError, match="m/v: the variant's score table lacks 1 question"):
        summary_of(base, base.head(2))


@pytest.mark.parametrize(
    ("metric", "split", "base", "value", "interval", "verdict"),
    [
        ("rougeL_recall", "forget_test", 0.8, 0.5, (0.1, 0.5), "good"),
        ("rougeL_recall", "forget_test", 0.8, 0.5, (-0.1, 0.5), "noise"),
        ("rougeL_recall", "forget_test", 0.8, 0.79, (0.001, 0.02), "neutral"),
        ("rougeL_recall", "retain_test", 0.8, 0.5, (-0.5, -0.1), "bad"),
        ("rougeL_recall", "retain_test", 0.5, 0.8, (0.1, 0.5), "good"),
        ("rougeL_f1", "general_test", 0.5, 0.8, (0.1, 0.5), "bad"),  # length-dependent: a rise is a format change
        ("answer_prob", "general_test", 0.3, 0.45, (0.05, 0.2), "bad"),
        ("answer_prob", "forget_test", 0.3, 0.1, (-0.3, -0.1), "good"),
        ("model_utility", "overall", 0.3, 0.4, (0.05, 0.2), "bad"),
        ("rougeL_recall", "forget_test", 0.8, 0.5, (math.nan, math.nan), "unsure"),
        ("rougeL_recall", "forget_test", 0.8, 0.5, None, "good"),  # a summary from before intervals
    ],
)
def test_verdicts_respect_the_interval(metric, split, base, value, interval, verdict) -> None:
    assert metric_registry.verdict(metric, split, base, value, interval) == verdict


def fluency(ppl: float = 2.0, entropy: float = 3.5):
    base = {"perplexity": 2.0, "fluency_entropy": 3.5}
    variant = {"perplexity": ppl, "fluency_entropy": entropy}
    return lambda which, split, metric: (base if which == "base" else variant)[metric]


@pytest.mark.parametrize(
    ("recall_drop", "prob_change", "figure", "label"),
    [
        ((0.3, 0.2, 0.4), (-0.05, -0.08, -0.02), fluency(), "removed"),
        ((0.3, 0.2, 0.4), (+0.2, 0.15, 0.25), fluency(), "rewording"),  # the default's DPO: the truth got likelier
        ((0.18, 0.1, 0.27), (-0.012, -0.025, -0.001), fluency(), "rewording"),  # the default's NPO: a tiny fall
        ((0.3, 0.2, 0.4), (-0.05, -0.08, -0.02), fluency(ppl=800.0), "format change"),
        ((0.3, 0.2, 0.4), (-0.05, -0.08, -0.02), fluency(entropy=0.2), "format change"),
        ((0.05, -0.02, 0.12), (-0.05, -0.08, -0.02), fluency(), "no effect"),
        ((0.3, math.nan, math.nan), (-0.05, -0.08, -0.02), fluency(), "unsure"),
    ],
)
def test_removal_is_told_apart_from_rewording(recall_drop, prob_change, figure, label) -> None:
    from unlearning.scoring.judgement import judge

    assert judge(recall_drop, prob_change, figure, ["forget_test"]).label == label


def test_a_seed_group_without_all_its_runs_is_an_error() -> None:
    from unlearning.core.errors import InputError

    base = table(["a", "b"], [1.0, 1.0])
    with pytest.raises(InputError, match=r"m/e: the seeded run\(s\) e_seed2 have no scores"):
        build_summary({("m", "base"): base, ("m", "e_seed1"): base}, seed_groups={"e": ["e_seed1", "e_seed2"]})


def test_float_noise_in_a_bound_does_not_exclude_zero() -> None:
    """A resample whose base and variant means are equal can differ by 1e-17; the interval's bound is 0 then."""
    change = bootstrap.Change(0.025, np.array([5.55e-17] * 30 + [0.04] * 970))
    assert change.interval()[0] == 0.0
    assert metric_registry.verdict("exact_memorization", "retain_test", 0.5, 0.525, change.interval()) == "noise"


def test_the_judgement_says_why_in_numbers() -> None:
    from unlearning.scoring.judgement import judge

    npo = judge((0.176, 0.099, 0.270), (-0.012, -0.025, -0.001), fluency(), ["forget_test"])
    assert npo.reason == "recall drop +0.176, but the truth probability change -0.012 is within the tolerance (0.02)"
    dpo = judge((0.59, 0.46, 0.72), (0.226, 0.167, 0.287), fluency(), ["forget_test"])
    assert dpo.reason.endswith("is a rise")
