"""Prepare: remove duplicates (URLs after normalisation, across collections; a URL listed with both labels is
dropped), group rows by registered domain (or feature vector), sample so that no registered domain,
collection or class dominates, and mark the grouped, stratified test split. Featurize and the
generalisation study both start from this table. Training-only rows are added: each legitimate site's homepage, and
popular sites' homepages of the country endings whose hacked sites fill the phishing lists (the pinned popularity
list's, `country_homepages`)."""

import argparse
from pathlib import Path

import pandas as pd

from cybersentinel.core.config import dataset_sources, feedback_source_names
from cybersentinel.core.files import read_params, write_json, write_parquet
from cybersentinel.data.prepare import (
    COUNTRY_HOMEPAGES,
    assign_groups,
    country_homepages,
    deduplicate,
    grouped_split,
    legit_homepages,
    row_years,
    sample_rows,
)
from cybersentinel.intel.popular import read_popular_sites
from cybersentinel.tracking.runs import stage_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--validated", type=Path, required=True)
    parser.add_argument("--intel", type=Path, required=True, help="pinned feed snapshot: its popularity list")
    parser.add_argument("--out", type=Path, required=True, help="the prepared table (parquet)")
    parser.add_argument("--report", type=Path, required=True)
    args = parser.parse_args()
    params = read_params()
    dataset, seed, sample = params["dataset"], params["seed"], params["sample"]
    with stage_run("prepare", params["mlflow"]["experiment"], {"dataset": dataset["name"]}) as tracker:
        table, counts = deduplicate(pd.read_parquet(args.validated), dataset, feedback_source_names(dataset))
        table["group"] = assign_groups(table, dataset)
        table["year"] = row_years(table, {s["name"]: s.get("year") for s in dataset_sources(dataset)})
        kept = sample_rows(table, sample["per_group"], sample["per_source_class"], seed)
        table = table[kept.to_numpy()].reset_index(drop=True)
        table["split"] = "train"
        table.loc[grouped_split(table["label"], table["group"], params["split"]["test_size"], seed), "split"] = "test"
        table["synthetic"] = False
        if sample["legit_homepages"] and dataset["kind"] == "url":
            table = pd.concat([table, legit_homepages(table)], ignore_index=True)
        if sample["country_homepages"] and dataset["kind"] == "url":
            popular = list(read_popular_sites(args.intel / "tranco_top100k.csv", sample["country_homepages"]))
            table = pd.concat([table, country_homepages(table, popular, seed)], ignore_index=True)
        write_parquet(args.out, table.drop(columns=["url_normalised", "snapshot"], errors="ignore"))
        by = table.groupby(["source", "label"]).size()
        report = {**counts, "sampled_rows": len(table), "sampled_out": int((~kept).sum()),
                  "synthetic_homepages": int(table["synthetic"].sum()),
                  "country_homepages": int((table["source"] == COUNTRY_HOMEPAGES).sum()),
                  "test_rows": int((table["split"] == "test").sum()),
                  "groups": int(table["group"].nunique()),
                  "rows_by_source": {f"{s}/{'phishing' if y else 'legitimate'}": int(n) for (s, y), n in by.items()}}
        write_json(args.report, report)
        tracker.metrics({k: v for k, v in report.items() if isinstance(v, int | float)}, prefix="prepare.")
    print(f"{len(table):,} rows kept of {counts['rows_out']:,} distinct ({counts['duplicates_removed']:,} "
          f"duplicates and {counts['conflicting_labels_removed']:,} with both labels removed; "
          f"{report['groups']:,} registered domains)")


if __name__ == "__main__":
    main()
