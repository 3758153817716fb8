"""Training GeAR: objectives, the optimizer step, the loop, checkpoints, precision, triples.

- :mod:`gear.training.trainer`: ``GearTrainingModule`` (contrastive loss with momentum encoders
  and feature queues, LM loss), ``train_step``, ``train_gear`` (the loop), ``StateStore``
  (resumable step checkpoints), the distributed helpers and ``launch_training`` (the workflow's
  entry).
- :mod:`gear.training.precision`: how a step computes (fp32, bf16 autocast, bf16 weights with
  float32 masters).
- :mod:`gear.training.triples`: the triples file, the seeded epoch plan and the collator.

Imports the model, the core and :mod:`gear.inference` (its localization settings) only.
"""
