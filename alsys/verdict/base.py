"""What a verdict is, what it is computed from, and how it is written.

- :class:`Verdict`: the claim, one :class:`Finding` (a sentence with its outcome) per subject,
  the notes that say how, the :class:`Table` s behind them, and the critical-difference
  diagram of a ranking.
- :func:`seed_table`: the one input of every verdict, the area under the learning curve of
  each trial (alsys.stats's ``auc``), from the rounds of a sweep or of an MLflow experiment.
- :func:`write_verdict`: ``verdict.md``, one CSV per table and the diagram's PNG.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alsys.stats import Configuration, auc

if TYPE_CHECKING:
    from alsys.verdict.ranks import CriticalDifference

# The columns of the per-trial table every verdict reads (seed_table).
SEED_COLUMNS = (
    "label",
    "configuration",
    "kind",
    "params",
    "space",
    "dataset",
    "budget",
    "setting",
    "d_clst",
    "d_typ",
    "embed_seed",
    "seed",
    "auc",
)


@dataclass(frozen=True)
class Finding:
    """One subject's answer (a strategy in a cell): ``outcome`` is the short form
    ("agrees", "disagrees", "not enough seeds", ...), ``sentence`` the whole answer."""

    subject: str
    outcome: str
    sentence: str


@dataclass(frozen=True)
class Table:
    """A table behind the verdict: written to ``verdict_<name>.csv`` and into verdict.md, and
    printed at the end of the sweep when ``printed``."""

    name: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    printed: bool = True


@dataclass(frozen=True)
class Verdict:
    """A sweep's verdict on its claim."""

    claim: str
    question: str
    findings: tuple[Finding, ...]
    notes: tuple[str, ...]
    tables: tuple[Table, ...]
    diagram: CriticalDifference | None = None

    def outcome(self) -> str:
        """``typiclust digits/tiny/ssl: agrees; supclust ...: disagrees`` (the MLflow tag)."""
        return "; ".join(f"{f.subject}: {f.outcome}" for f in self.findings) or "no verdict"

    def paragraph(self) -> str:
        """Each finding's sentence after its subject, then the notes on how."""
        return " ".join([*(f"{f.subject}: {f.sentence}" for f in self.findings), *self.notes])

    def text(self) -> str:
        """The short paragraph and the printed tables, as the sweep prints them: a line per
        finding, then the notes, then the tables."""
        lines = [f"Verdict on the claim {self.claim!r}: {self.question}"]
        lines += [_wrap(f"{f.subject}: {f.sentence}") for f in self.findings]
        if self.notes:
            lines.append(_wrap(" ".join(self.notes)))
        for table in self.tables:
            if table.printed and table.rows:
                lines += ["", f"{table.title}:", text_table(table)]
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = [f"# Verdict: {self.claim}", "", f"*{self.question}*", ""]
        lines += [f"- **{f.subject}**: {f.sentence}" for f in self.findings]
        lines += ["", *self.notes] if self.notes else []
        for table in self.tables:
            lines += ["", f"## {table.title}", "", *_markdown_table(table)]
        if self.diagram is not None:
            lines += ["", "## Critical-difference diagram", "", "![CD diagram](verdict_cd.png)"]
        return "\n".join(lines) + "\n"

    def html(self, title: str) -> str:
        """The verdict as a piece of the report's page: its findings, notes and tables."""
        from html import escape

        parts = [f"<h3>{escape(title)}</h3>", f"<p><em>{escape(self.question)}</em></p><ul>"]
        parts += [
            f"<li><b>{escape(f.subject)}</b>: {escape(f.sentence)}</li>" for f in self.findings
        ]
        parts.append("</ul>")
        if self.notes:
            parts.append(f'<p class="note">{escape(" ".join(self.notes))}</p>')
        for table in self.tables:
            if table.printed and table.rows:
                head = "".join(f"<th>{escape(c)}</th>" for c in table.columns)
                body = "".join(
                    "<tr>" + "".join(f"<td>{escape(cell_text(v))}</td>" for v in row) + "</tr>"
                    for row in table.rows
                )
                parts.append(f"<p>{escape(table.title)}:</p><table><tr>{head}</tr>{body}</table>")
        return "".join(parts)


def _wrap(text: str, width: int = 100) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width=width, break_on_hyphens=False))


def cell_text(value: Any) -> str:
    """A table cell: p-values and shares to 3 significant figures, other floats to 4
    decimals, NaN as ``-``."""
    if isinstance(value, bool) or value is None:
        return "-" if value is None else ("yes" if value else "no")
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.3g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}"
    return str(value)


def text_table(table: Table) -> str:
    """The table as fixed-width text; a ``subject`` column that holds one subject only is left
    out (the findings above it name it)."""
    columns, rows = list(table.columns), [list(row) for row in table.rows]
    if columns[0] == "subject" and len({row[0] for row in rows}) == 1:
        columns, rows = columns[1:], [row[1:] for row in rows]
    cells = [columns, *[[cell_text(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    # The first column (a name) left-aligned, the numbers right-aligned.
    return "\n".join(
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    )


def _markdown_table(table: Table) -> list[str]:
    head = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(cell_text(v) for v in row) + " |" for row in table.rows]
    return [head, rule, *body] if table.rows else ["(empty)"]


def write_verdict(verdict: Verdict, folder: Path) -> list[Path]:
    """``folder/verdict.md``, ``folder/verdict_<table>.csv`` per table and, for a ranking,
    ``folder/verdict_cd.png``; returns the files written."""
    from alsys.verdict.ranks import cd_diagram

    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "verdict.md"]
    written[0].write_text(verdict.markdown())
    for table in verdict.tables:
        path = folder / f"verdict_{table.name}.csv"
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(table.columns)
            writer.writerows(table.rows)
        written.append(path)
    if verdict.diagram is not None:
        title = f"{verdict.claim}: {verdict.question}"
        written.append(cd_diagram(verdict.diagram, folder / "verdict_cd.png", title))
    return written


def rounds_frame(rows: list[dict[str, Any]]) -> Any:
    """The collect stage's rows (one per trial and round: the configuration's key,
    ``embed_seed``, ``seed``, ``round``, ``balanced_accuracy``) as the frame :func:`seed_table`
    reads: with ``label`` (the configuration without its D pair), ``configuration`` and
    ``kind``."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    keys = []
    for row in frame.itertuples():
        keys.append(
            Configuration(
                strategy=str(row.strategy),
                params=tuple(sorted(json.loads(row.params or "{}").items())),
                space=str(row.space),
                d_clst=None if _missing(row.d_clst) else int(row.d_clst),
                d_typ=None if _missing(row.d_typ) else int(row.d_typ),
                dataset=str(row.dataset),
                budget=str(row.budget),
                setting=str(row.setting),
            )
        )
    frame["label"] = [key.describe(dims=False) for key in keys]
    frame["configuration"] = [key.describe() for key in keys]
    frame["kind"] = frame["strategy"]
    return frame


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def seed_table(frame: Any) -> Any:
    """Per trial (configuration, SimCLR training and seed), the area under its learning curve.

    frame: one row per (trial, round) with the columns of SEED_COLUMNS but ``auc``, plus
    ``round`` and ``balanced_accuracy`` (:func:`rounds_frame`, or the report's
    ``trial_frame``); without ``embed_seed``, every trial read training 0. Returns a frame with
    the columns SEED_COLUMNS; ``d_clst``/``d_typ`` are nullable integers (absent for a strategy
    without them). A replicate of a configuration is its (``embed_seed``, ``seed``) pair
    (alsys.verdict.representation).
    """
    import pandas as pd

    if frame.empty:
        return pd.DataFrame(columns=list(SEED_COLUMNS))
    keys = [c for c in SEED_COLUMNS if c != "auc"]
    frame = frame if "embed_seed" in frame else frame.assign(embed_seed=0)
    data = frame[[*keys, "round", "balanced_accuracy"]].copy()
    for column in ("d_clst", "d_typ"):
        data[column] = pd.array(
            [None if _missing(v) or v == "-" else int(v) for v in data[column]], dtype="Int64"
        )
    grouped = data.groupby(keys, dropna=False).balanced_accuracy
    table = grouped.agg(auc).reset_index().rename(columns={"balanced_accuracy": "auc"})
    return table[list(SEED_COLUMNS)]


def p_text(p: float) -> str:
    """``p = 0.031``; ``p not computable`` for a test that could not run."""
    return "p not computable" if p != p else f"p = {p:.2g}"


def subject(label: str, cell: tuple[Any, ...]) -> str:
    """``typiclust, digits/tiny/ssl``: what a finding is about."""
    return f"{label}, {'/'.join(str(c) for c in cell)}"


CELL = ("dataset", "budget", "setting")  # a cell of the thesis's figures
