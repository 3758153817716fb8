"""Figures 3, 4a/b and 4c drawn from fixture JSON to PNG and PDF (small dpi)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from gear.io import DataFormatError
from gear.report import figures as F
from tests.report.conftest import epochs_json, figure3_fixture, layers_json

DPI = 40


def _check_png_pdf(png, pdf, width_in, height_in):
    with Image.open(png) as image:
        assert image.size == (round(width_in * DPI), round(height_in * DPI))
        pixels = np.asarray(image.convert("L"))
    assert pixels.std() > 5, "blank image"
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1000


def test_figure3_png_pdf_and_html(tmp_path):
    data = figure3_fixture()
    png, pdf = tmp_path / "figure_3.png", tmp_path / "figure_3.pdf"
    width, height = F.draw_figure3(data, [png, pdf], dpi=DPI)
    assert width == 7.5 and 2.0 < height < 8.0
    _check_png_pdf(png, pdf, width, height)
    # The orange and purple highlights are in the raster.
    pixels = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3).astype(int)
    for hex_color in F.QUERY_COLORS:
        rgb = np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)])
        assert (np.abs(pixels - rgb).sum(axis=1) < 30).sum() > 20, hex_color

    html = F.render_figure3_html(data)
    assert "When &lt;script&gt;?" in html and "<script>" not in html
    assert "&lt;b&gt;&amp;amp;&lt;/b&gt;" in html  # document text escaped, entities not decoded
    assert "10th &amp; 11th" in html
    assert "linear-gradient" in html  # "10th" is in both queries' top tokens: split highlight
    assert html.count('class="hl"') >= 6


def test_highlight_styles_and_runs():
    styles = F.highlight_styles(10, [(0, 3), (5, 7)], [(2, 6)])
    assert styles.tolist() == [1, 1, 3, 2, 2, 3, 1, 0, 0, 0]
    assert F.style_runs("abcdefghij", styles) == [
        ("ab", 1),
        ("c", 3),
        ("de", 2),
        ("f", 3),
        ("g", 1),
        ("hij", 0),
    ]
    with pytest.raises(DataFormatError, match="outside a document"):
        F.highlight_styles(5, [(3, 9)], [])


def test_layout_wraps_within_width():
    measure = F._Measure(10, 72)
    runs = [("word " * 60, 0), ("highlighted", 1), (" tail\nnext line", 0)]
    placed, lines = F.layout_runs(runs, 200.0, measure)
    assert lines > 5
    assert all(p.x + p.width <= 200.0 + 1e-6 for p in placed)
    assert [p.text for p in placed if p.style == 1] == ["highlighted"]
    next_piece = next(p for p in placed if p.text == "next")
    tail_piece = next(p for p in placed if p.text == "tail")
    assert next_piece.line == tail_piece.line + 1 and next_piece.x == 0


def test_figure_4ab(tmp_path):
    png, pdf = tmp_path / "figure_4a.png", tmp_path / "figure_4a.pdf"
    F.draw_epoch_figure(epochs_json("qar"), [png, pdf], dpi=DPI, figure_label="Figure 4a")
    _check_png_pdf(png, pdf, 5.2, 4.2)
    bad = epochs_json("rir")
    bad["generation"]["ROUGE-1"] = bad["generation"]["ROUGE-1"][:-1]
    with pytest.raises(DataFormatError, match=r"generation\.ROUGE-1: 3 values for 4"):
        F.draw_epoch_figure(bad, [tmp_path / "x.png"], dpi=DPI)
    assert not (tmp_path / "x.png").exists()


def test_figure_4c(tmp_path):
    png, pdf = tmp_path / "figure_4c.png", tmp_path / "figure_4c.pdf"
    F.draw_layer_figure([layers_json(d) for d in ("squad", "nq", "rir")], 5, [png, pdf], dpi=DPI)
    _check_png_pdf(png, pdf, 9.0, 4.0)
    with pytest.raises(ValueError, match="layer_analysis is empty"):
        F.draw_layer_figure([], 5, [png], dpi=DPI)


def test_epoch_correlation_only_where_both_series_move():
    from gear.report.figures import epoch_correlation

    assert epoch_correlation([0.0, 7.5, 7.7], [0.3, 0.5, 0.6]) == pytest.approx(
        np.corrcoef([0.0, 7.5, 7.7], [0.3, 0.5, 0.6])[0, 1]
    )
    # A localization score that is constant up to rounding (a mean over the same 45 queries).
    assert np.isnan(epoch_correlation([0.0, 7.5, 7.7], [1 / 45, 1 / 45 + 1e-15, 1 / 45 - 1e-15]))
    assert np.isnan(epoch_correlation([0.0, 7.5], [0.3, 0.5]))  # two points
