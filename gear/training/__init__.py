"""Training GeAR: objectives, the optimizer step, the loop, checkpoints, precision, triples.

- :mod:`gear.training.trainer`: ``train_gear``, the training loop (its docstring describes the
  losses, the queues, resumption and the multi-process set-up), and ``launch_training`` (the
  workflow's entry, one process or ``torchrun``).
- :mod:`gear.training.objectives`: ``GearTrainingModule``, the contrastive loss with momentum
  encoders and feature queues, and the LM loss of one micro-batch.
- :mod:`gear.training.step`: ``train_step`` (one optimizer step, also timed by the train bench),
  ``build_optimizer``, ``compile_stacks``.
- :mod:`gear.training.checkpoints`: ``StateStore`` (resumable step checkpoints), the RNG states,
  the per-epoch models, and the training-code fingerprint.
- :mod:`gear.training.settings`: the ``gear`` and ``train`` config sections, the schedules.
- :mod:`gear.training.distributed`: helpers that are identities in a single process.
- :mod:`gear.training.precision`: how a step computes (fp32, bf16 autocast, or bf16 weights with
  float32 master weights).
- :mod:`gear.training.triples`: the triples file, the seeded epoch plan and the collator.

Imports the model, the core and :mod:`gear.inference` (its localization settings) only.
"""
