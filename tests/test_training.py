"""DPO + LoRA training on a tiny model: learning signal, adapter round trip, retain term, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import pandas as pd
import pytest
import torch
import trl.trainer.utils as trl_utils
from transformers import AutoModelForCausalLM

from unlearning.likelihood import continuation_logliks
from unlearning.models import Manifest, load_model
from unlearning.prompting import PromptStyle, build_prompt
from unlearning.training import LOG_COLUMNS, completion_positions_only, train

STYLE = PromptStyle(instruction="Give only one sentence answer.")


def settings(**overrides) -> dict:  # noqa: ANN003
    cfg = {
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear"},
        "dpo": {
            "beta": 0.1,
            "loss_type": "sigmoid",
            "learning_rate": 5e-3,
            "epochs": 3,
            "batch_size": 4,
            "grad_accum": 1,
            "max_length": 96,
            "max_prompt_length": 64,
        },
        "save_steps": 100,
        "seed": 0,
        "retain_weight": 0.0,
        "precision": "fp32",
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


RETAIN = pd.DataFrame(
    {
        "question": [f"Where was the composer number {i} born?" for i in range(4)],
        "answer": [f"The composer was born in Vienna in {1700 + i}." for i in range(4)],
    }
)


def mean_loglik(model, tokenizer, questions, answers) -> float:  # noqa: ANN001
    prompts = [build_prompt(tokenizer, q, **vars(STYLE)) for q in questions]
    lls = continuation_logliks(model, tokenizer, prompts, list(answers), batch_size=8)
    return sum(ll.mean for ll in lls) / len(lls)


def test_dpo_learns_and_adapter_round_trips(tiny_manifest: Manifest, tmp_path: Path) -> None:
    result = train(
        tiny_manifest, pairs(), settings(), style=STYLE, adapter_dir=tmp_path / "a", checkpoint_dir=tmp_path / "c"
    )
    log = result.log
    assert list(log.columns) == list(LOG_COLUMNS) and list(log["step"]) == list(range(1, 7))
    assert log["loss"].iloc[-1] < log["loss"].iloc[0] - 0.05
    assert log["rewards_margins"].iloc[-1] > log["rewards_margins"].iloc[0] + 0.1
    assert log["seconds"].is_monotonic_increasing and (log["num_tokens"] > 0).all()
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert "adapter_model.safetensors" in files and "adapter_config.json" in files
    assert not any(f.startswith("model") for f in files), "only the adapter is saved, never a full model"
    assert not (tmp_path / "c").exists(), "checkpoints are removed after a finished run"
    cpu = torch.device("cpu")
    base, tokenizer = load_model(tiny_manifest, device=cpu)
    unlearned, _ = load_model(tiny_manifest, adapter=tmp_path / "a", device=cpu)
    p = pairs()
    before = mean_loglik(base, tokenizer, p["prompt"], p["rejected"])
    after = mean_loglik(unlearned, tokenizer, p["prompt"], p["rejected"])
    assert after < before, "the reloaded adapter lowers the probability of the true (rejected) answers"


def test_retain_term_reduces_collateral_forgetting(tiny_manifest: Manifest, tmp_path: Path) -> None:
    cpu = torch.device("cpu")
    base, tokenizer = load_model(tiny_manifest, device=cpu)
    before = mean_loglik(base, tokenizer, RETAIN["question"], RETAIN["answer"])
    drops = {}
    for weight in (0.0, 1.0):
        out = tmp_path / f"w{weight}"
        train(
            tiny_manifest,
            pairs(),
            settings(retain_weight=weight),
            style=STYLE,
            adapter_dir=out,
            checkpoint_dir=tmp_path / f"c{weight}",
            retain=RETAIN,
        )
        model, _ = load_model(tiny_manifest, adapter=out, device=cpu)
        drops[weight] = before - mean_loglik(model, tokenizer, RETAIN["question"], RETAIN["answer"])
    assert drops[1.0] < drops[0.0] - 0.05, drops


RESUME_SCRIPT = """
import json, sys
import pandas as pd
from unlearning.models import Manifest
from unlearning.prompting import PromptStyle
from unlearning.training import train
args = json.loads(sys.argv[1])
result = train(Manifest(**args["manifest"]), pd.read_json(args["pairs"]), args["cfg"], style=PromptStyle(),
               adapter_dir=args["adapter"], checkpoint_dir=args["ckpt"])
print(json.dumps({"resumed_from_step": result.resumed_from_step, "steps": result.log["step"].tolist()}))
"""


@pytest.mark.slow
def test_killed_training_resumes_from_last_checkpoint(tiny_manifest: Manifest, tmp_path: Path) -> None:
    pairs(16).to_json(tmp_path / "pairs.json")
    cfg = settings(save_steps=3, dpo={**settings()["dpo"], "epochs": 4, "batch_size": 2})  # 32 steps
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
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()


def test_merged_export_matches_the_adapter(tiny_manifest: Manifest, tmp_path: Path) -> None:
    from unlearning.training import merge_adapter

    train(tiny_manifest, pairs(4), settings(), style=STYLE, adapter_dir=tmp_path / "a", checkpoint_dir=tmp_path / "c")
    cpu = torch.device("cpu")
    with_adapter, tokenizer = load_model(tiny_manifest, adapter=tmp_path / "a", device=cpu)
    merge_adapter(with_adapter, tokenizer, tmp_path / "merged")
    assert (tmp_path / "merged" / "model.safetensors").is_file()
    merged, _ = load_model(Manifest("merged", str(tmp_path / "merged"), "local"), device=cpu)
    adapted, _ = load_model(tiny_manifest, adapter=tmp_path / "a", device=cpu)
    ids = torch.tensor([tokenizer("Where was the painter number 1 born?")["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, adapted(ids).logits, atol=1e-4)


def test_cpu_head_projects_only_answer_positions_with_the_same_result(tiny_model_dir: Path, monkeypatch) -> None:  # noqa: ANN001
    """The CPU speed-up of the fused LM head changes how many rows it projects, not what it returns."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    trl_utils.add_fused_lm_head(model, outputs=("log_probs", "entropy"))
    ids = torch.randint(0, model.config.vocab_size, (3, 20), generator=torch.Generator().manual_seed(0))
    labels = ids.clone()
    labels[:, :12] = -100  # prompt positions
    labels[1, -4:] = -100  # padding of a shorter answer
    rows = []
    original = trl_utils._ChunkedLogProbFunction

    class Spy:
        @staticmethod
        def apply(hidden, *args):  # noqa: ANN001, ANN205
            rows.append(hidden.shape[0])
            return original.apply(hidden, *args)

    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", Spy)
    results = []
    for compact in (False, True):
        model.zero_grad()
        with completion_positions_only() if compact else nullcontext():
            out = model(input_ids=ids, labels=labels, fused_lm_head=True)
        out.loss.backward()
        grad = model.get_output_embeddings().weight.grad.clone()
        results.append((out, grad))
    assert rows == [3 * 19, int((labels[:, 1:] != -100).sum())]
    (full, full_grad), (compact, compact_grad) = results
    torch.testing.assert_close(compact.log_probs, full.log_probs)
    torch.testing.assert_close(compact.entropy, full.entropy)
    torch.testing.assert_close(compact_grad, full_grad)
    assert trl_utils._use_triton(torch.device("cpu")) is False  # restored after the block


def test_bf16_training_keeps_an_fp32_adapter_and_learns(tiny_manifest: Manifest, tmp_path: Path) -> None:
    """precision: bf16 trains on bf16 weights (native or not) and still moves the DPO margin."""
    result = train(
        tiny_manifest,
        pairs(),
        settings(precision="bf16"),
        style=STYLE,
        adapter_dir=tmp_path / "adapter",
        checkpoint_dir=tmp_path / "ckpt",
    )
    margins = result.log["rewards_margins"]
    assert margins.iloc[-1] > margins.iloc[0] + 0.05
    from safetensors.torch import load_file

    weights = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    assert {t.dtype for t in weights.values()} == {torch.float32}
