"""Evaluation: exact search, metrics, the retrieval / localization / generation evaluators, analyses.

- :mod:`gear.evaluation.embeddings`: a corpus encoded once into a float16 cache on disk.
- :mod:`gear.evaluation.search`: exact top-k search over that cache (FAISS or torch), TREC run files.
- :mod:`gear.evaluation.metrics`: every metric as one function, and the bootstrap.
- :mod:`gear.evaluation.retrieval`, :mod:`~gear.evaluation.localization`,
  :mod:`~gear.evaluation.generation`: the evaluators, each writing one results JSON
  (:mod:`~gear.evaluation.results`) for one test set (:mod:`~gear.evaluation.dataset`) under the
  ``evaluate`` settings (:mod:`~gear.evaluation.settings`).
- :mod:`gear.evaluation.analyses`: GeAR's layer analysis (Figure 4c) and epoch analysis (Figure 4a/b).
- :mod:`gear.evaluation.evaluate`: the workflow's jobs, ``run_model`` (a model on every data set
  of a scenario) and ``run_epoch_analysis``; its docstring gives the conventions of every result.
- :mod:`gear.evaluation.figure3_data`, :mod:`gear.evaluation.explain_data`: the model-run data of
  Figure 3 and of the explanation pages, which the reports draw from JSON alone.

The only layer below the workflow and the tools that imports the baselines registry (to build an
encoder from an entry).
"""
