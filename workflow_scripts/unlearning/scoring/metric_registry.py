"""Every metric of the summary, declared once: name, label, the splits it applies to, its direction, its source.

The summary (:mod:`unlearning.scoring.evaluation`), the report's verdicts (:mod:`unlearning.report.tables`) and the
metric table of ``docs/metrics.md`` (``python -m unlearning.scoring.metric_registry``, checked by a test) all read this
table, so a metric's name, direction or definition is written in one place. Adding a metric is one
:class:`Metric` entry (plus its per-row column in the scoring stage, when it has one).

Directions (what "better" means for the change ``variant - base``):

- ``knowledge``: the metric measures how well the model knows the answer. On forget splits lower is better; on
  every other split higher is better (at best, unchanged from base).
- ``forgetting``: the reverse (a truth ratio near 1, a membership AUC away from 0.5): on forget splits higher is
  better, elsewhere lower is better.
- ``higher`` / ``lower``: better in that direction on every split (TruthfulQA accuracy, fluency; perplexity,
  degenerate answers).

Split roles: a split belongs to the role its name starts with (``forget``, ``retain``, ``general``), or is
``truthfulqa``, or ``overall`` (model-level aggregates such as model utility, one row per variant).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

from . import metrics

Direction = Literal["knowledge", "forgetting", "higher", "lower"]
Role = Literal["forget", "retain", "general", "truthfulqa", "overall"]
#: ``noise``: the interval of the change includes 0; ``unsure``: the change has no interval (too few persons)
Verdict = Literal["good", "bad", "neutral", "noise", "unsure", "na"]
PERSON_ROLES: frozenset[str] = frozenset({"forget", "retain", "general"})
ALL_ROLES: frozenset[str] = frozenset({"forget", "retain", "general", "truthfulqa"})
OVERALL = "overall"
#: the summary's ``kind`` of rows over every probe kind together
ALL_KINDS = "all"
#: absolute tolerance of a change below which the report calls it ``same``
DEFAULT_TOLERANCE = 0.02


def role_of(split: str) -> str:
    """The role of a split name: ``forget_test`` -> ``forget``, ``retain`` -> ``retain``, ``truthfulqa``..."""
    split = str(split)
    for role in ("forget", "retain", "general"):
        if split.startswith(role):
            return role
    return split


def neighbour_split(split: str) -> str:
    """The hard-retain split that pairs with a forget split (``forget_test`` -> ``retain_test``)."""
    return "retain" + str(split)[len("forget") :]


# An aggregate gets the split's rows of one (variant, subset) and the whole table of that (variant, subset), so that
# a metric may compare the split with another one (membership inference against the neighbours).
Aggregate = Callable[[pd.DataFrame, pd.DataFrame, str], float]


@dataclass(frozen=True)
class MeanOf:
    """The mean of a per-row column over the split's rows (NaN rows left out; NaN when none has a value). The
    bootstrap (:mod:`unlearning.scoring.bootstrap`) resamples such a metric from per-person sums."""

    column: str

    def __call__(self, part: pd.DataFrame, _table: pd.DataFrame, _split: str) -> float:
        if self.column not in part.columns:
            return math.nan
        values = pd.to_numeric(part[self.column], errors="coerce").astype(float)
        return float(values.mean()) if values.notna().any() else math.nan


def mean_of(column: str) -> MeanOf:
    return MeanOf(column)


def _corpus_bleu(part: pd.DataFrame, _table: pd.DataFrame, _split: str) -> float:
    return metrics.corpus_bleu(part["generation"].tolist(), part["reference"].tolist())


@dataclass(frozen=True)
class MiaAuc:
    """AUC of ``sign * column`` (a non-membership score) separating the split's rows from its neighbour split's
    (:func:`unlearning.scoring.metrics.mia_auc`)."""

    column: str
    sign: float

    def scores(self, rows: pd.DataFrame) -> pd.Series:
        return self.sign * pd.to_numeric(rows[self.column], errors="coerce").astype(float)

    def __call__(self, part: pd.DataFrame, table: pd.DataFrame, split: str) -> float:
        if self.column not in part.columns:
            return math.nan
        neighbours = table[table["split"] == neighbour_split(split)]
        return metrics.mia_auc(self.scores(part).tolist(), self.scores(neighbours).tolist())


def mia(column: str, sign: float) -> MiaAuc:
    return MiaAuc(column, sign)


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    roles: frozenset[str]
    direction: Direction
    source: str
    definition: str
    aggregate: Aggregate | None = None  # None: the mean of the per-row column of the same name
    change: Literal["drop", "change"] = "change"  # the summary's change row: base - variant, or variant - base
    tolerance: float = DEFAULT_TOLERANCE
    relative: bool = False  # tolerance relative to |base|
    known: bool = False  # also shown for the known-facts subset in the report
    #: moved by answer length as much as by knowledge (shorter answers raise F1's precision and the probability of
    #: short reference spans): off the forget splits any change beyond the noise is bad, whatever its sign
    length_dependent: bool = False
    overall: Callable[[Callable[[str, str], float]], float] | None = field(default=None, repr=False)

    @property
    def change_name(self) -> str:
        """The summary metric of the change against base: ``rougeL_recall_drop``, ``mc2_change``..."""
        return f"{self.name}_{self.change}"

    def applies_to(self, split: str) -> bool:
        return role_of(split) in self.roles

    def summarize(self, part: pd.DataFrame, table: pd.DataFrame, split: str) -> float:
        return (self.aggregate or mean_of(self.name))(part, table, split)

    def verdict(self, split: str, base: float, value: float, interval: tuple[float, float] | None = None) -> Verdict:
        """The verdict of the change ``value - base``: ``neutral`` within the tolerance; else, when ``interval``
        (the change's 95% bootstrap interval) is given, ``noise`` where it includes 0 and ``unsure`` where it is
        missing (NaN: too few persons to resample); else ``good`` or ``bad`` by the metric's direction (a
        :attr:`length_dependent` metric off the forget splits: ``bad`` either way). ``na`` without both figures.
        ``interval=None`` (a summary from before intervals) judges by the tolerance alone."""
        if not (_finite(base) and _finite(value)):
            return "na"
        change = value - base
        tol = self.tolerance * abs(base) if self.relative else self.tolerance
        if abs(change) <= tol:
            return "neutral"
        if interval is not None:
            low, high = interval
            if not (_finite(low) and _finite(high)):
                return "unsure"
            if low <= 0 <= high:
                return "noise"
        if self.length_dependent and role_of(split) != "forget":
            return "bad"
        higher_better = {
            "higher": True,
            "lower": False,
            "knowledge": role_of(split) != "forget",
            "forgetting": role_of(split) == "forget",
        }[self.direction]
        return "good" if (change > 0) == higher_better else "bad"

    @property
    def rise_is_bad_everywhere(self) -> bool:
        return self.direction == "lower"


def _finite(x: object) -> bool:
    try:
        return math.isfinite(float(x))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


#: the figures that make up model utility: (split, metric); TOFU takes the harmonic mean of probability, ROUGE and
#: truth ratio on its retain, real-authors and world-facts sets; here the held-out neighbours and general persons
#: play those sets and TruthfulQA MC2 adds world knowledge
UTILITY_PARTS: tuple[tuple[str, str], ...] = (
    ("retain_test", "answer_prob"),
    ("retain_test", "rougeL_recall"),
    ("retain_test", "truth_ratio_true_better"),
    ("general_test", "answer_prob"),
    ("general_test", "rougeL_recall"),
    ("general_test", "truth_ratio_true_better"),
    ("truthfulqa", "mc2"),
)


def model_utility(value: Callable[[str, str], float]) -> float:
    """TOFU-style model utility: the harmonic mean of the :data:`UTILITY_PARTS` figures that the summary has
    (``value(split, metric)`` gives NaN for a missing one, which is left out; NaN when none is there)."""
    parts = [value(split, metric) for split, metric in UTILITY_PARTS]
    parts = [p for p in parts if _finite(p)]
    return metrics.harmonic_mean(parts) if parts else math.nan


_P = PERSON_ROLES
_A = ALL_ROLES
_TOFU = "TOFU (Maini et al. 2024), open-unlearning"

METRICS: tuple[Metric, ...] = (
    Metric(
        "rougeL_recall",
        "ROUGE-L recall",
        _A,
        "knowledge",
        "Lin 2004; TOFU, WPU",
        "rouge-score on the shared tokens with Porter stemming of English words, generation vs the true answer: "
        "the longest common subsequence over the answer's length (the headline)",
        change="drop",
        known=True,
    ),
    Metric(
        "rougeL_f1",
        "ROUGE-L F1",
        _A,
        "knowledge",
        "Lin 2004",
        "ROUGE-L's F-measure on the same tokens",
        length_dependent=True,
    ),
    Metric(
        "rouge1_f1",
        "ROUGE-1 F1",
        _A,
        "knowledge",
        "Lin 2004",
        'unigram-overlap F-measure (what the study reported as "ROUGE-L")',
        known=True,
        length_dependent=True,
    ),
    Metric(
        "bleu_corpus",
        "BLEU (corpus)",
        _A,
        "knowledge",
        "Papineni et al. 2002; NLTK",
        "BLEU up to 4-grams, the order capped by each answer's length (effective order), counts pooled over the "
        "split; smoothing method 1, on the same tokens unstemmed",
        aggregate=_corpus_bleu,
        length_dependent=True,
    ),
    Metric(
        "bleu_sentence",
        "BLEU (sentence)",
        _A,
        "knowledge",
        "Papineni et al. 2002; NLTK",
        "mean NLTK sentence BLEU up to 4-grams with auto_reweigh (order capped by the answer's length), "
        "smoothing method 1",
        aggregate=mean_of("bleu"),
        length_dependent=True,
    ),
    Metric(
        "answer_prob",
        "Answer prob.",
        _A,
        "knowledge",
        _TOFU,
        "teacher-forced, length-normalised probability of the true answer given the prompt, "
        '`exp(mean token log-prob)` (TOFU\'s "probability")',
        known=True,
        length_dependent=True,
    ),
    Metric(
        "truth_ratio_closer_to_1",
        "Truth ratio (closer to 1)",
        _P,
        "forgetting",
        _TOFU,
        "per question `R = exp(mean_j mean_t log p(wrong_j)) / exp(mean_t log p(true))` over the perturbation "
        "stage's wrong answers; the mean of `min(R, 1/R)` (open-unlearning's form for forget data: 1 = true "
        "and wrong equally likely)",
    ),
    Metric(
        "truth_ratio_true_better",
        "Truth ratio (true better)",
        _P,
        "knowledge",
        _TOFU,
        "the same `R`; the mean of `max(0, 1 - R)` (open-unlearning's form for retain data: high when the truth "
        "is clearly preferred)",
    ),
    Metric(
        "choice_accuracy",
        "Choice accuracy",
        _P,
        "knowledge",
        "RWKU (multiple-choice probes), TOFU",
        "1 when the true answer is at least as likely per token as every wrong answer of the question (the truth "
        "among perturbed answers, chosen by likelihood); mean over the split",
    ),
    Metric(
        "extraction_strength",
        "Extraction strength",
        _P,
        "knowledge",
        "Carlini et al. 2021; open-unlearning",
        "`1 - k/|y|`, `k` the shortest answer prefix after which teacher-forced greedy decoding reproduces the "
        "rest of the true answer `y` (0 when not even its last token is the greedy one)",
    ),
    Metric(
        "exact_memorization",
        "Exact memorization",
        _P,
        "knowledge",
        "Tirumala et al. 2022; open-unlearning",
        "share of true-answer tokens that are the teacher-forced argmax",
    ),
    Metric(
        "mia_auc_loss",
        "MIA AUC (LOSS)",
        frozenset({"forget"}),
        "forgetting",
        "Yeom et al. 2018; RWKU",
        "ROC AUC (scikit-learn) of the answer's mean token NLL separating forget questions (1) from the "
        "neighbours' of the same split part (0); about 0.5 for the base model, rising as forget facts become "
        "less likely than the neighbours'; read the change from base",
        aggregate=mia("loss", 1.0),
    ),
    Metric(
        "mia_auc_mink_pp",
        "MIA AUC (Min-K%++)",
        frozenset({"forget"}),
        "forgetting",
        "Zhang et al. 2025 (Min-K%++); RWKU",
        "the same AUC with minus Min-K%++ (mean of the lowest 20% of `(log p(y_t) - mu_t) / sigma_t`, `mu_t`, "
        "`sigma_t` the mean and deviation of log p under the model's own next-token distribution)",
        aggregate=mia("mink_pp", -1.0),
    ),
    Metric(
        "mc1",
        "MC1",
        frozenset({"truthfulqa"}),
        "higher",
        "Lin et al. 2022; lm-evaluation-harness",
        "TruthfulQA multiple choice as lm-eval's `truthfulqa_mc1`: 1 when the best answer's summed log-likelihood "
        "is the argmax over best + incorrect answers (a tie counts, as `numpy.argmax` picks the first)",
    ),
    Metric(
        "mc2",
        "MC2",
        frozenset({"truthfulqa"}),
        "higher",
        "Lin et al. 2022; lm-evaluation-harness",
        "lm-eval's `truthfulqa_mc2`: probability mass on the correct answers over correct + incorrect",
    ),
    Metric(
        "fluency_entropy",
        "Fluency (n-gram entropy)",
        _A,
        "higher",
        "RWKU (Jin et al. 2024), after ROME",
        "per generation `(2/3 H_2 + 4/3 H_3) / 2`, `H_n` the entropy in bits of its word n-gram frequencies "
        "(NLTK word tokens); mean over the split",
        tolerance=0.05,
        relative=True,
    ),
    Metric(
        "perplexity",
        "Perplexity",
        _A,
        "lower",
        "",
        "of each generation under the *base* model (adapter disabled): one fixed judge of fluency",
        tolerance=0.05,
        relative=True,
    ),
    Metric(
        "degenerate_rate",
        "Degenerate rate",
        _A,
        "lower",
        "",
        "share of generations that are empty or repeat a word 3-gram more than twice",
        aggregate=mean_of("degenerate"),
    ),
    Metric(
        "model_utility",
        "Model utility",
        frozenset({OVERALL}),
        "higher",
        "TOFU's model utility",
        "harmonic mean of answer prob., ROUGE-L recall and truth ratio (true better) on `retain_test` and "
        "`general_test`, and TruthfulQA MC2 (those present; any zero makes it 0)",
        overall=model_utility,
        length_dependent=True,
    ),
)

BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}


def get(name: str) -> Metric:
    return BY_NAME[name]


def for_split(split: str) -> list[Metric]:
    """The per-split metrics (not ``overall`` ones) that apply to ``split``, in registry order."""
    return [m for m in METRICS if m.overall is None and m.applies_to(split)]


def overall_metrics() -> list[Metric]:
    return [m for m in METRICS if m.overall is not None]


def verdict(metric: str, split: str, base: float, value: float, interval: tuple[float, float] | None = None) -> Verdict:
    """The report's verdict of a change (:meth:`Metric.verdict`); an unregistered metric is judged as
    ``knowledge``."""
    m = BY_NAME.get(metric) or Metric(metric, metric, ALL_ROLES, "knowledge", "", "")
    return m.verdict(split, base, value, interval)


_DIRECTION_TEXT = {
    "knowledge": "forget: lower; elsewhere: higher (closer to base)",
    "forgetting": "forget: higher; elsewhere: lower (closer to base)",
    "higher": "higher",
    "lower": "lower",
}


def _direction_text(m: Metric) -> str:
    if not m.length_dependent:
        return _DIRECTION_TEXT[m.direction]
    closest = "closest to base (length-dependent: a change either way is bad)"
    return f"forget: lower; elsewhere: {closest}" if m.direction == "knowledge" else closest


def _roles_text(roles: Iterable[str]) -> str:
    roles = set(roles)
    if roles >= ALL_ROLES:
        return "all"
    order = ("forget", "retain", "general", "truthfulqa", OVERALL)
    return ", ".join(r for r in order if r in roles)


def markdown_table() -> str:
    """The metric table of ``docs/metrics.md`` (one row per registered metric)."""
    lines = [
        "| metric | splits | better | definition | source |",
        "| --- | --- | --- | --- | --- |",
    ]
    for m in METRICS:
        lines.append(
            f"| `{m.name}` | {_roles_text(m.roles)} | {_direction_text(m)} | {m.definition} | "
            f"{m.source or 'this project'} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(markdown_table())
