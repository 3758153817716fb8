"""Encoder adapters: every compared model behind one interface, :class:`gear.encoding.TextEncoder`.

One adapter per registry ``kind`` (``config/baselines.yaml``), each applying the model's prefixes,
pooling and length exactly as its entry says:

- :class:`SentenceTransformerEncoder` (``sentence_transformers``, ``sbert_rt``): a
  SentenceTransformer folder, with its own pooling and normalisation; the entry's prefixes are
  passed as the explicit ``prompt`` (so prompts saved in the folder never apply silently) and its
  pooling must agree with the folder's Pooling module.
- :class:`HFEncoder` (``hf_encoder``): a plain Hugging Face encoder (``AutoModel``) pooled here,
  mean over non-padding tokens or the ``[CLS]`` vector, L2-normalised. E5 uses it with
  ``"query: "`` / ``"passage: "``, GTE with no prefix.
- :class:`FlagEmbeddingEncoder` (``flag_embedding``, ``bge_rt``): FlagEmbedding's ``FlagModel``
  with the entry's query prefix as ``query_instruction_for_retrieval`` (BGE: queries only).

All three encode on one device (CUDA when available), in half precision on CUDA and fp32 on CPU,
in batches of texts of similar length (sorted by character length, as sentence-transformers and
FlagEmbedding do), and return float32 ``(n, dim)`` L2-normalised rows in the input order.

The ``fingerprint`` of an adapter keys the embedding cache: it hashes the adapter kind, the
resolved model folder, the pinned revision, both prefixes, the pooling, the maximum length, the
compute precision and the size and modification time of each weights file, so retraining a model
in place or changing any of these invalidates cached vectors.

Adding a model kind: one subclass of :class:`EncoderAdapter` here, one name in ``ADAPTERS`` and in
the registry schema's ``kind`` enum.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from gear.encoding import TextEncoder, l2_normalise, length_sorted_order
from gear.hub import default_device
from gear.io import stable_hash

log = logging.getLogger(__name__)

#: weights files whose size and mtime enter the fingerprint (top level and one folder down)
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.onnx")
#: progress bars only for encodings longer than this many batches
PROGRESS_MIN_BATCHES = 20
#: registry kinds that run FlagEmbedding (its FlagModel, or its fine-tuning pipeline for bge_rt)
FLAG_EMBEDDING_KINDS = ("flag_embedding", "bge_rt")


def flag_embedding_problem() -> str | None:
    """Why FlagEmbedding cannot run in this environment, or None when it can.

    Read from the installed packages' metadata, without importing anything: FlagEmbedding 1.4.2
    (the version constraints.txt pins) does not import under transformers 5, although its own
    metadata allows it, so a transformers-5 environment (requirements-tf5.txt, or a machine whose
    transformers 5 is preinstalled) can run GeAR and every other model kind but not BGE / BGE_RT.
    """
    try:
        transformers_version = metadata.version("transformers")
    except metadata.PackageNotFoundError:
        return "transformers is not installed: install the main set, pip install -r requirements.txt -e ."
    if int(transformers_version.split(".")[0]) >= 5:
        return (
            f"FlagEmbedding 1.4.2 does not import under transformers {transformers_version} (it needs "
            "transformers 4.x): install the main set, pip install -r requirements.txt -e . (transformers "
            "4.57.6), or leave the BGE-family entries (kinds flag_embedding, bge_rt) out of evaluate.models"
        )
    try:
        metadata.version("FlagEmbedding")
    except metadata.PackageNotFoundError:
        return (
            "FlagEmbedding is not installed: install the main set, pip install -r requirements.txt -e ., "
            "or leave the BGE-family entries (kinds flag_embedding, bge_rt) out of evaluate.models"
        )
    return None


@dataclass(frozen=True)
class EncoderSpec:
    """What an adapter needs to know about one model, taken from its registry entry.

    Attributes:
        name: registry name ("BGE", "SBERT_RT", ...).
        path: local model folder (resolved by the registry; never a hub id).
        revision: pinned hub revision the folder holds, or None for local / trained models.
        pooling: "mean" or "cls".
        query_prefix: text put in front of every query, exactly as configured.
        document_prefix: text put in front of every document, exactly as configured.
        max_length: maximum number of tokens (prefix included); longer inputs are truncated.
    """

    name: str
    path: str
    revision: str | None
    pooling: str
    query_prefix: str
    document_prefix: str
    max_length: int


def weights_signature(path: str | Path) -> list[tuple[str, int, int]]:
    """``(relative name, size, mtime_ns)`` of each weights file in a model folder (sorted).

    Cheaper than hashing gigabytes, and it changes whenever a training run rewrites the weights.
    """
    folder = Path(path)
    if not folder.is_dir():
        return []
    files = set()
    for pattern in WEIGHT_PATTERNS:
        files.update(folder.glob(pattern))
        files.update(folder.glob(f"*/{pattern}"))
    signature = []
    for file in sorted(files):
        stat = file.stat()
        signature.append((str(file.relative_to(folder)), stat.st_size, stat.st_mtime_ns))
    return signature


def spec_fingerprint(kind: str, spec: EncoderSpec, precision: str) -> str:
    """The fingerprint of an adapter of ``kind`` built from ``spec`` computing in ``precision``.

    Returns:
        ``"{kind}-{16 hex digits}"``; the registry name is left out on purpose, so that renaming
        an entry does not throw its cached vectors away.
    """
    payload = asdict(spec)
    payload.pop("name")
    payload["path"] = str(Path(spec.path).resolve()) if Path(spec.path).exists() else spec.path
    payload.update(kind=kind, precision=precision, weights=weights_signature(spec.path))
    return f"{kind}-{stable_hash(payload)}"


def _half_dtype():
    """bf16 where the GPU supports it, else fp16 (inference only; pooling stays fp32)."""
    import torch

    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _check_length(spec: EncoderSpec, model_config) -> None:
    limit = getattr(model_config, "max_position_embeddings", None)
    # BERT-style models reserve no extra positions; RoBERTa-style ones reserve two for padding.
    if limit is not None and getattr(model_config, "model_type", "") in ("roberta", "xlm-roberta"):
        limit -= 2
    if limit is not None and spec.max_length > limit:
        raise ValueError(
            f"registry entry {spec.name}: max_length {spec.max_length} exceeds the {limit} positions "
            f"of the model in {spec.path}; lower max_length in the registry entry"
        )


class EncoderAdapter(TextEncoder, abc.ABC):
    """Shared parts of the adapters: the spec, the device, the fingerprint, progress display."""

    kind: str = "abstract"

    def __init__(self, spec: EncoderSpec, device: str | None = None):
        self.spec = spec
        self.name = spec.name
        self.device = device or default_device()
        self.precision = "float32"

    def fingerprint(self) -> str:
        return spec_fingerprint(self.kind, self.spec, self.precision)

    @staticmethod
    def _show_progress(n_texts: int, batch_size: int) -> bool:
        return n_texts > PROGRESS_MIN_BATCHES * batch_size

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, path={self.spec.path!r}, device={self.device!r})"


class HFEncoder(EncoderAdapter):
    """A plain Hugging Face encoder with mean or CLS pooling, L2-normalised.

    Texts are encoded in order of decreasing character length so each batch pads to similar
    lengths; rows come back in the input order. On CUDA the model runs in bf16 (fp16 where bf16
    is unsupported) and pooling is done in fp32.

    Example:
        >>> spec = EncoderSpec("E5", "/models/e5-base-v2", None, "mean", "query: ", "passage: ", 512)  # doctest: +SKIP
        >>> HFEncoder(spec).encode_queries(["who wrote hamlet"]).shape  # doctest: +SKIP
        (1, 768)
    """

    kind = "hf_encoder"

    def __init__(self, spec: EncoderSpec, device: str | None = None):
        super().__init__(spec, device)
        import torch
        from transformers import AutoModel, AutoTokenizer

        if spec.pooling not in ("mean", "cls"):
            raise ValueError(f"registry entry {spec.name}: pooling {spec.pooling!r} is not mean or cls")
        dtype = _half_dtype() if self.device.startswith("cuda") else torch.float32
        self.precision = str(dtype).removeprefix("torch.")
        self.tokenizer = AutoTokenizer.from_pretrained(spec.path, local_files_only=True)
        self.model = AutoModel.from_pretrained(spec.path, dtype=dtype, local_files_only=True)
        _check_length(spec, self.model.config)
        self.model.to(self.device).eval()
        self.dimension = int(self.model.config.hidden_size)

    def encode_queries(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        return self._encode(texts, self.spec.query_prefix, batch_size)

    def encode_documents(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        return self._encode(texts, self.spec.document_prefix, batch_size)

    def _pool(self, hidden, attention_mask):
        """Sentence vectors from token states.

        Args:
            hidden: ``(batch, tokens, dim)`` last hidden states.
            attention_mask: ``(batch, tokens)``, 1 on real tokens.

        Returns:
            ``(batch, dim)`` float32 vectors (not yet normalised).
        """
        hidden = hidden.float()
        if self.spec.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)

    def _encode(self, texts: Sequence[str], prefix: str, batch_size: int) -> np.ndarray:
        import torch
        from tqdm.auto import tqdm

        texts = [prefix + text for text in texts]
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        order = length_sorted_order([len(text) for text in texts])
        starts = range(0, len(texts), batch_size)
        show = self._show_progress(len(texts), batch_size)
        with torch.inference_mode():
            for start in tqdm(starts, desc=f"encode {self.name}", disable=not show, mininterval=10):
                rows = order[start : start + batch_size]
                batch = self.tokenizer(
                    [texts[i] for i in rows],
                    padding=True,
                    truncation=True,
                    max_length=self.spec.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self.model(**batch).last_hidden_state
                vectors = torch.nn.functional.normalize(self._pool(hidden, batch["attention_mask"]), dim=-1)
                out[rows] = vectors.cpu().numpy()
        return out


class SentenceTransformerEncoder(EncoderAdapter):
    """A SentenceTransformer folder: its own modules, pooling and normalisation.

    The entry's prefixes are passed to ``encode_query`` / ``encode_document`` as the explicit
    ``prompt`` (an empty prefix disables any prompt saved with the model), ``max_seq_length`` is
    set to the entry's ``max_length``, and the folder's Pooling module must pool as the entry says.
    """

    kind = "sentence_transformers"

    def __init__(self, spec: EncoderSpec, device: str | None = None):
        super().__init__(spec, device)
        from sentence_transformers import SentenceTransformer

        model_kwargs = {}
        if self.device.startswith("cuda"):
            model_kwargs["dtype"] = _half_dtype()
            self.precision = str(model_kwargs["dtype"]).removeprefix("torch.")
        self.model = SentenceTransformer(
            spec.path, device=self.device, local_files_only=True, model_kwargs=model_kwargs or None
        )
        self._check_pooling()
        transformer = self.model[0]
        config = getattr(getattr(transformer, "model", None), "config", None)
        if config is not None:
            _check_length(spec, config)
        self.model.max_seq_length = spec.max_length
        self.dimension = int(self.model.get_embedding_dimension())

    def _check_pooling(self) -> None:
        from sentence_transformers.sentence_transformer.modules import Pooling

        modes = [module.pooling_mode for module in self.model if isinstance(module, Pooling)]
        if len(modes) != 1 or modes[0] != self.spec.pooling:
            raise ValueError(
                f"registry entry {self.spec.name}: pooling {self.spec.pooling!r}, but the "
                f"SentenceTransformer in {self.spec.path} pools with {modes or 'no Pooling module'}; "
                "make the entry's pooling match the model"
            )

    def encode_queries(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        return self._finish(
            self.model.encode_query(
                list(texts),
                prompt=self.spec.query_prefix,
                batch_size=batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=self._show_progress(len(texts), batch_size),
            ),
            len(texts),
        )

    def encode_documents(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        return self._finish(
            self.model.encode_document(
                list(texts),
                prompt=self.spec.document_prefix,
                batch_size=batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=self._show_progress(len(texts), batch_size),
            ),
            len(texts),
        )

    def _finish(self, vectors: np.ndarray, n: int) -> np.ndarray:
        if n == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return l2_normalise(vectors)


class FlagEmbeddingEncoder(EncoderAdapter):
    """FlagEmbedding's ``FlagModel`` (BGE family and the suite's BGE_RT).

    The entry's ``query_prefix`` becomes ``query_instruction_for_retrieval`` (joined as
    ``"{instruction}{query}"``), a non-empty ``document_prefix`` becomes
    ``passage_instruction_for_retrieval``; pooling is the entry's (BGE: CLS); ``use_fp16`` only on
    CUDA. One device only: FlagModel would otherwise start a process per visible GPU.
    """

    kind = "flag_embedding"

    def __init__(self, spec: EncoderSpec, device: str | None = None):
        super().__init__(spec, device)
        problem = flag_embedding_problem()
        if problem is not None:
            raise RuntimeError(f"registry entry {spec.name} needs FlagEmbedding: {problem}")
        from FlagEmbedding import FlagModel
        from transformers import AutoConfig

        if spec.pooling not in ("mean", "cls"):
            raise ValueError(f"registry entry {spec.name}: pooling {spec.pooling!r} is not mean or cls")
        _check_length(spec, AutoConfig.from_pretrained(spec.path, local_files_only=True))
        on_cuda = self.device.startswith("cuda")
        self.precision = "float16" if on_cuda else "float32"
        extra = {}
        if spec.document_prefix:
            extra = {
                "passage_instruction_for_retrieval": spec.document_prefix,
                "passage_instruction_format": "{}{}",
            }
        self.model = FlagModel(
            spec.path,
            normalize_embeddings=True,
            use_fp16=on_cuda,
            query_instruction_for_retrieval=spec.query_prefix or None,
            query_instruction_format="{}{}",
            devices=self.device,
            pooling_method=spec.pooling,
            query_max_length=spec.max_length,
            passage_max_length=spec.max_length,
            convert_to_numpy=True,
            **extra,
        )
        self.dimension = int(self.model.model.config.hidden_size)

    def encode_queries(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return l2_normalise(self.model.encode_queries(list(texts), batch_size=batch_size))

    def encode_documents(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return l2_normalise(self.model.encode_corpus(list(texts), batch_size=batch_size))


#: registry kind -> adapter class (trained kinds reuse the adapter of the pipeline that trained them)
ADAPTERS: dict[str, type[EncoderAdapter]] = {
    "sentence_transformers": SentenceTransformerEncoder,
    "hf_encoder": HFEncoder,
    "flag_embedding": FlagEmbeddingEncoder,
    "sbert_rt": SentenceTransformerEncoder,
    "bge_rt": FlagEmbeddingEncoder,
}
