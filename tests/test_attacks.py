"""Export and attacks on real computation: a tiny Llama stored as a Q4_1 GGUF, imported, unlearned with LoRA,
exported back to GGUF and read back through the workflow's own import; the relearning and in-context attacks; the
summary's attack rows; quantization-aware LoRA; and the whole chain in a Snakemake run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import gguf
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from peft import get_peft_model
from test_training import FORGET, STYLE, settings
from test_workflow import ROOT, snakemake, tiny_config, tiny_model_that_knows

from unlearning.attacks import attack_entries, attack_runs
from unlearning.attacks.in_context import with_context
from unlearning.core.errors import InputError
from unlearning.core.parquet_io import read_parquet
from unlearning.export.gguf_file import check_writable, gguf_name, load_gguf_weights
from unlearning.export.variant import export_variant
from unlearning.models.checkpoints import Manifest, load_model
from unlearning.models.gguf import gguf_to_checkpoint
from unlearning.scoring.evaluation import build_summary, split_attacks
from unlearning.training.engine import lora_config, train
from unlearning.training.quantization_aware import enable, fake_quantize

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def imported(tiny_q4_gguf_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    """The Q4_1 GGUF imported as the workflow's import_model stage does."""
    out = tmp_path_factory.mktemp("imported")
    gguf_to_checkpoint(tiny_q4_gguf_file, out)
    return Manifest(name="tiny", path=str(out), source="gguf")


@pytest.fixture(scope="module")
def adapter(imported: Manifest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter that NPO trained on the imported model (a real unlearning run)."""
    out = tmp_path_factory.mktemp("adapter")
    train(imported, settings(method="npo", settings={}, learning_rate=2e-2, epochs=2), forget=FORGET,
          style=STYLE, adapter_dir=out / "a", checkpoint_dir=out / "c")  # fmt: skip
    return out / "a"


def _weights(manifest_dir: Path) -> dict[str, torch.Tensor]:
    model, _ = load_model(Manifest(name="x", path=str(manifest_dir), source="local"), device=CPU, dtype=torch.float32)
    return {k: v.clone() for k, v in model.state_dict().items()}


def _logits(model_dir: Path, text: str = "Who wrote Hamlet?") -> torch.Tensor:
    model, tokenizer = load_model(Manifest(name="x", path=str(model_dir), source="local"), device=CPU,
                                  dtype=torch.float32)  # fmt: skip
    with torch.no_grad():
        return model(**tokenizer(text, return_tensors="pt")).logits[0]


def _read_back(file: Path, out: Path) -> Path:
    gguf_to_checkpoint(file, out)  # the workflow's own GGUF import
    return out


def test_base_model_exported_unchanged_round_trips_to_the_source(
    imported: Manifest, tiny_q4_gguf_file: Path, tmp_path: Path
) -> None:
    stats = export_variant(imported, None, tmp_path, gguf={"path": str(tiny_q4_gguf_file)}, gguf_types=[None])
    assert stats["model.gguf"]["requantized"] == 0 and stats["model.gguf"]["changed_weights"] == 0
    source, exported = gguf.GGUFReader(tiny_q4_gguf_file), gguf.GGUFReader(tmp_path / "model.gguf")
    assert [(t.name, t.tensor_type) for t in exported.tensors] == [(t.name, t.tensor_type) for t in source.tensors]
    for a, b in zip(source.tensors, exported.tensors, strict=True):
        assert np.array_equal(a.data, b.data), a.name
    assert exported.fields["tokenizer.chat_template"].contents() == source.fields["tokenizer.chat_template"].contents()
    base = _weights(Path(imported.path))
    back = _weights(_read_back(tmp_path / "model.gguf", tmp_path / "back"))
    assert base.keys() == back.keys()
    assert all(torch.equal(base[k], back[k]) for k in base), "the dequantized source weights, exactly"


def test_unlearned_export_reads_back_with_the_merged_models_logits(
    imported: Manifest, adapter: Path, tiny_q4_gguf_file: Path, tmp_path: Path
) -> None:
    stats = export_variant(
        imported, adapter, tmp_path, gguf={"path": str(tiny_q4_gguf_file)}, gguf_types=[None, "Q8_0"]
    )
    assert json.loads((tmp_path / "export.json").read_text()) == stats
    q4, q8 = stats["model.gguf"], stats["model-Q8_0.gguf"]
    assert q4["requantized"] > 0 and 0 < q4["snapped_weights"] < q4["changed_weights"]
    # Q8_0's steps are 16x finer than Q4_1's: it keeps the change (this tiny run's change is large enough for
    # Q4_1 to keep it too; SmolLM2's shipped NPO change keeps 6%, docs/attacks.md)
    assert 0.95 < q8["kept_share"] < 1.05 and math.isfinite(q4["kept_share"])
    assert q4["tensor_types"] == {"Q4_1": 16, "F32": 5}  # the source's types, tensor by tensor
    assert q8["tensor_types"] == {"Q8_0": 16, "F32": 5}
    merged = _logits(tmp_path / "merged")
    base = _logits(Path(imported.path))
    unlearning = (merged - base).abs().max().item()
    assert unlearning > 1e-2, "the adapter changes the logits"
    # Q8_0 keeps the change: read back, the logits are the merged model's within Q8_0's rounding (which would be
    # far off if a q/k permutation or a tensor name were wrong)
    q8_back = _logits(_read_back(tmp_path / "model-Q8_0.gguf", tmp_path / "q8"))
    assert (q8_back - merged).abs().max().item() < 0.1 * unlearning
    # Q4_1: every weight read back is the gguf package's Q4_1 rounding of the merged weight, no more
    merged_w = _weights(tmp_path / "merged")
    q4_w = _weights(_read_back(tmp_path / "model.gguf", tmp_path / "q4"))
    name = "model.layers.0.mlp.down_proj.weight"
    assert torch.equal(q4_w[name], fake_quantize(merged_w[name], "Q4_1"))
    # the quantization attack's faster read-back gives transformers' import's weights exactly
    model, _ = load_model(imported, device=CPU, dtype=torch.float32)
    assert load_gguf_weights(model, tmp_path / "model.gguf") == 21
    assert all(torch.equal(v, q4_w[k]) for k, v in model.state_dict().items())


def test_export_rejects_types_the_gguf_package_cannot_write() -> None:
    with pytest.raises(InputError, match=r"attacks\.q\.gguf_type: GGUF type 'Q4_K' cannot be written .*Q8_0"):
        check_writable("Q4_K", "attacks.q.gguf_type")
    assert gguf_name(None) == "model.gguf" and gguf_name("Q8_0") == "model-Q8_0.gguf"


def _config(**attacks: dict) -> dict:
    return {"models": {"m": {"gguf": {"path": "m.gguf"}}}, "attacks": attacks, "export": {"gguf_type": None}}


def test_attack_entries_resolve_kinds_and_reject_bad_ones() -> None:
    entries = attack_entries(_config(quantization={}, q8={"attack": "quantization", "gguf_type": "Q8_0"},
                                     control={"attack": "relearning", "data": "general_train"}))  # fmt: skip
    assert entries["q8"] == {"attack": "quantization", "gguf_type": "Q8_0"}
    assert entries["control"]["data"] == "general_train" and entries["control"]["r"] == 8
    runs = attack_runs(_config(quantization={}, in_context={}), ["m"], ["base", "npo"])
    assert runs == [("m", "base", "in_context"), ("m", "npo", "quantization"), ("m", "npo", "in_context")]
    with pytest.raises(InputError, match=r"attacks\.x: unknown attack 'jailbreak'; registered: in_context, "):
        attack_entries(_config(x={"attack": "jailbreak"}))
    with pytest.raises(InputError, match=r"attacks\.relearning: unknown key\(s\) steps for attack 'relearning'"):
        attack_entries(_config(relearning={"steps": 3}))
    with pytest.raises(InputError, match=r"did you mean 'epochs' for 'epoch'\?"):
        attack_entries(_config(relearning={"epoch": 3}))
    with pytest.raises(InputError, match=r"attacks\.relearning\.data: 'forget_test' is not a training split"):
        attack_entries(_config(relearning={"data": "forget_test"}))
    not_gguf = {"models": {"hub": {"path": "org/model"}}, "attacks": {"quantization": {}}}
    with pytest.raises(InputError, match=r"model hub was not imported from a GGUF file"):
        attack_entries(not_gguf)


def test_bad_attack_config_fails_before_any_job(tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["attacks"] = {"quantization": {"gguf_type": "Q4_K"}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    out = snakemake("-n", "--directory", str(tmp_path), "--configfile", str(tmp_path / "bad.yaml"), check=False)
    assert out.returncode != 0 and "GGUF type 'Q4_K' cannot be written" in out.stdout + out.stderr
    assert not (tmp_path / "results").exists()


def test_in_context_prompt_holds_the_persons_training_facts() -> None:
    qa = pd.DataFrame({
        "id": ["a1", "a2", "b1"], "split": ["forget_train", "forget_test", "retain_test"], "kind": "qa",
        "person": ["Ann", "Ann", "Bob"], "question": ["Where was Ann born?", "What did Ann write?", "Who is Bob?"],
        "answer": ["Oslo", "Poems", "A painter"],
    })  # fmt: skip
    asked, bare = with_context(qa[qa["split"].str.endswith("_test")].reset_index(drop=True), qa)
    assert asked["question"][0] == "Facts about Ann:\nWhere was Ann born? Oslo\n\nWhat did Ann write?"
    assert asked["question"][1] == "Who is Bob?" and bare == 1


def _scores(ids: list[str], splits: list[str], persons: list[str], recall: list[float]) -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame({
        "id": ids, "split": splits, "kind": "qa", "person": persons, "question": "q", "reference": "r",
        "generation": "g", "new_tokens": 1, "rougeL_recall": recall, "rougeL_f1": recall, "rouge1_recall": recall,
        "bleu": 0.0, "degenerate": False, "answer_prob": 0.5, "mc1": math.nan, "mc2": math.nan,
        "perplexity": [5.0] * n,
    })  # fmt: skip


def test_summary_sets_attacked_runs_apart_with_their_intervals() -> None:
    persons = [f"p{i}" for i in range(6)]
    ids = [f"f{i}" for i in range(6)] + [f"r{i}" for i in range(6)] + ["t0"]
    splits = ["forget_test"] * 6 + ["retain_test"] * 6 + ["forget_train"]
    who = persons + persons + ["p0"]
    base = _scores(ids, splits, who, [1.0] * 13)
    npo = _scores(ids, splits, who, [0.0] * 6 + [1.0] * 7)
    attacked = _scores(ids[:12], splits[:12], who[:12], [1.0] * 6 + [1.0] * 6)
    known = {"m": pd.DataFrame({"id": ids, "known": True})}
    summary = build_summary({("m", "base"): base, ("m", "npo"): npo}, known, seed=0,
                            attacked={("m", "npo", "quantization"): attacked})  # fmt: skip
    plain, attacks = split_attacks(summary)
    assert set(attacks["attack"]) == {"quantization"} and set(attacks["subset"]) <= {"known", "all"}
    pick = (plain["variant"] == "npo") & (plain["split"] == "forget_test") & (plain["subset"] == "known")
    before = plain[pick & (plain["metric"] == "rougeL_recall_drop") & (plain["kind"] == "all")]
    after = attacks[(attacks["split"] == "forget_test") & (attacks["metric"] == "rougeL_recall_drop")
                    & (attacks["kind"] == "all")]  # fmt: skip
    assert before["value"].item() == 1.0 and after["value"].item() == 0.0
    assert after["ci_low"].notna().all(), "six persons: the attacked change has a bootstrap interval"
    assert "forget_train" not in set(attacks["split"]), "attacks report the held-out facts only"
    # an attack that also runs on base (a fine-tune changes how any model answers): the variant's change after it
    # is against the equally attacked base; base's own rows say what the attack does to the base model
    halved = _scores(ids[:12], splits[:12], who[:12], [0.5] * 12)
    relearnt = {("m", "npo", "relearning"): halved, ("m", "base", "relearning"): halved}
    both = build_summary({("m", "base"): base, ("m", "npo"): npo}, known, seed=0, attacked=relearnt)
    rows = split_attacks(both)[1]
    drop = rows[(rows["split"] == "forget_test") & (rows["metric"] == "rougeL_recall_drop") & (rows["kind"] == "all")]
    assert drop.set_index("variant")["value"].to_dict() == {"base": 0.5, "npo": 0.0}
    with pytest.raises(InputError, match=r"m/npo after attack quantization: .* 1 missing \(first: \['r5'\]\)"):
        build_summary({("m", "base"): base, ("m", "npo"): npo}, known, seed=0,
                      attacked={("m", "npo", "quantization"): attacked.iloc[:11]})  # fmt: skip


def test_relearning_trains_the_unlearned_model_back_with_plain_gradient_descent(
    imported: Manifest, tmp_path: Path
) -> None:
    cfg = settings(method="grad_descent", settings={}, learning_rate=2e-2, epochs=2, retain_weight=0.0)
    result = train(imported, cfg, forget=FORGET, style=STYLE, adapter_dir=tmp_path / "a",
                   checkpoint_dir=tmp_path / "c")  # fmt: skip
    assert result.log["forget_loss"].iloc[-1] < result.log["forget_loss"].iloc[0], "descent lowers the NLL"


def test_quantization_aware_lora_computes_with_the_exported_weights(imported: Manifest) -> None:
    model, tokenizer = load_model(imported, device=CPU, dtype=torch.float32)
    lora = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear", "layers": None}
    model = get_peft_model(model, lora_config(model, lora))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)
    assert enable(model, "Q4_1") == 14
    layer = model.base_model.model.model.layers[0].mlp.down_proj
    merged = layer.base_layer.weight + layer.lora_B["default"].weight @ layer.lora_A["default"].weight * 2.0
    x = torch.randn(3, merged.shape[1])
    expected = torch.nn.functional.linear(x, fake_quantize(merged, "Q4_1"))
    assert torch.allclose(layer(x), expected, atol=1e-5), "the forward pass sees the Q4_1 export's weight"
    assert not torch.allclose(layer(x), torch.nn.functional.linear(x, merged), atol=1e-3)
    ids = tokenizer("Who wrote Hamlet?", return_tensors="pt")["input_ids"]
    model(input_ids=ids, labels=ids).loss.backward()
    assert layer.lora_B["default"].weight.grad.abs().sum() > 0, "the gradient passes straight through"
    with model.disable_adapter():
        assert torch.equal(layer(x), layer.base_layer(x))


def test_quantization_aware_training_runs_through_the_engine(imported: Manifest, tmp_path: Path) -> None:
    lora = {"r": 4, "alpha": 8, "dropout": 0.05, "target_modules": "all-linear", "layers": None,
            "quantization_aware": "Q8_0"}  # fmt: skip
    cfg = settings(method="npo", settings={}, lora=lora, learning_rate=2e-2, epochs=1, precision="bf16")
    train(imported, cfg, forget=FORGET, style=STYLE, adapter_dir=tmp_path / "a", checkpoint_dir=tmp_path / "c")
    assert (tmp_path / "a" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_attacks_run_in_the_dag_and_reach_the_summary_and_report(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A tiny model taught the sample's facts, stored as a Q8_0 GGUF (Q4_1 would blur a 64-wide model's facts),
    unlearned with NPO and attacked by every kind through Snakemake (a relearning control is one more relearning
    entry: its settings are checked without a run)."""
    from conftest import SMOLLM2_GGUF, build_tiny_gguf

    from unlearning.models.gguf import gguf_path

    config = tiny_config(tiny_model_dir)
    run = ["--cores", "2", "--directory", str(tmp_path), "--configfile", str(tmp_path / "config.yaml")]
    knowing = tiny_model_that_knows(config, tiny_model_dir, tmp_path)
    source = build_tiny_gguf(tmp_path / "knowing.Q8_0.gguf", knowing, gguf_path(*SMOLLM2_GGUF), quantize="Q8_0")
    config["models"] = {"tiny": {"gguf": {"path": str(source)},
                                 "resources": {"mem_mb": 2000, "runtime": 10, "threads": 1}}}  # fmt: skip
    config["unlearn"] = {"npo": {"method": "npo"}}
    config["attacks"] = {
        "quantization": {},
        "relearning": {"epochs": 1, "learning_rate": 1e-2},
        "in_context": {},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(*run)
    results = tmp_path / "results"
    assert (results / "export" / "tiny" / "npo" / "model.gguf").is_file()
    assert (results / "export" / "tiny" / "npo" / "merged" / "model.safetensors").is_file()
    attacked = sorted(p.relative_to(results / "attack").as_posix() for p in (results / "attack").rglob("*.parquet"))
    assert attacked == [
        "tiny/base/in_context.parquet", "tiny/base/relearning.parquet", "tiny/npo/in_context.parquet",
        "tiny/npo/quantization.parquet", "tiny/npo/relearning.parquet",
    ]  # fmt: skip
    known = read_parquet(results / "known" / "tiny.parquet")
    scores = read_parquet(results / "attack" / "tiny" / "npo" / "quantization.parquet")
    held_out = known["split"].isin(["forget_test", "retain_test", "general_test"]) & known["known"]
    assert held_out.sum() > 0 and set(scores["id"]) == set(known.loc[held_out, "id"])
    summary = read_parquet(results / "score" / "summary.parquet")
    assert set(split_attacks(summary)[1]["attack"]) == {"quantization", "relearning", "in_context"}
    report = (results / "report" / "report.md").read_text()
    assert "## Does it stay forgotten?" in report and "| npo | quantization |" in report


def test_attacks_config_is_the_default_with_every_attack_and_the_lever() -> None:
    default = yaml.safe_load((ROOT / "config.yaml").read_text())
    every = yaml.safe_load((ROOT / "configs" / "attacks.yaml").read_text())
    assert {spec.get("attack", name) for name, spec in every["attacks"].items()} == {
        "quantization", "relearning", "in_context"
    }  # fmt: skip
    assert default["attacks"] == {"quantization": {}}, "the default runs the quantization attack"
    lever = every["unlearn"].pop("npo_qat")
    assert lever["lora"].pop("quantization_aware") == "Q4_1" and lever == default["unlearn"]["npo"]
    every.pop("attacks"), default.pop("attacks")
    assert every == default, "configs/attacks.yaml differs from config.yaml beyond attacks: and npo_qat"
