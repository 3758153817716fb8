"""PAQ: deterministic, disjoint test sample and training triples, streamed; bad inputs."""

from __future__ import annotations

import gzip
import json

import pytest

from data_prep.normalized import load_corpus, load_queries
from data_prep.paq import build_paq
from gear.io import DataFormatError, read_jsonl

TOWNS = [
    "Ardmore",
    "Bellhaven",
    "Corrin",
    "Dunmere",
    "Eastwick",
    "Falloway",
    "Glenbrook",
    "Harrowgate",
    "Islay",
    "Jarrow",
]


def write_paq(folder, passages=10, questions_per_passage=3, metadata_name="PAQ.metadata.jsonl"):
    """Passages 100, 110, ... (ascending) and questions on each; returns (metadata, passages)."""
    tsv = ["id\ttext\ttitle"]
    lines = []
    for i in range(passages):
        pid, town = 100 + 10 * i, TOWNS[i % len(TOWNS)]
        text = f'{town} is a town of {1000 + i} people. Its "old" mill was built in {1800 + i}. The river {town}water runs north.'
        tsv.append(f'{pid}\t"{text.replace(chr(34), chr(34) * 2)}"\t{town}')
        for q, (question, answer) in enumerate(
            [
                (f"how many people live in {town}", f"{1000 + i}"),
                (f"when was the mill of {town} built", f"{1800 + i}"),
                (f"which river runs through {town}", f"{town}water"),
            ][:questions_per_passage]
        ):
            lines.append(
                {
                    "question": question,
                    "subsets": ["L1"],
                    "answer": [answer],
                    "passage_score": -1.0 - q,
                    "answers": [{"passage_id": str(pid), "offset": 0, "text": answer, "extractor": "L"}],
                }
            )
    meta = folder / metadata_name
    body = "".join(json.dumps(line) + "\n" for line in lines)
    if metadata_name.endswith(".gz"):
        meta.write_bytes(gzip.compress(body.encode()))
    else:
        meta.write_text(body)
    psgs = folder / "psgs_w100.tsv"
    psgs.write_text("\n".join(tsv) + "\n")
    return meta, psgs


def cfg_with(data_cfg, train, docs, queries):
    data_cfg["paq"].update(train_triples=train, test_documents=docs, test_queries=queries)
    return data_cfg


def test_build_paq_is_disjoint_exact_and_deterministic(tmp_path, data_cfg):
    meta, psgs = write_paq(tmp_path)
    cfg = cfg_with(data_cfg, train=12, docs=4, queries=5)
    stats = build_paq(meta, psgs, tmp_path / "paq", tmp_path / "train" / "qar.jsonl", cfg, seed=3)
    docs = load_corpus(tmp_path / "paq" / "corpus.jsonl")
    queries = load_queries(tmp_path / "paq" / "queries.jsonl")
    triples = read_jsonl(tmp_path / "train" / "qar.jsonl")
    assert (
        (stats["documents"], stats["queries"], stats["train"]["triples"])
        == (4, 5, 12)
        == (len(docs), len(queries), len(triples))
    )
    doc_ids = {d.doc_id for d in docs}
    assert {q.doc_id for q in queries} <= doc_ids
    assert not doc_ids & {t["doc_id"] for t in triples}
    assert not {q.text for q in queries} & {t["query"] for t in triples}
    assert all(q.relevant_units for q in queries)
    by_id = {d.doc_id: d for d in docs}
    for q in queries:
        assert q.target in by_id[q.doc_id].text
    for t in triples:
        assert t["target"] in t["document"] and t["doc_id"].startswith("paq-")
    assert '"old" mill' in docs[0].text  # the TSV's quoting is undone
    first = [(tmp_path / "paq" / n).read_bytes() for n in ("corpus.jsonl", "queries.jsonl")] + [
        (tmp_path / "train" / "qar.jsonl").read_bytes()
    ]
    build_paq(meta, psgs, tmp_path / "again", tmp_path / "again" / "qar.jsonl", cfg, seed=3)
    assert first == [
        (tmp_path / "again" / n).read_bytes() for n in ("corpus.jsonl", "queries.jsonl", "qar.jsonl")
    ]
    build_paq(meta, psgs, tmp_path / "other", tmp_path / "other" / "qar.jsonl", cfg, seed=4)
    assert {d.doc_id for d in load_corpus(tmp_path / "other" / "corpus.jsonl")} != doc_ids


def test_more_requested_than_available_takes_all(tmp_path, data_cfg):
    meta, psgs = write_paq(tmp_path, metadata_name="PAQ.metadata.jsonl.gz")
    stats = build_paq(
        meta, psgs, tmp_path / "paq", tmp_path / "qar.jsonl", cfg_with(data_cfg, 10**6, 3, 10**6), seed=0
    )
    assert stats["documents"] == 3 and stats["queries"] == 9  # every question on the 3 test passages
    assert stats["train"]["triples"] == stats["train"]["eligible_records"] == 21


def test_missing_passages_are_counted(tmp_path, data_cfg):
    meta, psgs = write_paq(tmp_path)
    lines = psgs.read_text().splitlines()
    psgs.write_text("\n".join(lines[:-2]) + "\n")  # the last two passages are gone
    stats = build_paq(
        meta, psgs, tmp_path / "paq", tmp_path / "qar.jsonl", cfg_with(data_cfg, 100, 2, 4), seed=1
    )
    assert stats["skipped"]["passage_not_found"] > 0
    assert stats["documents"] + stats["test_documents_not_in_passages"] == 2


def _with_bad_byte(data: bytes, line: int) -> bytes:
    """``data`` with a byte that is not UTF-8 in the text of 1-based line ``line``."""
    lines = data.split(b"\n")
    assert len(lines) > line, "the fixture TSV is too short"
    lines[line - 1] = lines[line - 1].replace(b"\t", b"\tcaf\xe9 ", 1)
    return b"\n".join(lines)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda m, p: m.write_text(m.read_text() + '{"question": "x", "answer": ["y"]\n'),
            r"PAQ.metadata.jsonl:31:\d+: malformed JSON",
        ),
        (
            lambda m, p: m.write_text(m.read_text() + '{"question": "x", "answer": ["y"]}\n'),
            r"PAQ.metadata.jsonl:31: missing field\(s\) \['answers'\]",
        ),
        (
            lambda m, p: m.write_text(m.read_text() + '{"question": 5, "answer": ["y"], "answers": []}\n'),
            r":31: field 'question' should be str",
        ),
        (
            lambda m, p: m.write_text(
                m.read_text() + '{"question": "q", "answer": ["y"], "answers": [{"passage_id": "abc"}]}\n'
            ),
            r":31: passage_id should be a decimal id",
        ),
        (lambda m, p: m.write_bytes(m.read_bytes() + b'{"question": "caf\xe9"}\n'), r":31: not valid UTF-8"),
        (
            lambda m, p: p.write_text(p.read_text().replace("100\t", "999\t", 1)),
            r"psgs_w100.tsv:3: passage id 110 does not follow 999",
        ),
        (lambda m, p: p.write_text("id\ttitle\ttext\n"), r"psgs_w100.tsv:1: expected the header"),
        # a bad byte deep in the TSV is reported on its own line (the decoder reads ahead of the reader)
        (lambda m, p: p.write_bytes(_with_bad_byte(p.read_bytes(), 6)), r"psgs_w100.tsv:6: not valid UTF-8"),
    ],
)
def test_bad_paq_input_fails_clearly_and_leaves_nothing(tmp_path, data_cfg, edit, message):
    meta, psgs = write_paq(tmp_path)
    edit(meta, psgs)
    out, train = tmp_path / "paq", tmp_path / "train" / "qar.jsonl"
    with pytest.raises(DataFormatError, match=message):
        build_paq(meta, psgs, out, train, cfg_with(data_cfg, 10, 3, 3), seed=0)
    assert not out.exists() or not any(out.iterdir())
    assert not train.parent.exists() or list(train.parent.iterdir()) == []


def test_skipped_records_are_counted(tmp_path, data_cfg):
    meta, psgs = write_paq(tmp_path)
    extra = [
        {"question": "  ", "answer": ["a"], "answers": [{"passage_id": "100"}]},
        {"question": "q without answer", "answer": [], "answers": [{"passage_id": "100"}]},
        {"question": "q without passage", "answer": ["a"], "answers": []},
    ]
    meta.write_text(meta.read_text() + "".join(json.dumps(e) + "\n" for e in extra))
    stats = build_paq(
        meta, psgs, tmp_path / "paq", tmp_path / "qar.jsonl", cfg_with(data_cfg, 5, 2, 2), seed=0
    )
    assert stats["skipped"] == {"empty_question": 1, "no_answer": 1, "no_passage": 1}
