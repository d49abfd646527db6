"""The CPU LoRA dropout: the distribution of torch's inverted dropout, its gradient, and its place in training."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from peft import get_peft_model

import unlearning.training.lora_dropout as lora_dropout
from unlearning.inference.prompting import PromptStyle
from unlearning.models.checkpoints import Manifest, load_model
from unlearning.training.engine import lora_config, train
from unlearning.training.lora_dropout import QuarterWordDropout, speed_up_lora_dropout

P = 0.05
N = 1 << 22  # 4M elements: the drop fraction's standard error is 1.1e-4


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_drops_each_element_with_probability_p_and_keeps_the_mean(dtype: torch.dtype) -> None:
    drop = QuarterWordDropout(P).train()
    out = drop(torch.ones(N, dtype=dtype)).float()
    dropped = out == 0
    assert drop.p == pytest.approx(P, abs=1 / 65536)
    assert float(dropped.float().mean()) == pytest.approx(drop.p, abs=6e-4)
    # each of the four 16-bit quarters of a random word is a uniform draw of its own
    for lane in range(4):
        assert float(dropped[lane::4].float().mean()) == pytest.approx(drop.p, abs=1.2e-3)
    # neighbours are independent: the pairs dropped together are p squared of all pairs
    assert float((dropped[:-1] & dropped[1:]).float().mean()) == pytest.approx(drop.p**2, abs=3e-4)
    kept = out[~dropped]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / (1 - drop.p)).to(dtype).float())
    assert float(out.mean()) == pytest.approx(1.0, abs=3e-3)


def test_gradient_is_the_mask_times_the_scale_and_odd_shapes_work() -> None:
    x = torch.randn(3, 7, 5, requires_grad=True)  # 105 elements: not a multiple of four
    drop = QuarterWordDropout(0.3).train()
    out = drop(x)
    out.sum().backward()
    kept = out != 0
    assert 0 < int(kept.sum()) < x.numel()
    torch.testing.assert_close(out[kept], x.detach()[kept] / (1 - drop.p))
    torch.testing.assert_close(x.grad, kept.float() / (1 - drop.p))


def test_eval_mode_and_zero_p_return_the_input_and_seeds_reproduce() -> None:
    x = torch.randn(64, 32)
    assert QuarterWordDropout(P).eval()(x) is x
    assert QuarterWordDropout(0.0).train()(x) is x
    drop = QuarterWordDropout(P).train()
    torch.manual_seed(3)
    first = drop(x)
    torch.manual_seed(3)
    torch.testing.assert_close(drop(x), first, rtol=0, atol=0)
    assert not torch.equal(drop(x), first)
    with pytest.raises(ValueError, match=r"must be in \[0, 1\), got 1.0"):
        QuarterWordDropout(1.0)


def test_every_lora_dropout_of_a_peft_model_is_replaced(tiny_manifest: Manifest, monkeypatch) -> None:  # noqa: ANN001
    model, _ = load_model(tiny_manifest, device=torch.device("cpu"), dtype=torch.float32)
    lora = {"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": "all-linear", "layers": None}
    peft_model = get_peft_model(model, lora_config(model, lora))
    layers = [m for m in peft_model.modules() if isinstance(getattr(m, "lora_dropout", None), torch.nn.ModuleDict)]
    monkeypatch.setattr(lora_dropout, "FAST_DROPOUT", False)
    assert speed_up_lora_dropout(peft_model) == 0
    monkeypatch.setattr(lora_dropout, "FAST_DROPOUT", True)
    assert speed_up_lora_dropout(peft_model) == len(layers) > 0
    assert all(isinstance(m.lora_dropout["default"], QuarterWordDropout) for m in layers)
    no_dropout = get_peft_model(load_model(tiny_manifest, device=torch.device("cpu"))[0],
                                lora_config(model, {**lora, "dropout": 0.0}))  # fmt: skip
    assert speed_up_lora_dropout(no_dropout) == 0  # PEFT's Identity stays


def test_cpu_training_runs_the_quarter_word_dropout(tiny_manifest: Manifest, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    calls = []
    forward = QuarterWordDropout.forward

    def counted(self: QuarterWordDropout, x: torch.Tensor) -> torch.Tensor:
        calls.append(self.training)
        return forward(self, x)

    monkeypatch.setattr(QuarterWordDropout, "forward", counted)
    forget = pd.DataFrame({"id": ["f-0", "f-1"], "person": "painter", "question": ["Where was he born?", "When?"],
                           "answer": ["In Lyon.", "In 1850."]})  # fmt: skip
    cfg = {"method": "grad_ascent", "settings": {}, "epochs": 1, "batch_size": 2, "grad_accum": 1,
           "lora": {"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": "all-linear", "layers": None},
           "learning_rate": 1e-3, "max_length": 64, "max_prompt_length": 48, "save_steps": 100, "seed": 0,
           "retain_weight": 0.0, "retain_kind": "nll", "precision": "fp32"}  # fmt: skip
    train(tiny_manifest, cfg, forget=forget, style=PromptStyle(), adapter_dir=tmp_path / "a",
          checkpoint_dir=tmp_path / "c")  # fmt: skip
    assert calls and all(calls)  # one training step: every LoRA layer's dropout ran, in training mode
