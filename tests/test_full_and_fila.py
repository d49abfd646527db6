"""Full fine-tuning (`adapter: full`) and FILA (`lora.init: fila`) on a tiny model: real training steps, the saved
weights reloaded, the reference kept, and FILA's model unchanged at step 0."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import get_peft_model
from test_training import FORGET, RETAIN, STYLE, mean_loglik, settings

from unlearning.inference.prompting import build_prompt
from unlearning.models.checkpoints import Manifest, load_model
from unlearning.models.full_weights import FullWeights, is_full_weights
from unlearning.training import fila
from unlearning.training.engine import collate_sequences, lora_config, qa_sequences, train

CPU = torch.device("cpu")
LENGTHS = {"max_length": 96, "max_prompt_length": 64}


def _train(manifest: Manifest, tmp_path: Path, **overrides) -> Path:  # noqa: ANN003
    cfg = settings(method="npo", settings={}, **overrides)
    train(manifest, cfg, forget=FORGET, retain=RETAIN, style=STYLE, adapter_dir=tmp_path / "a",
          checkpoint_dir=tmp_path / "c")  # fmt: skip
    return tmp_path / "a"


def _ids(tokenizer, question: str) -> torch.Tensor:  # noqa: ANN001
    return tokenizer(build_prompt(tokenizer, question, **vars(STYLE)), return_tensors="pt")["input_ids"]


def test_full_fine_tuning_saves_whole_weights_that_forget_and_keeps_the_reference(
    tiny_manifest: Manifest, tmp_path: Path
) -> None:
    out = _train(tiny_manifest, tmp_path, adapter="full", lora=None, retain_weight=1.0, learning_rate=1e-3)
    files = {f.name for f in out.iterdir()}
    assert {"config.json", "model.safetensors"} <= files and "adapter_config.json" not in files
    assert is_full_weights(out)
    base, tokenizer = load_model(tiny_manifest, device=CPU)
    unlearned, _ = load_model(tiny_manifest, adapter=out, device=CPU)
    assert isinstance(unlearned, FullWeights)
    before = mean_loglik(base, tokenizer, FORGET["question"], FORGET["answer"])
    after = mean_loglik(unlearned, tokenizer, FORGET["question"], FORGET["answer"])
    assert after < before - 0.05, "full fine-tuning with NPO lowers the forget answers' likelihood"
    ids = _ids(tokenizer, FORGET["question"][0])
    with torch.no_grad():
        expected = base(ids).logits
        assert not torch.allclose(unlearned(ids).logits, expected, atol=1e-4)
        with unlearned.disable_adapter():  # the reference (the fluency judge in scoring) is the base model
            assert torch.equal(unlearned(ids).logits, expected)
    assert sum(p.numel() for p in unlearned.parameters()) == sum(p.numel() for p in base.parameters()), (
        "the reference is no submodule: it is never trained, counted or saved"
    )


def test_full_fine_tuning_needs_a_change(tiny_manifest: Manifest, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="full fine-tuning left every weight as it was"):
        _train(tiny_manifest, tmp_path, adapter="full", lora=None, learning_rate=1e-30, epochs=1)


def _fila_model(manifest: Manifest, lora: dict):  # noqa: ANN202
    model, tokenizer = load_model(manifest, device=CPU, dtype=torch.float32)
    peft = get_peft_model(model, fila.doubled_rank(lora_config(model, lora)))
    forget = qa_sequences(FORGET, tokenizer, STYLE, LENGTHS)
    retain = qa_sequences(RETAIN, tokenizer, STYLE, LENGTHS)
    batches = [collate_sequences(forget[i : i + 4], tokenizer.pad_token_id) for i in range(0, len(forget), 4)]
    return peft, tokenizer, batches, [collate_sequences(retain, tokenizer.pad_token_id)]


def test_fila_leaves_the_model_unchanged_at_step_zero(tiny_manifest: Manifest) -> None:
    lora = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear", "layers": None}
    peft, tokenizer, forget, retain = _fila_model(tiny_manifest, lora)
    ids = _ids(tokenizer, FORGET["question"][0])
    with torch.no_grad(), peft.disable_adapter():
        expected = peft(ids).logits
    cost = fila.initialise(peft, forget, retain)
    assert cost.forget_tokens > 0 and cost.retain_tokens > 0 and cost.seconds > 0
    layers = [m for m in peft.modules() if hasattr(m, "lora_A") and "default" in m.lora_A]
    assert layers and all(m.lora_A["default"].weight.shape[0] == 8 for m in layers), "rank 2r"
    assert all(bool(m.lora_B["default"].weight.abs().max() > 0) for m in layers), "B starts from the SVD, not zero"
    with torch.no_grad():
        got = peft(ids).logits
    assert torch.allclose(got, expected, atol=1e-5, rtol=0), float((got - expected).abs().max())
    # one optimizer step moves only the trained half; the frozen -s B0 A0 half keeps its start
    b = layers[0].lora_B["default"].weight
    start = b.detach().clone()
    loss = peft(ids, labels=ids).loss
    loss.backward()
    torch.optim.SGD([p for p in peft.parameters() if p.requires_grad], lr=1.0).step()
    assert not torch.equal(b[:, :4], start[:, :4])
    assert torch.equal(b[:, 4:], start[:, 4:])


def test_fila_trains_through_the_engine_and_its_adapter_reloads(tiny_manifest: Manifest, tmp_path: Path) -> None:
    lora = {"r": 4, "alpha": 8, "dropout": 0.05, "target_modules": "all-linear", "layers": None, "init": "fila"}
    out = _train(tiny_manifest, tmp_path, lora=lora, retain_weight=1.0)
    config = (out / "adapter_config.json").read_text()
    assert '"r": 8' in config and '"lora_alpha": 16' in config
    base, tokenizer = load_model(tiny_manifest, device=CPU)
    unlearned, _ = load_model(tiny_manifest, adapter=out, device=CPU)
    before = mean_loglik(base, tokenizer, FORGET["question"], FORGET["answer"])
    after = mean_loglik(unlearned, tokenizer, FORGET["question"], FORGET["answer"])
    assert after < before, "the FILA adapter, applied to the original weights, lowers the forget answers"


def test_fila_names_a_layer_no_forget_gradient_reaches(tiny_manifest: Manifest) -> None:
    lora = {"r": 2, "alpha": 4, "dropout": 0.0, "target_modules": ["o_proj"], "layers": [0]}
    peft, _, forget, retain = _fila_model(tiny_manifest, lora)
    v_proj = peft.get_base_model().model.layers[0].self_attn.v_proj
    with torch.no_grad():
        v_proj.weight.zero_()  # layer 0's attention output, o_proj's input, is now zero: o_proj gets no gradient
    with pytest.raises(Exception, match=r"zero everywhere in layer .*layers\.0\.self_attn\.o_proj"):
        fila.initialise(peft, forget, retain)
    assert not any(torch.isnan(p).any() for p in peft.parameters())


def test_fila_without_retain_questions_is_an_error(tiny_manifest: Manifest, tmp_path: Path) -> None:
    lora = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear", "layers": None, "init": "fila"}
    with pytest.raises(ValueError, match="fila needs retain questions"):
        train(tiny_manifest, settings(method="npo", lora=lora), forget=FORGET, retain=None, style=STYLE,
              adapter_dir=tmp_path / "a", checkpoint_dir=tmp_path / "c")  # fmt: skip
    assert not (tmp_path / "a").exists()


def test_full_fine_tuning_in_bf16_keeps_float32_master_weights(tiny_manifest: Manifest, tmp_path: Path) -> None:
    """bf16 runs as autocast: the saved weights stay float32, so small updates are not rounded away."""
    from safetensors import safe_open

    out = _train(tiny_manifest, tmp_path, adapter="full", lora=None, precision="bf16", epochs=1)
    with safe_open(out / "model.safetensors", "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float32}  # noqa: SIM118 (not iterable)
