"""Tests for the HTML/Markdown report (unlearning.report) on small synthetic artifacts."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pandas as pd
import pytest

from unlearning import report
from unlearning.errors import InputError
from unlearning.parquet_io import write_parquet

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EVIL = "<script>alert('x')</script>"
SPLIT_ROWS = {"forget_train": 4, "forget_test": 0, "retain": 4, "general": 2, "truthfulqa": 2}
SCORE_METRICS = ("rougeL_f1", "rougeL_recall", "rouge1_f1", "bleu", "answer_prob", "perplexity")


def make_config(models: list[str]) -> dict:
    entries = {
        "smollm2": {"path": "HuggingFaceTB/SmolLM2-135M-Instruct", "trust_remote_code": False},
        "oddmodel": {"gguf": {"repo": "someone/odd-GGUF", "file": "odd.Q8_0.gguf"}, "trust_remote_code": True},
    }
    return {
        "seed": 1234,
        "models": {m: entries[m] for m in models},
        "perturb": {"model": "HuggingFaceTB/SmolLM2-360M-Instruct", "seed": 7},
        "data": {"forget": "sample_data/forget.csv", "retain": "sample_data/hard_retain.csv"},
        "train": {"beta": 0.1, "epochs": 2},
    }


def score_frame(variant: str, strength: float) -> pd.DataFrame:
    """Per-row scores; the unlearned variant forgets the forget split (recall scaled by ``strength``)."""
    rows = []
    for split, n in SPLIT_ROWS.items():
        for i in range(n):
            recall = 0.8 - 0.05 * i
            if variant == "unlearned" and split.startswith("forget"):
                recall *= strength
            elif variant == "unlearned":
                recall -= 0.01
            question = f"Question {i} about {split}?"
            generation = f"{variant} answer {i}"
            if split == "forget_train" and i == 0:
                question = f"Who is {EVIL}?"
                generation = f"{variant} says {EVIL} | pipe"
            rows.append(
                {
                    "id": f"{split}-{i:03d}",
                    "split": split,
                    "person": f"Person {i}",
                    "question": question,
                    "reference": f"True answer {i} for {split}.",
                    "generation": generation,
                    "new_tokens": 12,
                    "rougeL_f1": recall * 0.9,
                    "rougeL_recall": recall,
                    "rouge1_f1": recall * 0.95,
                    "bleu": recall * 0.5,
                    "answer_prob": recall * 0.7,
                    "perplexity": 8.0 + (3.0 if variant == "unlearned" else 0.0),
                    "degenerate": variant == "unlearned" and i == 0,
                    "mc1": 0.5 if split == "truthfulqa" else None,
                    "mc2": (0.55 if variant == "base" else 0.5) if split == "truthfulqa" else None,
                }
            )
    # shuffle so that "first by id" is not just file order
    return pd.DataFrame(rows).iloc[::-1].reset_index(drop=True)


def summary_frame(scores: dict[str, dict[str, pd.DataFrame]]) -> pd.DataFrame:
    rows = []
    for model, variants in scores.items():
        means: dict[tuple[str, str, str], float] = {}
        for variant, df in variants.items():
            for split in SPLIT_ROWS:
                part = df[df["split"] == split]
                vals = {m: part[m].mean() for m in SCORE_METRICS}
                vals["bleu_corpus"] = vals.pop("bleu")
                vals["bleu_sentence"] = vals["bleu_corpus"]
                vals["degenerate_rate"] = part["degenerate"].astype(float).mean()
                vals["n"] = float(len(part))
                if split == "truthfulqa":
                    vals["mc1"] = part["mc1"].mean()
                    vals["mc2"] = part["mc2"].mean()
                for metric, value in vals.items():
                    rows.append((model, variant, split, metric, value))
                    means[(variant, split, metric)] = value
        for split in SPLIT_ROWS:
            rows.append(
                (
                    model,
                    "headline",
                    split,
                    "rougeL_recall_drop",
                    means[("base", split, "rougeL_recall")] - means[("unlearned", split, "rougeL_recall")],
                )
            )
            for metric in ("perplexity", "degenerate_rate"):
                rows.append(
                    (
                        model,
                        "headline",
                        split,
                        f"{metric}_change",
                        means[("unlearned", split, metric)] - means[("base", split, metric)],
                    )
                )
        rows.append(
            (
                model,
                "headline",
                "truthfulqa",
                "mc2_change",
                means[("unlearned", "truthfulqa", "mc2")] - means[("base", "truthfulqa", "mc2")],
            )
        )
    return pd.DataFrame(rows, columns=["model", "variant", "split", "metric", "value"])


def training_log(steps: int = 6) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "step": list(range(1, steps + 1)),
            "epoch": [s / 3 for s in range(1, steps + 1)],
            "loss": [0.69 - 0.08 * s for s in range(steps)],
            "rewards_chosen": [0.05 * s for s in range(steps)],
            "rewards_rejected": [-0.1 * s for s in range(steps)],
            "rewards_margins": [0.15 * s for s in range(steps)],
            "rewards_accuracies": [min(1.0, 0.5 + 0.1 * s) for s in range(steps)],
            "learning_rate": [1e-4] * steps,
            "num_tokens": [100 * s for s in range(1, steps + 1)],
            "seconds": [2.5 * s for s in range(1, steps + 1)],
        }
    )


BENCH_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def build_fixture(root: Path, models: list[str], trained: list[str]) -> dict:
    """Write every input of :func:`report.render_report` under ``root``; return its keyword arguments."""
    config = make_config(models)
    strengths = {"smollm2": 0.1, "oddmodel": 0.6}
    frames = {m: {v: score_frame(v, strengths[m]) for v in report.VARIANTS} for m in models}
    scores = {}
    for m, variants in frames.items():
        scores[m] = {}
        for v, df in variants.items():
            path = root / "scores" / m / f"{v}.parquet"
            scores[m][v] = write_parquet(df, path, stage="score", config={"model": m})
    summary = write_parquet(
        summary_frame(frames), root / "summary.parquet", stage="summarize", config=config, seed=config["seed"]
    )
    logs = {
        m: write_parquet(training_log(), root / "train" / m / "log.parquet", stage="train", config={"model": m})
        for m in trained
    }
    benchmarks = {}
    for i, m in enumerate(trained):
        path = root / "benchmarks" / f"train_{m}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(BENCH_HEADER + f"{3725.5 + i}\t1:02:05\t2048.4\t4096\t1900\t1950\t10\t20\t95.1\t3500\n")
        benchmarks[f"train_dpo_lora[{m}]"] = path
    return {
        "summary": summary,
        "scores": scores,
        "training_logs": logs,
        "config": config,
        "benchmarks": benchmarks,
        "out_html": root / "report" / "report.html",
        "out_md": root / "report" / "report.md",
        "plot_dir": root / "report" / "plots",
        "data_sizes": {s: n for s, n in SPLIT_ROWS.items()},
    }


@pytest.fixture(scope="module")
def two_models(tmp_path_factory) -> tuple[dict, str, str]:
    root = tmp_path_factory.mktemp("report2")
    kwargs = build_fixture(root, ["smollm2", "oddmodel"], trained=["smollm2"])
    report.render_report(**kwargs)
    return kwargs, kwargs["out_html"].read_text(encoding="utf-8"), kwargs["out_md"].read_text(encoding="utf-8")


def test_plot_names_are_deterministic():
    assert report.plot_names(["a", "b/c"]) == [
        "rouge_by_split_a.png",
        "rouge_by_split_b_c.png",
        "tradeoff.png",
        "training_a.png",
        "training_b_c.png",
    ]
    assert report.plot_files("plots", ["a"])[0] == Path("plots/rouge_by_split_a.png")


def test_plot_files_exist_and_are_png(two_models):
    kwargs, _, _ = two_models
    for path in report.plot_files(kwargs["plot_dir"], ["smollm2", "oddmodel"]):
        assert path.read_bytes()[:8] == PNG_MAGIC, path


def test_html_sections_and_embedded_plots(two_models):
    kwargs, text, _ = two_models
    assert text.startswith("<!DOCTYPE html>")
    for model in ("smollm2", "oddmodel"):
        assert f'<table class="headline" data-model="{model}">' in text
        assert f"Model: {model}" in text
    # rouge x2, training x1 (oddmodel has no log), tradeoff x1
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(uris) == 4
    assert all(base64.b64decode(u)[:8] == PNG_MAGIC for u in uris)
    embedded = {
        kwargs["plot_dir"] / n
        for n in ("rouge_by_split_smollm2.png", "rouge_by_split_oddmodel.png", "training_smollm2.png", "tradeoff.png")
    }
    assert {base64.b64encode(p.read_bytes()).decode() for p in embedded} == set(uris)
    assert "No training curves for oddmodel" in text
    assert "Forget vs retain trade-off" in text
    assert "Examples" in text and "true answer" in text and "unlearned answer" in text
    assert report.EMPTY_SPLIT_NOTE in text
    assert {"good", "bad"} <= set(re.findall(r'class="num (\w+)"', text))
    # self-contained: no scripts, external stylesheets, fonts or remote images
    assert "<script" not in text.lower()
    assert "<link" not in text.lower()
    assert not re.search(r'(src|href)="(https?:)?//', text)


def test_html_escapes_dataset_text(two_models):
    _, text, md = two_models
    assert EVIL not in text and "<script>" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert "\\| pipe" in md  # a pipe in dataset text does not break the Markdown table


def test_provenance(two_models):
    kwargs, text, md = two_models
    for doc in (text, md):
        assert "Provenance" in doc
        assert "trust_remote_code: true" in doc
        assert "HuggingFaceTB/SmolLM2-135M-Instruct" in doc
        assert "HuggingFaceTB/SmolLM2-360M-Instruct" in doc  # perturber
        assert "1234" in doc and "perturb.seed" in doc
        assert "Library versions" in doc and pd.__version__ in doc
        assert ("train_dpo_lora[smollm2]" if doc is text else r"train_dpo_lora\[smollm2\]") in doc
        assert "3725.5 s (1:02:06)" in doc and "2048.4" in doc
        assert "Configuration as run" in doc and "beta: 0.1" in doc
    assert "<details>" in text and 'class="warn"' in text
    warning = "trust_remote_code: true for oddmodel"
    assert text.index(warning) < text.index("Overview</h2>") and md.index(warning) < md.index("## Overview")
    # the model with trust_remote_code is flagged, the other is not
    row = re.search(r"<tr><td>oddmodel</td><td>gguf:.*?</tr>", text).group(0)
    assert 'class="warn"' in row
    row = re.search(r"<tr><td>smollm2</td><td>path:.*?</tr>", text).group(0)
    assert 'class="warn"' not in row


def test_markdown_has_same_tables(two_models):
    kwargs, text, md = two_models
    data_tables = {m: report.headline_table(report.load_summary(kwargs["summary"]), m) for m in ("smollm2", "oddmodel")}
    for model, table in data_tables.items():
        assert f"## Model: {model}" in md
        assert report.md_headline(report.ModelSection(model, table, {}, None)) in md
        for _, row in table.iterrows():
            if row["empty"]:
                continue
            for pair, change, _ in report.headline_cells(row):
                assert pair in text and pair in md
                if change:
                    assert change in text and change in md
    assert md.count(report.EMPTY_SPLIT_NOTE) >= 2
    assert "✅" in md and "⚠️" in md
    for name in (
        "plots/rouge_by_split_smollm2.png",
        "plots/rouge_by_split_oddmodel.png",
        "plots/training_smollm2.png",
        "plots/tradeoff.png",
    ):
        assert f"]({name})" in md
    assert "plots/training_oddmodel.png" not in md


def test_examples_first_three_by_id(two_models):
    _, text, md = two_models
    for split in report.EXAMPLE_SPLITS:
        for i in range(3):
            if SPLIT_ROWS[split] > i:
                assert f"{split}-{i:03d}" in text and f"{split}-{i:03d}" in md
    assert "forget_train-003" not in text
    assert "True answer 0 for retain." in text


def test_headline_numbers_and_verdicts(two_models):
    kwargs, _, _ = two_models
    table = report.headline_table(report.load_summary(kwargs["summary"]), "smollm2").set_index("split")
    assert table.loc["forget_test", "empty"]
    assert table.loc["forget_train", "rougeL_recall_verdict"] == "good"
    assert table.loc["forget_train", "perplexity_verdict"] == "bad"
    assert table.loc["retain", "rougeL_recall_verdict"] == "neutral"
    assert table.loc["truthfulqa", "mc2_verdict"] == "bad"
    assert table.loc["truthfulqa", "mc2_change"] == pytest.approx(-0.05)


@pytest.mark.parametrize(
    ("metric", "split", "base", "unlearned", "expected"),
    [
        ("rougeL_recall", "forget_train", 0.8, 0.1, "good"),
        ("rougeL_recall", "forget_test", 0.5, 0.6, "bad"),
        ("rougeL_recall", "forget_train", 0.5, 0.49, "neutral"),
        ("rougeL_recall", "retain", 0.8, 0.5, "bad"),
        ("rougeL_recall", "retain", 0.8, 0.79, "neutral"),
        ("rougeL_recall", "general", 0.5, 0.6, "good"),
        ("perplexity", "forget_train", 8.0, 12.0, "bad"),
        ("perplexity", "retain", 8.0, 8.2, "neutral"),
        ("degenerate_rate", "general", 0.0, 0.1, "bad"),
        ("degenerate_rate", "retain", 0.2, 0.0, "good"),
        ("mc2", "truthfulqa", float("nan"), 0.5, "na"),
    ],
)
def test_judge_change(metric, split, base, unlearned, expected):
    assert report.judge_change(metric, split, base, unlearned) == expected


def test_single_model_run(tmp_path):
    kwargs = build_fixture(tmp_path, ["smollm2"], trained=["smollm2"])
    kwargs["data_sizes"] = None
    report.render_report(**kwargs)
    text = kwargs["out_html"].read_text(encoding="utf-8")
    md = kwargs["out_md"].read_text(encoding="utf-8")
    assert len(re.findall(r'src="data:image/png;base64,', text)) == 3
    for path in report.plot_files(kwargs["plot_dir"], ["smollm2"]):
        assert path.read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in kwargs["plot_dir"].iterdir()) == sorted(report.plot_names(["smollm2"]))
    assert "oddmodel" not in text
    assert "trust_remote_code: true" not in text and "trust_remote_code: true" not in md
    assert "## Model: smollm2" in md


def test_missing_summary_column_is_input_error(tmp_path):
    path = write_parquet(
        pd.DataFrame({"model": ["m"], "value": [1.0]}), tmp_path / "s.parquet", stage="summarize", config={}
    )
    with pytest.raises(InputError, match="missing column"):
        report.load_summary(path)


def test_bad_benchmark_file_is_input_error(tmp_path):
    bad = tmp_path / "b.tsv"
    bad.write_text("foo\tbar\n1\t2\n")
    with pytest.raises(InputError, match="benchmark"):
        report.load_benchmarks({"job": bad})
    with pytest.raises(InputError, match="not found"):
        report.load_benchmarks({"job": tmp_path / "missing.tsv"})
