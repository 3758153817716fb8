"""gear.tools.bench in its CI-sized form: tiny models, small corpora, real code paths; no timing asserts.

What is checked: the analytical FLOP counts equal torch's own count of a real GeAR step; every
benchmark (the train bench times the trainer's own ``train_step``) runs and returns sane, finite
figures; the two search paths agree; the workflow
summary reads Snakemake's log and benchmark files as Snakemake writes them.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from gear.tools.bench.cli import main
from gear.tools.bench.common import PAPER_CORPUS_DOCUMENTS, bench_config
from gear.tools.bench.encode import bench_encode, build_mini_corpora, length_mix, load_corpus_texts
from gear.tools.bench.flops import encoding_flops, gear_step_flops
from gear.tools.bench.search import bench_search
from gear.tools.bench.train import bench_train, random_training_batch
from gear.tools.bench.workflow import (
    find_snakemake_log,
    job_startup_s,
    summarise_workflow,
    workflow_markdown,
)

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: the tiny models here are all small operations, and two OpenMP threads
    spinning on two cores that other processes share make a step 10x slower (0.1 s -> 1.5 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _write_corpus(path, texts):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for i, text in enumerate(texts):
            row = {"doc_id": f"{path.parent.name}-{i}", "title": "t", "text": text, "units": [[0, len(text)]]}
            handle.write(json.dumps(row) + "\n")
    return path


@pytest.fixture()
def corpora(tmp_path):
    """Two normalised corpora: long RIR-like documents and short passages."""
    words = "the river runs past the old mill and into the valley where farmers grow wheat".split()
    long_docs = [" ".join(words[j % len(words)] for j in range(i, i + 220 + 20 * i)) for i in range(4)]
    short_docs = [" ".join(words[j % len(words)] for j in range(i, i + 60)) for i in range(3)]
    return [
        _write_corpus(tmp_path / "data" / "rir" / "corpus.jsonl", long_docs),
        _write_corpus(tmp_path / "data" / "nq" / "corpus.jsonl", short_docs),
    ]


def test_analytical_flops_equal_torch_flop_counter(mini_config):
    """gear_step_flops / encoding_flops count exactly the matrix products torch counts in a real step."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from gear.model.modeling import GearModel
    from gear.training.objectives import GearTrainingModule
    from gear.training.settings import read_sections

    _, train = read_sections(mini_config)
    cfg = bench_config("tiny")
    batch = random_training_batch(cfg, 4, 16, 48, 8, seed=0)
    for lm_loss in (True, False):
        torch.manual_seed(0)
        module = GearTrainingModule(GearModel(cfg), train, lm_loss)
        # The math backend decomposes attention into the matrix products the counter sees.
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            loss, _, _ = module(batch, 0.4)
            loss.backward()
        expected = gear_step_flops(cfg, 4, 16, 48, 8, train.queue_size, lm_loss)
        assert counter.get_total_flops() == expected["total"], lm_loss
    lengths = [10, 33, 48]
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        for length in lengths:
            ids = torch.randint(1000, 5000, (1, length))
            module.model.embed_documents(ids, torch.ones_like(ids))
    assert counter.get_total_flops() == encoding_flops(cfg, lengths)


def test_base_flops_match_the_perf_notes_baseline():
    """At bert-base size the count per example agrees with PERF-NOTES' TFLOP/s / examples/s."""
    cfg = bench_config("base")
    per_example_512 = gear_step_flops(cfg, 64, 32, 512, 32, 57_600)["total"] / 64
    per_example_192 = gear_step_flops(cfg, 128, 32, 192, 32, 57_600)["total"] / 128
    assert per_example_512 == pytest.approx(199e12 / 400, rel=0.02)
    assert per_example_192 == pytest.approx(182e12 / 834, rel=0.02)


def test_train_tiny(paper_config):
    result = bench_train(
        paper_config,
        size="tiny",
        device=CPU,
        dtype="fp32",
        batch=2,
        document_tokens=16,
        steps=2,
        warmup=1,
        peak_tflops=1.0,
    )
    details = result.details
    assert result.unit == "examples/s" and result.value > 0 and result.batch == 2
    assert len(details["step_s"]) == 2 and details["total_s"] > 0
    assert details["examples_per_s"] == pytest.approx(2 * 2 / details["total_s"])
    assert (
        details["flops_per_step"]["total"]
        == gear_step_flops(bench_config("tiny"), 2, 32, 16, 32, 57_600)["total"]
    )
    assert result.mfu == pytest.approx(details["model_tflops_per_s"] / 1.0)
    # A randomly initialised decoder predicts a near-uniform distribution: loss ~ ln(vocabulary).
    assert details["last_losses"]["lm"] == pytest.approx(math.log(30_523), rel=0.1)
    assert math.isfinite(details["last_losses"]["cl"])
    row = result.markdown_row()
    assert row.startswith("| ") and "train GeAR (tiny)" in row and "document 16" in row
    operators = details["operators_per_step"]
    assert operators["step"]["total"] > operators["forward_backward"]["total"] > 100
    assert operators["forward_backward"]["host_syncs"] == 0 and operators["step"]["top"]


def test_train_tiny_in_each_precision_counts_what_bf16_weights_save(paper_config):
    results = {
        dtype: bench_train(
            paper_config, size="tiny", device=CPU, dtype=dtype, batch=2, document_tokens=16, steps=1
        )
        for dtype in ("bf16", "bf16-master")
    }
    assert results["bf16"].dtype == "bf16 autocast"
    assert results["bf16-master"].dtype == "bf16 weights, fp32 masters"
    for result in results.values():
        assert math.isfinite(result.details["last_losses"]["cl"])
        assert result.details["last_losses"]["lm"] == pytest.approx(math.log(30_523), rel=0.1)
    autocast, master = (results[k].details["operators_per_step"]["step"] for k in ("bf16", "bf16-master"))
    assert master["casts"] < autocast["casts"] and master["total"] < autocast["total"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bf16_master_on_cuda_trains_like_autocast_with_fewer_operators(paper_config):
    """On a GPU: the same steps in bf16 autocast and in bf16-master end with close losses, and
    bf16-master launches fewer operators (the case for making it the default)."""
    cuda = torch.device("cuda")
    results = {
        dtype: bench_train(
            paper_config,
            size="tiny",
            device=cuda,
            dtype=dtype,
            batch=8,
            document_tokens=64,
            steps=5,
            warmup=1,
        )
        for dtype in ("bf16", "bf16-master")
    }
    autocast, master = (results[k].details for k in ("bf16", "bf16-master"))
    for loss in ("cl", "lm"):
        assert master["last_losses"][loss] == pytest.approx(autocast["last_losses"][loss], rel=0.02), loss
    counts = {k: r.details["operators_per_step"]["forward_backward"] for k, r in results.items()}
    print({k: (v["total"], v["casts"]) for k, v in counts.items()})
    assert counts["bf16-master"]["casts"] < counts["bf16"]["casts"]
    assert counts["bf16-master"]["host_syncs"] == 0


def test_train_rejects_a_batch_the_queue_cannot_hold(paper_config):
    from gear.config import ConfigError

    with pytest.raises(ConfigError, match="queue_size"):
        bench_train(paper_config, size="tiny", device=CPU, dtype="fp32", batch=7, document_tokens=16, steps=1)


def test_length_mix_follows_the_paper_corpus_sizes(corpora):
    texts = load_corpus_texts(corpora)
    drawn_texts, drawn = length_mix(texts, 200, seed=1)
    assert len(drawn_texts) == 200 and sum(drawn.values()) == 200
    share = 2_315_413 / (2_315_413 + 64_501)
    assert drawn["rir"] == round(200 * share)
    with pytest.raises(ValueError, match="--mix uniform"):
        length_mix({"mine": ["a b"]}, 5, seed=0)
    assert length_mix({"mine": ["a b"]}, 5, seed=0, mix="uniform")[1] == {"mine": 5}


def test_encode_tiny(corpora, minilm_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path))
    texts, drawn = length_mix(load_corpus_texts(corpora), 24, seed=0, mix="uniform")
    end_to_end, model_only = bench_encode(
        texts, tokenizer, size="tiny", device=CPU, batch=8, max_document_tokens=128, mix=drawn
    )
    for result in (end_to_end, model_only):
        assert result.unit == "documents/s" and result.value > 0 and result.mfu is None
        assert result.details["documents"] == 24
    details = end_to_end.details
    assert details["tokens_max"] == 128 and 0 < details["truncated_fraction"] < 1  # the long ones are cut
    assert details["padding_overhead"] >= 0
    assert details["flops_per_document"] > 0


def test_search_backends_agree():
    suite, reference = bench_search(3_000, 40, 32, 10, backends=("suite", "torch"), device=CPU)
    assert suite.value > 0 and reference.value > 0
    assert suite.details["top10_first_query"] == reference.details["top10_first_query"]
    assert suite.details["index_build_s"] >= 0
    assert "3,000 x 32" in suite.lengths


SNAKEMAKE_LOG = """\
Assuming unrestricted shared filesystem usage.

SNAKEMAKE
=========
  Date: 2026-11-25 10:07:52
  Command: /tmp/venv/bin/snakemake --cores all reproduce_all
  Config file(s): ['config/mini.yaml']

Building DAG of jobs...
Provided cores: 2
Select jobs to execute...
Execute 2 jobs...
[Wed Nov 25 10:07:53 2026]
localrule build_qa:
    input: data_prep/mini/squad/mini-dev.json
    output: {R}/data/squad/corpus.jsonl, {R}/data/squad/queries.jsonl
    log: {R}/logs/data/build_squad.log
    jobid: 3
    reason: Missing output files: {R}/data/squad/corpus.jsonl
    wildcards: dataset=squad
    resources: tmpdir=/tmp
Shell command: None
[Wed Nov 25 10:07:53 2026]
localrule build_qa:
    input: data_prep/mini/nq/nq-dev.json
    output: {R}/data/nq/corpus.jsonl
    log: {R}/logs/data/build_nq.log
    jobid: 5
    wildcards: dataset=nq
Shell command: None
[Wed Nov 25 10:07:58 2026]
Finished jobid: 3 (Rule: build_qa)
1 of 4 steps (25%) done
[Wed Nov 25 10:08:00 2026]
Finished jobid: 5 (Rule: build_qa)
2 of 4 steps (50%) done
[Wed Nov 25 10:08:00 2026]
rule train_gear:
    input: {R}/data/train/qar.jsonl
    output: {R}/models/GeAR/qar/model
    log: {R}/logs/gear/GeAR_qar.log
    jobid: 9
    threads: 2
Shell command: None
[Wed Nov 25 10:09:03 2026]
Finished jobid: 9 (Rule: train_gear)
3 of 4 steps (75%) done
[Wed Nov 25 10:09:03 2026]
rule train_gear:
    output: {R}/models/GeAR_CL/qar/model
    log: {R}/logs/gear/GeAR_CL_qar.log
    jobid: 10
[Wed Nov 25 10:09:40 2026]
Error in rule train_gear:
    message: None
    jobid: 10
    output: {R}/models/GeAR_CL/qar/model
    log: {R}/logs/gear/GeAR_CL_qar.log (check log file(s) for error details)
Elapsed time: 0:01:48.000000
"""


def test_workflow_summary_from_the_snakemake_log_then_benchmark_files(tmp_path):
    results = tmp_path / "results" / "mini"
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    (log_dir / "2026-11-25T100752.695987.snakemake.log").write_text(SNAKEMAKE_LOG.format(R=results))
    # An older log of another results folder, and a newer one with no finished job: both passed over.
    (log_dir / "2026-11-24T090000.000000.snakemake.log").write_text(SNAKEMAKE_LOG.format(R="elsewhere"))
    (log_dir / "2026-11-26T090000.000000.snakemake.log").write_text(f"Building DAG of jobs...\n{results}/x\n")
    assert find_snakemake_log(log_dir, results).name.startswith("2026-11-25")

    summary = summarise_workflow(results, log_dir)
    assert summary["source"].startswith("Snakemake log")
    assert summary["rules"]["build_qa"] == {
        "jobs": 2,
        "wall_s": 12.0,
        "max_job_s": 7.0,
        "max_rss_mb": None,
        "stage": "data",
        "startup_s": 0.0,  # these logs do not exist: start-up not measured
        "startup_jobs": 0,
    }
    assert summary["rules"]["train_gear"]["jobs"] == 2 and summary["rules"]["train_gear"]["wall_s"] == 100.0
    assert summary["stages"]["gear"]["wall_s"] == 100.0
    assert summary["run"]["failed_jobs"] == 1 and summary["run"]["elapsed_s"] == 108.0
    assert summary["run"]["cores"] == 2 and "reproduce_all" in summary["run"]["command"]
    assert "not measured" in summary["memory_note"]

    # Snakemake's benchmark: files, as BenchmarkRecord writes them (NA when too short to sample).
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    # Laid out as gear.layout.Layout.benchmark: {stage}/{job}.tsv, the job named as its log.
    for stage, job, seconds, rss in (
        ("data", "build_squad", "4.9012", "812.33"),
        ("data", "build_nq", "0.3000", "NA"),
        ("gear", "GeAR_qar", "62.5000", "3260.10"),
        ("data", "build_paq", "1.0000", "300.00"),  # a job the log does not show
    ):
        path = results / "benchmarks" / stage / f"{job}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + f"{seconds}\t0:00:04\t{rss}\t1\t1\t1\t0\t0\t50\t4.0\n")
    # One job's log as a real script writes it: its first line is the process's start-up.
    job_log = results / "logs" / "gear" / "GeAR_qar.log"
    subprocess.run(
        [sys.executable, "-c", f"from gear.logs import setup_logging; setup_logging({str(job_log)!r})"],
        check=True,
    )
    startup = job_startup_s(job_log)
    assert startup is not None and 0.0 < startup < 60.0
    summary = summarise_workflow(results, log_dir)
    assert summary["source"].startswith("benchmark files")
    assert summary["stages"]["gear"]["startup_s"] == pytest.approx(startup)
    assert summary["stages"]["gear"]["startup_jobs"] == 1 and summary["stages"]["data"]["startup_jobs"] == 0
    assert summary["rules"]["build_qa"]["jobs"] == 2
    assert summary["rules"]["build_qa"]["wall_s"] == pytest.approx(5.2012)
    assert summary["rules"]["build_qa"]["max_rss_mb"] == pytest.approx(812.33)
    assert summary["rules"]["train_gear"]["stage"] == "gear"
    assert summary["rules"]["data/build_paq"]["stage"] == "data"
    assert summary["stages"]["data"]["jobs"] == 3 and summary["stages"]["gear"]["jobs"] == 1
    assert summary["peak_job_rss_mb"] == pytest.approx(3260.10)
    table = workflow_markdown(summary)
    assert "| train_gear | gear | 1 | 62 | " in table
    assert f"| {startup:.0f} | {62.5 - startup:.0f} |" in table

    # A later run that redrew one table: the newest log, yet the other jobs keep their rules.
    redraw = f"""Building DAG of jobs...
[Wed Nov 25 11:00:00 2026]
localrule table_1:
    log: {results}/logs/reports/table_1.log
    jobid: 1
[Wed Nov 25 11:00:01 2026]
Finished jobid: 1 (Rule: table_1)
1 of 1 steps (100%) done
"""
    (log_dir / "2026-11-25T110000.000000.snakemake.log").write_text(redraw)
    path = results / "benchmarks" / "reports" / "table_1.tsv"
    path.parent.mkdir(parents=True)
    path.write_text(header + "0.5\t0:00:00\t80\t1\t1\t1\t0\t0\t50\t0.4\n")
    summary = summarise_workflow(results, log_dir)
    assert summary["rules"]["table_1"]["stage"] == "reports"
    assert summary["rules"]["build_qa"]["jobs"] == 2 and summary["rules"]["train_gear"]["jobs"] == 1

    (results / "benchmarks" / "broken").mkdir()
    (results / "benchmarks" / "broken" / "x.tsv").write_text("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match=r"x\.tsv:1"):
        summarise_workflow(results, log_dir)


def test_a_one_core_run_log_parses(tmp_path):
    """Snakemake words a one-core run's cores line differently ("1 (use --cores to define
    parallelism)"); any log in the folder is parsed while looking for the run's own."""
    from gear.tools.bench.workflow import parse_snakemake_log

    log = tmp_path / "one.snakemake.log"
    log.write_text(
        SNAKEMAKE_LOG.format(R="results").replace(
            "Provided cores: 2", "Provided cores: 1 (use --cores to define parallelism)"
        )
    )
    jobs, meta = parse_snakemake_log(log)
    assert meta["cores"] == 1 and {job.rule for job in jobs} >= {"build_qa", "train_gear"}


def test_workflow_summary_without_any_record(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the workflow first"):
        summarise_workflow(tmp_path / "results", tmp_path / "no-logs")


def test_command_line_all_tiny(tmp_path, corpora, capsys):
    out = tmp_path / "bench.json"
    argv = ["all", "--size", "tiny", "--threads", "1", "--doc-tokens", "32", "--steps", "1", "--warmup", "0"]
    argv += ["--documents", "12", "--corpus", *map(str, corpora), "--corpus-size", "2000", "--queries", "20"]
    argv += ["--results", str(tmp_path / "results"), "--log-dir", str(tmp_path / "none"), "--json", str(out)]
    results = main(argv)
    printed = capsys.readouterr().out
    assert [r.unit for r in results] == ["examples/s", "documents/s", "documents/s", "queries/s"]
    assert "workflow: not measured" in printed
    assert printed.count("`python -m gear.tools.bench all --size tiny") == 4
    data = json.loads(out.read_text())
    assert data["command"].startswith("python -m gear.tools.bench all")
    assert data["environment"]["device"].startswith("CPU")
    assert len(data["results"]) == 4 and all(r["date"] and r["value"] > 0 for r in data["results"])
    assert np.isfinite([r["value"] for r in data["results"]]).all()


def test_mini_corpora_are_built_from_the_shipped_data(tmp_path):
    """Without a run's corpora, encode builds all five from data_prep/mini with the suite's builders."""
    corpora = load_corpus_texts(build_mini_corpora(tmp_path))
    assert sorted(corpora) == sorted(PAPER_CORPUS_DOCUMENTS)
    assert all(corpora.values())
    # RIR documents are long (200-500 tokens), passages short: the mix has both.
    mean_words = {name: np.mean([len(t.split()) for t in texts]) for name, texts in corpora.items()}
    assert mean_words["rir"] > 1.5 * mean_words["nq"]


def test_run_measures_the_whole_process_tree(tmp_path, capsys):
    """Two children holding ~60 MB each at once: the tree's peak is their sum, not the largest."""
    import sys

    hold = "import time; b = bytearray(60 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(1.5)"
    script = (
        "import subprocess, sys; "
        f"ps = [subprocess.Popen([sys.executable, '-c', {hold!r}]) for _ in range(2)]; [p.wait() for p in ps]"
    )
    out = tmp_path / "run.json"
    main(["run", "--interval", "0.05", "--json", str(out), "--", sys.executable, "-c", script])
    measured = json.loads(out.read_text())
    assert measured["returncode"] == 0 and measured["samples"] > 5
    assert measured["peak_process_rss_mb"] >= 60
    # Both children at once: the sum exceeds the largest process by about a whole other child.
    assert measured["peak_tree_rss_mb"] >= 120
    assert measured["peak_tree_rss_mb"] >= measured["peak_process_rss_mb"] + 55
    assert measured["peak_processes"] == 3
    assert "peak memory of the process tree" in capsys.readouterr().out

    with pytest.raises(SystemExit) as failed:
        main(["run", "--", sys.executable, "-c", "raise SystemExit(3)"])
    assert failed.value.code == 3
    with pytest.raises(SystemExit, match="no command given"):
        main(["run"])
