"""Point 3: the bad-input catalogue (README "Troubleshooting" is this list).

Every kind of bad input a user can hand the suite, through the entry point that reads it
(builders, loaders, the training data, the config, the registry, model resolution, evaluation).
Each either fails at once with an error that names the file and line (or the JSON path, the
config key, the model) and says what is expected, or is a documented skip counted in the
statistics. One parametrised test per behaviour: :func:`test_bad_input_fails_clearly` (errors),
:func:`test_documented_skips_are_counted` and the tests of long documents (skips and counts).
"""

from __future__ import annotations

import copy
import gzip
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from gear.config import ConfigError
from gear.hub import ModelUnavailableError
from gear.io import DataFormatError
from tests.conftest import REPO_ROOT
from tests.reliability.conftest import NumberedEncoder

DOC = {"doc_id": "d1", "title": "Normans", "text": "The Normans came from Normandy.", "units": [[0, 31]]}
QUERY = {
    "query_id": "q1",
    "text": "Where did the Normans come from?",
    "doc_id": "d1",
    "answers": ["Normandy"],
    "relevant_units": [0],
    "target": "Normandy",
    "fine_grained": True,
}
TRIPLE = {
    "query_id": "q1",
    "query": "where?",
    "doc_id": "d1",
    "document": "In Normandy.",
    "target": "Normandy",
}


def jsonl(*rows) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


def squad(*qas, context="The Normans came from Normandy, a region of France.") -> dict:
    return {
        "version": "1.1",
        "data": [{"title": "Normans", "paragraphs": [{"context": context, "qas": list(qas)}]}],
    }


def qa(qid="1", question="Where did they come from?", answer="Normandy") -> dict:
    return {"id": qid, "question": question, "answers": [{"text": answer, "answer_start": 0}]}


# --------------------------------------------------------------------------------------------
# Each case: (build the bad input in tmp and return the call that reads it, error type, message)


def _load_corpus(tmp: Path, content: bytes) -> Callable:
    from data_prep.normalized import load_corpus

    (tmp / "corpus.jsonl").write_bytes(content)
    return lambda: load_corpus(tmp / "corpus.jsonl")


def _load_queries(tmp: Path, content: bytes) -> Callable:
    from data_prep.normalized import load_queries

    (tmp / "queries.jsonl").write_bytes(content)
    return lambda: load_queries(tmp / "queries.jsonl")


def _eval_set(tmp: Path, corpus: bytes, queries: bytes, name: str = "squad") -> Callable:
    from gear.evaluation.dataset import EvalDataset

    (tmp / "corpus.jsonl").write_bytes(corpus)
    (tmp / "queries.jsonl").write_bytes(queries)
    return lambda: EvalDataset.load(name, tmp / "corpus.jsonl", tmp / "queries.jsonl")


def _build_squad(tmp: Path, content: bytes | dict, cfg: dict) -> Callable:
    from data_prep.squad import build_squad

    raw = content if isinstance(content, bytes) else json.dumps(content, indent=1).encode()
    (tmp / "dev.json").write_bytes(raw)
    return lambda: build_squad(tmp / "dev.json", tmp / "out", cfg["data"])


def _triple(tmp: Path, content: bytes, index: int = 1) -> Callable:
    from gear.training.triples import TripleFile

    (tmp / "triples.jsonl").write_bytes(content)
    return lambda: TripleFile(tmp / "triples.jsonl")[index]


def _config(cfg: dict, edit: Callable[[dict], None]) -> Callable:
    from gear.config import validate_config

    bad = copy.deepcopy(cfg)
    edit(bad)
    return lambda: validate_config(bad, "my_run.yaml")


def _set(path: str, value) -> Callable[[dict], None]:
    def edit(cfg: dict) -> None:
        *parents, last = path.split(".")
        for key in parents:
            cfg = cfg[key]
        cfg[last] = value

    return edit


def _wiki(tmp: Path, content: bytes, cfg: dict) -> Callable:
    from data_prep.rir.preprocess import preprocess_wikipedia

    (tmp / "wiki.jsonl").write_bytes(content)
    data = cfg["data"]
    return lambda: preprocess_wikipedia(
        tmp / "wiki.jsonl",
        tmp / "pre.jsonl",
        tmp / "s.json",
        data["rir"]["preprocess"],
        data["token_counter"],
    )


def _dpr_truncated_gzip(tmp: Path, cfg: dict) -> Callable:
    from data_prep.dpr import build_dpr

    entries = [{"question": "q?", "answers": ["a"], "positive_ctxs": [{"title": "t", "text": "a b c"}]}] * 200
    blob = gzip.compress(json.dumps(entries).encode())
    (tmp / "nq-dev.json.gz").write_bytes(blob[: len(blob) // 2])
    return lambda: build_dpr(tmp / "nq-dev.json.gz", tmp / "out", cfg["data"], "nq")


def _dpr(tmp: Path, entries, cfg: dict) -> Callable:
    from data_prep.dpr import build_dpr

    (tmp / "nq-dev.json").write_text(json.dumps(entries))
    return lambda: build_dpr(tmp / "nq-dev.json", tmp / "out", cfg["data"], "nq")


def _run_file(tmp: Path) -> Callable:
    from gear.evaluation.search import read_run

    (tmp / "run.tsv").write_text("q1 Q0 d1 1 0.9 GeAR\nq1 Q0 d2 2\n")
    return lambda: read_run(tmp / "run.tsv")


def _encode_nothing(tmp: Path) -> Callable:
    from gear.evaluation.embeddings import encode_texts

    return lambda: encode_texts(NumberedEncoder(), [], tmp / "cache")


def _train_variant(tmp: Path, cfg: dict) -> Callable:
    from gear.training.trainer import train_gear

    (tmp / "triples.jsonl").write_bytes(jsonl(TRIPLE))
    return lambda: train_gear(tmp / "triples.jsonl", tmp / "out", cfg, "GeAR_XL", "qar")


def _resolve(name: str, model_paths: dict | None = None) -> Callable:
    from gear.hub import resolve_model

    return lambda: resolve_model(name, model_paths)


def _check_models(cfg: dict) -> Callable:
    from baselines.registry import load_registry, select_models
    from gear.workflow.plan import check_models

    bad = copy.deepcopy(cfg)
    bad["gear"]["init_checkpoint"] = "bert-base-uncased"
    bad["baselines"]["start_checkpoint"] = "bert-base-uncased"
    entries = select_models(load_registry(REPO_ROOT / "config" / "baselines.yaml"), ["GeAR", "SBERT_RT"])
    return lambda: check_models(bad, entries)


def _select_models() -> Callable:
    from baselines.registry import load_registry, select_models

    return lambda: select_models(
        load_registry(REPO_ROOT / "config" / "baselines.yaml"), ["MiniLM", "ColBERT"]
    )


def _trained_model_missing(tmp: Path, cfg: dict) -> Callable:
    from baselines.registry import build_encoder, load_registry
    from gear.layout import Layout

    bad = copy.deepcopy(cfg)
    bad["results_dir"] = str(tmp / "results")
    entry = load_registry(REPO_ROOT / "config" / "baselines.yaml")["GeAR"]
    return lambda: build_encoder(entry, bad, "qar", Layout.from_config(bad), device="cpu")


def _load_config_file(tmp: Path, text: str | None) -> Callable:
    from gear.config import load_config

    if text is not None:
        (tmp / "my_run.yaml").write_text(text)
    return lambda: load_config(tmp / "my_run.yaml")


def _evaluate_settings(cfg: dict) -> Callable:
    from gear.evaluation.settings import EvaluateSettings

    section = copy.deepcopy(cfg["evaluate"])
    section["retrieval"] = {"depth": 20, "k": 50}
    return lambda: EvaluateSettings.from_config(section)


def _rewrite_section() -> Callable:
    from data_prep.rir.rewrite import rewrite_candidates

    return lambda: rewrite_candidates("pre.jsonl", "out.jsonl", "cache.jsonl", {"retries": 3}, 42)


def _splitter_clean(tmp: Path, cfg: dict) -> Callable:
    bad = copy.deepcopy(cfg)
    bad["data"]["splitter"]["clean"] = True
    return _build_squad(tmp, squad(qa()), bad)


CASES = {
    # --- data files: malformed, with file and line ------------------------------------------
    "malformed JSON Lines": (
        lambda t, c: _load_corpus(t, jsonl(DOC, b'{"doc_id": "d2",')),
        DataFormatError,
        r"corpus\.jsonl:2:\d+: malformed JSON",
    ),
    "malformed JSON file": (
        lambda t, c: _build_squad(t, b'{"version": "1.1",\n "data": [\n  {"title": "x",}\n ]}', c),
        DataFormatError,
        r"dev\.json:3:\d+: malformed JSON",
    ),
    "malformed training triple": (
        lambda t, c: _triple(t, jsonl(TRIPLE, b'{"query_id": "q2", "query"')),
        DataFormatError,
        r"triples\.jsonl:2:\d+: malformed JSON",
    ),
    "line is not an object": (
        lambda t, c: _load_queries(t, jsonl([1, 2])),
        DataFormatError,
        r"queries\.jsonl:1: expected a JSON object, got list",
    ),
    "truncated gzip": (
        lambda t, c: _dpr_truncated_gzip(t, c),
        DataFormatError,
        r"nq-dev\.json\.gz: not a valid gzip file",
    ),
    "malformed run file": (lambda t, c: _run_file(t), DataFormatError, r"run\.tsv:2: expected 6 columns"),
    # --- missing or wrongly typed fields ----------------------------------------------------
    "missing field": (
        lambda t, c: _load_queries(t, jsonl({k: v for k, v in QUERY.items() if k != "answers"})),
        DataFormatError,
        r"queries\.jsonl:1: missing field 'answers'",
    ),
    "wrongly typed field": (
        lambda t, c: _load_corpus(t, jsonl({**DOC, "doc_id": 7})),
        DataFormatError,
        r"corpus\.jsonl:1: field 'doc_id' should be str, got int",
    ),
    "missing field in SQuAD": (
        lambda t, c: _build_squad(t, squad({"question": "Who?", "answers": []}), c),
        DataFormatError,
        r"dev\.json: data\[0\]\.paragraphs\[0\]\.qas\[0\]: missing field 'id'",
    ),
    "wrongly typed field in DPR": (
        lambda t, c: _dpr(t, [{"question": "q?", "answers": "France"}], c),
        DataFormatError,
        r"nq-dev\.json: \[0\]: field 'answers' should be list, got str",
    ),
    "wrongly typed triple": (
        lambda t, c: _triple(t, jsonl(TRIPLE, {**TRIPLE, "target": ["a"]})),
        DataFormatError,
        r"triples\.jsonl:2: field 'target' should be str, got list",
    ),
    "unit span outside the text": (
        lambda t, c: _load_corpus(t, jsonl({**DOC, "units": [[0, 999]]})),
        DataFormatError,
        r"corpus\.jsonl:1: units\[0\] = \[0, 999\] is not a sorted, disjoint, non-empty span inside the text",
    ),
    "query names an unknown document": (
        lambda t, c: _eval_set(t, jsonl(DOC), jsonl({**QUERY, "doc_id": "nope"})),
        DataFormatError,
        r"queries\.jsonl: query 'q1' names document 'nope', which is not in .*corpus\.jsonl",
    ),
    "relevant unit out of range": (
        lambda t, c: _eval_set(t, jsonl(DOC), jsonl({**QUERY, "relevant_units": [5]})),
        DataFormatError,
        r"query 'q1' has relevant units \[5\] but its document 'd1' has 1 units",
    ),
    # --- duplicate ids ------------------------------------------------------------------------
    "duplicate document id": (
        lambda t, c: _load_corpus(t, jsonl(DOC, DOC)),
        DataFormatError,
        r"corpus\.jsonl:2: duplicate doc_id 'd1' \(first at line 1\)",
    ),
    "duplicate query id": (
        lambda t, c: _load_queries(t, jsonl(QUERY, QUERY)),
        DataFormatError,
        r"queries\.jsonl:2: duplicate query_id 'q1' \(first at line 1\)",
    ),
    "source id reused for another question": (
        lambda t, c: _build_squad(t, squad(qa("7"), qa("7", question="Who ruled them?")), c),
        DataFormatError,
        r"qas\[1\]: query id '7' already used at .*qas\[0\] with a different question",
    ),
    # --- empty inputs ---------------------------------------------------------------------------
    "empty corpus": (
        lambda t, c: _build_squad(t, squad(qa(), context="   "), c),
        DataFormatError,
        r"out: the corpus is empty \(no usable document in the input\)",
    ),
    "no usable query": (
        lambda t, c: _build_squad(t, squad(qa(answer=" ")), c),
        DataFormatError,
        r"out: no usable query in the input",
    ),
    "empty training file": (
        lambda t, c: _triple(t, b"\n  \n", 0),
        DataFormatError,
        r"triples\.jsonl: no triples \(the file is empty\)",
    ),
    "empty query file": (
        lambda t, c: _eval_set(t, jsonl(DOC), b""),
        DataFormatError,
        r"queries\.jsonl: no queries",
    ),
    "empty text collection": (
        lambda t, c: _encode_nothing(t),
        ValueError,
        r"nothing to encode: the text collection is empty",
    ),
    # --- not UTF-8 ------------------------------------------------------------------------------
    "non-UTF-8 JSON Lines": (
        lambda t, c: _load_corpus(t, jsonl(DOC, b'{"doc_id": "caf\xe9"}')),
        DataFormatError,
        r"corpus\.jsonl:2: not valid UTF-8",
    ),
    "non-UTF-8 JSON file": (
        lambda t, c: _build_squad(t, b'{"version": "1.1",\n "data": ["caf\xe9"]}', c),
        DataFormatError,
        r"dev\.json:2: not valid UTF-8",
    ),
    "non-UTF-8 Wikipedia dump": (
        lambda t, c: _wiki(
            t, jsonl({"id": "1", "url": "", "title": "A", "text": "ok"}, b'{"text": "caf\xe9"}'), c
        ),
        DataFormatError,
        r"wiki\.jsonl:2: not valid UTF-8",
    ),
    "non-UTF-8 training triple": (
        lambda t, c: _triple(t, jsonl(TRIPLE, b'{"query": "caf\xe9"}')),
        DataFormatError,
        r"triples\.jsonl:2: not valid UTF-8",
    ),
    # --- configuration: unknown keys, types, ranges, consistency ------------------------------
    "unknown config key": (
        lambda t, c: _config(c, _set("train.learning_rate", 1e-5)),
        ConfigError,
        r"my_run\.yaml: invalid configuration:\n  train: unknown key\(s\) 'learning_rate'; allowed keys: alpha, ",
    ),
    "misspelled top-level key": (
        lambda t, c: _config(c, _set("reslts_dir", "out")),
        ConfigError,
        r"<top level>: unknown key\(s\) 'reslts_dir'; allowed keys: .*results_dir",
    ),
    "unknown key in a stage section": (
        lambda t, c: _rewrite_section(),
        ConfigError,
        r"data\.rir\.rewrite: unknown key\(s\) \['retries'\]; allowed: \[.*'max_retries'",
    ),
    "wrongly typed config value": (
        lambda t, c: _config(c, _set("train.epochs", "three")),
        ConfigError,
        r"train\.epochs: 'three' is not of type 'integer'",
    ),
    "out-of-range value": (
        lambda t, c: _config(c, _set("train.momentum", 1.5)),
        ConfigError,
        r"train\.momentum: 1\.5 violates exclusiveMaximum 1",
    ),
    "document length above the model's maximum": (
        lambda t, c: _config(c, _set("gear.max_document_tokens", 1024)),
        ConfigError,
        r"gear\.max_document_tokens: 1024 violates maximum 512",
    ),
    "value not among the allowed ones": (
        lambda t, c: _config(c, _set("evaluate.datasets", ["squad", "msmarco"])),
        ConfigError,
        r"evaluate\.datasets\[1\]: 'msmarco' is not one of \['squad', 'nq', 'triviaqa', 'paq', 'rir'\]",
    ),
    "inconsistent values": (
        lambda t, c: _config(c, _set("train.queue_size", 60)),
        ConfigError,
        r"train\.queue_size 60 is not a multiple of the global batch of scenario qar",
    ),
    "k above the retrieval depth": (
        lambda t, c: _evaluate_settings(c),
        ConfigError,
        r"evaluate\.retrieval\.depth 20 is below evaluate\.retrieval\.k 50",
    ),
    "sentence splitter asked to clean": (
        lambda t, c: _splitter_clean(t, c),
        ValueError,
        r"data\.splitter\.clean must be false",
    ),
    "unknown GeAR variant": (
        lambda t, c: _train_variant(t, c),
        ConfigError,
        r"train\.variants: no variant 'GeAR_XL'; known: \['GeAR', 'GeAR_CL'\]",
    ),
    "invalid YAML": (
        lambda t, c: _load_config_file(t, "seed: 42\ntrain:\n  epochs: [1\n"),
        ConfigError,
        r"my_run\.yaml:4: invalid YAML",
    ),
    "missing config file": (
        lambda t, c: _load_config_file(t, None),
        ConfigError,
        r"my_run\.yaml: no such config file",
    ),
    # --- models: unknown, or not available offline ----------------------------------------------
    "unknown model name": (
        lambda t, c: _select_models(),
        ConfigError,
        r"evaluate\.models: unknown model\(s\) \['ColBERT'\]; the registry has \[.*'MiniLM'",
    ),
    "model not available offline": (
        lambda t, c: _resolve("bert-large-cased"),
        ModelUnavailableError,
        r"model 'bert-large-cased' is not available offline and this run does not allow downloads.*"
        r"model_paths: \{bert-large-cased: /path/to/folder\}",
    ),
    "model_paths entry without a model": (
        lambda t, c: _resolve("bert-base-uncased", {"bert-base-uncased": str(t)}),
        ModelUnavailableError,
        r"model_paths maps 'bert-base-uncased' to .* which holds no config\.json",
    ),
    "models missing when the run is planned": (
        lambda t, c: _check_models(c),
        ModelUnavailableError,
        r"models this run needs are unavailable:\n- needed by gear\.init_checkpoint: model 'bert-base-uncased'",
    ),
    "trained model not there yet": (
        lambda t, c: _trained_model_missing(t, c),
        FileNotFoundError,
        r"registry entry GeAR: no trained model at .*GeAR/qar/model .*workflow rule train_gear",
    ),
    "unknown data set": (
        lambda t, c: _eval_set(t, jsonl(DOC), jsonl(QUERY), name="msmarco"),
        ValueError,
        r"unknown dataset 'msmarco'; known: squad, nq, triviaqa, paq, rir",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_fails_clearly(name, tmp_path, mini_config):
    make_call, error, message = CASES[name]
    call = make_call(tmp_path, mini_config)
    with pytest.raises(error, match=message):
        call()
    # a builder that failed wrote nothing
    out = tmp_path / "out"
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()]


# --------------------------------------------------------------------------------------------
# Documented skips: counted, not errors


def test_documented_skips_are_counted(tmp_path, mini_config):
    from data_prep.dpr import build_dpr
    from data_prep.squad import build_squad
    from gear.evaluation.dataset import EvalDataset, localization_sample

    data = {
        "version": "2.0",
        "data": [
            {
                "title": "Normans",
                "paragraphs": [
                    {"context": "  ", "qas": [qa("e1"), qa("e2")]},  # empty document, 2 questions
                    {
                        "context": "The Normans came from Normandy. They spoke French.",
                        "qas": [
                            qa("1"),
                            qa("1"),  # exact repeat
                            qa("2", question="  "),  # empty question
                            qa("3", answer=""),  # no answer
                            {**qa("4"), "is_impossible": True, "answers": []},  # SQuAD 2.0 unanswerable
                            qa("5", question="Who ruled Normandy?", answer="Rollo"),  # answer in no unit
                        ],
                    },
                ],
            }
        ],
    }
    (tmp_path / "dev.json").write_text(json.dumps(data))
    stats = build_squad(tmp_path / "dev.json", tmp_path / "squad", mini_config["data"])
    assert stats["skipped"] == {
        "duplicate_query": 1,
        "empty_document": 1,
        "empty_question": 1,
        "no_answer": 1,
        "query_on_empty_document": 2,
        "unanswerable": 1,
    }
    assert stats["queries"] == 2 and stats["queries_without_relevant_unit"] == 1
    assert json.loads((tmp_path / "squad" / "stats.json").read_text())["skipped"] == stats["skipped"]
    # evaluation skips that query for localization, and counts it
    loaded = EvalDataset.load(
        "squad", tmp_path / "squad" / "corpus.jsonl", tmp_path / "squad" / "queries.jsonl"
    )
    kept, skipped = localization_sample(loaded)
    assert len(kept) == 1 and skipped == {"not_fine_grained": 0, "no_relevant_unit": 1}

    context = {"title": "Normans", "text": "The Normans came from Normandy."}
    entries = [
        {
            "question": "Where from?",
            "answers": ["Normandy"],
            "positive_ctxs": [{**context, "passage_id": "1"}],
        },
        {
            "question": "No gold?",
            "answers": ["x"],
            "positive_ctxs": [],
            "negative_ctxs": [{**context, "text": " "}],
        },
    ]
    (tmp_path / "nq.json").write_text(json.dumps(entries))
    stats = build_dpr(tmp_path / "nq.json", tmp_path / "nq", mini_config["data"], "nq")
    assert stats["skipped"] == {"empty_document": 1, "no_positive_ctx": 1} and stats["queries"] == 1


# --------------------------------------------------------------------------------------------
# Documents longer than the model's maximum: truncated (as BERT-based models are, the paper's
# 512 tokens), counted in stats.json, and their units beyond the cut scored -inf by GeAR


def long_context(sentences: int = 12) -> str:
    return " ".join(
        f"Sentence {i} tells of the harbour of Town{i} and its old stone bridge." for i in range(sentences)
    )


def test_long_documents_are_counted_in_the_statistics(tmp_path, mini_config):
    from data_prep.squad import build_squad

    data_cfg = dict(mini_config["data"], max_document_tokens=64)
    source = squad(qa(answer="Sentence 0"), context=long_context())
    short = {
        "title": "Short",
        "paragraphs": [{"context": "Rouen is in Normandy.", "qas": [qa("s", answer="Rouen")]}],
    }
    source["data"].append(short)
    (tmp_path / "dev.json").write_text(json.dumps(source))
    stats = build_squad(tmp_path / "dev.json", tmp_path / "squad", data_cfg)
    assert (
        stats["documents"] == 2 and stats["truncated_documents"] == 1 and stats["max_document_tokens"] == 64
    )
    assert stats["document_tokens"]["max"] > 64


def test_long_documents_are_truncated_in_training_and_localization(tmp_path, tiny_bert_path):
    from data_prep.normalized import SentenceSplitter
    from gear.inference import LocalizationConfig, unit_scores
    from gear.model.modeling import build_from_bert
    from gear.training.triples import TripleCollator

    model, tokenizer, _ = build_from_bert(
        tiny_bert_path, seed=0, max_query_tokens=16, max_document_tokens=32, max_target_tokens=16
    )
    model.eval()
    text = long_context()
    assert len(tokenizer(text)["input_ids"]) > 100  # far beyond 32
    collator = TripleCollator(
        tokenizer, 16, 32, 16, model.config.decoder_start_token_id, model.config.eos_token_id
    )
    batch = collator([{**TRIPLE, "document": text}, TRIPLE])
    assert batch["document_ids"].shape[1] == 32 and batch["document_mask"][0].sum() == 32

    units = SentenceSplitter().split(text)
    scores = unit_scores(
        model, tokenizer, ["Which harbour?"], [text], [units], [1], LocalizationConfig(layer=1)
    )[1][0]
    assert len(scores) == len(units) == 12
    reached = np.isfinite(scores)
    assert reached[0] and not reached[-1]  # the first sentences are seen, the last cut off
    assert np.all(reached[: reached.sum()]) and np.all(scores[~reached] == -np.inf)
