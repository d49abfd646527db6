"""Generation and likelihood scoring of the embedded default's evaluation questions, batched (this project) against
one item at a time (how the study generated), on the same model and prompts, with each speed-up's share:

* generation: greedy decoding that drops finished rows (this project), the same without the shared opening (the
  chat template's system turn encoded once per call), ``model.generate`` on the same length-sorted batches (every
  row decoded until the batch's longest answer ends), one prompt at a time;
* likelihood: the library's batched scoring (a batch's requests packed without padding, the shared opening and each
  prompt once per packed sequence, the LM head on continuation positions only), the same batches padded (nothing
  packed or shared, the LM head still on continuation positions only), the padded batches with no prompt shared
  (requests split into calls whose prompts are all distinct), one item at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from types import ModuleType
from typing import Any

import pandas as pd

from unlearning.inference import batching
from unlearning.inference.generation import generate
from unlearning.inference.likelihood import continuation_logliks
from unlearning.inference.prompting import PromptStyle
from unlearning.scoring.evaluation import evaluation_questions, likelihood_requests, prompts_for


@contextmanager
def switched(module: ModuleType, flag: str, value: bool) -> Iterator[None]:
    """Within the block, ``module.flag`` is ``value`` (a speed-up's switch, such as
    :data:`unlearning.inference.batching.SHARE_PROMPTS`); restored afterwards."""
    before = getattr(module, flag)
    setattr(module, flag, value)
    try:
        yield
    finally:
        setattr(module, flag, before)


def prompts_not_shared() -> AbstractContextManager[None]:
    """Within the block, every prompt runs whole (no shared opening, no prompt shared by a DPO pair in training)."""
    return switched(batching, "SHARE_PROMPTS", False)


def unshared(run: Callable[[], list[Any]]) -> Callable[[], list[Any]]:
    """``run`` with :func:`prompts_not_shared`."""

    def call() -> list[Any]:
        with prompts_not_shared():
            return run()

    return call


def timed(label: str, run: Callable[[], list[Any]], count: Callable[[list[Any]], dict]) -> tuple[dict, list[Any]]:
    """One row: seconds, the counts of ``run``'s outputs and their rates per second."""
    start = time.perf_counter()
    out = run()
    seconds = time.perf_counter() - start
    counts = count(out)
    rates = {f"{k}_per_s": v / seconds for k, v in counts.items()}
    return {"benchmark": label, **counts, "seconds": seconds, **rates}, out


def against_baseline(
    rows: list[dict], outs: list[list[Any]], rate: str, same: Callable[[Any, Any], bool] | None = None
) -> None:
    """Ratios of every row to the last (the baseline), and the share of outputs equal to the baseline's."""
    base = outs[-1]
    for row, out in zip(rows[:-1], outs[:-1], strict=True):
        row["ratio_vs_baseline"] = row[rate] / rows[-1][rate]
        if same is not None:
            row["identical_outputs"] = sum(same(a, b) for a, b in zip(out, base, strict=True)) / len(base)


def bench_generation(
    model: Any,  # noqa: ANN401
    tokenizer: Any,  # noqa: ANN401
    prompts: list[str],
    batch_size: int,
    max_new_tokens: int,
) -> list[dict]:
    """Greedy answers to every prompt; the share of identical answers shows the speed-ups change no output."""

    def gen(size: int, prune: bool) -> Callable[[], list[Any]]:
        return lambda: generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=size,
                                prune_finished=prune)  # fmt: skip

    count = lambda gens: {"items": len(gens), "tokens": sum(g.new_tokens for g in gens)}  # noqa: E731
    runs = [
        (f"generation, batch {batch_size}, length-sorted, finished rows dropped (this project)", gen(batch_size, True)),
        (
            f"generation, batch {batch_size}, length-sorted, finished rows dropped, no shared opening",
            unshared(gen(batch_size, True)),
        ),
        (
            f"generation, batch {batch_size}, length-sorted, model.generate (finished rows kept)",
            unshared(gen(batch_size, False)),
        ),
        ("generation, one prompt at a time, model.generate (baseline)", gen(1, False)),
    ]
    rows, outs = zip(*(timed(label, run, count) for label, run in runs), strict=True)
    against_baseline(list(rows), list(outs), "tokens_per_s", lambda a, b: a.text == b.text)
    return list(rows)


def without_shared_prompts(prompts: list[str], continuations: list[str]) -> list[list[int]]:
    """Request indices split into calls whose prompts are all distinct: call ``j`` holds every prompt's ``j``-th
    continuation, so nothing can be shared while each call still batches across prompts."""
    seen: dict[str, int] = {}
    calls: list[list[int]] = []
    for i, prompt in enumerate(prompts):
        j = seen.get(prompt, 0)
        seen[prompt] = j + 1
        if j == len(calls):
            calls.append([])
        calls[j].append(i)
    return calls


def bench_likelihood(model: Any, tokenizer: Any, requests: list[tuple[str, str]], batch_size: int) -> list[dict]:  # noqa: ANN401
    """Teacher-forced log-likelihoods of the true answers and every TruthfulQA option (answer probability,
    MC1/MC2); perplexity of generations is the same computation."""
    prompts, continuations = [r[0] for r in requests], [r[1] for r in requests]

    def score(index: list[int], size: int) -> list[Any]:
        return continuation_logliks(model, tokenizer, [prompts[i] for i in index], [continuations[i] for i in index],
                                    batch_size=size)  # fmt: skip

    def distinct_prompts() -> list[Any]:
        out: list[Any] = [None] * len(prompts)
        for call in without_shared_prompts(prompts, continuations):
            for i, ll in zip(call, score(call, batch_size), strict=True):
                out[i] = ll
        return out

    everything = list(range(len(prompts)))
    count = lambda out: {"items": len(out), "tokens": sum(ll.tokens for ll in out)}  # noqa: E731
    distinct = len(set(prompts))
    runs = [
        (f"likelihood, batched (batch {batch_size}, {distinct} distinct prompts for {len(prompts)} requests)",
         lambda: score(everything, batch_size)),
        (f"likelihood, batched (batch {batch_size}), padded rows, nothing packed",
         unshared(lambda: score(everything, batch_size))),
        (f"likelihood, batched (batch {batch_size}), padded rows, no prompt shared", unshared(distinct_prompts)),
        ("likelihood, one item at a time (baseline)", lambda: [score([i], 1)[0] for i in everything]),
    ]  # fmt: skip
    rows, outs = zip(*(timed(label, run, count) for label, run in runs), strict=True)
    against_baseline(list(rows), list(outs), "items_per_s")
    for row, out in zip(rows[:-1], outs[:-1], strict=True):
        row["max_abs_loglik_diff"] = max(abs(a.total - b.total) for a, b in zip(out, outs[-1], strict=True))
    return list(rows)


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
