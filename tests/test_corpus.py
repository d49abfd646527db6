"""The describe stage and the corpus: the filters, the held-out templates, generation by a real (tiny, taught) model,
training rows from the corpus for every method, and the held-out templates' scores in the summary."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import teach_facts
from test_training import settings

from unlearning.core.errors import InputError
from unlearning.corpus.describe import (
    CORPUS_COLUMNS,
    DescribeSettings,
    PersonTexts,
    describe_persons,
    held_out_templates,
    name_words,
    names_person,
    request,
)
from unlearning.corpus.evaluation import CORPUS_SCORE_COLUMNS, score_corpus
from unlearning.corpus.training_rows import TRAINING_COLUMNS, training_rows
from unlearning.inference.likelihood import continuation_logliks
from unlearning.inference.prompting import PromptStyle, build_prompt
from unlearning.models.checkpoints import Manifest, load_model
from unlearning.scoring.evaluation import build_summary, with_corpus_scores
from unlearning.training.engine import tokenize_examples, train
from unlearning.training.methods import METHODS, get_method

STYLE = PromptStyle(instruction="Give only one sentence answer.")
PLAIN = replace(STYLE, instruction=None)
TEMPLATES = {"bio": "Write a short biography of {person}.", "known": "What is {person} known for?"}
PERSONS = pd.DataFrame(
    {
        "person": ["Ada Quill", "Bruno Vessel", "Cora Lind", "Dario Fenn", "Elsa Brook", "Fabio Stone"],
        "set": ["forget", "forget", "retain", "retain", "general", "general"],
    }
)
JOBS = ["painter", "sailor", "baker", "poet", "chemist", "weaver"]
CITIES = ["Lyon", "Porto", "Graz", "Turku", "Ghent", "Bergen"]


def description(person: str, template: str) -> str:
    i = list(PERSONS["person"]).index(person)
    if template == "bio":
        return f"{person} was a {JOBS[i]} born in {CITIES[i]} in {1801 + i} who worked there all his life."
    return f"{person} is known for the work of a {JOBS[i]} and for a long stay in {CITIES[(i + 1) % 6]}."


def corpus_table(held_out: dict[str, str] | None = None) -> pd.DataFrame:
    """A corpus as the describe stage writes it, one text per person and template (``held_out``: person ->
    held-out template; by default ``known`` for everyone)."""
    rows = []
    for person, role in zip(PERSONS["person"], PERSONS["set"], strict=True):
        for t, text in TEMPLATES.items():
            held = (held_out or {}).get(person, "known") == t
            rows.append([f"c-{person}-{t}", person, role, t, request(text, person), description(person, t), 1, held])
    return pd.DataFrame(rows, columns=CORPUS_COLUMNS)


@pytest.fixture(scope="module")
def describing_manifest(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    """The tiny model taught every person's descriptions (as answers to the describe requests, no instruction)."""
    corpus = corpus_table()
    out = teach_facts(
        tiny_model_dir, list(corpus["prompt"]), list(corpus["text"]), tmp_path_factory.mktemp("d"), PLAIN, 150
    )
    return Manifest(name="describing", path=str(out), source="local")


def test_name_words_ignore_initials_and_parentheses() -> None:
    assert name_words("J. K. Rowling") == ["rowling"]
    assert name_words("Mauro Bergamasco (rugby union)") == ["mauro", "bergamasco"]
    assert name_words("Li Bo") == ["li", "bo"]  # no word of 3 letters: every word
    assert names_person("The author ROWLING wrote seven books.", "J. K. Rowling")
    assert not names_person("Rowlings are birds.", "J. K. Rowling")  # whole words only
    assert not names_person("A rugby union player.", "Mauro Bergamasco (rugby union)")


def test_each_rejection_reason_is_counted_in_order() -> None:
    texts = PersonTexts("Ada Quill", min_words=5, duplicate_rouge=0.8)
    assert texts.reason("Ada Quill painted.") == "too_short"
    assert texts.reason("Ada Quill was a painter, a painter, a painter, a painter.") == "degenerate"
    assert texts.reason("She was a painter born in Lyon in 1801.") == "unnamed"
    assert texts.reason("Ada Quill was a painter born in Lyon in 1801.") is None
    assert texts.reason("Ada Quill was a painter born in Lyon in 1802.") == "duplicate"
    assert texts.reason("Quill spent her later years sailing between Porto and Lisbon.") is None
    assert texts.kept == ["Ada Quill was a painter born in Lyon in 1801.",
                          "Quill spent her later years sailing between Porto and Lisbon."]  # fmt: skip


def test_held_out_templates_depend_on_the_person_and_seed_only() -> None:
    names = ["a", "b", "c", "d"]
    first = held_out_templates("Ada Quill", names, 2, seed=1)
    assert len(first) == 2 and set(first) <= set(names)
    assert held_out_templates("ada  QUILL", list(reversed(names)), 2, seed=1) == first  # order and spelling
    picks = {tuple(held_out_templates(p, names, 1, seed=1)) for p in [f"person {i}" for i in range(20)]}
    assert len(picks) > 1, "different persons hold out different templates"


def test_describe_settings_name_bad_templates_and_held_out() -> None:
    with pytest.raises(InputError, match=r"describe\.templates: .*bio.* lack the placeholder \{person\}"):
        DescribeSettings.from_config({"templates": {"bio": "Write a biography.", "known": "{person}?"}})
    with pytest.raises(InputError, match="describe.held_out is 2: it must leave at least one"):
        DescribeSettings.from_config({"templates": TEMPLATES, "held_out": 2})


def test_describe_writes_the_corpus_from_a_real_model(describing_manifest: Manifest) -> None:
    model, tokenizer = load_model(describing_manifest, device=torch.device("cpu"))
    cfg = DescribeSettings(
        templates=TEMPLATES, samples=2, held_out=1, max_rounds=2, max_new_tokens=40, batch_size=8, min_words=5
    )
    result = describe_persons(model, tokenizer, PERSONS, cfg, style=STYLE, seed=3)
    table = result.table
    assert list(table.columns) == CORPUS_COLUMNS
    assert set(table["person"]) == set(PERSONS["person"]) and set(table["set"]) == {"forget", "retain", "general"}
    for person, rows in table.groupby("person"):
        assert set(rows.loc[rows["held_out"], "template"]) == set(held_out_templates(person, list(TEMPLATES), 1, 3))
        assert (~rows["held_out"]).any(), f"{person} keeps a training text"
        assert all(names_person(text, person) for text in rows["text"])
    # the taught model repeats its description: the second sample of a slot is a duplicate, counted per template
    per_template = result.stats["per_template"]
    assert set(per_template) == set(TEMPLATES)
    for counts in per_template.values():
        assert counts["sampled"] == counts["kept"] + sum(counts[r] for r in ("too_short", "degenerate", "unnamed",
                                                                              "duplicate"))  # fmt: skip
        assert counts["kept"] >= len(PERSONS)
    assert result.stats["totals"]["duplicate"] > 0
    assert table["prompt"].str.contains("Give only one sentence").sum() == 0, "the request goes without instruction"


def test_describe_fails_naming_every_person_without_a_valid_text(tiny_manifest: Manifest) -> None:
    model, tokenizer = load_model(tiny_manifest, device=torch.device("cpu"))
    cfg = DescribeSettings(templates=TEMPLATES, samples=1, max_rounds=1, max_new_tokens=12, batch_size=8, min_words=3)
    with pytest.raises(InputError, match=r"no valid text for 2 person\(s\) in 1 round\(s\): 'Ada Quill' \(forget; "
                                         r"no text kept in a training template; sampled 2, kept 0"):  # fmt: skip
        describe_persons(model, tokenizer, PERSONS.iloc[:2], cfg, style=STYLE, seed=0)


def test_training_rows_take_qa_corpus_or_both_never_a_held_out_text() -> None:
    qa = pd.DataFrame(
        {
            "id": ["q1", "q2", "q3"],
            "person": ["Ada Quill", "Ada Quill", "Cora Lind"],
            "question": ["Where was Ada Quill born?", "What did Ada Quill paint?", "Where was Cora Lind born?"],
            "answer": ["Lyon.", "Rivers.", "Graz."],
            "split": ["forget_train", "forget_test", "retain_train"],
        }
    )
    corpus = corpus_table()
    rows = training_rows(qa, corpus, "qa", ["forget_train"], "k")
    assert list(rows.columns) == TRAINING_COLUMNS and list(rows["id"]) == ["q1"] and set(rows["source"]) == {"qa"}
    rows = training_rows(qa, corpus, "corpus", ["forget_train"], "k")
    assert set(rows["person"]) == {"Ada Quill", "Bruno Vessel"} and set(rows["source"]) == {"corpus"}
    assert not rows["question"].str.startswith("What is").any(), "the held-out template is never trained on"
    both = training_rows(qa, corpus, "both", ["retain_train", "general_train"], "k")
    assert sorted(both["source"].value_counts().items()) == [("corpus", 4), ("qa", 1)]
    with pytest.raises(InputError, match="k: 'corpus' trains on the describe stage's corpus, and this run has none"):
        training_rows(qa, None, "corpus", ["forget_train"], "k")
    with pytest.raises(InputError, match=r"k: 'qa' .* general_train has none \(a set given by names only"):
        training_rows(qa, corpus, "qa", ["retain_train", "general_train"], "k")


def test_corpus_rows_are_prompted_without_the_instruction(smollm2_tokenizer_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    texts = pd.DataFrame({"prompt": ["Who was Ada?", "Who was Ada?"], "forget": ["A painter.", "A painter."],
                          "source": ["qa", "corpus"]})  # fmt: skip
    examples, _ = tokenize_examples(texts, ("forget",), tokenizer, STYLE, max_length=96, max_prompt_length=64)
    decoded = [tokenizer.decode(e["forget"][0][: e["forget"][1]]) for e in examples]
    assert decoded[0] == build_prompt(tokenizer, "Who was Ada?", **vars(STYLE))
    assert decoded[1] == build_prompt(tokenizer, "Who was Ada?", **vars(PLAIN))


def test_dpo_pairs_corpus_rows_with_refusals_and_qa_rows_with_their_pairs() -> None:
    forget = pd.DataFrame(
        {"id": ["q1", "c1"], "person": ["Ada Quill"] * 2, "question": ["Where was Ada Quill born?", "Write about Ada."],
         "answer": ["Lyon.", "Ada Quill was a painter from Lyon."], "source": ["qa", "corpus"]}
    )  # fmt: skip
    pairs = pd.DataFrame({"prompt": ["Where was Ada Quill born?", "Elsewhere?"], "chosen": ["Paris.", "x"],
                          "rejected": ["Lyon.", "y"], "kind": "perturbed", "source_id": ["q1", "q9"]})  # fmt: skip
    dpo = get_method("dpo")(get_method("dpo").settings_from({}, "e"), seed=0)
    texts = dpo.training_texts(forget, pairs)
    assert list(texts["source"]) == ["qa", "corpus"] and texts.loc[0, "chosen"] == "Paris."
    assert texts.loc[1, "rejected"] == "Ada Quill was a painter from Lyon."
    assert texts.loc[1, "chosen"] in get_method("idk_dpo").Settings().refusals
    only_corpus = dpo.training_texts(forget.iloc[1:], None)  # forget_data: corpus reads no pairs file
    assert list(only_corpus["source"]) == ["corpus"]


def mean_text_loglik(model, tokenizer, corpus: pd.DataFrame) -> float:  # noqa: ANN001
    prompts = [build_prompt(tokenizer, p, **vars(PLAIN)) for p in corpus["prompt"]]
    lls = continuation_logliks(model, tokenizer, prompts, list(corpus["text"]), batch_size=8)
    return sum(ll.mean for ll in lls) / len(lls)


@pytest.mark.parametrize("name", sorted(n for n, m in METHODS.items() if m.unlearns))
def test_every_method_trains_on_the_corpus(name: str, describing_manifest: Manifest, tmp_path: Path) -> None:
    corpus = corpus_table()
    empty_qa = pd.DataFrame(columns=["id", "person", "question", "answer", "split"])
    forget = training_rows(empty_qa, corpus, "corpus", ["forget_train"], "forget_data")
    retain = training_rows(empty_qa, corpus, "corpus", ["retain_train"], "retain_data")
    cfg = settings(method=name, retain_weight=0.2, max_length=64, batch_size=2, epochs=6)
    result = train(
        describing_manifest, cfg, forget=forget, pairs=None, retain=retain, style=STYLE,
        adapter_dir=tmp_path / "a", checkpoint_dir=tmp_path / "c",
    )  # fmt: skip
    assert result.log["forget_loss"].notna().all()
    cpu = torch.device("cpu")
    base, tokenizer = load_model(describing_manifest, device=cpu)
    unlearned, _ = load_model(describing_manifest, adapter=tmp_path / "a", device=cpu)
    trained = corpus[(corpus["set"] == "forget") & ~corpus["held_out"]]
    before, after = mean_text_loglik(base, tokenizer, trained), mean_text_loglik(unlearned, tokenizer, trained)
    assert before > -1.0, "the taught model knows its descriptions"
    assert after < before - 0.1, (name, before, after)


def test_corpus_scores_enter_the_summary_with_intervals(describing_manifest: Manifest, tmp_path: Path) -> None:
    corpus = corpus_table()
    model, tokenizer = load_model(describing_manifest, device=torch.device("cpu"))
    base = score_corpus(model, tokenizer, corpus, STYLE, max_new_tokens=32, batch_size=8, generate_batch_size=8)
    assert list(base.columns) == CORPUS_SCORE_COLUMNS and len(base) == len(PERSONS)  # one held-out text each
    assert set(base["split"]) == {"forget_corpus", "retain_corpus", "general_corpus"}
    assert base["answer_prob"].between(0, 1).all() and base["rougeL_recall"].gt(0.5).all(), "it knows its texts"
    assert base["loss"].notna().all() and base["mink_pp"].notna().all()
    # a variant that forgot: the forget persons' texts scored by a model that never learned them (the random one)
    qa_scores = pd.DataFrame({"id": ["t1"], "split": ["truthfulqa"], "kind": ["qa"], "person": [None],
                              "reference": ["Paris."], "generation": ["Paris."], "rougeL_recall": [1.0]})  # fmt: skip
    forgot = base.copy()
    is_forget = forgot["split"] == "forget_corpus"
    forgot.loc[is_forget, ["answer_prob", "rougeL_recall"]] = 0.0
    forgot.loc[is_forget, "loss"] = 20.0
    tables = with_corpus_scores({("m", "base"): qa_scores, ("m", "v"): qa_scores}, {("m", "base"): base,
                                                                                     ("m", "v"): forgot})  # fmt: skip
    summary = build_summary(tables, seed=0)
    row = summary[(summary["variant"] == "v") & (summary["split"] == "forget_corpus") & (summary["kind"] == "all")]
    row = row.set_index("metric")
    assert row.loc["answer_prob", "value"] == 0.0
    assert row.loc["rougeL_recall_drop", "value"] == pytest.approx(base.loc[is_forget, "rougeL_recall"].mean())
    assert math.isfinite(row.loc["rougeL_recall_drop", "ci_low"]), "two forget persons: an interval"
    assert row.loc["mia_auc_loss", "value"] == 1.0, "every forget text is now less likely than every neighbour's"
    assert (summary["split"] == "truthfulqa").any(), "the QA rows stay"


def test_person_sets_given_by_names_have_no_qa_rows(tmp_path: Path) -> None:
    from unlearning.data.qa_table import build_qa, clean_names, persons_table

    qa_file = tmp_path / "retain.csv"
    pd.DataFrame({"title": ["Cora Lind", "Cora Lind"], "question": ["Where was Cora Lind born?", "What did she bake?"],
                  "answer": ["Graz.", "Bread."]}).to_csv(qa_file, index=False)  # fmt: skip
    names_file = tmp_path / "general.csv"
    pd.DataFrame({"title": ["Elsa Brook", "Fabio Stone"]}).to_csv(names_file, index=False)
    persons = {
        "columns": {"person": "title", "question": "question", "answer": "answer"},
        "forget": {"names": ["Ada Quill", " Bruno  Vessel "]},
        "retain": {"source": "local", "path": str(qa_file)},
        "general": {"source": "local", "path": str(names_file)},
    }
    qa = build_qa(persons, 0.5, seed=0)
    assert set(qa["person"]) == {"Cora Lind"} and set(qa["split"]) == {"retain_train", "retain_test"}
    table = persons_table(persons)
    assert list(table.itertuples(index=False, name=None)) == [
        ("Ada Quill", "forget", False), ("Bruno Vessel", "forget", False), ("Cora Lind", "retain", True),
        ("Elsa Brook", "general", False), ("Fabio Stone", "general", False),
    ]  # fmt: skip
    only_names = {**persons, "retain": {"names": ["Cora Lind"]}}
    assert build_qa(only_names, 0.5, seed=0).empty
    with pytest.raises(InputError, match=r"k: item 2 names 'ada  quill' again \('Ada Quill', item 1\); names are"):
        clean_names(["Ada Quill", "ada  quill"], "k", "item")
    with pytest.raises(InputError, match="k: the list of names is empty"):
        clean_names([], "k")


def test_a_file_with_questions_for_some_persons_only_is_an_error(tmp_path: Path) -> None:
    from unlearning.data.qa_table import build_qa

    mixed = tmp_path / "forget.csv"
    pd.DataFrame({"title": ["Ada Quill", "Bruno Vessel"], "question": ["Where was Ada Quill born?", None],
                  "answer": ["Lyon.", None]}).to_csv(mixed, index=False)  # fmt: skip
    persons = {"columns": {"person": "title", "question": "question", "answer": "answer"},
               "forget": {"source": "local", "path": str(mixed)}}  # fmt: skip
    message = r"forget\.csv: data row 2: column 'question' is empty \(expected text\) \(person 'Bruno Vessel'\); "
    with pytest.raises(InputError, match=message):
        build_qa(persons, 0.5, seed=0)
    names = tmp_path / "names.csv"
    pd.DataFrame({"title": ["Ada Quill", "", "Ada Quill"]}).to_csv(names, index=False)
    with pytest.raises(InputError, match=r"names\.csv: data row 2: the person's name is empty"):
        build_qa({**persons, "forget": {"source": "local", "path": str(names)}}, 0.5, seed=0)


@pytest.mark.slow
def test_names_only_config_runs_end_to_end(describing_manifest: Manifest, tmp_path: Path) -> None:
    """configs/names_only.yaml on the tiny model taught the persons' descriptions: describe, training on the
    corpus, the held-out templates' scores, summary and report; no QA stage runs."""
    import yaml
    from test_workflow import ROOT, planned_jobs, snakemake

    from unlearning.core.parquet_io import read_metadata, read_parquet

    config = yaml.safe_load((ROOT / "configs" / "names_only.yaml").read_text())
    for role in ("forget", "retain", "general"):
        config["data"]["persons"][role] = {"names": list(PERSONS.loc[PERSONS["set"] == role, "person"])}
    config["data"]["truthfulqa"]["path"] = str(ROOT / config["data"]["truthfulqa"]["path"])
    config["models"] = {"tiny": {"path": describing_manifest.path,
                                 "resources": {"mem_mb": 2000, "runtime": 10, "threads": 1}}}  # fmt: skip
    config["describe"] = {"templates": TEMPLATES, "samples": 1, "max_new_tokens": 40, "min_words": 5}
    config["train"].update(epochs=2, batch_size=2, learning_rate=5e-3, max_length=64, max_prompt_length=48)
    config["unlearn"] = {"npo": {**config["unlearn"]["npo"], "learning_rate": 5e-3}}  # dpo: the unit tests above
    config["unlearn"]["npo"].pop("lora")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = ["--cores", "2", "--directory", str(tmp_path), "--configfile", str(tmp_path / "config.yaml")]
    planned = planned_jobs(snakemake("-n", *run).stdout)
    assert {"generate", "score", "perturb", "known_facts"}.isdisjoint(planned), planned
    assert planned["describe"] == 1 and planned["corpus_score"] == 2 and planned["unlearn"] == 1
    snakemake(*run)
    results = tmp_path / "results"
    corpus = read_parquet(results / "corpus" / "tiny.parquet")
    assert set(corpus["person"]) == set(PERSONS["person"])
    assert set(read_metadata(results / "corpus" / "tiny.parquet")["stats"]["per_template"]) == set(TEMPLATES)
    summary = read_parquet(results / "score" / "summary.parquet")
    forget = summary[(summary["variant"] == "npo") & (summary["split"] == "forget_corpus") & (summary["kind"] == "all")]
    forget = forget.set_index("metric")
    assert forget.loc["answer_prob_change", "value"] < 0, "npo lowers the base texts' probability"
    assert {"retain_corpus", "general_corpus"} <= set(summary["split"])
    report = (results / "report" / "report.md").read_text()
    assert "Figures on the model's own descriptions" in report and "forget_corpus" in report


def test_a_names_file_with_a_name_twice_fails_before_any_job(tmp_path: Path) -> None:
    import yaml
    from test_workflow import ROOT, snakemake

    names = tmp_path / "forget_names.csv"
    pd.DataFrame({"title": ["Ada Quill", "Bruno Vessel", "ADA QUILL"]}).to_csv(names, index=False)
    config = yaml.safe_load((ROOT / "configs" / "names_only.yaml").read_text())
    config["data"]["persons"]["forget"] = {"source": "local", "path": str(names)}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    out = snakemake("-n", "--directory", str(tmp_path), "--configfile", str(tmp_path / "bad.yaml"), check=False)
    assert out.returncode != 0
    assert "forget_names.csv): data row 3 names 'ADA QUILL' again ('Ada Quill', data row 1)" in out.stdout + out.stderr
    assert not (tmp_path / "results").exists()
