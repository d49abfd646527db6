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


def batched_vs_one(
    run: Callable[[int], list[Any]], batch_size: int, labels: tuple[str, str], count: Callable[[list[Any]], dict]
) -> tuple[list[dict], dict[int, list[Any]]]:
    """Rows for ``run`` at ``batch_size`` and at 1 (the baseline), and each run's outputs by batch size.

    ``count`` turns a run's outputs into the row's item/token counts; rates per second are added from them.
    """
    rows, outputs = [], {}
    for label, size in zip(labels, (batch_size, 1), strict=True):
        start = time.perf_counter()
        outputs[size] = run(size)
        seconds = time.perf_counter() - start
        counts = count(outputs[size])
        rows.append({"benchmark": label, **counts, "seconds": seconds,
                     **{f"{k}_per_s": v / seconds for k, v in counts.items()}})  # fmt: skip
    return rows, outputs


def bench_generation(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    batch_size: int,
    max_new_tokens: int,  # noqa: ANN401
) -> list[dict]:
    """Greedy answers to every prompt; the share of identical answers shows batching changes no output."""
    rows, outs = batched_vs_one(
        lambda size: generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=size),
        batch_size,
        (f"generation, batched (batch {batch_size}, length-sorted, KV cache)",
         "generation, one prompt at a time (baseline)"),
        lambda gens: {"items": len(gens), "tokens": sum(g.new_tokens for g in gens)},
    )  # fmt: skip
    rows[0]["ratio_vs_baseline"] = rows[0]["tokens_per_s"] / rows[1]["tokens_per_s"]
    same = sum(a.text == b.text for a, b in zip(outs[batch_size], outs[1], strict=True))
    rows[0]["identical_outputs"] = same / len(prompts)
    return rows


def bench_likelihood(model: Any, tokenizer: Any, requests: list[tuple[str, str]], batch_size: int) -> list[dict]:  # noqa: ANN401
    """Teacher-forced log-likelihoods of the true answers and every TruthfulQA option (answer probability,
    MC1/MC2); perplexity of generations is the same computation."""
    prompts, continuations = [r[0] for r in requests], [r[1] for r in requests]
    rows, lls = batched_vs_one(
        lambda size: continuation_logliks(model, tokenizer, prompts, continuations, batch_size=size),
        batch_size,
        (f"likelihood, batched (batch {batch_size}, length-sorted, LM head on answers only)",
         "likelihood, one item at a time (baseline)"),
        lambda out: {"items": len(out), "tokens": sum(ll.tokens for ll in out)},
    )  # fmt: skip
    rows[0]["ratio_vs_baseline"] = rows[0]["items_per_s"] / rows[1]["items_per_s"]
    rows[0]["max_abs_loglik_diff"] = max(abs(a.total - b.total) for a, b in zip(lls[batch_size], lls[1], strict=True))
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
