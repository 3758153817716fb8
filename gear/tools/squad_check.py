"""A real-text sanity run of GeAR: train briefly from MiniLM on SQuAD, watch the numbers move.

SQuAD v1.1 dev articles are split (seeded) into training and test articles. Training triples are
(question, paragraph, first answer) of the training articles; the test corpus is every paragraph
of the test articles and the test queries their questions. GeAR is trained with the mini config
(``config/mini.yaml``: MiniLM start, its optimizer and schedule) for a few epochs; after every epoch
the table shows the epoch's mean training losses, test retrieval Recall@5 and MRR@5 by exact
inner-product search with the bi-encoder, and exact match of greedy generation on a sample of
test pairs. Epoch 0 is the model as loaded from MiniLM (new cross-attention and decoder untrained).

    python -m gear.tools.squad_check --squad /work/shared/data/squad/dev-v1.1.json

Not a benchmark: a check of whether the training signal does on real text what the paper says
(the LM loss falls, the cross-attention leaves uniform and finds the answer's sentence, the
decoder answers). Localization is printed beside the unit-length ranking (what uniform attention
gives), a seeded random ranking, the mean normalised attention entropy and MiniLM's sentence
similarity on the same pairs; a second table gives localization R@1 at every fusion layer, for
the questions and for keyword queries of the test articles' sentences (RIR-style: the gold unit is
the sentence the keywords come from), each beside its length ranking and MiniLM's sentence
similarity on the same queries; a third gives what the decoder reads (:func:`document_reliance`:
the answers' and keyword sentences' LM loss with the right paragraph, another one, and no
query). Localization is measured on a seeded sample of 500 test pairs drawn from every test
article (``--localization-pairs``; 0: all 1,470, about 4 minutes a model), exact match and
what the decoder reads on the first 100 of them (``--generation-pairs``). The run ends with one
``squad_check summary:`` line. ``--evaluate FOLDER ...`` trains nothing and gives the same
tables for saved GeAR models (about 2 minutes each). ``--validation-questions N`` holds out N
questions of the training articles; their localization R@1 picks the epoch (or the evaluated
model) that the summary line reports, which is otherwise the last.
``--variant GeAR_CL`` trains the contrastive loss alone, ``--lr`` sets the peak learning rate,
``--init scratch`` starts from a small random BERT instead, ``--sentence-queries N`` adds N
RIR-style triples built from the training articles' sentences (keyword query -> the sentence),
``--cloze-queries N`` adds N extractive triples (a sentence with one phrase blanked -> the
phrase), ``--train-window K`` cuts each training paragraph to K sentences holding the answer (test
paragraphs stay whole), and
``--init-model FOLDER`` trains a saved GeAR model further (a second stage, e.g. questions after
keyword queries), and
``--gear`` / ``--train`` set config keys (JSON, merged into config/mini.yaml's sections). The defaults take about 30 minutes on
two CPU cores; BENCHMARKS.md holds the measured per-epoch tables.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from data_prep.normalized import SentenceSplitter, relevant_units
from data_prep.rir.postprocess import clean_query
from data_prep.rir.rewrite import keyword_query
from gear.config import REPO_ROOT, load_config
from gear.evaluation.metrics import (
    break_ties_at_random,
    localization_metrics,
    other_queries_scores,
    qa_generation_metrics,
    random_unit_scores,
    retrieval_metrics,
)
from gear.hub import MINILM_ID, resolve_model
from gear.inference import GearEncoder, LocalizationConfig, generate, localize_units
from gear.io import is_gear_folder, read_json, write_jsonl
from gear.model.modeling import build_from_bert
from gear.training.settings import read_sections
from gear.training.trainer import train_gear

log = logging.getLogger(__name__)


def split_squad(path: str | Path, train_articles: int, test_articles: int, seed: int) -> tuple[list, list]:
    """(train articles, test articles) of a SQuAD v1.1 JSON file, chosen by a seeded shuffle."""
    data = read_json(path)
    try:
        articles = data["data"]
    except (KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a SQuAD v1.1 file (no top-level 'data' list)") from err
    if train_articles + test_articles > len(articles):
        raise ValueError(
            f"{path}: {len(articles)} articles, fewer than {train_articles} + {test_articles} requested"
        )
    order = np.random.default_rng(seed).permutation(len(articles))
    chosen = [articles[i] for i in order]
    return chosen[:train_articles], chosen[train_articles : train_articles + test_articles]


def squad_pairs(articles: list) -> tuple[list[dict], list[str], list[str]]:
    """Triples (question, paragraph, first answer) and the paragraphs with their ids."""
    triples, documents, doc_ids = [], [], []
    for article in articles:
        for number, paragraph in enumerate(article["paragraphs"]):
            doc_id = f"{article['title']}-{number}"
            documents.append(paragraph["context"])
            doc_ids.append(doc_id)
            for qa in paragraph["qas"]:
                if qa["answers"]:
                    triples.append(
                        {
                            "query_id": qa["id"],
                            "query": qa["question"],
                            "doc_id": doc_id,
                            "document": paragraph["context"],
                            "target": qa["answers"][0]["text"],
                            "answers": [a["text"] for a in qa["answers"]],
                            "anchor": qa["answers"][0]["answer_start"],
                        }
                    )
    return triples, documents, doc_ids


def article_sentences(articles: list):
    """Every sentence of ``articles``' paragraphs: (doc_id, paragraph text, sentence number, start
    offset, end offset, the stripped sentence), as the split of ``SentenceSplitter``."""
    splitter = SentenceSplitter()
    for article in articles:
        for number, paragraph in enumerate(article["paragraphs"]):
            doc_id = f"{article['title']}-{number}"
            text = paragraph["context"]
            for unit, (start, end) in enumerate(splitter.split(text)):
                yield doc_id, text, unit, start, end, text[start:end].strip()


def sentence_triples(
    articles: list, count: int, seed: int, keywords: int = 0, full_share: float = 0.0
) -> list[dict]:
    """RIR-style training triples from the sentences of ``articles`` (more training text from the
    same training articles, issue 14): the query is the offline keyword rewriter's rewrite of one
    sentence, cleaned as the RIR post-processing does (keywords deduplicated, order shuffled,
    seeded), the document its paragraph and the target the sentence itself, as in the paper's RIR
    scenario. Sentences of fewer than 3 keywords are skipped; ``count`` are drawn at random
    (seeded) from the rest.

    ``keywords`` > 0 keeps only the first ``keywords`` phrases of the shuffled query and skips
    sentences of fewer than ``keywords + 2`` phrases, so that most of the target's content words
    are in the document only (``--query-keywords``; a choice of this check, not of the paper: a
    full keyword query lets the decoder write the sentence from the query alone, BENCHMARKS.md,
    "A third epoch, and what the decoder reads"). With ``keywords`` > 0, ``full_share`` of the
    drawn triples (the first of the seeded draw) keep their full query (``--full-query-share``):
    a mix of the two, where full queries reward lexical matching and capped ones reading the
    paragraph."""
    if keywords < 0:
        raise ValueError(f"--query-keywords must be 0 (all) or more, got {keywords}")
    if not 0.0 <= full_share <= 1.0:
        raise ValueError(f"--full-query-share must lie in [0, 1], got {full_share}")

    triples, full_queries = [], []
    for doc_id, text, unit, start, _, sentence in article_sentences(articles):
        query_id = f"{doc_id}-s{unit}"
        phrases = clean_query(keyword_query(sentence), seed, query_id).split(", ")
        if len(phrases) >= max(3, keywords + 2):
            full_queries.append(", ".join(phrases))
            triples.append(
                {
                    "query_id": query_id,
                    "query": ", ".join(phrases[:keywords] if keywords else phrases),
                    "doc_id": doc_id,
                    "document": text,
                    "target": sentence,
                    "anchor": start,
                }
            )
    order = np.random.default_rng(seed).permutation(len(triples))[:count]
    full = round(full_share * len(order)) if keywords else 0
    return [{**triples[i], "query": full_queries[i]} if n < full else triples[i] for n, i in enumerate(order)]


CLOZE_QUERY_WORDS = 32
CLOZE_MIN_QUERY_WORDS = 6


def cloze_triples(articles: list, count: int, seed: int) -> list[dict]:
    """Extractive training triples from the sentences of ``articles`` (``--cloze-queries``): the
    query is one sentence with one of its keyword phrases replaced by "what", the document its
    paragraph and the target the phrase, so the target can only be read from the document, at the
    place the query's words point to, as a SQuAD answer must be. A training-data choice of this
    check, not of the paper (issue 14: the decoder has to learn to read answers; question triples
    alone taught it too little, BENCHMARKS.md).

    The phrases are the offline keyword rewriter's (``keyword_query``) of 1-4 words that occur once
    in the sentence; a phrase whose every word is capitalised or a number (a name, a date, a number:
    what SQuAD answers mostly are) is preferred when the sentence has one. Queries of more than
    ``CLOZE_QUERY_WORDS`` words keep that many around the blank, so the blank survives the query's
    token limit; queries of fewer than ``CLOZE_MIN_QUERY_WORDS`` words (splitter fragments) are
    skipped. ``count`` triples are drawn at random (seeded) from every sentence that has a
    phrase; the phrase of each sentence is drawn seeded as well."""
    if count < 0:
        raise ValueError(f"--cloze-queries must be 0 or more, got {count}")
    rng = np.random.default_rng(seed)
    triples = []
    for doc_id, text, unit, start, end, sentence in article_sentences(articles):
        phrases = [
            phrase
            for phrase in dict.fromkeys(keyword_query(sentence).split(", "))
            if 1 <= len(phrase.split()) <= 4 and sentence.count(phrase) == 1
        ]
        named = [p for p in phrases if all(w[0].isupper() or w[0].isdigit() for w in p.split())]
        choices = named or phrases
        if not choices:
            continue
        phrase = choices[int(rng.integers(len(choices)))]
        at = sentence.index(phrase)
        before = sentence[:at].split()
        after = sentence[at + len(phrase) :].rstrip(" .!;:").split()
        room = CLOZE_QUERY_WORDS - 1
        keep_before = min(len(before), max(room // 2, room - len(after)))
        keep_after = min(len(after), room - keep_before)
        words = [*before[len(before) - keep_before :], "what", *after[:keep_after]]
        if len(words) < CLOZE_MIN_QUERY_WORDS:
            continue
        triples.append(
            {
                "query_id": f"{doc_id}-c{unit}",
                "query": " ".join(words) + "?",
                "doc_id": doc_id,
                "document": text,
                "target": phrase,
                "anchor": start + text[start:end].index(phrase),
            }
        )
    order = np.random.default_rng(seed + 3).permutation(len(triples))[:count]
    return [triples[i] for i in order]


def sentence_windows(triples: list[dict], sentences: int, seed: int) -> list[dict]:
    """The triples with each document cut to ``sentences`` consecutive sentences that hold the
    triple's anchor (the answer's start, or the target sentence's), the window's place drawn at
    random (seeded); documents of no more sentences are kept whole. A training-data choice of this
    check (``--train-window``), not of the paper: short documents make the question-dependent
    attention the LM loss needs appear after fewer examples (BENCHMARKS.md, "longer documents"),
    and the test documents stay whole paragraphs."""
    if sentences < 1:
        raise ValueError(
            f"--train-window must be at least 1 sentence (0 keeps whole paragraphs), got {sentences}"
        )
    splitter = SentenceSplitter()
    rng = np.random.default_rng(seed)
    cut = []
    for triple in triples:
        text = triple["document"]
        spans = splitter.split(text)
        if len(spans) <= sentences:
            cut.append(triple)
            continue
        # The first sentence that ends after the anchor (an anchor between two sentences goes to
        # the next one).
        holding = next((i for i, (_, end) in enumerate(spans) if triple["anchor"] < end), len(spans) - 1)
        low, high = max(0, holding - sentences + 1), min(holding, len(spans) - sentences)
        first = int(rng.integers(low, high + 1))
        start, end = spans[first][0], spans[first + sentences - 1][1]
        cut.append(
            {
                **triple,
                "doc_id": f"{triple['doc_id']}-w{first}-{sentences}",
                "document": text[start:end].strip(),
            }
        )
    return cut


def merge_settings(base: dict, overrides: dict) -> None:
    """Set ``overrides``' keys in ``base``, descending into nested mappings."""
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge_settings(base[key], value)
        else:
            base[key] = value


def sentence_similarity_scores(
    model_path: str | Path, queries: list[str], documents: list[str], units: list[list[tuple[int, int]]]
) -> list[np.ndarray]:
    """Localization by MiniLM's sentence similarity: each sentence and the question embedded by
    the sentence-transformers model at ``model_path`` (normalised), scored by inner product. The
    reference a cross-attention localizer must be read against (Table 2's bi-encoder rows)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_path), device="cpu")
    texts = [document[s:e] for document, spans in zip(documents, units, strict=True) for s, e in spans]
    vectors = model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    query_vectors = model.encode(queries, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    scores, start = [], 0
    for q, spans in zip(query_vectors, units, strict=True):
        scores.append(vectors[start : start + len(spans)] @ q)
        start += len(spans)
    return scores


def localization_pairs(sample: list[dict]) -> tuple[list[str], list[str], list[list], list[list[int]]]:
    """(questions, paragraphs, sentence spans, relevant sentences) of the pairs whose answer lies in
    a sentence (SPEC 2: pysbd sentences, every sentence containing a gold answer is relevant)."""

    splitter = SentenceSplitter()
    out: tuple[list, list, list, list] = ([], [], [], [])
    for t in sample:
        units = splitter.split(t["document"])
        relevant = relevant_units(t["document"], units, t["answers"])
        if relevant:
            for column, value in zip(out, (t["query"], t["document"], units, relevant), strict=True):
                column.append(value)
    return out


def test_samples(
    test: list[dict], localization_pairs: int, generation_pairs: int, seed: int
) -> tuple[list, list]:
    """The test pairs that localization (``localization_pairs``, 0: all) and generation
    (``generation_pairs``) are measured on: prefixes of one seeded permutation of all test
    pairs, so that both draw from every test article. (Until 2026-12-07 both were the first
    pairs in article order, i.e. the first article's questions only.)"""
    order = np.random.default_rng(seed + 3).permutation(len(test))
    shuffled = [test[i] for i in order]
    return shuffled[: localization_pairs or len(test)], shuffled[:generation_pairs]


def answer_word_pairs(sample: list[dict]) -> tuple[list[str], list[str], list[list], list[list[int]]]:
    """(questions, paragraphs, word spans, the words of the answer) of the pairs of ``sample``: the
    paragraph's units are its words (whitespace-separated), the gold units the words that overlap
    the first answer's span. Localization over these units asks whether the fusion encoder's
    attention falls on the answer itself, the token-level pointing a decoder needs to copy it,
    rather than on its sentence (BENCHMARKS.md, "Cloze triples")."""
    out: tuple[list, list, list, list] = ([], [], [], [])
    for t in sample:
        text, start = t["document"], t["anchor"]
        end = start + len(t["target"])
        words = [m.span() for m in re.finditer(r"\S+", text)]
        relevant = [i for i, (s, e) in enumerate(words) if s < end and e > start]
        if relevant and len(words) > 1:
            for column, value in zip(out, (t["query"], text, words, relevant), strict=True):
                column.append(value)
    return out


def keyword_localization_pairs(
    articles: list, count: int, seed: int
) -> tuple[list[str], list[str], list[list], list[list[int]]]:
    """(queries, paragraphs, sentence spans, relevant sentence) of ``count`` keyword queries of the
    sentences of ``articles`` (:func:`sentence_triples`: the RIR construction, the gold unit is the
    sentence the keywords were taken from), keeping those whose paragraph has two or more sentences.
    On the test articles this measures localization where the query names its sentence's words."""

    splitter = SentenceSplitter()
    out: tuple[list, list, list, list] = ([], [], [], [])
    for t in sentence_triples(articles, count, seed):
        units = splitter.split(t["document"])
        relevant = [i for i, (s, e) in enumerate(units) if t["document"][s:e].strip() == t["target"]]
        if relevant and len(units) > 1:
            for column, value in zip(out, (t["query"], t["document"], units, relevant), strict=True):
                column.append(value)
    return out


def other_documents(documents: list[str]) -> list[str]:
    """For each position, the next document in the (cyclic) list whose text differs from its own:
    a wrong paragraph for every pair, also where neighbouring pairs share one (SQuAD's questions
    come in runs of the same paragraph). Raises ValueError if all documents are the same."""
    if len(set(documents)) < 2:
        raise ValueError("other_documents needs at least two different documents")
    n = len(documents)
    out = []
    for i, document in enumerate(documents):
        j = (i + 1) % n
        while documents[j] == document:
            j = (j + 1) % n
        out.append(documents[j])
    return out


@torch.no_grad()
def document_reliance(
    model, tokenizer, queries: list[str], documents: list[str], targets: list[str], batch_size: int = 16
) -> dict[str, float]:
    """What the decoder reads: the mean per-token LM loss (nats) of ``targets`` given the right
    documents (``right``), given another pair's document (``other document``,
    :func:`other_documents`; NaN if all pairs share one document), and given the right document
    with the query left empty (``empty query``). Batches are built by the trainer's own collator and scored by ``GeAR.lm_loss_sum``,
    the loss the trainer minimises. A decoder that reads the document loses clearly more with the
    wrong one; one that writes the target from the query alone loses more without the query."""
    from gear.training.triples import TripleCollator

    cfg = model.config
    collate = TripleCollator(
        tokenizer,
        cfg.max_query_tokens,
        cfg.max_document_tokens,
        cfg.max_target_tokens,
        cfg.decoder_start_token_id,
        cfg.eos_token_id,
    )
    model.eval()
    variants = {"right": (queries, documents), "empty query": ([""] * len(queries), documents)}
    out = {"other document": float("nan")}  # stays NaN when every pair has the same paragraph
    if len(set(documents)) > 1:
        variants["other document"] = (queries, other_documents(documents))
    for name, (qs, ds) in variants.items():
        total = count = 0.0
        for start in range(0, len(qs), batch_size):
            rows = [
                {"query": q, "document": d, "target": t, "doc_id": str(i)}
                for i, (q, d, t) in enumerate(
                    zip(
                        qs[start : start + batch_size],
                        ds[start : start + batch_size],
                        targets[start : start + batch_size],
                        strict=True,
                    )
                )
            ]
            batch = collate(rows)
            states = model.document_encoder(batch["document_ids"], batch["document_mask"]).hidden_states
            loss_sum, tokens = model.lm_loss_sum(
                batch["query_ids"],
                batch["query_mask"],
                states,
                batch["document_mask"],
                batch["target_input"],
                batch["target_labels"],
            )
            total += float(loss_sum)
            count += float(tokens)
        out[name] = total / count
    return out


def evaluate(
    model_dir: Path,
    test: list[dict],
    documents: list[str],
    doc_ids: list[str],
    generation_sample: list[dict],
    max_new_tokens: int,
    localization_layer: int,
    keyword_pairs: tuple[list, list, list, list] = ([], [], [], []),
    localization_sample: list[dict] | None = None,
) -> dict[str, float]:
    """Test retrieval (exact inner-product search), cross-attention localization beside its trivial
    references (unit length: what uniform attention gives; a seeded random ranking) with the mean
    normalised attention entropy, and generation. Localization R@1 is also given at every fusion
    layer, for the questions, for ``keyword_pairs`` (:func:`keyword_localization_pairs`) and, on
    ``generation_sample``, for the answer's words among the paragraph's words
    (:func:`answer_word_pairs`).
    Localization is measured on ``localization_sample`` (default: ``generation_sample``), exact
    match and what the decoder reads on ``generation_sample`` (:func:`test_samples`).

    Metrics are the suite's own (gear.evaluation.metrics).
    """

    encoder = GearEncoder(model_dir, device="cpu")
    doc_vectors = encoder.encode_documents(documents, batch_size=16)
    query_vectors = encoder.encode_queries([t["query"] for t in test], batch_size=64)
    index = {doc_id: i for i, doc_id in enumerate(doc_ids)}
    scores = query_vectors @ doc_vectors.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :5]
    retrieval = retrieval_metrics(
        top, np.take_along_axis(scores, top, axis=1), [[index[t["doc_id"]]] for t in test], 5
    )
    result = {"R@5": float(retrieval["R@5"].mean()), "M@5": float(retrieval["M@5"].mean())}
    if not generation_sample:  # e.g. GeAR_CL, whose cross-attention and decoder never train
        nan = float("nan")
        keys = (
            "loc R@1",
            "loc M@1",
            "length R@1",
            "random R@1",
            "entropy",
            "others R@1",
            "own R@1 (siblings)",
            "EM",
        )
        return {**result, **dict.fromkeys(keys, nan), "example": "", "by layer": {}, "reads": {}}
    sample = generation_sample
    questions, paragraphs, units, relevant = localization_pairs(
        sample if localization_sample is None else localization_sample
    )
    layers = list(range(1, encoder.model.config.num_hidden_layers + 1))
    by_layer: dict[str, tuple[float, list[float]]] = {}
    answer_words = answer_word_pairs(sample)
    # What a random word gets: the answer's share of the paragraph's words.
    word_chance = float(
        np.mean([len(g) / len(w) for w, g in zip(answer_words[2], answer_words[3], strict=True)])
    )
    for name, pairs in (
        ("questions", (questions, paragraphs, units, relevant)),
        ("keyword queries", keyword_pairs),
        ("answer words", answer_words),
    ):
        if name != "questions" and not pairs[0]:
            continue
        scored = localize_units(
            encoder.model,
            encoder.tokenizer,
            *pairs[:3],
            layers=layers,
            localization=LocalizationConfig(layer=localization_layer),
        )
        if name == "questions":
            found = scored
        gold = pairs[3]
        by_layer[name] = (
            float(localization_metrics(break_ties_at_random(scored.uniform, seed=0), gold, 1)["R@1"].mean()),
            [float(localization_metrics(scored.by_layer[i], gold, 1)["R@1"].mean()) for i in layers],
        )
    localization = localization_metrics(found.by_layer[localization_layer], relevant, 1)
    siblings, others = other_queries_scores(found.by_layer[localization_layer], paragraphs)
    own_on_siblings = localization["R@1"][siblings]
    others_r1 = localization_metrics(others, [relevant[i] for i in siblings], 1)["R@1"]
    random = localization_metrics(random_unit_scores([len(u) for u in units], seed=0), relevant, 1)
    predictions = generate(
        encoder.model,
        encoder.tokenizer,
        [t["query"] for t in sample],
        [t["document"] for t in sample],
        max_new_tokens,
        batch_size=16,
    )
    generation = qa_generation_metrics(predictions, [t["answers"] for t in sample])
    reads = {
        "answers": document_reliance(
            encoder.model,
            encoder.tokenizer,
            [t["query"] for t in sample],
            [t["document"] for t in sample],
            [t["target"] for t in sample],
        )
    }
    if keyword_pairs[0]:
        # as many as the answers: the same cost per target, three passes each
        queries, texts, spans, gold = (column[: len(sample)] for column in keyword_pairs)
        sentences = [
            text[spans_[g[0]][0] : spans_[g[0]][1]]
            for text, spans_, g in zip(texts, spans, gold, strict=True)
        ]
        reads["keyword targets"] = document_reliance(
            encoder.model, encoder.tokenizer, queries, texts, sentences
        )
    return {
        **result,
        "loc R@1": float(localization["R@1"].mean()),
        "loc M@1": float(localization["M@1"].mean()),
        "length R@1": by_layer["questions"][0],
        "random R@1": float(random["R@1"].mean()),
        "entropy": float(found.entropy[localization_layer].mean()),
        "others R@1": float(others_r1.mean()),
        "own R@1 (siblings)": float(own_on_siblings.mean()),
        "EM": float(generation["EM"].mean()),
        "answer word chance": word_chance,
        "example": predictions[0],
        "by layer": by_layer,
        "reads": reads,
    }


SCRATCH_LAYERS = 2


def validation_localization(model_dir: Path, validation: list[dict], layer: int) -> tuple[float, float]:
    """Localization R@1 at fusion ``layer`` on held-out questions of the training articles
    (``--validation-questions``): the number that picks an epoch (or a model of ``--evaluate``)
    without looking at the test articles. The questions were never trained on; their paragraphs
    may have been, with other questions (and as keyword or cloze triples). Returns the model's R@1
    and the unit-length ranking's on the same questions."""
    encoder = GearEncoder(model_dir, device="cpu")
    questions, paragraphs, units, relevant = localization_pairs(validation)
    scored = localize_units(
        encoder.model,
        encoder.tokenizer,
        questions,
        paragraphs,
        units,
        layers=[layer],
        localization=LocalizationConfig(layer=layer),
    )
    length = break_ties_at_random(scored.uniform, seed=0)
    return (
        float(localization_metrics(scored.by_layer[layer], relevant, 1)["R@1"].mean()),
        float(localization_metrics(length, relevant, 1)["R@1"].mean()),
    )


def chosen_row(rows: list[dict]) -> dict:
    """The row the summary reports: the one of the highest validation R@1 (the earliest of equal
    ones) when rows carry one, else the last (the pre-specified number of epochs)."""
    if "validation R@1" not in rows[0]:
        return rows[-1]
    best = max(row["validation R@1"] for row in rows)
    return next(row for row in rows if row["validation R@1"] == best)


def scratch_bert(folder: Path, vocabulary_from: str, seed: int) -> Path:
    """A small randomly initialised BERT (2 layers, hidden 256) with MiniLM's vocabulary.

    all-MiniLM-L6-v2 was trained on a billion sentence pairs, SQuAD among them, so a few hundred
    SQuAD triples cannot raise its retrieval; starting from random weights shows what the
    training objective itself learns from real text.
    """
    from transformers import AutoTokenizer, BertConfig, BertModel

    if not (folder / "config.json").is_file():
        torch.manual_seed(seed)
        config = BertConfig(
            hidden_size=256,
            num_hidden_layers=SCRATCH_LAYERS,
            num_attention_heads=4,
            intermediate_size=1024,
        )
        BertModel(config).save_pretrained(folder)
        AutoTokenizer.from_pretrained(vocabulary_from).save_pretrained(folder)
    return folder


def run(args: argparse.Namespace) -> list[dict]:

    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    out = Path(args.out or tempfile.mkdtemp(prefix="gear_squad_check_"))
    cfg = load_config(REPO_ROOT / "config" / "mini.yaml")
    cfg["gear"]["max_document_tokens"] = args.max_document_tokens
    cfg["train"]["epochs"] = args.epochs
    cfg["train"]["scenarios"]["qar"]["batch_size"] = args.batch_size
    cfg["train"]["queue_size"] = args.batch_size * 8
    cfg["train"]["log_every_seconds"] = 60
    if args.lr is not None:
        cfg["train"]["optimizer"]["lr"] = args.lr
    merge_settings(cfg["gear"], json.loads(args.gear))
    merge_settings(cfg["train"], json.loads(args.train))

    train_articles, test_articles = split_squad(
        args.squad, args.train_articles, args.test_articles, args.seed
    )
    train, _, _ = squad_pairs(train_articles)
    order = np.random.default_rng(args.seed).permutation(len(train))
    if args.validation_questions < 0:
        raise SystemExit(f"--validation-questions must be 0 or more, got {args.validation_questions}")
    if args.validation_questions and args.max_train + args.validation_questions > len(train):
        raise SystemExit(
            f"--max-train {args.max_train} and --validation-questions {args.validation_questions} ask for "
            f"more than the {len(train)} questions of the {args.train_articles} training articles"
        )
    # Validation questions come from the end of the same permutation: never trained on, and the
    # training draw stays what it is without them.
    validation = (
        [train[i] for i in order[len(order) - args.validation_questions :]]
        if args.validation_questions
        else []
    )
    train = [train[i] for i in order[: args.max_train]]
    sentences = sentence_triples(
        train_articles, args.sentence_queries, args.seed, args.query_keywords, args.full_query_share
    )
    cloze = cloze_triples(train_articles, args.cloze_queries, args.seed)
    mixed = train + sentences + cloze
    if args.train_window != 0:
        mixed = sentence_windows(mixed, args.train_window, args.seed + 2)
    mixed = [mixed[i] for i in np.random.default_rng(args.seed + 1).permutation(len(mixed))]
    test, documents, doc_ids = squad_pairs(test_articles)
    located, generated = test_samples(test, args.localization_pairs, args.generation_pairs, args.seed)
    keyword = keyword_localization_pairs(
        test_articles, len(located) if args.generation_pairs else 0, args.seed
    )
    triples_path = out / "train.jsonl"
    write_jsonl(
        triples_path,
        [{k: t[k] for k in ("query_id", "query", "doc_id", "document", "target")} for t in mixed],
    )
    print(
        f"{len(train)} question triples, {len(sentences)} keyword-query sentence triples and "
        f"{len(cloze)} cloze triples from "
        f"{args.train_articles} articles; test: {len(documents)} paragraphs, "
        f"{len(test)} questions from {args.test_articles} other articles; output in {out}",
        flush=True,
    )

    start_checkpoint = resolve_model(MINILM_ID)
    if args.init == "scratch":
        start_checkpoint = str(scratch_bert(out / "scratch_bert", start_checkpoint, args.seed))
        cfg["gear"]["init_checkpoint"] = start_checkpoint
        cfg["gear"]["localization"]["layer"] = SCRATCH_LAYERS
    layer = cfg["gear"]["localization"]["layer"]
    initial = out / "epoch_0"
    if args.init_model:
        if args.init != "minilm":
            raise SystemExit(
                "--init-model and --init scratch exclude each other: the saved model is the start"
            )
        initial = Path(args.init_model).resolve()
        if not is_gear_folder(initial):
            raise SystemExit(
                f"--init-model {args.init_model}: not a saved GeAR model folder (config.json with model_type gear)"
            )
        cfg["gear"]["init_checkpoint"] = str(initial)
    elif not args.evaluate and not (initial / "model.safetensors").is_file():
        model, tokenizer, _ = build_from_bert(
            start_checkpoint,
            seed=cfg["seed"],
            cross_attention_init=read_sections(cfg)[0].cross_attention_init,
            max_query_tokens=cfg["gear"]["max_query_tokens"],
            max_document_tokens=args.max_document_tokens,
            max_target_tokens=cfg["gear"]["max_target_tokens"],
        )
        model.save_pretrained(initial, tokenizer)

    def assess(model_dir: Path) -> dict:
        checked = {}
        if validation:
            checked["validation R@1"], checked["validation length R@1"] = validation_localization(
                model_dir, validation, layer
            )
        return checked | evaluate(
            model_dir,
            test,
            documents,
            doc_ids,
            generated,
            args.max_new_tokens,
            layer,
            keyword,
            localization_sample=located,
        )

    seconds = examples = None
    if args.evaluate:
        rows = []
        for i, folder in enumerate(args.evaluate):
            if not is_gear_folder(folder):
                raise SystemExit(
                    f"--evaluate {folder}: not a saved GeAR model folder (config.json with model_type gear)"
                )
            rows.append({"epoch": f"m{i}", "model": str(Path(folder).resolve()), **assess(Path(folder))})
            print(f"m{i} = {folder} evaluated: {rows[-1]}", flush=True)
    else:
        rows = [{"epoch": 0, "model": str(Path(initial).resolve()), **assess(initial)}]
        print(f"epoch 0 evaluated: {rows[0]}", flush=True)
        start = time.perf_counter()
        model_dir = train_gear(triples_path, out / "gear", cfg, args.variant, "qar")
        seconds = time.perf_counter() - start
        config = read_json(model_dir / "train_config.json")
        examples = config["steps"] * args.batch_size
        epochs = [json.loads(line) for line in (model_dir / "train_log.jsonl").read_text().splitlines()]
        losses = {r["epoch"]: r for r in epochs if r["event"] == "epoch"}
        for epoch in range(1, args.epochs + 1):
            folder = out / "gear" / "epochs" / f"epoch_{epoch}"
            metrics = assess(folder)
            rows.append(
                {
                    "epoch": epoch,
                    "model": str(folder.resolve()),
                    **{k: losses[epoch][k] for k in ("cl_loss", "lm_loss") if k in losses[epoch]},
                    **metrics,
                }
            )
            print(f"epoch {epoch} evaluated: {rows[-1]}", flush=True)

    questions, paragraphs, units, relevant = localization_pairs(located)
    minilm_path = resolve_model(MINILM_ID)
    minilm_by_queries = {}
    for name, pairs in (
        ("questions", (questions, paragraphs, units, relevant)),
        ("keyword queries", keyword),
    ):
        if pairs[0]:
            scores = sentence_similarity_scores(minilm_path, *pairs[:3])
            minilm_by_queries[name] = localization_metrics(scores, pairs[3], 1)["R@1"].mean()
    minilm = minilm_by_queries.get("questions", float("nan"))
    minutes = (time.perf_counter() - started) / 60

    if seconds is not None:
        print(
            f"\ntraining: {examples} examples in {seconds:.0f} s = {examples / seconds:.2f} examples/s "
            f"(batch {args.batch_size}, documents <= {args.max_document_tokens} tokens, {args.threads} threads)"
        )
    print(
        f"\nLocalization on the {len(questions)} of {len(located)} test pairs (a seeded sample of all {args.test_articles} "
        f"test articles; exact match on the first {len(generated)} of them) whose answer lies in "
        f"a sentence, at fusion layer {layer}; 'length' ranks sentences by token count (what uniform attention "
        f"gives), 'random' is a seeded random ranking, entropy is attention entropy / log(document length) "
        f"(1 = uniform). 'other questions' ranks each paragraph by the mean attention of the other test "
        f"questions on it (a query-independent reference), beside the model's own R@1 on the same pairs "
        f"(those whose paragraph has another question). MiniLM's sentence similarity on the same pairs: "
        f"R@1 {minilm:.3f}."
    )
    print(
        "\n| epoch | train CL loss | train LM loss | test R@5 | test MRR@5 | localization R@1 / M@1 "
        "| length R@1 | random R@1 | attention entropy | other questions R@1 (own) | EM | first prediction |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        cl = f"{row['cl_loss']:.3f}" if "cl_loss" in row else "-"
        lm = f"{row['lm_loss']:.3f}" if "lm_loss" in row else "-"
        print(
            f"| {row['epoch']} | {cl} | {lm} | {row['R@5']:.3f} | {row['M@5']:.3f} | "
            f"{row['loc R@1']:.3f} / {row['loc M@1']:.3f} | {row['length R@1']:.3f} | {row['random R@1']:.3f} | "
            f"{row['entropy']:.3f} | {row['others R@1']:.3f} ({row['own R@1 (siblings)']:.3f}) | "
            f"{row['EM']:.3f} | {row['example']!r} |"
        )
    if generated:
        print(f"first generation pair: {generated[0]['query']!r} -> gold {generated[0]['target']!r}")
    layers = len(next((r["by layer"]["questions"][1] for r in rows if r["by layer"]), []))
    if layers:
        print(
            f"\nLocalization R@1 by fusion layer (the table above uses layer {layer}): the same test questions, "
            f"and {len(keyword[0])} keyword queries of the test articles' sentences (the RIR construction: the "
            f"gold unit is the sentence the keywords were taken from), each beside its unit-length ranking "
            f"and MiniLM's sentence similarity on the same queries. 'answer words': the first "
            f"{len(generated)} test questions again, the units now the paragraph's words and the gold "
            f"ones the answer's (does the attention fall on the answer itself, which the decoder must "
            f"copy?); a random word is an answer word with probability "
            f"{rows[-1].get('answer word chance', float('nan')):.3f}."
        )
        print(
            "| epoch | queries | length R@1 | MiniLM R@1 | "
            + " | ".join(f"layer {i}" for i in range(1, layers + 1))
            + " |"
        )
        print("|---|---|---|---|" + "---|" * layers)

        def minilm_cell(name: str) -> str:
            return f"{minilm_by_queries[name]:.3f}" if name in minilm_by_queries else "-"

        for row in rows:
            for name, (length_r1, values) in row["by layer"].items():
                cells = " | ".join(f"{v:.3f}" for v in values)
                print(f"| {row['epoch']} | {name} | {length_r1:.3f} | {minilm_cell(name)} | {cells} |")
    if any(row["reads"] for row in rows):
        print(
            "\nWhat the decoder reads: the mean LM loss per target token (nats; the trainer's loss) of the "
            "first test questions' answers and of the keyword queries' sentences, with the right "
            "paragraph, with another pair's paragraph, and with the right paragraph and the query left "
            "empty. A decoder that reads the paragraph loses clearly more with the wrong one."
        )
        print("| epoch | targets | right paragraph | another paragraph | query empty |")
        print("|---|---|---|---|---|")
        for row in rows:
            for name, losses in row["reads"].items():
                print(
                    f"| {row['epoch']} | {name} | {losses['right']:.3f} | {losses['other document']:.3f} | "
                    f"{losses['empty query']:.3f} |"
                )
    last = chosen_row(rows)
    if validation:
        print(
            f"\nValidation: localization R@1 at fusion layer {layer} on {len(validation)} held-out questions of "
            f"the training articles (never trained on; their paragraphs may have been). The summary "
            f"reports the row of the highest validation R@1 (the earliest of equal ones)."
        )
        print("| epoch | validation R@1 | validation length R@1 | test R@1 |")
        print("|---|---|---|---|")
        for row in rows:
            print(
                f"| {row['epoch']} | {row['validation R@1']:.3f} | {row['validation length R@1']:.3f} "
                f"| {row['loc R@1']:.3f} |"
            )
        print(f"validation picks epoch {last['epoch']}")
    print(
        f"\nThe reported model is {last['model']}. To evaluate it on the suite's benchmarks beside the "
        'suite\'s GeAR (README "Compare your model"), add a registry entry and name it in '
        "evaluate.extra_models:\n"
        f"  GeAR_squad_check: {{kind: gear_folder, model: {json.dumps(last['model'])}, pooling: mean, "
        "group: gear, tasks: [retrieval, localization, generation], "
        f'citation: "squad_check, epoch {last["epoch"]}"}}'
    )
    print(
        f"squad_check summary: gear_loc_r1={last['loc R@1']:.3f} length_loc_r1={last['length R@1']:.3f} "
        f"minilm_sentence_loc_r1={minilm:.3f} em={last['EM']:.3f} minutes={minutes:.0f}"
    )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="GeAR sanity run on real SQuAD text")
    parser.add_argument("--squad", required=True, help="SQuAD v1.1 JSON (e.g. dev-v1.1.json)")
    parser.add_argument("--out", default=None, help="working folder (default: a new temporary folder)")
    parser.add_argument("--train-articles", type=int, default=40)
    parser.add_argument("--test-articles", type=int, default=8)
    parser.add_argument("--max-train", type=int, default=2700, help="training triples at most")
    parser.add_argument(
        "--sentence-queries",
        type=int,
        default=0,
        help="add this many RIR-style triples (keyword query of a sentence -> the sentence) built from "
        "the training articles",
    )
    parser.add_argument(
        "--query-keywords",
        type=int,
        default=0,
        help="keep this many keyword phrases of each keyword query (0: all); the target sentence then "
        "holds words that only the document has",
    )
    parser.add_argument(
        "--full-query-share",
        type=float,
        default=0.0,
        help="with --query-keywords, this share of the keyword triples keeps its full query",
    )
    parser.add_argument(
        "--validation-questions",
        type=int,
        default=0,
        help="hold out this many training-article questions (never trained on) and let their "
        "localization R@1 pick the epoch (or the --evaluate model) the summary reports",
    )
    parser.add_argument(
        "--cloze-queries",
        type=int,
        default=0,
        help="add this many extractive triples built from the training articles' sentences (the "
        "sentence with one keyword phrase replaced by 'what' -> the phrase)",
    )
    parser.add_argument(
        "--train-window",
        type=int,
        default=0,
        help="cut each training document to this many consecutive sentences holding the answer "
        "(0: whole paragraphs); test documents stay whole",
    )
    parser.add_argument("--gear", default="{}", help="JSON of gear keys to set (e.g. cross_attention_init)")
    parser.add_argument("--train", default="{}", help="JSON of train keys to set (e.g. optimizer)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-document-tokens", type=int, default=192)
    parser.add_argument(
        "--generation-pairs",
        type=int,
        default=100,
        help="test pairs for exact match and what the decoder reads (0: no fusion or decoder measures)",
    )
    parser.add_argument(
        "--localization-pairs",
        type=int,
        default=500,
        help="test pairs (and as many keyword queries) for localization (0: all test pairs)",
    )
    parser.add_argument(
        "--evaluate",
        nargs="+",
        default=None,
        metavar="FOLDER",
        help="train nothing: evaluate these saved GeAR models on the same split and samples",
    )
    parser.add_argument("--max-new-tokens", type=int, default=12)
    parser.add_argument(
        "--lr", type=float, default=None, help="peak learning rate (default: config/mini.yaml's)"
    )
    parser.add_argument(
        "--variant", default="GeAR", help="a key of train.variants (GeAR_CL: contrastive loss only)"
    )
    parser.add_argument(
        "--init",
        choices=("minilm", "scratch"),
        default="minilm",
        help="start from all-MiniLM-L6-v2 (as the mini benchmark) or from a small random BERT",
    )
    parser.add_argument(
        "--init-model",
        default=None,
        help="train a saved GeAR model further (a folder such as an earlier run's gear/epochs/epoch_N); "
        "it is evaluated as epoch 0",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(args)


if __name__ == "__main__":
    main()
