"""SBERT_RT: sentence-transformers retrained from GeAR's start checkpoint on GeAR's training triples.

The paper (§4.1) retrains SBERT "using its open source training pipeline" from
bert-base-uncased on the same data as GeAR. Here that pipeline is the sentence-transformers v5
trainer (``SentenceTransformerTrainer``) with ``MultipleNegativesRankingLoss`` (in-batch
negatives, cosine similarity times ``scale``), a batch sampler that never puts the same text
twice in one batch (``BatchSamplers.NO_DUPLICATES``, so a document shared by two queries is never
its own negative), and mean pooling (SPEC 8). The model is ``Transformer(start) -> Pooling(mean)
-> Normalize``; the result is a SentenceTransformer folder at ``R/models/SBERT_RT/{scenario}/model``
(``SentenceTransformer(folder)`` is how the suite scores it) with a model card (``README.md``).

Choices the paper and SPEC leave open, made here:

- Optimiser and schedule are the trainer's defaults (AdamW, weight decay 0, linear warm-up over
  ``warmup_steps`` then linear decay), as the "open source pipeline" would run them.
- Precision: bf16 mixed precision on CUDA where supported (fp16 otherwise), fp32 on CPU.
- Training resumes from the last step checkpoint in ``work_dir`` (written every
  ``checkpoint_every_steps`` steps); the folder is removed once the final model is saved.

Example:
    >>> retrain_sbert("results/mini/data/train/qar.jsonl", "results/mini/models/SBERT_RT/qar/model",
    ...               "/models/all-MiniLM-L6-v2", cfg["baselines"]["sbert_rt"], seed=42)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from gear.config import dataclass_from_mapping
from gear.hub import default_device
from gear.io import DataFormatError, atomic_dir, iter_jsonl, require_fields, write_json
from gear.model.card import ModelCard

log = logging.getLogger(__name__)

#: pooling of SBERT_RT (SPEC 8); the registry entry must say the same (checked when it is loaded)
POOLING = "mean"


@dataclass(frozen=True)
class SbertRTConfig:
    """``baselines.sbert_rt`` of the run config."""

    scale: float  # MultipleNegativesRankingLoss scale (inverse temperature), 20 in SPEC 8
    epochs: int  # passes over the training triples
    batch_size: int  # queries per batch (each batch: batch_size queries and their documents)
    lr: float  # peak learning rate
    warmup_steps: int  # linear warm-up steps
    max_length: int  # tokens per text in training (longer texts are truncated)


def read_triples(path: str | Path) -> tuple[list[str], list[str]]:
    """The (query, document) pairs of a training-triples file (ARCHITECTURE.md format).

    Returns:
        queries and documents, aligned.

    Raises:
        DataFormatError: a line lacks ``query`` or ``document`` (names file and line), or the
            file holds no triple.
    """
    queries, documents = [], []
    for number, row in iter_jsonl(path):
        where = f"{path}:{number}"
        require_fields(row, {"query": str, "document": str}, where)
        if not row["query"].strip() or not row["document"].strip():
            raise DataFormatError(f"{where}: empty query or document")
        queries.append(row["query"])
        documents.append(row["document"])
    if not queries:
        raise DataFormatError(f"{path}: no training triples")
    return queries, documents


def last_checkpoint(work_dir: str | Path | None) -> str | None:
    """The newest complete ``checkpoint-{step}`` folder a Hugging Face trainer left in ``work_dir``.

    A checkpoint is complete once the trainer wrote its ``trainer_state.json`` (the last file it
    writes); folders of a run killed while saving lack it and are removed, so that resuming never
    reads half a checkpoint.
    """
    if work_dir is None or not Path(work_dir).is_dir():
        return None
    complete = []
    for folder in Path(work_dir).glob("checkpoint-*"):
        step = folder.name.removeprefix("checkpoint-")
        if not (folder.is_dir() and step.isdigit()):
            continue
        if (folder / "trainer_state.json").is_file():
            complete.append((int(step), folder))
        else:
            log.warning("removing incomplete checkpoint %s", folder)
            shutil.rmtree(folder, ignore_errors=True)
    return str(max(complete)[1]) if complete else None


def mixed_precision(device: str) -> dict[str, bool]:
    """Trainer precision flags: bf16 (else fp16) on CUDA, fp32 on CPU."""
    import torch

    if not device.startswith("cuda"):
        return {"bf16": False, "fp16": False}
    bf16 = torch.cuda.is_bf16_supported()
    return {"bf16": bf16, "fp16": not bf16}


def logging_callback(what: str):
    """A ``TrainerCallback`` that logs the trainer's loss records with :mod:`logging`."""
    from transformers import TrainerCallback

    class _Callback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and state.is_world_process_zero:
                log.info("%s step %d/%d: %s", what, state.global_step, state.max_steps, logs)

    return _Callback()


def retrain_sbert(
    train_file: str | Path,
    out_dir: str | Path,
    start_checkpoint: str | Path,
    sbert_cfg: dict,
    seed: int,
    *,
    work_dir: str | Path | None = None,
    checkpoint_every_steps: int | None = None,
    max_steps: int | None = None,
    device: str | None = None,
) -> Path:
    """Train SBERT_RT and save it, atomically, as a SentenceTransformer folder at ``out_dir``.

    Args:
        train_file: training triples (``R/data/train/{scenario}.jsonl``).
        out_dir: the final model folder (``R/models/SBERT_RT/{scenario}/model``).
        start_checkpoint: local folder of ``baselines.start_checkpoint`` (a BERT encoder).
        sbert_cfg: the config's ``baselines.sbert_rt`` mapping.
        seed: the run's seed (model init of new parts, shuffling, sampling).
        work_dir: folder for step checkpoints (resumed from when present); a temporary folder
            beside ``out_dir`` when None.
        checkpoint_every_steps: save a resumable checkpoint this often (None: never).
        max_steps: stop after this many optimiser steps (tests); None trains all epochs.
        device: "cpu" forces the CPU; None lets the trainer pick CUDA when available.

    Returns:
        ``out_dir``.
    """
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers
    from transformers import set_seed
    from transformers.trainer_callback import PrinterCallback

    cfg = dataclass_from_mapping(SbertRTConfig, sbert_cfg, "baselines.sbert_rt")
    out_dir = Path(out_dir)
    work_dir = Path(work_dir) if work_dir is not None else out_dir.parent / f".{out_dir.name}.work"
    if device is None:
        device = default_device()
    queries, documents = read_triples(train_file)
    log.info(
        "SBERT_RT: %d triples from %s, start %s, device %s",
        len(queries),
        train_file,
        start_checkpoint,
        device,
    )

    set_seed(seed)  # before the model is built, so any newly initialised weight is seeded too
    transformer = Transformer(str(start_checkpoint), max_seq_length=cfg.max_length)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode=POOLING)
    model = SentenceTransformer(modules=[transformer, pooling, Normalize()], device=device)
    # Only the two text columns: the sampler checks every column for duplicates and the loss
    # reads the columns in order (anchor, positive).
    dataset = Dataset.from_dict({"anchor": queries, "positive": documents})
    loss = MultipleNegativesRankingLoss(model, scale=cfg.scale)
    steps_per_epoch = -(-len(queries) // cfg.batch_size)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(work_dir),
        num_train_epochs=cfg.epochs,
        max_steps=max_steps if max_steps is not None else -1,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.lr,
        warmup_steps=cfg.warmup_steps,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        seed=seed,
        data_seed=seed,
        use_cpu=device == "cpu",
        save_strategy="steps" if checkpoint_every_steps else "no",
        save_steps=checkpoint_every_steps or 500,
        save_total_limit=1,
        logging_steps=max(1, min(500, steps_per_epoch // 4)),
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        **mixed_precision(device),
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss)
    # Trainer progress goes to the rule's log through logging, not to stdout.
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(logging_callback("SBERT_RT"))
    resume = last_checkpoint(work_dir)
    if resume:
        log.info("SBERT_RT: resuming from %s", resume)
    started = time.time()
    result = trainer.train(resume_from_checkpoint=resume)
    with atomic_dir(out_dir) as tmp:
        model.save(str(tmp), create_model_card=False)
        record = {
            "model": "SBERT_RT",
            "pipeline": "sentence-transformers SentenceTransformerTrainer",
            "loss": "MultipleNegativesRankingLoss",
            "batch_sampler": "no_duplicates",
            "pooling": POOLING,
            "start_checkpoint": str(start_checkpoint),
            "train_file": str(train_file),
            "triples": len(queries),
            "seed": seed,
            "max_steps": max_steps,
            "steps": result.global_step,
            "train_loss": result.training_loss,
            "wall_time_s": round(time.time() - started, 1),
            "baselines.sbert_rt": asdict(cfg),
        }
        write_json(tmp / "train_config.json", record)
        _model_card(record).write(tmp)
    shutil.rmtree(work_dir, ignore_errors=True)
    log.info("SBERT_RT: %d steps in %.1f s, saved to %s", result.global_step, time.time() - started, out_dir)
    return out_dir


def _model_card(record: dict) -> ModelCard:
    """SBERT_RT's card from its ``train_config.json`` record."""
    return ModelCard(
        title="SBERT_RT",
        summary=(
            "The GeAR reproducibility suite's retrained SBERT baseline (paper §4.1): the sentence-transformers "
            "trainer with MultipleNegativesRankingLoss (no duplicates in a batch) from the suite's start "
            "checkpoint on GeAR's training triples; mean pooling, normalised embeddings."
        ),
        base_model=record["start_checkpoint"],
        training_data={"file": Path(record["train_file"]).name, "triples": record["triples"]},
        config={**record["baselines.sbert_rt"], "pooling": POOLING, "seed": record["seed"]},
        metrics={
            "optimizer steps": record["steps"],
            "mean training loss": record["train_loss"],
            "wall time (s)": record["wall_time_s"],
        },
        usage=(
            "```python\nfrom sentence_transformers import SentenceTransformer\n"
            'model = SentenceTransformer("path/to/this/folder")\n'
            'model.encode_query(["a question"]); model.encode_document(["a document"])\n```'
        ),
        not_included=[
            "Evaluation results: the workflow computes them after training (R/eval/SBERT_RT/).",
            "Step checkpoints: removed once the model is saved.",
        ],
        tags=["sentence-transformers", "retrieval", "gear-baseline"],
    )
