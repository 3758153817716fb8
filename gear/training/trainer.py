"""Training GeAR (paper §3.4, Appendix C, Table 4; SPEC 5): loss = L_CL + L_LM.

**L_CL**, symmetric query-document contrastive loss with momentum encoders (MoCo/BLIP style,
written for this suite). Momentum copies of ``Eq`` (its bi-encoder part) and ``Ed`` follow the
online encoders after every optimizer step (``m <- mu m + (1 - mu) theta``, mu = ``train.momentum``,
one ``torch._foreach_lerp_`` over flat parameter lists). Their L2-normalised features fill two
queues of ``train.queue_size`` entries, with the 62-bit key of each entry's ``doc_id``. A query is
scored against the momentum document features of the whole global batch plus the document queue
(and a document against the query features likewise), divided by a learnable temperature
(init ``temperature_init``, clamped to ``[temperature_min, temperature_max]`` after every step).
Targets: every entry whose ``doc_id`` equals the query's is a positive (batch and queue alike),
targets normalised over positives, then softened as ``alpha * softmax(momentum similarities) +
(1 - alpha) * targets``, with alpha ramped linearly per step from 0 to ``train.alpha`` over the
first ``alpha_ramp_epochs`` epochs. Queue slots not yet filled are masked out (rather than
starting from random features), so the first steps see only real negatives.

**L_LM**, cross-entropy of the target (``[DEC]`` + target -> target + ``[SEP]``) given the fusion
output, summed over target tokens and divided by the global number of target tokens.

The variant's ``lm_loss: false`` (``GeAR_CL``) trains L_CL alone: the fusion pass and decoder
never run, and their parameters (cross-attention blocks, decoder, LM head) are frozen, so they
keep their initial values in the saved model.

**Several processes** (``torchrun``; gloo on CPU, nccl on GPU): every rank plans the same global
batches and takes its slice; momentum features and doc keys are all-gathered, so each rank's
queries meet the whole global batch plus the queue, and the queues stay identical on all ranks.
The CL loss is a mean over the rank's own rows and the LM loss ``sum / global token count x
world size``, so that DDP's gradient average equals the gradient of the single-process loss on
the same global batch (``tests/gear/test_train.py`` checks this with two processes).

**Queue rule**: ``queue_size`` must be a multiple of the global micro-batch, ``batch_size x
processes`` (each micro-step enqueues one global micro-batch; gradient accumulation does not
change it), so a batch never wraps around the queue's end. Checked at start with a clear error.

**Optimizer**: AdamW (``train.optimizer``; PyTorch's fused kernel on CUDA and CPU: one pass over
the parameters instead of a dozen operators per tensor; BENCHMARKS.md has the mini run before
and after). Weight decay applies to matrices
(linear and embedding weights) only; biases, LayerNorm gains and the temperature are not decayed,
as in BERT's recipe: shrinking a gain or an offset towards zero is not regularisation. (BLIP
decays every parameter; the paper does not say; this is the suite's choice.) **Rates per
group** (the paper states one rate, Table 4; these are the suite's choices, 1.0 in
config/paper.yaml): the parameters the checkpoint does not provide (the cross-attention blocks,
an LM head the checkpoint lacks) learn at ``new_parameters_lr_multiplier`` x the rate, and the
temperature at ``temperature_lr_multiplier`` x: Adam moves a scalar by about its rate every
step, so at the mini run's 1e-4 the temperature (0.07) could reach its 0.001 clamp in 700
steps; on a learnability probe at 1e-3 it did in about 250 and the contrastive loss then
collapsed the representations (BENCHMARKS.md "Making GeAR learn"). **Schedule**
(Table 4): linear warmup from ``warmup_lr`` to ``lr`` over ``warmup_steps`` steps, then cosine
down to ``min_lr`` at the last step. Gradient accumulation over ``train.gradient_accumulation``
micro-batches (the LM normalisation then holds per micro-batch).

**Checkpoints**: after every epoch, a Hugging Face style model folder ``out_root/epochs/epoch_{e}``
(Figure 4a/b evaluates each). They are written to ``out_root/state/epochs-{fingerprint}`` and
hard-linked into ``epochs/``, so that a workflow manager deleting ``epochs/`` (an output) before a
rerun does not lose finished epochs; each carries the checksums of its files
(``epoch_manifest.json``), checked before every publish, so a damaged one fails loudly
(:class:`CheckpointError`) instead of feeding Figure 4a/b. Every
``checkpoint_every_steps`` steps, at the end of every epoch (``checkpoint_at_epoch_end``; the
mini config turns it off: there it cost 12% of a training) and when ``max_steps`` stops the run,
but never at the run's last step, a
training state ``out_root/state/step_{n}`` (model, momentum encoders, queues, temperature,
optimizer, schedule position, epoch and position in the epoch, every process's RNG states and
loss accumulators, the log so far), written atomically with a manifest of SHA-256 checksums
written last. Running the same command again resumes from the newest state whose manifest
verifies (a truncated or corrupt one is skipped with a warning; the last two are kept, and a
run that reaches its last step removes them once its model is written) and ends
with bitwise the same weights on CPU as a run that never stopped: the data order depends only on
``(seed, epoch)``, and every RNG is restored. A state written under a different configuration,
data file (every byte hashed), training code (the source of :data:`TRAINING_CODE`) or number of
processes is discarded with a warning, never resumed. A finished run leaves no state (none is
written at its last step, and the others are removed), so rerunning it (Snakemake's
``--forcerun train_gear``) trains afresh; one killed after its model was written but before that
clean-up resumes from its newest state and ends with the same weights. The hidden
temporary folders that a process killed in the middle of a write leaves (``.step_{n}.*``, a
checkpoint's size) are deleted when training starts again (``tests/reliability`` kills training
with SIGKILL at a random step and in the middle of a checkpoint write).

**Outputs**: ``out_root/model`` (atomically): the model, tokenizer, ``gear_config.json`` (the
run's ``gear`` section), ``train_config.json`` (the resolved sections, variant, scenario, data
fingerprint, processes) and ``train_log.jsonl``: one record every ``train.record_every_steps``
optimizer steps (the mean losses of those steps over all processes, the last step's learning rate,
alpha and temperature) and one per epoch (the epoch's mean losses). Its content depends on the
steps only, never on timing, so a run killed and resumed writes the same log as one that never
stopped; the progress line for people (``train.log_every_seconds``, a line a minute) goes to the
job's log only.

**Speed** (PERF-NOTES.md): bf16 on CUDA (``train.precision``: autocast, or bf16 weights with
float32 master weights, gear.training.precision; CPU runs fp32), optional
``torch.compile`` of the transformer stacks (``train.compile``), fused attention and projections
(gear.model.modeling), length-bucketed batches padded to few shapes (gear.training.triples), pinned host memory and
non-blocking copies, and no host synchronisation in a step: losses accumulate on the device and
are read (``.item()``) only when a progress line is logged or at a checkpoint or epoch end (the
records of ``train_log.jsonl`` wait on the device until then).

Example:
    >>> train_gear("results/mini/data/train/qar.jsonl", "results/mini/models/GeAR/qar",
    ...            load_config("config/mini.yaml"), "GeAR", "qar")  # doctest: +SKIP

Multi-GPU: ``torchrun --nproc_per_node 4 -m gear.training.trainer --config config/paper.yaml --variant GeAR
--scenario qar --train-file R/data/train/qar.jsonl --out R/models/GeAR/qar``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import logging
import os
import random
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm.auto import tqdm

from gear.config import ConfigError, load_yaml, validate_config
from gear.hub import ModelSource, local_model_folder
from gear.io import atomic_dir, file_sha256, is_gear_folder, read_json, stable_hash, write_json, write_jsonl
from gear.model.card import ModelCard
from gear.model.export import export_sentence_transformer
from gear.model.modeling import GearModel, LoadReport, build_from_bert
from gear.model.tokens import load_fast_tokenizer
from gear.training.checkpoints import (
    StateStore,
    publish_epochs,
    remove_unfinished_writes,
    rng_state,
    set_rng_state,
    training_code_fingerprint,
    write_epoch_manifest,
)
from gear.training.distributed import (
    all_reduce_sum,
    gather_objects,
    init_distributed,
    is_distributed,
    no_buffer_sync,
    rank,
    select_device,
    world_size,
)
from gear.training.objectives import GearTrainingModule
from gear.training.precision import StepPrecision, effective_precision
from gear.training.settings import (
    TRAIN_CONFIG_KEYS,
    GearSection,
    TrainSection,
    alpha_at,
    check_queue_size,
    learning_rate,
    read_sections,
)
from gear.training.step import build_optimizer, compile_stacks, new_parameter_names, train_step
from gear.training.triples import EpochPlan, ListBatchSampler, TripleCollator, TripleFile

log = logging.getLogger(__name__)

#: train keys that may change between a run and its resumption (they do not change the result).
_RESUMABLE_ACROSS = (
    "checkpoint_every_steps",
    "checkpoint_at_epoch_end",
    "num_workers",
    "log_every_seconds",
    "compile",
)


# --------------------------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------------------------
@dataclass
class _Accumulator:
    """Loss sums on the device since some point (no host synchronisation until read)."""

    cl_sum: Tensor
    lm_sum: Tensor
    lm_tokens: Tensor
    micro_steps: Tensor

    @classmethod
    def zeros(cls, device: torch.device) -> _Accumulator:
        return cls(*(torch.zeros((), dtype=torch.float64, device=device) for _ in range(4)))

    def add(self, stats: dict[str, Tensor]) -> None:
        self.cl_sum += stats["cl"].double()
        self.micro_steps += 1
        if "lm_sum" in stats:
            self.lm_sum += stats["lm_sum"].double()
            self.lm_tokens += stats["lm_tokens"].double()

    def means(self, reduce: bool = False) -> dict[str, float]:
        values = torch.stack([self.cl_sum, self.lm_sum, self.lm_tokens, self.micro_steps])
        if reduce:
            values = all_reduce_sum(values)
        cl_sum, lm_sum, lm_tokens, steps = values.tolist()
        out = {"cl_loss": cl_sum / max(steps, 1.0)}
        if lm_tokens > 0:
            out["lm_loss"] = lm_sum / lm_tokens
        return out

    def state(self) -> dict[str, Tensor]:
        return {k: v.detach().cpu() for k, v in vars(self).items()}

    @classmethod
    def from_state(cls, state: dict[str, Tensor], device: torch.device) -> _Accumulator:
        return cls(**{k: v.to(device) for k, v in state.items()})


@dataclass
class _StepRecords:
    """The step records of ``train_log.jsonl``, kept on the device until read (no host sync per step).

    Windows end at the multiples of ``every`` (global optimizer steps), so the records do not
    depend on when a run was stopped: the open window's sums are part of each process's state.
    """

    every: int
    window: _Accumulator  # losses of the steps since the last multiple of ``every``
    closed: list[tuple[dict, Tensor]] = field(default_factory=list)  # (step fields, device sums)

    def close(self, fields: dict, temperature: Tensor) -> None:
        """End the window at step ``fields["step"]``: its sums and the temperature, still on the device."""
        w = self.window
        self.closed.append(
            (fields, torch.stack([w.cl_sum, w.lm_sum, w.lm_tokens, w.micro_steps, temperature.double()]))
        )
        self.window = _Accumulator.zeros(w.cl_sum.device)

    def read(self) -> list[dict]:
        """The closed windows as records, means over all processes (every process calls this)."""
        if not self.closed:
            return []
        closed, self.closed, records = self.closed, [], []
        values = torch.stack([sums for _, sums in closed])
        values[:, :4] = all_reduce_sum(values[:, :4])  # the temperature is the same on every process
        for (fields, _), (cl_sum, lm_sum, lm_tokens, steps, temperature) in zip(
            closed, values.tolist(), strict=True
        ):
            record = {
                "event": "steps",
                **fields,
                "temperature": temperature,
                "cl_loss": cl_sum / max(steps, 1.0),
            }
            if lm_tokens > 0:
                record["lm_loss"] = lm_sum / lm_tokens
            records.append(record)
        return records


@dataclass
class _Run:
    """One training run: its settings, data, model, optimizer, checkpoint store and progress."""

    cfg: dict
    variant: str
    scenario: str
    train_file: Path
    out_root: Path
    gear: GearSection
    train: TrainSection
    world: int  # processes
    rank: int
    device: torch.device
    seed: int
    dataset: TripleFile
    plan: EpochPlan
    steps_per_epoch: int
    total_steps: int
    stop_at: int  # the step this call stops at (max_steps, else total_steps)
    model: GearModel
    tokenizer: Any
    report: LoadReport
    training: GearTrainingModule
    precision: StepPrecision
    optimizer: torch.optim.Optimizer
    fingerprint: str
    store: StateStore
    kept_epochs: Path  # epoch models of this run, kept under its fingerprint
    published_epochs: Path  # out_root/epochs
    verified_epochs: set[Path] = field(default_factory=set)  # kept epoch models checked by this process
    step: int = 0
    records: list[dict] = field(default_factory=list)  # the training log so far
    epoch_acc: _Accumulator | None = None  # the losses of the epoch so far
    step_records: _StepRecords | None = None  # the step records not yet in ``records``

    @property
    def state_root(self) -> Path:
        return self.out_root / "state"


def train_gear(
    train_file: str | os.PathLike,
    out_root: str | os.PathLike,
    cfg: dict,
    variant: str,
    scenario: str,
    *,
    max_steps: int | None = None,
) -> Path:
    """Train GeAR variant ``variant`` on ``train_file``; resume from ``out_root/state`` if present.

    Args:
        train_file: training triples (JSON Lines, gear.training.triples).
        out_root: the model's root folder (``R/models/{model}/{scenario}``).
        cfg: the run config; only ``TRAIN_CONFIG_KEYS`` are read.
        variant: a key of ``train.variants``.
        scenario: ``qar`` or ``rir`` (selects ``train.scenarios.<scenario>.batch_size``).
        max_steps: stop after this many optimizer steps (tests, smoke runs); the schedule keeps
            the full run's length, so a longer rerun continues the same run.

    Returns:
        ``out_root/model``.
    """
    run = _prepare_run(Path(train_file), Path(out_root), cfg, variant, scenario, max_steps)
    _discard_stale_outputs(run)
    _resume(run)
    if run.train.compile:
        compile_stacks(run.training)
    wrapped: nn.Module = run.training
    if run.world > 1:
        device_ids = [run.device.index] if run.device.type == "cuda" else None
        wrapped = nn.parallel.DistributedDataParallel(run.training, device_ids=device_ids, **no_buffer_sync())
    collator = TripleCollator(
        run.tokenizer,
        run.gear.max_query_tokens,
        run.gear.max_document_tokens,
        run.gear.max_target_tokens,
        run.model.config.decoder_start_token_id,
        run.model.config.eos_token_id,
    )
    train, accumulation = run.train, run.train.gradient_accumulation
    window, last_log = _Accumulator.zeros(run.device), time.monotonic()
    progress = tqdm(
        total=run.stop_at,
        initial=run.step,
        desc=f"train {variant}/{scenario}",
        disable=run.rank != 0,
        mininterval=5.0,
    )
    wrapped.train()
    while run.step < run.stop_at:
        epoch, position = divmod(run.step, run.steps_per_epoch)
        for micro_batches in _groups(_epoch_loader(run, collator, epoch, position), accumulation):
            micro_batches = [
                {k: v.to(run.device, non_blocking=True) for k, v in b.items()} for b in micro_batches
            ]
            alpha = alpha_at(run.step, run.steps_per_epoch, train.alpha, train.alpha_ramp_epochs)
            lr = learning_rate(run.step, run.total_steps, train.optimizer.lr, train.schedule)
            for stats in train_step(
                run.training, run.precision, run.optimizer, micro_batches, alpha, lr, wrapped
            ):
                run.epoch_acc.add(stats)
                run.step_records.window.add(stats)
                window.add(stats)
            run.step += 1
            progress.update(1)
            epoch_done = run.step % run.steps_per_epoch == 0
            if epoch_done or run.step % train.record_every_steps == 0:
                fields = {"step": run.step, "epoch": epoch + 1, "lr": lr, "alpha": alpha}
                run.step_records.close(fields, run.training.temperature.detach().clone())
            if run.rank == 0 and time.monotonic() - last_log >= train.log_every_seconds:
                _log_progress(run, lr, alpha, window.means())  # for people: depends on timing
                window, last_log = _Accumulator.zeros(run.device), time.monotonic()
            periodic = run.step % train.checkpoint_every_steps == 0
            if epoch_done or periodic or run.step == run.stop_at:
                run.records.extend(run.step_records.read())  # before the epoch's record
            if epoch_done:
                _save_epoch(run, run.step // run.steps_per_epoch)
                run.epoch_acc = _Accumulator.zeros(run.device)
            # No state at the last step: the finished run's states are removed once its model is
            # written, and a run killed before that resumes from the previous state.
            if run.step < run.total_steps and (
                periodic or run.step == run.stop_at or (epoch_done and train.checkpoint_at_epoch_end)
            ):
                _save_state(run)
            if run.step == run.stop_at or epoch_done:
                break
    progress.close()
    final = _write_final_model(run)
    if run.rank == 0 and run.step >= run.total_steps:
        # A finished run's states are never resumed (a rerun trains afresh, see _resume): they
        # would only hold the disk (1.1 GB each for the mini model, the two newest kept).
        run.store.clear()
        log.info("training finished: its resume states in %s are removed", run.state_root)
    if is_distributed():
        dist.barrier()
    return final


def _prepare_run(
    train_file: Path, out_root: Path, cfg: dict, variant: str, scenario: str, max_steps: int | None
) -> _Run:
    """Check the settings, start the process group, index the data, build the model and optimizer."""
    gear_section, train = read_sections(cfg)
    if variant not in train.variants:
        raise ConfigError(f"train.variants: no variant {variant!r}; known: {sorted(train.variants)}")
    if scenario not in train.scenarios:
        raise ConfigError(f"train.scenarios: no scenario {scenario!r}; known: {sorted(train.scenarios)}")
    lm_loss = bool(train.variants[variant]["lm_loss"])
    batch_size = int(train.scenarios[scenario]["batch_size"])

    init_distributed()
    world, this_rank = world_size(), rank()
    device = select_device()
    check_queue_size(train.queue_size, batch_size, world)
    seed = int(cfg["seed"])

    dataset = TripleFile(train_file)
    global_batch = batch_size * world
    accumulation = train.gradient_accumulation
    steps_per_epoch = len(dataset) // (global_batch * accumulation)
    if steps_per_epoch < 1:
        raise ValueError(
            f"{train_file}: {len(dataset)} triples do not fill one optimizer step of {global_batch} x "
            f"{accumulation} (batch x processes x gradient accumulation)"
        )
    total_steps = steps_per_epoch * train.epochs
    plan = EpochPlan(dataset.byte_lengths, global_batch, steps_per_epoch * accumulation, seed)

    model, tokenizer, report = _initial_model(cfg, gear_section, seed, log_it=this_rank == 0)
    training = GearTrainingModule(model, train, lm_loss).to(device)
    precision = StepPrecision(training, effective_precision(train.precision, device), ("temperature",))
    optimizer = build_optimizer(
        precision.named_optimizer_parameters(),
        train.optimizer,
        device,
        new_parameter_names(report.newly_initialised),
    )
    fingerprint = stable_hash(
        {
            "gear": cfg["gear"],
            "train": {k: v for k, v in cfg["train"].items() if k not in _RESUMABLE_ACROSS},
            "seed": seed,
            "variant": variant,
            "scenario": scenario,
            "world_size": world,
            "data": dataset.fingerprint(),
            "code": training_code_fingerprint(),
            # a continued GeAR: its weights, not only the folder's name
            **(
                {
                    "start_weights": file_sha256(
                        Path(model.config.extra["continued_from"]) / "model.safetensors"
                    )
                }
                if "continued_from" in model.config.extra
                else {}
            ),
        }
    )
    state_root = out_root / "state"
    return _Run(
        cfg=cfg,
        variant=variant,
        scenario=scenario,
        train_file=train_file,
        out_root=out_root,
        gear=gear_section,
        train=train,
        world=world,
        rank=this_rank,
        device=device,
        seed=seed,
        dataset=dataset,
        plan=plan,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        stop_at=min(total_steps, max_steps) if max_steps else total_steps,
        model=model,
        tokenizer=tokenizer,
        report=report,
        training=training,
        precision=precision,
        optimizer=optimizer,
        fingerprint=fingerprint,
        store=StateStore(state_root, fingerprint),
        kept_epochs=state_root / f"epochs-{fingerprint}",
        published_epochs=out_root / "epochs",
    )


def _initial_model(
    cfg: dict, gear_section: GearSection, seed: int, log_it: bool
) -> tuple[GearModel, Any, LoadReport]:
    """GeAR built from ``gear.init_checkpoint``: identical on every process (seeded).

    A BERT checkpoint starts a new GeAR (:func:`build_from_bert`); a saved GeAR model folder
    (``model_type: gear``, e.g. an ``epochs/epoch_N`` of an earlier run) is trained further
    (:func:`_continued_model`).
    """
    revision = (cfg.get("model_revisions") or {}).get(gear_section.init_checkpoint)
    checkpoint = ModelSource.from_config(cfg).resolve(gear_section.init_checkpoint, revision)
    if is_gear_folder(checkpoint):
        model, tokenizer, report = _continued_model(cfg, Path(checkpoint), gear_section, seed)
        if log_it:
            log.info(
                "GeAR continued from the saved GeAR model %s (first built from %s); rate groups of that "
                "start: %d parameters newly initialised",
                checkpoint,
                model.config.extra["init_checkpoint"],
                len(report.newly_initialised),
            )
        return model, tokenizer, report
    checkpoint = _local_checkpoint(checkpoint, revision)
    model, tokenizer, report = build_from_bert(
        checkpoint,
        gear_section.decoder_start_token,
        seed=seed,
        cross_attention_init=gear_section.cross_attention_init,
        max_query_tokens=gear_section.max_query_tokens,
        max_document_tokens=gear_section.max_document_tokens,
        max_target_tokens=gear_section.max_target_tokens,
    )
    model.config.extra["init_checkpoint"] = gear_section.init_checkpoint
    if log_it:
        log.info("GeAR from %s: %s", checkpoint, report.summary())
    return model, tokenizer, report


def _continued_model(
    cfg: dict, folder: Path, gear_section: GearSection, seed: int
) -> tuple[GearModel, Any, LoadReport]:
    """A saved GeAR model to train further, its tokenizer, and the load report of its BERT start.

    The suite's choice (the paper trains each model once, from BERT): the per-group rates
    (``new_parameters_lr_multiplier``) keep applying to the blocks that the model's first start
    initialised, so a second stage (another data set, a curriculum) treats the parameters as the
    first stage did. That start is the folder's ``extra.init_checkpoint``; the report is taken by
    building it again (seeded, then discarded), so the BERT checkpoint must be available too.
    The cross-attention init of ``gear.cross_attention_init`` does not apply: the weights are
    the folder's. The truncation lengths are the config's. What a saved model does not hold
    starts afresh as in any run: the momentum encoders (copies of the loaded encoders), empty
    queues, the temperature at ``temperature_init``, the optimizer's moments and the schedule.
    """
    model = GearModel.from_pretrained(folder)
    origin = model.config.extra.get("init_checkpoint")
    if not origin:
        raise ConfigError(
            f"{folder / 'config.json'}: extra.init_checkpoint is missing, so the BERT checkpoint this GeAR "
            "started from (which decides the per-group learning rates) is unknown; train it from a BERT "
            "checkpoint instead"
        )
    if (
        model.config.extra.get("decoder_start_token", gear_section.decoder_start_token)
        != gear_section.decoder_start_token
    ):
        raise ConfigError(
            f"gear.decoder_start_token is {gear_section.decoder_start_token!r} but {folder} was trained with "
            f"{model.config.extra['decoder_start_token']!r}"
        )
    tokenizer = load_fast_tokenizer(folder)
    revision = (cfg.get("model_revisions") or {}).get(origin)
    start = _local_checkpoint(ModelSource.from_config(cfg).resolve(origin, revision), revision)
    _, _, report = build_from_bert(start, gear_section.decoder_start_token, seed=seed)
    model.config = dataclasses.replace(
        model.config,
        max_query_tokens=gear_section.max_query_tokens,
        max_document_tokens=gear_section.max_document_tokens,
        max_target_tokens=gear_section.max_target_tokens,
        extra={**model.config.extra, "continued_from": str(folder)},
    )
    return model.train(), tokenizer, report


def _discard_stale_outputs(run: _Run) -> None:
    """Remove what a killed process or another run left under ``out_root`` (rank 0), then wait."""
    if run.rank == 0:
        # A process killed while writing a checkpoint or a model leaves its hidden temporary
        # folder (gear.io.atomic_dir): never read, but as large as a checkpoint. No other process
        # writes under out_root now (Snakemake locks its outputs), so every one of them is stale.
        remove_unfinished_writes(run.state_root, (".step_",))
        remove_unfinished_writes(run.kept_epochs, (".epoch_",))
        remove_unfinished_writes(run.out_root, (".model.", ".epochs."))
    if run.rank == 0 and run.state_root.is_dir():
        run.store.discard_other_runs()
        for folder in run.state_root.glob("epochs-*"):
            if folder != run.kept_epochs:
                log.warning(
                    "discarding %s: epoch models of another configuration, data file or training code", folder
                )
                shutil.rmtree(folder, ignore_errors=True)
    if is_distributed():
        dist.barrier()


def _resume(run: _Run) -> None:
    """Seed this process's RNG streams, and continue from the newest state checkpoint if any."""
    run.epoch_acc = _Accumulator.zeros(run.device)
    run.step_records = _StepRecords(run.train.record_every_steps, _Accumulator.zeros(run.device))
    resumed = run.store.newest()
    if resumed is not None and resumed[0] >= run.stop_at:
        # The run these states belong to has finished and its outputs are gone (Snakemake
        # deletes them before a forced rerun): resuming would train nothing and republish the
        # old weights. A rerun trains afresh.
        if run.rank == 0:
            log.info(
                "%s holds a finished run (step %d of %d): training afresh",
                run.state_root,
                resumed[0],
                run.stop_at,
            )
        resumed = None
        if run.world > 1:
            dist.barrier()  # every rank has read the store before rank 0 empties it
        if run.rank == 0:
            run.store.clear()
    # Per-process RNG streams (dropout), after the model was built identically on every process.
    torch.manual_seed(run.seed + run.rank)
    random.seed(run.seed + run.rank)
    np.random.seed((run.seed + run.rank) % 2**32)  # noqa: NPY002
    if resumed is None:
        return
    run.step, payload = resumed
    with run.precision.fp32_weights():  # the checkpoint holds the float32 masters
        run.training.load_state_dict(payload["module"], strict=True)
    run.training.queue_ptr = int(payload["queue_ptr"])
    run.optimizer.load_state_dict(payload["optimizer"])
    run.records = list(payload["log"])
    per_rank = payload["per_rank"][run.rank]
    run.epoch_acc = _Accumulator.from_state(per_rank["epoch_accumulator"], run.device)
    run.step_records.window = _Accumulator.from_state(per_rank["record_window"], run.device)
    set_rng_state(per_rank["rng"])
    if run.rank == 0:
        log.info(
            "resuming from %s at step %d (epoch %d, step %d of %d in the epoch)",
            run.state_root / f"step_{run.step}",
            run.step,
            payload["epoch"],
            payload["position"],
            run.steps_per_epoch,
        )


def _epoch_loader(
    run: _Run, collator: TripleCollator, epoch: int, position: int
) -> torch.utils.data.DataLoader:
    """This process's micro-batches of ``epoch`` from optimizer step ``position`` of it on."""
    accumulation = run.train.gradient_accumulation
    return torch.utils.data.DataLoader(
        run.dataset,
        batch_sampler=ListBatchSampler(
            run.plan.rank_batches(epoch, run.rank, run.world, position * accumulation)
        ),
        collate_fn=collator,
        num_workers=run.train.num_workers,
        pin_memory=run.device.type == "cuda",
        generator=torch.Generator(),  # iterators draw their seed here, not from the global RNG
    )


def _log_progress(run: _Run, lr: float, alpha: float, means: dict[str, float]) -> None:
    """One progress line of the job's log: this process's losses since the last line.

    Not part of ``train_log.jsonl``: when a line is written depends on timing.
    """
    log.info(
        "step %d/%d lr %.3g alpha %.3f temp %.4f %s",
        run.step,
        run.stop_at,
        lr,
        alpha,
        float(run.training.temperature.detach()),
        _format(means),
    )


def _save_state(run: _Run) -> None:
    """A state checkpoint of every process's state at ``run.step`` (written by rank 0)."""
    per_rank = gather_objects(
        {
            "rng": rng_state(),
            "epoch_accumulator": run.epoch_acc.state(),
            "record_window": run.step_records.window.state(),
        }
    )
    if run.rank != 0:
        return
    epoch, position = divmod(run.step, run.steps_per_epoch)
    with run.precision.fp32_weights():
        module_state = run.training.state_dict()
    run.store.save(
        run.step,
        {
            "module": module_state,
            "queue_ptr": run.training.queue_ptr,
            "optimizer": run.optimizer.state_dict(),
            "scheduler": {"step": run.step, "total_steps": run.total_steps},
            "step": run.step,
            "epoch": epoch,
            "position": position,
            "per_rank": per_rank,
            "log": run.records,
        },
    )


def _save_epoch(run: _Run, epoch: int) -> None:
    """The model at the end of ``epoch``, kept and published to ``out_root/epochs``; the epoch's losses."""
    means = run.epoch_acc.means(reduce=True)
    if run.rank != 0:
        return
    folder = run.kept_epochs / f"epoch_{epoch}"
    if not folder.is_dir():
        with atomic_dir(folder) as tmp, run.precision.fp32_weights():
            run.model.save_pretrained(tmp, run.tokenizer)
            write_epoch_manifest(tmp)
        run.verified_epochs.add(folder)
    publish_epochs(run.kept_epochs, run.published_epochs, run.verified_epochs)
    run.records.append({"event": "epoch", "epoch": epoch, "step": run.step, **means})
    log.info("epoch %d done (step %d): %s", epoch, run.step, _format(means))


def _write_final_model(run: _Run) -> Path:
    """``out_root/model``: the weights, both configs, the load report and the training log (rank 0)."""
    final = run.out_root / "model"
    if run.rank != 0:
        return final
    publish_epochs(run.kept_epochs, run.published_epochs, run.verified_epochs)
    with atomic_dir(final) as tmp, run.precision.fp32_weights():
        run.model.save_pretrained(tmp, run.tokenizer)
        write_json(tmp / "gear_config.json", run.cfg["gear"])
        write_json(
            tmp / "train_config.json",
            {
                "variant": run.variant,
                "scenario": run.scenario,
                "train_file": str(run.train_file),
                "data": run.dataset.fingerprint(),
                "code": training_code_fingerprint(),
                "world_size": run.world,
                "steps": run.step,
                "total_steps": run.total_steps,
                "steps_per_epoch": run.steps_per_epoch,
                "config": {k: run.cfg[k] for k in TRAIN_CONFIG_KEYS if k in run.cfg},
                "load_report": {
                    "newly_initialised": run.report.newly_initialised,
                    "unused": run.report.unused,
                },
            },
        )
        write_jsonl(tmp / "train_log.jsonl", run.records)
        export_sentence_transformer(run.model, run.tokenizer, tmp)
        _model_card(run).write(tmp)
    log.info("model written to %s after %d steps", final, run.step)
    return final


def _model_card(run: _Run) -> ModelCard:
    """The final model's card: base model, data, key settings and this run's own numbers."""
    train, gear_section = run.train, run.gear
    revision = (run.cfg.get("model_revisions") or {}).get(gear_section.init_checkpoint)
    data = run.dataset.fingerprint()
    epochs = [r for r in run.records if r.get("event") == "epoch"]
    losses = {k: v for k, v in (epochs[-1] if epochs else {}).items() if k not in ("event", "epoch", "step")}
    return ModelCard(
        title=f"{run.variant} ({run.scenario})",
        summary=(
            f"A {run.variant} model (GeAR: Generation Augmented Retrieval, arXiv 2501.02772) trained by the "
            f"GeAR reproducibility suite on the {run.scenario.upper()} triples: query and document encoders "
            "(retrieval), a fusion encoder whose cross-attention localizes units, and a text decoder."
        ),
        base_model=gear_section.init_checkpoint + (f" (revision {revision})" if revision else ""),
        training_data={
            "file": run.train_file.name,
            "triples": data["triples"],
            "SHA-256": data["sha256"],
            "scenario": run.scenario,
        },
        config={
            "variant": run.variant,
            "epochs": train.epochs,
            "batch size (per process x processes x accumulation)": (
                f"{run.train.scenarios[run.scenario]['batch_size']} x {run.world} x {train.gradient_accumulation}"
            ),
            "learning rate": train.optimizer.lr,
            "warmup steps": train.schedule.warmup_steps,
            "queue size": train.queue_size,
            "momentum": train.momentum,
            "alpha": train.alpha,
            "initial temperature": train.temperature_init,
            "max query / document / target tokens": (
                f"{gear_section.max_query_tokens} / {gear_section.max_document_tokens} / "
                f"{gear_section.max_target_tokens}"
            ),
            "localization layer (1-based)": gear_section.localization.layer,
            "precision": train.precision,
            "seed": run.seed,
        },
        metrics={
            "optimizer steps": f"{run.step} of {run.total_steps}",
            "epochs completed": len(epochs),
            **{f"final epoch mean {name}": value for name, value in losses.items()},
            "final temperature": float(run.training.temperature.detach()),
        },
        usage=(
            '```python\nimport gear\nmodel = gear.load("path/to/this/folder")  # the suite\'s package\n'
            'model.retrieve(["a question"], ["a document", "another"], k=1)\n'
            'model.localize("a question", "a document. Its second sentence.")\n'
            'model.generate("a question", "a document")\n```\n\n'
            "The bi-encoder alone, without the suite:\n\n```python\n"
            "from sentence_transformers import SentenceTransformer\n"
            'st = SentenceTransformer("path/to/this/folder")\n'
            'st.encode_query(["a question"]); st.encode_document(["a document"])\n```\n\n'
            'On the command line: `gear predict --model path/to/this/folder --documents docs.jsonl --query "..."`.'
        ),
        not_included=[
            "Evaluation results (retrieval, localization, generation): the workflow computes them after "
            "training, in R/eval/{model}/{dataset}/{task}.json and the report tables.",
            "Per-epoch models and the resumable training state: beside this folder, in ../epochs and ../state.",
            "The full loss curve: train_log.jsonl in this folder.",
        ],
        tags=["gear", "retrieval", "localization", "sentence-transformers", run.variant, run.scenario],
    )


def _groups(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of ``size`` items (the last may be shorter): one optimizer step's micro-batches."""
    iterator = iter(items)
    while group := list(itertools.islice(iterator, size)):
        yield group


def _format(means: dict[str, float]) -> str:
    return " ".join(f"{k} {v:.4f}" for k, v in means.items())


def _local_checkpoint(name_or_path: str, revision: str | None) -> str:
    """A local folder for a resolved checkpoint (a hub id is downloaded, which the model source allowed)."""
    folder = local_model_folder(name_or_path, revision, allow_patterns=["*.json", "*.txt", "*.safetensors"])
    if not (Path(folder) / "model.safetensors").is_file():  # an older checkpoint: PyTorch weights only
        folder = local_model_folder(
            name_or_path, revision, allow_patterns=["*.json", "*.txt", "pytorch_model.bin"]
        )
    return folder


def launch_training(
    train_file: str | os.PathLike,
    out_root: str | os.PathLike,
    cfg: dict,
    *,
    variant: str,
    scenario: str,
    processes: int = 1,
    threads: int = 1,
    log_file: str | os.PathLike | None = None,
) -> Path:
    """Train in this process, or under ``torchrun`` with ``processes`` processes (one per GPU).

    Several processes run ``python -m torch.distributed.run --standalone --nproc_per_node N -m
    gear.training.trainer`` with the config sections written to ``out_root/state/launch_config.json``; their
    output is appended to ``log_file``. Each process gets ``threads // processes`` CPU threads.
    """
    import subprocess
    import sys

    if processes <= 1:
        torch.set_num_threads(max(1, threads))
        return train_gear(train_file, out_root, cfg, variant, scenario)
    out_root = Path(out_root)
    config_file = out_root / "state" / "launch_config.json"
    write_json(config_file, {k: cfg[k] for k in TRAIN_CONFIG_KEYS if k in cfg})
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        "-m",
        "gear.training.trainer",
        "--config",
        str(config_file),
        "--variant",
        variant,
        "--scenario",
        scenario,
        "--train-file",
        str(train_file),
        "--out",
        str(out_root),
        "--threads",
        str(max(1, threads // processes)),
    ]
    log.info("launching %d processes: %s", processes, " ".join(command))
    with open(log_file, "a", encoding="utf-8") if log_file else contextlib.nullcontext() as sink:
        subprocess.run(command, check=True, stdout=sink, stderr=subprocess.STDOUT if sink else None)
    return out_root / "model"


def main(argv: list[str] | None = None) -> None:
    """``python -m gear.training.trainer`` (or under torchrun): train one variant on one scenario."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", required=True, help="run config (YAML/JSON): a full config or its train sections"
    )
    parser.add_argument("--variant", required=True)
    parser.add_argument("--scenario", required=True, choices=["qar", "rir"])
    parser.add_argument("--train-file", required=True)
    parser.add_argument("--out", required=True, help="model root, e.g. results/mini/models/GeAR/qar")
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s rank{os.environ.get('RANK', 0)} %(levelname)s %(name)s: %(message)s",
    )
    if args.threads:
        torch.set_num_threads(args.threads)
    # JSON read as JSON: YAML 1.1 would take an exponent without a dot (1e-08) for a string.
    cfg = read_json(args.config) if args.config.endswith(".json") else load_yaml(args.config)
    if isinstance(cfg, dict) and "data" in cfg:  # a full run config: validate it whole
        cfg = validate_config(cfg, args.config)
    train_gear(args.train_file, args.out, cfg, args.variant, args.scenario, max_steps=args.max_steps)
    if is_distributed():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
