"""Evaluation end to end on real SQuAD paragraphs with the MiniLM weights, and the workflow targets."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from baselines.registry import load_registry
from data_prep.beir import build_beir
from gear.config import REPO_ROOT, ConfigError, load_config
from gear.evaluation.analyses import epoch_dirs
from gear.evaluation.dataset import EvalDataset
from gear.evaluation.evaluate import run_model
from gear.evaluation.generation import evaluate_generation
from gear.evaluation.localization import BiEncoderUnitScorer, evaluate_localization
from gear.evaluation.metrics import bootstrap_ci, bootstrap_indices, exact_match, token_f1
from gear.evaluation.retrieval import evaluate_retrieval
from gear.evaluation.search import read_run
from gear.evaluation.settings import EvaluateSettings
from gear.io import DataFormatError, read_json
from gear.layout import Layout
from gear.workflow.evaluation_plan import EvaluationPlan, evaluation_targets, job_config, model_job_outputs
from tests.data_prep.test_beir import NAME, QRELS, beir_config, write_beir_folder
from tests.gear.test_search import MiniLMEncoder

ARTICLES, PARAGRAPHS = 2, 3  # six real SQuAD paragraphs and their questions


@pytest.fixture(scope="module")
def config() -> dict:
    return load_config(REPO_ROOT / "config" / "mini.yaml")


@pytest.fixture(scope="module")
def settings(config) -> EvaluateSettings:
    section = copy.deepcopy(config["evaluate"])
    section["bootstrap"]["resamples"] = 200  # the interval logic is the same; fewer resamples are faster
    return EvaluateSettings.from_config(section)


@pytest.fixture(scope="module")
def squad_dir(tmp_path_factory, squad_dev_path, config) -> Path:
    """A small SQuAD test set built by the suite's own builder from real dev paragraphs."""
    from data_prep.squad import build_squad

    source = json.loads(Path(squad_dev_path).read_text(encoding="utf-8"))
    articles = [dict(a, paragraphs=a["paragraphs"][:PARAGRAPHS]) for a in source["data"][:ARTICLES]]
    root = tmp_path_factory.mktemp("squad")
    (root / "dev.json").write_text(
        json.dumps({"version": source["version"], "data": articles}), encoding="utf-8"
    )
    build_squad(root / "dev.json", root / "data", config["data"])
    return root / "data"


@pytest.fixture(scope="module")
def squad(squad_dir) -> EvalDataset:
    return EvalDataset.load("squad", squad_dir / "corpus.jsonl", squad_dir / "queries.jsonl")


@pytest.fixture(scope="module")
def minilm(minilm_path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_path), device="cpu")


def _check_result(result: dict, path: Path, task: str, metric_names: list[str]) -> None:
    assert read_json(path) == json.loads(json.dumps(result))
    assert result["task"] == task and result["scenario"] in ("qar", "rir")
    assert list(result["metrics"]) == metric_names
    n = result["n_queries"]
    assert len(result["per_query"]["query_id"]) == n
    for name in metric_names:
        values = np.array(result["per_query"][name])
        assert len(values) == n and ((values >= 0) & (values <= 1)).all()
        assert result["metrics"][name] == pytest.approx(values.mean())
        low, high = result["ci"][name]
        assert 0 <= low <= result["metrics"][name] <= high <= 1
    prov = result["provenance"]
    for key in ("config_hash", "git_commit", "packages", "seed", "wall_time_s"):
        assert key in prov


# ------------------------------------------------------------------ retrieval


@pytest.mark.slow
def test_retrieval_end_to_end(tmp_path, squad, settings, minilm):
    encoder = MiniLMEncoder(minilm)
    out, run = tmp_path / "eval" / "retrieval.json", tmp_path / "eval" / "run.tsv"
    result = evaluate_retrieval(
        encoder, squad, settings, out_json=out, run_file=run, cache_root=tmp_path / "cache"
    )
    _check_result(result, out, "retrieval", ["R@5", "M@5"])
    assert result["n_queries"] == len(squad.queries) > 20
    assert result["skipped"] == {}
    # six paragraphs, three of one article and three of another: MiniLM finds most gold paragraphs
    assert result["metrics"]["R@5"] > 0.8 and result["metrics"]["M@5"] > 0.5
    # the run file holds the ranking the metrics were computed from
    ranking = read_run(run)
    assert len(ranking) == len(squad.queries)
    for query, r5, m5 in zip(
        squad.queries, result["per_query"]["R@5"], result["per_query"]["M@5"], strict=True
    ):
        docs = [doc for doc, _ in ranking[query.query_id]]
        assert len(docs) == min(settings.retrieval.depth, len(squad.documents))
        rank = docs.index(query.doc_id) + 1 if query.doc_id in docs else None
        assert r5 == (1.0 if rank and rank <= 5 else 0.0)
        assert m5 == pytest.approx(1 / rank if rank and rank <= 5 else 0.0)
    # the interval is the percentile bootstrap of the per-query values with the configured seed
    indices = bootstrap_indices(result["n_queries"], settings.bootstrap.resamples, settings.bootstrap.seed)
    assert result["ci"]["R@5"] == list(bootstrap_ci(np.array(result["per_query"]["R@5"]), indices))
    # a second evaluation reuses the cached corpus vectors
    calls = encoder.calls["documents"]
    again = evaluate_retrieval(encoder, squad, settings, out_json=out, cache_root=tmp_path / "cache")
    assert encoder.calls["documents"] == calls
    assert again["per_query"]["R@5"] == result["per_query"]["R@5"]


# ------------------------------------------------------------------ localization


@pytest.mark.slow
def test_bi_encoder_localization(tmp_path, squad, squad_dir, settings, minilm):
    encoder = MiniLMEncoder(minilm)
    out = tmp_path / "localization.json"
    result = evaluate_localization(BiEncoderUnitScorer(encoder, batch_size=16), squad, settings, out_json=out)
    _check_result(result, out, "localization", ["R@1", "M@1"])
    stats = read_json(squad_dir / "stats.json")
    assert result["skipped"] == {
        "not_fine_grained": 0,
        "no_relevant_unit": stats["queries_without_relevant_unit"],
    }
    assert result["n_queries"] + result["skipped"]["no_relevant_unit"] == len(squad.queries)
    # recompute a few queries by hand: embed the gold document's sentences, rank by inner product
    for position in range(0, result["n_queries"], 11):
        qid = result["per_query"]["query_id"][position]
        query = next(q for q in squad.queries if q.query_id == qid)
        document = squad.gold(query)
        sentences = [document.text[s:e] for s, e in document.units]
        scores = encoder.encode_documents(sentences) @ encoder.encode_queries([query.text])[0]
        best = int(np.argmax(scores))
        hit = float(best in query.relevant_units)
        # SPEC 7: recall divides by the number of relevant units (several may contain the answer)
        assert result["per_query"]["R@1"][position] == pytest.approx(hit / len(set(query.relevant_units)))
        assert result["per_query"]["M@1"][position] == hit
    # sentence similarity localizes answers better than chance (about 1 / units per document)
    units = np.mean([len(d.units) for d in squad.documents])
    assert result["metrics"]["R@1"] > 1.5 / units


def _rir_dataset(squad: EvalDataset, root: Path) -> EvalDataset:
    """An RIR-shaped test set from the same real paragraphs: the second sentence of each document
    is the target, its first words the keyword query; every other query is fine-grained."""
    from data_prep.normalized import Query, write_dataset

    queries = []
    for i, doc in enumerate(squad.documents):
        start, end = doc.units[1]
        sentence = doc.text[start:end]
        keywords = ", ".join(sentence.split()[:6])
        queries.append(Query(f"rir-{i}", keywords, doc.doc_id, [sentence], [1], sentence, i % 2 == 0))
    write_dataset(root, squad.documents, queries, {"dataset": "rir"})
    return EvalDataset.load("rir", root / "corpus.jsonl", root / "queries.jsonl")


class LeadSentence:
    """An extractive generation baseline: the document's first sentence (the 'lead' baseline of
    summarisation), used to exercise the generation evaluation without a trained GeAR."""

    def __init__(self, dataset: EvalDataset):
        self.first = {d.text: d.text[slice(*d.units[0])] for d in dataset.documents}

    def __call__(self, queries, documents):
        return [self.first[d] for d in documents]


@pytest.mark.slow
def test_rir_localization_skips_and_uses_k_rir(tmp_path, squad, settings, minilm):
    rir = _rir_dataset(squad, tmp_path / "rir")
    result = evaluate_localization(
        BiEncoderUnitScorer(MiniLMEncoder(minilm)), rir, settings, out_json=tmp_path / "loc.json"
    )
    assert list(result["metrics"]) == [f"R@{settings.localization.k_rir}", f"M@{settings.localization.k_rir}"]
    assert result["n_queries"] == (len(rir.queries) + 1) // 2
    assert result["skipped"]["not_fine_grained"] == len(rir.queries) // 2


def test_generation_results_carry_predictions(tmp_path, squad, settings):
    out = tmp_path / "generation.json"
    result = evaluate_generation(LeadSentence(squad), squad, settings, out_json=out, model_name="Lead")
    _check_result(result, out, "generation", ["EM", "F1"])
    assert len(result["per_query"]["prediction"]) == result["n_queries"] == len(squad.queries)
    by_id = {q.query_id: q for q in squad.queries}
    for qid, prediction, em, f1 in zip(
        *(result["per_query"][k] for k in ("query_id", "prediction", "EM", "F1"))
    ):
        query = by_id[qid]
        assert prediction == LeadSentence(squad)([query.text], [squad.gold(query).text])[0]
        assert em == exact_match(prediction, query.answers) and f1 == pytest.approx(
            token_f1(prediction, query.answers)
        )
    # a whole sentence is rarely exactly a short SQuAD answer, but often contains it
    assert result["metrics"]["EM"] < 0.1 and result["metrics"]["F1"] > 0.0


def test_rir_generation_scores_rouge(tmp_path, squad, settings):
    rir = _rir_dataset(squad, tmp_path / "rir")
    result = evaluate_generation(
        LeadSentence(rir), rir, settings, out_json=tmp_path / "gen.json", model_name="Lead"
    )
    _check_result(result, tmp_path / "gen.json", "generation", ["ROUGE-1", "ROUGE-L"])
    assert result["skipped"] == {"not_fine_grained": len(rir.queries) // 2}
    # the lead sentence is not the target (the second sentence): ROUGE well below 1
    assert 0 < result["metrics"]["ROUGE-1"] < 0.9


def test_dataset_errors_name_the_file(tmp_path, squad):
    from data_prep.normalized import Query, write_dataset

    bad = Query("q-1", "who?", "no-such-doc", ["x"], [], "x", True)
    write_dataset(tmp_path / "bad", squad.documents[:1], [bad], {})
    with pytest.raises(DataFormatError, match=r"queries\.jsonl.*q-1.*no-such-doc"):
        EvalDataset.load("squad", tmp_path / "bad" / "corpus.jsonl", tmp_path / "bad" / "queries.jsonl")
    doc = squad.documents[0]
    bad = Query("q-2", "who?", doc.doc_id, ["x"], [len(doc.units)], "x", True)
    write_dataset(tmp_path / "bad2", [doc], [bad], {})
    with pytest.raises(DataFormatError, match="relevant units"):
        EvalDataset.load("squad", tmp_path / "bad2" / "corpus.jsonl", tmp_path / "bad2" / "queries.jsonl")


# ------------------------------------------------------------------ workflow glue


@pytest.fixture(scope="module")
def job_run(tmp_path_factory, squad_dir, config) -> tuple[dict, Layout]:
    """One evaluation job as the workflow runs it (MiniLM on the QAR scenario), on the SQuAD
    sample and a tiny BEIR set added by config (graded, several relevant documents per query)."""
    root = tmp_path_factory.mktemp("job")
    cfg = beir_config(copy.deepcopy(config), write_beir_folder(root / "tiny"))
    cfg["results_dir"], cfg["reports_dir"] = str(root / "results"), str(root / "reports")
    cfg["evaluate"]["bootstrap"]["resamples"] = 100
    cfg["evaluate"]["datasets"] = ["squad", NAME]
    layout = Layout.from_config(cfg)
    build_beir(cfg["data"]["beir"][NAME]["path"], layout.dataset_dir(NAME), cfg["data"], NAME)
    entry = load_registry(REPO_ROOT / cfg["registry"])["MiniLM"]
    params = job_config(cfg, entry)
    assert "gear" not in params and "train" not in params and "models" not in params["evaluate"]
    datasets = {
        "squad": (squad_dir / "corpus.jsonl", squad_dir / "queries.jsonl"),
        NAME: (layout.corpus(NAME), layout.queries(NAME)),
    }
    outputs = model_job_outputs(entry, cfg, "qar", layout)
    run_model(entry, params, "qar", datasets, outputs)
    return outputs, layout


@pytest.mark.slow
def test_job_functions_build_the_registry_encoder(job_run):
    """The Snakemake job path: registry entry -> adapter -> evaluation, from the trimmed params."""
    outputs, layout = job_run
    out = layout.eval_json("MiniLM", "squad", "retrieval")
    assert read_json(out)["model"] == "MiniLM" and layout.run_file("MiniLM", "squad").is_file()
    assert list(layout.embedding_cache().glob("MiniLM-documents-*/manifest.json"))
    assert read_json(layout.eval_json("MiniLM", "squad", "localization"))["n_queries"] > 0
    # the BEIR set has retrieval only: nothing to localize
    assert read_json(layout.eval_json("MiniLM", "beir-tiny", "retrieval"))["n_queries"] == 3
    assert "beir-tiny_localization" not in outputs
    written = {p for p in layout.results.joinpath("eval").rglob("*") if p.is_file()}
    assert written == {Path(p) for p in outputs.values()}


def read_trec_qrels(path: Path) -> dict[str, dict[str, int]]:
    """TREC qrels ``qid 0 docid relevance``, checked field by field."""
    qrels: dict[str, dict[str, int]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        qid, zero, doc, relevance = line.split(" ")
        assert zero == "0" and int(relevance) >= 1 and doc not in qrels.get(qid, {})
        qrels.setdefault(qid, {})[doc] = int(relevance)
    return qrels


def check_trec_run(path: Path, tag: str) -> dict[str, list[tuple[str, float]]]:
    """A valid TREC run (``qid Q0 docid rank score tag``: ranks 1, 2, ... in order of
    non-increasing score, one line per document); returns each query's (doc, score) list."""
    run: dict[str, list[tuple[str, float]]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        qid, q0, doc, rank, score, run_tag = line.split(" ")
        ranked = run.setdefault(qid, [])
        assert q0 == "Q0" and run_tag == tag and int(rank) == len(ranked) + 1
        assert not ranked or float(score) <= ranked[-1][1]
        assert doc not in {d for d, _ in ranked}
        ranked.append((doc, float(score)))
    return run


@pytest.mark.slow
def test_every_run_file_scores_as_pytrec_eval_does(job_run):
    """R@k and M@k of every results file equal pytrec_eval's on the run file and qrels beside it.

    Ties aside: trec_eval orders equal scores by document id (reverse lexicographic), the suite
    pessimistically (gear.evaluation.metrics), so a query whose relevant document shares its
    printed score with another document of its list is left out (none is here). trec_eval's
    recip_rank has no cut-off: M@k is compared with it on the run cut to its top k.
    """
    pytrec_eval = pytest.importorskip(
        "pytrec_eval", reason="pytrec_eval comes with the mteb extra (pip install -e '.[mteb]')"
    )
    outputs, _ = job_run
    runs = sorted(key.removesuffix("_run") for key in outputs if key.endswith("_run"))
    assert runs == ["beir-tiny", "squad"]
    for dataset in runs:
        result = read_json(outputs[f"{dataset}_retrieval"])
        k = int(next(iter(result["metrics"])).split("@")[1])
        run = check_trec_run(Path(outputs[f"{dataset}_run"]), "MiniLM")
        qrels = read_trec_qrels(Path(outputs[f"{dataset}_qrels"]))
        assert set(qrels) == set(run) == set(result["per_query"]["query_id"])
        if dataset == "beir-tiny":  # the judgments of the BEIR folder, grades and all
            assert qrels == {q: {d: s for q2, d, s in QRELS if q2 == q and s >= 1} for q in qrels}
        recall = pytrec_eval.RelevanceEvaluator(qrels, {f"recall.{k}"}).evaluate(
            {q: dict(ranked) for q, ranked in run.items()}
        )
        reciprocal = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(
            {q: dict(ranked[:k]) for q, ranked in run.items()}
        )
        compared = 0
        for i, qid in enumerate(result["per_query"]["query_id"]):
            scores = [score for _, score in run[qid]]
            if any(scores.count(score) > 1 for doc, score in run[qid] if doc in qrels[qid]):
                continue  # a tie involving a relevant document: see the docstring
            assert result["per_query"][f"R@{k}"][i] == pytest.approx(recall[qid][f"recall_{k}"]), qid
            assert result["per_query"][f"M@{k}"][i] == pytest.approx(reciprocal[qid]["recip_rank"]), qid
            compared += 1
        assert compared == len(run), f"{dataset}: {len(run) - compared} queries tie"


def test_bm25_job_ranks_documents_and_sentences(tmp_path, squad_dir, config):
    """A lexical entry through the job path: its run file is BM25's ranking of the corpus, and on
    SQuAD (questions share words with their answer sentence) it localizes above the random ranking."""
    from baselines.registry import build_lexical, load_registry

    cfg = copy.deepcopy(config)
    cfg["results_dir"], cfg["reports_dir"] = str(tmp_path / "results"), str(tmp_path / "reports")
    cfg["evaluate"]["bootstrap"]["resamples"] = 100
    cfg["evaluate"]["datasets"] = ["squad"]
    entry = load_registry(REPO_ROOT / cfg["registry"])["BM25"]
    layout = Layout.from_config(cfg)
    corpus, queries = squad_dir / "corpus.jsonl", squad_dir / "queries.jsonl"
    run_model(
        entry,
        job_config(cfg, entry),
        "qar",
        {"squad": (corpus, queries)},
        model_job_outputs(entry, cfg, "qar", layout),
    )

    data = EvalDataset.load("squad", corpus, queries)
    _, ids = build_lexical(entry).search([d.text for d in data.documents], [q.text for q in data.queries], 20)
    run = read_run(layout.run_file("BM25", "squad"))
    first = data.queries[0]
    assert [doc for doc, _ in run[first.query_id]] == [data.documents[i].doc_id for i in ids[0] if i >= 0]
    retrieval = read_json(layout.eval_json("BM25", "squad", "retrieval"))
    hits = [data.position[q.doc_id] in row[:5] for q, row in zip(data.queries, ids, strict=True)]
    assert retrieval["metrics"]["R@5"] == pytest.approx(np.mean(hits))
    assert retrieval["provenance"]["encoder_fingerprint"].startswith("bm25-")
    localization = read_json(layout.eval_json("BM25", "squad", "localization"))
    assert localization["n_queries"] > 0 and localization["provenance"]["scorer"] == "BM25Retriever"
    assert localization["metrics"]["R@1"] > localization["references"]["random"]["metrics"]["R@1"]


def test_settings_from_config(config, paper_config):
    settings = EvaluateSettings.from_config(paper_config["evaluate"])
    assert settings.retrieval.k == 5 and settings.bootstrap.resamples == 1000
    assert settings.localization_k("squad") == 1 and settings.localization_k("rir") == 3
    with pytest.raises(ConfigError, match=r"evaluate\.retrieval"):
        EvaluateSettings.from_config({**config["evaluate"], "retrieval": {"depth": 5}})
    with pytest.raises(ConfigError, match="depth 3 is below"):
        EvaluateSettings.from_config({**config["evaluate"], "retrieval": {"depth": 3, "k": 5}})


def test_extra_models_do_not_reach_the_evaluation_jobs(config):
    """README's "Compare your model" adds models with evaluate.extra_models: the jobs' params are
    the same with and without it (no other model's evaluation reruns), and they load."""
    from baselines.registry import load_registry

    entry = load_registry(REPO_ROOT / config["registry"])["GeAR"]
    extra = copy.deepcopy(config)
    extra["evaluate"]["extra_models"] = ["BM25"]
    assert job_config(extra, entry) == job_config(config, entry)
    EvaluateSettings.from_config(job_config(extra, entry)["evaluate"])
    EvaluateSettings.from_config(extra["evaluate"])


def test_evaluation_targets_follow_the_registry_tasks(config):
    from baselines.registry import load_registry, select_models

    registry = load_registry(REPO_ROOT / config["registry"])
    models = select_models(registry, config["evaluate"]["models"])
    layout = Layout.from_config(config)
    targets = evaluation_targets(config, models, layout)
    assert len(targets) == len(set(targets))
    datasets = config["evaluate"]["datasets"]
    assert layout.eval_json("MiniLM", "squad", "localization") in targets
    assert layout.run_file("GeAR_CL", "rir") in targets and layout.qrels_file("GeAR_CL", "rir") in targets
    assert layout.eval_json("GeAR_CL", "squad", "localization") not in targets
    assert layout.eval_json("MiniLM", "squad", "generation") not in targets
    assert layout.eval_json("GeAR", "rir", "generation") in targets
    assert {p for p in targets if "analysis" in p.parts} == {
        *(layout.layers_json("GeAR", d) for d in config["evaluate"]["layer_analysis"]),
        layout.epochs_json("GeAR", "qar"),
        layout.epochs_json("GeAR", "rir"),
    }
    per_model = {
        m.name: len(m.tasks) * len(datasets) + ("retrieval" in m.tasks) * 2 * len(datasets)  # run, qrels
        for m in models
    }
    analyses = len(config["evaluate"]["layer_analysis"]) + 2
    assert len(targets) == sum(per_model.values()) + analyses


def test_epoch_dirs_sorted_numerically(tmp_path):
    for e in (10, 2, 1):
        (tmp_path / f"epoch_{e}").mkdir()
    (tmp_path / "epoch_x").mkdir()
    assert [e for e, _ in epoch_dirs(tmp_path)] == [1, 2, 10]
    with pytest.raises(FileNotFoundError, match="train GeAR"):
        epoch_dirs(tmp_path / "missing")


# ------------------------------------------------------------------ GeAR (a tiny untrained model)


@pytest.fixture(scope="module")
def gear_folders(tmp_path_factory, minilm_path) -> dict[str, Path]:
    """Two tiny GeAR folders (hidden 32, 2 layers, random weights of two seeds) with MiniLM's
    real tokenizer: stand-ins for two epoch checkpoints of one run."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from gear.model.modeling import build_from_bert

    root = tmp_path_factory.mktemp("tiny_gear")
    bert = root / "bert"
    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
    )
    BertModel(config).save_pretrained(bert)
    AutoTokenizer.from_pretrained(str(minilm_path)).save_pretrained(bert)
    folders = {}
    for epoch in (1, 2):
        model, tokenizer, _ = build_from_bert(
            bert, seed=epoch, max_query_tokens=24, max_document_tokens=96, max_target_tokens=16
        )
        folders[f"epoch_{epoch}"] = root / "epochs" / f"epoch_{epoch}"
        model.save_pretrained(folders[f"epoch_{epoch}"], tokenizer)
    return folders


@pytest.fixture()
def single_thread():
    """The tiny GeAR runs faster on one torch thread (two threads on two shared cores spin-wait)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def gear_settings(settings) -> EvaluateSettings:
    import dataclasses

    return dataclasses.replace(
        settings, generation=dataclasses.replace(settings.generation, max_new_tokens=4)
    )


def _gear(folder):
    from gear.inference import LocalizationConfig, load_gear

    model, tokenizer = load_gear(folder, device="cpu")
    return model, tokenizer, LocalizationConfig(layer=2)


@pytest.mark.slow
def test_gear_localization_layers_and_generation(tmp_path, squad, gear_settings, gear_folders, single_thread):
    from gear.evaluation.analyses import layer_analysis
    from gear.evaluation.generation import GearGenerator
    from gear.evaluation.localization import GearUnitScorer
    from gear.evaluation.metrics import break_ties_at_random, localization_metrics
    from gear.inference import LocalizationConfig, localize_units

    model, tokenizer, localization = _gear(gear_folders["epoch_1"])
    scorer = GearUnitScorer(model, tokenizer, localization, batch_size=8, name="GeAR")
    result = evaluate_localization(scorer, squad, gear_settings, out_json=tmp_path / "loc.json")
    _check_result(result, tmp_path / "loc.json", "localization", ["R@1", "M@1"])
    # the per-query values are those of unit_scores at the configured layer, ranked by the tie rule
    kept = [q for q in squad.queries if q.relevant_units]
    docs = [squad.gold(q) for q in kept]
    found = localize_units(
        model,
        tokenizer,
        [q.text for q in kept],
        [d.text for d in docs],
        [d.units for d in docs],
        [2],
        localization,
    )
    direct = found.by_layer[2]
    assert any(np.isneginf(s).any() for s in direct), "96 tokens should cut off some units"
    expected = localization_metrics(direct, [q.relevant_units for q in kept], 1)
    assert result["per_query"]["R@1"] == pytest.approx(expected["R@1"].tolist())
    # the trivial references on the same queries: units by token count, a seeded random ranking
    relevant = [q.relevant_units for q in kept]
    length = localization_metrics(
        break_ties_at_random(found.uniform, gear_settings.bootstrap.seed), relevant, 1
    )
    assert result["references"]["unit_length"]["metrics"]["R@1"] == pytest.approx(length["R@1"].mean())
    assert set(result["references"]) == {"unit_length", "random"}
    random_r1 = result["references"]["random"]["metrics"]["R@1"]
    chance = np.mean([len(r) / len(d.units) for r, d in zip(relevant, docs, strict=True)])
    assert abs(random_r1 - chance) < 0.35 and len(result["references"]["random"]["ci"]["R@1"]) == 2
    assert 0 < result["attention_entropy"]["mean"] <= 1 and result["attention_entropy"]["layer"] == 2
    assert result["per_query"]["attention_entropy"] == pytest.approx(found.entropy[2].tolist(), rel=1e-5)

    # layer analysis: every layer from one pass, each equal to a localization run at that layer
    layers = layer_analysis(scorer, squad, gear_settings, [1, 2], out_json=tmp_path / "layers.json")
    assert layers["layers"] == [1, 2] and layers["chosen_layer"] == 2
    assert layers["metrics"]["R@1"][1] == pytest.approx(result["metrics"]["R@1"])
    at_one = GearUnitScorer(model, tokenizer, LocalizationConfig(layer=1), batch_size=8)
    first = evaluate_localization(at_one, squad, gear_settings, out_json=tmp_path / "loc1.json")
    assert layers["metrics"]["M@1"][0] == pytest.approx(first["metrics"]["M@1"])
    assert len(layers["ci"]["R@1"]) == 2 and read_json(tmp_path / "layers.json") == layers
    assert layers["references"]["unit_length"]["metrics"]["R@1"] == pytest.approx(length["R@1"].mean())
    assert len(layers["attention_entropy"]) == 2

    # generation through the decoder: one prediction per query, scored against the gold answers
    generator = GearGenerator(model, tokenizer, gear_settings.generation)
    gen = evaluate_generation(generator, squad, gear_settings, out_json=tmp_path / "gen.json")
    _check_result(gen, tmp_path / "gen.json", "generation", ["EM", "F1"])
    assert all(isinstance(p, str) for p in gen["per_query"]["prediction"])


@pytest.mark.slow
def test_epoch_analysis_evaluates_every_checkpoint(
    tmp_path, squad, gear_settings, gear_folders, single_thread
):
    from gear.evaluation.analyses import epoch_analysis
    from gear.evaluation.generation import GearGenerator
    from gear.evaluation.localization import GearUnitScorer

    epochs_root = gear_folders["epoch_1"].parent
    localization = _gear(gear_folders["epoch_1"])[2]
    result = epoch_analysis(
        epochs_root, squad, gear_settings, localization, out_json=tmp_path / "epochs.json", device="cpu"
    )
    assert result["epochs"] == [1, 2] and result["dataset"] == "squad" and result["scenario"] == "qar"
    assert set(result["localization"]) == {"R@1", "M@1"} and set(result["generation"]) == {"EM", "F1"}
    # each epoch's numbers are those of a plain evaluation of that checkpoint
    model, tokenizer, _ = _gear(gear_folders["epoch_2"])
    loc = evaluate_localization(
        GearUnitScorer(model, tokenizer, localization, 8), squad, gear_settings, out_json=tmp_path / "l.json"
    )
    gen = evaluate_generation(
        GearGenerator(model, tokenizer, gear_settings.generation),
        squad,
        gear_settings,
        out_json=tmp_path / "g.json",
    )
    assert result["localization"]["R@1"][1] == pytest.approx(loc["metrics"]["R@1"])
    assert result["generation"]["F1"][1] == pytest.approx(gen["metrics"]["F1"])
    assert result["ci"]["localization"]["R@1"][1] == loc["ci"]["R@1"]


@pytest.mark.slow
def test_gear_job_functions(tmp_path, squad_dir, config, gear_folders, single_thread):
    """The GeAR rules' job path: registry entry -> final model folder -> one job writing every
    result, whose layer analysis agrees with its localization at the configured layer."""
    import shutil

    from baselines.registry import load_registry
    from gear.evaluation.evaluate import run_epoch_analysis

    cfg = copy.deepcopy(config)
    cfg["results_dir"], cfg["reports_dir"] = str(tmp_path / "results"), str(tmp_path / "reports")
    cfg["evaluate"]["bootstrap"]["resamples"] = 50
    cfg["evaluate"]["generation"]["max_new_tokens"] = 3
    cfg["evaluate"]["epoch_analysis"]["qar"] = "squad"
    cfg["evaluate"]["datasets"] = ["squad"]
    cfg["evaluate"]["layer_analysis"] = ["squad"]
    cfg["gear"]["localization"]["layer"] = 2
    layout = Layout.from_config(cfg)
    registry = load_registry(REPO_ROOT / cfg["registry"])
    entry = registry["GeAR"]
    shutil.copytree(gear_folders["epoch_2"], layout.final_model("GeAR", "qar"))
    params = job_config(cfg, entry)
    assert params["gear"] == {"localization": cfg["gear"]["localization"]}
    data = {"squad": (squad_dir / "corpus.jsonl", squad_dir / "queries.jsonl")}
    outputs = model_job_outputs(entry, cfg, "qar", layout)
    assert set(outputs) == {
        "squad_retrieval",
        "squad_run",
        "squad_qrels",
        "squad_localization",
        "squad_generation",
        "squad_layers",
    }
    run_model(entry, params, "qar", data, outputs)
    retrieval = read_json(outputs["squad_retrieval"])
    assert retrieval["provenance"]["encoder_fingerprint"].startswith("gear:")
    loc = read_json(outputs["squad_localization"])
    assert read_json(outputs["squad_generation"])["n_queries"] > 0
    layers = read_json(outputs["squad_layers"])
    assert layers["layers"] == [1, 2] and layers["metrics"]["R@1"][1] == pytest.approx(loc["metrics"]["R@1"])
    epochs = run_epoch_analysis(
        entry,
        params,
        "qar",
        gear_folders["epoch_1"].parent,
        *data["squad"],
        layout.epochs_json("GeAR", "qar"),
    )
    assert epochs["epochs"] == [1, 2] and epochs["localization"]["R@1"][1] == pytest.approx(
        loc["metrics"]["R@1"]
    )
    # GeAR_CL is evaluated for retrieval only (its cross-attention and decoder never trained)
    assert set(model_job_outputs(registry["GeAR_CL"], cfg, "qar", layout)) == {
        "squad_retrieval",
        "squad_run",
        "squad_qrels",
    }


def test_evaluation_plan_patterns_and_inputs(config):
    from types import SimpleNamespace

    from baselines.registry import load_registry, select_models

    registry = load_registry(REPO_ROOT / config["registry"])
    layout = Layout.from_config(config)
    plan = EvaluationPlan(config, select_models(registry, config["evaluate"]["models"]), layout)
    assert plan.model_pattern("generation") == "GeAR"
    assert plan.model_pattern("epochs") == "GeAR"
    assert set(plan.model_pattern("retrieval").split("|")) == set(config["evaluate"]["models"])
    assert EvaluationPlan.choice([]) == "(?!)"
    assert plan.jobs() == [(m, s) for m in config["evaluate"]["models"] for s in ("qar", "rir")]
    inputs = plan.job_inputs("SBERT_RT", "rir")
    assert inputs == {
        "rir_corpus": str(layout.corpus("rir")),
        "rir_queries": str(layout.queries("rir")),
        "model": str(layout.final_model("SBERT_RT", "rir")),
    }
    assert "model" not in plan.job_inputs("MiniLM", "qar")
    assert plan.job_datasets("rir") == ["rir"]
    assert {k for k in plan.job_inputs("MiniLM", "qar") if k.endswith("_corpus")} == {
        "squad_corpus",
        "nq_corpus",
        "triviaqa_corpus",
        "paq_corpus",
    }
    wildcards = SimpleNamespace(model="SBERT_RT", scenario="rir")
    assert plan.epoch_inputs(SimpleNamespace(model="GeAR", scenario="qar")) == {
        "epochs": str(layout.model_root("GeAR", "qar") / "epochs"),
        "corpus": str(layout.corpus("paq")),
        "queries": str(layout.queries("paq")),
    }
    assert plan.entry_digest(wildcards) == registry["SBERT_RT"].digest()


@pytest.mark.slow
def test_snakemake_dry_run_plans_every_evaluation(tmp_path, config, gear_folders):
    """evaluate.smk with common.smk: the DAG of a whole mini run resolves (trained models stubbed
    as existing folders, since the training rules live in other rule files), with a saved GeAR
    (``gear_folder``) added through ``evaluate.extra_models``: its two jobs, no epoch analysis."""
    import subprocess
    import sys

    import yaml

    cfg = copy.deepcopy(config)
    cfg["results_dir"] = str(tmp_path / "results")
    cfg["reports_dir"] = str(tmp_path / "reports")
    registry = yaml.safe_load((REPO_ROOT / config["registry"]).read_text(encoding="utf-8"))
    registry["models"]["GeAR_saved"] = {
        "kind": "gear_folder",
        "model": str(gear_folders["epoch_2"]),
        "pooling": "mean",
        "group": "gear",
        "tasks": ["retrieval", "localization", "generation"],
        "citation": "test",
    }
    (tmp_path / "registry.yaml").write_text(yaml.safe_dump(registry), encoding="utf-8")
    cfg["registry"] = str(tmp_path / "registry.yaml")
    cfg["evaluate"]["extra_models"] = ["GeAR_saved"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    rules = REPO_ROOT / "workflow" / "rules"
    (tmp_path / "Snakefile").write_text(
        f'configfile: "{tmp_path / "config.yaml"}"\ninclude: "{rules / "common.smk"}"\ninclude: "{rules / "evaluate.smk"}"\n'
    )
    layout = Layout.from_config(cfg)
    for dataset in cfg["evaluate"]["datasets"]:
        layout.dataset_dir(dataset).mkdir(parents=True)
        layout.corpus(dataset).touch()
        layout.queries(dataset).touch()
    for model in ("GeAR", "GeAR_CL", "SBERT_RT", "BGE_RT"):
        for scenario in ("qar", "rir"):
            layout.final_model(model, scenario).mkdir(parents=True)
            (layout.model_root(model, scenario) / "epochs").mkdir()
    snakemake = Path(sys.executable).with_name("snakemake")
    done = subprocess.run(
        [
            str(snakemake),
            "-n",
            "-q",
            "rules",
            "-s",
            str(tmp_path / "Snakefile"),
            "-d",
            str(tmp_path),
            "-c1",
            "evaluate_all",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    counts = {
        line.split()[0]: int(line.split()[1])
        for line in done.stdout.splitlines()
        if line.strip() and line.split()[-1].isdigit()
    }
    models = [*cfg["evaluate"]["models"], "GeAR_saved"]
    assert {f"evaluate_{m}_{s}" for m in models for s in ("qar", "rir")} <= set(counts)
    assert all(counts[f"evaluate_{m}_{s}"] == 1 for m in models for s in ("qar", "rir"))
    assert counts["epoch_analysis"] == 2


@pytest.mark.slow
def test_squad_baseline_command(tmp_path, squad_dir, capsys):
    """``python -m gear.tools.squad_baseline`` on a six-paragraph SQuAD file: both result files, the summary
    and the Markdown table."""
    from gear.tools.squad_baseline import main

    main(["--squad", str(squad_dir.parent / "dev.json"), "--out", str(tmp_path), "--threads", "1"])
    summary = read_json(tmp_path / "summary.json")
    assert summary["documents"] == ARTICLES * PARAGRAPHS and summary["queries"] > 20
    for task in ("retrieval", "localization"):
        assert (tmp_path / "eval" / "MiniLM" / "squad" / f"{task}.json").is_file()
    assert set(summary["retrieval"]["metrics"]) == {"R@5", "M@5"}
    assert set(summary["localization"]["metrics"]) == {"R@1", "M@1"}
    table = capsys.readouterr().out
    assert "| retrieval | R@5 |" in table and "| localization | M@1 |" in table


def test_a_saved_gear_folder_is_evaluated_as_the_trained_one(
    tmp_path, squad_dir, config, gear_folders, single_thread
):
    """A ``gear_folder`` entry (a GeAR saved elsewhere: squad_check's epochs, a cluster run) gets
    the same job as the trained GeAR: the same files and, for the same weights, the same numbers;
    it has a layer analysis but no epoch analysis, and its folder is the job's input."""
    import dataclasses
    import shutil

    from baselines.registry import load_registry
    from gear.workflow.evaluation_plan import has_epoch_analysis, has_layer_analysis, model_input

    cfg = copy.deepcopy(config)
    cfg["results_dir"], cfg["reports_dir"] = str(tmp_path / "results"), str(tmp_path / "reports")
    cfg["evaluate"]["bootstrap"]["resamples"] = 50
    cfg["evaluate"]["generation"]["max_new_tokens"] = 3
    cfg["evaluate"]["datasets"] = ["squad"]
    cfg["evaluate"]["layer_analysis"] = ["squad"]
    cfg["gear"]["localization"]["layer"] = 2
    layout = Layout.from_config(cfg)
    trained = load_registry(REPO_ROOT / cfg["registry"])["GeAR"]
    shutil.copytree(gear_folders["epoch_2"], layout.final_model("GeAR", "qar"))
    saved = dataclasses.replace(
        trained,
        name="GeAR_saved",
        kind="gear_folder",
        variant=None,
        model=str(gear_folders["epoch_2"].parent / "epoch_{scenario}"),
    )
    (gear_folders["epoch_2"].parent / "epoch_qar").symlink_to(gear_folders["epoch_2"])
    assert model_input(saved, "qar", layout) == gear_folders["epoch_2"].parent / "epoch_qar"
    # rir's folder is missing: no rule input, so that the run's start stops with the planning
    # check's message naming the entry (tests/baselines/test_registry.py) instead of Snakemake's.
    assert model_input(saved, "rir", layout) is None
    assert has_layer_analysis(saved) and not has_epoch_analysis(saved)
    assert job_config(cfg, saved)["gear"] == {"localization": cfg["gear"]["localization"]}
    data = {"squad": (squad_dir / "corpus.jsonl", squad_dir / "queries.jsonl")}
    results = {}
    for entry in (trained, saved):
        outputs = model_job_outputs(entry, cfg, "qar", layout)
        assert {k.split("_", 1)[1] for k in outputs} == {
            "retrieval",
            "run",
            "qrels",
            "localization",
            "generation",
            "layers",
        }
        run_model(entry, job_config(cfg, entry), "qar", data, outputs)
        results[entry.name] = {k: read_json(p) for k, p in outputs.items() if str(p).endswith(".json")}
    for key in ("squad_localization", "squad_generation", "squad_layers"):
        assert results["GeAR_saved"][key]["metrics"] == results["GeAR"][key]["metrics"], key
    assert (
        results["GeAR_saved"]["squad_retrieval"]["metrics"] == results["GeAR"]["squad_retrieval"]["metrics"]
    )
