"""The report's "Does it stay forgotten?" section: each variant's forgetting before and after each attack.

Figures are the summary's changes on the held-out known facts (subset ``known``), each with its 95% paired
person-bootstrap interval: the drop of ROUGE-L recall on the forget persons (forgetting) and on the neighbours and
general persons (damage), and the drop of the truth's probability on the forget persons. Before an attack they are
against the base model; after it, against the base model under the same attack where it ran (relearning,
in-context), else against the base model (quantization: the base exported unchanged is the source file).
*Recovered* is the share of the forgetting the attack undid, ``(before - after) / before`` on ROUGE-L recall; it is
given only where the forgetting before the attack is above zero with 95% confidence (otherwise there is nothing to
recover).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .tables import finite

FORGET, RETAIN, GENERAL = "forget_test", "retain_test", "general_test"
DROP = "rougeL_recall_drop"
#: the truth's probability: the summary stores its change (variant - base); the table shows it as a drop
PROB = "answer_prob_change"
#: share of the forgetting an attack must undo for the report to say it undoes the forgetting
UNDOES = 0.5


@dataclass(frozen=True)
class Drop:
    value: float
    low: float = math.nan
    high: float = math.nan

    def text(self) -> str:
        if not finite(self.value):
            return "—"
        bounds = f" [{_signed(self.low)}, {_signed(self.high)}]" if finite(self.low) and finite(self.high) else ""
        return f"{_signed(self.value)}{bounds}"

    @property
    def significant(self) -> bool:
        return finite(self.low) and self.low > 0


def _signed(x: float) -> str:
    """``x`` with its sign and 3 decimals; one that rounds to zero is ``+0.000``, never ``-0.000``."""
    text = f"{x:+.3f}"
    return "+0.000" if text == "-0.000" else text


def _drop(rows: pd.DataFrame, model: str, variant: str, split: str, attack: str, metric: str = DROP) -> Drop:
    hit = rows[
        (rows["model"] == model)
        & (rows["variant"] == variant)
        & (rows["split"] == split)
        & (rows["metric"] == metric)
        & (rows["subset"] == "known")
        & (rows["kind"] == "all")
        & (rows["attack"] == attack)
    ]
    if hit.empty:
        return Drop(math.nan)
    row = hit.iloc[0]
    drop = Drop(float(row["value"]), float(row["ci_low"]), float(row["ci_high"]))
    return drop if metric == DROP else Drop(-drop.value, -drop.high, -drop.low)  # a change turned into a drop


def recovered(before: Drop, after: Drop) -> float:
    """``(before - after) / before`` where ``before`` is above zero with 95% confidence, else NaN."""
    if not before.significant or not finite(after.value):
        return math.nan
    return (before.value - after.value) / before.value


def attack_rows(summary: pd.DataFrame, attacks: pd.DataFrame, model: str) -> list[dict[str, Any]]:
    """One row per (variant, attack) of ``model``: forgetting and damage before (``summary``, the variants as
    trained; attack "") and after (``attacks``), and the share recovered."""
    plain = summary.assign(attack="")
    both = pd.concat([plain, attacks], ignore_index=True)
    out = []
    runs = attacks[attacks["model"] == model][["variant", "attack"]].drop_duplicates()
    for variant, attack in runs.itertuples(index=False):
        before = {s: _drop(both, model, variant, s, "") for s in (FORGET, RETAIN, GENERAL)}
        before[PROB] = _drop(both, model, variant, FORGET, "", PROB)
        if variant == "base":  # base has no change before an attack
            before = {s: Drop(0.0) for s in before}
        after = {s: _drop(both, model, variant, s, attack) for s in (FORGET, RETAIN, GENERAL)}
        after[PROB] = _drop(both, model, variant, FORGET, attack, PROB)
        out.append(
            {"variant": variant, "attack": attack, "before": before, "after": after,
             "recovered": recovered(before[FORGET], after[FORGET])}
        )  # fmt: skip
    return out


def verdicts(rows: Sequence[dict[str, Any]], model: str) -> list[str]:
    """Plain sentences for the attacks that undo at least :data:`UNDOES` of a variant's forgetting."""
    out = []
    for r in rows:
        if finite(r["recovered"]) and r["recovered"] >= UNDOES:
            out.append(
                f"{model}/{r['variant']}: the {r['attack']} attack undoes {r['recovered']:.0%} of its forgetting "
                f"(forget facts' ROUGE-L recall drop {r['before'][FORGET].text()} before, "
                f"{r['after'][FORGET].text()} after)"
            )
    return out


def attacks_table_rows(rows: Sequence[dict[str, Any]]) -> list[list[str]]:
    """The section's table rows (headers: :data:`HEADERS`)."""
    return [
        [
            r["variant"],
            r["attack"],
            r["before"][FORGET].text(),
            r["after"][FORGET].text(),
            f"{r['recovered']:.0%}" if finite(r["recovered"]) else "—",
            r["before"][PROB].text(),
            r["after"][PROB].text(),
            r["before"][RETAIN].text(),
            r["after"][RETAIN].text(),
            r["before"][GENERAL].text(),
            r["after"][GENERAL].text(),
        ]
        for r in rows
    ]


HEADERS = (
    "variant",
    "attack",
    "forget drop before",
    "forget drop after",
    "recovered",
    "forget truth-prob drop before",
    "forget truth-prob drop after",
    "neighbour drop before",
    "neighbour drop after",
    "general drop before",
    "general drop after",
)
INTRO = (
    "Each attack ran on the variant and asked the held-out facts the base model knew (never trained on, by the "
    "unlearning or by a relearning attack). Figures are drops of ROUGE-L recall (forget, neighbour and general "
    "persons) and of the truth's probability (forget persons) on the same facts, with 95% person-bootstrap "
    "intervals; a negative drop is a rise (DPO-style training can raise the truth's probability while the answers "
    "lose the fact). A forget drop near zero after an attack means the attack brought the facts back. Recovered = "
    "the share of the forgetting undone, where there was forgetting (its interval above zero). Read each row with "
    "the overview's judgement: where the forgetting was a format change (a collapsed model), an attack that repairs "
    "the model also brings the facts back."
)
#: one sentence per attack kind, shown for the kinds that ran
KIND_TEXT = {
    "quantization": (
        "quantization: the variant exported to GGUF (in the source file's types unless the attack names one) and "
        "read back; after it, figures are against the base model, which the export leaves as it was. A LoRA change "
        "smaller than half a quantization step rounds away (results/export/.../export.json, kept_share)."
    ),
    "relearning": (
        "relearning: a short LoRA fine-tune on the training facts named in its settings; after it, figures are "
        "against the base model under the same fine-tune (its own rows show what the fine-tune does to the base "
        "model: it changes how any model answers), and a control on unrelated persons tells relearning from "
        "recovery."
    ),
    "in_context": (
        "in_context: the person's training facts in the prompt; after it, figures are against the base model with "
        "the same prompt."
    ),
}


def section_text(kinds: Sequence[str]) -> str:
    """:data:`INTRO` and the sentence of every attack kind in ``kinds`` (docs/attacks.md has them all)."""
    parts = [INTRO, *(KIND_TEXT[k] for k in dict.fromkeys(kinds) if k in KIND_TEXT), "(docs/attacks.md)"]
    return " ".join(parts)


NO_ATTACKS = (
    "No attack ran in this run: `attacks:` in the config runs them (the default runs the quantization attack; "
    "configs/attacks.yaml runs every attack). Without one, nothing here says whether the forgetting survives a "
    "GGUF export, a little fine-tuning or a reminder in the prompt."
)
