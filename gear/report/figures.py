"""The paper's figures, drawn with matplotlib (Agg) from results JSON, to PNG and PDF.

- Figure 3 / 5 (:func:`draw_figure3`, :func:`render_figure3_html`): one document and two queries;
  the ``reports.figure3.top_tokens`` document tokens with the highest cross-attention weight for
  each query are highlighted, orange for query 1 and purple for query 2 (a token both queries
  pick is split half and half), with GeAR's generated text for each. The data come from
  :mod:`gear.evaluation.figure3_data` (``P/data/figure_3.json``).
- Figure 4a / 4b (:func:`draw_epoch_figure`): for each epoch's checkpoint, the generation score
  (x, points) against the localization score (y), QAR and RIR (``R/analysis/epochs/GeAR/{s}.json``).
  Points are labelled with their epoch and joined in epoch order; each metric pair (first
  generation metric with first localization metric, second with second) is one series, with its
  Pearson correlation in the legend.
- Figure 4c (:func:`draw_layer_figure`): localization by cross-attention layer, one line per data
  set (``R/analysis/layers/GeAR/{d}.json``), recall and MRR side by side, the layer the suite
  localizes with (``gear.localization.layer``; the paper's 10th of 12) marked.

Every drawing function takes plain dicts (the JSON files as read) and writes its outputs
atomically; ``dpi`` is a parameter so that tests draw small images.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Rectangle

from gear.io import DataFormatError, atomic_path
from gear.report.pages import DATASET_LABELS, QUERY_COLORS, QUERY_COLORS_LIGHT, esc, html_page

SCENARIO_LABELS = {"qar": "QAR", "rir": "RIR"}
log = logging.getLogger(__name__)

SERIES_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
SERIES_MARKERS = ("o", "s", "^", "D", "v", "P")


def save_figure(fig: plt.Figure, outputs: Sequence[str | os.PathLike], dpi: int) -> None:
    """Save ``fig`` to each output (format from the suffix: .png, .pdf, .svg), atomically, then close it."""
    try:
        for out in outputs:
            suffix = Path(out).suffix.lower()
            if suffix not in (".png", ".pdf", ".svg"):
                raise ValueError(f"{out}: figure outputs must end in .png, .pdf or .svg")
            with atomic_path(out, suffix=suffix) as tmp:
                fig.savefig(
                    tmp,
                    format=suffix[1:],
                    dpi=dpi,
                    metadata={"Software": "gear.report"} if suffix == ".png" else None,
                )
    finally:
        plt.close(fig)


# --------------------------------------------------------------------------------------------
# Figure 3 / 5: highlighted tokens
# --------------------------------------------------------------------------------------------

# Character highlight states: 0 none, 1 query 1, 2 query 2, 3 both.
STYLE_NONE, STYLE_Q1, STYLE_Q2, STYLE_BOTH = 0, 1, 2, 3


def highlight_styles(
    text_length: int, spans_q1: Sequence[Sequence[int]], spans_q2: Sequence[Sequence[int]]
) -> np.ndarray:
    """Per-character highlight state of a document from each query's highlighted spans.

    Returns:
        ``(text_length,)`` uint8: bit 0 set where query 1 highlights, bit 1 where query 2 does.
    """
    styles = np.zeros(text_length, dtype=np.uint8)
    for bit, spans in ((STYLE_Q1, spans_q1), (STYLE_Q2, spans_q2)):
        for start, end in spans:
            if not 0 <= start <= end <= text_length:
                raise DataFormatError(
                    f"highlight span [{start}, {end}) outside a document of {text_length} characters"
                )
            styles[start:end] |= bit
    return styles


def style_runs(text: str, styles: np.ndarray) -> list[tuple[str, int]]:
    """Split ``text`` into maximal runs of one highlight state: ``[(substring, state), ...]``."""
    if not text:
        return []
    change = np.flatnonzero(np.diff(styles.astype(np.int16))) + 1
    bounds = [0, *change.tolist(), len(text)]
    return [(text[a:b], int(styles[a])) for a, b in itertools.pairwise(bounds)]


class _Measure:
    """Text widths in points as Agg draws them at ``dpi`` (hinting included), cached per text.

    Measuring with the raster renderer itself keeps highlighted boxes on their words in the PNG;
    the PDF (unhinted, slightly narrower glyphs) then only gets a little more space between words.
    """

    def __init__(self, fontsize: float, dpi: float):
        from matplotlib.backends.backend_agg import RendererAgg

        self.props = {
            False: FontProperties(size=fontsize),
            True: FontProperties(size=fontsize, weight="bold"),
        }
        self.renderer = RendererAgg(8, 8, dpi)
        self.to_points = 72.0 / dpi
        self.cache: dict[tuple[str, bool], float] = {}

    def __call__(self, text: str, bold: bool = False) -> float:
        key = (text, bold)
        if key not in self.cache:
            width, _, _ = self.renderer.get_text_width_height_descent(text, self.props[bold], ismath=False)
            self.cache[key] = float(width) * self.to_points
        return self.cache[key]


@dataclass
class _Placed:
    x: float
    line: int
    text: str
    style: int
    width: float


def layout_runs(
    runs: Sequence[tuple[str, int]], width: float, measure: _Measure, bold: bool = False
) -> tuple[list[_Placed], int]:
    """Greedy word wrap of styled runs into lines of at most ``width`` points.

    Words break only at white space (a word longer than a line is cut by characters), explicit
    line breaks are kept, and a word keeps its inner style changes (a highlighted word piece).

    Returns:
        The placed pieces and the number of lines.
    """
    # Re-split the runs into words: (pieces of one word, trailing white space?)
    words: list[list[tuple[str, int]]] = []
    breaks_after: list[bool] = []  # a forced line break after this word
    current: list[tuple[str, int]] = []
    for text, style in runs:
        for token in re.split(r"(\s+)", text):
            if not token:
                continue
            if token.isspace():
                if current:
                    words.append(current)
                    breaks_after.append("\n" in token)
                    current = []
                elif "\n" in token and breaks_after:
                    breaks_after[-1] = True
            else:
                current.append((token, style))
    if current:
        words.append(current)
        breaks_after.append(False)

    space = measure(" ", bold)
    placed: list[_Placed] = []
    x, line = 0.0, 0
    for word, forced in zip(words, breaks_after, strict=True):
        widths = [measure(t, bold) for t, _ in word]
        total = sum(widths)
        if x > 0 and x + total > width:
            x, line = 0.0, line + 1
        for (text, style), w in zip(word, widths, strict=True):
            while w > width and len(text) > 1:  # a word wider than a line: cut by characters
                cut = max(1, int(len(text) * (width - x) / w)) if x < width else 1
                head, text = text[:cut], text[cut:]
                placed.append(_Placed(x, line, head, style, measure(head, bold)))
                x, line = 0.0, line + 1
                w = measure(text, bold)
            placed.append(_Placed(x, line, text, style, w))
            x += w
        x += space
        if forced:
            x, line = 0.0, line + 1
    return placed, (line + 1 if placed else 0)


def _merge_line_pieces(pieces: Sequence[_Placed], space: float) -> list[_Placed]:
    """Join neighbouring pieces of one line and one style into one text (fewer artists)."""
    merged: list[_Placed] = []
    for piece in pieces:
        last = merged[-1] if merged else None
        if last is not None and last.line == piece.line and last.style == piece.style:
            gap = piece.x - (last.x + last.width)
            joiner = " " if gap > space / 2 else ""
            merged[-1] = _Placed(
                last.x, last.line, last.text + joiner + piece.text, last.style, piece.x + piece.width - last.x
            )
        else:
            merged.append(piece)
    return merged


def _check_figure3(data: Mapping) -> None:
    for key in ("document", "queries"):
        if key not in data:
            raise DataFormatError(f"Figure 3 data: missing {key!r}")
    if len(data["queries"]) != 2:
        raise DataFormatError(f"Figure 3 data: expected two queries, got {len(data['queries'])}")
    for i, query in enumerate(data["queries"]):
        for key in ("text", "generated", "top"):
            if key not in query:
                raise DataFormatError(f"Figure 3 data: queries[{i}] lacks {key!r}")


def _query_spans(query: Mapping) -> list[tuple[int, int]]:
    return [(int(t["start"]), int(t["end"])) for t in query["top"]]


#: Figure 3's page geometry, in points: margin, body font size and line height, subtitle font
#: size and line height, and how far the query and document text sits inside its box
F3_MARGIN, F3_FONTSIZE, F3_LINE_H = 22.0, 9.5, 15.5
F3_SMALL_FONTSIZE, F3_SUB_LINE_H = 8.0, 12.0
F3_QUERY_INDENT, F3_DOC_INDENT = 12, 8


def _figure3_subtitle(data: Mapping, k: int) -> str:
    """The line under Figure 3's title: the data set, the document and what is highlighted."""
    layer = data.get("layer")
    dataset = DATASET_LABELS.get(data.get("dataset", ""), data.get("dataset", ""))
    return (
        f"{dataset} document {data['document'].get('doc_id', '')}. Highlighted: the top {k} document tokens by cross-attention weight"
        + (f" (layer {layer})" if layer else "")
        + "; orange for query 1, purple for query 2, split where both agree."
    )


def _query_block_layouts(queries: Sequence[Mapping], width: float, measure: _Measure) -> list[tuple]:
    """Each query's wrapped lines and its generation's: ``(q_layout, q_lines, g_layout, g_lines)``."""
    blocks = []
    for i, query in enumerate(queries):
        q_layout, q_lines = layout_runs([(f"Query {i + 1}: ", 0), (query["text"], 0)], width, measure)
        gen = f"Generated: {query['generated']}"
        if query.get("target"):
            gen += f"     (gold: {query['target']})"
        g_layout, g_lines = layout_runs([(gen, 0)], width, measure)
        blocks.append((q_layout, q_lines, g_layout, g_lines))
    return blocks


def _highlight_box(ax, piece: _Placed, x0: float, baseline: float) -> None:
    """The coloured box behind a highlighted piece: the query's colour, or half and half for both."""
    top, box_h = baseline - F3_FONTSIZE * 0.95, F3_FONTSIZE * 1.35
    if piece.style == STYLE_BOTH:
        ax.add_patch(
            Rectangle((x0 + piece.x - 1, top), piece.width + 2, box_h / 2, color=QUERY_COLORS[0], lw=0)
        )
        ax.add_patch(
            Rectangle(
                (x0 + piece.x - 1, top + box_h / 2),
                piece.width + 2,
                box_h / 2,
                color=QUERY_COLORS[1],
                lw=0,
            )
        )
    else:
        ax.add_patch(
            Rectangle(
                (x0 + piece.x - 1, top),
                piece.width + 2,
                box_h,
                color=QUERY_COLORS[piece.style - 1],
                lw=0,
            )
        )


def _draw_pieces(
    ax,
    pieces: Sequence[_Placed],
    x0: float,
    y0: float,
    space: float,
    color: str = "#222",
    highlight: bool = False,
) -> None:
    """Body text laid out by :func:`layout_runs`, first baseline at ``y0``, highlights behind it."""
    for piece in _merge_line_pieces(pieces, space):
        baseline = y0 + piece.line * F3_LINE_H
        if highlight and piece.style:
            _highlight_box(ax, piece, x0, baseline)
        ax.text(
            x0 + piece.x,
            baseline,
            piece.text,
            fontsize=F3_FONTSIZE,
            color=color,
            va="baseline",
            parse_math=False,
        )


def _draw_header(ax, title: str, sub_layout: Sequence[_Placed], sub_lines: int, small: _Measure) -> float:
    """Title and subtitle at the top; returns the y where the query blocks start."""
    y = F3_MARGIN + 12
    ax.text(F3_MARGIN, y, title, fontsize=11.5, fontweight="bold", va="baseline")
    y += 14
    for piece in _merge_line_pieces(sub_layout, small(" ")):
        ax.text(
            F3_MARGIN + piece.x,
            y + 3 + piece.line * F3_SUB_LINE_H,
            piece.text,
            fontsize=F3_SMALL_FONTSIZE,
            color="#555",
            va="baseline",
            parse_math=False,
        )
    return y + sub_lines * F3_SUB_LINE_H + 10


def _draw_query_blocks(ax, query_blocks: Sequence[tuple], y: float, inner: float, space: float) -> float:
    """One tinted box per query (its text, then its generation); returns the y below them."""
    for i, (q_layout, q_lines, g_layout, g_lines) in enumerate(query_blocks):
        block_h = (q_lines + g_lines) * F3_LINE_H + 6
        ax.add_patch(Rectangle((F3_MARGIN, y - 4), inner, block_h + 6, color=QUERY_COLORS_LIGHT[i], lw=0))
        ax.add_patch(Rectangle((F3_MARGIN, y - 4), 5, block_h + 6, color=QUERY_COLORS[i], lw=0))
        x0 = F3_MARGIN + F3_QUERY_INDENT
        _draw_pieces(ax, q_layout, x0, y + F3_FONTSIZE, space)
        _draw_pieces(ax, g_layout, x0, y + F3_FONTSIZE + q_lines * F3_LINE_H, space, color="#333")
        y += block_h + 14
    return y


def _draw_document(
    ax, doc_title: str, doc_layout: Sequence[_Placed], doc_lines: int, y: float, inner: float, space: float
) -> None:
    """The framed document, its title in bold, its tokens highlighted."""
    box_h = (F3_LINE_H if doc_title else 0) + doc_lines * F3_LINE_H + 12
    ax.add_patch(Rectangle((F3_MARGIN, y), inner, box_h, fill=False, ec="#bbbbbb", lw=0.8))
    y += 6 + F3_FONTSIZE
    if doc_title:
        ax.text(
            F3_MARGIN + F3_DOC_INDENT,
            y,
            doc_title,
            fontsize=F3_FONTSIZE,
            fontweight="bold",
            va="baseline",
            parse_math=False,
        )
        y += F3_LINE_H
    _draw_pieces(ax, doc_layout, F3_MARGIN + F3_DOC_INDENT, y, space, highlight=True)


def draw_figure3(
    data: Mapping, outputs: Sequence[str | os.PathLike], dpi: int = 200, width_in: float = 7.5
) -> tuple[float, float]:
    """Draw Figure 3: the document with each query's top tokens highlighted, and the generations.

    The blocks from top to bottom are the title and subtitle, one box per query with its
    generation, and the framed document; the height follows from the wrapped text.

    Args:
        data: the Figure 3 JSON (:func:`gear.evaluation.figure3_data.figure3_data`).
        outputs: files to write (.png, .pdf).
        dpi: resolution of raster outputs.
        width_in: figure width in inches (the height follows from the text).

    Returns:
        The figure size in inches ``(width, height)``.
    """
    _check_figure3(data)
    doc = data["document"]
    text = doc["text"]
    q1, q2 = data["queries"]
    styles = highlight_styles(len(text), _query_spans(q1), _query_spans(q2))

    width_pt = width_in * 72.0
    inner = width_pt - 2 * F3_MARGIN
    measure = _Measure(F3_FONTSIZE, dpi)
    space = measure(" ")
    small = _Measure(F3_SMALL_FONTSIZE, dpi)
    subtitle = _figure3_subtitle(data, data.get("top_tokens", len(q1["top"])))
    sub_layout, sub_lines = layout_runs([(subtitle, 0)], inner, small)
    query_blocks = _query_block_layouts((q1, q2), inner - 16, measure)
    doc_layout, doc_lines = layout_runs(style_runs(text, styles), inner - 16, measure)
    doc_title = doc.get("title") or ""

    height = F3_MARGIN + 18 + sub_lines * F3_SUB_LINE_H + 10  # title, subtitle, gap
    height += sum(14 + (ql + gl) * F3_LINE_H + 8 for _, ql, _, gl in query_blocks)  # query legend blocks
    height += 10 + (F3_LINE_H if doc_title else 0) + doc_lines * F3_LINE_H + 16  # document box
    height += F3_MARGIN
    height_in = height / 72.0

    fig = plt.figure(figsize=(width_in, height_in))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width_pt)
    ax.set_ylim(height, 0)  # y grows downwards, in points
    ax.axis("off")
    title = "What GeAR attends to: one document, two queries"
    y = _draw_header(ax, title, sub_layout, sub_lines, small)
    y = _draw_query_blocks(ax, query_blocks, y, inner, space)
    _draw_document(ax, doc_title, doc_layout, doc_lines, y, inner, space)

    save_figure(fig, outputs, dpi)
    return width_in, height_in


def highlighted_html(text: str, styles: np.ndarray) -> str:
    """The document as HTML with each highlight state as a styled ``<span>`` (text escaped)."""
    css = {
        STYLE_Q1: f"background:{QUERY_COLORS[0]}",
        STYLE_Q2: f"background:{QUERY_COLORS[1]}",
        STYLE_BOTH: f"background:linear-gradient(180deg,{QUERY_COLORS[0]} 50%,{QUERY_COLORS[1]} 50%)",
    }
    titles = {STYLE_Q1: "query 1", STYLE_Q2: "query 2", STYLE_BOTH: "queries 1 and 2"}
    out = []
    for run, style in style_runs(text, styles):
        if style:
            out.append(f'<span class="hl" style="{css[style]}" title="{titles[style]}">{esc(run)}</span>')
        else:
            out.append(esc(run))
    return "".join(out)


def render_figure3_html(data: Mapping) -> str:
    """Figure 3 as a standalone HTML page (inline CSS, every text escaped)."""
    _check_figure3(data)
    doc = data["document"]
    q1, q2 = data["queries"]
    styles = highlight_styles(len(doc["text"]), _query_spans(q1), _query_spans(q2))
    k = data.get("top_tokens", len(q1["top"]))
    layer = data.get("layer")
    parts = [
        f"<h1>Figure 3: GeAR's top {esc(k)} tokens for two queries</h1>",
        f'<p class="muted">{esc(DATASET_LABELS.get(data.get("dataset", ""), data.get("dataset", "")))} document '
        f"<code>{esc(doc.get('doc_id', ''))}</code>; cross-attention"
        + (f" at layer {esc(layer)}" if layer else "")
        + ". Orange: query 1; purple: query 2; both: split.</p>",
    ]
    for i, query in enumerate((q1, q2)):
        tokens = ", ".join(esc(t.get("token", "")) for t in query["top"])
        parts.append(
            f'<div class="query" style="border-left: 6px solid {QUERY_COLORS[i]}; background: {QUERY_COLORS_LIGHT[i]}">'
            f"<b>Query {i + 1}:</b> {esc(query['text'])}<br>"
            f"<b>Generated:</b> {esc(query['generated'])}"
            + (f' <span class="muted">(gold: {esc(query["target"])})</span>' if query.get("target") else "")
            + f'<br><span class="muted">Top tokens: {tokens}</span></div>'
        )
    title = f"<b>{esc(doc['title'])}</b>\n" if doc.get("title") else ""
    parts.append(f'<div class="doc">{title}{highlighted_html(doc["text"], styles)}</div>')
    css = ".query { padding: 0.5em 0.8em; margin: 0.6em 0; border-radius: 4px; } .hl { border-radius: 2px; padding: 1px 0; }"
    return html_page("Figure 3: GeAR localization and generation", "\n".join(parts), css)


# --------------------------------------------------------------------------------------------
# Figure 4a / 4b: generation against localization per epoch
# --------------------------------------------------------------------------------------------


def _series(mapping: Mapping, where: str, n: int) -> dict[str, np.ndarray]:
    if not isinstance(mapping, Mapping) or not mapping:
        raise DataFormatError(f"{where}: expected a mapping of metric -> list of values")
    out = {}
    for metric, values in mapping.items():
        array = np.asarray(values, dtype=np.float64)
        if array.shape != (n,):
            raise DataFormatError(
                f"{where}.{metric}: {array.shape[0] if array.ndim else 0} values for {n} epochs/layers"
            )
        out[metric] = array
    return out


def epoch_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r of two per-epoch series, NaN where it means nothing.

    It is undefined for fewer than 3 points or a series that does not move; a metric that stays
    put except for float rounding (a mean over the same queries) counts as not moving, so the
    figure never prints a correlation computed from rounding noise.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 3 or np.allclose(x, x[0], rtol=0, atol=1e-9) or np.allclose(y, y[0], rtol=0, atol=1e-9):
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def draw_epoch_figure(
    data: Mapping,
    outputs: Sequence[str | os.PathLike],
    dpi: int = 200,
    title: str | None = None,
    figure_label: str = "Figure 4",
) -> None:
    """Figure 4a / 4b: generation score (x, points) against localization score (y) per epoch.

    Args:
        data: an epochs JSON (``Layout.epochs_json``): ``epochs``, ``localization`` and
            ``generation`` (metric -> one value per epoch, fractions), ``scenario``, ``dataset``.
        outputs: files to write (.png, .pdf).
        title: the axes title (default: from ``figure_label``, the scenario and the data set).
        figure_label: e.g. "Figure 4a", the start of the default title.
    """
    where = f"epochs JSON ({data.get('model', '?')}, {data.get('scenario', '?')})"
    if "epochs" not in data:
        raise DataFormatError(f"{where}: missing 'epochs'")
    epochs = [int(e) for e in data["epochs"]]
    loc = _series(data.get("localization"), f"{where}: localization", len(epochs))
    gen = _series(data.get("generation"), f"{where}: generation", len(epochs))
    pairs = list(zip(gen.items(), loc.items(), strict=False))

    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    for i, ((g_name, g), (l_name, y)) in enumerate(pairs):
        x = g * 100.0
        color, marker = SERIES_COLORS[i % len(SERIES_COLORS)], SERIES_MARKERS[i % len(SERIES_MARKERS)]
        r = epoch_correlation(x, y)
        label = f"{l_name} vs {g_name}" + ("" if np.isnan(r) else f" (Pearson r = {r:.2f})")
        ax.plot(x, y, "-", color=color, alpha=0.55, lw=1.4, zorder=1)
        ax.scatter(
            x, y, color=color, marker=marker, s=34, zorder=2, label=label, edgecolors="white", linewidths=0.6
        )
        for epoch, xi, yi in zip(epochs, x, y, strict=True):
            ax.annotate(
                str(epoch), (xi, yi), xytext=(4, 4), textcoords="offset points", fontsize=7.5, color=color
            )
    scenario = data.get("scenario", "")
    dataset = data.get("dataset", "")
    scenario_label, dataset_label = (
        SCENARIO_LABELS.get(scenario, scenario.upper()),
        DATASET_LABELS.get(dataset, dataset),
    )
    where = (
        scenario_label if dataset_label == scenario_label else f"{scenario_label}, {dataset_label} test set"
    )
    default = f"{figure_label} ({where})\nlocalization against generation, one point per epoch"
    ax.set_title(title or default, fontsize=10)
    ax.set_xlabel(f"Generation score, points ({' / '.join(gen)})")
    ax.set_ylabel(f"Localization score ({' / '.join(loc)})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best", title="point labels: epoch", title_fontsize=7.5)
    ax.margins(0.12)
    fig.tight_layout()
    save_figure(fig, outputs, dpi)


# --------------------------------------------------------------------------------------------
# Figure 4c: localization by layer
# --------------------------------------------------------------------------------------------


def draw_layer_figure(
    layer_results: Sequence[Mapping], chosen_layer: int, outputs: Sequence[str | os.PathLike], dpi: int = 200
) -> None:
    """Figure 4c: localization score by cross-attention layer, one line per data set.

    Args:
        layer_results: layers JSONs (``Layout.layers_json``): ``dataset``, ``layers`` (1-based) and
            ``metrics`` (``R@k`` / ``M@k`` -> one value per layer).
        chosen_layer: the layer the suite localizes with (``gear.localization.layer``), marked.
        outputs: files to write (.png, .pdf).
    """
    if not layer_results:
        raise ValueError("Figure 4c needs at least one layers JSON (evaluate.layer_analysis is empty)")
    panels = (("R@", "recall"), ("M@", "MRR"))
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 4.0), sharex=True)
    max_layer = chosen_layer
    handles, labels = [], []
    metric_names: list[set[str]] = [set(), set()]
    for i, result in enumerate(layer_results):
        dataset = result.get("dataset", f"#{i}")
        where = f"layers JSON ({result.get('model', '?')}, {dataset})"
        if "layers" not in result:
            raise DataFormatError(f"{where}: missing 'layers'")
        layers = np.asarray(result["layers"], dtype=np.int64)
        metrics = _series(result.get("metrics"), f"{where}: metrics", len(layers))
        max_layer = max(max_layer, int(layers.max()))
        if result.get("chosen_layer") not in (None, chosen_layer):
            log.warning(
                "%s: computed with chosen_layer %s, the figure marks %s",
                where,
                result["chosen_layer"],
                chosen_layer,
            )
        color, marker = SERIES_COLORS[i % len(SERIES_COLORS)], SERIES_MARKERS[i % len(SERIES_MARKERS)]
        used = []
        for j, (ax, (prefix, _)) in enumerate(zip(axes, panels, strict=True)):
            names = [m for m in metrics if m.startswith(prefix)]
            if not names:
                raise DataFormatError(f"{where}: no {prefix}k metric; it has {sorted(metrics)}")
            values = metrics[names[0]]
            (line,) = ax.plot(layers, values, marker=marker, ms=4, color=color, lw=1.5)
            best = int(np.argmax(values))
            ax.scatter(
                [layers[best]],
                [values[best]],
                s=90,
                facecolors="none",
                edgecolors=color,
                linewidths=1.3,
                zorder=3,
            )
            metric_names[j].add(names[0])
            used.append(names[0])
        handles.append(line)
        labels.append(f"{DATASET_LABELS.get(dataset, dataset)} ({' / '.join(used)})")
    for ax, (_, name), names in zip(axes, panels, metric_names, strict=True):
        ax.axvline(chosen_layer, color="#444", ls="--", lw=1.1, zorder=0)
        ax.text(
            chosen_layer - 0.15,
            0.02,
            f"layer used: {chosen_layer}",
            transform=ax.get_xaxis_transform(),
            fontsize=7.5,
            va="bottom",
            ha="right",
            color="#444",
            rotation=90,
        )
        ax.set_xlabel("Cross-attention layer of the fusion encoder")
        ax.set_ylabel(f"Localization {name} ({', '.join(sorted(names))})")
        ax.set_title(f"Localization {name} by layer", fontsize=10)
        ax.set_xticks(range(1, max_layer + 1))
        ax.grid(True, alpha=0.3)
    handles.append(plt.Line2D([], [], ls="", marker="o", ms=9, mfc="none", mec="#444"))
    labels.append("best layer")
    handles.append(plt.Line2D([], [], ls="--", color="#444"))
    labels.append("layer used (gear.localization.layer)")
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=8, frameon=False)
    fig.suptitle("Figure 4c: GeAR localization by cross-attention layer", fontsize=11)
    rows = (len(labels) + 3) // 4
    fig.tight_layout(rect=(0, 0.05 + 0.05 * rows, 1, 1))
    save_figure(fig, outputs, dpi)
