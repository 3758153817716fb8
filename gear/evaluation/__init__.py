"""Evaluation: exact search, metrics, the retrieval / localization / generation evaluators, analyses.

- :mod:`gear.evaluation.search`: embeddings encoded once into a cache, exact top-k search (FAISS
  or torch), TREC run files.
- :mod:`gear.evaluation.metrics`: every metric as one function, and the bootstrap.
- :mod:`gear.evaluation.evaluate`: the evaluators (each writes one results JSON), the layer and
  epoch analyses, and ``run_model`` (one workflow job: a model on every data set of a scenario).

The only layer that imports the baselines registry (to build an encoder from an entry).
"""
