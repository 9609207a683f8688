"""How the detector does on a team's own labelled URLs: the figures stage `generalise` reports for a held-out
collection, computed from a file `cybersentinel predict` scored (its input's label column kept beside the results).

The figures are those of whatever model and feeds scored the file; the report names the model by its hashes
(`scoring_model`), verified as `predict` verifies them before scoring, and checked against the file by scoring a
sample of its rows again. The served
decision is what users get (``score`` ranks, ``verdict`` flags); the model alone (``model_score``) is ranked too.
Each figure but the TPR gets a 95% interval from resampling the rows' registered domains (a site's URLs count
together), as in `generalise`. Rows `predict` could not score (an ``error``) are counted per class and left out.

The report is for people to read (shared, attached to a ticket), unlike `predict`'s output, which is the user's own
rows as given: a URL it quotes has its credentials masked (`mask_credentials`: a user-info's password, an
``access_token``'s value), as the decision log's are.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cybersentinel.core.redact import mask_credentials
from cybersentinel.ops.blocklist import InputError, read_scored
from cybersentinel.scoring.batch import RESULT_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

PHISHING_LABELS = frozenset({"1", "true", "yes", "phishing", "malicious", "malware", "bad"})
LEGITIMATE_LABELS = frozenset({"0", "false", "no", "legitimate", "benign", "good"})
NEEDED_RESULTS = ("score", "verdict", "model_score", "error")  # what this reads of the columns `predict` appends
VERDICTS = ("malicious", "suspicious", "benign")


NO_LABEL = -1  # a row `predict` could not read (an ``error``) whose label could not be read either
MAX_GROUPS = 100  # --by values: figures per value of a column of few values, not one report per URL


def _label_text(value: Any) -> str:
    """A label cell as lower-case text: empty for a missing value (None, NaN, pandas' NA), a list or other
    container as its ``repr`` (no label), ``1.0`` as ``1``."""
    import pandas as pd

    if not pd.api.types.is_scalar(value):
        return repr(value)
    if pd.isna(value):
        return ""
    text = str(value).strip().lower()
    return text[0] if text in ("1.0", "0.0") else text


def labels_of(values: Iterable[Any], column: str, unreadable: np.ndarray | None = None) -> np.ndarray:
    """1 (phishing) or 0 (legitimate) for each label value, case and spaces aside; an empty or unknown value is an
    `InputError` counting each such value, before any figure is made, except on rows ``unreadable`` marks (rows
    `predict` could not read, whose label may be lost with them), which get `NO_LABEL`."""
    import pandas as pd

    text = pd.Series([_label_text(value) for value in values], dtype=object)
    phishing, legitimate = text.isin(PHISHING_LABELS), text.isin(LEGITIMATE_LABELS)
    labels = np.where(phishing, 1, np.where(legitimate, 0, NO_LABEL)).astype(np.int8)
    unknown_rows = labels == NO_LABEL
    if unreadable is not None:
        unknown_rows &= ~unreadable
    unknown = text[unknown_rows].value_counts()
    if len(unknown):
        shown = ", ".join(f"{value!r} ({count:,} rows)" for value, count in unknown.head(5).items())
        more = f" and {len(unknown) - 5:,} more" if len(unknown) > 5 else ""
        raise InputError(f"{column!r} holds values that are neither phishing nor legitimate: {shown}{more}; "
                         f"phishing is one of {sorted(PHISHING_LABELS)}, legitimate one of {sorted(LEGITIMATE_LABELS)}")
    return labels


def read_labelled(path: Path, label_column: str, by: str | None = None, column: str = "url") -> pd.DataFrame:
    """The scored file's URLs (its ``column``, as ``url``), label (0/1, or `NO_LABEL` on a row `predict` could not
    read), results and ``by`` column; an `InputError` naming what is missing or wrong."""
    import pandas as pd

    if label_column in RESULT_COLUMNS or by in RESULT_COLUMNS:  # the detector's own output is no label
        name = label_column if label_column in RESULT_COLUMNS else by
        raise InputError(f"{name!r} is a column `predict` writes, not one of its input's (an input column of that "
                         f"name is renamed input_{name}: name that one)")
    frame = read_scored(path, required=(column,))
    wanted = [label_column, *NEEDED_RESULTS, *([by] if by else [])]
    missing = [name for name in wanted if name not in frame.columns]
    if missing:
        hint = (" (score the labelled file with `cybersentinel predict` first: it keeps the input's columns)"
                if set(missing) & set(NEEDED_RESULTS) else "")
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}{hint}; it has: "
                         f"{', '.join(map(str, frame.columns[:20]))}")
    if frame.empty:
        raise InputError(f"{path}: no rows to assess")
    error = frame["error"].fillna("").astype(str)
    out = pd.DataFrame({"url": frame[column].astype(str), "error": error,
                        "label": labels_of(frame[label_column], label_column, (error != "").to_numpy()),
                        "verdict": frame["verdict"].astype(str),
                        "reasons": frame["reasons"].fillna("").astype(str) if "reasons" in frame else ""})
    for result in ("score", "model_score"):
        out[result] = pd.to_numeric(frame[result], errors="coerce").astype(float)  # an empty cell: no score
    if by:
        # read back from Parquet, a column of whole numbers with gaps is float: `2`, not `2.0`
        values = frame[by].convert_dtypes().astype("string").fillna("(empty)")
        out["by"] = values.mask(values == "", "(empty)").to_numpy(dtype=object)
        if out["by"].nunique() > MAX_GROUPS:
            raise InputError(f"{by!r} holds {out['by'].nunique():,} distinct values; --by takes a column of at "
                             f"most {MAX_GROUPS} (a collection, a source, a month)")
    scored = out["error"] == ""
    bad = scored & ~(out["score"].between(0, 1) & out["model_score"].between(0, 1) & out["verdict"].isin(VERDICTS))
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"{path}: {int(bad.sum()):,} rows without an error have no score in [0, 1] or no verdict "
                         f"`predict` writes (the first: row {first + 1} of the data, "
                         f"{mask_credentials(out['url'].iloc[first])[:80]!r})")
    return out


CHECKED_ROWS = 200  # scored rows the model scores again, spread over the file, to tie the file to the model


def scoring_model(model_dir: Path, rows: pd.DataFrame, pinned_sha256: str | None = None) -> dict[str, Any]:
    """The model in ``model_dir`` by its hashes, as reports/metrics.json names the model `evaluate` measured: the
    model file's ``model_sha256`` and the ``manifest_sha256`` of its model.json, which holds the decision policy
    (so it pins the policy too). The folder is loaded and verified as `predict` loads it (``pinned_sha256``, the
    SHA-256 `evaluate` recorded, the model file's own hash); the model.json hashed is the one verified. Up to
    `CHECKED_ROWS` of `read_labelled`'s scored rows are scored again: an `InputError` unless this model gives each
    the ``model_score`` the file holds (to the 6 decimals `predict` writes), since a report naming a model that did
    not score the file would vouch for figures it did not make."""
    import pyarrow as pa

    from cybersentinel.core.files import EVALUATION_RECORD, sha256_file
    from cybersentinel.scoring.detector import Detector

    # the operator's pin, or the hash of model.json as read now: either is checked against the bytes then parsed
    pin = (pinned_sha256 or "").strip().lower() or sha256_file(Path(model_dir) / "model.json")
    detector = Detector.from_dir(model_dir, pin, EVALUATION_RECORD)
    scored = rows[rows["error"] == ""]
    picked = scored.iloc[np.unique(np.linspace(0, len(scored) - 1, min(CHECKED_ROWS, len(scored))).astype(int))]
    again = detector.score_values(pa.array(picked["url"].tolist(), type=pa.string()), reasons=False)
    found = again.column("model_score").to_numpy(zero_copy_only=False).astype(float)
    differ = np.flatnonzero(~np.isclose(found, picked["model_score"].to_numpy(dtype=float), rtol=0, atol=1.5e-6))
    if len(differ):
        first = int(differ[0])
        raise InputError(f"the model in {model_dir} did not score this file: {len(differ)} of {len(picked)} rows "
                         f"scored again differ (the first, {mask_credentials(picked['url'].iloc[first])[:80]!r}: "
                         f"model_score {picked['model_score'].iloc[first]:.6f} in the file, {found[first]:.6f} now); "
                         "name the folder of the model that scored it with --model-dir, and the column it scored "
                         "with --column (predict's -c)")
    return {"model_dir": str(model_dir), "model_sha256": detector.manifest["sha256"], "manifest_sha256": pin,
            "rows_scored_again": len(picked)}


def assess(rows: pd.DataFrame, resamples: int = 200, seed: int = 0, top: int = 10) -> dict[str, Any]:
    """The figures of `read_labelled`'s rows: over all of them and per ``by`` value, plus the ``top`` legitimate
    URLs the served decision scores highest and the phishing ones it scores lowest, credentials masked."""
    from cybersentinel.url.parsing import registered_domain

    rows = rows.assign(group=[registered_domain(url) for url in rows["url"]])
    report = {"overall": _figures(rows, resamples, seed)}
    if "by" in rows:
        report["by"] = {value: _figures(part, resamples, seed) for value, part in rows.groupby("by", sort=True)}
    scored = rows[rows["error"] == ""]
    worst = {"highest_legitimate": scored[scored["label"] == 0].sort_values("score", ascending=False, kind="stable"),
             "lowest_phishing": scored[scored["label"] == 1].sort_values("score", ascending=True, kind="stable")}
    for name, chosen in worst.items():
        report[name] = [{"url": mask_credentials(row.url), "score": round(float(row.score), 6), "verdict": row.verdict,
                         "model_score": round(float(row.model_score), 6), "reasons": row.reasons}
                        for row in chosen.head(top).itertuples()]
    return report


def _figures(rows: pd.DataFrame, resamples: int, seed: int) -> dict[str, Any]:
    """One set of rows' figures: counts, each class's served verdicts, the served decision's ranking and shares
    flagged, and the model alone's ranking, with intervals where the resampled sites allow one."""
    import warnings

    from cybersentinel.model.generalisation import shares_and_ranking
    from cybersentinel.model.metrics import grouped_interval, weighted_roc_auc

    scored = rows[rows["error"] == ""]
    y, groups = scored["label"].to_numpy(), scored["group"].to_numpy()
    figures: dict[str, Any] = {"rows": int(len(rows))}
    for label, name in ((1, "phishing"), (0, "legitimate")):
        ours = scored[scored["label"] == label]
        figures[name] = {"rows": int((rows["label"] == label).sum()),
                         "unscored": int(((rows["label"] == label) & (rows["error"] != "")).sum()),
                         **{verdict: int((ours["verdict"] == verdict).sum()) for verdict in VERDICTS}}
    if unlabelled := int((rows["label"] == NO_LABEL).sum()):
        figures["unreadable_unlabelled"] = unlabelled
    model_scores = scored["model_score"].to_numpy()
    with warnings.catch_warnings():  # a few sites: every resample may hold one class, and the interval is NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        figures.update(shares_and_ranking(y, scored["score"].to_numpy(),
                                          (scored["verdict"] == "malicious").to_numpy(), groups, resamples, seed,
                                          prefix="served_"))
        model = shares_and_ranking(y, model_scores, np.zeros(len(y), dtype=bool), groups, 0, seed, prefix="model_")
        figures.update({key: value for key, value in model.items() if "roc_auc" in key or "tpr" in key})
        if resamples and "model_roc_auc" in figures:
            figures["model_roc_auc_ci"] = grouped_interval(groups, weighted_roc_auc(y, model_scores), resamples, seed)
    return {key: value for key, value in figures.items()  # an interval no resample could measure: none
            if not (key.endswith("_ci") and not np.isfinite(value).all())}


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The report as a few plain-text lines: overall, then each ``by`` value."""
    parts = [("all rows", report["overall"]), *report.get("by", {}).items()]
    lines = []
    for name, figures in parts:
        line = f"{name}: {figures['rows']:,} rows"
        for label in ("phishing", "legitimate"):
            counts = figures[label]
            if counts["rows"]:
                line += (f"; {label} {counts['rows']:,} ({counts['malicious']:,} malicious, {counts['suspicious']:,} "
                         f"suspicious, {counts['benign']:,} benign" +
                         (f", {counts['unscored']:,} unscored)" if counts["unscored"] else ")"))
        if figures.get("unreadable_unlabelled"):
            line += f"; {figures['unreadable_unlabelled']:,} rows predict could not read, their label with them"
        lines.append(line)
        figure_texts = []
        if "served_roc_auc" in figures:
            interval = figures.get("served_roc_auc_ci")
            figure_texts.append(f"ROC-AUC served {figures['served_roc_auc']:.4f}"
                                + (f" ({interval[0]:.4f}-{interval[1]:.4f})" if interval else "")
                                + f", model {figures['model_roc_auc']:.4f}")
            figure_texts.append(f"TPR at 1% FPR served {figures['served_tpr_at_1pct_fpr']:.3f}, "
                                f"model {figures['model_tpr_at_1pct_fpr']:.3f}")
        for key, name_shown in (("served_recall", "recall (malicious)"), ("served_fpr", "legitimate malicious")):
            if key in figures:
                interval = figures.get(f"{key}_ci")
                figure_texts.append(f"{name_shown} {figures[key]:.2%}"
                                    + (f" ({interval[0]:.2%}-{interval[1]:.2%})" if interval else ""))
        if figure_texts:
            lines.append("  " + "; ".join(figure_texts))
    return lines
