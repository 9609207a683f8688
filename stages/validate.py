"""Validate: check each ingested table against its schema, account for duplicates, label conflicts,
class balance, overlaps and URL sanity, and write the validated table plus a JSON report."""

import argparse
import sys
from pathlib import Path

import pandas as pd

from cybersentinel.core.config import dataset_sources, is_feedback
from cybersentinel.core.files import read_params, write_json, write_parquet
from cybersentinel.data.validation import DataValidationError, quality_report, validate_table
from cybersentinel.tracking.runs import stage_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--raw", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="validated table (parquet)")
    parser.add_argument("--report", type=Path, required=True)
    args = parser.parse_args()
    params = read_params()
    dataset = params["dataset"]
    with stage_run("validate", params["mlflow"]["experiment"], {"dataset": dataset["name"]}) as tracker:
        tables = [pd.read_parquet(args.raw / f"{s['name']}.parquet") for s in dataset_sources(dataset)
                  if not is_feedback(s) or (args.raw / f"{s['name']}.parquet").is_file()]  # no feedback yet
        try:
            tables = [validate_table(t, dataset) for t in tables]
        except DataValidationError as exc:
            sys.exit(f"validation failed:\n{exc}")
        table = pd.concat(tables, ignore_index=True)
        report = quality_report(table, dataset)
        write_parquet(args.out, table)
        write_json(args.report, report)
        tracker.metrics({k: v for k, v in report.items() if isinstance(v, int | float)}, prefix="data.")
        tracker.artifact(str(args.report))
    print(f"{dataset['name']}: {report['rows']:,} rows valid; {report['normalised_duplicates']:,} duplicates, "
          f"{report['conflicting_label_keys']:,} conflicting keys, {report['positive_share']:.1%} phishing")


if __name__ == "__main__":
    main()
