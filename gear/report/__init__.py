"""The suite's reports: the paper's tables and figures, rebuilt from results JSON only.

Every number in a report comes from a results file of the run (``R/eval/...``, ``R/analysis/...``,
``R/data/*/stats.json``; paths from :mod:`gear.layout`) or from the paper's printed numbers in
``paper_numbers.yaml``; nothing is recomputed or invented here, and a result the run did not
produce is shown as "not run".

Modules, one concept each:

- :mod:`gear.report.tables`: Tables 1-3 (each reproduced number beside the paper's, with the
  difference and a within / outside tolerance mark), Tables 5-7 (data statistics) and the
  significance table (paired bootstrap p-values of GeAR against every other model), rendered as
  Markdown, LaTeX (booktabs), CSV and HTML.
- :mod:`gear.report.figures`: Figure 3/5 (highlighted tokens of two queries in one document),
  Figure 4a/4b (generation against localization per epoch) and Figure 4c (localization by
  cross-attention layer), drawn with matplotlib (Agg) to PNG and PDF.
- :mod:`gear.evaluation.figure3_data`: the data of Figure 3, computed from a trained GeAR model.
- :mod:`gear.report.explain`: the explanation pages (per data set: retrieved documents, GeAR's
  highlighted tokens, ranked units, generated text), data from a model, page from the data.
- :mod:`gear.report.pages`: HTML helpers and the index page that links every artifact.

Adding a table or a figure: one builder function here (returning a :class:`tables.Table`, or
drawing a matplotlib figure from JSON), one rule in ``workflow/rules/reports.smk`` and its name in
``all_report_targets()`` there.
"""
