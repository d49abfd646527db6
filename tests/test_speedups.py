"""The inference speed-ups change no result: batched likelihoods (prompts shared by several continuations, when the
library shares them) equal one pair at a time, and greedy decoding that drops finished rows gives the answers of
``model.generate`` one prompt at a time."""

from __future__ import annotations

import pytest
import torch

from unlearning.inference.generation import generate, greedy_pruned, shared_opening
from unlearning.inference.likelihood import continuation_logliks
from unlearning.inference.prompting import build_prompt
from unlearning.models.checkpoints import Manifest, load_model

LOGLIK_TOLERANCE = 1e-4  # float32; a shared prompt's cache or padding is the same computation in another order

QUESTIONS = ["Who?", "Where was the famous scientist born, and in which year did she move to Paris?", "When?"]
# a multiple-choice item's options and a probe share the first prompt; an empty continuation; a one-token one
OPTIONS = [(0, "She was born in Warsaw."), (0, "In Paris, in 1891."), (0, "Never."), (1, "In 1867."), (2, ""),
           (2, "Yes"), (0, "A much longer option that has many more tokens than the other options do.")]  # fmt: skip


@pytest.mark.parametrize("which", ["tiny_manifest", "tiny_gemma3_manifest"])
@pytest.mark.parametrize("batch_size", [1, 2, 8])
def test_shared_prompt_likelihoods_equal_one_pair_at_a_time(
    which: str, batch_size: int, request: pytest.FixtureRequest
) -> None:
    manifest: Manifest = request.getfixturevalue(which)
    model, tokenizer = load_model(manifest, device=torch.device("cpu"))
    prompts = [build_prompt(tokenizer, q) for q in QUESTIONS]
    ps, cs = [prompts[i] for i, _ in OPTIONS], [c for _, c in OPTIONS]
    shared = continuation_logliks(model, tokenizer, ps, cs, batch_size=batch_size)
    alone = [continuation_logliks(model, tokenizer, [p], [c], batch_size=1)[0] for p, c in zip(ps, cs, strict=True)]
    for a, b in zip(shared, alone, strict=True):
        assert a.tokens == b.tokens
        assert a.total == pytest.approx(b.total, abs=LOGLIK_TOLERANCE)
    assert shared[4].tokens == 0 and shared[5].tokens >= 1


@pytest.mark.parametrize("which", ["tiny_manifest", "tiny_gemma3_manifest, wide window"])
def test_likelihoods_continue_from_the_opening_computed_once(
    which: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The opening every prompt shares (the chat template's system turn) runs once per call: every packed sequence
    starts after it and continues from a copy of its KV cache, with the scores of sequences that run it again (also
    for Gemma 3, whose local layers' window the rows fit in)."""
    from unlearning.inference import batching, likelihood

    model, tokenizer = load_model(request.getfixturevalue(which.split(",")[0]), device=torch.device("cpu"))
    if which.endswith("wide window"):
        model.config.get_text_config().sliding_window = 512
    prompts = [build_prompt(tokenizer, q) for q in QUESTIONS]
    ps, cs = [prompts[i] for i, _ in OPTIONS], [c for _, c in OPTIONS]
    opening = shared_opening(model, [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts], 0)
    assert opening is not None and opening.length >= batching.MIN_SHARED_PREFIX
    name = batching.cache_kwarg(model.get_decoder())
    passes: list[tuple[int, int | None]] = []  # (tokens per sequence, cached tokens) of every decoder pass
    handle = model.get_decoder().register_forward_pre_hook(
        lambda m, a, kw: passes.append((kw["input_ids"].shape[1], kw[name].get_seq_length() if kw.get(name) else None)),
        with_kwargs=True,
    )
    cached = continuation_logliks(model, tokenizer, ps, cs, batch_size=8, details=True)
    cached_passes, passes[:] = list(passes), []
    monkeypatch.setattr(likelihood, "shared_opening", lambda *args: None)  # each packed sequence runs the opening
    again = continuation_logliks(model, tokenizer, ps, cs, batch_size=8, details=True)
    handle.remove()
    # the opening's own pass, then one packed pass that continues from its cache and is shorter by its length
    assert cached_passes == [(opening.length, None), (passes[0][0] - opening.length, opening.length)]
    assert passes[0][1] is None
    for a, b in zip(cached, again, strict=True):
        assert a.tokens == b.tokens and a.total == pytest.approx(b.total, abs=LOGLIK_TOLERANCE)
        assert a.vocab_var == pytest.approx(b.vocab_var, abs=1e-3)


def test_a_repeated_continuation_is_scored_once_with_the_details_asked_for(tiny_manifest: Manifest) -> None:
    """TruthfulQA's best answer is also one of its correct answers: a prompt's repeated continuation runs once, and
    each copy gets the result (per-token details only where asked), as when scored on its own."""
    model, tokenizer = load_model(tiny_manifest, device=torch.device("cpu"))
    prompt = build_prompt(tokenizer, QUESTIONS[1])
    conts, details = (
        ["In Paris, in 1891.", "In Paris, in 1891.", "Never.", "In Paris, in 1891."],
        [False, True, False, False],
    )
    shared = continuation_logliks(model, tokenizer, [prompt] * 4, conts, batch_size=4, details=details)
    alone = continuation_logliks(model, tokenizer, [prompt], [conts[1]], batch_size=1, details=True)[0]
    for result in (shared[0], shared[1], shared[3]):
        assert result.tokens == alone.tokens and result.total == pytest.approx(alone.total, abs=LOGLIK_TOLERANCE)
    assert shared[1].token_logprobs == pytest.approx(alone.token_logprobs, abs=LOGLIK_TOLERANCE)
    assert shared[0].token_logprobs == () and shared[3].token_logprobs == ()
    assert shared[2].total != pytest.approx(shared[0].total)


@pytest.mark.parametrize("which", ["tiny_manifest", "tiny_gemma3_manifest"])
@pytest.mark.parametrize("stop_at_newline", [False, True])
def test_pruned_greedy_decoding_gives_the_answers_of_model_generate(
    which: str, stop_at_newline: bool, request: pytest.FixtureRequest
) -> None:
    manifest: Manifest = request.getfixturevalue(which)
    model, tokenizer = load_model(manifest, device=torch.device("cpu"))
    prompts = [build_prompt(tokenizer, q, chat_template=not stop_at_newline) for q in [*QUESTIONS, "Why not?"]]
    kwargs = {"max_new_tokens": 12, "stop_at_newline": stop_at_newline}
    pruned = generate(model, tokenizer, prompts, batch_size=4, **kwargs)
    reference = [generate(model, tokenizer, [p], batch_size=1, prune_finished=False, **kwargs)[0] for p in prompts]
    assert pruned == reference and all(g.new_tokens > 0 for g in pruned)
    # the chat prompts' system turn ran once and every batch continued from it (Gemma's 16-token test window is
    # too short for a shared opening with padding after it: it runs every prompt whole)
    opening = shared_opening(model, [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts], 12)
    shares = which == "tiny_manifest" and not stop_at_newline
    assert (opening is not None and opening.length >= 8) if shares else opening is None


def test_pruned_decoding_drops_rows_that_finished(tiny_manifest: Manifest) -> None:
    """A row whose first token is EOS leaves the batch at once: later steps run on the other rows only."""
    model, tokenizer = load_model(tiny_manifest, device=torch.device("cpu"))
    tokenizer.padding_side = "left"
    enc = tokenizer([build_prompt(tokenizer, q) for q in QUESTIONS], return_tensors="pt", padding=True,
                    add_special_tokens=False)  # fmt: skip
    [[first], *_] = greedy_pruned(model, enc["input_ids"][:1], enc["attention_mask"][:1], 1, set())
    widths: list[int] = []
    handle = model.register_forward_pre_hook(lambda m, args, kw: widths.append(kw["input_ids"].shape[0]),
                                             with_kwargs=True)  # fmt: skip
    try:
        rows = greedy_pruned(model, enc["input_ids"], enc["attention_mask"], 6, {first})
    finally:
        handle.remove()
    assert rows[0] == [first], "the row that produced EOS stopped"
    assert widths[0] == 3 and max(widths[1:], default=0) <= 2, widths


def test_pruned_decoding_runs_through_a_lora_adapter(tiny_manifest: Manifest) -> None:
    """The generate stage of an unlearned variant decodes through PEFT's wrapper: same answers as model.generate."""
    from peft import LoraConfig, get_peft_model

    model, tokenizer = load_model(tiny_manifest, device=torch.device("cpu"))
    torch.manual_seed(0)
    model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False)).eval()
    prompts = [build_prompt(tokenizer, q) for q in QUESTIONS]
    pruned = generate(model, tokenizer, prompts, max_new_tokens=8, batch_size=3)
    kwargs = {"max_new_tokens": 8, "batch_size": 1, "prune_finished": False}
    reference = [generate(model, tokenizer, [p], **kwargs)[0] for p in prompts]
    assert pruned == reference


@pytest.mark.parametrize("which", ["tiny_manifest", "tiny_gemma3_manifest", "tiny_gemma3_manifest, wide window"])
@pytest.mark.parametrize(
    "shape",
    ["distinct prompts", "pairs", "pairs without a template", "several sequences", "nothing shared", "checkpointing"],
)
def test_packed_training_gives_the_logits_and_gradients_of_the_plain_forward(
    which: str, shape: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Training's decoder runs the rows packed without padding, the common opening once and, for the DPO family's
    pairs, each prompt once (LoRA on): the answer logits and every LoRA gradient equal those of one plain forward
    over the padded rows, also when the rows fill several packed sequences and under activation checkpointing.
    Rows that share nothing run the plain forward (packing alone does not pay)."""
    from peft import LoraConfig, get_peft_model

    from unlearning.inference import batching, packed_rows
    from unlearning.inference.packed_rows import answer_logits
    from unlearning.training.engine import collate_sequences

    model, tokenizer = load_model(request.getfixturevalue(which.split(",")[0]), device=torch.device("cpu"))
    if which.endswith("wide window"):  # Gemma 3's local layers with a window the rows fit in: packed
        model.config.get_text_config().sliding_window = 512
    if shape == "checkpointing":  # activation checkpointing recomputes the packed forward like the plain one
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)
    model = get_peft_model(model, config).train()
    questions = ["Who?", "Where was she born?", "When?"]
    answers = ["Marie Curie.", "In Warsaw, Poland.", "1867"]
    if shape not in (
        "distinct prompts",
        "nothing shared",
    ):  # chosen then rejected, as the DPO family's forward concatenates them
        questions, answers = questions + questions, answers + ["Pierre.", "In Paris, France, in a small flat.", "1"]
    if shape == "several sequences":
        monkeypatch.setattr(packed_rows, "PACK_TOKENS", 40)  # each pair's prompt and answers in its own sequence
    rows = []
    for question, answer in zip(questions, answers, strict=True):
        prompt = build_prompt(tokenizer, question, chat_template="template" not in shape and shape != "nothing shared")
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        rows.append((ids + tokenizer(" " + answer, add_special_tokens=False)["input_ids"], len(ids)))
    batch = collate_sequences(rows, tokenizer.pad_token_id)
    passes: list[tuple[int, int]] = []
    decoder = model.get_base_model().get_decoder()
    handle = decoder.register_forward_pre_hook(
        lambda m, a, kw: passes.append(tuple(kw["input_ids"].shape)), with_kwargs=True
    )

    def logits_and_grads() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        logits, targets, rows = answer_logits(model, batch)
        torch.nn.functional.cross_entropy(logits, targets).backward()
        grads = [p.grad.clone() for n, p in model.named_parameters() if "lora_" in n]
        return logits.detach(), targets, rows, grads

    packed_logits, packed_targets, packed_rows_, packed_grads = logits_and_grads()
    packed_passes, passes[:] = list(passes), []
    monkeypatch.setattr(batching, "SHARE_PROMPTS", False)  # the plain forward over the padded rows
    plain_logits, plain_targets, plain_rows, plain_grads = logits_and_grads()
    handle.remove()
    assert passes == [tuple(batch["input_ids"].shape)]
    # one pass; a packed sequence holds fewer tokens than the padded batch (Gemma's 16-token test window is
    # shorter than the rows: one mask cannot give its local layers their window, so it runs the plain forward)
    if which == "tiny_gemma3_manifest" or shape == "nothing shared":
        assert packed_passes == passes
    else:
        [(sequences, width)] = packed_passes
        assert sequences == (3 if shape == "several sequences" else 1)
        assert sequences * width < batch["input_ids"].numel()
    assert torch.equal(packed_targets, plain_targets) and torch.equal(packed_rows_, plain_rows)
    torch.testing.assert_close(packed_logits, plain_logits, atol=1e-4, rtol=1e-4)
    assert len(packed_grads) == len(plain_grads) > 0
    for packed, plain in zip(packed_grads, plain_grads, strict=True):
        torch.testing.assert_close(packed, plain, atol=1e-5, rtol=1e-3)


def lora_model(manifest: Manifest, dtype: torch.dtype = torch.float32, targets: str | list[str] = "all-linear"):  # noqa: ANN201
    """A model with a random (non-zero) LoRA adapter, as an unlearned variant is loaded."""
    from peft import LoraConfig, get_peft_model

    model, tokenizer = load_model(manifest, device=torch.device("cpu"), dtype=dtype)
    torch.manual_seed(0)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=False)  # scale 2, as the default
    return get_peft_model(model, lora).eval(), tokenizer


def test_a_merged_adapter_gives_the_adapters_logits_and_answers_and_is_unmerged_after(tiny_manifest: Manifest) -> None:
    """generate and score run an unlearned variant on its adapter merged into the float32 weights (PEFT's LoRA
    layers cost two more products and Python dispatch per layer and token): same logits within float32 rounding,
    same greedy answers, and the adapter as it was afterwards."""
    from unlearning.models.adapters import merged_for_inference

    model, tokenizer = lora_model(tiny_manifest)
    prompts = [build_prompt(tokenizer, q) for q in QUESTIONS]
    ids = tokenizer(prompts[1], return_tensors="pt", add_special_tokens=False)["input_ids"]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        answers = generate(model, tokenizer, prompts, max_new_tokens=8, batch_size=3)
        with merged_for_inference(model) as merged:
            assert merged
            assert torch.allclose(model(input_ids=ids).logits, expected, atol=1e-5)
            assert generate(model, tokenizer, prompts, max_new_tokens=8, batch_size=3) == answers
        assert torch.allclose(model(input_ids=ids).logits, expected, atol=1e-5)
    for name, param in model.named_parameters():
        assert torch.allclose(param, before[name], atol=1e-6), f"{name} not restored"


@pytest.mark.parametrize("case", ["bf16 weights", "an adapter on the tied embeddings", "no adapter"])
def test_no_merge_where_the_merged_model_would_differ(
    case: str, tiny_manifest: Manifest, tiny_tied_manifest: Manifest
) -> None:
    """bf16 cannot hold most LoRA deltas (its rounding step is 2^-8 of a weight), and merging into a tied embedding
    changes both tied layers: the adapter then runs unmerged, untouched."""
    from unlearning.models.adapters import merged_for_inference

    if case == "bf16 weights":
        model, _ = lora_model(tiny_manifest, dtype=torch.bfloat16)
    elif case == "an adapter on the tied embeddings":
        model, _ = lora_model(tiny_tied_manifest, targets=["q_proj", "lm_head"])
    else:
        model, _ = load_model(tiny_manifest, device=torch.device("cpu"))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with merged_for_inference(model) as merged:
        assert not merged
        assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


@pytest.mark.parametrize("speed_up", ["merged adapter", "packed rows"])
def test_scores_with_a_speed_up_equal_those_without(
    speed_up: str, tiny_manifest: Manifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The score stage's per-row values with the adapter merged equal those of the adapter run unmerged; with the
    requests packed (shared opening and prompts once, no padding) they equal those of padded rows."""
    import contextlib

    import pandas as pd

    from unlearning.inference import batching
    from unlearning.inference.prompting import PromptStyle
    from unlearning.scoring import evaluation

    model, tokenizer = lora_model(tiny_manifest)
    style = PromptStyle(instruction="Give only one sentence answer.")
    rows = [(f"{s}-{i}", "Ada", f"{s} question {i}?", f"Answer {i}.", s) for s in ("forget_train", "retain_test")
            for i in range(3)]  # fmt: skip
    qa = pd.DataFrame(rows, columns=["id", "person", "question", "answer", "split"])
    questions = evaluation.evaluation_questions(qa, pd.DataFrame(columns=["id", "question", "best_answer"]))
    gens = evaluation.answer_questions(model, tokenizer, questions, style, max_new_tokens=6, batch_size=4)
    wrong = {qid: ["Answer 9.", "Answer 8."] for qid in qa["id"]}
    no_tqa = pd.DataFrame(columns=["id"])
    merged = evaluation.score_answers(model, tokenizer, gens, no_tqa, style, batch_size=4, wrong=wrong)
    if speed_up == "merged adapter":
        from unlearning.models import adapters

        monkeypatch.setattr(adapters, "merged_for_inference", lambda model: contextlib.nullcontext(False))
    else:
        monkeypatch.setattr(batching, "SHARE_PROMPTS", False)
    plain = evaluation.score_answers(model, tokenizer, gens, no_tqa, style, batch_size=4, wrong=wrong)
    numeric = [c for c in plain.columns if pd.api.types.is_float_dtype(plain[c])]
    assert len(numeric) > 8
    for column in numeric:
        # Min-K%++ divides by the spread of log p over the vocabulary, small on a random model's flat distribution:
        # float32 reordering alone moves it by about 2e-4 of its value (the real SmolLM2 scores: 1.9e-4 at most)
        rel = 5e-4 if column == "mink_pp" else 1e-4
        assert merged[column].tolist() == pytest.approx(plain[column].tolist(), rel=rel, abs=1e-6, nan_ok=True), column
