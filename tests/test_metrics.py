"""Hand-worked checks for unlearning.scoring.metrics: each expected value is derived in a comment, not copied."""

from __future__ import annotations

import math

import pytest

from unlearning.core.errors import InputError
from unlearning.scoring.metrics import (
    ROUGE_COLUMNS,
    corpus_bleu,
    is_degenerate,
    mc1,
    mc2,
    rouge,
    sentence_bleu,
    tokenize,
)

REF = "the cat sat on the mat"

# ---------------------------------------------------------------------------------------------------- ROUGE


def test_rouge_identical_and_disjoint():
    table = rouge([REF, "dogs bark loudly"], [REF, REF])
    assert list(table.columns) == list(ROUGE_COLUMNS)
    assert table.iloc[0].tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert table.iloc[1].tolist() == pytest.approx([0.0, 0.0, 0.0])


def test_rouge_worked_substitution():
    # ref  = the cat sat on the mat   (6 tokens)
    # pred = the cat lay on the mat   (6 tokens)
    # LCS = "the cat on the mat" = 5 -> P = 5/6, R = 5/6, F1 = 5/6.
    # Unigram overlap (clipped): the x2, cat, on, mat = 5 of 6 on each side -> ROUGE-1 F1 = 5/6.
    row = rouge(["the cat lay on the mat"], [REF]).iloc[0]
    assert row["rougeL_f1"] == pytest.approx(5 / 6)
    assert row["rougeL_recall"] == pytest.approx(5 / 6)
    assert row["rouge1_f1"] == pytest.approx(5 / 6)


def test_rouge_l_differs_from_rouge_1_on_reordering():
    # pred = on the mat the cat sat: the same bag of words as ref, so ROUGE-1 F1 = 1.0.
    # Longest common subsequence: "the cat sat" or "on the mat" (3 tokens); "the the mat" fails because
    # pred has no "mat" after its second "the". LCS = 3 -> P = R = 3/6, F1 = 0.5.
    # This is the case where the seed notebook's "ROUGE-L" (really ROUGE-1) would report 1.0.
    row = rouge(["on the mat the cat sat"], [REF]).iloc[0]
    assert row["rouge1_f1"] == pytest.approx(1.0)
    assert row["rougeL_f1"] == pytest.approx(0.5)
    assert row["rougeL_recall"] == pytest.approx(0.5)


def test_rouge_recall_is_measured_against_the_reference():
    # pred = "the cat" against the 6-token ref: LCS = 2 -> P = 2/2 = 1, R = 2/6 = 1/3,
    # F1 = 2 * 1 * (1/3) / (1 + 1/3) = 0.5. If prediction and reference were swapped, recall would be 1.0.
    # ROUGE-1: overlap 2, P = 1, R = 1/3 -> F1 = 0.5.
    row = rouge(["the cat"], [REF]).iloc[0]
    assert row["rougeL_recall"] == pytest.approx(1 / 3)
    assert row["rougeL_f1"] == pytest.approx(0.5)
    assert row["rouge1_f1"] == pytest.approx(0.5)


def test_rouge_uses_stemming():
    # Porter stems "running" to "run"; without stemming the two share no token and would score 0.
    row = rouge(["the dog is running"], ["the dog is run"]).iloc[0]
    assert row.tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert rouge(["running"], ["run"]).iloc[0]["rougeL_f1"] == pytest.approx(1.0)


def test_rouge_preserves_row_order_and_empty_input():
    table = rouge(["dogs bark", REF], [REF, REF])
    assert table["rougeL_f1"].tolist() == pytest.approx([0.0, 1.0])
    empty = rouge([], [])
    assert len(empty) == 0 and list(empty.columns) == list(ROUGE_COLUMNS)


def test_rouge_length_mismatch_names_both_lengths():
    with pytest.raises(ValueError, match=r"2 predictions vs 1 references"):
        rouge(["a", "b"], ["a"])


def test_bare_string_is_refused():
    with pytest.raises(InputError, match="single string"):
        rouge("the cat", "the cat")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------- BLEU


def test_tokenize_lowercases_and_drops_punctuation():
    assert tokenize("Don't stop!") == ["don", "t", "stop"]
    assert tokenize("  The  CAT, sat.") == ["the", "cat", "sat"]
    assert tokenize("") == []


def test_tokenize_any_script():
    # words in spaced scripts, combining marks kept with their letter (Devanagari vowel signs, Thai tone marks)
    assert tokenize("Он родился в Москве.") == ["он", "родился", "в", "москве"]
    assert tokenize("नमस्ते दुनिया") == ["नमस्ते", "दुनिया"]
    assert tokenize("José Müller") == ["josé", "müller"]  # rouge-score's default made these "jos", "m", "ller"
    # one token per character where words are not separated by spaces
    assert tokenize("她出生于北京。") == ["她", "出", "生", "于", "北", "京"]
    assert tokenize("東京で") == ["東", "京", "で"]
    assert tokenize("ที่") == ["ที่"]
    assert tokenize("ＡＢＣ１２３") == ["abc123"]  # NFKC: full-width Latin is plain Latin


IDENTICAL = [
    "Он родился в Москве.",
    "她出生于北京。",
    "東京で生まれました。",
    "ولد في القاهرة عام ١٩٥٠",
    "नमस्ते दुनिया यह परीक्षण है",
    "เขาเกิดที่กรุงเทพ",
    "그는 서울에서 태어났다 고 합니다",
    "Γεννήθηκε στην Αθήνα το 1950",
    "José Müller was born in Zürich.",
]


@pytest.mark.parametrize("text", IDENTICAL)
def test_identical_texts_score_one_in_any_script(text):
    assert rouge([text], [text]).iloc[0].tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert sentence_bleu([text], [text]) == pytest.approx([1.0])  # every text here has 4 tokens or more
    assert corpus_bleu([text], [text]) == pytest.approx(1.0)


def test_rouge_and_bleu_share_the_tokens_in_chinese():
    # ref 她出生于北京 = 6 character tokens; pred 她出生于上海 shares the first 4 in order:
    # LCS = 4 -> P = R = F1 = 4/6; ROUGE-1 overlap 4 -> 4/6.
    row = rouge(["她出生于上海。"], ["她出生于北京。"]).iloc[0]
    assert row.tolist() == pytest.approx([4 / 6, 4 / 6, 4 / 6])
    # BLEU on the same tokens: 1-gram 4/6, 2-gram 3/5, 3-gram 2/4, 4-gram 1/3, equal lengths (no brevity penalty)
    expected = math.exp((math.log(4 / 6) + math.log(3 / 5) + math.log(2 / 4) + math.log(1 / 3)) / 4)
    assert sentence_bleu(["她出生于上海。"], ["她出生于北京。"]) == pytest.approx([expected])


def test_rouge_keeps_rouge_score_values_on_english():
    # the shared tokens + Porter stemming of ASCII words give rouge-score's own default tokens on English text
    from rouge_score.tokenizers import DefaultTokenizer

    from unlearning.scoring.metrics import RougeTokenizer

    text = "The cat, running quickly; wasn't 1.80 m_tall (in 1902)! Sartre studied at Cambridge."
    assert RougeTokenizer().tokenize(text) == DefaultTokenizer(use_stemmer=True).tokenize(text)


def test_sentence_bleu_identical_disjoint_and_empty():
    scores = sentence_bleu(["the cat sat down", "dogs bark", ""], ["The cat sat down", "cats meow", "x"])
    assert scores == pytest.approx([1.0, 0.0, 0.0])


def test_sentence_bleu_worked_example():
    # pred = the cat sat on the mat        (c = 6 tokens)
    # ref  = the cat sat on the red mat    (r = 7 tokens)
    # p1: all 6 unigrams found (ref has "the" twice)                                   -> 6/6
    # p2: the cat, cat sat, sat on, on the match; "the mat" does not                   -> 4/5
    # p3: the cat sat, cat sat on, sat on the match; "on the mat" does not             -> 3/4
    # p4: the cat sat on, cat sat on the match; "sat on the mat" does not              -> 2/3
    # No precision is zero, so smoothing method 1 changes nothing.
    # BP = exp(1 - r/c) = exp(1 - 7/6) = exp(-1/6)
    # BLEU = exp(-1/6) * (1 * 4/5 * 3/4 * 2/3) ** (1/4) = exp(-1/6) * 0.4 ** 0.25 ~= 0.6732
    expected = math.exp(-1 / 6) * 0.4**0.25
    assert sentence_bleu([REF], ["the cat sat on the red mat"]) == pytest.approx([expected])


def test_sentence_bleu_smoothing_method1():
    # pred = the cat ran away, ref = the cat sat down (c = r = 4 -> BP = 1).
    # p1 = 2/4, p2 = 1/3 ("the cat"), p3 = 0/2, p4 = 0/1. Method 1 replaces a zero numerator by epsilon = 0.1:
    # p3 = 0.1/2, p4 = 0.1/1. BLEU = (1/2 * 1/3 * 1/20 * 1/10) ** (1/4) ~= 0.1699; unsmoothed BLEU would be 0.
    expected = (1 / 2 * 1 / 3 * 1 / 20 * 1 / 10) ** 0.25
    assert sentence_bleu(["the cat ran away"], ["the cat sat down"]) == pytest.approx([expected])
    assert corpus_bleu(["the cat ran away"], ["the cat sat down"]) == pytest.approx(expected)


def test_corpus_bleu_pools_counts_instead_of_averaging():
    # Pair 1 is the worked example above (BLEU ~= 0.6732); pair 2 is a perfect 5-token match (BLEU 1.0).
    # Pooled: p1 = (6+5)/(6+5) = 1, p2 = (4+4)/(5+4) = 8/9, p3 = (3+3)/(4+3) = 6/7, p4 = (2+2)/(3+2) = 4/5;
    # c = 6+5 = 11, r = 7+5 = 12 -> BP = exp(1 - 12/11) = exp(-1/11).
    # corpus BLEU = exp(-1/11) * (8/9 * 6/7 * 4/5) ** (1/4) ~= 0.8068, below the sentence mean ~= 0.8366
    # because the pooled brevity penalty and the longer imperfect sentence dominate.
    preds = [REF, "a quick brown fox jumps"]
    refs = ["the cat sat on the red mat", "a quick brown fox jumps"]
    sentence = sentence_bleu(preds, refs)
    corpus = corpus_bleu(preds, refs)
    expected = math.exp(-1 / 11) * (8 / 9 * 6 / 7 * 4 / 5) ** 0.25
    assert sentence == pytest.approx([math.exp(-1 / 6) * 0.4**0.25, 1.0])
    assert corpus == pytest.approx(expected)
    assert corpus < sum(sentence) / len(sentence)


def test_corpus_bleu_single_pair_equals_sentence_bleu_and_edge_cases():
    pair = ([REF], ["the cat sat on the red mat"])
    assert corpus_bleu(*pair) == pytest.approx(sentence_bleu(*pair)[0])
    assert corpus_bleu(["", ""], ["a b c d", "e f g h"]) == 0.0
    assert corpus_bleu(["dogs bark"], ["cats meow"]) == 0.0
    with pytest.raises(ValueError, match="at least one"):
        corpus_bleu([], [])


# Identical answers shorter than 4 tokens. Fixed-order BLEU-4 with smoothing method 1 gave them (p_n = 0.1 for the
# orders they lack): 1 token (1 * 0.1**3) ** (1/4) ~= 0.178, 2 tokens (0.1**2) ** (1/4) ~= 0.316, 3 tokens
# 0.1 ** (1/4) ~= 0.562. The order now follows the prediction's length (N = min(4, tokens)), so all score 1.0.
SHORT_IDENTICAL = ["Jane", "Jane Doe", "Jane A. Doe", "1950", "Paris, France"]


@pytest.mark.parametrize("text", SHORT_IDENTICAL)
def test_identical_short_answers_score_one(text):
    assert sentence_bleu([text], [text]) == pytest.approx([1.0])
    assert corpus_bleu([text], [text]) == pytest.approx(1.0)


def test_corpus_of_identical_short_answers_scores_one():
    # NLTK's corpus_bleu(auto_reweigh=True) re-weighs on the *summed* length (here 2 + 2 + 2 = 6 tokens, so not at
    # all) and gives 3 x "Jane Doe" 0.183; it also counts a 2-token answer as one unmatched 3-gram and 4-gram, so a
    # short identical answer pooled with a long identical one scored 0.84. Pooled effective order: both are 1.0.
    assert corpus_bleu(["Jane Doe"] * 3, ["Jane Doe"] * 3) == pytest.approx(1.0)
    texts = ["Jane", "Jane Doe", "born in Paris", "the cat sat on the mat"]
    assert corpus_bleu(texts, texts) == pytest.approx(1.0)
    assert sentence_bleu(texts, texts) == pytest.approx([1.0] * 4)


def test_short_partial_matches_score_between_zero_and_one():
    # "Jane Smith" vs "Jane Doe": N = 2, p1 = 1/2, p2 = 0/1 -> 0.1/1 (method 1), c = r -> BP = 1: sqrt(1/2 * 1/10)
    assert sentence_bleu(["Jane Smith"], ["Jane Doe"]) == pytest.approx([math.sqrt(0.05)])  # ~= 0.224
    # shorter prediction, "Jane" vs "Jane Doe": N = 1, p1 = 1, BP = exp(1 - 2/1) = exp(-1) ~= 0.368 (was 0.065)
    assert sentence_bleu(["Jane"], ["Jane Doe"]) == pytest.approx([math.exp(-1)])
    # longer prediction, "Jane Doe Smith" vs "Jane Doe": N = 3, p1 = 2/3, p2 = 1/2, p3 = 0/1 -> 0.1 (the reference
    # has no 3-gram), BP = 1: (2/3 * 1/2 * 1/10) ** (1/3) ~= 0.322 (was 0.240)
    assert sentence_bleu(["Jane Doe Smith"], ["Jane Doe"]) == pytest.approx([(2 / 3 * 1 / 2 * 1 / 10) ** (1 / 3)])
    # 4 tokens or more: unchanged fixed order 4. "Jane Doe is her name" vs "Jane Doe": p = 2/5, 1/4, 0.1/3, 0.1/2
    assert sentence_bleu(["Jane Doe is her name"], ["Jane Doe"]) == pytest.approx(
        [(2 / 5 * 1 / 4 * 0.1 / 3 * 0.1 / 2) ** 0.25]
    )
    partial = sentence_bleu(["Jane Smith", "Jane", "Jane Doe Smith"], ["Jane Doe"] * 3)
    assert all(0 < score < 1 for score in partial)
    assert sentence_bleu(["John Smith"], ["Jane Doe"]) == [0.0]


def test_corpus_bleu_effective_order_worked_example():
    # pairs ("Jane Doe" | "Jane Doe") and ("Paris" | "London"): the longest prediction has 2 tokens -> N = 2.
    # p1 = (2 + 0) / (2 + 1) = 2/3; p2 = (1 + 0) / (1 + 0) = 1 ("Paris" has no bigram and adds nothing to p2);
    # c = 3 = r -> BP = 1. BLEU = sqrt(2/3 * 1) ~= 0.816.
    assert corpus_bleu(["Jane Doe", "Paris"], ["Jane Doe", "London"]) == pytest.approx(math.sqrt(2 / 3))


@pytest.mark.parametrize(
    ("prediction", "reference"),
    [
        ("Jane", "Jane Doe"),
        ("Jane Doe Smith", "Jane Doe"),
        ("Jane Doe is her name", "Jane Doe"),
        ("the the the", "the cat"),
        ("the cat sat on the mat", "the cat sat on the red mat"),
        ("她出生于上海。", "她出生于北京。"),
        ("a b a b c", "a b a b"),
    ],
)
def test_corpus_bleu_of_one_pair_is_its_sentence_bleu(prediction, reference):
    assert corpus_bleu([prediction], [reference]) == pytest.approx(sentence_bleu([prediction], [reference])[0])


def test_bleu_length_mismatch():
    with pytest.raises(ValueError, match=r"1 predictions vs 2 references"):
        sentence_bleu(["a"], ["a", "b"])
    with pytest.raises(ValueError, match=r"1 predictions vs 2 references"):
        corpus_bleu(["a"], ["a", "b"])


# ---------------------------------------------------------------------------------------------- degenerate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", True),
        ("   \n\t ", True),
        ("no no no no no", True),  # (no, no, no) occurs 3 times
        ("I don't know. I don't know. I don't know.", True),  # (i, don't, know.) x3
        ("The cat sat. the CAT sat. THE cat SAT.", True),  # case-insensitive
        ("I don't know. I don't know.", False),  # only twice
        ("no no no no", False),  # (no, no, no) only twice
        (REF, False),
        ("ok", False),
    ],
)
def test_is_degenerate(text, expected):
    assert is_degenerate(text) is expected


# ------------------------------------------------------------------------------------------ TruthfulQA MC


def test_mc_two_option_item():
    good, bad = math.log(0.75), math.log(0.25)
    assert mc1(good, [bad]) == 1.0
    assert mc2([good], [bad]) == pytest.approx(0.75)
    # Swapped: the true answer is now the less likely one.
    assert mc1(bad, [good]) == 0.0
    assert mc2([bad], [good]) == pytest.approx(0.25)


def test_mc_multiple_options_and_ties():
    # Probabilities 0.2 + 0.1 correct vs 0.3 + 0.4 incorrect -> mc2 = 0.3 / 1.0.
    assert mc2([math.log(0.2), math.log(0.1)], [math.log(0.3), math.log(0.4)]) == pytest.approx(0.3)
    # MC1 is lm-eval's argmax over [best, *incorrect] == 0: numpy.argmax picks the first of equal maxima, so a tie
    # with the best answer counts as correct.
    assert mc1(-1.0, [-2.0, -0.5]) == 0.0
    assert mc1(-1.0, [-1.0]) == 1.0
    assert mc1(-1.0, [-1.0 - 1e-9, -5.0]) == 1.0


def test_mc_extreme_logliks_stay_finite():
    # exp(-1000) underflows to 0.0, so a naive ratio is 0/0; in log space the answer is 1 / (1 + e^-1).
    value = mc2([-1000.0], [-1001.0])
    assert math.isfinite(value)
    assert value == pytest.approx(1 / (1 + math.exp(-1)))
    assert mc2([-300.0], [-300.0]) == pytest.approx(0.5)
    assert mc1(-1000.0, [-1001.0]) == 1.0
    # An option with zero probability contributes nothing.
    assert mc2([-math.inf], [-5.0]) == 0.0


def test_mc_empty_or_invalid_options_raise():
    with pytest.raises(ValueError, match="incorrect_logliks is empty"):
        mc1(-1.0, [])
    with pytest.raises(ValueError, match="correct_logliks is empty"):
        mc2([], [-1.0])
    with pytest.raises(ValueError, match="incorrect_logliks is empty"):
        mc2([-1.0], [])
    with pytest.raises(ValueError, match="NaN"):
        mc2([float("nan")], [-1.0])
    with pytest.raises(ValueError, match="-inf"):
        mc2([-math.inf], [-math.inf])
