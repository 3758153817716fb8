"""Helpers of the baselines tests: tiny training triples and a direct transformers reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

#: 16 (query, document) pairs with distinct texts, enough for two batches of 8
PAIRS = [
    ("what is the capital of france", "Paris is the capital and most populous city of France."),
    ("who wrote hamlet", "Hamlet is a tragedy written by William Shakespeare around 1600."),
    ("how tall is mount everest", "Mount Everest rises 8,849 metres above sea level in the Himalayas."),
    ("when did the titanic sink", "The Titanic sank in the North Atlantic on 15 April 1912."),
    ("what do bees produce", "Honey bees produce honey and beeswax from the nectar of flowers."),
    ("who painted the mona lisa", "The Mona Lisa is a portrait painted by Leonardo da Vinci."),
    ("what is the largest ocean", "The Pacific Ocean is the largest and deepest of the oceans."),
    (
        "where is the great barrier reef",
        "The Great Barrier Reef lies off the coast of Queensland, Australia.",
    ),
    (
        "what language is spoken in brazil",
        "Portuguese is the official and most widely spoken language of Brazil.",
    ),
    ("who discovered penicillin", "Alexander Fleming discovered penicillin in London in 1928."),
    ("how many legs does a spider have", "Spiders are arachnids with eight legs and two body segments."),
    ("what is the boiling point of water", "At sea level, pure water boils at 100 degrees Celsius."),
    ("who was the first man on the moon", "Neil Armstrong was the first person to walk on the Moon in 1969."),
    ("what is the currency of japan", "The yen is the official currency of Japan."),
    (
        "which planet is known as the red planet",
        "Mars is called the Red Planet because of iron oxide on its surface.",
    ),
    ("what gas do plants absorb", "Plants absorb carbon dioxide from the air during photosynthesis."),
]


def write_triples(path: Path, pairs=PAIRS) -> Path:
    """Training triples in the ARCHITECTURE.md format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for i, (query, document) in enumerate(pairs):
            row = {
                "query_id": f"q{i}",
                "query": query,
                "doc_id": f"d{i}",
                "document": document,
                "target": document,
            }
            handle.write(json.dumps(row) + "\n")
    return path


def reference_embeddings(reference, texts, pooling: str, max_length: int):
    """One text at a time (no padding at all), pooled and L2-normalised by hand.

    Returns:
        float32 ``(len(texts), hidden)``.
    """
    import torch

    tokenizer, model = reference
    rows = []
    with torch.no_grad():
        for text in texts:
            batch = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")
            hidden = model(**batch).last_hidden_state[0]
            vector = hidden[0] if pooling == "cls" else hidden.mean(dim=0)
            rows.append(torch.nn.functional.normalize(vector, dim=0).numpy())
    return np.stack(rows).astype(np.float32)
