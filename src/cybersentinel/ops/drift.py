"""`cybersentinel drift`: compare scored traffic with the reference profile stored with the model, write a report a
person reads (HTML with plots) and the figures as JSON (both atomically), and say whether a threshold was crossed.

The traffic is a scored file (`cybersentinel predict` output: CSV or Parquet with a ``url`` column and, if present,
``model_score``) or a time window of a decision log folder. Features are recomputed from the URLs with the verified
model (the decision log keeps only the scored value, not the features); the model scores are the ones recorded,
or computed when the file has none. Decision log rows written by another model are left out of the comparison
(their scores mean something else) and counted in the figures. Fewer rows than ``--min-rows`` are too few to judge
(`too_few_rows`): a PSI over a reference's deciles from a handful of rows is noise (5 rows gave a score PSI of 4.4),
so `drift` says so and exits with its own status (`cli.drift.TOO_FEW_ROWS`) instead of raising an alarm.
"""

from __future__ import annotations

import csv
import gzip
import html
import io
import json
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa

from cybersentinel.model.drift import SCORE, Thresholds, drift_figures, read_reference

if TYPE_CHECKING:
    from collections.abc import Iterator

    from cybersentinel.scoring.batch import Batch


@dataclass(frozen=True)
class Current:
    """The traffic to compare: its URLs and the model score recorded for each (NaN: none recorded or none given)."""

    urls: list[str]
    model_scores: np.ndarray | None  # None: the source has no model scores; they are computed
    source: str
    other_model_rows: int = 0
    other_models: tuple[str, ...] = ()  # the SHA-256 of each other model whose rows were left out


def no_rows_message(current: Current) -> str:
    """Why there is nothing to compare: an empty file or window, or rows all decided by other models."""
    if current.other_model_rows:
        others = ", ".join(f"{sha[:12]}..." for sha in current.other_models[:3]) or "unknown"
        return (f"{current.source}: no rows of this model to compare: all {current.other_model_rows:,} rows in it "
                f"belong to another model (sha256 {others}); point --model-dir at that model")
    return f"{current.source}: no rows to compare"


def too_few_rows(current: Current, min_rows: int) -> str | None:
    """The message when ``current`` has some rows but fewer than ``min_rows``: too few to judge drift."""
    if 0 < len(current.urls) < min_rows:
        return (f"too few rows to judge drift: {len(current.urls):,} rows from {current.source}, fewer than "
                f"--min-rows {min_rows:,}; no report written")
    return None


READ_CHUNK = 200_000  # rows per batch read


def read_scored_file(path: Path) -> Current:
    """A scored CSV (optionally gzipped) or Parquet file with a ``url`` column, read as `predict` reads its input:
    bytes that are not UTF-8 become U+FFFD, and a list, struct or map ``url`` column is refused. A recorded
    ``model_score`` must be a number in [0, 1]; an empty cell (or null) is an input with no score."""
    from cybersentinel.core.csv_cells import unescape_cell
    from cybersentinel.scoring.batch import read_csv, read_parquet

    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv", ".gz"):
        raise ValueError(f"{path}: expected a .csv or .parquet file, or a decision log folder")
    try:
        if suffix in (".parquet", ".pq"):
            _check_parquet_columns(path)
            urls, recorded = _urls_and_scores(read_parquet(str(path), "url", READ_CHUNK))
        else:
            _check_csv_header(path)
            with _open_csv(path) as stream:
                urls, recorded = _urls_and_scores(read_csv(stream, "url", READ_CHUNK))
            # `predict` wrote a formula-like URL with a leading quote for spreadsheets: the URL is what follows
            urls = [unescape_cell(url) if url.startswith("'") else url for url in urls]
    except (EOFError, zlib.error, csv.Error) as err:  # a cut or corrupt gzip stream, an overlong header field
        raise ValueError(f"{path}: cannot read it: {err}") from err
    scores = _recorded_scores(path, pa.chunked_array(recorded)) if recorded else None
    return Current(urls, scores, str(path))


def _urls_and_scores(batches: Iterator[Batch]) -> tuple[list[str], list[pa.Array]]:
    """The URLs and the chunks of the ``model_score`` column, if any: a wide file's other columns are dropped batch
    by batch, as it is read."""
    urls: list[str] = []
    scores: list[pa.Array] = []
    for batch in batches:
        urls += [url or "" for url in _texts(batch.urls)]
        if SCORE in batch.passthrough.column_names:
            scores += batch.passthrough[SCORE].chunks
    return urls, scores


def _texts(values: pa.Array | pa.ChunkedArray) -> list[str | None]:
    """Python strings; a Parquet string column can hold bytes that are not UTF-8 (Arrow does not check them on
    reading), which `predict` scores as U+FFFD and so is it here."""
    try:
        return values.to_pylist()
    except UnicodeDecodeError:
        raw = values.cast(pa.large_binary() if pa.types.is_large_string(values.type) else pa.binary())
        return [None if v is None else v.decode("utf-8", "replace") for v in raw.to_pylist()]


def _open_csv(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else path.open("rb")  # type: ignore[return-value]


def _require_url(path: Path, names: list[str]) -> None:
    if "url" not in names:
        raise ValueError(f"{path}: no `url` column (columns: {', '.join(map(str, names[:10]))})")


def _check_csv_header(path: Path) -> None:
    """Checked here, not by `predict`'s reader, whose messages name its --column option."""
    with io.TextIOWrapper(_open_csv(path), "utf-8-sig", "replace", newline="") as text:  # closes the file too
        header = next(csv.reader(text), [])
    if not header:
        raise ValueError(f"{path}: the file is empty; a scored CSV starts with a header row naming a `url` column")
    _require_url(path, header)


def _check_parquet_columns(path: Path) -> None:
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    _require_url(path, schema.names)
    kind = schema.field(schema.names.index("url")).type
    value = kind.value_type if pa.types.is_dictionary(kind) else kind
    if not any(test(value) for test in (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary,
                                        pa.types.is_large_binary, pa.types.is_string_view, pa.types.is_binary_view)):
        # checked here: `predict`'s reader would name its --column option, which drift does not have
        raise ValueError(f"{path}: the `url` column holds {kind} values, not text")


def _recorded_scores(path: Path, column: pa.ChunkedArray) -> np.ndarray:
    """The ``model_score`` column as floats (NaN: no score). A value that is not a number or lies outside [0, 1]
    is an error: counted as "no score" or binned as a score, it would raise a false alarm."""
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        values = column.cast(pa.float64()).fill_null(float("nan")).to_numpy()
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        values = _numbers_from_text(path, column)
    else:
        raise ValueError(f"{path}: the `{SCORE}` column holds {kind} values, not numbers")
    outside = np.flatnonzero(~np.isnan(values) & ~((values >= 0) & (values <= 1)))
    if len(outside):
        raise ValueError(f"{path}: `{SCORE}` {values[outside[0]]:g} in data row {outside[0] + 1:,} is outside 0-1 "
                         f"({len(outside):,} such rows): not a model score")
    return values


def _numbers_from_text(path: Path, column: pa.ChunkedArray) -> np.ndarray:
    """Text scores (CSV cells, `predict`'s Parquet output) as floats; an empty cell is no score."""
    text = pd.Series(_texts(column), dtype=object)
    blank = text.isna() | (text.str.strip() == "")
    values = pd.to_numeric(text.where(~blank), errors="coerce")
    bad = np.flatnonzero((values.isna() & ~blank).to_numpy())
    if len(bad):
        raise ValueError(f"{path}: `{SCORE}` {text.iloc[bad[0]][:40]!r} in data row {bad[0] + 1:,} is not a number "
                         f"({len(bad):,} such rows; leave the cell empty for an input with no score)")
    return values.to_numpy(np.float64, na_value=np.nan)


def read_log_window(folder: Path, model_sha256: str, since: datetime | None, until: datetime | None) -> Current:
    """The decision log's rows in [since, until) that this model decided."""
    from cybersentinel.ops.decisions import read_window

    table = read_window(folder, since, until)
    frame = table.select(["url", SCORE, "model_sha256"]).to_pandas()
    mine = (frame["model_sha256"] == model_sha256).to_numpy()
    window = f"{since.isoformat() if since else 'start'} .. {until.isoformat() if until else 'now'}"
    others = tuple(sorted(str(sha) for sha in frame.loc[~mine, "model_sha256"].dropna().unique()))
    return Current(frame.loc[mine, "url"].tolist(), frame.loc[mine, SCORE].to_numpy(np.float64),
                   f"{folder} ({window})", int((~mine).sum()), others)


def measure(model_dir: Path, current: Current, thresholds: Thresholds, chunk: int = 200_000) -> dict[str, Any]:
    """The drift figures of ``current`` against the model's reference profile."""
    from cybersentinel.scoring.detector import Detector

    detector = Detector.from_dir(model_dir)
    reference = read_reference(model_dir, detector.manifest)
    names = list(detector.manifest["features"])
    features, computed = [], []
    for start in range(0, len(current.urls), chunk):  # bounded memory for millions of rows
        X, ok = detector.feature_rows(current.urls[start:start + chunk])
        features.append(X.astype(np.float32))
        if current.model_scores is None:
            scores = np.full(len(ok), np.nan)
            scores[ok] = detector.model_scores(X)
            computed.append(scores)
    X = np.vstack(features) if features else np.empty((0, len(names)), np.float32)
    scores = current.model_scores if current.model_scores is not None else \
        (np.concatenate(computed) if computed else np.empty(0))
    if not len(scores):
        raise ValueError(no_rows_message(current))
    figures = drift_figures(reference, X, scores, names, detector.threshold, thresholds)
    return {"source": current.source, "model": {"name": detector.manifest["name"],
                                                "sha256": detector.manifest["sha256"]},
            "scores_recorded": current.model_scores is not None, "other_model_rows": current.other_model_rows,
            **figures}


def write_outputs(figures: dict[str, Any], json_path: Path, html_path: Path) -> None:
    from cybersentinel.core.files import atomic_path, write_json

    write_json(json_path, figures)
    with atomic_path(html_path) as tmp:
        tmp.write_text(render_html(figures), encoding="utf-8")


REFERENCE_COLOUR, CURRENT_COLOUR, DRIFT_COLOUR = "#4c72b0", "#dd8452", "#c44e52"


def _bin_labels(edges: list[float]) -> list[str]:
    if not edges:
        return ["all"]
    return ([f"<= {edges[0]:.3g}"] + [f"{a:.3g}-{b:.3g}" for a, b in zip(edges, edges[1:], strict=False)]
            + [f"> {edges[-1]:.3g}"])


def shares_svg(title: str, column: dict[str, Any]) -> str:
    """Grouped bars: each bin's share of the reference rows and of the current rows (inline SVG, no library)."""
    esc = html.escape
    labels = _bin_labels(column["edges"])
    ref, cur = column["reference_shares"], column["current_shares"]
    width, height, left, bottom, top = 640, 260, 50, 70, 30
    plot_w, plot_h = width - left - 10, height - top - bottom
    peak = max([*ref, *cur, 1e-9])
    slot = plot_w / len(labels)
    bar = slot * 0.38
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{esc(title)}" font-family="sans-serif" font-size="10">',
             f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13">{esc(title)}: PSI '
             f'{column["psi"]:.3f}, KS {column["ks"]:.3f}</text>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" stroke="#333"/>']
    for k in range(5):  # y grid at 0, 25, 50, 75, 100 % of the highest bar
        y = top + plot_h - plot_h * k / 4
        parts.append(f'<text x="{left - 4}" y="{y + 3:.1f}" text-anchor="end">{peak * k / 4:.0%}</text>'
                     f'<line x1="{left}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" stroke="#ddd"/>')
    for i, label in enumerate(labels):
        x = left + i * slot + slot * 0.12
        for offset, value, colour, side in ((0, ref[i], REFERENCE_COLOUR, "reference"),
                                            (bar, cur[i], CURRENT_COLOUR, "current")):
            h = plot_h * value / peak
            parts.append(f'<rect x="{x + offset:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                         f'fill="{colour}"><title>{esc(label)} {side}: {value:.1%}</title></rect>')
        cx = left + (i + 0.5) * slot
        parts.append(f'<text x="{cx:.1f}" y="{top + plot_h + 12}" text-anchor="end" '
                     f'transform="rotate(-40 {cx:.1f} {top + plot_h + 12})">{esc(label)}</text>')
    parts.append(f'<rect x="{width - 150}" y="24" width="10" height="10" fill="{REFERENCE_COLOUR}"/>'
                 f'<text x="{width - 136}" y="33">reference</text>'
                 f'<rect x="{width - 80}" y="24" width="10" height="10" fill="{CURRENT_COLOUR}"/>'
                 f'<text x="{width - 66}" y="33">current</text></svg>')
    return "".join(parts)


def psi_svg(figures: dict[str, Any], cap: float = 5.0) -> str:
    """Horizontal bars: every feature's PSI, drifted ones in red, the threshold as a dashed line."""
    esc = html.escape
    items = sorted(figures["features"].items(), key=lambda kv: -kv[1]["psi"])
    limit = figures["thresholds"]["feature_psi"]
    row, left, width = 14, 170, 640
    height = row * len(items) + 40
    scale = (width - left - 60) / max(min(max((f["psi"] for _, f in items), default=0), cap), limit * 1.5, 1e-9)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="PSI per feature" font-family="sans-serif" font-size="10">']
    for i, (name, f) in enumerate(items):
        y = 10 + i * row
        value = min(f["psi"], cap)
        colour = DRIFT_COLOUR if f["psi"] > limit else REFERENCE_COLOUR
        parts.append(f'<text x="{left - 4}" y="{y + 10}" text-anchor="end">{esc(name)}</text>'
                     f'<rect x="{left}" y="{y + 2}" width="{value * scale:.1f}" height="{row - 4}" fill="{colour}">'
                     f'<title>{esc(name)}: PSI {f["psi"]:.4f}</title></rect>'
                     f'<text x="{left + value * scale + 4:.1f}" y="{y + 10}">{f["psi"]:.3f}</text>')
    x = left + limit * scale
    parts.append(f'<line x1="{x:.1f}" y1="6" x2="{x:.1f}" y2="{height - 24}" stroke="#000" stroke-dasharray="4 3"/>'
                 f'<text x="{x:.1f}" y="{height - 10}" text-anchor="middle">threshold {limit} (bars capped at '
                 f'{cap:g})</text></svg>')
    return "".join(parts)


def render_html(figures: dict[str, Any]) -> str:
    """A self-contained page (plots inline as SVG, no script, no CDN)."""
    esc = html.escape
    verdict = "DRIFT" if figures["drift"] else "no drift"
    flagged, no_score = figures["share_flagged"], figures["share_no_model_score"]
    rows = "".join(
        f"<tr{' class=drifted' if name in figures['drifted_features'] else ''}><td>{esc(name)}</td>"
        f"<td>{f['psi']:.4f}</td><td>{f['ks']:.4f}</td><td>{_fmt(f['reference_mean'])}</td>"
        f"<td>{_fmt(f['current_mean'])}</td></tr>"
        for name, f in sorted(figures["features"].items(), key=lambda kv: -kv[1]["psi"]))
    top = [n for n in sorted(figures["features"], key=lambda n: -figures["features"][n]["psi"])][:6]
    plots = "".join(f"<figure>{shares_svg(n, figures['features'][n])}</figure>" for n in top)
    alarms = "".join(f"<li>{esc(a)}</li>" for a in figures["alarms"]) or "<li>none</li>"
    colour = "#b00" if figures["drift"] else "#070"
    others = f", {figures['other_model_rows']:,} rows of other models left out" if figures["other_model_rows"] else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>CyberSentinel drift: {verdict}</title>
<style>body{{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:72em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}} td:first-child{{text-align:left}}
tr.drifted{{background:#fde2e2}} .verdict{{font-size:1.4em;font-weight:bold;color:{colour}}}
figure{{margin:0.5em 0}} svg{{max-width:100%;height:auto}}</style></head><body>
<h1>Drift report</h1>
<p class="verdict">{verdict}</p>
<p>Traffic: {esc(figures['source'])}: {figures['rows']:,} rows, {figures['scored_rows']:,} with a model score
({'recorded' if figures['scores_recorded'] else 'computed now'}){others}.
Reference: {figures['reference_rows']:,} held-out training rows of model {esc(figures['model']['name'])}
{esc(figures['model']['sha256'][:12])}.</p>
<h2>Alarms</h2><ul>{alarms}</ul>
<h2>Summary</h2><table>
<tr><th>figure</th><th>reference</th><th>current</th><th>threshold</th></tr>
<tr><td>share flagged (model score &ge; {figures['threshold']:.4g})</td><td>{_pct(flagged['reference'])}</td>
<td>{_pct(flagged['current'])}</td><td>change &le; {_pct(figures['thresholds']['flagged_delta'])}</td></tr>
<tr><td>share with no model score</td><td>0%</td><td>{_pct(no_score)}</td>
<td>&le; {_pct(figures['thresholds']['no_score_share'])}</td></tr>
<tr><td>model score PSI</td><td></td><td>{figures['score']['psi']:.4f}</td>
<td>&le; {figures['thresholds']['score_psi']}</td></tr>
<tr><td>features drifted (PSI &gt; {figures['thresholds']['feature_psi']})</td><td></td>
<td>{len(figures['drifted_features'])} of {len(figures['features'])}</td>
<td>&le; {_pct(figures['thresholds']['drifted_share'])}</td></tr></table>
<h2>Model score</h2><figure>{shares_svg('model score', figures['score'])}</figure>
<h2>Features</h2><figure>{psi_svg(figures)}</figure>
<h3>The most drifted features</h3>{plots}
<table><tr><th>feature</th><th>PSI</th><th>KS</th><th>reference mean</th><th>current mean</th></tr>{rows}</table>
<p>PSI over the reference's deciles: &lt; 0.1 stable, 0.1&ndash;0.25 moderate, &gt; 0.25 shifted. KS: the largest
gap between the two cumulative distributions.</p>
</body></html>
"""


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def summary(figures: dict[str, Any]) -> str:
    """One paragraph for the terminal."""
    lines = [f"{'DRIFT' if figures['drift'] else 'no drift'}: {figures['rows']:,} rows from {figures['source']}; "
             f"{len(figures['drifted_features'])} of {len(figures['features'])} features drifted; model score PSI "
             f"{figures['score']['psi']:.3f}; flagged {_pct(figures['share_flagged']['current'])} "
             f"(reference {_pct(figures['share_flagged']['reference'])}); no model score "
             f"{_pct(figures['share_no_model_score'])}"]
    lines += [f"  - {alarm}" for alarm in figures["alarms"]]
    return "\n".join(lines)


def dumps(figures: dict[str, Any]) -> str:
    return json.dumps(figures, indent=2, sort_keys=True)
