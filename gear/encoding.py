"""The one interface every retrieval model implements, so that evaluation treats all alike.

A model compared in the suite is a :class:`TextEncoder`: it maps query texts and document texts
to L2-normalised float32 vectors, and says what identifies its vectors (``fingerprint``) so that
a corpus is encoded once per model and cached. Pretrained and retrained baselines
(``baselines/adapters.py``) and GeAR's bi-encoder (``gear/inference/``) all implement it; the
same objects can be handed to mteb (``baselines/mteb_task.py``).

Adding a model kind is one subclass here plus one registry entry in ``config/baselines.yaml``.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import numpy as np


class TextEncoder(abc.ABC):
    """A bi-encoder: separate embeddings for queries and documents.

    Implementations return ``np.ndarray`` of shape ``(len(texts), dim)``, dtype float32, each row
    L2-normalised, so that inner product is cosine similarity.
    """

    #: registry name of the model, e.g. "BGE" or "GeAR"
    name: str

    @abc.abstractmethod
    def encode_queries(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Embed queries (prefixes or instructions for queries applied here)."""

    @abc.abstractmethod
    def encode_documents(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Embed documents (prefixes for documents applied here)."""

    @abc.abstractmethod
    def fingerprint(self) -> str:
        """A string that changes whenever the vectors would: weights, revision, prefixes, pooling, length."""


def length_sorted_order(lengths: Sequence[int]) -> np.ndarray:
    """Indices that sort texts by decreasing length, so each batch pads to similar lengths.

    Encoding in this order and scattering results back with the inverse permutation removes most
    padding work without changing any vector.
    """
    return np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
