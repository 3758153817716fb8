"""The normalised form: splitter spans, relevant units, merging, atomic writing, strict reading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_prep.normalized import (
    BertBackendTokenizer,
    Document,
    DocumentStore,
    Query,
    SentenceSplitter,
    load_corpus,
    load_queries,
    load_token_counter,
    load_tokenizer_from,
    recover_spans,
    relevant_units,
    write_dataset,
)
from gear.hub import MINILM_ID, ModelSource
from gear.io import DataFormatError
from tests.conftest import REPO_ROOT

TRICKY = (
    "Dr. Smith went to Washington, D.C. in Jan. 1990.  He met Mr. Jones there!\n\n"
    'History\nThe U.S. army arrived at 5 p.m. on the 3rd. "Why?" asked someone. (It rained.) '
    "Prices rose 3.5% — fast… Then café owners left.\tDone"
)


def _check_cover(text, spans):
    covered = [False] * len(text)
    previous = 0
    for start, end in spans:
        assert previous <= start < end <= len(text)
        assert text[start:end] == text[start:end].strip()
        for i in range(start, end):
            covered[i] = True
        previous = end
    assert all(covered[i] for i, c in enumerate(text) if not c.isspace())


def test_splitter_spans_cover_raw_text():
    splitter = SentenceSplitter()
    spans = splitter.split(TRICKY)
    _check_cover(TRICKY, spans)
    sentences = [TRICKY[s:e] for s, e in spans]
    assert sentences[0] == "Dr. Smith went to Washington, D.C. in Jan. 1990."
    assert "History" in sentences
    assert splitter.split("   \n ") == []


def test_splitter_refuses_cleaning():
    with pytest.raises(ValueError, match="clean must be false"):
        SentenceSplitter(clean=True)


def test_recover_spans_survives_altered_and_missing_sentences():
    text = "First  one here. Second\tone there. Third one. Fourth one."
    # whitespace altered by the splitter, one sentence it invented, one it lost
    spans = recover_spans(
        text, ["First one here.", "Second one there.", "Not in the text at all.", "Fourth one."]
    )
    _check_cover(text, spans)
    assert [text[s:e] for s, e in spans] == [
        "First  one here.",
        "Second\tone there. Third one.",
        "Fourth one.",
    ]


def test_relevant_units_ignore_case_and_whitespace_runs():
    text = "Paris is in France. The river \t  Seine flows through it. Nothing here."
    units = SentenceSplitter().split(text)
    assert relevant_units(text, units, ["the RIVER seine"]) == [1]
    assert relevant_units(text, units, ["france", "Seine"]) == [0, 1]
    assert relevant_units(text, units, ["France. The river"]) == []  # spans a boundary
    assert relevant_units(text, units, ["  "]) == []


def test_document_store_merges_identical_and_keeps_ids_stable():
    store = DocumentStore("nq", SentenceSplitter())
    a = store.add("T", "Same text.", "17")
    b = store.add("T", "Same text.", "99")
    c = store.add("T", "Other text.", "17")  # same source id, other content
    d = store.add("U", "No id here.")
    assert a == b == "nq-17" and store.merged == 1
    assert c.startswith("nq-17-") and store.conflicting_ids == 1
    assert d == DocumentStore("nq", SentenceSplitter()).add("U", "No id here.")
    assert len(store.documents) == 3


def test_write_and_load_round_trip(tmp_path):
    docs = [Document("d1", "T", "One. Two.", [(0, 4), (5, 9)]), Document("d2", "", "Three.", [(0, 6)])]
    queries = [
        Query("q1", "one?", "d1", ["One"], [0], "One", True),
        Query("q2", "three?", "d2", [], [], "", False, {"d2": 2, "d1": 1}),
    ]
    write_dataset(tmp_path / "set", docs, queries, {"documents": 1})
    assert load_corpus(tmp_path / "set" / "corpus.jsonl") == docs
    assert load_queries(tmp_path / "set" / "queries.jsonl") == queries
    assert "relevant_docs" not in (tmp_path / "set" / "queries.jsonl").read_text().splitlines()[0]
    assert json.loads((tmp_path / "set" / "stats.json").read_text()) == {"documents": 1}
    assert sorted(p.name for p in (tmp_path / "set").iterdir()) == [
        "beir",
        "corpus.jsonl",
        "queries.jsonl",
        "stats.json",
    ]
    # the same test set in BEIR layout, as BEIR's GenericDataLoader reads it
    beir = tmp_path / "set" / "beir"
    assert [json.loads(line) for line in (beir / "corpus.jsonl").read_text().splitlines()] == [
        {"_id": "d1", "title": "T", "text": "One. Two."},
        {"_id": "d2", "title": "", "text": "Three."},
    ]
    assert [json.loads(line) for line in (beir / "queries.jsonl").read_text().splitlines()] == [
        {"_id": "q1", "text": "one?"},
        {"_id": "q2", "text": "three?"},
    ]
    assert (beir / "qrels" / "test.tsv").read_text().splitlines() == [
        "query-id\tcorpus-id\tscore",
        "q1\td1\t1",
        "q2\td2\t2",
        "q2\td1\t1",
    ]
    # rewriting replaces the export whole
    write_dataset(tmp_path / "set", docs[:1], queries[:1], {"documents": 1})
    assert len((beir / "corpus.jsonl").read_text().splitlines()) == 1
    assert sorted(p.name for p in (tmp_path / "set").iterdir())[0] == "beir"


def test_ids_with_white_space_cannot_be_written(tmp_path):
    with pytest.raises(DataFormatError, match=r"doc_id 'd 1' is empty or contains white space"):
        write_dataset(tmp_path / "set", [Document("d 1", "", "x", [(0, 1)])], [], {})
    assert list((tmp_path / "set").iterdir()) == []


def test_empty_corpus_is_an_error_and_leaves_nothing(tmp_path):
    with pytest.raises(DataFormatError, match="corpus is empty"):
        write_dataset(tmp_path / "set", [], [Query("q", "x", "d", ["a"], [], "a", True)], {})
    assert list((tmp_path / "set").iterdir()) == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"doc_id": "d", "title": "t", "text": "abc", "units": [[0, 3]]', "malformed JSON"),
        ('{"doc_id": "d", "title": "t", "units": [[0, 3]]}', "missing field 'text'"),
        ('{"doc_id": 3, "title": "t", "text": "abc", "units": []}', "field 'doc_id' should be str"),
        ('{"doc_id": "d", "title": "t", "text": "abc", "units": [[0, 9]]}', "units\\[0\\]"),
        ('{"doc_id": "d", "title": "t", "text": "abc", "units": [[2, 3], [0, 1]]}', "units\\[1\\]"),
    ],
)
def test_load_corpus_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"doc_id": "ok", "title": "", "text": "x", "units": [[0, 1]]}\n' + line + "\n")
    with pytest.raises(DataFormatError, match=rf"corpus.jsonl:2.*{message}"):
        load_corpus(path)


def test_load_rejects_duplicates_and_bad_bytes(tmp_path):
    path = tmp_path / "corpus.jsonl"
    row = '{"doc_id": "d", "title": "", "text": "x", "units": [[0, 1]]}\n'
    path.write_text(row + row)
    with pytest.raises(DataFormatError, match=r"corpus.jsonl:2: duplicate doc_id"):
        load_corpus(path)
    path.write_bytes(row.encode() + b'{"doc_id": "\xff"}\n')
    with pytest.raises(DataFormatError, match=r"corpus.jsonl:2: not valid UTF-8"):
        load_corpus(path)
    queries = tmp_path / "queries.jsonl"
    queries.write_text(
        '{"query_id": "q", "text": "x", "doc_id": "d", "answers": [1], "relevant_units": [], "target": "", "fine_grained": true}\n'
    )
    with pytest.raises(DataFormatError, match=r"queries.jsonl:1: field 'answers'"):
        load_queries(queries)


def test_token_counter_counts_in_batches():
    from transformers import AutoTokenizer

    counter = load_token_counter(MINILM_ID)
    reference = AutoTokenizer.from_pretrained(str(ModelSource().resolve(MINILM_ID)))
    texts = ["Hello world.", "", "Tokenization of unusual words: antidisestablishmentarianism."]
    expected = [len(reference(t, add_special_tokens=False)["input_ids"]) for t in texts]
    counter.batch_size = 2
    assert counter.count(texts).tolist() == expected
    assert counter.count(texts, add_special_tokens=True).tolist() == [n + 2 for n in expected]


def _strings(value):
    """Every string in a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_bert_folders_count_without_transformers_exactly_as_auto_tokenizer():
    """The data jobs count with the ``tokenizers`` library alone (no transformers or torch
    import); on every text of the mini data and on strings that exercise the normalizer (accents,
    Chinese characters, special-token literals, control characters, a text far over 512 tokens)
    the ids equal AutoTokenizer's, with and without [CLS]/[SEP]."""
    from transformers import AutoTokenizer

    folder = ModelSource().resolve(MINILM_ID)
    light = load_tokenizer_from(folder)
    assert isinstance(light, BertBackendTokenizer)
    reference = AutoTokenizer.from_pretrained(folder, use_fast=True)
    mini = REPO_ROOT / "data_prep" / "mini"
    texts = [
        TRICKY,
        "Café Ōsaka, naïve façade; Straße — ÉCOLE",
        "北京大学 and 東京 mixed with English",
        "[CLS] a literal [SEP] inside [MASK] text [UNK] [PAD]",
        "tab\tnew\nline\r\x00nul \u200b zero-width \u00ad soft hyphen",
        "🙂 emoji, ％ full-width, ½ fraction",
        "word " * 3000,
        "",
    ]
    for path in sorted(mini.rglob("*.json")):
        texts += list(_strings(json.loads(path.read_text(encoding="utf-8"))))
    for path in sorted(mini.rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            texts += list(_strings(json.loads(line)))
    for line in (mini / "paq" / "psgs_w100.tsv").read_text(encoding="utf-8").splitlines():
        texts += line.split("\t")
    assert len(texts) > 1000
    for special in (False, True):
        expected = reference(
            texts, add_special_tokens=special, return_attention_mask=False, return_token_type_ids=False
        )["input_ids"]
        assert light.input_ids(texts, special) == expected


def test_other_tokenizer_folders_go_through_transformers(tmp_path):
    """A folder whose normalizer differs from what BertTokenizerFast imposes (here: cased
    settings in tokenizer_config.json over an uncased tokenizer.json) is not read by the light path."""
    folder = ModelSource().resolve(MINILM_ID)
    for name in ("tokenizer.json", "vocab.txt", "special_tokens_map.json"):
        (tmp_path / name).write_bytes((Path(folder) / name).read_bytes())
    config = json.loads((Path(folder) / "tokenizer_config.json").read_text())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({**config, "do_lower_case": False}))
    assert BertBackendTokenizer.from_folder(tmp_path) is None
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({**config, "tokenizer_class": "RobertaTokenizer"})
    )
    assert BertBackendTokenizer.from_folder(tmp_path) is None
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    assert isinstance(BertBackendTokenizer.from_folder(tmp_path), BertBackendTokenizer)
    # No tokenizer class (bert-base-uncased's folder): AutoTokenizer goes by config.json's model type.
    unnamed = {key: value for key, value in config.items() if key != "tokenizer_class"}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(unnamed))
    assert BertBackendTokenizer.from_folder(tmp_path) is None  # no config.json
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert isinstance(BertBackendTokenizer.from_folder(tmp_path), BertBackendTokenizer)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "roberta"}))
    assert BertBackendTokenizer.from_folder(tmp_path) is None
    # Custom code (auto_map) is AutoTokenizer's to resolve, whatever class it names.
    custom = {**config, "auto_map": {"AutoTokenizer": ["my.Tok", None]}}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(custom))
    assert BertBackendTokenizer.from_folder(tmp_path) is None
