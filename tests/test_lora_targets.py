"""lora.target_modules presets (attention, mlp): resolved on the model's decoder layers, for Llama and Gemma3, with
and without lora.layers (an unknown preset fails the dry run: tests/test_workflow.py, tests/test_config_schema.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from peft import get_peft_model
from safetensors import safe_open
from test_training import settings, train_with
from transformers import AutoModelForCausalLM

from unlearning.config.settings import unlearn_entries
from unlearning.core.errors import InputError
from unlearning.models.checkpoints import Manifest
from unlearning.training.engine import lora_config
from unlearning.training.lora_targets import resolve_target_modules

ATTENTION = {"q_proj", "k_proj", "v_proj", "o_proj"}
MLP = {"gate_proj", "up_proj", "down_proj"}
LORA = {"r": 4, "alpha": 8, "dropout": 0.0}


@pytest.fixture(params=["llama", "gemma3"])
def tiny(request: pytest.FixtureRequest) -> Path:
    return request.getfixturevalue({"llama": "tiny_model_dir", "gemma3": "tiny_gemma3_dir"}[request.param])


def adapted(model: torch.nn.Module) -> set[str]:
    """The full names of the modules PEFT put a LoRA adapter on, relative to the base model."""
    return {name.removeprefix("base_model.model.") for name, m in model.named_modules() if hasattr(m, "lora_A")}


def expected(model: torch.nn.Module, names: set[str], layers: list[int]) -> set[str]:
    """The linear modules of ``layers`` whose own name is one of ``names``, found independently of the code."""
    part = "self_attn" if names == ATTENTION else "mlp"
    return {
        f"model.layers.{i}.{part}.{name}"
        for i in layers
        for name, m in getattr(model.model.layers[i], part).named_children()
        if isinstance(m, torch.nn.Linear) and name in names
    }


@pytest.mark.parametrize(("preset", "names"), [("attention", ATTENTION), ("mlp", MLP)])
@pytest.mark.parametrize("layers", [None, [0]], ids=["every layer", "layers [0]"])
def test_a_preset_adapts_exactly_its_part_of_each_layer(tiny: Path, preset: str, names: set, layers) -> None:  # noqa: ANN001
    model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32)
    n_layers = model.config.num_hidden_layers
    assert n_layers == 2
    config = lora_config(model, {**LORA, "target_modules": preset, "layers": layers})
    assert set(config.target_modules) == names, "on Llama and Gemma3 the short names pick out exactly the part"
    want = expected(model, names, layers or list(range(n_layers)))
    peft_model = get_peft_model(model, config)
    assert len(want) == len(names) * len(layers or range(n_layers))
    assert adapted(peft_model) == want
    ids = torch.randint(0, model.config.vocab_size, (1, 6), generator=torch.Generator().manual_seed(0))
    peft_model(input_ids=ids, labels=ids).loss.backward()
    trained = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in n for n in trained)


def test_all_linear_and_module_lists_are_unchanged(tiny_model_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert resolve_target_modules(model, "all-linear") == "all-linear"
    assert resolve_target_modules(model, "all-linear", [0]) == sorted(ATTENTION | MLP)
    assert resolve_target_modules(model, ["q_proj", "lm_head"], [1]) == ["q_proj", "lm_head"]


def with_tower(model_dir: Path) -> torch.nn.Module:
    """The tiny Llama with a second q_proj outside its decoder layers, as a multimodal model's vision tower has."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.model.tower = torch.nn.Module()
    model.model.tower.q_proj = torch.nn.Linear(4, 4)
    return model


@pytest.mark.parametrize("layers", [None, [1]], ids=["every layer", "layers [1]"])
def test_a_module_of_the_same_name_elsewhere_makes_the_preset_name_modules_in_full(
    tiny_model_dir: Path, layers
) -> None:  # noqa: ANN001
    """The short name q_proj would adapt the tower's too: then each module is named in full, only those of the
    configured layers (PEFT applies layers_to_transform to short names only)."""
    model = with_tower(tiny_model_dir)
    want = expected(model, ATTENTION, layers or [0, 1])
    config = lora_config(model, {**LORA, "target_modules": "attention", "layers": layers})
    assert sorted(config.target_modules) == sorted(want)
    assert adapted(get_peft_model(model, config)) == want, "never the tower's q_proj"
    assert resolve_target_modules(with_tower(tiny_model_dir), "mlp", layers) == sorted(MLP), "no clash: short names"


def test_a_preset_that_matches_nothing_names_the_model_class(tiny_model_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    for layer in model.model.layers:
        del layer.mlp
    with pytest.raises(InputError, match=r"'mlp' matches no module of LlamaForCausalLM: .* inside a `mlp` block"):
        lora_config(model, {**LORA, "target_modules": "mlp", "layers": None})
    with pytest.raises(InputError, match=r"unknown preset 'attn' \(allowed: all-linear, attention, mlp\)"):
        resolve_target_modules(model, "attn")


def test_training_with_a_preset_saves_an_adapter_of_that_part_only(tiny_manifest: Manifest, tmp_path: Path) -> None:
    """The engine's own run: `attention` on layer 0 trains and saves LoRA weights for layer 0's q/k/v/o only."""
    lora = {**settings()["lora"], "target_modules": "attention", "layers": [0]}
    result = train_with(tiny_manifest, tmp_path, settings(method="npo", lora=lora, epochs=1), n_pairs=4)
    assert result.log["forget_loss"].notna().all()
    with safe_open(tmp_path / "a" / "adapter_model.safetensors", "pt") as weights:
        modules = {key.split(".lora_")[0].removeprefix("base_model.model.") for key in weights.keys()}  # noqa: SIM118
    assert modules == {f"model.layers.0.self_attn.{n}" for n in ATTENTION}
    saved = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    assert set(saved["target_modules"]) == ATTENTION and saved["layers_to_transform"] == [0]


def test_a_grid_over_presets_names_each_point() -> None:
    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())
    config["unlearn"] = {"npo": {"method": "npo", "grid": {"lora": {"target_modules": ["attention", "mlp"]}}}}
    assert unlearn_entries(config) == ["npo_tmattention", "npo_tmmlp"]


def test_negative_layers_count_from_the_last_layer(tiny: Path) -> None:
    """lora.layers [-1] is the last decoder layer whatever the depth; a missing or repeated layer is an error."""
    model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32)
    config = lora_config(model, {**LORA, "target_modules": "attention", "layers": [-1]})
    assert config.layers_to_transform == [1]
    with pytest.raises(InputError, match="layer 2 does not exist: the model has 2 decoder layers"):
        lora_config(model, {**LORA, "target_modules": "all-linear", "layers": [2]})
    with pytest.raises(InputError, match=r"lora.layers \[0, -2\] names a decoder layer twice"):
        lora_config(model, {**LORA, "target_modules": "all-linear", "layers": [0, -2]})
    want = expected(model, ATTENTION, [1])
    assert adapted(get_peft_model(model, config)) == want
