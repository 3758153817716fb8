"""Relevant Information Retrieval data, synthesized from Wikipedia (paper Appendix A, SPEC 3).

- :mod:`data_prep.rir.preprocess`: sentence and document filters, candidate sentences;
- :mod:`data_prep.rir.rewrite`: candidate sentences to search queries (LLM backends, cache);
- :mod:`data_prep.rir.postprocess`: keyword clean-up, relevance filter, 95/5 split, outputs;
- :mod:`data_prep.rir.pipeline`: :func:`build_rir`, the three steps chained.
"""

from data_prep.rir.pipeline import build_rir

__all__ = ["build_rir"]
