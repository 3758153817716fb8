"""Small real components for the gear tests: triples files and tiny GeAR folders.

- ``triples_file``: 24 training triples of real text in the suite's JSON Lines format.
- ``tiny_gear_path``: an untrained tiny GeAR folder (model + tokenizer with [DEC]).
- ``trained_tiny_gear``: the final model folder of a real (3-step) ``train_gear`` run of the tiny
  GeAR on ``PASSAGES``: everything the trainer writes (``gear_config.json``, the model card, the
  sentence-transformers export), for the tests of what users load.
- ``one_thread``: run a test on one torch thread (tiny ops on shared cores).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

PASSAGES = [
    (
        "Normans",
        "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy, "
        "a region in France. They were descended from Norse raiders and pirates from Denmark, Iceland and Norway.",
        [
            ("In what country is Normandy located?", "France"),
            ("From which countries did the Norse originate?", "Denmark, Iceland and Norway"),
            ("When did the Normans give their name to Normandy?", "10th and 11th centuries"),
        ],
    ),
    (
        "Amazon rainforest",
        "The Amazon rainforest covers most of the Amazon basin of South America. The basin encompasses "
        "seven million square kilometres, of which five and a half million are covered by the rainforest.",
        [
            ("Which continent is the Amazon rainforest on?", "South America"),
            ("How large is the Amazon basin?", "seven million square kilometres"),
            ("How much of the basin is covered by rainforest?", "five and a half million"),
        ],
    ),
    (
        "Oxygen",
        "Oxygen is a chemical element with symbol O and atomic number 8. It is a member of the chalcogen "
        "group on the periodic table and is a highly reactive nonmetal and oxidizing agent.",
        [
            ("What is the atomic number of oxygen?", "8"),
            ("What group of the periodic table is oxygen in?", "chalcogen"),
            ("What is the chemical symbol of oxygen?", "O"),
        ],
    ),
    (
        "Victoria",
        "Victoria is a state in the south-east of Australia. Melbourne is its capital and largest city. "
        "It is the most densely populated state in Australia.",
        [
            ("What is the capital of Victoria?", "Melbourne"),
            ("In which country is the state of Victoria?", "Australia"),
            ("Which Australian state is the most densely populated?", "Victoria"),
        ],
    ),
    (
        "Warsaw",
        "Warsaw is the capital and largest city of Poland. It stands on the Vistula River in east-central "
        "Poland, roughly 260 kilometres from the Baltic Sea.",
        [
            ("On which river does Warsaw stand?", "Vistula"),
            ("How far is Warsaw from the Baltic Sea?", "260 kilometres"),
            ("Warsaw is the capital of which country?", "Poland"),
        ],
    ),
    (
        "Steam engine",
        "A steam engine is a heat engine that performs mechanical work using steam as its working fluid. "
        "James Watt improved the design with a separate condenser in 1765.",
        [
            ("What working fluid does a steam engine use?", "steam"),
            ("Who added a separate condenser to the steam engine?", "James Watt"),
            ("In what year was the separate condenser introduced?", "1765"),
        ],
    ),
    (
        "Nikola Tesla",
        "Nikola Tesla was an inventor and electrical engineer best known for his contributions to the "
        "design of the modern alternating current electricity supply system. He was born in 1856 in Smiljan.",
        [
            ("What electricity system is Tesla known for?", "alternating current"),
            ("When was Nikola Tesla born?", "1856"),
            ("Where was Tesla born?", "Smiljan"),
        ],
    ),
    (
        "Rhine",
        "The Rhine is a European river that begins in the Swiss canton of Graubunden and flows north "
        "through Germany and the Netherlands to the North Sea.",
        [
            ("Where does the Rhine begin?", "Graubunden"),
            ("Into which sea does the Rhine flow?", "North Sea"),
            ("Through which countries does the Rhine flow?", "Germany and the Netherlands"),
        ],
    ),
]


def write_triples(path: Path, passages=PASSAGES) -> Path:
    rows = []
    for index, (title, text, qas) in enumerate(passages):
        for number, (question, answer) in enumerate(qas):
            rows.append(
                {
                    "query_id": f"q{index}-{number}",
                    "query": question,
                    "doc_id": f"doc-{title}",
                    "document": text,
                    "target": answer,
                }
            )
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture()
def triples_file(tmp_path) -> Path:
    return write_triples(tmp_path / "triples.jsonl")


@pytest.fixture(scope="session")
def trained_tiny_gear(tmp_path_factory, tiny_bert_path, _mini_config) -> Path:
    """A trained tiny GeAR (``train_gear``, one epoch of 3 steps, localization layer 2 of 2)."""
    import copy

    import torch

    from gear.training.trainer import train_gear

    root = tmp_path_factory.mktemp("trained_tiny_gear")
    cfg = copy.deepcopy(_mini_config)
    cfg["gear"].update(
        init_checkpoint=str(tiny_bert_path), max_query_tokens=16, max_document_tokens=64, max_target_tokens=16
    )
    cfg["gear"]["localization"]["layer"] = 2
    cfg["train"].update(epochs=1, queue_size=8, checkpoint_every_steps=100, log_every_seconds=60)
    cfg["train"]["scenarios"]["qar"]["batch_size"] = 8
    cfg["train"]["schedule"]["warmup_steps"] = 1
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_gear(write_triples(root / "triples.jsonl"), root / "run", cfg, "GeAR", "qar")
    finally:
        torch.set_num_threads(before)


@pytest.fixture()
def one_thread():
    """Tiny models run faster on one thread: two threads on two shared cores spin-wait."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
