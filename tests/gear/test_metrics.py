"""Metrics against hand-computed cases, the official SQuAD normalisation, rouge_score, and the bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from gear.evaluation.metrics import (
    bootstrap_ci,
    bootstrap_indices,
    exact_match,
    localization_metrics,
    normalize_answer,
    paired_bootstrap_pvalue,
    qa_generation_metrics,
    rank_relevance,
    ranking_metrics,
    retrieval_metrics,
    rouge_metrics,
    summarize,
    token_f1,
)

# ------------------------------------------------------------------ ranking


def test_single_relevant_unit_recall_and_mrr():
    scores = [np.array([0.1, 0.7, 0.2, 0.5])]
    # ranking: unit 1, unit 3, unit 2, unit 0
    assert localization_metrics(scores, [[1]], k=1)["R@1"].tolist() == [1.0]
    m = localization_metrics(scores, [[3]], k=1)
    assert m["R@1"].tolist() == [0.0] and m["M@1"].tolist() == [0.0]
    m = localization_metrics(scores, [[3]], k=3)
    assert m["R@3"].tolist() == [1.0] and m["M@3"].tolist() == pytest.approx([0.5])
    m = localization_metrics(scores, [[0]], k=3)
    assert m["R@3"].tolist() == [0.0] and m["M@3"].tolist() == [0.0]


def test_several_relevant_units():
    # ranking: 1 (0.9), 4 (0.8), 0 (0.6), 2 (0.3), 3 (0.1); relevant {0, 3, 4}
    scores = [np.array([0.6, 0.9, 0.3, 0.1, 0.8])]
    m = localization_metrics(scores, [[4, 0, 3]], k=3)
    assert m["R@3"][0] == pytest.approx(2 / 3)  # 4 and 0 in the top 3 of 3 relevant
    assert m["M@3"][0] == pytest.approx(1 / 2)  # first relevant (unit 4) at rank 2
    m = localization_metrics(scores, [[4, 0, 3]], k=1)
    assert m["R@1"][0] == 0.0 and m["M@1"][0] == 0.0
    # duplicates in the relevant list count once
    m = localization_metrics(scores, [[4, 4, 0, 3]], k=5)
    assert m["R@5"][0] == pytest.approx(1.0)


def test_ties_are_ranked_pessimistically():
    # All scores equal: the relevant unit ranks after every irrelevant one, wherever it sits.
    flat = [np.array([0.5, 0.5, 0.5, 0.5])]
    for unit in range(4):
        m = localization_metrics(flat, [[unit]], k=3)
        assert m["R@3"][0] == 0.0 and m["M@3"][0] == 0.0
    m = localization_metrics(flat, [[2]], k=4)
    assert m["R@4"][0] == 1.0 and m["M@4"][0] == pytest.approx(1 / 4)
    # A tie below a clear winner: relevant unit 2 ties with unit 0 for rank 2 and gets rank 3.
    m = localization_metrics([np.array([0.4, 0.9, 0.4])], [[2]], k=2)
    assert m["R@2"][0] == 0.0
    assert localization_metrics([np.array([0.4, 0.9, 0.4])], [[2]], k=3)["M@3"][0] == pytest.approx(1 / 3)
    # Two relevant units tied at the cut-off: recall counts what fits (order among them irrelevant).
    m = localization_metrics([np.array([0.9, 0.5, 0.5, 0.1])], [[1, 2]], k=2)
    assert m["R@2"][0] == pytest.approx(0.5) and m["M@2"][0] == pytest.approx(0.5)
    # -inf (truncated units) tie with each other, below every finite score
    m = localization_metrics([np.array([-np.inf, 0.2, -np.inf])], [[0]], k=2)
    assert m["R@2"][0] == 0.0
    m = localization_metrics([np.array([-np.inf, 0.2, -np.inf])], [[0]], k=3)
    assert m["M@3"][0] == pytest.approx(1 / 3)


def test_rank_relevance_orders_padding_last_and_rejects_nan():
    scores = np.array([[0.1, 0.9, 0.0]])
    relevant = np.array([[True, False, True]])
    valid = np.array([[True, True, False]])
    assert rank_relevance(scores, relevant, valid).tolist() == [[False, True, False]]
    with pytest.raises(ValueError, match="NaN"):
        rank_relevance(np.array([[np.nan, 0.1]]), np.array([[True, False]]))


def test_queries_without_relevant_item_are_refused():
    with pytest.raises(ValueError, match="no relevant item"):
        localization_metrics([np.array([0.3, 0.2])], [[]], k=1)
    with pytest.raises(ValueError, match="outside"):
        localization_metrics([np.array([0.3, 0.2])], [[2]], k=1)


def test_empty_top_k_scores_zero():
    # no item ranked at all
    m = ranking_metrics(np.zeros((2, 0), dtype=bool), np.array([1, 2]), k=5)
    assert m["R@5"].tolist() == [0.0, 0.0] and m["M@5"].tolist() == [0.0, 0.0]
    # a corpus smaller than k: FAISS leaves -1 slots
    m = retrieval_metrics(np.array([[-1, -1, -1]]), np.full((1, 3), -np.inf), [[0]], k=3)
    assert m["R@3"].tolist() == [0.0]


def test_retrieval_metrics_hand_computed():
    retrieved = np.array([[4, 2, 7, -1], [1, 3, 0, 5], [9, 8, 6, 5]])
    scores = np.array([[0.9, 0.8, 0.7, -np.inf], [0.9, 0.8, 0.7, 0.6], [0.9, 0.8, 0.7, 0.6]])
    gold = [[2], [5], [0]]
    m = retrieval_metrics(retrieved, scores, gold, k=2)
    assert m["R@2"].tolist() == [1.0, 0.0, 0.0]
    assert m["M@2"].tolist() == pytest.approx([0.5, 0.0, 0.0])
    m = retrieval_metrics(retrieved, scores, gold, k=4)
    assert m["R@4"].tolist() == [1.0, 1.0, 0.0]
    assert m["M@4"].tolist() == pytest.approx([0.5, 0.25, 0.0])
    # two relevant documents, one retrieved: recall is a half
    m = retrieval_metrics(retrieved[:1], scores[:1], [[2, 11]], k=4)
    assert m["R@4"][0] == pytest.approx(0.5)
    # a tie between the gold document and another at the cut-off goes against the model
    m = retrieval_metrics(np.array([[3, 1]]), np.array([[0.5, 0.5]]), [[3]], k=1)
    assert m["R@1"][0] == 0.0


# ------------------------------------------------------------------ generation


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The  Eiffel Tower!", "eiffel tower"),
        ("an apple, a pear and THE plum.", "apple pear and plum"),
        ("theatre another", "theatre another"),  # articles only as whole words
        ("  \t spaced\n\nout  ", "spaced out"),
        ("U.S.A.", "usa"),
        ("Café\u00a0Müller", "café müller"),  # Unicode lower case; no-break space is white space
        ("“quoted” – dash", "“quoted” – dash"),  # non-ASCII punctuation kept, as the official script
        ("a", ""),
        ("", ""),
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_exact_match_and_f1_take_the_best_answer():
    assert exact_match("the Normans", ["Norman", "Normans"]) == 1.0
    assert exact_match("Normandy", ["Norman", "Normans"]) == 0.0
    # prediction "in france" vs "france": precision 1/2, recall 1 -> F1 2/3
    assert token_f1("in France", ["France"]) == pytest.approx(2 / 3)
    # maximum over answers: 2/3 from the first, 1.0 from the second
    assert token_f1("in France", ["France", "in france."]) == pytest.approx(1.0)
    # shared tokens count by multiplicity: "x y y" against "y" shares one: precision 1/3, recall 1
    assert token_f1("x y y", ["y"]) == pytest.approx(0.5)
    # official v1.1: no shared token (even both empty) gives F1 0; exact match of "" and "the" is 1
    assert token_f1("the", ["a"]) == 0.0
    assert exact_match("the", ["a"]) == 1.0
    with pytest.raises(ValueError):
        exact_match("x", [])


def test_qa_generation_metrics_per_query():
    m = qa_generation_metrics(
        ["Paris", "in 1066", "no idea"], [["Paris"], ["1066", "in 1066 AD"], ["London"]]
    )
    assert m["EM"].tolist() == [1.0, 0.0, 0.0]
    assert m["F1"].tolist() == pytest.approx([1.0, max(2 / 3, 2 * 1 * (2 / 3) / (1 + 2 / 3)), 0.0])


def test_rouge_matches_rouge_score():
    from rouge_score.rouge_scorer import RougeScorer

    preds = ["the cats were sitting on mats", "Gutenberg invented printing", ""]
    targets = [
        "a cat sat on the mat",
        "Johannes Gutenberg developed the printing press in Mainz",
        "something",
    ]
    scorer = RougeScorer(["rouge1", "rougeL"], use_stemmer=True)
    m = rouge_metrics(preds, targets)
    for i, (p, t) in enumerate(zip(preds, targets, strict=True)):
        s = scorer.score(t, p)
        assert m["ROUGE-1"][i] == pytest.approx(s["rouge1"].fmeasure)
        assert m["ROUGE-L"][i] == pytest.approx(s["rougeL"].fmeasure)
    assert m["ROUGE-1"][0] > 0.3  # stemming matches cats / cat and mats / mat
    assert m["ROUGE-1"][2] == 0.0


# ------------------------------------------------------------------ bootstrap


def test_bootstrap_indices_depend_only_on_n_resamples_seed():
    a = bootstrap_indices(50, 200, seed=7)
    assert a.shape == (200, 50) and a.min() >= 0 and a.max() < 50
    assert np.array_equal(a, bootstrap_indices(50, 200, seed=7))
    assert not np.array_equal(a, bootstrap_indices(50, 200, seed=8))


def test_bootstrap_ci_covers_the_mean_and_is_reproducible():
    values = np.random.default_rng(0).integers(0, 2, size=400).astype(float)
    indices = bootstrap_indices(len(values), 1000, seed=3)
    low, high = bootstrap_ci(values, indices, 0.95)
    assert low < values.mean() < high
    # binomial standard error sqrt(p(1-p)/n) ~ 0.025, so the 95% interval is ~0.1 wide
    assert 0.07 < high - low < 0.13
    assert (low, high) == bootstrap_ci(values, bootstrap_indices(len(values), 1000, seed=3), 0.95)
    narrow = bootstrap_ci(values, indices, 0.5)
    assert low < narrow[0] < narrow[1] < high


def test_constant_values_give_a_point_interval():
    indices = bootstrap_indices(10, 100, seed=0)
    assert bootstrap_ci(np.ones(10), indices) == (1.0, 1.0)


def test_paired_pvalue():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2, size=300).astype(float)
    indices = bootstrap_indices(300, 1000, seed=5)
    assert paired_bootstrap_pvalue(a, a, indices) == 1.0
    # b is a with a fifth of its hits removed: clearly worse, p at its floor 1/1001
    b = a.copy()
    b[np.flatnonzero(a)[::5]] = 0.0
    assert paired_bootstrap_pvalue(a, b, indices) == pytest.approx(1 / 1001)
    # symmetric in the order of the models
    assert paired_bootstrap_pvalue(b, a, indices) == paired_bootstrap_pvalue(a, b, indices)
    # two independent draws of the same distribution: typically not significant
    c = rng.permutation(a)
    assert paired_bootstrap_pvalue(a, c, indices) > 0.05
    with pytest.raises(ValueError):
        paired_bootstrap_pvalue(a, a[:-1], indices)


def test_summarize_shares_resamples_across_metrics():
    values = {"R@1": np.array([1.0, 0.0, 1.0, 1.0]), "M@1": np.array([1.0, 0.0, 1.0, 1.0])}
    metrics, ci = summarize(values, resamples=100, seed=0, confidence=0.95)
    assert metrics == {"R@1": 0.75, "M@1": 0.75}
    assert ci["R@1"] == ci["M@1"]
    with pytest.raises(ValueError, match="differ in length"):
        summarize({"a": np.ones(3), "b": np.ones(4)}, 10, 0, 0.95)


def test_break_ties_at_random_keeps_every_strict_order():
    from gear.evaluation.metrics import break_ties_at_random, localization_metrics

    rows = [np.array([3.0, 5.0, 5.0, 2.0, -np.inf]), np.array([1.0, 1.0, 1.0, 1.0])]
    broken = break_ties_at_random(rows, seed=0)
    assert broken[0][4] == -np.inf and broken[0][1] != broken[0][2]
    assert np.argsort(broken[0][[0, 3]]).tolist() == [1, 0] and min(broken[0][1:3]) > broken[0][0]
    assert len(set(broken[1].tolist())) == 4 and (broken[1] < 1.5).all()
    # pessimistic ties put a gold unit last among equals; random ties give chance among them
    gold = [[2], [3]]
    assert localization_metrics(rows, gold, 1)["R@1"].tolist() == [0.0, 0.0]
    hits = [localization_metrics(break_ties_at_random(rows, seed=s), gold, 1)["R@1"] for s in range(200)]
    assert 0.3 < np.mean([h[0] for h in hits]) < 0.7 and 0.15 < np.mean([h[1] for h in hits]) < 0.35


def test_other_queries_reference_catches_query_independent_attention():
    """Attention that ignores the query ranks units exactly as its siblings' attention does; a
    localizer that reads the query beats that reference."""
    from gear.evaluation.metrics import localization_metrics, other_queries_scores

    salience = np.array([0.1, 0.7, 0.2])
    documents = ["d1", "d1", "d1", "d2"]
    relevant = [[0], [1], [2], [0]]
    blind = [salience, salience, salience, np.array([0.5, 0.5])]
    idx, reference = other_queries_scores(blind, documents)
    assert idx.tolist() == [0, 1, 2]
    subset = [relevant[i] for i in idx]
    own = localization_metrics([blind[i] for i in idx], subset, 1)["R@1"]
    others = localization_metrics(reference, subset, 1)["R@1"]
    np.testing.assert_array_equal(own, others)

    reading = [np.eye(3)[0], np.eye(3)[1], np.eye(3)[2], np.array([1.0, 0.0])]
    idx, reference = other_queries_scores(reading, documents)
    own = localization_metrics([reading[i] for i in idx], subset, 1)["R@1"]
    others = localization_metrics(reference, subset, 1)["R@1"]
    assert own.mean() == 1.0 and others.mean() < 0.5
