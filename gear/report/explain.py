"""Explanation pages: what GeAR retrieved, where it looked, and what it generated, per query.

No retrieval benchmark shows why a document came back. For a seeded sample of
``reports.explain.queries_per_dataset`` queries of a data set, the page ``P/explain/{dataset}.html``
shows, per query:

- the query, its gold answers / target;
- the top ``reports.explain.top_documents`` documents GeAR retrieved (its run file,
  ``Layout.run_file("GeAR", dataset)``, TREC format ``qid Q0 docid rank score tag``), the gold
  document marked, and the gold document's rank when it is further down;
- the gold document with GeAR's cross-attention weight on each token as a heat map
  (``gear.inference.token_weights``), the ``reports.figure3.top_tokens`` strongest in bold, and
  the gold units outlined;
- the units of the gold document ranked by GeAR (``gear.inference.unit_scores`` at layer
  ``gear.localization.layer``), gold units marked;
- GeAR's generated text beside the target.

The work is split in two so that the page can be redrawn without a model: :func:`gear.evaluation.explain_data.explain_data`
runs the model and writes a JSON (``P/data/explain_{dataset}.json``); :func:`render_explain_page`
turns that JSON into one self-contained HTML page (inline CSS, every text escaped).

Choices made here (the paper has no such view): the sample is drawn with ``random.Random(seed)``
from the queries sorted by id, among those that are ``fine_grained`` and have a relevant unit
(the ones localization is scored on), topped up from the others when there are too few.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Mapping, Sequence

import numpy as np

from gear.evaluation.metrics import break_ties_at_random
from gear.io import DataFormatError, atomic_open
from gear.report.pages import esc, html_page

log = logging.getLogger(__name__)

HEAT_RGB = (245, 161, 66)  # Figure 3's orange
SNIPPET_CHARS = 260
GOLD_ROW = ' class="goldrow"'


def heat_html(
    text: str,
    offsets: Sequence[Sequence[int]],
    weights: Sequence[float | None],
    units: Sequence[Sequence[int]],
    gold_units: set[int],
    top_tokens: int,
) -> str:
    """The document as HTML: each token shaded by its weight (relative to the largest), the
    ``top_tokens`` strongest in bold, gold units outlined. Every piece of text is escaped.

    Args:
        text: the document text.
        offsets: ``(n, 2)`` character spans of the tokens (special tokens have empty spans).
        weights: ``(n,)`` token weights (None: not available).
        units: the document's unit spans.
        gold_units: indices of the relevant units.
        top_tokens: how many tokens to put in bold.
    """
    spans = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    values = np.asarray([np.nan if w is None else w for w in weights], dtype=np.float64)
    if len(spans) != len(values):
        raise DataFormatError(f"token_weights: {len(spans)} offsets but {len(values)} weights")
    valid = (
        (spans[:, 1] > spans[:, 0]) & np.isfinite(values) & (spans[:, 0] >= 0) & (spans[:, 1] <= len(text))
    )
    peak = values[valid].max() if valid.any() else 0.0
    order = np.flatnonzero(valid)[np.argsort(-values[valid], kind="stable")]
    top = set(order[:top_tokens].tolist())

    # Boundaries where a token or a unit starts or ends; between two of them nothing changes.
    token_of = np.full(len(text), -1, dtype=np.int64)
    for i in np.flatnonzero(valid):
        token_of[spans[i, 0] : spans[i, 1]] = i
    unit_of = np.full(len(text), -1, dtype=np.int64)
    for j, (start, end) in enumerate(units):
        unit_of[max(0, start) : min(len(text), end)] = j
    if not len(text):
        return ""
    change = np.flatnonzero((np.diff(token_of) != 0) | (np.diff(unit_of) != 0)) + 1
    bounds = [0, *change.tolist(), len(text)]

    out, open_unit = [], -1
    for a, b in itertools.pairwise(bounds):
        unit = int(unit_of[a])
        if unit != open_unit:
            if open_unit >= 0:
                out.append("</span>")
            if unit >= 0:
                cls = "unit gold" if unit in gold_units else "unit"
                out.append(
                    f'<span class="{cls}" title="unit {unit}{" (gold)" if unit in gold_units else ""}">'
                )
            open_unit = unit
        piece = esc(text[a:b])
        token = int(token_of[a])
        if token >= 0 and peak > 0:
            alpha = max(0.0, float(values[token]) / peak)
            style = f"background: rgba({HEAT_RGB[0]},{HEAT_RGB[1]},{HEAT_RGB[2]},{alpha:.2f})"
            bold = ' class="top"' if token in top else ""
            out.append(f'<span{bold} style="{style}" title="weight {values[token]:.4g}">{piece}</span>')
        else:
            out.append(piece)
    if open_unit >= 0:
        out.append("</span>")
    return "".join(out)


def _snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def _ranking(scores: Sequence[float | None]) -> list[int]:
    """Unit indices by score, best first; None (truncated) last; ties by position."""
    return sorted(range(len(scores)), key=lambda j: (scores[j] is None, -(scores[j] or 0.0), j))


def _summary_html(data: Mapping) -> str:
    """How often GeAR's top unit is a gold unit on these queries, beside unit length and chance."""
    rows = [q for q in data["queries"] if q.get("relevant_units") and q.get("length_scores") is not None]
    if not rows:
        return ""

    def hit(q: Mapping, scores: Sequence) -> float:
        return float(_ranking(scores)[0] in set(q["relevant_units"]))

    def finite(scores: Sequence) -> np.ndarray:
        return np.array([-np.inf if v is None else v for v in scores], dtype=np.float64)

    # Length ties broken at random, as in Table 2's reference row (gear.evaluation.metrics.break_ties_at_random).
    length_scores = break_ties_at_random([finite(q["length_scores"]) for q in rows], seed=0)
    gear = np.mean([hit(q, q["unit_scores"]) for q in rows])
    length = np.mean([hit(q, list(s)) for q, s in zip(rows, length_scores, strict=True)])
    chance = np.mean([len(q["relevant_units"]) / len(q["unit_scores"]) for q in rows])
    entropy = np.mean([q["attention_entropy"] for q in rows])
    verdict = "" if gear > length else " GeAR does not beat unit length on these queries."
    return (
        f'<p class="legend">On these {len(rows)} queries, GeAR\'s top unit is gold for {gear:.2f} of them; '
        f"ranking units by length gives {length:.2f}, a random ranking {chance:.2f} in expectation; mean "
        f"attention entropy {entropy:.3f} (1 = uniform).{esc(verdict)} Table 2 has the same references on "
        "every query.</p>"
    )


def _query_header_html(index: int, query: Mapping) -> list[str]:
    """The query's heading, id and gold answers."""
    answers = query.get("answers") or []
    return [
        f'<section class="query"><h2>{index}. {esc(query["text"])}</h2>',
        f'<p class="muted">Query <code>{esc(query["query_id"])}</code>. Gold answer(s): '
        + (", ".join(f"<b>{esc(a)}</b>" for a in answers) or "<i>none</i>")
        + "</p>",
    ]


def _retrieved_row_html(doc: Mapping) -> str:
    """One retrieved document: rank, score, title, id and text (a long text folded under a snippet)."""
    gold = '<span class="within">✓ gold</span>' if doc["gold"] else ""
    title = f"<b>{esc(doc['title'])}</b> " if doc.get("title") else ""
    head = f'{title}<span class="muted">{esc(doc["doc_id"])}</span>: '
    if len(doc["text"]) <= SNIPPET_CHARS:
        body = head + esc(doc["text"])
    else:
        body = (
            f"<details><summary>{head}{esc(_snippet(doc['text']))}</summary>"
            f'<div class="full">{esc(doc["text"])}</div></details>'
        )
    row_class = GOLD_ROW if doc["gold"] else ""
    return (
        f"<tr{row_class}><td>{esc(doc['rank'])}</td><td>{doc['score']:.4f}</td>"
        f'<td class="doccell">{body}</td><td>{gold}</td></tr>'
    )


def _retrieved_html(query: Mapping, data: Mapping) -> list[str]:
    """The table of retrieved documents, and where the gold document is when it is not in it."""
    parts = [
        f"<h3>Documents retrieved by {esc(data.get('model', 'GeAR'))} (top {esc(data.get('top_documents', ''))})</h3>",
        '<table class="gear ret"><thead><tr><th>Rank</th><th>Score</th><th>Document</th><th></th></tr></thead><tbody>',
    ]
    parts += [_retrieved_row_html(doc) for doc in query["retrieved"]]
    parts.append("</tbody></table>")
    rank = query.get("gold_rank")
    if rank is None:
        parts.append(
            f'<p class="outside">The gold document is not in GeAR\'s top {esc(query.get("run_depth", ""))}.</p>'
        )
    elif rank > len(query["retrieved"]):
        parts.append(f'<p class="muted">The gold document is at rank {esc(rank)}.</p>')
    return parts


def _attention_html(query: Mapping, data: Mapping, gold_units: set) -> str:
    """The gold document shaded by GeAR's cross-attention, its gold units outlined."""
    gold_doc = query["gold_document"]
    weights = query["token_weights"]
    title = f"<b>{esc(gold_doc['title'])}</b>\n" if gold_doc.get("title") else ""
    return (
        f"<h3>Where GeAR looks in the gold document (cross-attention, layer {esc(data.get('layer', ''))})</h3>"
        f'<p class="legend">Shade: the token\'s weight relative to the strongest; bold: the top {esc(data.get("top_tokens", ""))} tokens; '
        "outlined in green: the gold unit(s).</p>"
        f'<div class="doc">{title}'
        + heat_html(
            gold_doc["text"],
            weights["offsets"],
            weights["weights"],
            gold_doc["units"],
            gold_units,
            int(data.get("top_tokens", 10)),
        )
        + "</div>"
    )


def _units_note(query: Mapping, order: Sequence[int], length_rank: Mapping[int, int]) -> str:
    """What to keep in mind reading the unit ranking: the attention's entropy, and whether the top
    unit is also the longest."""
    entropy = query.get("attention_entropy")
    note = ""
    if entropy is not None:
        note = f"Attention entropy {entropy:.3f} (1 = uniform over the document). "
    if length_rank and order and length_rank[order[0]] == 1:
        note += "GeAR's top unit is also the longest: this ranking may be no more than unit length. "
    return note


def _units_html(query: Mapping, data: Mapping, gold_units: set) -> list[str]:
    """The gold document's units in GeAR's order, each with its score and its length rank."""
    gold_doc = query["gold_document"]
    scores = query["unit_scores"]
    units = gold_doc["units"]
    if len(scores) != len(units):
        raise DataFormatError(f"query {query['query_id']}: {len(scores)} unit scores for {len(units)} units")
    order = _ranking(scores)
    length = query.get("length_scores")
    length_rank = {j: r for r, j in enumerate(_ranking(length), start=1)} if length is not None else {}
    note = _units_note(query, order, length_rank)
    parts = [
        f"<h3>Units ranked by GeAR (layer {esc(data.get('layer', ''))})</h3>"
        + (
            f'<p class="legend">{esc(note)}"Length rank": the rank uniform attention would give '
            "(token count), the reference GeAR must beat.</p>"
            if note or length_rank
            else ""
        )
        + '<table class="gear units"><thead><tr><th>Rank</th><th>Score</th><th>Length rank</th><th>Unit</th>'
        "<th></th></tr></thead><tbody>"
    ]
    for rank_pos, j in enumerate(order, start=1):
        start, end = units[j]
        score = "truncated" if scores[j] is None else f"{scores[j]:.4f}"
        gold = '<span class="within">✓ gold</span>' if j in gold_units else ""
        row_class = GOLD_ROW if j in gold_units else ""
        parts.append(
            f"<tr{row_class}><td>{rank_pos}</td><td>{score}</td><td>{esc(length_rank.get(j, '-'))}</td>"
            f'<td class="doccell">{esc(gold_doc["text"][start:end])}</td><td>{gold}</td></tr>'
        )
    parts.append("</tbody></table>")
    return parts


def _query_html(index: int, query: Mapping, data: Mapping) -> str:
    """One query's section: the query, the retrieved documents, where GeAR looks in the gold
    document, its units as GeAR ranks them, and the generation."""
    gold_units = set(query.get("relevant_units", []))
    parts = _query_header_html(index, query)
    parts += _retrieved_html(query, data)
    parts.append(_attention_html(query, data, gold_units))
    parts += _units_html(query, data, gold_units)
    parts.append(
        "<h3>Generated from the gold document</h3>"
        f"<p><b>GeAR:</b> {esc(query['generated'])}<br><b>Target:</b> {esc(query.get('target', ''))}</p></section>"
    )
    return "\n".join(parts)


EXPLAIN_CSS = """
section.query { border-top: 2px solid #ddd; margin-top: 1.8em; padding-top: 0.4em; }
section.query h2 { margin-top: 0.3em; }
td.doccell { text-align: left; white-space: normal; max-width: 820px; }
tr.goldrow td { background: #eef8f0; }
details summary { cursor: pointer; } .full { margin-top: 0.4em; color: #333; }
span.unit.gold { outline: 2px solid #2e9e4f; outline-offset: 1px; border-radius: 2px; }
span.top { font-weight: 700; }
"""


def render_explain_page(data: Mapping) -> str:
    """The explanation page of one data set (self-contained HTML) from :func:`explain_data`'s JSON."""
    for key in ("dataset", "queries"):
        if key not in data:
            raise DataFormatError(f"explain data: missing {key!r}")
    dataset = data["dataset"]
    header = (
        f"<h1>Why {esc(data.get('model', 'GeAR'))} retrieved what it did: {esc(dataset)}</h1>"
        f'<p class="muted">{len(data["queries"])} sampled quer{"y" if len(data["queries"]) == 1 else "ies"}. For each: the documents GeAR retrieved, where its '
        "cross-attention looks in the gold document, the units it ranks highest, and the text it generates. "
        "Retrieval uses the bi-encoder alone; attention and generation come from the fusion encoder and decoder.</p>"
    )
    body = [header, _summary_html(data)] + [
        _query_html(i, q, data) for i, q in enumerate(data["queries"], start=1)
    ]
    return html_page(f"Explanations: {dataset}", "\n".join(body), EXPLAIN_CSS)


def write_explain_page(data: Mapping, path: str | os.PathLike) -> None:
    """Write :func:`render_explain_page` atomically."""
    page = render_explain_page(data)
    with atomic_open(path) as handle:
        handle.write(page)
