"""The public Python API of a trained GeAR (paper §3.5, SPEC 6): retrieval, localization, generation.

- **Retrieval**: :class:`GearEncoder` (:mod:`gear.inference.encoder`), the bi-encoder alone as a
  ``gear.encoding.TextEncoder`` (mean-pooled, L2-normalised embeddings of ``Eq`` and ``Ed``);
  batches are tokenised ahead in a background thread and the vectors stay on the device, copied
  to the host in large chunks (design in its docstring). :func:`load_gear` loads a saved folder.
- **Localization**: :func:`localize_units` (:func:`unit_scores` for the scores alone;
  :mod:`gear.inference.localization`). The fusion encoder's cross-attention probabilities at a
  layer (1-based; SPEC: 10 of 12) are reduced over heads (mean or max) and over the query's
  tokens (mean or max, padding excluded; the query's [CLS] and [SEP] count as query tokens) to
  one weight per document token. Tokens map to units by the tokenizer's offset mapping: a token
  belongs to the unit whose span holds its first character; special tokens and padding belong to
  none. A unit's score is the sum (or mean, max) of its tokens' weights; units that no encoded
  token reaches (cut off by truncation) score ``-inf``. Every requested layer comes from one
  forward pass. Beside the scores it returns what uniform attention would give on the same pairs
  (the unit-length ranking) and the mean normalised attention entropy: SPEC 6 reads every GeAR
  localization figure against them. :func:`token_weights` gives the per-token weights of one
  pair (Figure 3).
- **Generation**: :func:`generate` (:mod:`gear.inference.generation`), greedy decoding from
  ``[DEC]`` by default, beam search (``num_beams > 1``) as an option, batched, with a KV cache
  (the encoders and the fusion pass run once per batch; the decoder's cross-attention keys and
  values are computed once). Beam scores are summed log-probabilities (no length penalty); a
  finished beam keeps its score.

- **One object for all three**: :func:`load` (also ``gear.load``) returns a :class:`TrainedGear`
  (:mod:`gear.inference.trained`) that loads a trained folder once and offers ``retrieve``,
  ``localize`` (sentences by the suite's splitter, the layer the run recorded in
  ``gear_config.json``) and ``generate``; ``gear predict`` (:mod:`gear.inference.cli`) is the
  same on the command line.

On CUDA the forward passes run under bf16 autocast; on CPU in float32. Imports the model, the core and
``data_prep``'s sentence splitter only.
"""

from gear.inference.encoder import GearEncoder, load_gear
from gear.inference.generation import beam_search, generate, greedy_decode
from gear.inference.localization import (
    LocalizationConfig,
    TokenWeights,
    UnitScores,
    localize_units,
    normalised_entropy,
    scores_of_units,
    token_weights,
    unit_scores,
)
from gear.inference.trained import (
    HighlightedToken,
    Localization,
    RetrievedDocument,
    ScoredUnit,
    TrainedGear,
    load,
)

__all__ = [
    "GearEncoder",
    "HighlightedToken",
    "Localization",
    "LocalizationConfig",
    "RetrievedDocument",
    "ScoredUnit",
    "TokenWeights",
    "TrainedGear",
    "UnitScores",
    "beam_search",
    "generate",
    "greedy_decode",
    "load",
    "load_gear",
    "localize_units",
    "normalised_entropy",
    "scores_of_units",
    "token_weights",
    "unit_scores",
]
