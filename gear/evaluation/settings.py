"""The config's ``evaluate`` section as typed dataclasses."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from gear.config import ConfigError, dataclass_from_mapping
from gear.layout import scenario_of

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Settings: the config's `evaluate` section as typed dataclasses
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetrievalSettings:
    depth: int  # results kept per query (run file)
    k: int  # cut-off of R@k / M@k (paper: 5)


@dataclass(frozen=True)
class LocalizationSettings:
    k_qa: int  # cut-off for QA data sets (paper: 1)
    k_rir: int  # cut-off for RIR (paper: 3)


@dataclass(frozen=True)
class GenerationSettings:
    num_beams: int  # 1 = greedy (the paper's default)
    max_new_tokens: int
    batch_size: int


@dataclass(frozen=True)
class BootstrapSettings:
    resamples: int  # 1,000 (SPEC 7)
    seed: int
    confidence: float  # 0.95


@dataclass(frozen=True)
class EvaluateSettings:
    """The config's ``evaluate`` section (see ``config/paper.yaml`` for each key's meaning)."""

    batch_size: int
    retrieval: RetrievalSettings
    localization: LocalizationSettings
    generation: GenerationSettings
    bootstrap: BootstrapSettings
    models: tuple[str, ...] = ()
    extra_models: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    epoch_analysis: dict = field(default_factory=dict)
    layer_analysis: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.retrieval.depth < self.retrieval.k:
            raise ConfigError(
                f"evaluate.retrieval.depth {self.retrieval.depth} is below evaluate.retrieval.k "
                f"{self.retrieval.k}: R@k needs at least k results per query"
            )

    @classmethod
    def from_config(cls, section: dict) -> EvaluateSettings:
        """Build from the ``evaluate`` mapping; unknown or missing keys fail naming the key."""
        return dataclass_from_mapping(cls, section, "evaluate")

    def localization_k(self, dataset: str) -> int:
        return self.localization.k_qa if scenario_of(dataset) == "qar" else self.localization.k_rir
