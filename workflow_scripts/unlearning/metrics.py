"""Text and number metrics for judging forgetting and retained utility; no model code lives here.

Everything here takes strings or log-likelihoods that other stages have already produced, so the metrics can
be tested by hand-worked examples and reused on any generation table without loading a model.

ROUGE naming: the seed notebook this workflow grew from reported ROUGE-1 F1 under the name "ROUGE-L". The
two differ whenever word order changes (ROUGE-L scores the longest common subsequence, ROUGE-1 the bag of
unigrams), and unlearning papers quote ROUGE-L recall against the forget answers. :func:`rouge` therefore
reports both, each under its correct name, so that numbers copied from the notebook can be matched to the
right column.

Tokenisation (one for ROUGE and BLEU, :func:`tokenize`): the text is NFKC-normalised and case-folded; a token is a
run of letters, combining marks and digits in any script, except that every character of a script written without
spaces between words (Chinese, Japanese kana, Thai, Lao, Khmer, Myanmar) is a token of its own, as usual for
scoring those languages; punctuation, symbols and spaces only separate tokens. rouge-score's default tokenizer keeps
only ``[a-z0-9]`` (so "Он родился в Москве." had no tokens at all and scored 0.0 against itself) and BLEU used a
different regex (so the same pair could match under one metric and not the other). ROUGE then stems the ASCII words
longer than 3 characters with the Porter stemmer, exactly as rouge-score's ``use_stemmer=True`` does, so English
scores are what rouge-score gives; BLEU compares the unstemmed tokens. No NLTK data download is needed
(``nltk.word_tokenize`` needs ``punkt``, which compute nodes without internet cannot fetch), and the tokens are the
same on every machine.
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter
from collections.abc import Sequence

import pandas as pd
from nltk.stem.porter import PorterStemmer
from nltk.translate.bleu_score import SmoothingFunction
from nltk.translate.bleu_score import corpus_bleu as _nltk_corpus_bleu
from nltk.translate.bleu_score import sentence_bleu as _nltk_sentence_bleu
from rouge_score.rouge_scorer import RougeScorer
from rouge_score.tokenizers import Tokenizer

from .errors import InputError

ROUGE_COLUMNS = ("rougeL_f1", "rougeL_recall", "rouge1_f1")
BLEU_WEIGHTS = (0.25, 0.25, 0.25, 0.25)
# Scripts written without spaces between words: each character is a token (code point ranges, inclusive).
UNSPACED_SCRIPTS = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK ideographs, extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0x20000, 0x3134F),  # CJK ideographs, extensions B-G and compatibility supplement
)
_SMOOTHING = SmoothingFunction().method1
# Building a RougeScorer loads the Porter stemmer and compiles its tokeniser; one shared instance avoids
# paying that per row on tables with thousands of generations. It holds no per-call state.
_ROUGE_SCORER: RougeScorer | None = None


def _unspaced(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in UNSPACED_SCRIPTS)


def tokenize(text: str) -> list[str]:
    """The tokens that ROUGE and BLEU compare (see the module docstring): words in any script, one token per
    character of Chinese, Japanese, Thai and the like, no punctuation.

    ``"Don't stop!"`` -> ``["don", "t", "stop"]``; ``"Он родился в Москве."`` -> ``["он", "родился", "в", "москве"]``;
    ``"她出生于北京。"`` -> ``["她", "出", "生", "于", "北", "京"]``.
    """
    tokens: list[str] = []
    current: list[str] = []
    single = False  # whether ``current`` is one character of an unspaced script (marks may still join it)
    for char in unicodedata.normalize("NFKC", text).casefold():
        kind = unicodedata.category(char)[0]
        if kind == "M" and current:  # a combining mark belongs to the letter before it
            current.append(char)
        elif _unspaced(char):
            if current:
                tokens.append("".join(current))
            current, single = [char], True
        elif kind in "LMN":
            if single:
                tokens.append("".join(current))
                current, single = [], False
            current.append(char)
        elif current:
            tokens.append("".join(current))
            current, single = [], False
    if current:
        tokens.append("".join(current))
    return tokens


class RougeTokenizer(Tokenizer):
    """:func:`tokenize` plus rouge-score's own stemming rule: Porter on ASCII words longer than 3 characters."""

    def __init__(self) -> None:
        self._stemmer = PorterStemmer()

    def tokenize(self, text: str) -> list[str]:
        return [self._stemmer.stem(token) if len(token) > 3 and token.isascii() else token for token in tokenize(text)]


def _rouge_scorer() -> RougeScorer:
    """Return the shared scorer, built on first use so importing this module stays cheap."""
    global _ROUGE_SCORER
    if _ROUGE_SCORER is None:
        _ROUGE_SCORER = RougeScorer(["rouge1", "rougeL"], tokenizer=RougeTokenizer())
    return _ROUGE_SCORER


def _check_pairs(predictions: Sequence[str], references: Sequence[str]) -> None:
    """Reject inputs that would silently produce wrong scores rather than an error.

    A bare string is a ``Sequence[str]`` too, and zipping two of them would score single characters; a length
    mismatch would make ``zip`` drop the tail and misalign nothing visibly, so both are refused up front.
    """
    if isinstance(predictions, str) or isinstance(references, str):
        raise InputError("predictions and references must be sequences of strings, not a single string")
    if len(predictions) != len(references):
        raise InputError(
            f"predictions and references differ in length: {len(predictions)} predictions vs "
            f"{len(references)} references"
        )


def rouge(predictions: Sequence[str], references: Sequence[str]) -> pd.DataFrame:
    """Score each prediction against its reference with ROUGE-L (F1, recall) and ROUGE-1 F1.

    ROUGE-L recall is the share of the reference's longest common subsequence recovered by the model, which is
    what forgetting studies track on forget answers; F1 also penalises padding. ROUGE-1 F1 is kept because the
    seed notebook reported it (under the wrong name), see the module docstring. Tokens come from :func:`tokenize`
    (any script) with Porter stemming of English words, so "running" matches "run". Returns one row per pair, in
    input order, with columns :data:`ROUGE_COLUMNS`.
    """
    _check_pairs(predictions, references)
    scorer = _rouge_scorer()
    rows = []
    for prediction, reference in zip(predictions, references, strict=True):
        # rouge_score's argument order is (target, prediction); swapping it would swap recall and precision.
        scores = scorer.score(reference, prediction)
        rows.append(
            {
                "rougeL_f1": scores["rougeL"].fmeasure,
                "rougeL_recall": scores["rougeL"].recall,
                "rouge1_f1": scores["rouge1"].fmeasure,
            }
        )
    return pd.DataFrame(rows, columns=list(ROUGE_COLUMNS), dtype=float)


def sentence_bleu(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    """Return smoothed 4-gram BLEU for each prediction against its single reference.

    Uses NLTK's ``sentence_bleu`` with uniform weights and smoothing method 1 (a small epsilon for n-gram
    orders with no match), because unsmoothed BLEU is 0 for almost any short answer lacking a 4-gram match and
    would hide gradual forgetting. An empty prediction scores 0.0. Note that identical texts shorter than 4
    tokens score below 1.0, since they have no 4-grams at all.
    """
    _check_pairs(predictions, references)
    scores = []
    for prediction, reference in zip(predictions, references, strict=True):
        hypothesis = tokenize(prediction)
        if not hypothesis:
            scores.append(0.0)
            continue
        score = _nltk_sentence_bleu(
            [tokenize(reference)], hypothesis, weights=BLEU_WEIGHTS, smoothing_function=_SMOOTHING
        )
        scores.append(float(score))
    return scores


def corpus_bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Return corpus-level BLEU, pooling n-gram matches and lengths over all pairs before combining them.

    This is the standard BLEU definition and is not the mean of :func:`sentence_bleu`: long sentences weigh
    more and the brevity penalty applies to total length. Same tokenisation and smoothing as the sentence
    variant. An empty corpus is refused, since 0.0 would read as "nothing matched".
    """
    _check_pairs(predictions, references)
    if len(predictions) == 0:
        raise InputError("corpus_bleu needs at least one prediction/reference pair, got none")
    hypotheses = [tokenize(prediction) for prediction in predictions]
    list_of_references = [[tokenize(reference)] for reference in references]
    if not any(hypotheses):
        return 0.0
    score = _nltk_corpus_bleu(list_of_references, hypotheses, weights=BLEU_WEIGHTS, smoothing_function=_SMOOTHING)
    return float(score)


def is_degenerate(text: str) -> bool:
    """Flag output that is empty or loops, the two usual ways an over-unlearned model fails.

    A text is degenerate if it is empty/whitespace only, or if any 3-gram of lowercased whitespace-separated
    words occurs 3 or more times. Such outputs can score near-zero ROUGE on the forget set for the wrong
    reason, so they are counted separately instead of being mistaken for successful forgetting.
    """
    words = text.lower().split()
    if not words:
        return True
    trigrams = Counter(zip(words, words[1:], words[2:], strict=False))
    return any(count >= 3 for count in trigrams.values())


def _check_logliks(name: str, logliks: Sequence[float]) -> list[float]:
    """Return the log-likelihoods as floats, refusing an empty list or NaN, which have no MC score."""
    values = [float(value) for value in logliks]
    if not values:
        raise InputError(f"{name} is empty: a multiple-choice item needs at least one option of each kind")
    if any(math.isnan(value) for value in values):
        raise InputError(f"{name} contains NaN log-likelihoods: {values}")
    return values


def _logsumexp(values: Sequence[float]) -> float:
    """Return log(sum(exp(v))) without underflow, since option log-likelihoods can be -300 or lower."""
    peak = max(values)
    if peak == -math.inf:
        return -math.inf
    return peak + math.log(math.fsum(math.exp(value - peak) for value in values))


def mc1(best_loglik: float, incorrect_logliks: Sequence[float]) -> float:
    """Return TruthfulQA MC1: 1.0 if the best answer is strictly more likely than every incorrect option.

    Log-likelihoods are sums of token log-probabilities of each option given the question. A tie counts as
    wrong (0.0), so a model that assigns equal scores to everything gets no credit.
    """
    incorrect = _check_logliks("incorrect_logliks", incorrect_logliks)
    (best,) = _check_logliks("best_loglik", [best_loglik])
    return 1.0 if all(best > value for value in incorrect) else 0.0


def mc2(correct_logliks: Sequence[float], incorrect_logliks: Sequence[float]) -> float:
    """Return TruthfulQA MC2: the probability mass on correct options, normalised over all options.

    Computes ``sum(exp(c)) / (sum(exp(c)) + sum(exp(i)))`` in log space, because likelihoods of whole answers
    underflow to 0 in float64 (exp(-800) == 0.0) and a naive ratio would become 0/0.
    """
    correct = _check_logliks("correct_logliks", correct_logliks)
    incorrect = _check_logliks("incorrect_logliks", incorrect_logliks)
    total = _logsumexp(correct + incorrect)
    if total == -math.inf:
        raise InputError("mc2 is undefined: every option has log-likelihood -inf (probability zero)")
    return math.exp(_logsumexp(correct) - total)
