"""The ``gear`` and ``train`` config sections as typed dataclasses, the schedules, and the checks of a run's shape."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gear.config import ConfigError, dataclass_from_mapping
from gear.inference import LocalizationConfig
from gear.model.modeling import CrossAttentionInit

#: The run-config sections train_gear reads (the rule passes only these).
TRAIN_CONFIG_KEYS = ("seed", "allow_downloads", "model_paths", "model_revisions", "gear", "train")


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
    checkpoint_at_epoch_end: bool  # also a state checkpoint at every epoch end (never at the last step)
    num_workers: int  # DataLoader worker processes
    compile: bool  # torch.compile the transformer stacks
    log_every_seconds: float  # period of the progress log line (for people; not in train_log.jsonl)
    record_every_steps: int  # period of the loss records of train_log.jsonl, in optimizer steps


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
