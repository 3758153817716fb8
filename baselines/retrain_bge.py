"""BGE_RT: FlagEmbedding's encoder-only embedder fine-tuning from GeAR's start checkpoint.

The paper (§4.1) retrains BGE "using its open source training pipeline" from bert-base-uncased
on GeAR's training data. That pipeline is FlagEmbedding's
``FlagEmbedding.finetune.embedder.encoder_only.base`` (FlagEmbedding 1.4.2), run here through
``torchrun`` exactly as its documentation runs it, with the settings of SPEC 8:

- contrastive loss over in-batch negatives with temperature ``baselines.bge_rt.temperature``
  (0.02), CLS pooling (``--sentence_pooling_method cls``), normalised embeddings;
- ``train_group_size`` passages per query. The training triples carry one positive and no
  mined negatives, so the data is written as ``{"query", "pos": [document], "neg": []}`` and only
  ``train_group_size: 1`` is possible (FlagEmbedding 1.4.2 samples ``train_group_size - 1``
  negatives from ``neg`` and fails on an empty list otherwise; with 1 it samples none). Negatives
  are then the other passages of the batch (and of every GPU's batch when
  ``nproc_per_node > 1``, ``--negatives_cross_device``);
- query / passage maximum lengths, epochs, batch size, learning rate and warm-up ratio from
  ``baselines.bge_rt``; the run's seed.

FlagEmbedding's pipeline does not keep a document out of a batch that already holds it, so two
queries of the same document in one batch are each other's false negatives; the suite keeps the
pipeline as published (SBERT_RT, whose pipeline offers it, does exclude duplicates).

Choices the paper and SPEC leave open, made here: no instruction on queries (the registry's
BGE_RT entry has none), ``--dataloader_drop_last True`` and ``--pad_to_multiple_of 8`` as in
FlagEmbedding's example scripts, fp16 mixed precision on CUDA (bf16 where supported), fp32 on CPU,
no DeepSpeed. Step checkpoints go to ``work_dir`` every ``checkpoint_every_steps`` steps and a
rerun resumes from the newest; the folder is removed once the model is saved.

The result, ``R/models/BGE_RT/{scenario}/model``, is a Hugging Face BERT folder (config,
weights, tokenizer, ``train_config.json``) that ``FlagModel`` loads (registry kind ``bge_rt``),
and a sentence-transformers model too (:func:`write_sentence_transformer_modules`:
``Transformer -> Pooling(cls) -> Normalize``, at the registry's length of 512 tokens), so that
``SentenceTransformer(folder)`` gives the embeddings the suite scores rather than mean-pooled,
unnormalised ones; a model card (``README.md``, ``gear.model.card``) says what it was trained on.
"""

from __future__ import annotations

import collections
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from baselines.adapters import flag_embedding_problem
from baselines.retrain_sbert import last_checkpoint, read_triples
from gear.config import ConfigError, dataclass_from_mapping
from gear.hub import default_device
from gear.io import atomic_dir, read_json, write_json, write_jsonl
from gear.model.card import ModelCard

log = logging.getLogger(__name__)

#: pooling of BGE_RT (SPEC 8); recorded in train_config.json and checked against the registry
POOLING = "cls"
FLAG_MODULE = "FlagEmbedding.finetune.embedder.encoder_only.base"
#: files of the trainer's output folder that make up the model (checkpoints and args are left out)
MODEL_FILE_SKIP = ("training_args.bin",)
#: tokens the suite encodes BGE_RT texts to (config/baselines.yaml's BGE_RT max_length)
SCORING_MAX_LENGTH = 512
#: what the sentence-transformers modules add to the folder (the Transformer module is the folder itself)
SENTENCE_TRANSFORMER_FILES = (
    "modules.json",
    "config_sentence_transformers.json",
    "sentence_bert_config.json",
    "1_Pooling",
    "2_Normalize",
)


@dataclass(frozen=True)
class BgeRTConfig:
    """``baselines.bge_rt`` of the run config."""

    temperature: float  # contrastive temperature (0.02 in SPEC 8)
    epochs: int  # passes over the training triples
    batch_size: int  # queries per batch and device
    lr: float  # peak learning rate
    warmup_ratio: float  # fraction of the steps spent in linear warm-up
    query_max_len: int  # tokens per query
    passage_max_len: int  # tokens per passage
    train_group_size: int  # passages per query (1 positive + train_group_size - 1 negatives)
    nproc_per_node: int  # torchrun processes (GPUs) on this node


def write_flag_data(train_file: str | Path, out_file: str | Path) -> int:
    """Convert training triples to FlagEmbedding's JSONL: ``{"query", "pos": [doc], "neg": []}``.

    Returns:
        the number of examples written.
    """
    queries, documents = read_triples(train_file)
    return write_jsonl(out_file, ({"query": q, "pos": [d], "neg": []} for q, d in zip(queries, documents)))


def precision_flags(device: str) -> list[str]:
    """Mixed precision on CUDA (bf16 where supported, else fp16); nothing on CPU."""
    if not device.startswith("cuda"):
        return []
    import torch

    return ["--bf16", "True"] if torch.cuda.is_bf16_supported() else ["--fp16", "True"]


def flag_command(
    cfg: BgeRTConfig,
    start_checkpoint: str,
    data_file: Path,
    cache_dir: Path,
    output_dir: Path,
    seed: int,
    device: str,
    *,
    resume: str | None = None,
    checkpoint_every_steps: int | None = None,
    max_steps: int | None = None,
    logging_steps: int = 10,
) -> list[str]:
    """The ``torchrun`` command line of one FlagEmbedding fine-tuning run (argument names of 1.4.2)."""
    if cfg.train_group_size != 1:
        raise ConfigError(
            f"baselines.bge_rt.train_group_size is {cfg.train_group_size}, but the training triples carry "
            "no negatives (SPEC 8: in-batch negatives); set it to 1"
        )
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(cfg.nproc_per_node),
    ]
    command += ["-m", FLAG_MODULE]
    args = {
        "model_name_or_path": start_checkpoint,
        "train_data": str(data_file),
        "cache_path": str(cache_dir),
        "train_group_size": cfg.train_group_size,
        "query_max_len": cfg.query_max_len,
        "passage_max_len": cfg.passage_max_len,
        "pad_to_multiple_of": 8,
        "knowledge_distillation": False,
        "output_dir": str(output_dir),
        "learning_rate": cfg.lr,
        "num_train_epochs": cfg.epochs,
        "max_steps": max_steps if max_steps is not None else -1,
        "per_device_train_batch_size": cfg.batch_size,
        "warmup_ratio": cfg.warmup_ratio,
        "dataloader_drop_last": True,
        "dataloader_num_workers": 0,
        "temperature": cfg.temperature,
        "sentence_pooling_method": POOLING,
        "normalize_embeddings": True,
        "negatives_cross_device": cfg.nproc_per_node > 1,
        "seed": seed,
        "data_seed": seed,
        "logging_steps": logging_steps,
        "save_strategy": "steps" if checkpoint_every_steps else "no",
        "save_steps": checkpoint_every_steps or 500,
        "save_total_limit": 1,
        "report_to": "none",
        "disable_tqdm": True,
        "use_cpu": device == "cpu",
    }
    if resume:
        args["resume_from_checkpoint"] = resume
    for key, value in args.items():
        command += [f"--{key}", str(value)]
    return command + precision_flags(device)


def run_logged(command: list[str], env: dict[str, str], what: str, tail_lines: int = 60) -> None:
    """Run ``command``, sending each output line to the log; raise with the output's tail on failure."""
    log.info("%s: %s", what, " ".join(command))
    tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip()
            tail.append(line)
            log.info("%s | %s", what, line)
        code = process.wait()
    if code != 0:
        raise RuntimeError(f"{what} failed with exit status {code}; last output:\n" + "\n".join(tail))


def retrain_bge(
    train_file: str | Path,
    out_dir: str | Path,
    start_checkpoint: str | Path,
    bge_cfg: dict,
    seed: int,
    *,
    work_dir: str | Path | None = None,
    checkpoint_every_steps: int | None = None,
    max_steps: int | None = None,
    device: str | None = None,
    threads: int | None = None,
) -> Path:
    """Train BGE_RT with FlagEmbedding through torchrun; save it atomically at ``out_dir``.

    Args:
        train_file: training triples (``R/data/train/{scenario}.jsonl``).
        out_dir: the final model folder (``R/models/BGE_RT/{scenario}/model``).
        start_checkpoint: local folder of ``baselines.start_checkpoint`` (a BERT encoder).
        bge_cfg: the config's ``baselines.bge_rt`` mapping.
        seed: the run's seed.
        work_dir: folder for the converted data, the trainer's output and step checkpoints
            (resumed from when present); a hidden folder beside ``out_dir`` when None.
        checkpoint_every_steps: save a resumable checkpoint this often (None: never).
        max_steps: stop after this many optimiser steps (tests); None trains all epochs.
        device: "cpu" forces the CPU; None uses CUDA when available.
        threads: torch threads per process (``OMP_NUM_THREADS``); None leaves torchrun's default.

    Returns:
        ``out_dir``.
    """

    cfg = dataclass_from_mapping(BgeRTConfig, bge_cfg, "baselines.bge_rt")
    problem = flag_embedding_problem()
    if problem is not None:
        raise RuntimeError(f"BGE_RT is trained by FlagEmbedding: {problem}")
    out_dir = Path(out_dir)
    work_dir = Path(work_dir) if work_dir is not None else out_dir.parent / f".{out_dir.name}.work"
    if device is None:
        device = default_device()
    if device == "cpu" and cfg.nproc_per_node > 1:
        raise ConfigError(
            "baselines.bge_rt.nproc_per_node > 1 needs one GPU per process; this run is on the CPU"
        )
    data_dir, trainer_dir = work_dir / "data", work_dir / "trainer"
    data_file = data_dir / "train.jsonl"
    examples = write_flag_data(train_file, data_file)
    if examples < cfg.batch_size * cfg.nproc_per_node:
        # The last incomplete batch is dropped (as in FlagEmbedding's examples): nothing would train.
        raise ConfigError(
            f"{train_file}: {examples} training triples do not fill one batch of baselines.bge_rt.batch_size "
            f"{cfg.batch_size} x nproc_per_node {cfg.nproc_per_node}"
        )
    resume = last_checkpoint(trainer_dir)
    if not resume and trainer_dir.exists():
        # A run that died before its first checkpoint: FlagEmbedding refuses a non-empty output folder.
        shutil.rmtree(trainer_dir)
    steps_per_epoch = max(1, examples // (cfg.batch_size * cfg.nproc_per_node))
    command = flag_command(
        cfg,
        str(start_checkpoint),
        data_file,
        data_dir / "cache",
        trainer_dir,
        seed,
        device,
        resume=resume,
        checkpoint_every_steps=checkpoint_every_steps,
        max_steps=max_steps,
        logging_steps=max(1, min(500, steps_per_epoch // 4)),
    )
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", HF_DATASETS_CACHE=str(data_dir / "cache"))
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    started = time.time()
    # sentence-transformers, which the export below needs, takes about 5 s of one core to import;
    # the torchrun worker spends its first 7 s importing FlagEmbedding on one core. Importing it
    # meanwhile lets the export start as soon as the training ends (about 5 s per job; BENCHMARKS.md).
    preload = threading.Thread(target=_preload_sentence_transformers, name="preload-st", daemon=True)
    preload.start()
    run_logged(command, env, "BGE_RT torchrun")
    preload.join()
    if not (trainer_dir / "config.json").is_file():
        raise RuntimeError(f"FlagEmbedding finished but saved no model in {trainer_dir}")
    with atomic_dir(out_dir) as tmp:
        for item in trainer_dir.iterdir():
            if item.is_file() and item.name not in MODEL_FILE_SKIP:
                shutil.copy2(item, tmp / item.name)
        write_sentence_transformer_modules(tmp)
        record = {
            "model": "BGE_RT",
            "pipeline": f"FlagEmbedding {_version('FlagEmbedding')} {FLAG_MODULE}",
            "pooling": POOLING,
            "normalize_embeddings": True,
            "negatives": "in-batch" + (" (cross-device)" if cfg.nproc_per_node > 1 else ""),
            "start_checkpoint": str(start_checkpoint),
            "train_file": str(train_file),
            "triples": examples,
            "seed": seed,
            "max_steps": max_steps,
            "wall_time_s": round(time.time() - started, 1),
            "baselines.bge_rt": asdict(cfg),
        }
        write_json(tmp / "train_config.json", record)
        _model_card(record, tmp / "trainer_state.json").write(tmp)
    shutil.rmtree(work_dir, ignore_errors=True)
    log.info("BGE_RT: trained in %.1f s, saved to %s", time.time() - started, out_dir)
    return out_dir


def _preload_sentence_transformers() -> None:
    """Import what :func:`write_sentence_transformer_modules` imports. A failure is left to that
    function's own import, which raises it where the export needs it."""
    try:
        import sentence_transformers  # noqa: F401
        from sentence_transformers.sentence_transformer import modules  # noqa: F401
    except Exception:  # re-raised by the export's own import
        log.debug("preloading sentence-transformers failed; the export will import it again", exc_info=True)


def write_sentence_transformer_modules(folder: str | Path, max_seq_length: int = SCORING_MAX_LENGTH) -> None:
    """Make a BGE_RT folder a SentenceTransformer as the suite scores it: CLS pooling, L2-normalised.

    Only the module files are added (:data:`SENTENCE_TRANSFORMER_FILES`); the weights, config and
    tokenizer that ``FlagModel`` reads stay as the trainer saved them.
    """
    import tempfile

    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    folder = Path(folder)
    transformer = Transformer(str(folder), max_seq_length=max_seq_length)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode=POOLING)
    model = SentenceTransformer(modules=[transformer, pooling, Normalize()], device="cpu")
    with tempfile.TemporaryDirectory(prefix="bge-rt-st-") as scratch:
        model.save(scratch, create_model_card=False)
        for name in SENTENCE_TRANSFORMER_FILES:
            source = Path(scratch) / name
            if source.is_dir():
                shutil.copytree(source, folder / name, dirs_exist_ok=True)
            elif source.is_file():
                shutil.copy2(source, folder / name)


def _model_card(record: dict, trainer_state: Path) -> ModelCard:
    """BGE_RT's card from its ``train_config.json`` record (and the trainer's state, when saved)."""
    metrics: dict[str, object] = {"wall time (s)": record["wall_time_s"]}
    if trainer_state.is_file():
        state = read_json(trainer_state)
        metrics["optimizer steps"] = state.get("global_step")
        losses = [entry["loss"] for entry in state.get("log_history", []) if "loss" in entry]
        if losses:
            metrics["last logged training loss"] = losses[-1]
    return ModelCard(
        title="BGE_RT",
        summary=(
            "The GeAR reproducibility suite's retrained BGE baseline (paper §4.1): FlagEmbedding's "
            f"encoder-only embedder fine-tuning ({record['pipeline']}) from the suite's start checkpoint "
            "on GeAR's training triples; CLS pooling, normalised embeddings."
        ),
        base_model=record["start_checkpoint"],
        training_data={"file": Path(record["train_file"]).name, "triples": record["triples"]},
        config={**record["baselines.bge_rt"], "pooling": POOLING, "seed": record["seed"]},
        metrics=metrics,
        usage=(
            "```python\nfrom sentence_transformers import SentenceTransformer\n"
            'model = SentenceTransformer("path/to/this/folder")  # CLS pooling + normalisation, 512 tokens\n'
            'model.encode_query(["a question"]); model.encode_document(["a document"])\n```\n\n'
            'or FlagEmbedding\'s `FlagModel("path/to/this/folder", pooling_method="cls")`.'
        ),
        not_included=[
            "Evaluation results: the workflow computes them after training (R/eval/BGE_RT/).",
            "Step checkpoints: removed once the model is saved.",
        ],
        tags=["sentence-transformers", "retrieval", "bge", "gear-baseline"],
    )


def _version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"
