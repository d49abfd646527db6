"""Files and configs people actually have (issue 18): each case is the input that went wrong, and the expected value
is the right behaviour. Persons are invented."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from unlearning.config.preflight import check_config, configured_splits, retain_problem
from unlearning.core.errors import InputError, capped
from unlearning.core.job import stage
from unlearning.data.qa_table import (
    OFFICIAL_TRUTHFULQA_COLUMNS,
    WPU_COLUMNS,
    build_qa,
    build_truthfulqa,
    parse_printed_list,
)
from unlearning.data.sources import load_local
from unlearning.models import devices
from unlearning.models.checkpoints import import_model
from unlearning.models.devices import assigned_gpus, pick_device

ROOT = Path(__file__).resolve().parents[1]
HUB_TRUTHFULQA_COLUMNS = {c: c for c in ("question", "best_answer", "correct_answers", "incorrect_answers", "category")}


def persons_spec(forget: Path, **others: Path) -> dict:
    return {
        "columns": WPU_COLUMNS,
        "forget": {"source": "local", "path": str(forget)},
        **{role: {"source": "local", "path": str(path)} for role, path in others.items()},
    }


# ------------------------------------------------------------------------ 1. list columns printed by to_csv


@pytest.fixture
def truthfulqa_rows(shared_data: Path) -> pd.DataFrame:
    """Five real TruthfulQA items with list-valued answers, as the hub's generation config has them."""
    official = pd.read_csv(shared_data / "truthfulqa" / "TruthfulQA.csv", dtype=str, keep_default_na=False).head(5)
    return pd.DataFrame(
        {
            "category": official["Category"],
            "question": official["Question"],
            "best_answer": official["Best Answer"],
            "correct_answers": [[a.strip() for a in s.split(";")] for s in official["Correct Answers"]],
            "incorrect_answers": [[a.strip() for a in s.split(";")] for s in official["Incorrect Answers"]],
        }
    )


@pytest.mark.parametrize("writer", ["datasets", "pandas"])
def test_truthfulqa_lists_written_by_to_csv_are_parsed(truthfulqa_rows: pd.DataFrame, tmp_path: Path, writer) -> None:
    path = tmp_path / "truthfulqa.csv"
    if writer == "datasets":  # numpy's printed form: ['a' 'b'], no commas, wrapped over lines
        datasets.Dataset.from_pandas(truthfulqa_rows).to_csv(path, index=False)
        assert re.search(r"'\n '", path.read_text()), "the export wraps a list over lines"
    else:  # Python's printed form: ['a', 'b']
        truthfulqa_rows.to_csv(path, index=False)
    tqa = build_truthfulqa({"source": "local", "path": str(path), "columns": HUB_TRUTHFULQA_COLUMNS}, 0)
    expected = truthfulqa_rows.set_index("question")
    for row in tqa.itertuples():
        assert list(row.correct_answers) == expected.at[row.question, "correct_answers"]
        assert list(row.incorrect_answers) == expected.at[row.question, "incorrect_answers"]
        assert len(row.incorrect_answers) > 1


def test_printed_list_forms() -> None:
    assert parse_printed_list("['Yes, goldfish can remember things for months'\n 'Goldfish have memories']") == [
        "Yes, goldfish can remember things for months",
        "Goldfish have memories",
    ]
    assert parse_printed_list("""['a; b', "it's"]""") == ["a; b", "it's"]
    assert parse_printed_list('["JSON", "list"]') == ["JSON", "list"]
    for not_a_list in ("[citation needed]", "['a' + 'b']", "['a', 1]", "['unterminated", "plain text"):
        assert parse_printed_list(not_a_list) is None


def test_unreadable_printed_list_names_the_column_and_the_expected_form(tmp_path: Path) -> None:
    path = tmp_path / "tqa.csv"
    pd.DataFrame(
        {"question": ["Q?"], "best_answer": ["B"], "correct_answers": ["[B, C]"], "incorrect_answers": ["X; Y"]}
    ).to_csv(path, index=False)
    with pytest.raises(InputError, match=r"tqa.csv: data row 1: column 'correct_answers' holds '\[B, C\]'.*';'"):
        columns = {k: v for k, v in HUB_TRUTHFULQA_COLUMNS.items() if k != "category"}
        build_truthfulqa({"source": "local", "path": str(path), "columns": columns}, 0)


def test_official_semicolon_lists_still_split(tmp_path: Path) -> None:
    path = tmp_path / "tqa.csv"
    pd.DataFrame(
        {"Question": ["Q?"], "Best Answer": ["B"], "Correct Answers": ["B; C"], "Incorrect Answers": ["X; Y; Z"]}
    ).to_csv(path, index=False)
    columns = {k: v for k, v in OFFICIAL_TRUTHFULQA_COLUMNS.items() if k != "category"}
    tqa = build_truthfulqa({"source": "local", "path": str(path), "columns": columns}, 0)
    assert list(tqa.at[0, "correct_answers"]) == ["B", "C"] and list(tqa.at[0, "incorrect_answers"]) == ["X", "Y", "Z"]


# ------------------------------------------------------- 2 and 8. every text cell as written, "None" included

AS_WRITTEN = ["1902", "007", "1.80", "1971", "None", "NA", "N/A", "null", "nan", "NaN", "#N/A", "TRUE", "-0"]


def test_csv_cells_are_read_as_written(tmp_path: Path) -> None:
    path = tmp_path / "forget.csv"
    lines = ["title,question,answer"] + [f"Hollis Brandt,Question {i}?,{a}" for i, a in enumerate(AS_WRITTEN)]
    path.write_text("\n".join(lines) + "\n")
    qa = build_qa(persons_spec(path), 0.2, 0)
    assert sorted(qa["answer"]) == sorted(AS_WRITTEN)
    assert qa["answer"].map(type).eq(str).all()


def test_really_empty_csv_cell_is_still_an_error(tmp_path: Path) -> None:
    path = tmp_path / "forget.csv"
    path.write_text('title,question,answer\nHollis Brandt,How many children?,None\nHollis Brandt,Born?,""\n')
    with pytest.raises(InputError, match=r"forget.csv: data row 2: column 'answer' is empty"):
        build_qa(persons_spec(path), 0.2, 0)


def test_tofu_style_json_lines_load_as_written(tmp_path: Path) -> None:
    """TOFU's files are JSON Lines with extra (list) fields; numbers there are kept as the text written."""
    path = tmp_path / "forget.jsonl"
    records = [
        '{"title": "Hollis Brandt", "question": "When was he born?", "answer": 1902, "perturbed_answer": ["1903"]}',
        '{"title": "Hollis Brandt", "question": "How tall was he?", "answer": 1.80, "paraphrased_answer": "1.8 m"}',
        '{"title": "Hollis Brandt", "question": "How many children?", "answer": "None", "perturbed_answer": []}',
        '{"title": "Hollis Brandt", "question": "Agent number?", "answer": "007"}',
    ]
    path.write_text("\n".join(records) + "\n")
    qa = build_qa(persons_spec(path), 0.0, 0)
    assert sorted(qa["answer"]) == ["007", "1.80", "1902", "None"]
    assert load_local(path).shape == (4, 5)


@pytest.mark.parametrize("layout", ["records", "columns", "lines_in_json"])
def test_json_layouts_keep_numbers_as_written(tmp_path: Path, layout: str) -> None:
    rows = [{"title": "Ada Quill", "question": f"Q{i}?", "answer": a} for i, a in enumerate(["1902", "1.80"])]
    path = tmp_path / "forget.json"
    if layout == "records":
        path.write_text('[{"title": "Ada Quill", "question": "Q0?", "answer": 1902},'
                        ' {"title": "Ada Quill", "question": "Q1?", "answer": 1.80}]')  # fmt: skip
    elif layout == "columns":  # DataFrame.to_json's default
        pd.DataFrame(rows).to_json(path)
    else:
        path.write_text("\n".join(json.dumps(r) for r in rows))
    assert sorted(build_qa(persons_spec(path), 0.0, 0)["answer"]) == ["1.80", "1902"]


def test_broken_json_lines_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "forget.jsonl"
    path.write_text('{"title": "A", "question": "Q?", "answer": "x"}\n{"title": "A", "question": \n')
    with pytest.raises(InputError, match=r"forget.jsonl: line 2 is not valid JSON"):
        load_local(path)


# ------------------------------------------------------------------------ 9. two roles mapped to one column


def test_two_roles_on_one_column_name_the_mapping(shared_data: Path, tmp_path: Path) -> None:
    wpu = pd.read_csv(shared_data / "wpu_perturbed" / "llm_generated_random_labels.csv", dtype=str)
    path = tmp_path / "forget.csv"
    wpu[wpu["is_correct"] == "True"].head(20)[["question", "answer"]].to_csv(path, index=False)
    spec = persons_spec(path)
    spec["forget"]["columns"] = {"person": "question"}
    with pytest.raises(InputError, match=r"forget.csv: the `columns:` mapping .*column 'question' is mapped to "
                                         r"person and question"):  # fmt: skip
        build_qa(spec, 0.2, 0)


# --------------------------------------------------------------------------- long name lists are capped


def test_a_hundred_conflicting_persons_are_capped(tmp_path: Path) -> None:
    rows = pd.DataFrame(
        {"title": [f"Person {i:03d}" for i in range(100)], "question": [f"Q{i}?" for i in range(100)], "answer": "A"}
    )
    rows.to_csv(tmp_path / "forget.csv", index=False)
    rows.assign(question=lambda d: "Other " + d["question"]).to_csv(tmp_path / "retain.csv", index=False)
    with pytest.raises(InputError) as err:
        build_qa(persons_spec(tmp_path / "forget.csv", retain=tmp_path / "retain.csv"), 0.2, 0)
    message = str(err.value)
    assert "'Person 009', ... and 90 more (100 in all)" in message and "Person 010" not in message
    assert len(message) < 500
    assert capped(["a", "b"]) == "['a', 'b']"


# --------------------------------------------------------------------------- 4. in unlearning/scoring/metrics.py
# (see tests/test_metrics.py: test_identical_texts_score_one_in_any_script and the tokenisation tests)


# --------------------------------------------------------- 10. pickle weights beside a stray adapter file


def test_pickle_weights_with_a_stray_adapter_safetensors_are_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(tiny_model_dir / "config.json", folder / "config.json")
    torch.save({"w": torch.zeros(1)}, folder / "pytorch_model.bin")
    (folder / "adapter_model.safetensors").write_bytes(b"stray")
    with pytest.raises(InputError, match=r"only pickle weights \(\['pytorch_model.bin'\]\).*safetensors"):
        import_model("m", {"path": str(folder)}, tmp_path / "out")


def test_shards_without_index_and_adapter_folders_are_explained(tiny_model_dir: Path, tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    shutil.copy(tiny_model_dir / "config.json", shards / "config.json")
    (shards / "model-00001-of-00002.safetensors").write_bytes(b"x")
    with pytest.raises(InputError, match="no model.safetensors.index.json"):
        import_model("m", {"path": str(shards)}, tmp_path / "out")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "config.json").write_text("{}")
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_bytes(b"x")
    with pytest.raises(InputError, match="has no weights.*looks like a LoRA adapter"):
        import_model("m", {"path": str(adapter)}, tmp_path / "out")


# ------------------------------------------------------------- GPU warning only for a GPU really assigned

SCHEDULER_VARIABLES = devices.GPU_ASSIGNMENT_VARIABLES


@pytest.mark.parametrize(
    ("environ", "warned"),
    [
        ({}, False),  # a workstation without CUDA: the config asks for a GPU, nobody assigned one
        ({"CUDA_VISIBLE_DEVICES": ""}, False),
        ({"CUDA_VISIBLE_DEVICES": "-1"}, False),
        ({"SLURM_GPUS_ON_NODE": "0"}, False),
        ({"CUDA_VISIBLE_DEVICES": "0"}, True),
        ({"SLURM_JOB_GPUS": "3"}, True),
    ],
)
def test_gpu_warning_only_when_a_gpu_was_assigned(monkeypatch: pytest.MonkeyPatch, environ: dict, warned: bool):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in SCHEDULER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert pick_device(requested_gpu=True) == torch.device("cpu")
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert bool(messages) == warned, messages
    if warned:
        assert "assigned a GPU" in messages[0] and next(iter(environ)) in messages[0]
    assert bool(assigned_gpus(environ)) == warned


# -------------------------------------------------------------- 11. every failure reaches the rule log


def run_stage(tmp_path: Path, body) -> tuple[str, SystemExit]:  # noqa: ANN001
    log = tmp_path / "logs" / "rule.log"
    with pytest.raises(SystemExit) as exit_info, stage("some_rule", [str(log)]):
        body()
    return log.read_text(), exit_info.value


def test_unexpected_error_is_logged_with_its_traceback(tmp_path: Path) -> None:
    def body() -> None:
        {"a": 1}["person"]

    text, exit_ = run_stage(tmp_path, body)
    assert "some_rule failed: KeyError: 'person'" in text
    assert "Traceback (most recent call last)" in text and 'in body\n    {"a": 1}["person"]' in text
    assert exit_.code not in (0, None)


def test_failing_import_is_logged(tmp_path: Path) -> None:
    def body() -> None:
        import unlearning.no_such_module  # noqa: F401

    text, _ = run_stage(tmp_path, body)
    assert "ModuleNotFoundError" in text and "no_such_module" in text and "Traceback" in text


def test_input_error_stays_one_line(tmp_path: Path) -> None:
    def body() -> None:
        raise InputError("forget.csv: data row 2: column 'answer' is empty (expected text)")

    text, exit_ = run_stage(tmp_path, body)
    assert text.count("\n") == 1 and text.rstrip().endswith("column 'answer' is empty (expected text)")
    assert "Traceback" not in text and exit_.code not in (0, None)


def test_sigterm_is_logged(tmp_path: Path) -> None:
    previous = signal.getsignal(signal.SIGTERM)
    text, exit_ = run_stage(tmp_path, lambda: os.kill(os.getpid(), signal.SIGTERM))
    assert "some_rule stopped by SIGTERM" in text and exit_.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == previous


ENTRY_SCRIPTS = sorted((ROOT / "workflow_scripts").glob("*.py"))


@pytest.mark.parametrize("script", ENTRY_SCRIPTS, ids=lambda p: p.name)
def test_entry_scripts_import_their_checkout_first_and_the_library_inside_the_stage(script: Path) -> None:
    """The checkout's folder goes first on sys.path before `unlearning` is imported (item 6), and the only
    top-level library import is unlearning.core.job, so that any other failing import lands in the rule log (item
    11)."""
    tree = ast.parse(script.read_text())
    top = tree.body
    bootstrap = "sys.path.insert(0, str(Path(__file__).resolve().parent))"
    inserts = [i for i, node in enumerate(top) if isinstance(node, ast.Expr) and ast.unparse(node) == bootstrap]
    library = [
        (i, node.module)
        for i, node in enumerate(top)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("unlearning")
    ]
    assert inserts and library and all(i > inserts[0] for i, _ in library)
    assert [module for _, module in library] == ["unlearning.core.job"]
    stages = [node for node in top if isinstance(node, ast.With) and ast.unparse(node.items[0]).startswith("stage(")]
    assert len(stages) == 1 and stages[0] is top[-1], "everything after the imports runs inside `with stage(...)`"


# ------------------------------------------------------- 6. jobs import their own checkout's `unlearning`


def snakemake_run(snakefile: Path, workdir: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Snakemake run from inside ``workdir``, as a user runs it."""
    environ = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
        env=environ,
    )


def copy_checkout(dest: Path) -> Path:
    dest.mkdir()
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__")
    for name in ("rules", "schemas", "workflow_scripts", "profiles", "envs"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    return dest


def test_jobs_import_their_own_checkout_with_another_on_the_path(tmp_path: Path) -> None:
    """Checkout `other` comes first on the path (PYTHONPATH outranks even an editable install's .pth entry) and
    its package fails on import; a run of checkout `mine` must not touch it, in the DAG or in its script jobs."""
    mine, other = copy_checkout(tmp_path / "mine"), copy_checkout(tmp_path / "other")
    with (other / "workflow_scripts" / "unlearning" / "__init__.py").open("a") as f:
        f.write('\nraise ImportError("imported the other checkout")\n')
    workdir = tmp_path / "work"
    workdir.mkdir()
    out = snakemake_run(
        mine / "Snakefile",
        workdir,
        "results/data/qa.parquet",
        "--cores",
        "1",
        env={"PYTHONPATH": str(other / "workflow_scripts")},
    )
    text = out.stdout + out.stderr + (workdir / "logs" / "prepare_data.log").read_text()
    assert out.returncode == 0, text[-3000:]
    assert "imported the other checkout" not in text
    assert len(pd.read_parquet(workdir / "results" / "data" / "qa.parquet")) > 0


def test_a_real_job_failure_is_in_its_rule_log(tmp_path: Path) -> None:
    """A job whose library import fails (a broken dependency, here a planted error) leaves the traceback in the
    log file Snakemake points to, not only on the job's stderr."""
    checkout = copy_checkout(tmp_path / "checkout")
    with (checkout / "workflow_scripts" / "unlearning" / "data" / "qa_table.py").open("a") as f:
        f.write('\nraise RuntimeError("a broken dependency")\n')
    workdir = tmp_path / "work"
    workdir.mkdir()
    out = snakemake_run(checkout / "Snakefile", workdir, "results/data/qa.parquet", "--cores", "1")
    assert out.returncode != 0
    log = (workdir / "logs" / "prepare_data.log").read_text()
    assert "prepare_data failed: RuntimeError: a broken dependency" in log
    assert "Traceback (most recent call last)" in log and 'qa_table.py", line' in log


# ---------------------------------------------------------- 12. contradictions stop the run before any job


def embedded_config() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_embedded_and_paper_configs_have_no_contradictions() -> None:
    assert check_config(embedded_config()) == []
    paper = yaml.safe_load((ROOT / "configs" / "paper.yaml").read_text())
    assert check_config(paper) == []


def test_retain_weight_without_retain_data_is_an_error_naming_the_keys() -> None:
    config = embedded_config()
    del config["data"]["persons"]["retain"], config["data"]["persons"]["general"]
    with pytest.raises(InputError) as err:
        check_config(config)
    message = str(err.value)
    assert re.search(r"train.retain_weight is 1 but train.retain_split \['retain(_train)?', 'general(_train)?'\] has "
                     r"no data", message)  # fmt: skip
    assert "data.persons.general" in message and "data.persons.retain" in message
    # the default's npo entry sets its own weight, so its error names that entry but the split's layer (train)
    assert re.search(r"unlearn.npo.retain_weight is 3 but train.retain_split \['retain(_train)?', 'general(_train)?'\]",
                     message)  # fmt: skip
    config["train"]["retain_weight"] = 0.0
    with pytest.raises(InputError, match="unlearn.npo.retain_weight is 3") as err:
        check_config(config)
    assert "train.retain_weight is" not in str(err.value)
    config["unlearn"]["npo"]["retain_weight"] = 0.0
    assert check_config(config) == []


def test_part_of_the_retain_split_missing_is_a_warning() -> None:
    config = embedded_config()
    del config["data"]["persons"]["general"]
    [warning] = check_config(config)  # once: the npo entry inherits the retain split from train:
    assert re.search(r"train.retain_split names \['general(_train)?'\]", warning)
    assert "data.persons.general not set" in warning


def test_a_perturber_name_close_to_a_model_key_is_a_warning() -> None:
    config = embedded_config()
    config["perturb"]["model"] = "smolm2"
    [warning] = check_config(config)
    assert "perturb.model 'smolm2' is not a key of models: (did you mean 'smollm2'?)" in warning


def test_a_model_override_is_named_by_its_own_key() -> None:
    config = embedded_config()
    del config["data"]["persons"]["retain"], config["data"]["persons"]["general"]
    config["train"]["retain_weight"] = 0.0
    config["models"]["smollm2"]["train"] = {"retain_weight": 0.5}
    with pytest.raises(InputError, match=r"models.smollm2.train.retain_weight is 0.5"):
        check_config(config)


def test_retain_check_reads_any_settings_mapping() -> None:
    """Callable per unlearning entry, and with the splits qa.parquet really holds."""
    settings = {"method": "npo", "retain_weight": 1.0, "retain_split": ["retain_train", "general_train"]}
    error, _ = retain_problem(settings, {"forget_train", "forget_test"}, "unlearn.npo")
    assert error.startswith("unlearn.npo.retain_weight is 1 but unlearn.npo.retain_split")
    assert retain_problem(settings, configured_splits({"retain": {"path": "r.csv"}, "general": None}), "x")[0] is None
    assert retain_problem({**settings, "retain_weight": 0}, set(), "x") == (None, None)


def test_each_unlearn_entry_is_checked_with_its_own_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """With issue 13's `unlearn:` entries (overrides of `train:`), each entry is checked and named."""
    from unlearning.config import settings as settings_module

    def unlearn_settings(config: dict, model: str, entry: str) -> dict:  # issue 13's: train < model < entry
        spec = {k: v for k, v in config["unlearn"][entry].items() if k != "method"}
        return {**config["train"], **(config["models"][model].get("train") or {}), **spec}

    def needs_pairs(config: dict, entry: str) -> bool:
        return config["unlearn"][entry]["method"] in ("dpo", "idk_dpo")

    monkeypatch.setattr(settings_module, "unlearn_settings", unlearn_settings, raising=False)
    monkeypatch.setattr(settings_module, "needs_pairs", needs_pairs, raising=False)
    config = embedded_config()
    del config["data"]["persons"]["retain"], config["data"]["persons"]["general"]
    config["train"]["retain_weight"] = 0.0
    config["perturb"].update(model=None, premade=None)  # no pair source: fine while no entry trains on pairs
    config["unlearn"] = {"ga": {"method": "grad_ascent"}, "npo": {"method": "npo", "retain_weight": 2.0}}
    with pytest.raises(InputError) as err:
        check_config(config)
    assert "unlearn.npo.retain_weight is 2" in str(err.value) and "perturb.model" not in str(err.value)
    config["unlearn"]["npo"]["retain_weight"] = 0.0
    assert check_config(config) == []
    config["unlearn"]["ga"].update(max_length=64, max_prompt_length=64)
    config["unlearn"]["dpo"] = {"method": "dpo"}
    with pytest.raises(InputError) as err:
        check_config(config)
    assert "nothing can make DPO pairs" in str(err.value)
    assert "unlearn.ga.max_prompt_length (64) must be below unlearn.ga.max_length (64)" in str(err.value)


@pytest.mark.parametrize(
    ("change", "keys"),
    [
        (lambda c: c["perturb"].update(model=None, premade=None), ["perturb.model", "perturb.premade"]),
        (lambda c: c["perturb"].update(template="{question} {answer}", template_file="t.txt"), ["perturb.template"]),
        # (train.dpo.max_* before issue 13, train.max_* after it; both are 256 / 128 in the embedded default)
        (lambda c: c["train"].get("dpo", c["train"]).update(max_prompt_length=256), ["max_prompt_length (256)"]),
        (lambda c: c["data"]["persons"]["columns"].update(answer="question"), ["data.persons.forget"]),
        (lambda c: c["data"]["truthfulqa"]["columns"].update(best_answer="Question"), ["data.truthfulqa"]),
    ],
)
def test_other_contradictions_name_their_keys(change, keys: list[str]) -> None:  # noqa: ANN001
    config = embedded_config()
    change(config)
    with pytest.raises(InputError) as err:
        check_config(config)
    assert all(key in str(err.value) for key in keys), str(err.value)


def test_contradiction_stops_snakemake_before_any_job(tmp_path: Path) -> None:
    config = embedded_config()
    del config["data"]["persons"]["retain"], config["data"]["persons"]["general"]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    out = snakemake_run(ROOT / "Snakefile", tmp_path, "-n", "--configfile", str(tmp_path / "c.yaml"))
    assert out.returncode != 0
    assert "train.retain_weight is 1 but train.retain_split" in out.stdout + out.stderr
    assert not (tmp_path / "results").exists()


# ------------------------------------ the configuration reference's single-target example with --configfile


def test_readme_single_target_example_works_with_configfile(tmp_path: Path) -> None:
    readme = (ROOT / "docs" / "configuration.md").read_text()  # the README's configuration reference
    [command] = [
        line.split("#")[0].split()
        for line in readme.splitlines()
        if line.startswith("snakemake ") and "--configfile" in line and "results/" in line
    ]
    assert command[0] == "snakemake"
    config_path = command[command.index("--configfile") + 1]
    (tmp_path / config_path).write_text((ROOT / "config.yaml").read_text())
    out = snakemake_run(ROOT / "Snakefile", tmp_path, *command[1:], "-n")
    assert out.returncode == 0, out.stdout[-2000:]
    target = next(arg for arg in command if arg.startswith("results/"))
    assert re.search(rf"output: {re.escape(target)}", out.stdout), out.stdout[-2000:]
    assert "Job stats" in out.stdout and "prepare_data" in out.stdout


def test_numpy_is_what_datasets_prints() -> None:
    """Guard for the to_csv case: numpy's str() of a string array is the commaless form parsed above."""
    assert parse_printed_list(str(np.array(["a b", "it's"]))) == ["a b", "it's"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_forget_file_without_a_mapped_column_is_an_error_before_any_job(tmp_path: Path, suffix: str) -> None:
    """The header alone is read when the workflow parses, so a file lacking a mapped column stops the run at once
    (not in prepare_data, after the DAG has started) and names the file, the column and what the file has."""
    table = pd.DataFrame({"title": ["Ada Lovelace"], "query": ["Where was Ada Lovelace born?"], "answer": ["London"]})
    forget = tmp_path / f"forget{suffix}"
    table.to_csv(forget, index=False) if suffix == ".csv" else table.to_parquet(forget)
    config = embedded_config()
    config["data"]["persons"]["forget"] = {"source": "local", "path": str(forget)}
    with pytest.raises(InputError) as err:
        check_config(config)
    assert (f"data.persons.forget ({forget}): missing column(s) 'question' (for question); the file has ['title', "
            "'query', 'answer']") in str(err.value)  # fmt: skip
    config["data"]["persons"]["forget"]["columns"] = {"question": "query"}  # this file's own name for it
    assert check_config(config) == []


def test_a_bad_forget_header_leaves_existing_results_alone(tmp_path: Path) -> None:
    """A real Snakemake run with that config fails at parse time: no job starts, the data it would rebuild stays."""
    forget = tmp_path / "forget.csv"
    forget.write_text("title,query,answer\nAda Lovelace,Where was Ada Lovelace born?,London\n")
    config = embedded_config()
    config["data"]["persons"]["forget"] = {"source": "local", "path": str(forget)}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    qa = tmp_path / "results" / "data" / "qa.parquet"
    qa.parent.mkdir(parents=True)
    qa.write_bytes(b"an earlier run's data")
    out = snakemake_run(
        ROOT / "Snakefile", tmp_path, "--configfile", "bad.yaml", "--cores", "1", "results/data/qa.parquet"
    )
    assert out.returncode != 0 and "missing column(s) 'question' (for question)" in out.stdout + out.stderr
    assert qa.read_bytes() == b"an earlier run's data" and not (tmp_path / "logs" / "prepare_data.log").exists()
