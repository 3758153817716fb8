"""Point 4: the same config and seed give identical results on a rerun (CPU).

- :func:`test_building_a_test_set_twice_gives_identical_files`: ``build_squad`` twice, same bytes.
- :func:`test_evaluation_twice_gives_identical_metrics`: retrieval (MiniLM, through the
  embedding cache cold, warm, and searched shard by shard under a tiny RAM budget) and
  localization, each run twice: the same metrics, intervals, per-query values and run files.
- :func:`test_training_twice_gives_identical_weights_and_metrics`: GeAR trained twice from the same
  seed: the same weights bit for bit, the same per-step losses and the same retrieval metrics; a
  different seed gives different weights (so the comparison can fail).
- :func:`test_gpu_nondeterminism_is_measured` (``gpu`` marker, skipped without CUDA): trains and
  evaluates twice on the GPU (bf16 autocast, the config's ``train.precision``) and reports the size
  of the differences. Run it on a GPU machine with
  ``pytest tests/reliability/test_determinism.py -m gpu -s``; it prints one JSON line of numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.reliability.conftest import tiny_train_config, write_eval_set, write_triples


def comparable(result: dict) -> dict:
    """A result JSON without what legitimately changes between runs (wall time, timestamps)."""
    return {k: v for k, v in result.items() if k != "provenance"}


def weight_bytes(model_dir: Path) -> dict[str, bytes]:
    from safetensors.torch import load_file

    return {
        name: t.contiguous().view(-1).view(torch.uint8).numpy().tobytes()
        for name, t in sorted(load_file(model_dir / "model.safetensors").items())
    }


@pytest.fixture()
def settings(mini_config):
    from gear.evaluation.settings import EvaluateSettings

    return EvaluateSettings.from_config(mini_config["evaluate"])


@pytest.fixture()
def cpu_only(monkeypatch):
    """Training and inference on the CPU even where a GPU exists: the bitwise claim is the CPU's."""
    import gear.training.trainer

    monkeypatch.setattr(gear.training.trainer, "select_device", lambda: torch.device("cpu"))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_building_a_test_set_twice_gives_identical_files(tmp_path, mini_config):
    from data_prep.squad import build_squad
    from tests.gear.conftest import PASSAGES

    source = {
        "version": "1.1",
        "data": [
            {
                "title": title,
                "paragraphs": [
                    {
                        "context": text,
                        "qas": [
                            {"id": f"{i}-{j}", "question": q, "answers": [{"text": a, "answer_start": 0}]}
                            for j, (q, a) in enumerate(qas)
                        ],
                    }
                ],
            }
            for i, (title, text, qas) in enumerate(PASSAGES)
        ],
    }
    (tmp_path / "dev.json").write_text(json.dumps(source))
    for run in ("a", "b"):
        build_squad(tmp_path / "dev.json", tmp_path / run, mini_config["data"])
    for name in ("corpus.jsonl", "queries.jsonl", "stats.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


@pytest.mark.slow
def test_evaluation_twice_gives_identical_metrics(tmp_path, mini_config, settings):
    from baselines.registry import build_encoder, load_registry
    from gear.config import REPO_ROOT
    from gear.evaluation.dataset import EvalDataset
    from gear.evaluation.localization import BiEncoderUnitScorer, evaluate_localization
    from gear.evaluation.retrieval import evaluate_retrieval
    from gear.evaluation.search import SearchSettings
    from gear.layout import Layout

    corpus, queries = write_eval_set(tmp_path / "set")
    data = EvalDataset.load("squad", corpus, queries)
    mini_config["results_dir"] = str(tmp_path / "results")
    entry = load_registry(REPO_ROOT / "config" / "baselines.yaml")["MiniLM"]
    layout = Layout.from_config(mini_config)

    def retrieval(encoder, name: str, **options) -> dict:
        result = evaluate_retrieval(
            encoder,
            data,
            settings,
            out_json=tmp_path / f"{name}.json",
            run_file=tmp_path / f"{name}.tsv",
            **options,
        )
        return comparable(result)

    # two fresh loads of the model, as two runs would have; each evaluates several ways
    encoders = [build_encoder(entry, mini_config, "qar", layout, device="cpu") for _ in range(2)]
    cache = tmp_path / "cache"
    in_memory = [retrieval(encoder, f"memory{i}") for i, encoder in enumerate(encoders)]
    cold = retrieval(encoders[0], "cold", cache_root=cache)
    warm = retrieval(encoders[1], "warm", cache_root=cache)
    sharded = retrieval(
        encoders[1],
        "sharded",
        cache_root=tmp_path / "cache3",
        search_settings=SearchSettings(shard_size=3, ram_budget_bytes=1),
    )
    assert in_memory[0] == in_memory[1]
    assert cold == warm == sharded  # cached vectors are float16: compared among themselves
    assert 0.5 < cold["metrics"]["R@5"] <= 1.0
    read = lambda name: (tmp_path / f"{name}.tsv").read_text()  # noqa: E731
    assert read("memory0") == read("memory1") and read("cold") == read("warm")
    # One index or one per shard: the same ranking; BLAS sums the inner products of differently
    # shaped blocks in another order, so a score may differ in its last float32 digit.
    cold_rows, sharded_rows = (
        [line.split() for line in read(name).splitlines()] for name in ("cold", "sharded")
    )
    assert [r[:4] for r in cold_rows] == [r[:4] for r in sharded_rows]
    assert max(abs(float(a[4]) - float(b[4])) for a, b in zip(cold_rows, sharded_rows, strict=True)) < 1e-5

    localization = []
    for run in range(2):
        scorer = BiEncoderUnitScorer(encoders[run])
        localization.append(
            comparable(evaluate_localization(scorer, data, settings, out_json=tmp_path / f"l{run}.json"))
        )
    assert localization[0] == localization[1]


@pytest.mark.slow
def test_training_twice_gives_identical_weights_and_metrics(
    tmp_path, mini_config, tiny_bert_path, settings, cpu_only
):
    from gear.evaluation.dataset import EvalDataset
    from gear.evaluation.retrieval import evaluate_retrieval
    from gear.inference import GearEncoder
    from gear.training.trainer import train_gear

    triples = write_triples(tmp_path / "triples.jsonl")
    corpus, queries = write_eval_set(tmp_path / "set")
    data = EvalDataset.load("squad", corpus, queries)
    cfg = tiny_train_config(mini_config, tiny_bert_path, epochs=1)
    models, results = [], []
    for run, seed in enumerate([cfg["seed"], cfg["seed"], cfg["seed"] + 1]):
        model = train_gear(triples, tmp_path / f"run{run}", {**cfg, "seed": seed}, "GeAR", "qar")
        models.append(model)
        encoder = GearEncoder(model, device="cpu")
        results.append(
            comparable(evaluate_retrieval(encoder, data, settings, out_json=tmp_path / f"r{run}.json"))
        )
    assert weight_bytes(models[0]) == weight_bytes(models[1])
    log = [(m / "train_log.jsonl").read_text() for m in models]
    assert log[0] == log[1]
    assert results[0] == results[1]
    other = weight_bytes(models[2])
    assert sum(other[name] != value for name, value in weight_bytes(models[0]).items()) > 10


# --------------------------------------------------------------------------------------------
# GPU: nondeterminism measured, not assumed


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_nondeterminism_is_measured(tmp_path, mini_config, minilm_path, settings):
    """Two identical GPU runs: MiniLM-initialised GeAR, 24 steps of batch 8, bf16 autocast."""
    from safetensors.torch import load_file

    from gear.evaluation.dataset import EvalDataset
    from gear.evaluation.retrieval import evaluate_retrieval
    from gear.inference import GearEncoder
    from gear.training.trainer import train_gear
    from tests.gear.conftest import PASSAGES

    triples = write_triples(tmp_path / "triples.jsonl", PASSAGES * 4)  # 96 triples
    corpus, queries = write_eval_set(tmp_path / "set")
    data = EvalDataset.load("squad", corpus, queries)
    cfg = tiny_train_config(mini_config, minilm_path, epochs=2, queue_size=16)
    cfg["gear"]["max_document_tokens"] = 128
    cfg["train"]["scenarios"]["qar"]["batch_size"] = 8
    runs = []
    for run in range(2):
        model = train_gear(triples, tmp_path / f"run{run}", cfg, "GeAR", "qar")
        result = evaluate_retrieval(
            GearEncoder(model, device="cuda"), data, settings, out_json=tmp_path / f"{run}.json"
        )
        runs.append((load_file(model / "model.safetensors"), result))
    (a, result_a), (b, result_b) = runs
    differing = [name for name in a if not torch.equal(a[name], b[name])]
    largest = max(((a[n].float() - b[n].float()).abs().max().item() for n in a), default=0.0)
    scale = max(a[n].float().abs().max().item() for n in a)
    metric_diff = {k: abs(result_a["metrics"][k] - result_b["metrics"][k]) for k in result_a["metrics"]}
    per_query = sum(
        x != y for x, y in zip(result_a["per_query"]["M@5"], result_b["per_query"]["M@5"], strict=True)
    )
    report = {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "tensors": len(a),
        "tensors_differing": len(differing),
        "max_abs_weight_difference": largest,
        "largest_weight": scale,
        "metric_difference": metric_diff,
        "queries_with_a_different_M@5": per_query,
        "queries": len(result_a["per_query"]["M@5"]),
    }
    print(json.dumps(report))
    # Loose bounds: nondeterministic reductions may move weights and flip near-tied ranks, but two
    # runs of one config must not disagree on what the model is.
    assert largest < 1e-2 * scale
    assert all(diff <= 0.1 for diff in metric_diff.values()), report
