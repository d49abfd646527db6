"""The unlearning methods: each loss on hand-computed numbers, the registry, the settings check, and every method
training a few real steps on the tiny model (lowering the forget answers' likelihood, saving only an adapter)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from conftest import teach_facts
from test_training import FORGET, RETAIN, STYLE, mean_loglik, settings, train_with

from unlearning.config.settings import unlearn_settings
from unlearning.inference.packed_rows import answer_logits
from unlearning.models.checkpoints import Manifest, load_model
from unlearning.training.methods import METHODS, get_method, register
from unlearning.training.methods.base import Method, answer_nll, sequence_logprob, token_logprobs
from unlearning.training.methods.dpo import dpo_loss
from unlearning.training.methods.ihl import ihl_loss
from unlearning.training.methods.npo import npo_loss
from unlearning.training.methods.rmu import masked_mse
from unlearning.training.methods.simnpo import simnpo_loss
from unlearning.training.methods.undial import undial_loss


def test_dpo_loss_on_worked_numbers() -> None:
    # beta (d_chosen - d_rejected) = 0.5 * 2 = 1 -> -log sigmoid(1) = log(1 + e^-1) = 0.313262; equal -> log 2
    loss, chosen, rejected = dpo_loss(torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 0.0]), beta=0.5)
    assert loss.item() == pytest.approx((0.313262 + 0.693147) / 2, abs=1e-6)
    assert chosen.tolist() == [0.5, 0.0] and rejected.tolist() == [-0.5, 0.0]


def test_npo_loss_on_worked_numbers() -> None:
    # -(2/0.1) log sigmoid(0) = 20 log 2 = 13.862944; -(2/0.1) log sigmoid(0.1 * 10) = 20 * 0.313262 = 6.265234
    assert npo_loss(torch.tensor([0.0, -10.0]), beta=0.1).item() == pytest.approx((13.862944 + 6.265234) / 2, 1e-6)
    # degenerate: a model that already gives the forget answer no mass has a near-zero loss and gradient
    assert npo_loss(torch.tensor([-1e4]), beta=0.1).item() == pytest.approx(0.0, abs=1e-6)


def test_simnpo_loss_on_worked_numbers() -> None:
    # -(2/1) log sigmoid(1 * (2 - 1)) = 2 * 0.313262; -(2/2) log sigmoid(0) = log 2
    assert simnpo_loss(torch.tensor([2.0]), beta=1.0, delta=1.0).item() == pytest.approx(0.626523, abs=1e-6)
    assert simnpo_loss(torch.tensor([0.0]), beta=2.0, delta=0.0).item() == pytest.approx(0.693147, abs=1e-6)


def test_undial_loss_on_worked_numbers() -> None:
    # reference logits (0, 0), true token 0 lowered by ln 3: target softmax(-ln 3, 0) = (1/4, 3/4)
    ref, target = torch.zeros(1, 2), torch.tensor([0])
    uniform = undial_loss(torch.zeros(1, 2), ref, target, beta=math.log(3))
    assert uniform.item() == pytest.approx(math.log(2), abs=1e-6)  # CE((1/4, 3/4), (1/2, 1/2)) = log 2
    # student (3/4, 1/4): -(1/4 log 3/4 + 3/4 log 1/4) = 1.111642
    student = torch.tensor([[math.log(3), 0.0]])
    assert undial_loss(student, ref, target, beta=math.log(3)).item() == pytest.approx(1.111642, abs=1e-6)
    # beta 0: distillation to the reference itself, whose cross-entropy is its entropy (log 2 here)
    assert undial_loss(torch.zeros(1, 2), ref, target, beta=0.0).item() == pytest.approx(math.log(2), abs=1e-6)


def test_ihl_loss_on_worked_numbers() -> None:
    # true token 0 on top: p = (3/5, 1/5, 1/5) -> 1 + 3/5 - 1/5 = 1.4; below the runner-up: p = (1/4, 1/2, 1/4) ->
    # 1 + 1/4 - 1/2 = 0.75; far below: p(true) = e^-40 / (...) ~ 0, runner-up ~ 1 -> ~ 0 (the loss flattens there)
    logits = torch.tensor([[math.log(3), 0.0, 0.0], [0.0, math.log(2), 0.0], [-20.0, 20.0, 0.0]])
    targets = torch.tensor([0, 0, 0])
    loss, true_prob = ihl_loss(logits, targets)
    assert true_prob.tolist() == pytest.approx([0.6, 0.25, 0.0], abs=1e-6)
    assert ihl_loss(logits[2:], targets[2:])[0].item() == pytest.approx(0.0, abs=1e-6)
    assert loss.item() == pytest.approx((1.4 + 0.75 + 0.0) / 3, abs=1e-6), "the mean over answer tokens"
    # gradient at the second position: dL/dz_v = dp_0/dz_v - dp_1/dz_v, with dp_i/dz_v = p_i ([i = v] - p_v):
    # (1/4 * 3/4 + 1/2 * 1/4, -1/4 * 1/2 - 1/2 * 1/2, -1/4 * 1/4 + 1/2 * 1/4): descent lowers the true token's logit
    # and raises the runner-up's
    z = logits[1:2].clone().requires_grad_()
    ihl_loss(z, targets[1:2])[0].backward()
    assert z.grad[0].tolist() == pytest.approx([0.3125, -0.375, 0.0625], abs=1e-6)
    # 0 is the true token in the first row, 1 in the second: p(true) - max of the others
    assert ihl_loss(logits[:2], torch.tensor([0, 1]))[0].item() == pytest.approx((1.4 + 1.25) / 2, abs=1e-6)


def test_rmu_activation_loss_on_worked_numbers() -> None:
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    labels = torch.tensor([[-100, 5]])  # only the second token is an answer token
    # ((3 - 1)^2 + (4 - 1)^2) / 2 = 6.5
    assert masked_mse(hidden, torch.tensor([1.0, 1.0]), labels).item() == pytest.approx(6.5)
    assert masked_mse(hidden, hidden.clone(), labels).item() == 0.0  # retain activations unchanged: no loss


class OneHotLM(torch.nn.Module):
    """A fake causal LM whose hidden state is the one-hot input token and whose head is the identity."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab
        self.head = torch.nn.Identity()
        self.config = SimpleNamespace()

    def get_decoder(self):  # noqa: ANN201
        return lambda input_ids, attention_mask: SimpleNamespace(
            last_hidden_state=torch.nn.functional.one_hot(input_ids, self.vocab).float()
        )

    def get_output_embeddings(self) -> torch.nn.Module:
        return self.head


def test_answer_logits_take_only_positions_that_predict_answer_tokens() -> None:
    batch = {
        "input_ids": torch.tensor([[0, 0, 1], [2, 1, 0]]),
        "attention_mask": torch.tensor([[1, 1, 1], [1, 1, 0]]),
        "labels": torch.tensor([[-100, 0, 1], [-100, 1, -100]]),
    }
    logits, targets, rows = answer_logits(OneHotLM(3), batch)
    assert targets.tolist() == [0, 1, 1] and rows.tolist() == [0, 0, 1]
    assert logits.argmax(-1).tolist() == [0, 0, 2]  # the tokens at positions 0, 1 (row 0) and 0 (row 1)
    # log p = [target == input] - log(e + 2): row 0 = (1 - 1.551445) + (0 - 1.551445), row 1 = -1.551445
    logp, lengths = sequence_logprob(OneHotLM(3), batch)
    assert logp.tolist() == pytest.approx([-2.102889, -1.551445], abs=1e-6) and lengths.tolist() == [2, 1]
    assert token_logprobs(logits, targets).sum().item() == pytest.approx(-3.654334, abs=1e-6)
    # gradient ascent's forget loss is minus this mean NLL
    assert answer_nll(OneHotLM(3), batch).item() == pytest.approx(3.654334 / 3, abs=1e-6)


def test_registry_lists_the_methods_and_names_unknown_ones() -> None:
    assert {"dpo", "idk_dpo", "grad_ascent", "grad_diff", "npo", "simnpo", "rmu", "undial", "ihl"} <= set(METHODS)
    with pytest.raises(ValueError, match="unknown unlearning method 'npx'; registered: dpo"):
        get_method("npx")


def config_with(entry: dict) -> dict:
    train = settings()
    return {"seed": 1, "train": train, "models": {"m": {}}, "unlearn": {"mine": entry}}


def test_entry_settings_resolve_and_unknown_keys_name_entry_and_method() -> None:
    resolved = unlearn_settings(config_with({"method": "npo", "beta": 0.2, "learning_rate": 1e-3}), "m", "mine")
    assert resolved["method"] == "npo" and resolved["settings"] == {"beta": 0.2}
    assert resolved["learning_rate"] == 1e-3 and resolved["seed"] == 0  # train.seed beats the top-level seed
    # gradient ascent has no retain term unless its own entry sets one
    assert unlearn_settings(config_with({"method": "grad_ascent"}), "m", "mine")["retain_weight"] == 0.0
    assert (
        unlearn_settings(config_with({"method": "grad_ascent", "retain_weight": 2}), "m", "mine")["retain_weight"] == 2
    )
    with pytest.raises(
        ValueError, match=r"unlearn\.mine: unknown setting\(s\) gamma for method 'npo' \(its own settings: beta"
    ):
        unlearn_settings(config_with({"method": "npo", "gamma": 1}), "m", "mine")
    # a misspelt key gets the closest valid one, a train: key or the method's own
    with pytest.raises(ValueError, match=r"did you mean 'beta' for 'betta', 'learning_rate' for 'learnig_rate'\?"):
        unlearn_settings(config_with({"method": "npo", "learnig_rate": 1e-4, "betta": 0.1}), "m", "mine")
    with pytest.raises(ValueError, match=r"unlearn\.mine: unknown unlearning method 'nope'"):
        unlearn_settings(config_with({"method": "nope"}), "m", "mine")


@pytest.fixture(scope="module")
def knowing_manifest(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    """The tiny model taught the forget and retain answers (tests/conftest.py: teach_facts)."""
    qa = pd.concat([FORGET, RETAIN], ignore_index=True)
    out = teach_facts(tiny_model_dir, list(qa["question"]), list(qa["answer"]), tmp_path_factory.mktemp("k"), STYLE)
    return Manifest(name="knowing", path=str(out), source="local")


@pytest.mark.parametrize(
    "name", sorted(["dpo", "idk_dpo", "grad_ascent", "grad_diff", "npo", "simnpo", "rmu", "undial", "ihl"])
)
def test_every_method_trains_and_lowers_the_forget_answers_likelihood(
    name: str, knowing_manifest: Manifest, tmp_path: Path
) -> None:
    result = train_with(knowing_manifest, tmp_path, settings(method=name, retain_weight=0.0))
    log = result.log
    assert list(log.columns[:8]) == ["step", "epoch", "loss", "forget_loss", "retain_loss", "learning_rate",
                                     "num_tokens", "seconds"]  # fmt: skip
    assert log["forget_loss"].notna().all() and log["retain_loss"].isna().all()
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert "adapter_model.safetensors" in files and not any(f.startswith("model") for f in files)
    cpu = torch.device("cpu")
    base, tokenizer = load_model(knowing_manifest, device=cpu)
    unlearned, _ = load_model(knowing_manifest, adapter=tmp_path / "a", device=cpu)
    before = mean_loglik(base, tokenizer, FORGET["question"], FORGET["answer"])
    after = mean_loglik(unlearned, tokenizer, FORGET["question"], FORGET["answer"])
    assert before > -1.0, "the fine-tuned model knows the forget answers"
    assert after < before - 0.1, (name, before, after)


def test_ihl_with_the_retain_term_moves_mass_off_the_true_tokens(knowing_manifest: Manifest, tmp_path: Path) -> None:
    """IHL as the paper runs it, beside the NLL retain term: the logged mean probability of the true forget tokens
    falls from where the fine-tuned model had it (above 1/2, so the loss starts above 1) and the loss stays in
    [0, 2]."""
    result = train_with(knowing_manifest, tmp_path, settings(method="ihl", retain_weight=1.0, learning_rate=2e-2))
    log = result.log
    assert "true_token_prob" in log.columns and log["retain_loss"].notna().all()
    assert log["true_token_prob"].between(0, 1).all() and log["forget_loss"].between(0, 2).all()
    assert log["true_token_prob"].iloc[0] > 0.5 and log["forget_loss"].iloc[0] > 1.0
    assert log["true_token_prob"].iloc[-1] < log["true_token_prob"].iloc[0] - 0.2
    assert log["forget_loss"].iloc[-1] < log["forget_loss"].iloc[0]
    assert log["loss"].to_numpy() == pytest.approx((log["forget_loss"] + log["retain_loss"]).to_numpy(), rel=1e-5)


def test_a_method_defined_outside_the_package_registers_and_trains(tiny_manifest: Manifest, tmp_path: Path) -> None:
    @dataclasses.dataclass(frozen=True)
    class ScaledSettings:
        scale: float = 1.0

    @register
    class ScaledAscent(Method):
        """Gradient ascent with a scale: the smallest possible new method."""

        name = "scaled_ascent_test"
        Settings = ScaledSettings

        def forget_loss(self, model, batch):  # noqa: ANN001, ANN201
            return -self.settings.scale * answer_nll(model, batch["forget"]), {
                "scale": torch.tensor(self.settings.scale)
            }

    try:
        cfg = config_with({"method": "scaled_ascent_test", "scale": 2.0})
        resolved = unlearn_settings(cfg, "m", "mine")
        result = train_with(tiny_manifest, tmp_path, resolved)
        assert (result.log["scale"] == 2.0).all()
        assert result.log["forget_loss"].iloc[-1] < result.log["forget_loss"].iloc[0]
    finally:
        METHODS.pop("scaled_ascent_test")


def test_rmu_refuses_lora_that_cannot_reach_its_layer(tiny_manifest: Manifest, tmp_path: Path) -> None:
    lora = {**settings()["lora"], "layers": [1]}
    cfg = settings(method="rmu", settings={"layer": 0}, lora=lora)
    with pytest.raises(
        ValueError, match=r"rmu steers the output of decoder layer 0, but LoRA adapts none of layers 0\.\.0"
    ):
        train_with(tiny_manifest, tmp_path, cfg)


def test_an_adapter_that_learned_nothing_is_an_error(tiny_model_dir: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from unlearning.training.engine import check_adapter_trained

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    with pytest.raises(RuntimeError, match="no LoRA B matrices"):
        check_adapter_trained(model)
    peft = get_peft_model(model, LoraConfig(r=2, target_modules="all-linear"))
    with pytest.raises(RuntimeError, match="every LoRA B matrix at its initial value"):
        check_adapter_trained(peft)  # PEFT initialises B to zero: an untrained adapter is the identity
    with torch.no_grad():
        next(p for n, p in peft.named_parameters() if "lora_B" in n)[0, 0] = 1e-3
    check_adapter_trained(peft)


def test_kl_retain_term_trains(tiny_manifest: Manifest, tmp_path: Path) -> None:
    result = train_with(tiny_manifest, tmp_path, settings(method="npo", retain_weight=1.0, retain_kind="kl"))
    # the first step's KL is 0 (the adapter starts as the identity), then positive
    assert result.log["retain_loss"].iloc[0] == pytest.approx(0.0, abs=1e-6)
    assert (result.log["retain_loss"].iloc[1:] > 0).all()


def test_idk_dpo_builds_refusal_pairs_without_perturbations() -> None:
    method = get_method("idk_dpo")(get_method("idk_dpo").Settings(per_question=2), seed=3)
    texts = method.training_texts(FORGET, None)
    assert len(texts) == 2 * len(FORGET) and set(texts["rejected"]) == set(FORGET["answer"])
    assert texts["chosen"].str.contains("know|sure|information|answer|knowledge", regex=True).all()
    with pytest.raises(ValueError, match="method dpo trains on preference pairs"):
        get_method("dpo")(get_method("dpo").Settings()).training_texts(FORGET, None)
    assert get_method("dpo").needs_pairs and not get_method("idk_dpo").needs_pairs
