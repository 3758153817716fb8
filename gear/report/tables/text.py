"""The tables' words and signs: marks, labels, and LaTeX escaping."""

from __future__ import annotations

MARK_WITHIN = "✓"
MARK_OUTSIDE = "✗"
LATEX_WITHIN = r"$\surd$"  # base LaTeX, no package needed
LATEX_OUTSIDE = r"$\times$"
NOT_RUN = "not run"
NOT_IN_PAPER = "—"
#: printed after a GeAR localization value that does not beat what uniform attention gives
AT_LENGTH = "≤ unit length"
#: row group of the trivial references of Table 2 (SPEC 6)
REFERENCE_GROUP = "reference"
REFERENCE_ROWS = {
    "unit_length": "unit length (uniform attention)",
    "random": "random ranking",
}
#: row group of the paper's models this run did not evaluate: their printed values, compactly
PAPER_ONLY_GROUP = "paper_only"
PAPER_ONLY_LABEL = "Paper only (not run here): the paper's values"
#: mark on the rows of models the paper does not have (a new model, MiniLM, BM25)
BEYOND_PAPER_MARK = "†"
BEYOND_PAPER_NOTE = "beyond the paper: a model the paper does not evaluate (no paper value to compare)."
#: labels of the row groups the suite adds to the paper's (registry ``group``)
SUITE_GROUP_LABELS = {"lexical": "Lexical retrieval (beyond the paper)"}
MINUS = "−"  # typographic minus for text and HTML; CSV keeps ASCII numbers

# Paper tables with results; their rows are models.
METRIC_TABLES = ("table_1", "table_2", "table_3")
TASK_OF_TABLE = {"table_1": "retrieval", "table_2": "localization", "table_3": "generation"}
SCENARIO_LABELS = {"qar": "QAR", "rir": "RIR"}
TASK_LABELS = {
    "retrieval": "Document retrieval",
    "localization": "Unit localization",
    "generation": "Generation",
}


LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "—": "--",
    "−": "$-$",
    "±": r"$\pm$",
    "†": r"\dag{}",
    "✓": r"$\surd$",
    "✗": r"$\times$",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters (and the few Unicode signs the tables use)."""
    return "".join(LATEX_SPECIALS.get(ch, ch) for ch in str(text))
