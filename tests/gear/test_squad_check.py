"""The real-text check (``python -m gear.tools.squad_check``) end to end on a sliver of real SQuAD."""

from __future__ import annotations

import json
import math
import re

import pytest


def _labelled_rows(table: str, labels: tuple[str, ...]) -> tuple[list[str], list[tuple[str, str]]]:
    """The table rows of epochs 0-1 whose second cell is one of ``labels``, and their (epoch, label)."""
    pattern = re.compile(rf"^\| [01] \| ({'|'.join(labels)}) \|")
    rows = [line for line in table.splitlines() if pattern.match(line)]
    return rows, [(line.split("|")[1].strip(), line.split("|")[2].strip()) for line in rows]


@pytest.mark.slow
def test_squad_check_trains_and_reports_every_metric(squad_dev_path, tmp_path, capsys):
    from gear.tools.squad_check import main

    # What the training run and the --evaluate run below share: the split, the samples, the model size.
    common = [
        "--squad",
        str(squad_dev_path),
        "--train-articles",
        "2",
        "--test-articles",
        "1",
        "--max-document-tokens",
        "64",
        "--generation-pairs",
        "8",
        "--localization-pairs",
        "24",
        "--max-new-tokens",
        "3",
        "--threads",
        "1",
        "--init",
        "scratch",
    ]
    main(
        [
            *common,
            *("--out", str(tmp_path), "--max-train", "16", "--cloze-queries", "4"),
            *("--validation-questions", "8"),
            *("--epochs", "1", "--batch-size", "4"),
        ]
    )
    table = capsys.readouterr().out
    trained = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert len(trained) == 16 + 4 and sum("-c" in t["query_id"] for t in trained) == 4
    rows = [
        line
        for line in table.splitlines()
        if re.match(r"^\| [01] \| ", line)
        and line.count("|") > 10  # not the validation table's rows
        and not re.match(
            r"^\| [01] \| (questions|keyword queries|answer words|answers|keyword targets) \|", line
        )
    ]
    assert len(rows) == 2, table
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        recall, mrr = float(cells[3]), float(cells[4])
        loc_recall, loc_mrr = (float(x) for x in cells[5].split("/"))
        length, random, entropy = float(cells[6]), float(cells[7]), float(cells[8])
        assert 0 <= recall <= 1 and 0 <= mrr <= recall + 1e-9
        assert 0 <= loc_recall <= 1 and not math.isnan(loc_mrr)
        assert 0 <= length <= 1 and 0 <= random <= 1
        assert 0 < entropy <= 1.0 + 1e-6
        others, own = (float(x.strip("()")) for x in cells[9].split())
        assert 0 <= others <= 1 and 0 <= own <= 1
    # An untrained cross-attention is uniform.
    epoch_0 = [c.strip() for c in rows[0].strip("|").split("|")]
    assert float(epoch_0[8]) > 0.99
    summary = re.search(
        r"^squad_check summary: gear_loc_r1=(\d\.\d{3}) length_loc_r1=(\d\.\d{3}) "
        r"minilm_sentence_loc_r1=(\d\.\d{3}) em=(\d\.\d{3}) minutes=(\d+)$",
        table,
        re.MULTILINE,
    )
    assert summary, table
    # Held-out questions of the training articles pick the epoch the summary reports: the highest
    # validation R@1, the earliest of equal ones.
    validation = re.findall(
        r"^\| ([01]) \| (\d\.\d{3}) \| (\d\.\d{3}) \| (\d\.\d{3}) \|$", table, re.MULTILINE
    )
    assert [v[0] for v in validation] == ["0", "1"], table
    scores = [float(v[1]) for v in validation]
    picked = scores.index(max(scores))
    assert f"validation picks epoch {picked}" in table, table
    last = [c.strip() for c in rows[picked].strip("|").split("|")]
    assert validation[picked][3] == last[5].split("/")[0].strip(), table
    # The validation length ranking does not depend on the model.
    assert len({v[2] for v in validation}) == 1, table
    assert summary.group(1) == last[5].split("/")[0].strip() and summary.group(2) == last[6], table
    assert summary.group(4) == last[10] and 0 <= float(summary.group(3)) <= 1, table
    assert (tmp_path / "gear" / "epochs" / "epoch_1").is_dir()
    # The reported model as a registry entry (kind gear_folder) that the registry accepts.
    import yaml

    from baselines.registry import load_registry, saved_gear_folder

    entry_line = re.search(r"^  (GeAR_squad_check: \{kind: gear_folder, .*\})$", table, re.MULTILINE)
    assert entry_line, table
    registry = tmp_path / "registry.yaml"
    registry.write_text(yaml.safe_dump({"models": yaml.safe_load(entry_line.group(1))}), encoding="utf-8")
    entry = load_registry(registry)["GeAR_squad_check"]
    reported = tmp_path / "gear" / "epochs" / "epoch_1" if picked == 1 else None
    if reported is not None:
        assert saved_gear_folder(entry, "qar") == reported.resolve()
    else:  # epoch 0: the untrained start
        assert saved_gear_folder(entry, "qar").is_dir()
    # Localization by fusion layer (the scratch BERT has 2; the main table uses the last), for the
    # questions and the test articles' keyword queries, each beside its length ranking and MiniLM's
    # sentence similarity (for the questions, the summary's).
    by_layer, names = _labelled_rows(table, ("questions", "keyword queries"))
    assert names == [
        ("0", "questions"),
        ("0", "keyword queries"),
        ("1", "questions"),
        ("1", "keyword queries"),
    ], table
    for line, main_row in zip(by_layer[::2], rows, strict=True):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert len(cells) == 6 and all(0 <= float(c) <= 1 for c in cells[2:]), line
        main = [c.strip() for c in main_row.strip("|").split("|")]
        assert cells[5] == main[5].split("/")[0].strip() and cells[2] == main[6], (line, main_row)
        assert cells[3] == summary.group(3), (line, summary.group(0))
    keyword_minilm = {line.split("|")[4].strip() for line in by_layer[1::2]}
    assert len(keyword_minilm) == 1 and 0 <= float(keyword_minilm.pop()) <= 1, table
    # The answer's words among the paragraph's words, by layer: no MiniLM reference, a chance line.
    words, names = _labelled_rows(table, ("answer words",))
    assert names == [("0", "answer words"), ("1", "answer words")], table
    for line in words:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[3] == "-" and all(0 <= float(c) <= 1 for c in (cells[2], *cells[4:])), line
    chance = re.search(r"a random word is an answer word with probability (0\.\d{3})", table)
    assert chance and 0 < float(chance.group(1)) < 0.5, table
    # What the decoder reads: per epoch, the answers' and keyword sentences' LM loss with the right
    # paragraph, another one and no query; each variant changes what the model is given.
    reads, names = _labelled_rows(table, ("answers", "keyword targets"))
    assert names == [
        ("0", "answers"),
        ("0", "keyword targets"),
        ("1", "answers"),
        ("1", "keyword targets"),
    ], table
    for line in reads:
        right, other, empty = (float(c) for c in line.strip("|").split("|")[2:])
        assert all(0 < x < 20 for x in (right, other, empty)), line
        assert right != other and right != empty, line
    assert "Localization on the " in table and " of 24 test pairs" in table, table

    # --evaluate: a saved model evaluated alone gets the numbers it got in the training run.
    from gear.tools.squad_check import main as squad_check

    squad_check(
        [
            *common,
            "--out",
            str(tmp_path / "again"),
            "--evaluate",
            str(tmp_path / "gear" / "epochs" / "epoch_1"),
        ]
    )
    again = capsys.readouterr().out
    evaluated = [line for line in again.splitlines() if line.startswith("| m0 | - | - |")]
    assert len(evaluated) == 1, again
    assert evaluated[0].split("|")[4:] == rows[1].split("|")[4:], (evaluated[0], rows[1])
    assert "training:" not in again and not (tmp_path / "again" / "gear").exists()


def test_test_samples_draw_from_every_test_article(squad_dev_path):
    """Localization and generation are measured on prefixes of one seeded permutation of all test
    pairs: every test article is represented (the first pairs in article order were one article's),
    the generation sample lies inside the localization sample, 0 means every pair."""
    from gear.tools.squad_check import split_squad, squad_pairs, test_samples

    _, articles = split_squad(squad_dev_path, 2, 3, seed=0)
    test, _, _ = squad_pairs(articles)
    located, generated = test_samples(test, 60, 20, seed=0)
    assert len(located) == 60 and generated == located[:20]
    article_of = {t["query_id"]: a for a in range(3) for t in squad_pairs(articles[a : a + 1])[0]}
    assert {article_of[t["query_id"]] for t in located} == {0, 1, 2}
    assert test_samples(test, 60, 20, seed=0) == (located, generated)
    everything, _ = test_samples(test, 0, 20, seed=0)
    assert sorted(t["query_id"] for t in everything) == sorted(t["query_id"] for t in test)


def test_other_documents_never_give_a_pair_its_own_paragraph():
    from gear.tools.squad_check import other_documents

    documents = ["a", "a", "a", "b", "c", "c"]
    others = other_documents(documents)
    assert others == ["b", "b", "b", "c", "a", "a"]
    with pytest.raises(ValueError, match="two different documents"):
        other_documents(["a", "a"])


def test_sentence_triples_are_keyword_queries_of_their_own_sentence(squad_dev_path):
    """Each added triple's target is a sentence of its paragraph and every keyword of its query
    occurs in that sentence (the RIR construction: the query is written from the target)."""
    from gear.tools.squad_check import sentence_triples, split_squad

    articles, _ = split_squad(squad_dev_path, 3, 1, seed=0)
    triples = sentence_triples(articles, 50, seed=0)
    assert len(triples) == 50
    assert len({t["query_id"] for t in triples}) == 50
    for t in triples:
        assert t["target"] in t["document"]
        keywords = t["query"].split(", ")
        assert len(keywords) >= 3 and len(set(k.casefold() for k in keywords)) == len(keywords)
        assert all(k in t["target"] for k in keywords), t
    assert sentence_triples(articles, 50, seed=0) == triples


def test_sentence_triples_can_keep_only_some_keywords(squad_dev_path):
    """``--query-keywords K``: the query is the first K phrases of the full keyword query of the
    same sentence, and the sentence has at least two phrases more, so its target holds words the
    query lacks; a negative K is refused."""
    from gear.tools.squad_check import sentence_triples, split_squad

    articles, _ = split_squad(squad_dev_path, 3, 1, seed=0)
    full = {t["query_id"]: t for t in sentence_triples(articles, 10_000, seed=0)}
    capped = sentence_triples(articles, 10_000, seed=0, keywords=2)
    assert 0 < len(capped) < len(full)
    for t in capped:
        phrases = full[t["query_id"]]["query"].split(", ")
        assert t["query"].split(", ") == phrases[:2] and len(phrases) >= 4
        assert t["target"] == full[t["query_id"]]["target"]
    with pytest.raises(ValueError, match="--query-keywords"):
        sentence_triples(articles, 10, seed=0, keywords=-1)


def test_sentence_triples_can_keep_a_share_of_full_queries(squad_dev_path):
    """``--full-query-share F``: the same draw of sentences as with capped queries alone, the first
    F of it with its full query and the rest capped; a share outside [0, 1] is refused."""
    from gear.tools.squad_check import sentence_triples, split_squad

    articles, _ = split_squad(squad_dev_path, 3, 1, seed=0)
    full = {t["query_id"]: t["query"] for t in sentence_triples(articles, 10_000, seed=0)}
    capped = sentence_triples(articles, 40, seed=0, keywords=2)
    mixed = sentence_triples(articles, 40, seed=0, keywords=2, full_share=0.25)
    assert [t["query_id"] for t in mixed] == [t["query_id"] for t in capped]
    for n, (m, c) in enumerate(zip(mixed, capped, strict=True)):
        assert m["query"] == (full[m["query_id"]] if n < 10 else c["query"])
        assert m["target"] == c["target"]
    assert sum(m["query"] != c["query"] for m, c in zip(mixed, capped, strict=True)) == 10
    with pytest.raises(ValueError, match="--full-query-share"):
        sentence_triples(articles, 10, seed=0, keywords=2, full_share=1.5)


def test_cloze_triples_blank_a_phrase_that_only_the_document_holds(squad_dev_path):
    """``--cloze-queries N``: each query is its sentence with one phrase replaced by "what", the
    target that phrase, found in the paragraph at the triple's anchor and nowhere in the query; the
    queries are 6-32 words, the draw is seeded, and a negative count is refused."""
    from gear.tools.squad_check import (
        CLOZE_MIN_QUERY_WORDS,
        CLOZE_QUERY_WORDS,
        cloze_triples,
        split_squad,
    )

    articles, _ = split_squad(squad_dev_path, 3, 1, seed=0)
    every = cloze_triples(articles, 10_000, seed=0)
    triples = cloze_triples(articles, 40, seed=0)
    assert len(triples) == 40 < len(every)
    assert len({t["query_id"] for t in every}) == len(every)
    for t in every:
        words = t["query"].rstrip("?").split()
        assert "what" in words and CLOZE_MIN_QUERY_WORDS <= len(words) <= CLOZE_QUERY_WORDS
        assert t["document"][t["anchor"] : t["anchor"] + len(t["target"])] == t["target"]
        assert t["target"] not in t["query"], t
        assert 1 <= len(t["target"].split()) <= 4
    # Names and numbers first: most targets are capitalised or numeric, as SQuAD answers mostly are.
    named = sum(all(w[0].isupper() or w[0].isdigit() for w in t["target"].split()) for t in every)
    assert named > len(every) / 2
    assert cloze_triples(articles, 40, seed=0) == triples
    assert cloze_triples(articles, 40, seed=1) != triples
    with pytest.raises(ValueError, match="--cloze-queries"):
        cloze_triples(articles, -1, seed=0)


def test_answer_word_pairs_mark_the_words_of_the_answer():
    """The units are the paragraph's words; the gold ones are those overlapping the first answer's
    span (a partial word counts); a pair whose answer lies outside the text is left out."""
    from gear.tools.squad_check import answer_word_pairs

    text = "The Yuan dynasty was founded by Kublai Khan in 1271, after years of war."
    pairs = [
        {
            "query": "Who founded it?",
            "document": text,
            "target": "Kublai Khan",
            "anchor": text.index("Kublai"),
        },
        {"query": "When?", "document": text, "target": "127", "anchor": text.index("1271")},
        {"query": "Lost?", "document": text, "target": "x", "anchor": len(text) + 5},
    ]
    queries, documents, words, gold = answer_word_pairs(pairs)
    assert queries == ["Who founded it?", "When?"] and documents == [text, text]
    assert [text[s:e] for s, e in words[0]] == text.split()
    assert [[text[words[0][i][0] : words[0][i][1]] for i in g] for g in gold] == [
        ["Kublai", "Khan"],
        ["1271,"],
    ]


def test_chosen_row_is_the_best_validation_row_or_the_last():
    from gear.tools.squad_check import chosen_row

    assert chosen_row([{"epoch": 0}, {"epoch": 1}]) == {"epoch": 1}
    rows = [{"epoch": e, "validation R@1": v} for e, v in enumerate((0.30, 0.42, 0.42, 0.40))]
    assert chosen_row(rows)["epoch"] == 1


def test_merge_settings_descends_into_sections():
    from gear.tools.squad_check import merge_settings

    cfg = {"cross_attention_init": {"values": "identity", "query_key": "random"}, "max_target_tokens": 32}
    merge_settings(cfg, {"cross_attention_init": {"query_key": "similarity"}, "max_target_tokens": 16})
    assert cfg == {
        "cross_attention_init": {"values": "identity", "query_key": "similarity"},
        "max_target_tokens": 16,
    }


def test_sentence_windows_keep_the_answer_and_the_target(squad_dev_path):
    """``--train-window K``: each training document becomes K consecutive sentences of its
    paragraph that still hold the answer (question triples) or the target sentence (keyword
    triples); paragraphs of at most K sentences stay whole; the cut is seeded."""
    from data_prep.normalized import SentenceSplitter
    from gear.tools.squad_check import sentence_triples, sentence_windows, split_squad, squad_pairs

    articles, _ = split_squad(squad_dev_path, 3, 1, seed=0)
    questions, _, _ = squad_pairs(articles)
    triples = questions[:60] + sentence_triples(articles, 40, seed=0)
    splitter = SentenceSplitter()
    for k in (1, 2):
        cut = sentence_windows(triples, k, seed=3)
        assert cut == sentence_windows(triples, k, seed=3)
        shortened = 0
        for before, after in zip(triples, cut, strict=True):
            assert after["target"] in after["document"] or any(
                a in after["document"] for a in before.get("answers", [])
            ), after
            assert after["document"] in before["document"]
            if len(splitter.split(before["document"])) > k:
                shortened += 1
                assert len(splitter.split(after["document"])) <= k + 1  # the splitter may split a cut anew
                assert after["doc_id"] != before["doc_id"]
            else:
                assert after == before
        assert shortened > len(triples) / 2
    with pytest.raises(ValueError, match="train-window"):
        sentence_windows(triples, -1, seed=3)


def test_keyword_localization_pairs_point_at_the_sentence_of_their_keywords(squad_dev_path):
    """Each keyword query's one gold unit is the sentence its keywords come from, in a paragraph of
    two or more sentences."""
    from gear.tools.squad_check import keyword_localization_pairs, split_squad

    _, test_articles = split_squad(squad_dev_path, 3, 2, seed=0)
    queries, paragraphs, units, relevant = keyword_localization_pairs(test_articles, 30, seed=0)
    assert 20 <= len(queries) <= 30
    for query, paragraph, spans, gold in zip(queries, paragraphs, units, relevant, strict=True):
        assert len(spans) >= 2 and len(gold) == 1
        start, end = spans[gold[0]]
        assert all(k in paragraph[start:end] for k in query.split(", ")), (query, paragraph[start:end])
