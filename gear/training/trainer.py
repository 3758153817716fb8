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
``checkpoint_every_steps`` steps, at the end of every epoch and when ``max_steps`` stops the run, a
training state ``out_root/state/step_{n}`` (model, momentum encoders, queues, temperature,
optimizer, schedule position, epoch and position in the epoch, every process's RNG states and
loss accumulators, the log so far), written atomically with a manifest of SHA-256 checksums
written last. Running the same command again resumes from the newest state whose manifest
verifies (a truncated or corrupt one is skipped with a warning; the last two are kept) and ends
with bitwise the same weights on CPU as a run that never stopped: the data order depends only on
``(seed, epoch)``, and every RNG is restored. A state written under a different configuration,
data file (every byte hashed), training code (the source of :data:`TRAINING_CODE`) or number of
processes is discarded with a warning, never resumed; the states of a run that finished are
not resumed either: rerunning a finished run (Snakemake's ``--forcerun train_gear``) trains
afresh. The hidden
temporary folders that a process killed in the middle of a write leaves (``.step_{n}.*``, a
checkpoint's size) are deleted when training starts again (``tests/reliability`` kills training
with SIGKILL at a random step and in the middle of a checkpoint write).

**Outputs**: ``out_root/model`` (atomically): the model, tokenizer, ``gear_config.json`` (the
run's ``gear`` section), ``train_config.json`` (the resolved sections, variant, scenario, data
fingerprint, processes) and ``train_log.jsonl`` (a line a minute, ``train.log_every_seconds``, and
one per epoch with the epoch's mean losses over all processes).

**Speed** (PERF-NOTES.md): bf16 on CUDA (``train.precision``: autocast, or bf16 weights with
float32 master weights, gear.training.precision; CPU runs fp32), optional
``torch.compile`` of the transformer stacks (``train.compile``), fused attention and projections
(gear.model.modeling), length-bucketed batches padded to few shapes (gear.training.triples), pinned host memory and
non-blocking copies, and no host synchronisation in a step: losses accumulate on the device and
are read (``.item()``) only when a line is logged.

Example:
    >>> train_gear("results/mini/data/train/qar.jsonl", "results/mini/models/GeAR/qar",
    ...            load_config("config/mini.yaml"), "GeAR", "qar")  # doctest: +SKIP

Multi-GPU: ``torchrun --nproc_per_node 4 -m gear.training.trainer --config config/paper.yaml --variant GeAR
--scenario qar --train-file R/data/train/qar.jsonl --out R/models/GeAR/qar``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import itertools
import logging
import math
import os
import random
import re
import shutil
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from gear.config import ConfigError, dataclass_from_mapping, load_yaml, validate_config
from gear.hub import resolve_model
from gear.inference import LocalizationConfig
from gear.io import atomic_dir, file_sha256, read_json, stable_hash, write_json, write_jsonl
from gear.model.modeling import CrossAttentionInit, GearModel, Stack, build_from_bert, mean_pool
from gear.training.precision import StepPrecision, effective_precision
from gear.training.triples import EpochPlan, ListBatchSampler, TripleCollator, TripleFile

log = logging.getLogger(__name__)

#: The run-config sections train_gear reads (the rule passes only these).
TRAIN_CONFIG_KEYS = ("seed", "allow_downloads", "model_paths", "model_revisions", "gear", "train")
#: train keys that may change between a run and its resumption (they do not change the result).
_RESUMABLE_ACROSS = ("checkpoint_every_steps", "num_workers", "log_every_seconds", "compile")
MASKED_LOGIT = -1e9  # logit of a queue slot not yet filled: exp() is exactly 0 in float32


# --------------------------------------------------------------------------------------------
# Config sections
# --------------------------------------------------------------------------------------------
@dataclass
class OptimizerSection:
    lr: float  # peak learning rate
    betas: tuple[float, float]  # AdamW betas
    eps: float  # AdamW epsilon
    weight_decay: float  # decoupled weight decay (matrices only, see the module docstring)
    new_parameters_lr_multiplier: float = (
        1.0  # x lr for the parameters the checkpoint lacks (module docstring)
    )
    temperature_lr_multiplier: float = 1.0  # x lr for the contrastive temperature (module docstring)


@dataclass
class ScheduleSection:
    warmup_steps: int  # linear warmup length in optimizer steps
    warmup_lr: float  # learning rate at step 0
    min_lr: float  # learning rate at the last step (end of the cosine)


@dataclass
class TrainSection:
    variants: dict  # variant name -> {lm_loss: bool}
    scenarios: dict  # qar / rir -> {batch_size: per-process micro-batch}
    reference_gpus: int  # the paper's GPU count (config-time queue check only)
    epochs: int  # passes over the triples
    gradient_accumulation: int  # micro-batches per optimizer step
    momentum: float  # momentum of the momentum encoders (0.995)
    queue_size: int  # feature queue entries (multiple of the global micro-batch)
    alpha: float  # final weight of the momentum soft targets (0.4)
    alpha_ramp_epochs: float  # epochs over which alpha ramps from 0 (2)
    temperature_init: float  # initial contrastive temperature (0.07)
    temperature_min: float  # temperature clamp, lower bound
    temperature_max: float  # temperature clamp, upper bound
    lm_weight: float  # weight of L_LM
    cl_weight: float  # weight of L_CL
    optimizer: OptimizerSection
    schedule: ScheduleSection
    precision: str  # fp32 | bf16 (autocast) | bf16-master (bf16 weights, fp32 masters); CPU: fp32
    checkpoint_every_steps: int  # state checkpoint period in optimizer steps
    num_workers: int  # DataLoader worker processes
    compile: bool  # torch.compile the transformer stacks
    log_every_seconds: float  # period of the progress log line


@dataclass
class GearSection:
    init_checkpoint: str  # BERT checkpoint the three stacks start from
    decoder_start_token: str  # the token added to start targets ([DEC])
    max_query_tokens: int  # query truncation
    max_document_tokens: int  # document truncation
    max_target_tokens: int  # decoder length ([DEC] + target)
    localization: LocalizationConfig = field(default_factory=lambda: LocalizationConfig(layer=10))
    cross_attention_init: CrossAttentionInit = field(default_factory=CrossAttentionInit)


def read_sections(cfg: dict) -> tuple[GearSection, TrainSection]:
    """The typed ``gear`` and ``train`` sections of a run config."""
    for key in ("gear", "train", "seed"):
        if key not in cfg:
            raise ConfigError(
                f"config: missing section {key!r} (train_gear needs {', '.join(TRAIN_CONFIG_KEYS)})"
            )
    return (
        dataclass_from_mapping(GearSection, cfg["gear"], "gear"),
        dataclass_from_mapping(TrainSection, cfg["train"], "train"),
    )


# --------------------------------------------------------------------------------------------
# Schedules and checks
# --------------------------------------------------------------------------------------------
def learning_rate(step: int, total_steps: int, lr: float, schedule: ScheduleSection) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warmup, then cosine to min_lr.

    ``step == 0`` gives ``warmup_lr``, ``step == warmup_steps`` gives ``lr``, the last step
    (``total_steps - 1``) gives ``min_lr``.
    """
    if step < schedule.warmup_steps:
        return schedule.warmup_lr + (lr - schedule.warmup_lr) * step / schedule.warmup_steps
    decay_steps = total_steps - 1 - schedule.warmup_steps
    if decay_steps <= 0:
        return lr
    progress = min(1.0, (step - schedule.warmup_steps) / decay_steps)
    return schedule.min_lr + 0.5 * (lr - schedule.min_lr) * (1.0 + math.cos(math.pi * progress))


def alpha_at(step: int, steps_per_epoch: int, alpha: float, ramp_epochs: float) -> float:
    """Soft-target weight at optimizer step ``step``: 0 at step 0, ``alpha`` from ``ramp_epochs`` epochs on."""
    if ramp_epochs <= 0:
        return alpha
    return alpha * min(1.0, step / (ramp_epochs * steps_per_epoch))


def check_queue_size(queue_size: int, batch_size: int, world_size: int) -> None:
    """Raise unless ``queue_size`` is a multiple of the global micro-batch ``batch_size x world_size``."""
    global_batch = batch_size * world_size
    if queue_size % global_batch:
        lower = (queue_size // global_batch) * global_batch
        raise ConfigError(
            f"train.queue_size {queue_size} is not a multiple of the global batch: {batch_size} "
            f"(train.scenarios.<scenario>.batch_size, per process) x {world_size} process(es) = {global_batch}. "
            f"Each micro-step enqueues one global batch, so the queue must hold a whole number of them; "
            f"use e.g. {lower or global_batch} or {lower + global_batch}."
        )


# --------------------------------------------------------------------------------------------
# Distributed helpers (identity in a single process)
# --------------------------------------------------------------------------------------------
def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if _distributed() else 1


def rank() -> int:
    return dist.get_rank() if _distributed() else 0


@torch.no_grad()
def all_gather(tensor: Tensor) -> Tensor:
    """Concatenate ``tensor`` from every process along dim 0 (rank order); no gradient."""
    if not _distributed():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


@torch.no_grad()
def all_reduce_sum(tensor: Tensor) -> Tensor:
    """Sum over processes (a copy; no gradient)."""
    tensor = tensor.detach().clone()
    if _distributed():
        dist.all_reduce(tensor)
    return tensor


# --------------------------------------------------------------------------------------------
# The training wrapper: momentum encoders, queues, temperature, losses
# --------------------------------------------------------------------------------------------
class GearTrainingModule(nn.Module):
    """GeAR plus what only training needs: momentum encoders, feature queues, temperature.

    Args:
        model: the GeAR model being trained (saved alone for inference).
        train: the ``train`` section.
        lm_loss: whether the variant trains L_LM (``train.variants.<v>.lm_loss``).
    """

    def __init__(self, model: GearModel, train: TrainSection, lm_loss: bool):
        super().__init__()
        cfg = model.config
        self.model = model
        self.lm_loss = lm_loss
        self.momentum = train.momentum
        self.cl_weight, self.lm_weight = train.cl_weight, train.lm_weight
        self.temperature_range = (train.temperature_min, train.temperature_max)
        # The momentum query encoder copies Eq's bi-encoder part only: the fusion blocks have no momentum twin.
        self.momentum_query_encoder = Stack(
            cfg, cfg.vocab_size, cfg.num_hidden_layers, cross_attention=False, causal=False
        )
        online_query = {
            k: v for k, v in model.query_encoder.state_dict().items() if ".cross_attention." not in k
        }
        self.momentum_query_encoder.load_state_dict(online_query, strict=True)
        self.momentum_document_encoder = copy.deepcopy(model.document_encoder)
        for module in (self.momentum_query_encoder, self.momentum_document_encoder):
            module.requires_grad_(False)
        self.temperature = nn.Parameter(torch.tensor(float(train.temperature_init)))
        size, dim = train.queue_size, cfg.hidden_size
        self.register_buffer("query_queue", torch.zeros(size, dim))
        self.register_buffer("document_queue", torch.zeros(size, dim))
        self.register_buffer("doc_key_queue", torch.full((size,), -1, dtype=torch.int64))
        self.queue_ptr = 0  # host-side, so that enqueueing never synchronises with the device
        if not lm_loss:  # GeAR_CL: fusion blocks, decoder and LM head are never used
            for name, param in model.named_parameters():
                if ".cross_attention." in name or name.startswith(("decoder.", "lm_head.")):
                    param.requires_grad_(False)
        self._momentum_pairs = self._pair_parameters()

    def _pair_parameters(self) -> tuple[list[Tensor], list[Tensor]]:
        momentum, online = [], []
        for twin, source in (
            (self.momentum_query_encoder, self.model.query_encoder),
            (self.momentum_document_encoder, self.model.document_encoder),
        ):
            params = dict(source.named_parameters())
            for name, param in twin.named_parameters():
                momentum.append(param)
                online.append(params[name])
        return momentum, online

    @torch.no_grad()
    def momentum_update(self, precision: StepPrecision | None = None) -> None:
        """``m <- mu m + (1 - mu) theta`` for every momentum parameter, in one fused call (on the
        float32 masters when ``precision`` keeps bf16 weights, gear.training.precision)."""
        momentum, online = self._momentum_pairs
        if precision is not None:
            precision.momentum_update(momentum, online, self.momentum)
        else:
            torch._foreach_lerp_(momentum, online, 1.0 - self.momentum)

    @torch.no_grad()
    def clamp_temperature(self) -> None:
        self.temperature.clamp_(*self.temperature_range)

    @torch.no_grad()
    def enqueue(self, query_keys: Tensor, document_keys: Tensor, doc_keys: Tensor) -> None:
        """Write a global batch of momentum features into the queues (FIFO, wrapping around)."""
        n = query_keys.shape[0]
        ptr = self.queue_ptr
        self.query_queue[ptr : ptr + n] = query_keys
        self.document_queue[ptr : ptr + n] = document_keys
        self.doc_key_queue[ptr : ptr + n] = doc_keys
        self.queue_ptr = (ptr + n) % self.query_queue.shape[0]

    def forward(
        self, batch: dict[str, Tensor], alpha: float
    ) -> tuple[Tensor, dict[str, Tensor], tuple[Tensor, ...]]:
        """One micro-batch.

        Args:
            batch: tensors of :class:`gear.training.triples.TripleCollator` on the model's device.
            alpha: soft-target weight of this step.

        Returns:
            loss to back-propagate (scaled for DDP, see the module docstring); detached statistics
            ``cl``, ``lm_sum``, ``lm_tokens`` (this process); the gathered momentum features and
            doc keys to enqueue once the step is done.
        """
        model = self.model
        q_ids, q_mask = batch["query_ids"], batch["query_mask"]
        d_ids, d_mask = batch["document_ids"], batch["document_mask"]
        doc_keys = batch["doc_keys"]
        query_states = model.query_encoder(q_ids, q_mask).hidden_states
        document_states = model.document_encoder(d_ids, d_mask).hidden_states
        with torch.no_grad():
            query_m = F.normalize(
                mean_pool(self.momentum_query_encoder(q_ids, q_mask).hidden_states, q_mask), dim=-1
            )
            document_m = F.normalize(
                mean_pool(self.momentum_document_encoder(d_ids, d_mask).hidden_states, d_mask), dim=-1
            )
            query_m_all, document_m_all, keys_all = (
                all_gather(query_m),
                all_gather(document_m),
                all_gather(doc_keys),
            )

        # Similarities in float32, outside autocast: logits divided by a temperature near 0.05
        # magnify bf16 rounding.
        with torch.autocast(device_type=q_ids.device.type, enabled=False):
            query_feat = F.normalize(mean_pool(query_states, q_mask), dim=-1)
            document_feat = F.normalize(mean_pool(document_states, d_mask), dim=-1)
            with torch.no_grad():
                query_bank = torch.cat([query_m_all, self.query_queue])  # (N + Q, H)
                document_bank = torch.cat([document_m_all, self.document_queue])
                key_bank = torch.cat([keys_all, self.doc_key_queue])
                empty = (key_bank < 0)[None, :]  # queue slots not filled yet
                positives = (doc_keys[:, None] == key_bank[None, :]).to(torch.float32)
                targets = positives / positives.sum(1, keepdim=True)
                temperature = self.temperature.detach()
                sim_q2d_m = (query_m @ document_bank.T / temperature).masked_fill(empty, MASKED_LOGIT)
                sim_d2q_m = (document_m @ query_bank.T / temperature).masked_fill(empty, MASKED_LOGIT)
                q2d_targets = alpha * sim_q2d_m.softmax(1) + (1 - alpha) * targets
                d2q_targets = alpha * sim_d2q_m.softmax(1) + (1 - alpha) * targets
            sim_q2d = (query_feat @ document_bank.T / self.temperature).masked_fill(empty, MASKED_LOGIT)
            sim_d2q = (document_feat @ query_bank.T / self.temperature).masked_fill(empty, MASKED_LOGIT)
            loss_q2d = -(F.log_softmax(sim_q2d, dim=1) * q2d_targets).sum(1).mean()
            loss_d2q = -(F.log_softmax(sim_d2q, dim=1) * d2q_targets).sum(1).mean()
            loss_cl = (loss_q2d + loss_d2q) / 2

        stats = {"cl": loss_cl.detach()}
        loss = self.cl_weight * loss_cl
        if self.lm_loss:
            lm_sum, lm_tokens = model.lm_loss_sum(
                q_ids, q_mask, document_states, d_mask, batch["target_input"], batch["target_labels"]
            )
            global_tokens = all_reduce_sum(lm_tokens).clamp(min=1.0)
            # DDP averages gradients over processes: x world size makes that average the gradient
            # of (global sum / global count).
            loss = loss + self.lm_weight * lm_sum * (world_size() / global_tokens)
            stats["lm_sum"], stats["lm_tokens"] = lm_sum.detach(), lm_tokens
        return loss, stats, (query_m_all, document_m_all, keys_all)


def compile_stacks(training: GearTrainingModule) -> None:
    """``torch.compile`` the five transformer stacks in place (config ``train.compile``); the
    losses and queue updates around them stay eager."""
    model = training.model
    for stack in (
        model.query_encoder,
        model.document_encoder,
        model.decoder,
        training.momentum_query_encoder,
        training.momentum_document_encoder,
    ):
        stack.compile(dynamic=None)


def build_optimizer(
    params: nn.Module | Iterable[Tensor] | Iterable[tuple[str, Tensor]],
    opt: OptimizerSection,
    device: torch.device,
    new_parameters: Collection[str] = (),
) -> torch.optim.AdamW:
    """AdamW over the trainable tensors of ``params``: a module, the tensors of
    :meth:`gear.training.precision.StepPrecision.optimizer_parameters`, or ``(name, tensor)`` pairs
    (:meth:`~gear.training.precision.StepPrecision.named_optimizer_parameters`).

    Weight decay applies to matrices only (module docstring). With names, the tensors named in
    ``new_parameters`` learn at ``opt.new_parameters_lr_multiplier`` x the rate and the one named
    ``temperature`` at ``opt.temperature_lr_multiplier`` x; every group carries its
    ``lr_multiplier``, which the training loop applies to the scheduled rate.
    """
    if isinstance(params, nn.Module):
        params = params.parameters()
    named = [p if isinstance(p, tuple) else ("", p) for p in params]
    new = set(new_parameters)
    groups: dict[tuple[float, bool], list[Tensor]] = {}
    for name, param in named:
        if not param.requires_grad:
            continue
        multiplier = 1.0
        if name in new:
            multiplier = opt.new_parameters_lr_multiplier
        elif name == "temperature":
            multiplier = opt.temperature_lr_multiplier
        groups.setdefault((multiplier, param.ndim >= 2), []).append(param)
    param_groups = [
        {
            "params": tensors,
            "weight_decay": opt.weight_decay if decayed else 0.0,
            "lr": opt.lr * multiplier,
            "lr_multiplier": multiplier,
        }
        for (multiplier, decayed), tensors in sorted(groups.items(), key=lambda kv: (kv[0][0], not kv[0][1]))
    ]
    return torch.optim.AdamW(
        param_groups,
        lr=opt.lr,
        betas=tuple(opt.betas),
        eps=opt.eps,
        fused=device.type in ("cuda", "cpu") or None,
    )


def train_step(
    training: GearTrainingModule,
    precision: StepPrecision,
    optimizer: torch.optim.Optimizer,
    micro_batches: Sequence[dict[str, Tensor]],
    alpha: float,
    lr: float,
    wrapped: nn.Module | None = None,
) -> list[dict[str, Tensor]]:
    """One optimizer step: forward and backward of every micro-batch, then the update.

    Each micro-batch's loss is divided by their number (gradient accumulation); its keys enter the
    queues right after its backward. Then every group's rate is ``lr`` x its ``lr_multiplier``,
    AdamW steps (on the float32 masters under ``bf16-master``), the momentum encoders follow and
    the temperature is clamped. The loop of :func:`train_gear` and the train bench
    (``gear.tools.bench``) both call this.

    Args:
        training: the training module (model, momentum encoders, queues, temperature).
        precision: how the step computes (:class:`gear.training.precision.StepPrecision`).
        optimizer: from :func:`build_optimizer`.
        micro_batches: tensors of :class:`gear.training.triples.TripleCollator` on the device.
        alpha: the LM loss weight at this step (:func:`alpha_at`).
        lr: the scheduled learning rate (:func:`learning_rate`).
        wrapped: ``training`` inside ``DistributedDataParallel`` under several processes
            (gradients are synchronised at the last micro-batch only); default ``training``.

    Returns:
        The statistics of each micro-batch (tensors, see :meth:`GearTrainingModule.forward`).
    """
    wrapped = training if wrapped is None else wrapped
    stats_of_micro_batches = []
    for index, batch in enumerate(micro_batches):
        last = index == len(micro_batches) - 1
        sync = contextlib.nullcontext() if last or wrapped is training else wrapped.no_sync()
        with sync:
            with precision.autocast():
                loss, stats, bank = wrapped(batch, alpha)
            if len(micro_batches) > 1:
                loss = loss / len(micro_batches)
            loss.backward()
        training.enqueue(*bank)
        stats_of_micro_batches.append(stats)
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_multiplier"]
    precision.gradients_to_masters()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    precision.masters_to_weights()
    training.momentum_update(precision)
    training.clamp_temperature()
    return stats_of_micro_batches


def new_parameter_names(newly_initialised: Iterable[str], prefix: str = "model.") -> list[str]:
    """Training-module names of the parameters a checkpoint did not provide at all (a
    :class:`gear.model.modeling.LoadReport`'s ``newly_initialised``, row ranges such as the ``[DEC]`` row
    of a pretrained embedding left out: the rest of that tensor is pretrained)."""
    return [prefix + name for name in newly_initialised if "[" not in name]


# --------------------------------------------------------------------------------------------
# State checkpoints
# --------------------------------------------------------------------------------------------
STATE_FILE = "state.pt"
MANIFEST = "manifest.json"
_STEP_DIR = re.compile(r"^step_(\d+)$")


#: The modules whose code decides what training produces; the resume fingerprint hashes them, so
#: a fix to the model or the trainer never resumes (or republishes) weights of the old code.
TRAINING_CODE = ("model", "training")


def training_code_fingerprint() -> str:
    """Short SHA-256 of the source of every module in the :data:`TRAINING_CODE` packages of gear."""
    gear_root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for package in TRAINING_CODE:
        for path in sorted((gear_root / package).glob("*.py")):
            digest.update(path.relative_to(gear_root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class StateStore:
    """Step checkpoints in ``root/step_{n}``: atomic folders, verified by a manifest written last."""

    def __init__(self, root: Path, fingerprint: str, keep: int = 2):
        self.root, self.fingerprint, self.keep = Path(root), fingerprint, keep
        # Folders whose checksums this process has verified (or just computed while writing):
        # each is hashed once per process, not again at every later save's clean-up.
        self._verified: set[Path] = set()

    def steps(self) -> list[tuple[int, Path]]:
        """Every ``(step, folder)`` under the root, newest first, complete or not."""
        if not self.root.is_dir():
            return []
        found = [
            (int(m.group(1)), p) for p in self.root.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()
        ]
        return sorted(found, reverse=True)

    def verify(self, folder: Path) -> str | None:
        """None when ``folder`` is a complete checkpoint of this run, else the reason it is not."""
        if folder in self._verified and (folder / MANIFEST).is_file():
            return None
        problem = self._check(folder)
        if problem is None:
            self._verified.add(folder)
        return problem

    def _check(self, folder: Path) -> str | None:
        manifest_path = folder / MANIFEST
        if not manifest_path.is_file():
            return "no manifest (incomplete write)"
        try:
            manifest = read_json(manifest_path)
        except ValueError as err:
            return f"unreadable manifest: {err}"
        if manifest.get("fingerprint") != self.fingerprint:
            return "written under another configuration, data file or process count"
        for name, digest in manifest.get("files", {}).items():
            path = folder / name
            if not path.is_file():
                return f"{name} is missing"
            if file_sha256(path) != digest:
                return f"{name} does not match its checksum (truncated or corrupt)"
        return None

    def discard_other_runs(self) -> None:
        """Remove the complete checkpoints written under another fingerprint (another run)."""
        for _, folder in self.steps():
            if (folder / MANIFEST).is_file() and read_json(folder / MANIFEST).get(
                "fingerprint"
            ) != self.fingerprint:
                log.warning(
                    "discarding %s: written under another configuration, data file or training code", folder
                )
                shutil.rmtree(folder, ignore_errors=True)

    def clear(self) -> None:
        """Remove every step checkpoint (a finished run's, before training afresh)."""
        for _, folder in self.steps():
            shutil.rmtree(folder, ignore_errors=True)
        self._verified.clear()

    def newest(self) -> tuple[int, dict] | None:
        """The newest verified checkpoint ``(step, payload)``; bad ones are skipped with a warning."""
        for step, folder in self.steps():
            problem = self.verify(folder)
            if problem is None:
                try:
                    return step, torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
                except Exception as err:  # a checksum-valid file torch cannot read: skip it too
                    problem = f"cannot be loaded: {err}"
            log.warning("skipping state checkpoint %s: %s", folder, problem)
        return None

    def save(self, step: int, payload: dict) -> Path:
        """Write ``step_{step}`` atomically, then keep only the newest ``keep`` valid checkpoints."""
        target = self.root / f"step_{step}"
        try:
            with atomic_dir(target) as tmp:
                torch.save(payload, tmp / STATE_FILE)
                write_json(
                    tmp / MANIFEST,
                    {
                        "step": step,
                        "fingerprint": self.fingerprint,
                        "files": {STATE_FILE: file_sha256(tmp / STATE_FILE)},
                    },
                )
            self._verified.add(target)  # its checksum was just computed from the written file
        except (OSError, RuntimeError) as err:
            # torch.save reports a full disk as a bare RuntimeError ("file write failed",
            # "unexpected pos"): say which checkpoint failed, why that may be, and what is safe.
            free = shutil.disk_usage(self.root).free / 2**20
            message = (
                f"{target}: the training state could not be written ({err}); {free:.0f} MiB are free "
                "there: is the disk or the quota full, or the file-size limit (ulimit -f) reached? "
                "Nothing of this checkpoint was kept; the previous ones are intact, and rerunning "
                "the same command resumes from the newest."
            )
            raise type(err)(*((err.errno, message) if isinstance(err, OSError) else (message,))) from err
        kept = 0
        for _, folder in self.steps():
            if kept < self.keep and self.verify(folder) is None:
                kept += 1
            else:
                shutil.rmtree(folder, ignore_errors=True)
        return target


def _rng_state() -> dict:
    numpy_state = np.random.get_state()  # noqa: NPY002 (the legacy global RNG other code may draw from)
    return {
        "python": random.getstate(),
        "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_state(state: dict) -> None:
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _gather_objects(obj: Any) -> list[Any]:
    if not _distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


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


def _select_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def _init_distributed() -> None:
    """Join the process group torchrun describes (WORLD_SIZE > 1); nccl on GPU, gloo on CPU."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not _distributed():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def _no_buffer_sync() -> dict:
    """DDP keyword that turns off per-forward buffer broadcasts: the queues are identical on every
    rank by construction (all-gathered features), so broadcasting them would only cost time."""
    import inspect

    params = inspect.signature(nn.parallel.DistributedDataParallel.__init__).parameters
    return (
        {"forward_sync_buffers": False} if "forward_sync_buffers" in params else {"broadcast_buffers": False}
    )


def _remove_unfinished_writes(folder: Path, prefixes: tuple[str, ...]) -> None:
    """Delete the hidden temporaries (names starting with one of ``prefixes``) that writes killed
    before their final rename left in ``folder``; call only when no other process writes there."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.name.startswith(prefixes):
            log.warning("removing %s: left by a write that never finished (the process was killed)", path)
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


class CheckpointError(RuntimeError):
    """A checkpoint or epoch model on disk is damaged; the message says what to delete."""


#: Checksums of an epoch model's files, written last into its kept folder (gear.training.trainer).
EPOCH_MANIFEST = "epoch_manifest.json"


def _write_epoch_manifest(folder: Path) -> None:
    files = {item.name: file_sha256(item) for item in sorted(folder.iterdir()) if item.is_file()}
    write_json(folder / EPOCH_MANIFEST, {"files": files})


def _check_epoch(folder: Path) -> str | None:
    """None when the kept epoch model ``folder`` matches its manifest, else what is wrong."""
    try:
        files = read_json(folder / EPOCH_MANIFEST)["files"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"no readable {EPOCH_MANIFEST} ({err})"
    for name, digest in files.items():
        if not (folder / name).is_file():
            return f"{name} is missing"
        if file_sha256(folder / name) != digest:
            return f"{name} does not match its checksum (truncated or corrupt)"
    return None


def _publish_epochs(kept: Path, published: Path, verified: set[Path] | None = None) -> None:
    """Rebuild ``published`` (``out_root/epochs``) from the kept epoch models, atomically.

    Every kept model is first checked against the checksums written with it (once per process
    with ``verified``): a truncated or corrupt one is never published (Figure 4a/b reads them);
    the error names it and says how to retrain it. Hard links, so no space is used twice (copies
    where links are impossible); rebuilt whole, so nothing of an earlier, discarded run survives.

    Raises:
        CheckpointError: a kept epoch model that does not match its checksums.
    """
    if not kept.is_dir():
        return
    verified = set() if verified is None else verified
    folders = sorted(p for p in kept.iterdir() if p.name.startswith("epoch_"))
    for folder in folders:
        if folder not in verified:
            problem = _check_epoch(folder)
            if problem is not None:
                raise CheckpointError(
                    f"{folder}: {problem}. This epoch model was damaged after it was written (a crash "
                    f"or a full disk) and is not published. Delete {folder} and the step checkpoints "
                    f"after it in {kept.parent} (or all of {kept.parent} to retrain everything), then "
                    "rerun the same command."
                )
            verified.add(folder)
    with atomic_dir(published) as tmp:
        for folder in folders:
            (tmp / folder.name).mkdir()
            for item in folder.iterdir():
                try:
                    os.link(item, tmp / folder.name / item.name)
                except OSError:
                    shutil.copy2(item, tmp / folder.name / item.name)


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
    from tqdm.auto import tqdm

    gear_section, train = read_sections(cfg)
    if variant not in train.variants:
        raise ConfigError(f"train.variants: no variant {variant!r}; known: {sorted(train.variants)}")
    if scenario not in train.scenarios:
        raise ConfigError(f"train.scenarios: no scenario {scenario!r}; known: {sorted(train.scenarios)}")
    lm_loss = bool(train.variants[variant]["lm_loss"])
    batch_size = int(train.scenarios[scenario]["batch_size"])
    out_root = Path(out_root)

    _init_distributed()
    world, this_rank = world_size(), rank()
    device = _select_device()
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
    stop_at = min(total_steps, max_steps) if max_steps else total_steps
    plan = EpochPlan(dataset.byte_lengths, global_batch, steps_per_epoch * accumulation, seed)

    # Model: identical on every process (seeded), then per-process RNG streams for dropout.
    checkpoint = resolve_model(
        gear_section.init_checkpoint,
        cfg.get("model_paths") or {},
        bool(cfg.get("allow_downloads", False)),
        (cfg.get("model_revisions") or {}).get(gear_section.init_checkpoint),
    )
    checkpoint = _local_checkpoint(
        checkpoint, (cfg.get("model_revisions") or {}).get(gear_section.init_checkpoint)
    )
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
    if this_rank == 0:
        log.info("GeAR from %s: %s", checkpoint, report.summary())
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
        }
    )
    state_root = out_root / "state"
    store = StateStore(state_root, fingerprint)
    # Epoch models of this run are kept under its fingerprint; those of another run are discarded.
    kept_epochs, published_epochs = state_root / f"epochs-{fingerprint}", out_root / "epochs"
    verified_epochs: set[Path] = set()  # kept epoch models checked (or written) by this process
    if this_rank == 0:
        # A process killed while writing a checkpoint or a model leaves its hidden temporary
        # folder (gear.io.atomic_dir): never read, but as large as a checkpoint. No other process
        # writes under out_root now (Snakemake locks its outputs), so every one of them is stale.
        _remove_unfinished_writes(state_root, (".step_",))
        _remove_unfinished_writes(kept_epochs, (".epoch_",))
        _remove_unfinished_writes(out_root, (".model.", ".epochs."))
    if this_rank == 0 and state_root.is_dir():
        store.discard_other_runs()
        for folder in state_root.glob("epochs-*"):
            if folder != kept_epochs:
                log.warning(
                    "discarding %s: epoch models of another configuration, data file or training code", folder
                )
                shutil.rmtree(folder, ignore_errors=True)
    if _distributed():
        dist.barrier()

    step = 0
    epoch_acc = _Accumulator.zeros(device)
    records: list[dict] = []
    resumed = store.newest()
    if resumed is not None and resumed[0] >= stop_at:
        # The run these states belong to has finished and its outputs are gone (Snakemake
        # deletes them before a forced rerun): resuming would train nothing and republish the
        # old weights. A rerun trains afresh.
        if this_rank == 0:
            log.info(
                "%s holds a finished run (step %d of %d): training afresh", state_root, resumed[0], stop_at
            )
        resumed = None
        if world > 1:
            dist.barrier()  # every rank has read the store before rank 0 empties it
        if this_rank == 0:
            store.clear()
    torch.manual_seed(seed + this_rank)
    random.seed(seed + this_rank)
    np.random.seed((seed + this_rank) % 2**32)  # noqa: NPY002
    if resumed is not None:
        step, payload = resumed
        with precision.fp32_weights():  # the checkpoint holds the float32 masters
            training.load_state_dict(payload["module"], strict=True)
        training.queue_ptr = int(payload["queue_ptr"])
        optimizer.load_state_dict(payload["optimizer"])
        records = list(payload["log"])
        per_rank = payload["per_rank"][this_rank]
        epoch_acc = _Accumulator.from_state(per_rank["epoch_accumulator"], device)
        _set_rng_state(per_rank["rng"])
        if this_rank == 0:
            log.info(
                "resuming from %s at step %d (epoch %d, step %d of %d in the epoch)",
                state_root / f"step_{step}",
                step,
                payload["epoch"],
                payload["position"],
                steps_per_epoch,
            )

    if train.compile:
        compile_stacks(training)
    wrapped: nn.Module = training
    if world > 1:
        wrapped = nn.parallel.DistributedDataParallel(
            training, device_ids=[device.index] if device.type == "cuda" else None, **_no_buffer_sync()
        )

    collator = TripleCollator(
        tokenizer,
        gear_section.max_query_tokens,
        gear_section.max_document_tokens,
        gear_section.max_target_tokens,
        model.config.decoder_start_token_id,
        model.config.eos_token_id,
    )

    def save_state() -> None:
        per_rank = _gather_objects({"rng": _rng_state(), "epoch_accumulator": epoch_acc.state()})
        if this_rank == 0:
            epoch, position = divmod(step, steps_per_epoch)
            with precision.fp32_weights():
                module_state = training.state_dict()
            store.save(
                step,
                {
                    "module": module_state,
                    "queue_ptr": training.queue_ptr,
                    "optimizer": optimizer.state_dict(),
                    "scheduler": {"step": step, "total_steps": total_steps},
                    "step": step,
                    "epoch": epoch,
                    "position": position,
                    "per_rank": per_rank,
                    "log": records,
                },
            )

    def save_epoch(epoch: int) -> None:
        means = epoch_acc.means(reduce=True)
        if this_rank == 0:
            if not (kept_epochs / f"epoch_{epoch}").is_dir():
                with atomic_dir(kept_epochs / f"epoch_{epoch}") as tmp, precision.fp32_weights():
                    model.save_pretrained(tmp, tokenizer)
                    _write_epoch_manifest(tmp)
                verified_epochs.add(kept_epochs / f"epoch_{epoch}")
            _publish_epochs(kept_epochs, published_epochs, verified_epochs)
            record = {"event": "epoch", "epoch": epoch, "step": step, **means}
            records.append(record)
            log.info("epoch %d done (step %d): %s", epoch, step, _format(means))

    window = _Accumulator.zeros(device)
    last_log = time.monotonic()
    progress = tqdm(
        total=stop_at,
        initial=step,
        desc=f"train {variant}/{scenario}",
        disable=this_rank != 0,
        mininterval=5.0,
    )
    wrapped.train()
    while step < stop_at:
        epoch, position = divmod(step, steps_per_epoch)
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_sampler=ListBatchSampler(
                plan.rank_batches(epoch, this_rank, world, position * accumulation)
            ),
            collate_fn=collator,
            num_workers=train.num_workers,
            pin_memory=device.type == "cuda",
            generator=torch.Generator(),  # iterators draw their seed here, not from the global RNG
        )
        for micro_batches in _groups(loader, accumulation):
            micro_batches = [
                {k: v.to(device, non_blocking=True) for k, v in b.items()} for b in micro_batches
            ]
            alpha = alpha_at(step, steps_per_epoch, train.alpha, train.alpha_ramp_epochs)
            current_lr = learning_rate(step, total_steps, train.optimizer.lr, train.schedule)
            for stats in train_step(
                training, precision, optimizer, micro_batches, alpha, current_lr, wrapped
            ):
                epoch_acc.add(stats)
                window.add(stats)
            step += 1
            progress.update(1)
            if this_rank == 0 and time.monotonic() - last_log >= train.log_every_seconds:
                means = window.means()
                record = {
                    "event": "log",
                    "step": step,
                    "epoch": epoch + 1,
                    "lr": current_lr,
                    "alpha": alpha,
                    "temperature": float(training.temperature.detach()),
                    **means,
                }
                records.append(record)
                log.info(
                    "step %d/%d lr %.3g alpha %.3f temp %.4f %s",
                    step,
                    stop_at,
                    current_lr,
                    alpha,
                    record["temperature"],
                    _format(means),
                )
                window, last_log = _Accumulator.zeros(device), time.monotonic()
            epoch_done = step % steps_per_epoch == 0
            if epoch_done:
                save_epoch(step // steps_per_epoch)
                epoch_acc = _Accumulator.zeros(device)
            if epoch_done or step % train.checkpoint_every_steps == 0 or step == stop_at:
                save_state()
            if step == stop_at or epoch_done:
                break
    progress.close()

    final = out_root / "model"
    if this_rank == 0:
        _publish_epochs(kept_epochs, published_epochs, verified_epochs)
        with atomic_dir(final) as tmp, precision.fp32_weights():
            model.save_pretrained(tmp, tokenizer)
            write_json(tmp / "gear_config.json", cfg["gear"])
            write_json(
                tmp / "train_config.json",
                {
                    "variant": variant,
                    "scenario": scenario,
                    "train_file": str(train_file),
                    "data": dataset.fingerprint(),
                    "code": training_code_fingerprint(),
                    "world_size": world,
                    "steps": step,
                    "total_steps": total_steps,
                    "steps_per_epoch": steps_per_epoch,
                    "config": {k: cfg[k] for k in TRAIN_CONFIG_KEYS if k in cfg},
                    "load_report": {"newly_initialised": report.newly_initialised, "unused": report.unused},
                },
            )
            write_jsonl(tmp / "train_log.jsonl", records)
        log.info("model written to %s after %d steps", final, step)
    if _distributed():
        dist.barrier()
    return final


def _groups(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of ``size`` items (the last may be shorter): one optimizer step's micro-batches."""
    iterator = iter(items)
    while group := list(itertools.islice(iterator, size)):
        yield group


def _format(means: dict[str, float]) -> str:
    return " ".join(f"{k} {v:.4f}" for k, v in means.items())


def _local_checkpoint(name_or_path: str, revision: str | None) -> str:
    """A local folder for a resolved checkpoint (a hub id is downloaded, which resolve_model allowed)."""
    if Path(name_or_path).is_dir():
        return name_or_path
    from huggingface_hub import snapshot_download

    folder = snapshot_download(
        name_or_path, revision=revision, allow_patterns=["*.json", "*.txt", "*.safetensors"]
    )
    if not (Path(folder) / "model.safetensors").is_file():  # an older checkpoint: PyTorch weights only
        folder = snapshot_download(
            name_or_path, revision=revision, allow_patterns=["*.json", "*.txt", "pytorch_model.bin"]
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
    if _distributed():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
