"""Learnability probes: does GeAR's training make its cross-attention and decoder do their job?

Two synthetic tasks, written in real English words that are single tokens of bert-base-uncased's
vocabulary, on which a tiny GeAR (a randomly initialised BERT of a few layers, the same start for
all three stacks, as ``bert-base-uncased`` is in the paper) is trained through the suite's own
trainer (:func:`gear.training.trainer.train_gear`: both losses, momentum encoders, queues) and evaluated by
the suite's own localization (:func:`gear.inference.localize_units`), generation
(:func:`gear.inference.generate`) and metrics:

- **copy** (:func:`copy_task`): the document is a shuffled list of words, one from each of four
  categories (colour, animal, fruit, ...) plus four other words; the query names a category; the
  target is the document's word of that category. Only the document holds the answer, so the
  exact match shows whether the document reaches the decoder (chance: about 1/8, the category's
  members).
- **sentences** (:func:`sentence_task`): the document holds four sentences of two to four words,
  every word from a different one of 16 categories; the query names the categories of two words of one
  sentence; the target is those two words. Cross-attention localization must find that sentence
  (chance 0.25; sentences have different lengths, so the unit-length ranking is near chance too),
  and generation must copy its words. Query and document share no word, so no lexical overlap
  helps: the association is what training must create.

:func:`run_probe` trains on one task and reports the metrics before and after training beside
the trivial references; ``tests/gear/test_learnability.py`` asserts them and shows that the same
training fails when the mechanism is broken (documents shuffled across queries).

    python -m gear.tools.learnability --task sentences

Adding a task is one generator returning triples with ``units`` and ``relevant`` (for
localization) and an entry in :data:`TASKS`.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gear.config import REPO_ROOT, load_config
from gear.evaluation.metrics import (
    break_ties_at_random,
    localization_metrics,
    qa_generation_metrics,
    random_unit_scores,
)
from gear.hub import MINILM_ID, resolve_model
from gear.inference import LocalizationConfig, generate, load_gear, localize_units
from gear.io import write_jsonl
from gear.model.modeling import build_from_bert
from gear.training.settings import read_sections
from gear.training.trainer import train_gear

#: Single-token words (bert-base-uncased vocabulary, category names too), 8 per category.
CATEGORIES: dict[str, list[str]] = {
    "color": "red blue green yellow purple orange pink brown".split(),
    "animal": "horse tiger rabbit eagle snake wolf sheep monkey".split(),
    "fruit": "apple banana cherry lemon grape peach mango plum".split(),
    "metal": "iron copper silver gold zinc nickel lead tin".split(),
    "city": "paris london berlin madrid rome vienna dublin prague".split(),
    "tool": "hammer knife drill saw shovel axe spade needle".split(),
    "sport": "tennis golf soccer rugby hockey boxing cricket chess".split(),
    "drink": "coffee tea milk juice wine beer water soda".split(),
    "body": "hand foot knee elbow shoulder finger ankle neck".split(),
    "weather": "rain snow wind storm fog thunder frost hail".split(),
    "month": "january february march april june july august october".split(),
    "instrument": "piano guitar violin drum flute trumpet harp cello".split(),
    "vehicle": "car bus truck boat ship plane bicycle tractor".split(),
    "furniture": "chair bed desk sofa shelf lamp couch cabinet".split(),
    "clothing": "shirt hat coat dress shoe jacket skirt scarf".split(),
    "vegetable": "carrot potato onion tomato garlic pepper bean corn".split(),
}
#: Words of no category (the copy task's distractors).
FILLERS = (
    "table river window garden mountain letter bridge forest doctor market island village castle "
    "engine summer winter ocean valley kitchen teacher captain student pilot farmer camera rocket "
    "signal planet desert harbor temple museum palace prison school church factory station"
).split()


def copy_task(n: int, seed: int, categories: int = 4, fillers: int = 4) -> list[dict]:
    """``n`` triples of the copy task (module docstring), seeded."""
    rng = np.random.default_rng(seed)
    names = list(CATEGORIES)[:6]
    rows = []
    for i in range(n):
        chosen = rng.choice(len(names), categories, replace=False)
        words = [CATEGORIES[names[c]][rng.integers(8)] for c in chosen]
        ask = int(rng.integers(categories))
        document = words + list(rng.choice(FILLERS, fillers, replace=False))
        document = [document[j] for j in rng.permutation(len(document))]
        rows.append(
            {
                "query_id": f"copy-{seed}-{i}",
                "query": names[chosen[ask]],
                "doc_id": f"copy-doc-{seed}-{i}",
                "document": " ".join(document),
                "target": words[ask],
            }
        )
    return rows


def sentence_task(
    n: int,
    seed: int,
    sentences: int = 4,
    min_words: int = 2,
    max_words: int = 4,
    query_words: int = 2,
    filler_sentences: int = 0,
) -> list[dict]:
    """``n`` triples of the sentence task (module docstring), seeded; each also carries ``units``
    (character spans of the sentences) and ``relevant`` (the gold sentence's index).

    ``filler_sentences`` adds that many sentences of 2-4 category-free words (:data:`FILLERS`) at
    random places: longer documents with the same answer, to measure how the training needed
    grows with document length (BENCHMARKS.md "Making GeAR learn").
    """
    if sentences * max_words > len(CATEGORIES):
        raise ValueError(
            f"{sentences} sentences of up to {max_words} words need more than {len(CATEGORIES)} categories"
        )
    rng = np.random.default_rng(seed)
    names = list(CATEGORIES)
    rows = []
    for i in range(n):
        lengths = rng.integers(min_words, max_words + 1, sentences)
        order = rng.permutation(len(names))
        groups, start = [], 0
        for length in lengths:
            groups.append(
                [(names[c], CATEGORIES[names[c]][rng.integers(8)]) for c in order[start : start + length]]
            )
            start += length
        gold = int(rng.integers(sentences))
        asked = rng.choice(len(groups[gold]), query_words, replace=False)
        query = " ".join(groups[gold][j][0] for j in asked)
        target = " ".join(groups[gold][j][1] for j in asked)
        for _ in range(filler_sentences):
            filler = [("", word) for word in rng.choice(FILLERS, int(rng.integers(2, 5)), replace=False)]
            position = int(rng.integers(len(groups) + 1))
            groups.insert(position, filler)
            gold += position <= gold
        text, units = "", []
        for group in groups:
            sentence = " ".join(word for _, word in group) + "."
            text += " " if text else ""
            units.append((len(text), len(text) + len(sentence)))
            text += sentence
        rows.append(
            {
                "query_id": f"sent-{seed}-{i}",
                "query": query,
                "doc_id": f"sent-doc-{seed}-{i}",
                "document": text,
                "target": target,
                "units": units,
                "relevant": [gold],
            }
        )
    return rows


TASKS: dict[str, Callable[[int, int], list[dict]]] = {"copy": copy_task, "sentences": sentence_task}


@dataclass
class ProbeSettings:
    """A probe run (the defaults: the sentence task's test, about 45 s on two CPU threads)."""

    task: str = "sentences"
    steps: int = 600  # optimizer steps (one epoch of steps x batch_size fresh triples)
    batch_size: int = 32
    lr: float = 1e-3  # a tiny random model learns at 100x the paper's rate
    test_queries: int = 200
    hidden_size: int = 64
    layers: int = 2
    heads: int = 4
    seed: int = 0
    shuffle_documents: bool = False  # the broken-mechanism control: each query gets another's document
    vocabulary: str = "task"  # "task": only the tasks' words; "tokenizer": all of tokenizer_from's
    task_options: dict = field(default_factory=dict)  # extra arguments of the task (e.g. filler_sentences)
    train_overrides: dict = field(default_factory=dict)  # extra ``train`` keys (e.g. cross_attention_init)
    gear_overrides: dict = field(default_factory=dict)  # extra ``gear`` keys


#: The special tokens of a BERT WordPiece vocabulary, [PAD] first (id 0, as BERT's configs say).
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def task_vocabulary() -> list[str]:
    """A WordPiece vocabulary of the tasks' own words: BERT's special tokens, every category
    name and member, the fillers and the full stop (about 190 entries). A probe model with it
    computes its LM head and embedding updates over these instead of bert-base's 30,522 entries
    (most of a tiny model's step time), and tokenises every task text exactly as
    bert-base-uncased does, since each word is one of its tokens."""
    words = set(CATEGORIES) | set(FILLERS) | {w for members in CATEGORIES.values() for w in members}
    return SPECIAL_TOKENS + sorted(words) + ["."]


def tiny_bert(folder: Path, tokenizer_from: str | Path, settings: ProbeSettings) -> Path:
    """A randomly initialised BERT checkpoint (seeded) with ``tokenizer_from``'s tokenizer
    (``settings.vocabulary == "tokenizer"``) or a BERT tokenizer of :func:`task_vocabulary`
    (``"task"``)."""
    from transformers import AutoTokenizer, BertConfig, BertModel, BertTokenizerFast

    if settings.vocabulary not in ("task", "tokenizer"):
        raise ValueError(f"vocabulary: {settings.vocabulary!r} is not 'task' or 'tokenizer'")
    if not (folder / "config.json").is_file():
        if settings.vocabulary == "task":
            folder.mkdir(parents=True, exist_ok=True)
            vocab_file = folder / "vocab.txt"
            vocab_file.write_text("\n".join(task_vocabulary()) + "\n", encoding="utf-8")
            tokenizer = BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True)
        else:
            tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_from))
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(settings.seed)
        try:
            BertModel(
                BertConfig(
                    vocab_size=len(tokenizer),
                    hidden_size=settings.hidden_size,
                    num_hidden_layers=settings.layers,
                    num_attention_heads=settings.heads,
                    intermediate_size=4 * settings.hidden_size,
                    max_position_embeddings=128,
                )
            ).save_pretrained(folder)
        finally:
            torch.random.set_rng_state(generator_state)
        tokenizer.save_pretrained(folder)
    return folder


def probe_config(base: dict, checkpoint: Path, settings: ProbeSettings) -> dict:
    """The run config of a probe: ``base`` (config/mini.yaml) with a tiny model's sizes and rates.

    Only sizes and rates change; the cross-attention init, the losses and the trainer are the
    configuration's own (override them through ``settings`` to probe another choice).
    """
    cfg = copy.deepcopy(base)
    cfg["gear"].update(
        init_checkpoint=str(checkpoint), max_query_tokens=16, max_document_tokens=128, max_target_tokens=16
    )
    cfg["gear"]["localization"]["layer"] = settings.layers
    cfg["gear"].update(settings.gear_overrides)
    train = cfg["train"]
    train.update(
        epochs=1, queue_size=4 * settings.batch_size, checkpoint_every_steps=10**9, log_every_seconds=30
    )
    train["scenarios"]["qar"]["batch_size"] = settings.batch_size
    train["alpha_ramp_epochs"] = 0.5
    train["optimizer"]["lr"] = settings.lr
    # A random start is new everywhere: no part needs a rate of its own; the temperature keeps
    # the paper's per-step rate (1e-5) as config/mini.yaml gives it (its multiplier's comment).
    train["optimizer"]["new_parameters_lr_multiplier"] = 1.0
    train["optimizer"]["temperature_lr_multiplier"] = 1e-5 / settings.lr
    # Constant after a short warm-up: measured on the sentence task (batch 16, 800 steps), cosine
    # decay to lr / 10 leaves it at chance (EM 0.02, R@1 0.30), the constant rate learns it (EM
    # 0.84, R@1 0.98); twice the peak rate (2e-3, cosine) leaves the attention uniform (entropy
    # 1.00). BENCHMARKS.md "Making GeAR learn" has the table.
    train["schedule"].update(warmup_steps=50, warmup_lr=settings.lr / 100, min_lr=settings.lr)
    train.update(settings.train_overrides)
    return cfg


def evaluate_probe(model_dir: Path, rows: list[dict], layer: int) -> dict[str, float]:
    """Exact match of greedy generation and, for tasks with units, cross-attention localization
    R@1 with its references (unit length, random) and the mean normalised attention entropy."""

    model, tokenizer = load_gear(model_dir, device="cpu")
    queries, documents = [r["query"] for r in rows], [r["document"] for r in rows]
    predictions = generate(model, tokenizer, queries, documents, max_new_tokens=8, batch_size=64)
    out = {"EM": float(qa_generation_metrics(predictions, [[r["target"]] for r in rows])["EM"].mean())}
    out["example"] = f"{queries[0]!r} -> {predictions[0]!r} (gold {rows[0]['target']!r})"
    if "units" in rows[0]:
        relevant = [r["relevant"] for r in rows]
        found = localize_units(
            model,
            tokenizer,
            queries,
            documents,
            [r["units"] for r in rows],
            [layer],
            LocalizationConfig(layer=layer),
        )
        out["loc_R@1"] = float(localization_metrics(found.by_layer[layer], relevant, 1)["R@1"].mean())
        length = break_ties_at_random(found.uniform, seed=0)
        out["length_R@1"] = float(localization_metrics(length, relevant, 1)["R@1"].mean())
        random = random_unit_scores([len(r["units"]) for r in rows], seed=0)
        out["random_R@1"] = float(localization_metrics(random, relevant, 1)["R@1"].mean())
        out["entropy"] = float(found.entropy[layer].mean())
    return out


def run_probe(settings: ProbeSettings, base_config: dict, work: Path, tokenizer_from: str | Path) -> dict:
    """Train a tiny GeAR on ``settings.task`` and evaluate it before and after.

    Returns:
        ``{"initial": metrics, "trained": metrics, "seconds": training time}`` (see
        :func:`evaluate_probe`).
    """

    task = TASKS[settings.task]
    work = Path(work)
    checkpoint = tiny_bert(work / "tiny_bert", tokenizer_from, settings)
    cfg = probe_config(base_config, checkpoint, settings)
    train_rows = task(settings.steps * settings.batch_size, settings.seed + 1, **settings.task_options)
    if settings.shuffle_documents:
        documents = [r["document"] for r in train_rows]
        for row, j in zip(
            train_rows, np.random.default_rng(settings.seed).permutation(len(documents)), strict=True
        ):
            row["document"] = documents[j]
    test_rows = task(settings.test_queries, 10_000 + settings.seed, **settings.task_options)
    triples = work / "train.jsonl"
    write_jsonl(
        triples,
        [{k: r[k] for k in ("query_id", "query", "doc_id", "document", "target")} for r in train_rows],
    )

    gear_section, _ = read_sections(cfg)
    layer = gear_section.localization.layer
    initial = work / "initial"
    model, tokenizer, _ = build_from_bert(
        checkpoint,
        seed=int(cfg["seed"]),
        cross_attention_init=gear_section.cross_attention_init,
        max_query_tokens=16,
        max_document_tokens=128,
        max_target_tokens=16,
    )
    model.save_pretrained(initial, tokenizer)
    result = {"initial": evaluate_probe(initial, test_rows, layer)}
    started = time.perf_counter()
    model_dir = train_gear(triples, work / "model", cfg, "GeAR", "qar")
    result["seconds"] = time.perf_counter() - started
    result["trained"] = evaluate_probe(model_dir, test_rows, layer)
    return result


def main(argv: list[str] | None = None) -> None:

    parser = argparse.ArgumentParser(description="GeAR learnability probe on a synthetic task")
    parser.add_argument("--task", choices=sorted(TASKS), default="sentences")
    parser.add_argument("--steps", type=int, default=ProbeSettings.steps)
    parser.add_argument("--config", default=str(REPO_ROOT / "config" / "mini.yaml"))
    parser.add_argument("--shuffle-documents", action="store_true", help="the broken-mechanism control")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=ProbeSettings.batch_size)
    parser.add_argument("--filler-sentences", type=int, default=0, help="sentences task: longer documents")
    parser.add_argument("--lr", type=float, default=ProbeSettings.lr)
    parser.add_argument("--gear", default="{}", help="JSON of gear keys to set (e.g. cross_attention_init)")
    parser.add_argument(
        "--train",
        default="{}",
        help="JSON of train keys to set after the probe's own (a key replaces the whole section)",
    )
    parser.add_argument(
        "--vocabulary",
        choices=("task", "tokenizer"),
        default=ProbeSettings.vocabulary,
        help="the tiny model's vocabulary: the tasks' words, or all of MiniLM's (30,522)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    settings = ProbeSettings(
        task=args.task,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        shuffle_documents=args.shuffle_documents,
        vocabulary=args.vocabulary,
        task_options={"filler_sentences": args.filler_sentences} if args.filler_sentences else {},
        gear_overrides=json.loads(args.gear),
        train_overrides=json.loads(args.train),
    )
    work = Path(args.out or tempfile.mkdtemp(prefix="gear_probe_"))
    result = run_probe(settings, load_config(args.config), work, resolve_model(MINILM_ID))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
