"""The workflow layer's planning: which models a run needs and where they come from.

- :mod:`gear.workflow.plan`: resolves every pretrained model the configured run uses before any
  job starts (``plan_models``, ``check_models``), for ``workflow/rules/common.smk``.
- :mod:`gear.workflow.evaluation_plan`: the evaluation jobs (one per model and scenario), their
  inputs, outputs and params, and every evaluation target, for ``workflow/rules/evaluate.smk``.

Imported by the Snakefile's rules; nothing in the suite's packages imports it.
"""
