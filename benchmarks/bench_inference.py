"""Generation and likelihood scoring of the embedded default's evaluation questions, batched (this project) against
one item at a time (how the study generated), on the same model and prompts."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from unlearning.evaluation import evaluation_questions, likelihood_requests, prompts_for
from unlearning.generation import generate
from unlearning.likelihood import continuation_logliks
from unlearning.prompting import PromptStyle


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def bench_generation(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    batch_size: int,
    max_new_tokens: int,  # noqa: ANN401
) -> list[dict]:
    """Greedy answers to every prompt; the share of identical answers shows batching changes no output."""
    rows, texts = [], {}
    for label, size in {
        f"generation, batched (batch {batch_size}, length-sorted, KV cache)": batch_size,
        "generation, one prompt at a time (baseline)": 1,
    }.items():
        outs, seconds = timed(
            lambda size=size: generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=size)
        )
        tokens = sum(o.new_tokens for o in outs)
        texts[size] = [o.text for o in outs]
        rows.append(
            {"benchmark": label, "items": len(prompts), "tokens": tokens, "seconds": seconds,
             "tokens_per_s": tokens / seconds, "items_per_s": len(prompts) / seconds}
        )  # fmt: skip
    rows[0]["ratio_vs_baseline"] = rows[0]["tokens_per_s"] / rows[1]["tokens_per_s"]
    rows[0]["identical_outputs"] = sum(a == b for a, b in zip(texts[batch_size], texts[1], strict=True)) / len(prompts)
    return rows


def bench_likelihood(model: Any, tokenizer: Any, requests: list[tuple[str, str]], batch_size: int) -> list[dict]:  # noqa: ANN401
    """Teacher-forced log-likelihoods of the true answers and every TruthfulQA option (answer probability,
    MC1/MC2); perplexity of generations is the same computation."""
    prompts, continuations = [r[0] for r in requests], [r[1] for r in requests]
    rows, totals = [], {}
    for label, size in {
        f"likelihood, batched (batch {batch_size}, length-sorted, LM head on answers only)": batch_size,
        "likelihood, one item at a time (baseline)": 1,
    }.items():
        lls, seconds = timed(
            lambda size=size: continuation_logliks(model, tokenizer, prompts, continuations, batch_size=size)
        )
        totals[size] = [ll.total for ll in lls]
        rows.append(
            {"benchmark": label, "items": len(requests), "tokens": sum(ll.tokens for ll in lls),
             "seconds": seconds, "items_per_s": len(requests) / seconds}
        )  # fmt: skip
    rows[0]["ratio_vs_baseline"] = rows[0]["items_per_s"] / rows[1]["items_per_s"]
    diffs = [abs(a - b) for a, b in zip(totals[batch_size], totals[1], strict=True)]
    rows[0]["max_abs_loglik_diff"] = max(diffs)
    return rows


def bench_inference(
    model: Any,  # noqa: ANN401
    tokenizer: Any,  # noqa: ANN401
    qa: pd.DataFrame,
    truthfulqa: pd.DataFrame,
    style: PromptStyle,
    cfg: dict,
    only: set[str],
) -> list[dict]:
    questions = evaluation_questions(qa, truthfulqa)
    prompts = prompts_for(tokenizer, questions["question"], style)
    rows = []
    if "generation" in only:
        gen = cfg["generate"]
        rows += bench_generation(model, tokenizer, prompts, gen["batch_size"], gen["max_new_tokens"])
    if "likelihood" in only:
        requests, _ = likelihood_requests(questions, prompts, truthfulqa)
        rows += bench_likelihood(model, tokenizer, requests, cfg["score"]["batch_size"])
    return rows
