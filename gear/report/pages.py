"""HTML helpers shared by the report pages, and the index page that links every artifact.

Every page the suite writes is one self-contained file: inline CSS, no script, no external
resource, every text from data escaped with :func:`esc`. Pages link each other and the figures by
relative paths, so the reports folder can be moved or served as it is.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from gear.io import atomic_open
from gear.layout import dataset_tasks

# Display names of the data sets (the paper's spelling).
DATASET_LABELS = {"squad": "SQuAD", "nq": "NQ", "triviaqa": "TriviaQA", "paq": "PAQ", "rir": "RIR"}

# Query colours of Figure 3 / 5 (paper, Appendix D: orange for query 1, purple for query 2).
QUERY_COLORS = ("#f5a142", "#b48ae6")
QUERY_COLORS_LIGHT = ("#fcd9ad", "#e3d2f7")

BASE_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.25em; margin-top: 1.6em; }
h3 { font-size: 1.05em; margin-bottom: 0.3em; }
table.gear { border-collapse: collapse; font-size: 0.86em; margin: 0.6em 0 0.4em 0; }
table.gear th, table.gear td { padding: 3px 8px; border-bottom: 1px solid #ddd; text-align: right;
       white-space: nowrap; }
table.gear th { background: #f3f3f3; text-align: center; }
table.gear td.label { text-align: left; font-weight: 600; }
table.gear tr.group td { text-align: left; font-style: italic; background: #fafafa; color: #555; }
.within { color: #1a7f37; font-weight: 700; } .outside { color: #c62828; font-weight: 700; }
.paper { color: #666; } .diff { color: #666; font-size: 0.9em; } .missing { color: #999; }
.ci { color: #888; font-size: 0.85em; } .signif { font-weight: 700; }
.note { font-size: 0.85em; color: #444; margin: 0.15em 0; }
.legend { font-size: 0.85em; color: #555; }
.doc { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 0.8em 1em;
       white-space: pre-wrap; line-height: 1.9; }
.muted { color: #777; } code { background: #f3f3f3; padding: 0 3px; border-radius: 3px; }
a { color: #1f5fbf; }
"""


def esc(text: object) -> str:
    """HTML-escape any value's string form (quotes too, so it is safe inside attributes)."""
    return html.escape(str(text), quote=True)


def html_page(title: str, body: str, extra_css: str = "") -> str:
    """A complete, self-contained HTML5 page.

    Args:
        title: the page title (escaped here).
        body: HTML already escaped by the caller.
        extra_css: CSS appended to the shared style sheet.
    """
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{esc(title)}</title>\n'
        f"<style>{BASE_CSS}{extra_css}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def write_page(path: str | os.PathLike, title: str, body: str, extra_css: str = "") -> None:
    """Write :func:`html_page` atomically."""
    with atomic_open(path) as handle:
        handle.write(html_page(title, body, extra_css))


def relative_link(target: str | os.PathLike, page: str | os.PathLike) -> str:
    """The path of ``target`` relative to the folder of ``page``, with forward slashes."""
    rel = os.path.relpath(Path(target).resolve(), Path(page).resolve().parent)
    return Path(rel).as_posix()


IMAGE_SUFFIXES = (".png", ".svg", ".jpg", ".jpeg")


def render_index(
    sections: Mapping[str, Sequence[tuple[str, str | os.PathLike]]], page: str | os.PathLike, title: str
) -> str:
    """The index page: one section per kind of artifact, a link to each file, thumbnails of images.

    Args:
        sections: section title -> ``(label, path)`` pairs, in display order. Artifacts that share
            a label (the PNG, PDF and HTML of one figure) are listed on one line.
        page: where the index will be written (links are relative to its folder).
        title: the page heading.

    Returns:
        The whole HTML page.
    """
    parts = [f"<h1>{esc(title)}</h1>"]
    parts.append(
        '<p class="muted">Every table and figure of the run, rebuilt from its results files. '
        "Tables show each reproduced number beside the paper's, with the difference and a mark "
        "(within / outside the configured tolerance).</p>"
    )
    for section, items in sections.items():
        if not items:
            continue
        parts.append(f"<h2>{esc(section)}</h2>\n<ul>")
        grouped: dict[str, list[Path]] = {}
        for label, path in items:
            grouped.setdefault(label, []).append(Path(path))
        for label, paths in grouped.items():
            links = " · ".join(
                f'<a href="{esc(relative_link(p, page))}">{esc(p.suffix.lstrip(".").upper() or p.name)}</a>'
                for p in paths
            )
            parts.append(f"<li><b>{esc(label)}</b>: {links}")
            images = [p for p in paths if p.suffix.lower() in IMAGE_SUFFIXES]
            if images:
                src = esc(relative_link(images[0], page))
                parts.append(
                    f'<br><a href="{src}"><img src="{src}" alt="{esc(label)}" '
                    'style="max-width: 520px; border: 1px solid #ddd; margin: 4px 0 10px 0"></a>'
                )
            parts.append("</li>")
        parts.append("</ul>")
    return html_page(title, "\n".join(parts))


def write_index(
    path: str | os.PathLike, sections: Mapping[str, Sequence[tuple[str, str | os.PathLike]]], title: str
) -> None:
    """Write the index page (see :func:`render_index`); every linked file must exist."""
    missing = [str(p) for items in sections.values() for _, p in items if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"index page {path}: linked artifact(s) missing: {', '.join(missing)}")
    with atomic_open(path) as handle:
        handle.write(render_index(sections, path, title))


# --------------------------------------------------------------------------------------------
# What a run's reports consist of: the index's sections and the workflow's targets
# --------------------------------------------------------------------------------------------

TABLE_FORMATS = ("md", "tex", "csv", "html")
# Figure 4's epoch panels: a is QAR, b is RIR (as in the paper).
FIGURE_4_SCENARIO = {"a": "qar", "b": "rir"}


def report_gear(models: Sequence):
    """The model of Figures 3-4 and the explanation pages: the first selected GeAR variant with
    localization and generation (registry kind ``gear``), or None when the run has none."""
    for entry in models:
        if entry.kind == "gear" and {"localization", "generation"} <= set(entry.tasks):
            return entry
    return None


def table_outputs(reports: Path, name: str) -> dict[str, Path]:
    """Format -> path of one table (``P/{name}.{md,tex,csv,html}``)."""
    return {fmt: Path(reports) / f"{name}.{fmt}" for fmt in TABLE_FORMATS}


def report_artifacts(cfg: Mapping, models: Sequence, reports: Path) -> dict[str, list[tuple[str, Path]]]:
    """Every artifact of a run's reports, by index section: ``{section: [(label, path), ...]}``.

    Figures 3-4 and the explanation pages need a GeAR variant with localization and generation
    among ``models``; Figure 4a/4b follow ``evaluate.epoch_analysis``, Figure 4c
    ``evaluate.layer_analysis`` (the data sets of it the run evaluates).
    """
    reports = Path(reports)
    datasets = list(cfg["evaluate"]["datasets"])
    gear = report_gear(models)
    sections: dict[str, list[tuple[str, Path]]] = {
        "Results (Tables 1-3)": [
            (f"Table {n}", p) for n in (1, 2, 3) for p in table_outputs(reports, f"table_{n}").values()
        ],
        "Significance": [("Significance", p) for p in table_outputs(reports, "significance").values()],
        "Data (Tables 5-7)": [
            (f"Table {n}", p) for n in (5, 6, 7) for p in table_outputs(reports, f"table_{n}").values()
        ],
        "Figures": [],
        "Explanation pages": [],
    }
    if gear is not None:
        figures = reports / "figures"
        sections["Figures"] += [("Figure 3", figures / f"figure_3.{ext}") for ext in ("png", "pdf", "html")]
        panels = [p for p, s in FIGURE_4_SCENARIO.items() if s in cfg["evaluate"]["epoch_analysis"]]
        if any(d in datasets for d in cfg["evaluate"]["layer_analysis"]):
            panels.append("c")
        sections["Figures"] += [
            (f"Figure 4{p}", figures / f"figure_4{p}.{ext}") for p in panels for ext in ("png", "pdf")
        ]
        sections["Explanation pages"] += [
            (f"Explanations: {d}", reports / "explain" / f"{d}.html")
            for d in datasets
            if "localization" in dataset_tasks(d)  # a BEIR set has no gold units to explain
        ]
    return sections


def report_targets(cfg: Mapping, models: Sequence, reports: Path) -> list[Path]:
    """Every artifact of :func:`report_artifacts` and the index page ``P/index.html``."""
    sections = report_artifacts(cfg, models, reports)
    return [path for items in sections.values() for _, path in items] + [Path(reports) / "index.html"]
