"""A trained GeAR on one's own documents: :func:`load` returns one :class:`TrainedGear`.

The object loads the model folder once (weights and tokenizer, through :class:`GearEncoder`)
and offers the three things GeAR does (paper §3.5):

- :meth:`TrainedGear.retrieve`: rank documents for queries with the bi-encoder (cosine of the
  mean-pooled, L2-normalised embeddings, exact search in numpy);
- :meth:`TrainedGear.localize`: score the document's units (sentences, by the suite's one
  splitter, ``data_prep.normalized.SentenceSplitter``: pysbd, English, ``clean=False``) from the
  fusion encoder's cross-attention, and return every document token with its weight (the
  highlighted tokens of Figure 3);
- :meth:`TrainedGear.generate`: decode the relevant text of a document for a query.

Localization reads its layer and reductions from the model folder's ``gear_config.json`` (the
``gear`` section of the run that trained it, written by ``gear.training.trainer``), so a user
never copies the layer by hand; an epoch checkpoint (``epochs/epoch_{e}``, which has no
``gear_config.json``) needs ``localization=`` passed explicitly.

Choices the paper leaves open, made here: generation stops after ``max_target_tokens - 1``
tokens of the model's config (the decoder length it was trained with, ``[DEC]`` included) unless
asked otherwise; scores of units that truncation cut off are ``-inf`` (as in the evaluation).

``gear.load`` is this module's :func:`load`, reached lazily from the ``gear`` package (its
``__getattr__``), so ``import gear`` stays light and the core still imports nothing above it.

Example:
    >>> model = load("results/mini/models/GeAR/qar/model")  # doctest: +SKIP
    >>> model.retrieve(["who wrote hamlet?"], {"d1": "Hamlet is a tragedy by Shakespeare."}, k=1)  # doctest: +SKIP
    [[RetrievedDocument(rank=1, doc_id='d1', score=0.71, text='Hamlet is a tragedy by Shakespeare.')]]
    >>> model.localize("who wrote hamlet?", "Hamlet is a play. Shakespeare wrote it.").best_unit.text  # doctest: +SKIP
    'Shakespeare wrote it.'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from data_prep.normalized import SentenceSplitter
from gear.config import ConfigError, dataclass_from_mapping
from gear.inference.encoder import GearEncoder
from gear.inference.generation import generate as generate_texts
from gear.inference.localization import LocalizationConfig, scores_of_units, token_weights
from gear.model.modeling import gear_model_folder

#: the run's ``gear`` config section, saved beside the weights by the trainer
GEAR_CONFIG_NAME = "gear_config.json"
#: documents encoded per progress-bar step in :meth:`TrainedGear.retrieve`
_PROGRESS_CHUNK = 256


@dataclass(frozen=True)
class RetrievedDocument:
    """One ranked document of :meth:`TrainedGear.retrieve`."""

    rank: int  # 1-based
    doc_id: str  # the mapping's key, or the position in the sequence as a string
    score: float  # cosine similarity of query and document embeddings
    text: str


@dataclass(frozen=True)
class ScoredUnit:
    """A unit (sentence) of a localized document."""

    index: int  # position among the document's units
    start: int  # character span [start, end) into the document
    end: int
    text: str
    score: float  # cross-attention mass of the unit's tokens (-inf: cut off by truncation)
    rank: int  # 1-based rank by score (ties keep document order)


@dataclass(frozen=True)
class HighlightedToken:
    """A document token with its cross-attention weight."""

    token: str  # the tokenizer's piece
    start: int  # character span [start, end) into the document
    end: int
    weight: float


@dataclass
class Localization:
    """What :meth:`TrainedGear.localize` returns for one (query, document) pair."""

    query: str
    document: str
    layer: int  # the 1-based fusion layer whose cross-attention was read
    units: list[ScoredUnit]  # in document order
    tokens: list[HighlightedToken]  # every encoded document token, in document order

    @property
    def ranked_units(self) -> list[ScoredUnit]:
        return sorted(self.units, key=lambda unit: unit.rank)

    @property
    def best_unit(self) -> ScoredUnit | None:
        return self.ranked_units[0] if self.units else None

    def top_tokens(self, n: int = 10) -> list[HighlightedToken]:
        """The ``n`` heaviest tokens, heaviest first (ties keep document order)."""
        order = sorted(range(len(self.tokens)), key=lambda i: (-self.tokens[i].weight, i))
        return [self.tokens[i] for i in order[:n]]

    def to_dict(self) -> dict:
        """JSON-ready: ``-inf`` scores become None."""
        units = [{**asdict(u), "score": u.score if math.isfinite(u.score) else None} for u in self.units]
        return {
            "query": self.query,
            "layer": self.layer,
            "units": units,
            "tokens": [asdict(t) for t in self.tokens],
        }


def read_localization(folder: str | Path) -> LocalizationConfig:
    """The localization settings a trained model folder recorded (``gear_config.json``'s ``localization``)."""
    path = Path(folder) / GEAR_CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: missing, so the localization layer this model was trained for is unknown; load the "
            "run's final model folder (R/models/{model}/{scenario}/model), or pass localization="
            "LocalizationConfig(layer=...) (an epoch checkpoint does not carry it)"
        )
    from gear.io import read_json

    section = read_json(path)
    if not isinstance(section, dict) or "localization" not in section:
        raise ConfigError(f"{path}: no 'localization' section (expected the run's gear config section)")
    return dataclass_from_mapping(LocalizationConfig, section["localization"], f"{path}: localization")


class TrainedGear:
    """A trained GeAR loaded once: retrieval, localization and generation on any text.

    Args:
        folder: a GeAR model folder (``R/models/{model}/{scenario}/model``), or the hub id of one
            that :meth:`GearModel.push_to_hub` published (read from the Hugging Face cache, or
            downloaded there when the hub is reachable).
        device: "cpu", "cuda", "cuda:1"; None picks CUDA when present.
        localization: overrides the folder's recorded localization settings (needed for epoch
            checkpoints, which have none).
        revision: the hub revision of a hub id (None: the default branch).

    Attributes:
        encoder: the :class:`GearEncoder` (a ``TextEncoder``) holding the model and tokenizer.
        localization: the :class:`LocalizationConfig` in use.
    """

    def __init__(
        self,
        folder: str | Path,
        device: str | None = None,
        localization: LocalizationConfig | None = None,
        revision: str | None = None,
    ):
        self.folder = gear_model_folder(folder, revision)
        self.encoder = GearEncoder(self.folder, device=device)  # first: a folder that is no model says so
        self.localization = localization if localization is not None else read_localization(self.folder)
        self.model, self.tokenizer = self.encoder.model, self.encoder.tokenizer
        depth = self.model.config.num_hidden_layers
        if not 1 <= self.localization.layer <= depth:
            raise ConfigError(
                f"{self.folder}: localization layer {self.localization.layer} is outside 1..{depth} of this model"
            )
        self._splitter: SentenceSplitter | None = None

    # -- retrieval --------------------------------------------------------------------------
    def retrieve(
        self,
        queries: str | Sequence[str],
        documents: Sequence[str] | Mapping[str, str],
        k: int = 10,
        batch_size: int = 32,
        progress: bool = False,
    ) -> list[RetrievedDocument] | list[list[RetrievedDocument]]:
        """The ``k`` best documents per query, best first (exact inner products).

        Args:
            queries: one query, or several.
            documents: texts (ids are their positions, "0", "1", ...) or a mapping id -> text.
            k: documents per query (fewer when there are fewer documents).
            progress: a progress bar (stderr) while documents are encoded.

        Returns:
            for one query string, its ranked list; for a sequence of queries, one list per query.
            Equal scores keep the documents' order.
        """
        if k < 1:
            raise ValueError(f"retrieve: k must be at least 1, got {k}")
        ids, texts = (
            ([str(key) for key in documents], list(documents.values()))
            if isinstance(documents, Mapping)
            else ([str(i) for i in range(len(documents))], list(documents))
        )
        single = isinstance(queries, str)
        query_list = [queries] if single else list(queries)
        query_vectors = self.encoder.encode_queries(query_list, batch_size)
        document_vectors = self._encode_documents(texts, batch_size, progress)
        scores = query_vectors @ document_vectors.T  # (queries, documents)
        depth = min(k, len(texts))
        ranked = []
        for row in scores:
            order = np.argsort(-row, kind="stable")[:depth]
            ranked.append(
                [RetrievedDocument(rank + 1, ids[i], float(row[i]), texts[i]) for rank, i in enumerate(order)]
            )
        return ranked[0] if single else ranked

    def _encode_documents(self, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
        if not progress or len(texts) <= _PROGRESS_CHUNK:
            return self.encoder.encode_documents(texts, batch_size)
        chunks = []
        with tqdm(total=len(texts), desc="encoding documents", unit="doc") as bar:
            for start in range(0, len(texts), _PROGRESS_CHUNK):
                chunks.append(
                    self.encoder.encode_documents(texts[start : start + _PROGRESS_CHUNK], batch_size)
                )
                bar.update(len(chunks[-1]))
        return np.concatenate(chunks)

    # -- localization -----------------------------------------------------------------------
    def split(self, document: str) -> list[tuple[int, int]]:
        """The document's units: sentence spans ``(start, end)`` by the suite's splitter."""
        if self._splitter is None:
            self._splitter = SentenceSplitter()
        return self._splitter.split(document)

    def localize(
        self, query: str, document: str, units: Sequence[tuple[int, int]] | None = None
    ) -> Localization:
        """Score the document's units for the query and weigh its tokens (one forward pass).

        Args:
            units: the document's unit spans; None splits it into sentences (:meth:`split`).
        """
        spans = [(int(s), int(e)) for s, e in (self.split(document) if units is None else units)]
        weights = token_weights(self.model, self.tokenizer, query, document, self.localization)
        offsets = np.asarray(weights.offsets, dtype=np.int64).reshape(-1, 2)
        scores = scores_of_units(
            weights.weights,
            offsets,
            np.zeros(len(offsets), dtype=bool),  # token_weights already left special tokens out
            spans,
            self.localization.unit_reduction,
        )
        order = np.argsort(-scores, kind="stable")
        rank = np.empty(len(spans), dtype=np.int64)
        rank[order] = np.arange(1, len(spans) + 1)
        return Localization(
            query=query,
            document=document,
            layer=self.localization.layer,
            units=[
                ScoredUnit(i, s, e, document[s:e], float(scores[i]), int(rank[i]))
                for i, (s, e) in enumerate(spans)
            ],
            tokens=[
                HighlightedToken(token, int(s), int(e), float(w))
                for token, (s, e), w in zip(weights.tokens, weights.offsets, weights.weights, strict=True)
            ],
        )

    # -- generation -------------------------------------------------------------------------
    def push_to_hub(
        self, repo_id: str, private: bool | None = None, commit_message: str = "Upload GeAR model"
    ) -> str:
        """Publish the whole trained folder (weights, tokenizer, ``gear_config.json`` with the
        localization it records, the model card and the sentence-transformers export) to the
        Hugging Face hub in one commit, creating ``repo_id`` when missing; ``gear.load(repo_id)``
        and ``gear predict --model repo_id`` then load it anywhere. Needs network and a token
        (``huggingface-cli login`` or ``HF_TOKEN``). Returns the commit's URL."""
        from huggingface_hub import HfApi

        api = HfApi()
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=str(self.folder), commit_message=commit_message)
        return str(getattr(info, "commit_url", info))

    def generate(
        self,
        query: str | Sequence[str],
        document: str | Sequence[str],
        max_new_tokens: int | None = None,
        num_beams: int = 1,
        batch_size: int = 16,
    ) -> str | list[str]:
        """The text GeAR's decoder generates for (query, document): one string, or one per pair.

        Args:
            max_new_tokens: None: the model's ``max_target_tokens - 1`` (the length it was trained to).
            num_beams: 1 greedy, more beam search.
        """
        single = isinstance(query, str)
        if single != isinstance(document, str):
            raise TypeError("generate: pass one query and one document, or two sequences of the same length")
        if max_new_tokens is None:
            max_new_tokens = max(1, self.model.config.max_target_tokens - 1)
        texts = generate_texts(
            self.model,
            self.tokenizer,
            [query] if single else list(query),
            [document] if single else list(document),
            max_new_tokens,
            num_beams,
            batch_size,
        )
        return texts[0] if single else texts


def load(
    folder: str | Path,
    device: str | None = None,
    localization: LocalizationConfig | None = None,
    revision: str | None = None,
) -> TrainedGear:
    """Load a trained GeAR folder or hub id once (see :class:`TrainedGear`); ``gear.load`` is this function."""
    return TrainedGear(folder, device=device, localization=localization, revision=revision)
