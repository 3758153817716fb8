"""The public API of a trained GeAR (gear.load, TrainedGear) and the ``gear predict`` command,
end to end on a tiny GeAR trained by ``train_gear`` (fixture ``trained_tiny_gear``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

import gear
from data_prep.normalized import SentenceSplitter
from gear.inference import LocalizationConfig, TrainedGear, generate, load_gear, unit_scores
from gear.inference.cli import main, read_documents
from gear.io import DataFormatError
from tests.gear.conftest import PASSAGES

pytestmark = pytest.mark.usefixtures("one_thread")
REPO_ROOT = Path(__file__).resolve().parents[2]

DOCUMENTS = {f"doc-{title}": text for title, text, _ in PASSAGES}
QUERIES = ["In what country is Normandy located?", "When was Nikola Tesla born?"]


@pytest.fixture(scope="module")
def trained(trained_tiny_gear) -> TrainedGear:
    return gear.load(trained_tiny_gear, device="cpu")


def test_gear_load_is_lazy_and_reads_the_recorded_localization(trained, trained_tiny_gear):
    code = "import sys, gear; assert 'torch' not in sys.modules and 'load' in dir(gear)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO_ROOT)
    recorded = json.loads((trained_tiny_gear / "gear_config.json").read_text())["localization"]
    assert trained.localization == LocalizationConfig(**recorded) and trained.localization.layer == 2


def test_retrieve_ranks_by_the_encoders_cosine(trained):
    ranked = trained.retrieve(QUERIES, DOCUMENTS, k=3)
    q = trained.encoder.encode_queries(QUERIES)
    d = trained.encoder.encode_documents(list(DOCUMENTS.values()))
    ids = list(DOCUMENTS)
    for row, hits in zip(q @ d.T, ranked, strict=True):
        assert [h.rank for h in hits] == [1, 2, 3]
        assert [h.doc_id for h in hits] == [ids[i] for i in np.argsort(-row, kind="stable")[:3]]
        np.testing.assert_allclose([h.score for h in hits], np.sort(row)[::-1][:3], rtol=1e-6)
        assert all(h.text == DOCUMENTS[h.doc_id] for h in hits)
    single = trained.retrieve(QUERIES[0], list(DOCUMENTS.values()), k=100)
    assert len(single) == len(DOCUMENTS) and single[0].doc_id.isdigit()
    assert [h.doc_id for h in single[:3]] == [str(ids.index(h.doc_id)) for h in ranked[0]]


def test_localize_equals_the_evaluation_path(trained, trained_tiny_gear):
    query, document = QUERIES[1], DOCUMENTS["doc-Nikola Tesla"]
    found = trained.localize(query, document)
    spans = SentenceSplitter().split(document)
    assert [(u.start, u.end) for u in found.units] == spans and len(spans) == 2
    assert [u.text for u in found.units] == [document[s:e] for s, e in spans]
    model, tokenizer = load_gear(trained_tiny_gear, device="cpu")
    expected = unit_scores(model, tokenizer, [query], [document], [spans], [2], trained.localization)[2][0]
    np.testing.assert_allclose([u.score for u in found.units], expected, rtol=1e-5)
    assert found.best_unit.score == max(expected) and sorted(u.rank for u in found.units) == [1, 2]
    weights = [t.weight for t in found.top_tokens(5)]
    assert weights == sorted(weights, reverse=True) and len(found.tokens) > 20
    assert all(document[t.start : t.end].lower().startswith(t.token.strip("#")[:1]) for t in found.tokens)
    assert json.dumps(found.to_dict())


def test_generate_equals_gear_inference_generate(trained, trained_tiny_gear):
    document = DOCUMENTS["doc-Normans"]
    model, tokenizer = load_gear(trained_tiny_gear, device="cpu")
    expected = generate(model, tokenizer, [QUERIES[0]], [document], model.config.max_target_tokens - 1)
    assert trained.generate(QUERIES[0], document) == expected[0]
    assert trained.generate([QUERIES[0]], [document], max_new_tokens=2) == generate(
        model, tokenizer, [QUERIES[0]], [document], 2
    )


def test_a_folder_without_recorded_localization_needs_it_passed(tiny_gear_path):
    with pytest.raises(FileNotFoundError, match=r"gear_config\.json.*localization="):
        gear.load(tiny_gear_path, device="cpu")
    assert gear.load(tiny_gear_path, "cpu", LocalizationConfig(layer=1)).localization.layer == 1


# -- the command ----------------------------------------------------------------------------------
def _write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_predict_command_jsonl_and_table(tmp_path, trained, trained_tiny_gear, capsys):
    docs = _write_jsonl(tmp_path / "docs.jsonl", [{"id": k, "text": v} for k, v in DOCUMENTS.items()])
    queries = tmp_path / "queries.txt"
    queries.write_text(QUERIES[1] + "\n", encoding="utf-8")
    argv = ["predict", "--model", str(trained_tiny_gear), "--documents", str(docs), "--device", "cpu"]
    assert main([*argv, "--query", QUERIES[0], "--queries", str(queries), "--k", "2"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["query"] for r in records] == QUERIES
    for record, hits in zip(records, trained.retrieve(QUERIES, DOCUMENTS, k=2), strict=True):
        assert [r["doc_id"] for r in record["results"]] == [h.doc_id for h in hits]
        for result, hit in zip(record["results"], hits, strict=True):
            found = trained.localize(record["query"], hit.text)
            assert [u["text"] for u in result["units"]] == [u.text for u in found.ranked_units]
            assert [t["token"] for t in result["highlighted"]] == [t.token for t in found.top_tokens(10)]
            assert result["generation"] == trained.generate(record["query"], hit.text)
            assert result["layer"] == 2
    txt = tmp_path / "docs.txt"
    txt.write_text("\n".join(DOCUMENTS.values()) + "\n", encoding="utf-8")
    table = [*argv[:3], "--documents", str(txt), "--query", QUERIES[0], "--format", "table", "--no-generate"]
    assert main([*table, "--k", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"query 1: {QUERIES[0]}\n") and "best unit" in out and "generated" not in out


def test_predict_command_errors_name_the_file_and_line(tmp_path, trained_tiny_gear, capsys):
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"id": "a", "text": "Fine."}\n{"id": "b", "body": "no text"}\n', encoding="utf-8")
    argv = ["predict", "--model", str(trained_tiny_gear), "--documents", str(docs), "--query", "q"]
    assert main(argv) == 2
    assert f"{docs}:2: field 'text'" in capsys.readouterr().err
    docs.write_text('{"id": "a", "text": "Fine."}\n{"id": "a", "text": "Again."}\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"docs.jsonl:2: duplicate document id 'a'"):
        read_documents(docs)
    docs.write_text('{"id": "a", "text": "Fine."}\n', encoding="utf-8")
    assert main(["predict", "--model", str(tmp_path), "--documents", str(docs), "--query", "q"]) == 2
    assert f"{tmp_path}/config.json: missing" in capsys.readouterr().err


class _RecordingHub:
    """Stands in for ``huggingface_hub.HfApi`` (no hub is reachable here): keeps what
    ``GearModel.push_to_hub`` creates and uploads, so the test can lay it out as a download."""

    uploads: ClassVar[list[tuple[str, Path]]] = []
    remote: Path

    def create_repo(self, repo_id, private=None, exist_ok=False):
        assert exist_ok
        return repo_id

    def upload_folder(self, repo_id, folder_path, commit_message):
        import shutil

        shutil.copytree(folder_path, _RecordingHub.remote, dirs_exist_ok=True)
        _RecordingHub.uploads.append((repo_id, Path(folder_path)))
        return f"https://huggingface.co/{repo_id}/commit/0"


def _as_hub_cache(cache: Path, repo_id: str, files: Path, commit: str = "a" * 40) -> None:
    """``files`` laid out as huggingface_hub's cache holds a downloaded repository at ``main``."""
    import shutil

    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(files, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)


def test_push_to_hub_then_load_by_hub_id(tmp_path, monkeypatch, trained, trained_tiny_gear):
    """The usual hub round trip: ``TrainedGear.push_to_hub`` uploads the trained folder (what
    ``from_pretrained`` and ``gear.load`` read, the card, the sentence-transformers export), and a hub id loads from the Hugging Face cache (offline here) through
    ``GearModel.from_pretrained``, ``gear.load`` and ``gear predict --model ID``, giving the
    same retrieval as the folder; an id neither cached nor downloadable fails clearly."""
    import huggingface_hub

    from gear.model.modeling import GearModel

    _RecordingHub.remote, _RecordingHub.uploads = tmp_path / "remote", []
    monkeypatch.setattr(huggingface_hub, "HfApi", _RecordingHub)
    url = trained.push_to_hub("me/tiny-gear")
    assert url.endswith("/commit/0") and _RecordingHub.uploads == [("me/tiny-gear", trained_tiny_gear)]
    uploaded = {p.name for p in _RecordingHub.remote.iterdir()}
    wanted = {
        "config.json",
        "gear_config.json",
        "model.safetensors",
        "README.md",
        "tokenizer.json",
        "modules.json",
    }
    assert wanted <= uploaded
    # The bare model publishes what GearModel.from_pretrained reads, through a staging folder.
    _RecordingHub.remote, _RecordingHub.uploads = tmp_path / "bare", []
    trained.model.push_to_hub("me/bare-gear", tokenizer=trained.tokenizer)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in (tmp_path / "bare").iterdir()
    }
    assert not _RecordingHub.uploads[0][1].exists()  # the staging folder is gone

    cache = tmp_path / "hf-cache"
    _as_hub_cache(cache, "me/tiny-gear", tmp_path / "remote")
    code = (
        "import json, sys, gear\n"
        "from gear.model.modeling import GearModel\n"
        "model = GearModel.from_pretrained('me/tiny-gear')\n"
        "hits = gear.load('me/tiny-gear', device='cpu').retrieve(sys.argv[1:2], json.loads(sys.argv[2]), k=3)\n"
        "print(json.dumps([h.doc_id for h in hits[0]]))\n"
    )
    env = {
        **os.environ,
        "HF_HUB_CACHE": str(cache),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", code, QUERIES[0], json.dumps(DOCUMENTS)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout) == [h.doc_id for h in trained.retrieve(QUERIES[:1], DOCUMENTS, k=3)[0]]
    assert (
        GearModel.from_pretrained(trained_tiny_gear).state_dict().keys() == trained.model.state_dict().keys()
    )

    docs = _write_jsonl(tmp_path / "docs.jsonl", [{"id": k, "text": v} for k, v in DOCUMENTS.items()])
    predict = [sys.executable, "-m", "gear", "predict", "--documents", str(docs), "--query", QUERIES[0]]
    done = subprocess.run(
        [*predict, "--model", "me/tiny-gear", "--no-generate", "--k", "1"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    best = trained.retrieve(QUERIES[:1], DOCUMENTS, k=1)[0][0].doc_id
    assert [r["doc_id"] for r in json.loads(done.stdout)["results"]] == [best]
    missing = subprocess.run(
        [*predict, "--model", "me/not-published"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert missing.returncode == 2
    assert "'me/not-published' is not available offline" in missing.stderr
    assert "huggingface-cli download me/not-published" in missing.stderr
