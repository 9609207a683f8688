"""Pure functions that turn a validated table into an honest split: duplicates removed, groups
(registered domain or feature vector) never on both sides, classes stratified, seed fixed."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from cybersentinel.data.folds import CompiledStratifiedGroupKFold
from cybersentinel.url.parsing import normalise, registered_domain, split_host, split_url

# columns that say where a row came from or how it was split, never a feature of a tabular model (`prepare` adds
# year, split and synthetic: numeric or boolean, they had been read as features)
PROVENANCE = ("label", "source", "snapshot", "url", "group", "url_normalised", "date", "year", "split", "synthetic")
COUNTRY_HOMEPAGES = "country_homepages"  # the source of `country_homepages`' rows
KIT_ROOT_SHARE = 1 / 3  # an ending whose phishing rows are root pages more often than this is phishers' own


def feature_columns(frame: pd.DataFrame, dataset: Mapping[str, Any]) -> list[str]:
    """The model's input columns for a tabular dataset (all numeric non-provenance columns by default)."""
    configured = dataset.get("features") or []
    if configured != "all":
        return list(configured)
    return [c for c in frame.columns if c not in PROVENANCE and pd.api.types.is_numeric_dtype(frame[c])]


def feature_vector_key(frame: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """A stable hash of each row's feature values, so identical vectors share one group."""
    joined = frame[list(columns)].astype(str).agg(",".join, axis=1)
    return joined.map(lambda s: hashlib.blake2b(s.encode(), digest_size=8).hexdigest())


def deduplicate(frame: pd.DataFrame, dataset: Mapping[str, Any], authoritative: Collection[str] = (),
                ) -> tuple[pd.DataFrame, dict[str, int]]:
    """Drop repeated rows. Rows with URLs count as repeated after URL normalisation (case, scheme, leading ``www.``,
    trailing ``/``), which also removes the URLs the two raw-URL collections share; rows without URLs
    when features and label repeat. The first occurrence (configured source order) is kept. A row of an
    ``authoritative`` source (analyst feedback) replaces the other sources' rows of its URL, whatever their
    label: a correction is not a conflict. Returns the table and what was removed."""
    out = frame.copy()
    corrected = None
    if "url" in out.columns:
        out["url_normalised"] = out["url"].map(normalise)
        key = ["url_normalised"]
        wins = out["source"].isin(list(authoritative)).to_numpy()
        if wins.any():  # only then: without feedback the table and the counts are exactly as before
            corrected = out["url_normalised"].isin(set(out.loc[wins, "url_normalised"])).to_numpy() & ~wins
            out = out.loc[~corrected].reset_index(drop=True)
    else:
        key = [*feature_columns(out, dataset), "label"]
    conflicting = out.groupby(key, sort=False)["label"].transform("nunique") > 1 if "url" in out.columns else \
        pd.Series(False, index=out.index)  # the same URL listed as phishing and legitimate: trust neither
    duplicated = out.duplicated(subset=key, keep="first") & ~conflicting
    by_source = out.loc[duplicated, "source"].value_counts().to_dict()
    counts = {"rows_in": len(frame), "duplicates_removed": int(duplicated.sum()),
              "conflicting_labels_removed": int(conflicting.sum()),
              **{f"duplicates_removed_{k}": int(v) for k, v in sorted(by_source.items())}}
    if corrected is not None:
        counts["corrected_by_feedback"] = int(corrected.sum())
    out = out.loc[~duplicated & ~conflicting].reset_index(drop=True)
    counts["rows_out"] = len(out)
    return out, counts


def assign_groups(frame: pd.DataFrame, dataset: Mapping[str, Any]) -> pd.Series:
    """The unit that must never straddle train and test."""
    if dataset["group_by"] == "registered_domain":
        return frame["url"].map(registered_domain)
    if dataset["group_by"] == "feature_vector":
        return feature_vector_key(frame, feature_columns(frame, dataset))
    raise ValueError(f"unknown group_by {dataset['group_by']!r}")


def row_years(frame: pd.DataFrame, source_years: Mapping[str, int | None]) -> pd.Series:
    """The year each row was seen: from its ``date`` (ISO text) when it has one, else its collection's year."""
    fallback = frame["source"].map(lambda s: source_years.get(s)).astype("Int64")
    if "date" not in frame.columns:
        return fallback.astype("Int16")
    dated = pd.to_numeric(frame["date"].astype("string").str[:4], errors="coerce").astype("Int64")
    return dated.fillna(fallback).astype("Int16")


def sample_rows(frame: pd.DataFrame, per_group: int | None, per_source_class: int | None, seed: int) -> pd.Series:
    """Boolean mask of the rows kept so that no registered domain, collection or class dominates: at most
    ``per_group`` rows of one group within each (source, label), then at most ``per_source_class`` rows of
    each (source, label), drawn at random (reproducibly). ``None`` keeps everything."""
    order = np.random.default_rng(seed).permutation(len(frame))
    shuffled = frame.iloc[order]
    keep = pd.Series(True, index=shuffled.index)
    if per_group:
        keep &= shuffled.groupby(["source", "label", "group"], sort=False).cumcount() < per_group
    if per_source_class:
        kept = shuffled[keep]
        rank = kept.groupby(["source", "label"], sort=False).cumcount()
        keep[kept.index[rank.to_numpy() >= per_source_class]] = False
    return keep.reindex(frame.index)


def legit_homepages(frame: pd.DataFrame) -> pd.DataFrame:
    """One more legitimate row per legitimate site (collection, registered domain): its homepage, which is as
    legitimate as the deep pages the collection lists. The legitimate collections hold few bare homepages
    while phishing lists hold many, so without these "no path" reads as "phishing" (how the lists were
    assembled, not what the sites are). Rows are marked ``synthetic``: they train, they are never scored."""
    legit = frame[frame["label"] == 0].drop_duplicates(["source", "group"])
    hosts = legit["url"].map(lambda u: split_url(u).host)
    rows = legit.assign(url="http://" + hosts + "/", synthetic=True)[hosts != ""]
    if "date" in rows.columns:
        rows["date"] = None
    known = set(frame["url"].map(normalise))
    return rows[~rows["url"].map(normalise).isin(known)].reset_index(drop=True)


def country_homepages(frame: pd.DataFrame, popular_sites: Sequence[str], seed: int) -> pd.DataFrame:
    """Legitimate training rows for the country endings the collections' legitimate side leaves out.

    The phishing lists are full of small sites broken into in some countries (``.com.br``, ``.pl``, ``.cl``:
    the kit sits in a path below an ordinary home page), while the legitimate collections are mostly sites in
    English; so a host n-gram score learns "a Brazilian site is phishing". For each country-code public suffix
    (its last label two letters) whose phishing training rows are mostly pages below the root, this adds
    homepages (``http://<site>/``) of ``popular_sites`` with that suffix, not already in ``frame``, as legitimate
    rows until the ending's share of the legitimate training rows reaches its share of the phishing ones (or the
    list runs out). An ending whose phishing rows are mostly root pages
    (``.cn``, ``.cc``: names phishers registered) gets none: there the ending is the phishers' choice, and a
    homepage is what their phishing looks like. Picked at random with ``seed``; marked ``synthetic`` (they
    train, they are never scored) and without a year (the list is today's, not what was known in the past)."""
    train = frame[frame["split"] == "train"]
    label = train["label"].to_numpy()
    ending = np.asarray([split_host(group)[2] for group in train["group"]], dtype=object)
    root = np.asarray([split_url(url).path.strip("/") == "" for url in train["url"]])
    legit_per_phishing = (label == 0).sum() / max(1, (label == 1).sum())
    known = set(frame["group"])
    candidates: dict[str, list[str]] = {}
    for site in popular_sites:
        if site not in known:
            candidates.setdefault(split_host(site)[2], []).append(site)
    rng = np.random.default_rng(seed)
    picked: list[str] = []
    for suffix in sorted(candidates):
        country = suffix.rsplit(".", 1)[-1]
        phishing = (ending == suffix) & (label == 1)
        if len(country) != 2 or not country.isalpha() or not phishing.any() or root[phishing].mean() > KIT_ROOT_SHARE:
            continue
        need = round(phishing.sum() * legit_per_phishing) - int(((ending == suffix) & (label == 0)).sum())
        sites = candidates[suffix]
        if need > 0:
            picked += [sites[i] for i in np.sort(rng.choice(len(sites), min(need, len(sites)), replace=False))]
    rows = pd.DataFrame({"url": [f"http://{site}/" for site in picked], "label": 0, "source": COUNTRY_HOMEPAGES,
                         "group": picked, "split": "train", "synthetic": True})
    return rows.reindex(columns=frame.columns).astype({"label": frame["label"].dtype, "synthetic": bool})


def grouped_split(labels: pd.Series, groups: pd.Series, test_size: float, seed: int) -> np.ndarray:
    """Boolean mask of test rows: stratified by label, whole groups on one side, reproducible."""
    n_splits = max(2, round(1 / test_size))
    splitter = CompiledStratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    _, test_idx = next(splitter.split(np.zeros(len(labels)), labels.to_numpy(), groups.to_numpy()))
    mask = np.zeros(len(labels), dtype=bool)
    mask[test_idx] = True
    return mask
