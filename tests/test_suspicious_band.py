"""benchmarks/suspicious_band.py: the shares each band's verdicts give, and the summary's worst and mean."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("suspicious_band", REPO / "benchmarks" / "suspicious_band.py")
suspicious_band = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(suspicious_band)


def test_band_shares_count_each_class_warned_and_malicious_and_an_error_as_neither():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    verdicts = np.array(["malicious", "suspicious", "benign", "", "benign", "suspicious", "malicious", "benign"])
    assert suspicious_band.band_shares(y, verdicts) == {"recall": 0.25, "warned_recall": 0.5, "fpr": 0.25,
                                                        "warned_fpr": 0.5}
    assert suspicious_band.band_shares(y[:4], verdicts[:4]) == {"recall": 0.25, "warned_recall": 0.5}


def test_summary_takes_the_worst_legitimate_share_over_held_out_collections_only():
    results = {"a": {0.1: {"recall": 0.4, "warned_recall": 0.6, "fpr": 0.001, "warned_fpr": 0.02}},
               "b": {0.1: {"fpr": 0.002, "warned_fpr": 0.03}},
               "forward": {0.1: {"recall": 0.2, "warned_recall": 0.5, "fpr": 0.0, "warned_fpr": 0.09}}}
    lines = suspicious_band.summary(results, [0.1])
    assert len(lines) == 1 + len(results) + 1
    assert lines[2].startswith("b") and "-" in lines[2] and "3.00% (0.20%)" in lines[2]
    assert lines[-1] == ("band 0.1: worst held-out legitimate at least suspicious 3.00% (malicious 0.20%); "
                         "mean phishing at least suspicious 0.550 (malicious 0.300)")


@pytest.mark.parametrize("bands", ["", "0.1,1.5", "-0.1"])
def test_bands_out_of_range_are_refused(bands, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["suspicious_band.py", "--bands", bands])
    with pytest.raises(SystemExit) as stopped:
        suspicious_band.main()
    assert stopped.value.code == 2 and "--bands" in capsys.readouterr().err
