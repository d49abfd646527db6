"""Tests of the report package (unlearning.report) on synthetic inputs: 2 models x (base + 2 methods)."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from report_fixtures import EVIL, METHODS, MODELS, build_inputs

from unlearning.core.errors import InputError
from unlearning.core.parquet_io import read_parquet, write_parquet
from unlearning.report import plot_files, plot_names, render_report
from unlearning.report.browser import png_problems
from unlearning.report.load import load_benchmarks, load_summary
from unlearning.report.render import build_context, md_text
from unlearning.report.tables import RANK_BY_INTERVAL, Figures, judge_change, ranking

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[dict, str, str]:
    kwargs = build_inputs(tmp_path_factory.mktemp("report"))
    render_report(**kwargs)
    return kwargs, kwargs["out_html"].read_text(encoding="utf-8"), kwargs["out_md"].read_text(encoding="utf-8")


def test_plot_names_are_deterministic_and_need_no_matplotlib():
    assert plot_names(["a", "b/c"]) == [
        "splits_a.png",
        "splits_b_c.png",
        "training_a.png",
        "training_b_c.png",
        "tradeoff.png",
        "sweeps.png",
        "attacks.png",
    ]
    assert plot_files("plots", ["a"])[0] == Path("plots/splits_a.png")
    code = "import sys, unlearning.report; unlearning.report.plot_names(['m']); print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", "importing the report package for plot names loads matplotlib"


def test_every_plot_is_written_and_not_blank(rendered):
    kwargs, _, _ = rendered
    files = plot_files(kwargs["plot_dir"], list(MODELS))
    assert sorted(p.name for p in kwargs["plot_dir"].glob("*.png")) == sorted(p.name for p in files)
    assert png_problems(files) == []


def test_html_is_self_contained_and_embeds_every_plot(rendered):
    kwargs, text, _ = rendered
    assert text.startswith("<!DOCTYPE html>")
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(uris) == len(plot_names(list(MODELS)))
    files = {base64.b64encode(p.read_bytes()).decode() for p in plot_files(kwargs["plot_dir"], list(MODELS))}
    assert set(uris) == files
    assert "<script" not in text.lower() and "<link" not in text.lower()
    assert not re.search(r'(src|href)="(https?:)?//', text)


def test_verdicts_are_words_not_emoji(rendered):
    _, text, md = rendered
    for doc in (text, md):
        assert not [c for c in doc if ord(c) >= 0x2600], "a mark needs a symbol or emoji font"
    marks = re.findall(r'<td class="num (good|bad|neutral)">[^<]*<span class="mark">(\w+)</span>', text)
    assert {v for v, _ in marks} == {"good", "bad", "neutral"}
    assert all(word == {"good": "good", "bad": "BAD", "neutral": "same"}[v] for v, word in marks)
    assert "**good**" in md and "**BAD**" in md and "**same**" in md


def test_ranking_every_model_and_method_on_known_facts(tmp_path):
    kwargs = build_inputs(tmp_path)
    fig = Figures(load_summary(kwargs["summary"]))
    rank = ranking(fig, list(MODELS), ["base", *METHODS])
    assert len(rank) == len(MODELS) * len(METHODS)
    assert set(zip(rank["model"], rank["method"], strict=True)) == {(m, t) for m in MODELS for t in METHODS}
    assert list(rank["rank"]) == [1, 2, 3, 4]
    assert rank["score"].map(lambda c: c.low).is_monotonic_decreasing and rank.attrs["ranked_by"] == RANK_BY_INTERVAL
    # smollm2/dpo forgets the most known facts at no cost; odd/model/npo forgets a lot but damages the rest
    assert (rank.iloc[0]["model"], rank.iloc[0]["method"]) == ("smollm2", "dpo")
    assert (rank.iloc[-1]["model"], rank.iloc[-1]["method"]) == ("odd/model", "npo")
    assert set(rank["forget_subset"]) == {"known"} and set(rank["forget_split"]) == {"forget_test"}
    # damage, too, is read on the held-out facts the base model knew
    assert set(rank["retain_subset"]) == {"known"} and set(rank["general_subset"]) == {"known"}
    for _, r in rank.iterrows():
        for role, split in (("retain", "retain_test"), ("general", "general_test")):
            base, value = (fig.value(r["model"], v, split, "rougeL_recall", "known") for v in ("base", r["method"]))
            assert r[role].change == pytest.approx(value - base)
            assert r[f"n_{role}"] == fig.value(r["model"], "base", split, "n", "known")
    top = rank.iloc[0]
    assert top["forget"].change == pytest.approx(0.75 - 0.075)  # known = base recall >= 0.5: ids 0-2
    assert top["n_forget"] == 3


def test_ranking_falls_back_to_all_without_subset_column(tmp_path):
    """An older summary: no subset column, splits retain/general, one method called unlearned."""
    kwargs = build_inputs(tmp_path, methods=("unlearned",), untrained=())
    df = read_parquet(kwargs["summary"])
    df = df[df["subset"] == "all"].drop(columns="subset")
    df["split"] = df["split"].replace({"retain_test": "retain", "general_test": "general"})
    df = df[df["split"] != "truthfulqa"]  # and no TruthfulQA at all
    write_parquet(df, kwargs["summary"], stage="summarize", config={})
    render_report(**kwargs)
    fig = Figures(load_summary(kwargs["summary"]))
    rank = ranking(fig, list(MODELS), ["base", "unlearned"])
    assert set(rank["forget_subset"]) == {"all"} and set(rank["retain_subset"]) == {"all"}
    assert rank["retain"].map(lambda c: c.value).notna().all()
    text = kwargs["out_html"].read_text()
    assert "unlearned answer" in text and "forget_test, all, n=4" in text


def test_one_context_renders_both_documents(rendered):
    kwargs, text, md = rendered
    context = build_context(**{k: v for k, v in kwargs.items() if k != "out_html"})
    tables = [context["ranking"], *(m["metrics"] for m in context["models"])]
    tables += [g["table"] for m in context["models"] for g in m["examples"] if g["table"]]
    for table in tables:
        for h in table["headers"]:
            assert md_text(h) in md and h.replace("'", "&#39;") in text
        for row in table["rows"]:
            line = (
                "| "
                + " | ".join(
                    md_text(c["text"])
                    + (f" **{c['mark']}**" if c["mark"] else "")
                    + (f" ({md_text(c['sub'])})" if c["sub"] else "")
                    for c in row
                )
                + " |"
            )
            assert line in md
            for c in row:
                assert c["sub"].replace("'", "&#39;") in text
    for model in MODELS:
        assert f'<section data-model="{model}">' in text and f"## Model: {model}" in md
    for name in plot_names(list(MODELS)):
        assert f"]({name})" in md


def test_dataset_text_is_escaped(rendered):
    _, text, md = rendered
    assert EVIL not in text and "<script>" not in text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in text
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert "\\| pipe" in md  # a pipe in dataset text does not break the Markdown table
    assert "second line" in md and "answer 1<br>second line" in md


def test_examples_show_what_each_method_did_to_known_facts(rendered):
    """Known = base recall >= 0.5 (forget ids 0-2, retain ids 0-1). smollm2/dpo keeps 10% of recall: all three
    known forget facts are lost; odd/model/dpo keeps 60%: id 0 (0.54) is still answered, ids 1-2 lost;
    odd/model/npo takes 0.3 off the neighbours: retain id 1 (0.75 -> 0.45) is damaged, id 0 (0.9 -> 0.6) is not."""
    _, text, md = rendered
    lost = "dpo: held-out forget questions whose answer lost the fact (forget_test, {n})"
    assert lost.format(n=3) in text and f"#### {lost.format(n=3)}" in md
    assert lost.format(n=2) in text
    assert "dpo: held-out forget questions it still answers (forget_test, 1)" in text
    assert "npo: neighbour questions it damaged (retain_test, 1)" in text
    assert "| id | person | question | true answer | base answer | dpo answer |" in md
    assert "dpo says" in text and "recall 0.90" in text
    assert "forget_test-003" not in text  # the base model never knew it


def test_training_curves_per_method(rendered):
    _, text, md = rendered
    assert "| method | steps | epochs | final loss | final forget loss | final retain loss | seconds |" in md
    assert "| dpo | 6 | 2 | 0.290 | 0.200 | 1.100 | 15.0 s (0:00:15) |" in md
    assert "Note: no training log for npo, so no curves for it." in text  # odd/model has no npo log


def test_provenance(rendered):
    _, text, md = rendered
    for doc in (text, md):
        assert "Provenance" in doc and "trust_remote_code: true" in doc
        assert "HuggingFaceTB/SmolLM2-135M-Instruct" in doc
        assert "HuggingFaceTB/SmolLM2-360M-Instruct" in doc  # perturber
        assert "1234" in doc and "perturb.seed" in doc
        assert "Library versions" in doc and pd.__version__ in doc
        assert "3725.5 s (1:02:06)" in doc and "2048.4" in doc
        assert "Configuration as run" in doc and "method: dpo" in doc
    assert "unlearn[smollm2/dpo]" in text and r"unlearn\[smollm2/dpo\]" in md
    warning = "trust_remote_code: true for odd/model"
    assert text.index(warning) < text.index('<h2 id="overview">') and md.index(warning) < md.index("## Overview")
    row = re.search(r"<tr><td[^>]*>odd/model</td><td[^>]*>gguf:.*?</tr>", text).group(0)
    assert 'class=" warn"' in row
    row = re.search(r"<tr><td[^>]*>smollm2</td><td[^>]*>path:.*?</tr>", text).group(0)
    assert "warn" not in row


def test_absent_model_rows_and_splits(tmp_path):
    kwargs = build_inputs(tmp_path, models=("smollm2",))
    kwargs.pop("operating_points")  # the sweeps section names the training-side splits
    kwargs["config"]["models"]["ghost"] = {"path": "nowhere"}  # in the config, but nothing was made for it
    kwargs["data_sizes"] = None
    render_report(**kwargs)
    text = kwargs["out_html"].read_text()
    assert "no rows for this model in summary.parquet" in text and "no per-row scores" in text
    assert png_problems(plot_files(kwargs["plot_dir"], ["smollm2", "ghost"])) == []
    assert "general_train" not in text  # absent split: no row, no bar


@pytest.mark.parametrize(
    ("metric", "split", "base", "value", "expected"),
    [
        ("rougeL_recall", "forget_train", 0.8, 0.1, "good"),
        ("rougeL_recall", "forget_test", 0.5, 0.6, "bad"),
        ("rougeL_recall", "forget_train", 0.5, 0.49, "neutral"),
        ("rougeL_recall", "retain_test", 0.8, 0.5, "bad"),
        ("rougeL_recall", "retain_test", 0.8, 0.79, "neutral"),
        ("rougeL_recall", "general_test", 0.5, 0.6, "good"),
        ("perplexity", "forget_train", 8.0, 12.0, "bad"),
        ("perplexity", "retain_test", 8.0, 8.2, "neutral"),
        ("degenerate_rate", "general_test", 0.0, 0.1, "bad"),
        ("degenerate_rate", "retain_test", 0.2, 0.0, "good"),
        ("mc2", "truthfulqa", float("nan"), 0.5, "na"),
    ],
)
def test_judge_change(metric, split, base, value, expected):
    assert judge_change(metric, split, base, value) == expected


def test_missing_summary_column_is_input_error(tmp_path):
    path = write_parquet(pd.DataFrame({"model": ["m"], "value": [1.0]}), tmp_path / "s.parquet", stage="s", config={})
    with pytest.raises(InputError, match="missing column"):
        load_summary(path)


def test_bad_benchmark_file_is_input_error(tmp_path):
    bad = tmp_path / "b.tsv"
    bad.write_text("foo\tbar\n1\t2\n")
    with pytest.raises(InputError, match="benchmark"):
        load_benchmarks({"job": bad})
    with pytest.raises(InputError, match="not found"):
        load_benchmarks({"job": tmp_path / "missing.tsv"})


def test_a_change_that_rounds_to_zero_has_no_minus_sign():
    from unlearning.report.render import fmt_change

    assert [fmt_change("x", v) for v in (-0.0, -0.0001, 0.5, -0.5)] == ["+0.000", "+0.000", "+0.500", "-0.500"]


def test_sweeps_section_shows_every_point_and_the_chosen_one(rendered):
    _, text, md = rendered
    assert 'id="sweeps"' in text and "## Sweeps and operating points" in md
    assert text.count("CHOSEN") == 1 and "forgetting (train side)" in text
    assert "[30.0%, 70.0%]" in text and "tied" in md  # the chosen point's forgetting interval; one it overlaps


def test_without_sweeps_the_section_is_absent_and_the_plot_says_so(tmp_path):
    kwargs = build_inputs(tmp_path)
    kwargs.pop("operating_points")
    render_report(**kwargs)
    assert 'id="sweeps"' not in kwargs["out_html"].read_text(encoding="utf-8")
    assert png_problems([kwargs["plot_dir"] / "sweeps.png"]) == []


def test_examples_of_a_model_that_knows_nothing_are_empty_groups() -> None:
    """The tiny test model answers nothing right: no known fact, so every group is empty (and nothing fails)."""
    from unlearning.report.tables import select_examples

    base = pd.DataFrame({"id": ["a", "b"], "split": ["forget_test", "retain_test"], "question": "q", "reference": "r",
                         "generation": "g", "rougeL_recall": [0.0, 0.1]})  # fmt: skip
    groups = select_examples({"base": base, "npo": base}, "npo")
    assert [g["count"] for g in groups] == [0, 0, 0] and all(g["rows"] == [] for g in groups)


def test_the_overview_says_when_every_method_damages_more_than_it_forgets(tmp_path, monkeypatch):
    import report_fixtures

    kwargs = build_inputs(tmp_path)
    render_report(**kwargs)
    assert "No method here forgets more than it damages" not in kwargs["out_md"].read_text()
    monkeypatch.setattr(report_fixtures, "EFFECTS", {k: (0.9, 0.3) for k in report_fixtures.EFFECTS})
    kwargs = build_inputs(tmp_path / "damaging")
    render_report(**kwargs)
    assert "**No method here forgets more than it damages" in kwargs["out_md"].read_text()


def test_attacks_section_says_when_an_attack_undoes_the_forgetting(rendered):
    _, text, md = rendered
    assert "## Does it stay forgotten?" in md and '<h2 id="attacks">' in text
    assert re.search(r"\*\*smollm2/dpo: the quantization attack undoes 100% of its forgetting", md)
    row = next(line for line in md.splitlines() if line.startswith("| dpo | quantization |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3].startswith("+0.000") and cells[4] == "100%", cells
    # the attacked run's rows never reach the tables of the variants as trained
    summary = load_summary(rendered[0]["summary"])
    assert "attack" not in summary.columns and not summary.duplicated(["model", "variant", "split", "subset",
                                                                        "kind", "metric"]).any()  # fmt: skip
