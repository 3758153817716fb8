"""``python -m gear.tools.bench``: the command line of every bench (the package docstring says what each measures)."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from gear.config import load_config
from gear.hub import default_device, resolve_model
from gear.io import write_json
from gear.tools.bench.common import (
    DEFAULT_CONFIG,
    H100_BF16_PEAK_TFLOPS,
    MARKDOWN_HEADER,
    PAPER_CORPUS_DOCUMENTS,
    PRECISION_LABELS,
    SIZES,
    TOKENIZER_ID,
    BenchResult,
    bench_config,
    device_name,
    environment,
    measure_matmul_peak,
    now_iso,
    release_memory,
)
from gear.tools.bench.encode import bench_encode, build_mini_corpora, length_mix, load_corpus_texts
from gear.tools.bench.gpucheck import add_parser as add_gpu_check
from gear.tools.bench.gpucheck import prepare_carry, run_gpu_check
from gear.tools.bench.search import bench_search
from gear.tools.bench.train import bench_train
from gear.tools.bench.workflow import summarise_workflow, workflow_markdown
from gear.tools.treemem import run_sampled

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
def default_train_batch(size: str, device: torch.device, document_tokens: int) -> int:
    """The targets' batches on a GPU (128 at <= 256 tokens, 64 above); 4 on a CPU at base size."""
    if size == "base" and device.type == "cuda":
        return 128 if document_tokens <= 256 else 64
    return 4


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--size",
        choices=sorted(SIZES),
        default="base",
        help="base (bert-base), mini (all-MiniLM-L6-v2, the mini run) or tiny (CI)",
    )
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda when available)")
    parser.add_argument(
        "--dtype",
        choices=sorted(PRECISION_LABELS),
        default=None,
        help="training precision, train.precision's values (default bf16 on CUDA, fp32 on CPU)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch and FAISS CPU threads (default 2)")
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help="run config: train, gear, evaluate"
    )
    parser.add_argument(
        "--peak-tflops",
        default=None,
        help=f"peak for MFU: a number, or 'measure' (default {H100_BF16_PEAK_TFLOPS:g} for CUDA bf16, none otherwise)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write all results here (JSON)")


def _add_train(parser: argparse.ArgumentParser, batch_flag: Sequence[str] = ("--batch",)) -> None:
    parser.add_argument(*batch_flag, dest="batch", type=int, default=None, help="training batch")
    parser.add_argument(
        "--doc-tokens",
        type=int,
        nargs="+",
        default=[192, 512],
        help="document lengths (QAR-like 192, RIR-like 512)",
    )
    parser.add_argument("--query-tokens", type=int, default=32)
    parser.add_argument("--target-tokens", type=int, default=32)
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 20 on CUDA, 3 on CPU)")
    parser.add_argument(
        "--warmup", type=int, default=None, help="untimed steps (default 5 on CUDA, 1 on CPU)"
    )
    parser.add_argument("--variant", default="GeAR", help="a train.variants key: GeAR or GeAR_CL")
    parser.add_argument("--compile", action="store_true", help="torch.compile the stacks (train.compile)")


def _add_encode(parser: argparse.ArgumentParser, batch_flags: Sequence[str] = ("--encode-batch",)) -> None:
    parser.add_argument(
        *batch_flags,
        dest="encode_batch",
        type=int,
        default=None,
        help="documents per batch (default evaluate.batch_size)",
    )
    parser.add_argument(
        "--documents",
        type=int,
        default=None,
        help="documents to encode (default 50,000 on CUDA, 128 on CPU, 64 tiny)",
    )
    parser.add_argument("--corpus", type=Path, nargs="+", default=None, help="normalised corpus.jsonl files")
    parser.add_argument(
        "--results",
        type=Path,
        default=Path("results/mini"),
        help="run folder whose data/*/corpus.jsonl to use",
    )
    parser.add_argument("--mix", choices=["paper", "uniform"], default="paper", help="weights of the corpora")
    parser.add_argument("--tokenizer", default=TOKENIZER_ID, help="a BERT tokenizer (hub id or folder)")


def _add_search(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--corpus-size", type=int, default=None, help="vectors (default 2,315,413; tiny 20,000)"
    )
    parser.add_argument("--queries", type=int, default=None, help="queries (default 20,000; tiny 200)")
    parser.add_argument("--dim", type=int, default=None, help="vector size (default the model's hidden size)")
    parser.add_argument(
        "--depth", type=int, default=None, help="results per query (default evaluate.retrieval.depth)"
    )
    parser.add_argument(
        "--backend",
        choices=["suite", "torch", "both"],
        default=None,
        help="suite (gear.evaluation.search), torch (the PERF-NOTES reference) or both; default: both on CUDA, suite on CPU",
    )
    parser.add_argument(
        "--suite-backend",
        choices=["auto", "faiss", "torch"],
        default="auto",
        help="gear.evaluation.search's backend for the suite row (default auto: what the workflow runs)",
    )
    parser.add_argument("--query-batch", type=int, default=None, help="queries per search call")


def _add_workflow(parser: argparse.ArgumentParser, with_results: bool = True) -> None:
    if with_results:
        parser.add_argument(
            "--results", type=Path, default=Path("results/mini"), help="the run's results folder"
        )
    parser.add_argument("--log-dir", type=Path, default=Path(".snakemake/log"), help="Snakemake's log folder")
    parser.add_argument("--snakemake-log", type=Path, default=None, help="a particular Snakemake log")
    parser.add_argument(
        "--benchmarks", type=Path, default=None, help="benchmark files root (default RESULTS/benchmarks)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gear.tools.bench", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="GeAR training examples/s and MFU")
    _add_common(train)
    _add_train(train)
    encode = commands.add_parser("encode", help="documents/s of the document encoder")
    _add_common(encode)
    _add_encode(encode, ("--batch", "--encode-batch"))
    search = commands.add_parser("search", help="queries/s of exact search")
    _add_common(search)
    _add_search(search)
    workflow = commands.add_parser("workflow", help="wall time and memory per rule/stage of a Snakemake run")
    _add_common(workflow)
    _add_workflow(workflow)
    run = commands.add_parser(
        "run", help="wall time and peak memory of a command's whole process tree (gear.tools.treemem)"
    )
    run.add_argument("--interval", type=float, default=0.2, help="seconds between memory samples")
    run.add_argument("--json", type=Path, default=None, help="write the measurement here")
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    every = commands.add_parser("all", help="train, encode, search, and workflow when a run exists")
    _add_common(every)
    _add_train(every)
    _add_encode(every)
    _add_search(every)
    _add_workflow(every, with_results=False)
    add_gpu_check(commands)
    return parser


def _peak(args: argparse.Namespace, device: torch.device, dtype: str) -> float | None:
    if args.peak_tflops is None:
        return H100_BF16_PEAK_TFLOPS if device.type == "cuda" and dtype.startswith("bf16") else None
    if args.peak_tflops == "measure":
        peak = measure_matmul_peak(
            device,
            torch.bfloat16 if dtype.startswith("bf16") else torch.float32,
            size=8192 if device.type == "cuda" else 2048,
        )
        print(f"measured {dtype} matrix peak on {device_name(device)}: {peak:.1f} TFLOP/s", flush=True)
        return peak
    try:
        return float(args.peak_tflops)
    except ValueError:
        raise SystemExit(f"--peak-tflops must be a number or 'measure', got {args.peak_tflops!r}") from None


def _run_train(args, device, dtype, run_cfg, peak) -> list[BenchResult]:
    cuda = device.type == "cuda"
    results = []
    for tokens in args.doc_tokens:
        results.append(
            bench_train(
                run_cfg,
                size=args.size,
                device=device,
                dtype=dtype,
                batch=args.batch or default_train_batch(args.size, device, tokens),
                document_tokens=tokens,
                query_tokens=args.query_tokens,
                target_tokens=args.target_tokens,
                steps=args.steps or (20 if cuda else 3),
                warmup=args.warmup if args.warmup is not None else (5 if cuda else 1),
                variant=args.variant,
                compile_stacks=args.compile,
                peak_tflops=peak,
                seed=args.seed,
            )
        )
        _emit(results[-1])
        release_memory()
    return results


def _corpus_files(args) -> tuple[list[Path], tempfile.TemporaryDirectory | None]:
    if args.corpus:
        return list(args.corpus), None
    found = {p.parent.name: p for p in (args.results / "data").glob("*/corpus.jsonl")}
    if set(PAPER_CORPUS_DOCUMENTS) <= set(found):
        return [found[name] for name in PAPER_CORPUS_DOCUMENTS], None
    # A partial set (a run in progress) would silently shift the length mix: build all five.
    log.info(
        "%s/data holds %s of the corpora %s: building the mini corpora from data_prep/mini",
        args.results,
        sorted(found) or "none",
        sorted(PAPER_CORPUS_DOCUMENTS),
    )
    work = tempfile.TemporaryDirectory(prefix="gear-bench-corpora.")
    return build_mini_corpora(Path(work.name)), work


def _run_encode(args, device, run_cfg, peak) -> list[BenchResult]:
    from transformers import AutoTokenizer

    files, work = _corpus_files(args)
    try:
        corpora = load_corpus_texts(files)
    finally:
        if work is not None:
            work.cleanup()
    sources = [str(f) for f in files] if work is None else ["data_prep/mini (built by build_mini_corpora)"]
    cuda = device.type == "cuda"
    count = args.documents or (64 if args.size == "tiny" else 50_000 if cuda else 128)
    texts, drawn = length_mix(corpora, count, args.seed, args.mix)
    tokenizer = AutoTokenizer.from_pretrained(
        resolve_model(args.tokenizer, run_cfg.get("model_paths")), use_fast=True
    )
    batch = args.encode_batch or (16 if args.size == "tiny" else int(run_cfg["evaluate"]["batch_size"]))
    results = bench_encode(
        texts,
        tokenizer,
        size=args.size,
        device=device,
        batch=batch,
        max_document_tokens=int(run_cfg["gear"]["max_document_tokens"]),
        peak_tflops=peak,
        mix={"weights": args.mix, "drawn": drawn, "sources": sources},
        seed=args.seed,
    )
    for result in results:
        _emit(result)
    release_memory()
    return results


def _run_search(args, device, run_cfg) -> list[BenchResult]:
    tiny = args.size == "tiny"
    backend = args.backend or ("both" if device.type == "cuda" else "suite")
    results = bench_search(
        args.corpus_size or (20_000 if tiny else 2_315_413),
        args.queries or (200 if tiny else 20_000),
        args.dim or bench_config(args.size).hidden_size,
        args.depth or int(run_cfg["evaluate"]["retrieval"]["depth"]),
        backends=("suite", "torch") if backend == "both" else (backend,),
        device=device,
        query_batch=args.query_batch,
        seed=args.seed,
        suite_backend=args.suite_backend,
    )
    for result in results:
        _emit(result)
    return results


def _run_workflow(args, results_dir: Path) -> dict:
    summary = summarise_workflow(results_dir, args.log_dir, args.snakemake_log, args.benchmarks)
    print(workflow_markdown(summary), flush=True)
    return summary


_COMMAND = ""


def _run_command(args: argparse.Namespace) -> None:
    """``run``: the command's wall time and the peak memory of its process tree."""

    command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    try:
        measured = run_sampled(command, args.interval)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"python -m gear.tools.bench run: {err}") from None
    print(f"| {now_iso()} | `{shlex.join(command)}` | {measured.markdown()} |", flush=True)
    if args.json:
        write_json(args.json, {"command": _COMMAND, "date": now_iso(), **asdict(measured)})
    if measured.returncode != 0:
        raise SystemExit(measured.returncode)


def _emit(result: BenchResult) -> None:
    result.date = now_iso()
    result.command = _COMMAND
    peak = f" (MFU against {result.peak_tflops:g} TFLOP/s peak)" if result.peak_tflops else ""
    print(result.markdown_row() + peak, flush=True)


def main(argv: list[str] | None = None) -> list[BenchResult]:
    """``python -m gear.tools.bench``: run the chosen benchmarks, print Markdown rows, write ``--json``."""
    global _COMMAND
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    _COMMAND = "python -m gear.tools.bench " + shlex.join(argv)
    if args.command == "run":
        _run_command(args)
        return []
    if args.command == "gpu-check":
        if args.prepare_carry:
            prepare_carry(args.prepare_carry, args.squad)
        else:
            args.argv = argv
            run_gpu_check(args)
        return []
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    if args.command in ("search", "all"):
        try:
            import faiss
        except ImportError:  # a CUDA machine without FAISS: the suite searches with its torch backend
            faiss = None
        if faiss is not None:
            faiss.omp_set_num_threads(args.threads)
    device = torch.device(args.device or default_device())
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device (CPU-only torch build or no GPU)")
    dtype = args.dtype or ("bf16" if device.type == "cuda" else "fp32")

    run_cfg = load_config(args.config) if args.command != "workflow" else {}
    # GearEncoder always runs bf16 autocast on CUDA and fp32 on CPU, whatever --dtype says.
    encode_dtype = "bf16" if device.type == "cuda" else "fp32"
    peak_by_dtype: dict[str, float | None] = {}  # 'measure' times the product once per dtype
    peaks: dict[str, float | None] = {}
    for kind, kind_dtype in (("train", dtype), ("encode", encode_dtype)):
        if args.command in (kind, "all"):
            if kind_dtype not in peak_by_dtype:
                peak_by_dtype[kind_dtype] = _peak(args, device, kind_dtype)
            peaks[kind] = peak_by_dtype[kind_dtype]
            used = f"{peaks[kind]:g} TFLOP/s" if peaks[kind] else "none, no MFU (pass --peak-tflops)"
            print(f"MFU peak used for {kind} ({kind_dtype}): {used}", flush=True)
    if args.command != "workflow":
        print(MARKDOWN_HEADER, flush=True)
    results: list[BenchResult] = []
    workflow: dict | None = None
    if args.command in ("train", "all"):
        results += _run_train(args, device, dtype, run_cfg, peaks["train"])
    if args.command in ("encode", "all"):
        results += _run_encode(args, device, run_cfg, peaks["encode"])
    if args.command in ("search", "all"):
        results += _run_search(args, device, run_cfg)
    if args.command == "workflow":
        workflow = _run_workflow(args, args.results)
    elif args.command == "all":
        try:
            workflow = _run_workflow(args, args.results)
        except FileNotFoundError as err:
            print(f"workflow: not measured: {err}", flush=True)
    if args.json:
        write_json(
            args.json,
            {
                "command": _COMMAND,
                "environment": environment(device),
                "results": [asdict(r) for r in results],
                "workflow": workflow,
            },
        )
    return results


if __name__ == "__main__":
    main()
