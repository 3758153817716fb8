"""The suite's encoders run through mteb 2.x on a local retrieval task (normalised files, no downloads)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from baselines.adapters import EncoderSpec, HFEncoder
from gear.config import REPO_ROOT, load_config
from gear.evaluation.dataset import EvalDataset
from gear.evaluation.retrieval import evaluate_retrieval
from gear.evaluation.settings import EvaluateSettings
from gear.io import DataFormatError, file_sha256
from tests.baselines.helpers import PAIRS

pytest.importorskip("mteb", reason="mteb is not installed")


def write_normalised(folder, pairs=PAIRS, n_queries=10):
    """A normalised test set (ARCHITECTURE.md): one document per pair, the first n_queries queries."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w") as handle:
        for i, (_, document) in enumerate(pairs):
            row = {"doc_id": f"d{i}", "title": f"Title {i}", "text": document, "units": [[0, len(document)]]}
            handle.write(json.dumps(row) + "\n")
    with open(folder / "queries.jsonl", "w") as handle:
        for i, (query, _) in enumerate(pairs[:n_queries]):
            row = {
                "query_id": f"q{i}",
                "text": query,
                "doc_id": f"d{i}",
                "answers": ["x"],
                "relevant_units": [0],
                "target": "x",
                "fine_grained": True,
            }
            handle.write(json.dumps(row) + "\n")
    return folder


@pytest.fixture(scope="module")
def prefixed_encoder(minilm_path):
    # E5-style prefixes make query and document vectors of one text differ, so a swap would show.
    return HFEncoder(
        EncoderSpec("MiniLM", str(minilm_path), None, "mean", "query: ", "passage: ", 128), device="cpu"
    )


def own_scores(encoder, pairs, n_queries, k):
    """Recall@k and MRR@k computed directly from the encoder's vectors (one relevant document each)."""
    queries = encoder.encode_queries([q for q, _ in pairs[:n_queries]])
    documents = encoder.encode_documents([d for _, d in pairs])
    ranks = np.argsort(-(queries @ documents.T), axis=1)
    position = np.array([list(row).index(i) for i, row in enumerate(ranks)])  # 0-based rank of the gold
    recall = float(np.mean(position < k))
    mrr = float(np.mean(np.where(position < k, 1.0 / (position + 1), 0.0)))
    return recall, mrr


@pytest.mark.slow
def test_mteb_scores_the_local_task_like_the_encoder_does(tmp_path, prefixed_encoder):
    from baselines.mteb_task import evaluate_local

    folder = write_normalised(tmp_path / "squad")
    scores = evaluate_local(prefixed_encoder, folder, batch_size=4)
    for k in (1, 3):
        recall, mrr = own_scores(prefixed_encoder, PAIRS, 10, k)
        assert scores[f"recall_at_{k}"] == pytest.approx(recall, abs=1e-4)
        assert scores[f"mrr_at_{k}"] == pytest.approx(mrr, abs=1e-4)
    assert scores["recall_at_1"] >= 0.8  # MiniLM finds these easy pairs


def test_mteb_wrapper_routes_queries_and_documents(prefixed_encoder):
    from mteb.types import PromptType
    from torch.utils.data import DataLoader

    from baselines.mteb_task import MtebEncoder

    texts = ["who wrote hamlet", "Hamlet is a tragedy by Shakespeare.", "paris"]
    loader = DataLoader([{"text": text} for text in texts], batch_size=2)
    wrapped = MtebEncoder(prefixed_encoder)
    assert wrapped.mteb_model_meta.name == "gear-suite/MiniLM"
    np.testing.assert_allclose(
        wrapped.encode(loader, prompt_type=PromptType.query),
        prefixed_encoder.encode_queries(texts),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        wrapped.encode(loader, prompt_type=PromptType.document),
        prefixed_encoder.encode_documents(texts),
        atol=1e-6,
    )


def test_local_task_reads_normalised_files(tmp_path):
    from baselines.mteb_task import local_retrieval_task, read_local_retrieval

    folder = write_normalised(tmp_path / "nq", n_queries=3)
    split = read_local_retrieval(folder)
    assert split["relevant_docs"] == {"q0": {"d0": 1}, "q1": {"d1": 1}, "q2": {"d2": 1}}
    assert (
        split["corpus"]["title"][0] == ""
        and read_local_retrieval(folder, with_titles=True)["corpus"]["title"][0] == "Title 0"
    )
    task = local_retrieval_task(folder)
    assert task.metadata.name == "GeARLocal-nq" and task.metadata.type == "Retrieval"
    task.load_data()
    assert len(task.dataset["default"]["test"]["queries"]) == 3


def test_local_task_rejects_a_query_with_an_unknown_document(tmp_path):
    from baselines.mteb_task import read_local_retrieval

    folder = write_normalised(tmp_path / "bad", n_queries=2)
    with open(folder / "queries.jsonl", "a") as handle:
        handle.write(json.dumps({"query_id": "q9", "text": "x", "doc_id": "missing"}) + "\n")
    with pytest.raises(DataFormatError, match=r"queries.jsonl:3: doc_id 'missing' is not in"):
        read_local_retrieval(folder)


@pytest.mark.slow
def test_gear_as_an_mteb_model_scores_like_the_suite(tmp_path, tiny_gear_path):
    """A GeAR folder loaded through its ModelMeta's loader: mteb's R@k / MRR@k equal the suite's
    own retrieval evaluation of the same folder on the same test set."""
    import mteb
    import torch
    from mteb.types import PromptType
    from safetensors import safe_open
    from torch.utils.data import DataLoader

    from baselines.mteb_task import GEAR_CITATION, gear_model_meta, local_retrieval_task
    from gear.inference import load_gear

    # Both encoders of an untrained GeAR start from the same BERT: make them differ, so that a
    # query encoded as a document (or the reverse) would show.
    gear, tokenizer = load_gear(tiny_gear_path, "cpu")
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in gear.document_encoder.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    tiny_gear_path = tmp_path / "gear"
    gear.save_pretrained(tiny_gear_path, tokenizer)

    meta = gear_model_meta(tiny_gear_path, name="me/tiny-gear")
    assert meta.name == "me/tiny-gear" and meta.framework == ["PyTorch"]
    assert meta.revision == file_sha256(tiny_gear_path / "model.safetensors")[:16]
    assert meta.embed_dim == 32 and meta.max_tokens == 32 and meta.use_instructions is False
    with safe_open(str(tiny_gear_path / "model.safetensors"), framework="pt") as weights:
        encoders = sum(
            int(np.prod(weights.get_slice(k).get_shape()))
            for k in weights.keys()
            if k.split(".")[0] in ("query_encoder", "document_encoder")
        )
    assert meta.n_parameters == encoders and meta.citation == GEAR_CITATION
    model = meta.load_model(device="cpu")
    assert model.mteb_model_meta.name == "me/tiny-gear"
    texts = [query for query, _ in PAIRS[:3]]
    loader = DataLoader([{"text": text} for text in texts], batch_size=2)
    as_queries = model.encode(loader, prompt_type=PromptType.query)
    np.testing.assert_allclose(as_queries, model.encoder.encode_queries(texts), atol=1e-6)
    assert not np.allclose(as_queries, model.encoder.encode_documents(texts), atol=1e-3)

    folder = write_normalised(tmp_path / "squad")
    result = mteb.evaluate(
        model, local_retrieval_task(folder), cache=None, show_progress_bar=False, co2_tracker=False
    )
    (scores,) = result.task_results[0].scores["test"]
    config = load_config(REPO_ROOT / "config" / "mini.yaml")
    config["evaluate"]["bootstrap"]["resamples"] = 10
    suite = evaluate_retrieval(
        model.encoder,
        EvalDataset.load("squad", folder / "corpus.jsonl", folder / "queries.jsonl"),
        EvaluateSettings.from_config(config["evaluate"]),
        out_json=tmp_path / "retrieval.json",
    )
    assert scores["recall_at_5"] == pytest.approx(suite["metrics"]["R@5"], abs=1e-4)
    assert scores["mrr_at_5"] == pytest.approx(suite["metrics"]["M@5"], abs=1e-4)
    recall, mrr = own_scores(model.encoder, PAIRS, 10, 1)
    assert scores["recall_at_1"] == pytest.approx(recall, abs=1e-4)
    assert scores["mrr_at_1"] == pytest.approx(mrr, abs=1e-4)
