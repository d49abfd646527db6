"""Model-dependent details hold for Gemma3 as for Llama (issue 19): LoRA ``all-linear`` targets, the decoder layers
a layer-steering method (RMU) picks from, the answer-position LM head, batched generation and likelihood scoring;
checked on a tiny random Gemma3 built in the test, beside the tiny Llama."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from unlearning.core.errors import InputError
from unlearning.inference.generation import generate
from unlearning.inference.likelihood import continuation_logliks
from unlearning.inference.prompting import PromptStyle, build_prompt
from unlearning.models.checkpoints import Manifest, load_model
from unlearning.training.layers import decoder_layers, layer_index, num_layers

STYLES = [PromptStyle(instruction="Give only one sentence answer."), PromptStyle(chat_template=False, few_shot=5)]
LINEAR = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


@pytest.fixture(params=["llama", "gemma3"])
def tiny(request: pytest.FixtureRequest) -> tuple[str, Path]:
    name = {"llama": "tiny_model_dir", "gemma3": "tiny_gemma3_dir"}[request.param]
    return request.param, request.getfixturevalue(name)


def test_tiny_gemma3_is_a_gemma3(tiny_gemma3_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_gemma3_dir)
    assert type(model).__name__ == "Gemma3ForCausalLM" and model.config.model_type == "gemma3_text"


def test_decoder_layers_for_llama_and_gemma3_also_under_lora(tiny: tuple[str, Path]) -> None:
    _, folder = tiny
    model = AutoModelForCausalLM.from_pretrained(folder)
    layers = decoder_layers(model)
    assert num_layers(model) == len(layers) == model.config.num_hidden_layers == 2
    assert all(hasattr(layer, "self_attn") and hasattr(layer, "mlp") for layer in layers)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"))
    assert decoder_layers(peft_model) is layers
    assert layer_index(peft_model, -1) == 1 and layer_index(model, 0) == 0
    with pytest.raises(InputError, match="the model has 2 decoder layers"):
        layer_index(model, 2)


def test_lora_all_linear_trains_every_projection_but_not_the_head(tiny: tuple[str, Path]) -> None:
    _, folder = tiny
    torch.manual_seed(0)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32),
        LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    targeted = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if hasattr(module, "lora_A")}
    assert targeted == LINEAR, "all-linear: every attention and MLP projection, never the LM head"
    ids = torch.randint(0, model.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    # LoRA's B starts at zero, so only B has a gradient on the first step; after one step both do
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    losses = []
    for _ in range(3):
        optimizer.zero_grad()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert grads and all("lora_" in n for n in grads)
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads.values())
    assert losses[-1] < losses[0]


def test_answer_position_head_matches_the_models_own_logits(tiny: tuple[str, Path]) -> None:
    """The training engine's LM head on answer positions only (unlearning.inference.packed_rows.answer_logits) gives the
    model's own logits there, Gemma3's embedding scaling and any logit soft-capping included."""
    from unlearning.inference.packed_rows import answer_logits

    _, model_dir = tiny
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    ids = torch.randint(0, model.config.vocab_size, (3, 20), generator=torch.Generator().manual_seed(0))
    labels = ids.clone()
    labels[:, :12] = -100
    labels[1, -4:] = -100
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    logits, targets, _ = answer_logits(model, batch)
    mask = labels[:, 1:] != -100
    assert logits.shape[0] == int(mask.sum())
    with torch.no_grad():
        torch.testing.assert_close(logits, model(input_ids=ids).logits[:, :-1][mask], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("method", ["npo", "rmu"])
def test_methods_train_on_gemma3(method: str, tiny_gemma3_manifest: Manifest, tmp_path: Path) -> None:
    """LoRA all-linear unlearning, with the reference precomputed (NPO) or a steered layer (RMU), on Gemma3."""
    from test_training import settings, train_with

    log = train_with(tiny_gemma3_manifest, tmp_path, settings(method=method, settings={}, epochs=1)).log
    assert log["forget_loss"].notna().all() and (tmp_path / "a" / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize("style", STYLES, ids=["chat", "plain"])
def test_gemma3_batched_generation_and_likelihood_match_one_at_a_time(
    tiny_gemma3_manifest: Manifest, style: PromptStyle
) -> None:
    model, tokenizer = load_model(tiny_gemma3_manifest, device=torch.device("cpu"))
    questions = ["Who?", "Where was the famous scientist born, and in which year did she move to Paris?", "When?"]
    prompts = [build_prompt(tokenizer, q, **vars(style)) for q in questions]
    stop = not style.chat_template
    batched = generate(model, tokenizer, prompts, max_new_tokens=6, batch_size=3, stop_at_newline=stop)
    single = [generate(model, tokenizer, [p], max_new_tokens=6, batch_size=1, stop_at_newline=stop)[0] for p in prompts]
    assert batched == single and all(g.new_tokens > 0 for g in batched)
    answers = ["She was born in Warsaw.", "In 1867.", "Never."]
    together = continuation_logliks(model, tokenizer, prompts, answers, batch_size=3)
    alone = [
        continuation_logliks(model, tokenizer, [p], [a], batch_size=1)[0] for p, a in zip(prompts, answers, strict=True)
    ]
    for a, b in zip(together, alone, strict=True):
        assert a.tokens == b.tokens > 0 and a.total == pytest.approx(b.total, abs=1e-3)
    # the left-padded, answer-only head agrees with a plain forward pass
    p_ids = tokenizer(prompts[1], add_special_tokens=False)["input_ids"]
    a_ids = tokenizer(" " + answers[1] if not style.chat_template else answers[1], add_special_tokens=False)
    a_ids = a_ids["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([p_ids + a_ids])).logits[0].float()
    want = torch.log_softmax(logits[len(p_ids) - 1 : -1], -1).gather(-1, torch.tensor(a_ids)[:, None]).sum()
    assert together[1].total == pytest.approx(float(want), abs=1e-3)
