"""A normalised test set as the evaluators read it, and the localization and generation samples."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_prep.normalized import load_corpus, load_queries
from gear.io import DataFormatError
from gear.layout import scenario_of

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# The test set
# --------------------------------------------------------------------------------------------


@dataclass
class EvalDataset:
    """One normalised test set in memory (``data_prep.normalized`` format).

    Attributes:
        name: data set name (``squad``, ``rir``, ...), which fixes the scenario.
        documents: the corpus, in file order.
        queries: the queries, in file order.
        position: doc_id -> position in ``documents``.
    """

    name: str
    documents: list
    queries: list
    position: dict[str, int]

    @property
    def scenario(self) -> str:
        return scenario_of(self.name)

    def gold(self, query) -> Any:
        return self.documents[self.position[query.doc_id]]

    @classmethod
    def load(cls, name: str, corpus_path: str | Path, queries_path: str | Path) -> EvalDataset:
        """Read ``corpus.jsonl`` and ``queries.jsonl``; a query naming an unknown document, or a
        relevant unit outside its document, fails with the file and query id."""
        scenario_of(name)  # fails early on an unknown data set name
        documents = load_corpus(corpus_path)
        queries = load_queries(queries_path)
        position: dict[str, int] = {}
        for i, doc in enumerate(documents):
            if doc.doc_id in position:
                raise DataFormatError(f"{corpus_path}: document id {doc.doc_id!r} appears twice")
            position[doc.doc_id] = i
        for query in queries:
            for doc_id in query.judgments():
                if doc_id not in position:
                    raise DataFormatError(
                        f"{queries_path}: query {query.query_id!r} names document {doc_id!r}, "
                        f"which is not in {corpus_path}"
                    )
            n_units = len(documents[position[query.doc_id]].units)
            bad = [u for u in query.relevant_units if not 0 <= u < n_units]
            if bad:
                raise DataFormatError(
                    f"{queries_path}: query {query.query_id!r} has relevant units {bad} but its document "
                    f"{query.doc_id!r} has {n_units} units"
                )
        if not queries:
            raise DataFormatError(f"{queries_path}: no queries")
        return cls(name, documents, queries, position)


def unit_texts(document) -> list[str]:
    """The text of each unit of a document (``text[start:end]``)."""
    return [document.text[start:end] for start, end in document.units]


def localization_sample(data: EvalDataset) -> tuple[list, dict[str, int]]:
    """The queries localization is scored on, and the counts of those skipped (by reason).

    A query is skipped when it is not ``fine_grained`` (RIR keeps a sample) or, among the
    fine-grained ones, when it has no relevant unit (QA: no unit contains an answer).
    """
    kept, skipped = [], {"not_fine_grained": 0, "no_relevant_unit": 0}
    for query in data.queries:
        if not query.fine_grained:
            skipped["not_fine_grained"] += 1
        elif not query.relevant_units:
            skipped["no_relevant_unit"] += 1
        else:
            kept.append(query)
    return kept, skipped


def generation_sample(data: EvalDataset) -> tuple[list, dict[str, int]]:
    """The ``fine_grained`` queries generation is scored on (a query without relevant unit is
    kept: SPEC 2), and the count of the others."""
    kept = [q for q in data.queries if q.fine_grained]
    return kept, {"not_fine_grained": len(data.queries) - len(kept)}
