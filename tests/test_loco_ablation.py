"""benchmarks/loco_ablation.py: the classifier-only ablations over cached fold matrices (tiny synthetic folds)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[1]
# Loaded from its file, not by putting benchmarks/ on sys.path (benchmarks/distributed.py would shadow a package).
_spec = importlib.util.spec_from_file_location("loco_ablation", REPO / "benchmarks" / "loco_ablation.py")
loco_ablation = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(loco_ablation)

NAMES = ["url_length", "host_ngram_score", "path_ngram_score"]


def write_fold(path: Path, seed: int, flip: bool = False) -> None:
    """A fold whose label follows the path n-gram score (reversed on the evaluation rows when ``flip``)."""
    rng = np.random.default_rng(seed)
    x_train, x_eval = rng.normal(size=(400, 3)), rng.normal(size=(200, 3))
    y_train = (x_train[:, 2] > 0).astype(int)
    y_eval = (x_eval[:, 2] < 0 if flip else x_eval[:, 2] > 0).astype(int)
    np.savez(path, names=np.array(NAMES), x_train=x_train, y_train=y_train, x_eval=x_eval, y_eval=y_eval,
             source_train=np.where(np.arange(400) < 300, "a", "b"), group_train=np.arange(400).astype(str))


INPUTS = {"prepared_sha256": "0" * 64, "params": {"seed": 42}}


def write_manifest(cache: Path) -> None:
    folds = {path.stem: file_sha256(path) for path in cache.glob("*.npz")}
    (cache / "manifest.json").write_text(json.dumps({"inputs": INPUTS, "folds": folds}))


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, cache: Path, *args: str,
        folds: str = "") -> str:
    """What the script prints, or the message it exits with."""
    # no prepared table needed
    monkeypatch.setattr(loco_ablation, "cache_inputs", lambda params, variant="recipe": INPUTS)
    monkeypatch.setattr(sys, "argv", ["loco_ablation.py", "--cache", str(cache), "--jobs", "1", "--folds", folds,
                                      "run", *args])
    try:
        loco_ablation.main()
    except SystemExit as exc:
        return str(exc)
    return capsys.readouterr().out


def test_run_prints_each_fold_and_the_worst_left_out_collection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture) -> None:
    write_fold(tmp_path / "web_page_phishing.npz", 0)
    write_fold(tmp_path / "jpcert_2019_2025.npz", 1, flip=True)
    write_fold(tmp_path / "forward.npz", 2)
    write_manifest(tmp_path)
    line = run(monkeypatch, capsys, tmp_path, "baseline").strip()
    figures = {name: float(value.split("/")[0]) for name, value in
               (part.split() for part in line.split("| ")[1].split("  "))}
    assert set(figures) == {"web_page_phishing", "jpcert_2019_2025", "forward"}
    assert figures["web_page_phishing"] > 0.9 and figures["jpcert_2019_2025"] < 0.1  # the flipped fold ranks backwards
    assert line.startswith(f"baseline: min {figures['jpcert_2019_2025']:.4f}")  # forward is not a left-out collection
    # without the feature that carries the label, nothing is left to rank by
    blind = run(monkeypatch, capsys, tmp_path, "blind", "--drop", "path_ngram_score", folds="web_page_phishing")
    assert blind.startswith("blind: min ")
    assert 0.3 < float(blind.split("web_page_phishing ")[1].split("/")[0]) < 0.7


def test_bad_requests_are_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture) -> None:
    assert "cache` first" in run(monkeypatch, capsys, tmp_path, "x")  # nothing cached
    write_fold(tmp_path / "forward.npz", 0)
    write_manifest(tmp_path)
    assert "names no feature" in run(monkeypatch, capsys, tmp_path, "x", "--drop", "no_such_feature")
    assert "key=value" in run(monkeypatch, capsys, tmp_path, "x", "--set", "extra_trees")
    assert "at least 1" in run(monkeypatch, capsys, tmp_path, "x", "--bag", "0")
    assert "none of the folds" in run(monkeypatch, capsys, tmp_path, "x", folds="ebbu2017")


def test_ngram_c_changes_the_featurizer_settings_the_cache_is_made_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture) -> None:
    write_fold(tmp_path / "forward.npz", 0)
    write_manifest(tmp_path)
    seen = []
    monkeypatch.setattr(loco_ablation, "cache_inputs", lambda params, variant="recipe": seen.append(
        params["featurizer"]["C"]) or INPUTS)
    for value in ("3", "0"):
        monkeypatch.setattr(sys, "argv", ["loco_ablation.py", "--cache", str(tmp_path), "--jobs", "1", "--ngram-c",
                                          value, "run", "x"])
        try:
            loco_ablation.main()
        except SystemExit as exc:
            assert value == "0" and "must be positive" in str(exc)
    assert seen == [3.0] and capsys.readouterr().out.startswith("x: forward ")


def test_ngram_lengths_and_buckets_replace_the_featurizer_settings_or_are_refused() -> None:
    assert loco_ablation.featurizer_overrides(None, "3,6", 1 << 22) == {"ngram_range": [3, 6], "n_features": 1 << 22}
    assert loco_ablation.featurizer_overrides(2.0, None, None) == {"C": 2.0}
    assert loco_ablation.featurizer_overrides(None, None, None) == {}
    for lengths, buckets, message in (("6,3", None, "LO <= HI"), ("3", None, "LO,HI"), ("0,2", None, "LO <= HI"),
                                      (None, 3000, "power of two"), (None, 1, "power of two")):
        with pytest.raises(SystemExit, match=message):
            loco_ablation.featurizer_overrides(None, lengths, buckets)


def test_a_changed_fold_file_or_a_stale_cache_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture) -> None:
    write_fold(tmp_path / "forward.npz", 0)
    write_manifest(tmp_path)
    assert run(monkeypatch, capsys, tmp_path, "x").startswith("x: forward ")
    write_fold(tmp_path / "forward.npz", 1)  # another fold under the same name
    assert "does not match the SHA-256" in run(monkeypatch, capsys, tmp_path, "x")
    write_manifest(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "inputs": {**INPUTS, "prepared_sha256": "1" * 64}}))
    assert "other data or parameters" in run(monkeypatch, capsys, tmp_path, "x")


def test_row_weights_give_each_cell_the_same_total_and_keep_class_totals() -> None:
    y = np.array([0, 0, 0, 1, 1, 0])
    sources = np.array(["a", "a", "a", "a", "b", "b"])
    groups = np.array(["g1", "g1", "g2", "g3", "g4", "g5"])
    cell = loco_ablation.row_weights("cell", y, sources, groups)
    assert cell[:3].sum() == pytest.approx(cell[5])  # (a, legitimate) and (b, legitimate) weigh the same
    assert cell[y == 0].sum() == pytest.approx(4) and cell[y == 1].sum() == pytest.approx(2)
    domain = loco_ablation.row_weights("domain", y, sources, groups)
    assert domain[0] == pytest.approx(domain[1]) and domain[0] * 2 == pytest.approx(domain[2])
    assert loco_ablation.row_weights("none", y, sources, groups) is None
    root = np.array([True, True, False, False, True, False])  # legitimate 2 of 4, phishing 1 of 2: pooled 1 of 2
    weighed = loco_ablation.row_weights("root-pages", y, sources, groups, root)
    assert weighed[y == 0].sum() == pytest.approx(4) and weighed[(y == 0) & root].sum() == pytest.approx(2)
    with pytest.raises(ValueError, match="path_depth"):
        loco_ablation.row_weights("root-pages", y, sources, groups)
    with pytest.raises(ValueError, match="unknown weighting"):
        loco_ablation.row_weights("collection", y, sources, groups)


def test_the_split_host_spans_are_the_registered_domain_and_the_subdomain_before_it() -> None:
    from cybersentinel.features.lexical import ParsedUrls

    urls = ["http://a.b.example.co.uk/x", "https://www.example.com/", "http://10.0.0.1/login", "http://shop.example"]
    parsed = ParsedUrls(pd.DataFrame({"url": urls}))
    (reg_start, reg_end), (sub_start, sub_end) = loco_ablation.registered_and_subdomain_spans(parsed)
    text = [bytes(parsed.data[a:b]).decode() for a, b in zip(reg_start, reg_end, strict=True)]
    sub = [bytes(parsed.data[a:b]).decode() for a, b in zip(sub_start, sub_end, strict=True)]
    assert text == ["example.co.uk", "example.com", "10.0.0.1", "shop.example"]  # no public suffix: the host
    assert sub == ["a.b", "", "", ""]


def test_the_host_less_suffix_spans_cut_the_public_suffix_only() -> None:
    from cybersentinel.features.lexical import ParsedUrls

    urls = ["http://a.b.example.co.uk/x", "https://www.example.com/", "http://10.0.0.1/login", "http://shop.example",
            "http://co.uk/"]
    parsed = ParsedUrls(pd.DataFrame({"url": urls}))
    (starts, ends), (suffix_starts, suffix_ends) = loco_ablation.host_less_suffix_spans(parsed)
    text = [bytes(parsed.data[a:b]).decode() for a, b in zip(starts, ends, strict=True)]
    assert text == ["a.b.example", "example", "10.0.0.1", "shop.example", "co.uk"]
    suffixes = [bytes(parsed.data[a:b]).decode() for a, b in zip(suffix_starts, suffix_ends, strict=True)]
    assert suffixes == ["co.uk", "com", "", "", ""]


def test_shared_buckets_are_those_two_collections_use() -> None:
    matrix = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]], dtype=float))
    assert loco_ablation.shared_buckets(matrix, np.array(["a", "b", "b"])).tolist() == [False, True, False, False]
    assert loco_ablation.shared_buckets(matrix, np.array(["a", "b", "c"])).tolist() == [False, True, True, False]


def test_collection_crossfit_keeps_the_held_out_collections_and_their_sites_out_of_training() -> None:
    sources = np.repeat(["a", "b", "c", "d"], 5)
    domains = np.array([f"site{i % 7}.com" for i in range(20)])
    for by_collection in (True, False):
        splits = loco_ablation.crossfit_splits(2, domains, sources, by_collection)
        assert sorted(np.concatenate([held for _, held in splits]).tolist()) == list(range(20))  # each row once
        for train, held in splits:
            assert not set(domains[train]) & set(domains[held])
            if by_collection:
                assert not set(sources[train]) & set(sources[held])


def test_homepage_rows_leave_out_the_evaluated_sites() -> None:
    train = pd.DataFrame({"url": ["http://x.org/a"], "label": [1], "source": ["s"], "group": ["x.org"], "year": [2020]})
    out = loco_ablation.with_homepages(train, ["a.com", "b.com", "c.com"], {"b.com"}, 5, seed=0)
    assert out["url"].tolist() == ["http://x.org/a", "http://a.com/", "http://c.com/"]
    assert out["label"].tolist() == [1, 0, 0] and out["source"].iloc[1:].eq("tranco_homepages").all()


def test_country_homepage_variants_replace_the_tables_rows() -> None:
    kits = [(f"http://shop{i}.com.br/x/login", f"shop{i}.com.br", 1) for i in range(2)]
    own = [(f"http://kit{i}.cn/", f"kit{i}.cn", 1) for i in range(2)]  # phishers' own names: root pages
    legit = [(f"http://site{i}.com/", f"site{i}.com", 0) for i in range(4)] + [("http://old.pl/", "old.pl", 0)]
    rows = kits + own + legit
    train = pd.DataFrame({"url": [r[0] for r in rows], "group": [r[1] for r in rows], "label": [r[2] for r in rows],
                          "source": ["s"] * (len(rows) - 1) + ["country_homepages"]})
    listed = ["a.com.br", "b.com.br", "c.com.br", "held.com.br", "a.cn", "b.cn", "big.com"]

    def added(variant: str) -> dict[str, int]:
        out = loco_ablation.with_country_homepages(train, listed, {"held.com.br"}, 0, variant)
        assert "old.pl" not in set(out["group"])  # the table's own country homepages always go
        assert "held.com.br" not in set(out["group"])  # nor does an evaluated site come in
        return Counter(site.split(".", 1)[1] for site in out.loc[out["source"] == "country_homepages", "group"])

    assert added("no-country-homepages") == {}
    # 4 legitimate rows per 4 phishing: each ending's 2 phishing rows need 2 legitimate ones
    assert added("country-homepages") == {"com.br": 2, "cn": 2}
    assert added("country-kits") == {"com.br": 2}  # .cn's phishing rows are root pages
    # by the list's shares of the 4 legitimate rows: .com.br 4 of 7 listed sites (2), .cn 2 of 7 (1)
    assert added("country-share") == {"com.br": 2, "cn": 1}


@pytest.mark.parametrize("variant", ["split-host", "collection-crossfit", "shared-ngrams", "host-less-suffix",
                                     "suffix-apart"])
def test_variant_featurizers_fit_and_score_like_the_recipe(variant: str) -> None:
    rng = np.random.default_rng(0)
    words = ["login", "verify", "account", "news", "about", "shop", "blog", "secure", "docs", "help"]
    urls, labels, sources = [], [], []
    for i in range(240):
        label = i % 2
        word = words[rng.integers(5) + (0 if label else 5)]
        urls.append(f"http://{'www' if label == 0 else word}.site{i}.{['com', 'net', 'org'][i % 3]}/{word}/{i}")
        labels.append(label)
        sources.append("abc"[i % 3])
    frame = pd.DataFrame({"url": urls, "source": sources})
    featurizer = loco_ablation.variant_featurizer(variant, {"ngram_range": [3, 5], "n_features": 2**12, "C": 1.0,
                                                            "cv": 2})
    x_train = featurizer.fit_transform(frame, np.array(labels))
    names = featurizer.get_feature_names_out().tolist()
    x_eval = featurizer.transform(frame)
    assert x_train.shape == x_eval.shape == (240, len(names))
    assert names[-2:] == {"split-host": ["reg_ngram_score", "sub_ngram_score"],
                          "suffix-apart": ["path_ngram_score", "suffix_ngram_score"]}.get(
        variant, ["host_ngram_score", "path_ngram_score"])
    path_score = x_eval[:, names.index("path_ngram_score")]
    assert path_score[1::2].mean() > path_score[::2].mean()  # the phishing words score higher
    if variant == "shared-ngrams":  # a bucket only one collection's rows use keeps weight 0
        matrix = featurizer.ngram_matrix(*_rest_of(featurizer, frame))
        alone = ~loco_ablation.shared_buckets(matrix, np.array(sources))
        assert not featurizer.scorers_[1].coef_[0][alone].any()
    with pytest.raises(ValueError, match="unknown featurizer variant"):
        loco_ablation.variant_featurizer("recipe", {})


def _rest_of(featurizer, frame: pd.DataFrame) -> tuple:
    from cybersentinel.features.lexical import ParsedUrls

    parsed = ParsedUrls(frame[["url"]])
    return (parsed, *parsed.rest_spans())


def test_path_segments_are_the_parts_between_separators_long_enough_to_score() -> None:
    data = np.frombuffer(b"/a/bcd/efgh?x=1&file=abc.pdf", dtype=np.uint8)
    starts, ends, rows = loco_ablation.path_segments(data, np.array([0, 6]), np.array([len(data), 11]), 3)
    parts = [bytes(data[s:e]) for s, e in zip(starts, ends, strict=True)]
    assert parts == [b"bcd", b"efgh", b"x=1", b"file=abc.pdf", b"efgh"] and rows.tolist() == [0, 0, 0, 0, 1]


def test_the_path_segments_variant_adds_the_best_and_worst_part_to_the_recipes_features() -> None:
    from cybersentinel.features.featurizer import UrlFeaturizer

    rng = np.random.default_rng(0)
    harmless = ["news", "about", "shop", "blog", "docs"]
    urls, labels = [], []
    for i in range(240):
        label = i % 2
        # a phishing row hides its kit word among harmless parts: the whole path's score is diluted, a part's not
        parts = [harmless[rng.integers(5)] for _ in range(3)] + (["verifylogin"] if label else [])
        urls.append(f"http://site{i}.com/{'/'.join(rng.permutation(parts))}?ref={i}")
        labels.append(label)
    frame = pd.DataFrame({"url": urls})
    recipe = UrlFeaturizer(ngram_range=(3, 5), n_features=2**12, cv=2)
    featurizer = loco_ablation.with_path_segments(recipe)
    x_train = featurizer.fit_transform(frame, np.array(labels))
    x_eval = featurizer.transform(frame)
    names = featurizer.get_feature_names_out().tolist()
    assert names == [*recipe.fit(frame, np.array(labels)).get_feature_names_out(), "path_segment_max",
                     "path_segment_min"]
    assert x_train.shape == x_eval.shape == (240, len(names))
    np.testing.assert_allclose(x_eval[:, :-2], recipe.transform(frame), rtol=1e-6)  # the recipe's own, unchanged
    top, bottom = x_eval[:, -2], x_eval[:, -1]
    assert (top >= bottom).all() and top[1::2].min() > top[::2].max()  # the kit's part scores alone
    assert (x_train[:, -2] != x_eval[:, -2]).any()  # training rows get out-of-fold scores


def test_the_pathful_rows_variant_fits_the_path_scorer_without_the_homepages() -> None:
    from cybersentinel.features.featurizer import UrlFeaturizer

    # legitimate homepages and phishing pages with a path, plus legitimate pages with one: the recipe's path scorer
    # learns that a path itself is phishing (a shared n-gram weighs towards it); fitted on the rows with a path, not
    urls = [f"http://home{i}.com/" for i in range(200)]
    urls += [f"http://kit{i}.net/docs/page{i % 7}/verify.html" for i in range(100)]
    urls += [f"http://shop{i}.org/docs/page{i % 7}/index.html" for i in range(100)]
    labels = np.array([0] * 200 + [1] * 100 + [0] * 100)
    frame = pd.DataFrame({"url": urls})
    recipe = UrlFeaturizer(ngram_range=(3, 5), n_features=2**12, cv=2).fit(frame, labels)
    pathful = loco_ablation.with_pathful_rows(recipe).fit(frame, labels)
    names = pathful.get_feature_names_out().tolist()
    assert names == recipe.get_feature_names_out().tolist()
    path = names.index("path_ngram_score")
    recipe_scores, pathful_scores = recipe.transform(frame)[:, path], pathful.transform(frame)[:, path]
    # a path both classes use ("/docs/page") scores above a homepage in the recipe, not once the homepages are out
    shared = pd.DataFrame({"url": ["http://new.com/docs/page3/", "http://new.com/"]})
    recipe_rise, pathful_rise = (np.diff(f.transform(shared)[::-1, path])[0] for f in (recipe, pathful))
    assert recipe_rise > 0.5 and abs(pathful_rise) < 0.1, (recipe_rise, pathful_rise)
    # a homepage scores the scorer's intercept; both still rank the kit above the shop's pages
    assert pathful_scores[0] == pytest.approx(pathful.scorers_[1].intercept_[0])
    for scores in (recipe_scores, pathful_scores):
        assert scores[200:300].min() > scores[300:].max()
    host = names.index("host_ngram_score")  # every host has n-grams: the host scorer is the recipe's
    np.testing.assert_allclose(pathful.transform(frame)[:, host], recipe.transform(frame)[:, host], rtol=1e-5)
    apart = loco_ablation.with_pathful_rows(recipe, pathless_missing=True)
    x_train = apart.fit_transform(frame, labels)
    for x in (x_train, apart.transform(frame)):  # the homepages' path score missing, every other value kept
        assert np.isnan(x[:200, path]).all() and not np.isnan(np.delete(x, np.s_[:200], axis=0)).any()
    np.testing.assert_allclose(apart.transform(frame)[200:], pathful.transform(frame)[200:], rtol=1e-6)


def test_the_probe_report_counts_each_lists_urls_over_the_budgets_threshold(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x_train, x_eval = rng.normal(size=(600, 3)), rng.normal(size=(400, 3))
    probe_legitimate = np.array([[0.0, 0.0, -2.0], [0.0, 0.0, 3.0]])  # the second scores like phishing
    probe_phishing = np.array([[0.0, 0.0, 3.0], [0.0, 0.0, 2.5], [0.0, 0.0, -3.0]])  # the third like a site
    np.savez(tmp_path / "in_distribution.npz", names=np.array(NAMES), x_train=x_train,
             y_train=(x_train[:, 2] > 0).astype(int), x_eval=x_eval, y_eval=(x_eval[:, 2] > 0).astype(int),
             probe_url_sanity_legitimate=np.array(["https://ok.example/", "http://odd.example/"]),
             probe_x_sanity_legitimate=probe_legitimate, probe_url_sanity_phishing=np.array(["a", "b", "c"]),
             probe_x_sanity_phishing=probe_phishing)
    model = {"name": "lightgbm", "params": {"n_estimators": 20, "min_child_samples": 5}}
    lines = loco_ablation.probe_report(tmp_path / "in_distribution.npz", model, {}, 0.01, seed=0, top=1)
    assert lines[0].startswith("threshold ") and "test recall " in lines[0]
    # of the 6 (legitimate, phishing) pairs, the phishing shape ranks higher in 3.5 (a tie counts half)
    assert lines[1] == "sanity_legitimate: 1 of 2 at or above the threshold, ROC-AUC against the phishing shapes 0.5833"
    assert lines[2].endswith("http://odd.example/")  # the highest legitimate URL first
    assert lines[3] == "sanity_phishing: 2 of 3 at or above the threshold"
    assert lines[4].endswith("  c")  # the lowest phishing shape first
    np.savez(tmp_path / "forward.npz", names=np.array(NAMES), x_train=x_train, y_train=(x_train[:, 2] > 0).astype(int),
             x_eval=x_eval, y_eval=(x_eval[:, 2] > 0).astype(int))
    with pytest.raises(SystemExit, match="holds no probe lists"):
        loco_ablation.probe_report(tmp_path / "forward.npz", model, {}, 0.01, seed=0, top=1)


def test_the_fold_report_shows_the_worst_rows_and_the_share_of_each_class_on_the_popularity_list() -> None:
    rows = pd.DataFrame({
        "url": ["https://bank.example/account/update", "https://blog.example/", "http://kit.test/login",
                "http://kit2.test/verify", "https://news.example/"],
        "label": [0, 0, 1, 1, 0], "source": ["pages", "pages", "phish", "phish", "pages"],
        "group": pd.array(["bank.example", "blog.example", "kit.test", "kit2.test", "news.example"],
                          dtype="string[pyarrow]")})
    scores = np.array([0.99, 0.2, 0.999, 0.5, 0.97])
    popular = ["news.example", *[f"filler{i}.example" for i in range(10_000)], "bank.example"]
    lines = loco_ablation.fold_report(rows, scores, "pages", popular, top=2)
    assert lines[:3] == ["pages: 3 legitimate rows; highest scores:",
                         "  0.9900  https://bank.example/account/update", "  0.9700  https://news.example/"]
    # news.example ranks 1, bank.example 10,002 (on the list, not in its top 10,000), blog.example unlisted
    assert lines[3] == ("legitimate rows of the fold (all): 3, registered domain in the list's top 10,000 33.3%, "
                        "top 10,002 66.7%")
    assert lines[4] == ("legitimate rows of the fold (score > 0.95): 2, registered domain in the list's top 10,000 "
                        "50.0%, top 10,002 100.0%")
    # the phishing rows are the other collections' (none of the held-out collection's own): shares only
    assert lines[5:] == ["phishing rows of the fold (all): 2, registered domain in the list's top 10,000 0.0%, "
                         "top 10,002 0.0%",
                         "phishing rows of the fold (score > 0.99): 1, registered domain in the list's top 10,000 "
                         "0.0%, top 10,002 0.0%"]


def test_hacked_site_homepages_are_the_planted_sites_own_and_never_phishers_names():
    table = pd.DataFrame({
        "url": ["http://church.org/wp-content/plugins/x/login.php",  # a kit in a WordPress site: its home page
                "http://www.firm.com.br/wp-admin/images/bank/",
                "http://www.firm.com.br/wp-includes/js/other/",  # the same host once
                "http://paypal-secure.top/wp-content/a/",  # its root is phishing too: the phishers' name
                "http://kit.appspot.com/wp-content/b/",  # a hosting platform's site: made for the kit
                "http://45.67.89.13/wp-admin/c/",  # an address
                "http://shop.com/login/verify.php",  # not in WordPress's folders
                "http://legit.org/wp-content/uploads/a.jpg",  # legitimate
                "http://known.net/wp-content/k/"],  # its home page is already a row
        "label": [1, 1, 1, 1, 1, 1, 1, 0, 1], "synthetic": False,
        "group": ["church.org", "firm.com.br", "firm.com.br", "paypal-secure.top", "kit.appspot.com", "45.67.89.13",
                  "shop.com", "legit.org", "known.net"]})
    table = pd.concat([table, pd.DataFrame({"url": ["http://known.net/"], "label": [0], "synthetic": [False],
                                            "group": ["known.net"]})], ignore_index=True)
    roots = loco_ablation.phishing_root_sites(
        pd.DataFrame({"url": ["https://paypal-secure.top/", "http://church.org/wp-content/x/"], "label": [1, 1],
                      "group": ["paypal-secure.top", "church.org"]}))

    added = loco_ablation.hacked_site_homepages(table, frozenset(roots))

    assert roots == {"paypal-secure.top"}
    assert added["url"].tolist() == ["http://church.org/", "http://www.firm.com.br/"]
    assert (added["label"] == 0).all() and added["synthetic"].all()
    assert added["group"].tolist() == ["church.org", "firm.com.br"]
