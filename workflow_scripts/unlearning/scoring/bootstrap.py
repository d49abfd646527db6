"""Confidence intervals on every change against the base model: a paired cluster bootstrap over persons.

A person's questions are not independent draws (a model knows, and unlearning removes, one person's facts
together), so the unit of resampling is the person: each resample draws as many persons as the split has, with
replacement, and takes all of their questions (the cluster bootstrap; Davison & Hinkley 1997, *Bootstrap Methods
and their Application*, sect. 3.8; Field & Welsh 2007, "Bootstrapping clustered data", JRSS B 69). A TruthfulQA
item has no person and is its own cluster. The base model and the variant answered the same questions, so each
resample computes both figures on the same persons (paired) and the interval is the one of the change itself. The
interval is the 95% percentile interval of the bootstrap distribution (Efron & Tibshirani 1993, *An Introduction to
the Bootstrap*, ch. 13); ``scipy.stats.bootstrap`` draws the resamples, seeded, :data:`N_RESAMPLES` of them.

Seeds: the change of an entry trained with several seeds is the mean of its per-seed changes, and its interval is
the percentile interval of the per-seed bootstrap distributions pooled (persons resampled within each seed), so it
holds the between-seed spread as well as the persons' (:func:`pool_seeds`).

A split part with fewer than :data:`MIN_CLUSTERS` persons gets no interval and a note saying why (never an interval
of width zero), and so does a corpus-level metric (corpus BLEU) that has no per-person decomposition.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..core.errors import InputError
from . import metric_registry
from .metric_registry import ALL_KINDS, MeanOf, MiaAuc, neighbour_split

N_RESAMPLES = 1000
CONFIDENCE = 0.95
MIN_CLUSTERS = 2
#: interval bounds are rounded to this many decimals (float noise of differences of equal means is ~1e-17)
DECIMALS = 12
#: (subset, kind, split): one part of a variant's questions, as the summary slices them
PartKey = tuple[str, str, str]
#: (split, subset, kind, metric): one change row of the summary
ChangeKey = tuple[str, str, str, str]
#: the figures of the trade-off score: (role, candidate splits, metric); the first split with questions is used
SCORE_ROLES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("forget", ("forget_test", "forget_train"), "rougeL_recall"),
    ("retain", ("retain_test",), "rougeL_recall"),
    ("general", ("general_test",), "rougeL_recall"),
    ("truthfulqa", ("truthfulqa",), "mc2"),
)
TRADEOFF_SCORE = "tradeoff_score"


@dataclass(frozen=True)
class Change:
    """One change against base: the point value, and the bootstrap distribution of shape ``(resamples,)`` (None,
    with ``note`` saying why, where no interval can be given)."""

    value: float
    distribution: np.ndarray | None = None
    note: str = ""

    def interval(self) -> tuple[float, float]:
        """The percentile interval ``(low, high)`` at :data:`CONFIDENCE`; NaNs without a distribution."""
        if self.distribution is None:
            return math.nan, math.nan
        tail = (1 - CONFIDENCE) / 2 * 100
        finite = self.distribution[np.isfinite(self.distribution)]
        if not len(finite):
            return math.nan, math.nan
        low, high = np.percentile(finite, [tail, 100 - tail])
        # a difference of two equal means can come out as 1e-17 rather than 0: such a bound must not exclude 0
        return round(float(low), DECIMALS), round(float(high), DECIMALS)


def cluster_of(table: pd.DataFrame) -> pd.Series:
    """The resampling unit of every row: its person, or its id where it has none (TruthfulQA)."""
    person = table["person"].fillna("").astype(str) if "person" in table.columns else pd.Series("", index=table.index)
    return person.where(person != "", "id:" + table["id"].astype(str))


@dataclass
class _Part:
    """One (subset, kind, split) part: the base and variant rows in the same order, and each row's cluster."""

    base: pd.DataFrame
    variant: pd.DataFrame
    codes: np.ndarray  # (rows,) cluster index of each row
    n_clusters: int

    def sums(self, column: str, which: str) -> tuple[np.ndarray, np.ndarray]:
        """Per cluster: the sum of ``column`` over its rows with a value, and how many rows have one."""
        rows = self.base if which == "base" else self.variant
        values = pd.to_numeric(rows[column], errors="coerce").astype(float).to_numpy()
        has = np.isfinite(values)
        total = np.bincount(self.codes, weights=np.where(has, values, 0.0), minlength=self.n_clusters)
        return total, np.bincount(self.codes, weights=has.astype(float), minlength=self.n_clusters)


def _paired(base: pd.DataFrame, variant: pd.DataFrame, where: str) -> pd.DataFrame:
    """The variant's rows in the order of the base's, matched by id; an error names the questions it lacks."""
    indexed = variant.drop_duplicates("id").set_index(variant.drop_duplicates("id")["id"].astype(str))
    ids = base["id"].astype(str)
    missing = ids[~ids.isin(indexed.index)]
    if len(missing):
        raise InputError(
            f"{where}: the variant's score table lacks {len(missing)} question(s) the base model answered "
            f"(first: {missing.iloc[0]!r}); both must be scored on the same questions"
        )
    return indexed.loc[ids].reset_index(drop=True)


def parts(
    base: pd.DataFrame, variant: pd.DataFrame, known_ids: set[str] | None, kinds_of: Callable, where: str
) -> dict[PartKey, _Part]:
    """Every (subset, kind, split) part the summary reports, base and variant rows paired by id."""
    variant = _paired(base.reset_index(drop=True), variant, where)
    base = base.reset_index(drop=True)
    subsets = {"all": base.index}
    if known_ids is not None:
        subsets["known"] = base.index[base["id"].astype(str).isin(known_ids)]
    kinds = kinds_of(base)
    out: dict[PartKey, _Part] = {}
    for subset, index in subsets.items():
        kind_index = {ALL_KINDS: index}
        for kind in dict.fromkeys(kinds.loc[index]):
            kind_index[kind] = index[kinds.loc[index] == kind]
        for kind, rows in kind_index.items():
            for split in dict.fromkeys(base.loc[rows, "split"]):
                picked = rows[base.loc[rows, "split"] == split]
                clusters = cluster_of(base.loc[picked])
                codes, uniques = pd.factorize(clusters, sort=True)
                out[(subset, str(kind), str(split))] = _Part(
                    base.loc[picked].reset_index(drop=True),
                    variant.loc[picked].reset_index(drop=True),
                    np.asarray(codes),
                    len(uniques),
                )
    return out


# A statistic maps the resampled cluster weights of the parts it reads (part key -> (resamples, clusters)) to the
# base and the variant figure per resample.
Weights = Mapping[PartKey, np.ndarray]


def _mean(part_key: PartKey, part: _Part, column: str) -> Callable[[Weights, str], np.ndarray]:
    sums = {which: part.sums(column, which) for which in ("base", "variant")}

    def figure(weights: Weights, which: str) -> np.ndarray:
        total, count = sums[which]
        w = weights[part_key]
        with np.errstate(invalid="ignore", divide="ignore"):
            return (w @ total) / (w @ count)

    return figure


def _auc(
    part_key: PartKey, part: _Part, other_key: PartKey, other: _Part, spec: MiaAuc
) -> Callable[[Weights, str], np.ndarray]:
    """Weighted ROC AUC: ``sum_ij a_i b_j [s_i > s_j] + 0.5 [s_i = s_j]`` over ``sum a * sum b``, the rows' weights
    their persons' resample counts; with unit weights it is scikit-learn's ``roc_auc_score`` (ties count half)."""
    prepared = {}
    for which in ("base", "variant"):
        pos = spec.scores(getattr(part, which)).to_numpy()
        neg = spec.scores(getattr(other, which)).to_numpy()
        keep_pos, keep_neg = np.isfinite(pos), np.isfinite(neg)
        p, n = pos[keep_pos], neg[keep_neg]
        wins = (p[:, None] > n[None, :]) + 0.5 * (p[:, None] == n[None, :])
        prepared[which] = (wins, part.codes[keep_pos], other.codes[keep_neg])

    def figure(weights: Weights, which: str) -> np.ndarray:
        wins, pos_codes, neg_codes = prepared[which]
        a = weights[part_key][:, pos_codes]
        b = weights[other_key][:, neg_codes]
        with np.errstate(invalid="ignore", divide="ignore"):
            return ((a @ wins) * b).sum(axis=1) / (a.sum(axis=1) * b.sum(axis=1))

    return figure


@dataclass
class _Stat:
    key: ChangeKey
    value: float
    reads: tuple[PartKey, ...] = ()
    change: Callable[[Weights], np.ndarray] | None = None  # the change per resample, shape (resamples,)
    note: str = ""  # why there is no ``change``


def _figure_stats(
    parts_: Mapping[PartKey, _Part], point: Callable[[PartKey, str, str], float]
) -> tuple[list[_Stat], dict[tuple[PartKey, str], Callable[[Weights, str], np.ndarray]]]:
    """A change statistic per (part, registered metric) with a base and a variant figure; and the figure functions,
    for the composite statistics."""
    out, figures = [], {}
    for key, part in parts_.items():
        subset, kind, split = key
        for metric in metric_registry.for_split(split):
            base, value = point(key, metric.name, "base"), point(key, metric.name, "variant")
            if not (math.isfinite(base) and math.isfinite(value)):
                continue
            sign = -1.0 if metric.change == "drop" else 1.0
            change_key = (split, subset, kind, metric.change_name)
            aggregate = metric.aggregate or MeanOf(metric.name)
            if isinstance(aggregate, MeanOf):
                figure = _mean(key, part, aggregate.column)
                reads: tuple[PartKey, ...] = (key,)
            elif isinstance(aggregate, MiaAuc) and (subset, kind, neighbour_split(split)) in parts_:
                other_key = (subset, kind, neighbour_split(split))
                figure = _auc(key, part, other_key, parts_[other_key], aggregate)
                reads = (key, other_key)
            else:
                note = f"{metric.label} is a corpus-level figure with no per-person decomposition: no interval"
                out.append(_Stat(change_key, sign * (value - base), note=note))
                continue
            figures[(key, metric.name)] = figure

            def change(weights: Weights, figure: Callable = figure, sign: float = sign) -> np.ndarray:
                return sign * (figure(weights, "variant") - figure(weights, "base"))

            out.append(_Stat(change_key, sign * (value - base), reads, change))
    return out, figures


def _utility_stat(
    figures: Mapping[tuple[PartKey, str], Callable], point: Callable[[PartKey, str, str], float]
) -> _Stat | None:
    """Model utility's change: the harmonic mean of its parts (those the summary has) per resample."""
    from .metrics import harmonic_mean

    present = []
    for split, metric in metric_registry.UTILITY_PARTS:
        key = ("all", ALL_KINDS, split)
        if (key, metric) in figures:
            present.append((key, metric))
    if not present:
        return None

    def hm(values: Sequence[np.ndarray]) -> np.ndarray:
        stacked = np.stack(values)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = len(values) / (1.0 / stacked).sum(axis=0)
        return np.where((stacked <= 0).any(axis=0), 0.0, out)

    def change(weights: Weights) -> np.ndarray:
        return hm([figures[p](weights, "variant") for p in present]) - hm(
            [figures[p](weights, "base") for p in present]
        )

    base = harmonic_mean([point(k, m, "base") for k, m in present])
    value = harmonic_mean([point(k, m, "variant") for k, m in present])
    key = (metric_registry.OVERALL, "all", ALL_KINDS, metric_registry.get("model_utility").change_name)
    return _Stat(key, value - base, tuple(k for k, _ in present), change)


def score_parts(parts_: Mapping[PartKey, _Part]) -> dict[str, tuple[PartKey, str]]:
    """Per role of the trade-off score: the part it reads (the role's first split with questions, on the base
    model's known facts where it knows any there, else on all questions; TruthfulQA on all) and the metric."""
    out = {}
    for role, splits, metric in SCORE_ROLES:
        split = next((s for s in splits if ("all", ALL_KINDS, s) in parts_), None)
        if split is None:
            continue
        known = ("known", ALL_KINDS, split)
        use_known = role != "truthfulqa" and known in parts_ and len(parts_[known].base)
        out[role] = (known if use_known else ("all", ALL_KINDS, split), metric)
    return out


def _score_stat(
    parts_: Mapping[PartKey, _Part],
    figures: Mapping[tuple[PartKey, str], Callable],
    point: Callable[[PartKey, str, str], float],
) -> _Stat | None:
    """The trade-off score ``forgetting - collateral``: the drop of ROUGE-L recall on the held-out known forget
    facts, less the falls (never the rises) of ROUGE-L recall on the neighbours' and general persons' held-out known
    facts and of TruthfulQA MC2; computed per resample, so its interval holds every part's noise."""
    roles = score_parts(parts_)
    if "forget" not in roles or any(roles[r] not in figures for r in roles):
        return None

    def combine(change: Mapping[str, np.ndarray | float]) -> np.ndarray | float:
        collateral = sum(np.maximum(0.0, -change[r]) for r in roles if r != "forget")
        return -change["forget"] - collateral

    def change_of(role: str, weights: Weights) -> np.ndarray:
        figure = figures[roles[role]]
        return figure(weights, "variant") - figure(weights, "base")

    point_changes = {r: point(*roles[r], "variant") - point(*roles[r], "base") for r in roles}
    key = (metric_registry.OVERALL, "all", ALL_KINDS, TRADEOFF_SCORE)
    return _Stat(
        key,
        float(combine(point_changes)),
        tuple(k for k, _ in roles.values()),
        lambda weights: combine({r: change_of(r, weights) for r in roles}),
    )


def paired_changes(
    base: pd.DataFrame,
    variant: pd.DataFrame,
    known_ids: set[str] | None,
    kinds_of: Callable[[pd.DataFrame], pd.Series],
    point: Callable[[PartKey, str, str], float],
    *,
    seed: int,
    where: str,
    n_resamples: int = N_RESAMPLES,
) -> dict[ChangeKey, Change]:
    """Every change of one variant against base, with its bootstrap distribution.

    ``base`` and ``variant`` are the two score tables (one row per question; the variant must have every question
    of the base); ``point(part, metric, "base" | "variant")`` gives the summary's figure of a part, so that each
    change's value is exactly the summary's difference. Keys are ``(split, subset, kind, change metric)`` as in the
    summary, plus model utility's change and the trade-off score (:data:`TRADEOFF_SCORE`) under split ``overall``.
    Every statistic is computed on the same ``n_resamples`` resamples (``scipy.stats.bootstrap``, seeded with
    ``seed``: the same persons are drawn for every variant of a model).
    """
    parts_ = parts(base, variant, known_ids, kinds_of, where)
    stats_, figures = _figure_stats(parts_, point)
    for extra in (_utility_stat(figures, point), _score_stat(parts_, figures, point)):
        if extra is not None:
            stats_.append(extra)
    small = {key for key, part in parts_.items() if part.n_clusters < MIN_CLUSTERS}
    resampled = [key for key, part in parts_.items() if key not in small]
    out: dict[ChangeKey, Change] = {}
    usable = []
    for stat in stats_:
        too_small = [k for k in stat.reads if k in small]
        if stat.note:
            out[stat.key] = Change(stat.value, note=stat.note)
        elif too_small:
            subset, _, split = too_small[0]
            n = parts_[too_small[0]].n_clusters
            out[stat.key] = Change(
                stat.value, note=f"{split} ({subset}) has {n} person(s); at least {MIN_CLUSTERS} are needed to resample"
            )
        else:
            usable.append(stat)
    if not usable:
        return out
    sizes = [parts_[k].n_clusters for k in resampled]

    def statistic(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        batch = np.atleast_2d(samples[0]).shape[0]
        weights = {}
        for key, sample, size in zip(resampled, samples, sizes, strict=True):
            sample = np.atleast_2d(sample)
            weights[key] = (sample[..., None] == np.arange(size)).sum(axis=-2).astype(float)
        values = np.stack([np.broadcast_to(stat.change(weights), (batch,)) for stat in usable])
        return values if np.ndim(samples[0]) > 1 else values[:, 0]

    result = stats.bootstrap(
        tuple(np.arange(size) for size in sizes),
        statistic,
        n_resamples=n_resamples,
        vectorized=True,
        method="percentile",
        confidence_level=CONFIDENCE,
        random_state=np.random.default_rng(seed),
    )
    for stat, distribution in zip(usable, np.atleast_2d(result.bootstrap_distribution), strict=True):
        out[stat.key] = Change(stat.value, np.asarray(distribution, dtype=float))
    return out


def pool_seeds(changes: Sequence[Mapping[ChangeKey, Change]]) -> dict[ChangeKey, Change]:
    """The changes of one entry trained with several seeds: per key every seed has, the mean of the per-seed values
    and the per-seed bootstrap distributions pooled (a key without a distribution in some seed keeps that seed's
    note and gets none)."""
    keys = [k for k in changes[0] if all(k in c for c in changes[1:])]
    out = {}
    for key in keys:
        members = [c[key] for c in changes]
        value = float(np.mean([m.value for m in members]))
        if all(m.distribution is not None for m in members):
            out[key] = Change(value, np.concatenate([m.distribution for m in members]))
        else:
            out[key] = Change(value, note=next(m.note for m in members if m.distribution is None))
    return out
