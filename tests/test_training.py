"""The unlearning engine on a tiny model: learning signal, adapter round trip, retain term, precision, resume."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from unlearning.inference.likelihood import continuation_logliks
from unlearning.inference.prompting import PromptStyle, build_prompt
from unlearning.models.checkpoints import Manifest, load_model
from unlearning.training.engine import LOG_COLUMNS, RetainBatches, TrainResult, train

STYLE = PromptStyle(instruction="Give only one sentence answer.")


def settings(**overrides) -> dict:  # noqa: ANN003
    """Resolved settings of one unlearn entry (as unlearning.config.settings.unlearn_settings returns them)."""
    cfg = {
        "method": "dpo",
        "settings": {},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear", "layers": None},
        "learning_rate": 5e-3,
        "epochs": 3,
        "batch_size": 4,
        "grad_accum": 1,
        "max_length": 96,
        "max_prompt_length": 64,
        "save_steps": 100,
        "seed": 0,
        "retain_weight": 0.0,
        "retain_kind": "nll",
        "retain_split": ["retain"],
        "precision": "fp32",
        "gradient_checkpointing": False,
    }
    cfg.update(overrides)
    return cfg


def pairs(n: int = 8) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "prompt": [f"Where was the painter number {i} born?" for i in range(n)],
            "chosen": [f"The painter was born in Lyon in {1800 + i}." for i in range(n)],
            "rejected": [f"The painter was born in Vienna in {1900 + i}." for i in range(n)],
            "kind": "perturbed",
            "source_id": [f"f-{i}" for i in range(n)],
        }
    )


PAIRS = pairs()
FORGET = pd.DataFrame(
    {"id": PAIRS["source_id"], "person": "painter", "question": PAIRS["prompt"], "answer": PAIRS["rejected"]}
)
RETAIN = pd.DataFrame(
    {
        "question": [f"Where was the composer number {i} born?" for i in range(4)],
        "answer": [f"The composer was born in Vienna in {1700 + i}." for i in range(4)],
    }
)


def train_with(manifest: Manifest, tmp_path: Path, cfg: dict, n_pairs: int = 8) -> TrainResult:
    p = pairs(n_pairs)
    forget = pd.DataFrame({"id": p["source_id"], "person": "painter", "question": p["prompt"], "answer": p["rejected"]})
    return train(
        manifest, cfg, forget=forget, pairs=p, retain=RETAIN, style=STYLE,
        adapter_dir=tmp_path / "a", checkpoint_dir=tmp_path / "c",
    )  # fmt: skip


def mean_loglik(model, tokenizer, questions, answers) -> float:  # noqa: ANN001
    prompts = [build_prompt(tokenizer, q, **vars(STYLE)) for q in questions]
    lls = continuation_logliks(model, tokenizer, prompts, list(answers), batch_size=8)
    return sum(ll.mean for ll in lls) / len(lls)


def test_dpo_learns_and_adapter_round_trips(tiny_manifest: Manifest, tmp_path: Path) -> None:
    log = train_with(tiny_manifest, tmp_path, settings()).log
    assert list(log.columns[: len(LOG_COLUMNS)]) == list(LOG_COLUMNS) and list(log["step"]) == list(range(1, 7))
    assert log["loss"].iloc[-1] < log["loss"].iloc[0] - 0.05
    assert log["rewards_margins"].iloc[-1] > log["rewards_margins"].iloc[0] + 0.1
    assert log["seconds"].is_monotonic_increasing and log["num_tokens"].is_monotonic_increasing
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert "adapter_model.safetensors" in files and "adapter_config.json" in files
    assert not any(f.startswith("model") for f in files), "only the adapter is saved, never a full model"
    assert not (tmp_path / "c").exists(), "checkpoints are removed after a finished run"
    cpu = torch.device("cpu")
    base, tokenizer = load_model(tiny_manifest, device=cpu)
    unlearned, _ = load_model(tiny_manifest, adapter=tmp_path / "a", device=cpu)
    before = mean_loglik(base, tokenizer, PAIRS["prompt"], PAIRS["rejected"])
    after = mean_loglik(unlearned, tokenizer, PAIRS["prompt"], PAIRS["rejected"])
    assert after < before, "the reloaded adapter lowers the probability of the true (rejected) answers"


def test_checkpoints_every_save_steps_but_not_at_the_end(
    tiny_manifest: Manifest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checkpoints serve resuming a killed job; the one the Trainer would write after the last step (adapter,
    optimizer state) is deleted unread with the folder, so it is not written."""
    from transformers import Trainer

    saved: list[int] = []
    original = Trainer._save_checkpoint

    def spy(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        saved.append(self.state.global_step)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "_save_checkpoint", spy)
    train_with(tiny_manifest, tmp_path, settings(epochs=2, save_steps=2))  # 4 steps
    assert saved == [2]
    assert (tmp_path / "a" / "adapter_model.safetensors").is_file() and not (tmp_path / "c").exists()


def test_retain_term_reduces_collateral_forgetting(tiny_manifest: Manifest, tmp_path: Path) -> None:
    cpu = torch.device("cpu")
    base, tokenizer = load_model(tiny_manifest, device=cpu)
    before = mean_loglik(base, tokenizer, RETAIN["question"], RETAIN["answer"])
    drops = {}
    for weight in (0.0, 1.0):
        train_with(tiny_manifest, tmp_path / f"w{weight}", settings(method="grad_diff", retain_weight=weight))
        model, _ = load_model(tiny_manifest, adapter=tmp_path / f"w{weight}" / "a", device=cpu)
        drops[weight] = before - mean_loglik(model, tokenizer, RETAIN["question"], RETAIN["answer"])
    assert drops[1.0] < drops[0.0] - 0.05, drops


def test_retain_batches_depend_only_on_the_step() -> None:
    examples = [([i, i + 1, i + 2], 1) for i in range(5)]
    a, b = RetainBatches(examples, 2, seed=7, pad_id=0), RetainBatches(examples, 2, seed=7, pad_id=0)
    assert a.per_pass == 3
    for step in (4, 0, 9):  # asked for in any order, the same batch
        torch.testing.assert_close(a[step]["input_ids"], b[step]["input_ids"])
    first_pass = torch.cat([a[i]["input_ids"][:, 0] for i in range(3)]).tolist()
    assert sorted(first_pass) == list(range(5)), "one pass covers every retain example once"


def test_retain_weight_without_retain_questions_is_an_error(tiny_manifest: Manifest, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unlearn\.unlearn: retain_weight is 1\.0 but the retain split has no"):
        train(tiny_manifest, settings(retain_weight=1.0), forget=FORGET, pairs=PAIRS, retain=RETAIN.iloc[:0],
              style=STYLE, adapter_dir=tmp_path / "a", checkpoint_dir=tmp_path / "c")  # fmt: skip


RESUME_SCRIPT = """
import json, sys
import pandas as pd
from unlearning.models.checkpoints import Manifest
from unlearning.inference.prompting import PromptStyle
from unlearning.training.engine import train
args = json.loads(sys.argv[1])
pairs = pd.read_json(args["pairs"])
forget = pd.DataFrame({"id": pairs["source_id"], "person": "p", "question": pairs["prompt"],
                       "answer": pairs["rejected"]})
result = train(Manifest(**args["manifest"]), args["cfg"], forget=forget, pairs=pairs, style=PromptStyle(),
               adapter_dir=args["adapter"], checkpoint_dir=args["ckpt"])
print(json.dumps({"resumed_from_step": result.resumed_from_step, "steps": result.log["step"].tolist(),
                  "tokens": result.log["num_tokens"].tolist()}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dpo", "npo"])
def test_killed_training_resumes_from_last_checkpoint(method: str, tiny_manifest: Manifest, tmp_path: Path) -> None:
    pairs(16).to_json(tmp_path / "pairs.json")
    cfg = settings(method=method, save_steps=3, epochs=4, batch_size=2)  # 32 steps
    args = {
        "manifest": vars(tiny_manifest),
        "pairs": str(tmp_path / "pairs.json"),
        "cfg": cfg,
        "adapter": str(tmp_path / "adapter"),
        "ckpt": str(tmp_path / "ckpt"),
    }
    cmd = [sys.executable, "-c", RESUME_SCRIPT, json.dumps(args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not list((tmp_path / "ckpt").glob("checkpoint-6/trainer_state.json")):
        assert proc.poll() is None, "training ended before a checkpoint could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "adapter").exists()
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["resumed_from_step"] >= 6
    assert report["steps"] == list(range(1, 33)), "the log holds the steps before and after the kill"
    assert report["tokens"] == sorted(report["tokens"]), "token counts carry on from the interrupted run"
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()


def test_merged_export_matches_the_adapter(tiny_manifest: Manifest, tmp_path: Path) -> None:
    from unlearning.training.engine import merge_adapter

    train_with(tiny_manifest, tmp_path, settings(), n_pairs=4)
    cpu = torch.device("cpu")
    with_adapter, tokenizer = load_model(tiny_manifest, adapter=tmp_path / "a", device=cpu)
    merge_adapter(with_adapter, tokenizer, tmp_path / "merged")
    assert (tmp_path / "merged" / "model.safetensors").is_file()
    merged, _ = load_model(Manifest("merged", str(tmp_path / "merged"), "local"), device=cpu)
    adapted, _ = load_model(tiny_manifest, adapter=tmp_path / "a", device=cpu)
    ids = torch.tensor([tokenizer("Where was the painter number 1 born?")["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, adapted(ids).logits, atol=1e-4)


@pytest.mark.parametrize(
    "targets", ["all-linear", ["q_proj", "v_proj", "lm_head"], ["q_proj", "embed_tokens"]], ids=str
)
def test_merging_into_tied_embeddings_keeps_the_adapters_logits(
    targets: str | list[str], tiny_tied_manifest: Manifest, tmp_path: Path
) -> None:
    """SmolLM2 ties its input and output embeddings. An adapter on either tied layer, merged into the one shared
    tensor, changed both, and the reload re-tied them: the merged model's logits differed from the adapter model's
    by up to 7 (lm_head) and 670 (embed_tokens). Merged, saved and reloaded, they must be equal."""
    from unlearning.training.engine import merge_adapter

    lora = {**settings()["lora"], "target_modules": targets}
    train_with(tiny_tied_manifest, tmp_path, settings(lora=lora, epochs=1), n_pairs=4)
    cpu = torch.device("cpu")
    adapted, tokenizer = load_model(tiny_tied_manifest, adapter=tmp_path / "a", device=cpu)
    ids = torch.tensor([tokenizer("Where was the painter number 1 born?")["input_ids"]])
    with torch.no_grad():
        expected = adapted(ids).logits
        base = adapted.get_base_model()
        with adapted.disable_adapter():
            assert not torch.allclose(adapted(ids).logits, expected, atol=1e-3), "the adapter changes the logits"
    tied_before = base.get_output_embeddings().weight is base.get_input_embeddings().weight
    merge_adapter(adapted, tokenizer, tmp_path / "merged")
    merged, _ = load_model(Manifest("merged", str(tmp_path / "merged"), "local"), device=cpu)
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, expected, atol=1e-4)
    still_tied = merged.get_output_embeddings().weight is merged.get_input_embeddings().weight
    assert still_tied == (targets == "all-linear" and tied_before), "untied only where the adapter changes them"


def test_a_diverging_run_stops_at_the_first_non_finite_loss(tiny_manifest: Manifest, tmp_path: Path) -> None:
    """Gradient ascent at a learning rate of 1e30: the first step's update makes the weights infinite, the next
    loss is NaN. Before, the job succeeded and saved an adapter of NaN and inf (the log's loss read 0)."""
    from unlearning.training.engine import NonFiniteLoss

    cfg = settings(method="grad_ascent", learning_rate=1.0e30, save_steps=1, epochs=2)
    with pytest.raises(NonFiniteLoss, match=r"step 2: method 'grad_ascent' gave a non-finite forget_loss and loss"):
        train_with(tiny_manifest, tmp_path, cfg)
    assert not (tmp_path / "a").exists(), "no adapter is written"
    assert sorted(p.name for p in (tmp_path / "c").glob("checkpoint-*")) == ["checkpoint-1"], "none after step 1"


def test_non_finite_trained_weights_are_never_saved() -> None:
    """A last step can diverge after its finite loss: the weights it leaves are checked before saving."""
    from unlearning.training.engine import NonFiniteLoss, check_adapter_trained, check_finite_loss

    layer = torch.nn.Linear(2, 2)
    layer.lora_B = torch.nn.Parameter(torch.tensor([[1.0, float("inf")]]))
    with pytest.raises(NonFiniteLoss, match="non-finite values in 1 trained weight"):
        check_adapter_trained(layer)
    check_finite_loss({"forget_loss": 1.0, "retain_loss": 0.5, "loss": 2.0}, step=3, method="npo", lr=1e-4)
    with pytest.raises(NonFiniteLoss, match=r"step 3: method 'npo' gave a non-finite retain_loss .*retain_loss inf"):
        check_finite_loss({"forget_loss": 1.0, "retain_loss": math.inf, "loss": math.inf}, step=3, method="npo", lr=1)


def test_bf16_training_keeps_an_fp32_adapter_and_learns(tiny_manifest: Manifest, tmp_path: Path) -> None:
    """precision: bf16 trains on bf16 weights (native or not) and still moves the DPO margin."""
    margins = train_with(tiny_manifest, tmp_path, settings(precision="bf16")).log["rewards_margins"]
    assert margins.iloc[-1] > margins.iloc[0] + 0.05
    from safetensors.torch import load_file

    weights = load_file(tmp_path / "a" / "adapter_model.safetensors")
    assert {t.dtype for t in weights.values()} == {torch.float32}


def test_gradient_checkpointing_trains_the_adapter(tiny_manifest: Manifest, tmp_path: Path) -> None:
    """PEFT with gradient checkpointing needs input gradients, or nothing trains (open-unlearning issue 178)."""
    log = train_with(tiny_manifest, tmp_path, settings(method="npo", gradient_checkpointing=True, epochs=1)).log
    assert log["forget_loss"].iloc[-1] < log["forget_loss"].iloc[0]


def test_same_settings_train_the_same_adapter_whatever_the_global_rng(tiny_manifest: Manifest, tmp_path: Path) -> None:
    """LoRA's random initialisation and dropout follow the training seed, not whatever ran before."""
    from safetensors.torch import load_file

    weights = []
    for run, noise in enumerate((1, 2)):
        torch.manual_seed(noise)
        cfg = settings(method="npo", epochs=1, lora={**settings()["lora"], "dropout": 0.1})
        train_with(tiny_manifest, tmp_path / str(run), cfg)
        weights.append(load_file(tmp_path / str(run) / "a" / "adapter_model.safetensors"))
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        torch.testing.assert_close(weights[0][key], weights[1][key], rtol=0, atol=0)
