"""The paper's tables, rebuilt from the run's results files, each number beside the paper's.

- Tables 1-3 (:func:`build_metric_table`): retrieval R@5 / M@5, localization R@1 / M@1 (QA) and
  R@3 / M@3 (RIR), generation EM / F1 (QA) and ROUGE-1 / ROUGE-L (RIR), per data set. Each cell
  holds the reproduced value, the paper's, their difference (reproduced - paper) and a mark:
  within the configured tolerance or outside it. Rows follow the paper: its row groups
  (pre-trained, retrained, GeAR), its models in its order, then the run's models that the paper
  does not have (e.g. MiniLM in the mini benchmark, BM25) in their registry group, with no paper
  value and a "beyond the paper" mark. A data set (or a result) the run did not evaluate is shown
  as "not run", never filled in; the paper's models the run does not evaluate at all go to one
  compact "paper only" block at the end, with the paper's values alone.
- Tables 5-7 (:func:`build_stats_tables`): training data, retrieval test sets, localization and
  generation test sets, from ``R/data/{dataset}/stats.json`` and the training triples files.
- The significance table (:func:`build_significance_tables`): paired bootstrap p-values of GeAR
  against every other model, per data set and metric, from the ``per_query`` arrays of the result
  JSONs with the evaluation's own resamples (:func:`gear.evaluation.metrics.bootstrap_indices`).

Every table is a :class:`Table` of typed cells, rendered by the same four writers: Markdown,
LaTeX (booktabs; needs ``\\usepackage{booktabs}``), CSV (one line per cell, machine-readable) and
HTML. The paper's numbers and their known oddities (SPEC 9) live in ``paper_numbers.yaml``;
oddities are rendered as footnotes. Adding a table: a builder returning a :class:`Table`.

Modules, one concept each: :mod:`~gear.report.tables.metric_tables` (Tables 1-3),
:mod:`~gear.report.tables.stats` (Tables 5-7), :mod:`~gear.report.tables.significance`,
:mod:`~gear.report.tables.paper` (the paper's numbers), :mod:`~gear.report.tables.cells` (cells,
rows, tables), :mod:`~gear.report.tables.results` (reading results files),
:mod:`~gear.report.tables.writers` and :mod:`~gear.report.tables.jobs` (what the workflow calls).
"""
