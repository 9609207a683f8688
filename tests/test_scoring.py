"""The detector: its compiled form (tree kernels, calibration maps, n-gram weights as arrays) reproduces
LightGBM and scikit-learn's calibrated probabilities and loads without scikit-learn, reasons explain
flagged rows in plain words, unusable rows get an error."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from fixtures_model import mirror_dir, model_dir  # noqa: F401

from cybersentinel.core.files import ModelIntegrityError, load_manifest
from cybersentinel.features.lexical import FEATURE_DESCRIPTIONS, LOW_VALUE_DESCRIPTIONS, ParsedUrls
from cybersentinel.model.compiled import UrlScorer
from cybersentinel.model.estimators import load_detector
from cybersentinel.scoring.decider import Decider
from cybersentinel.scoring.detector import HOST_NAME_FEATURES, Detector
from cybersentinel.url.parsing import browser_url


@pytest.fixture(scope="module")
def detector(model_dir) -> Detector:  # noqa: F811
    return Detector.from_dir(model_dir)


@pytest.fixture(scope="module")
def pipeline(model_dir):  # noqa: F811
    return load_detector(model_dir)[0]


@pytest.fixture(scope="module")
def urls() -> list[str]:
    import json

    mirror = mirror_dir()
    legit = json.loads((mirror / "data_legitimate_36400.json").read_text())
    phish = json.loads((mirror / "data_phishing_37175.json").read_text())
    rng = np.random.default_rng(1)
    return [*rng.choice(legit, 1500).tolist(), *rng.choice(phish, 1500).tolist()]


def test_compiled_scorer_reproduces_the_evaluated_model(detector, pipeline, urls, model_dir):  # noqa: F811
    assert detector.model is None and detector.scorer is not None  # served from the compiled file alone
    X = pipeline.named_steps["features"].transform(pd.DataFrame({"url": urls}))
    np.testing.assert_array_equal(detector.scorer.features(ParsedUrls(urls)), X)
    folds = pipeline.named_steps["classifier"].calibrated_classifiers_
    for (trees, _), fold in zip(detector.scorer.folds, folds, strict=True):
        booster = getattr(fold.estimator, "estimator", fold.estimator).booster_
        raw, contrib = trees.predict(X)
        np.testing.assert_array_equal(raw, booster.predict(X, raw_score=True))  # LightGBM's own sum, bit for bit
        np.testing.assert_allclose(contrib.sum(axis=1), raw, atol=1e-3)  # path contributions add up to the score
    scored = detector.score_urls(urls)
    expected = pipeline.predict_proba(pd.DataFrame({"url": urls}))[:, 1]
    assert detector.scorer.max_difference(urls, expected) <= 1e-9
    # the service scores each URL as a browser requests it (`browser_url`: prose's "." after a link taken off)
    expected = pipeline.predict_proba(pd.DataFrame({"url": [browser_url(url) for url in urls]}))[:, 1]
    np.testing.assert_allclose(scored["model_score"].to_numpy(), expected, atol=1e-6)  # rounded to 6 places
    plain = scored["reasons"].eq("") | (scored["verdict"] != "benign") & ~scored["reasons"].str.contains("`")
    plain &= ~scored["reasons"].str.startswith(("public IP address", "private", "loopback", "reserved"))
    np.testing.assert_allclose(scored.loc[plain, "score"], expected[plain.to_numpy()], atol=1e-6)
    assert (scored["error"] == "").all()
    in_memory = Detector(pipeline, load_manifest(model_dir))  # compiled on load, as for a registry model
    assert in_memory.scorer is not None
    pd.testing.assert_frame_equal(in_memory.score_urls(urls), scored)


def test_reasons_explain_flagged_rows_in_plain_words(detector, urls):
    scored = detector.score_urls(urls)
    phrases = set(FEATURE_DESCRIPTIONS.values()) | set(LOW_VALUE_DESCRIPTIONS.values())
    flagged = scored["verdict"] != "benign"
    # a benign row carries no model reasons; at most the policy's (a bare address is not judged by the model, a
    # page asset's score counts less)
    benign = scored.loc[~flagged, "reasons"]
    policy = benign.isin(["", "public IP address, no feeds loaded to check it"]) | \
        benign.str.fullmatch(r"a page asset \([^)]*\): the model judges pages, so its score counts [0-9.]+ and at most "
                             r"suspicious")
    assert policy.all(), benign[~policy].head().tolist()
    assert (scored.loc[flagged, "reasons"] != "").mean() > 0.9
    for text in scored.loc[flagged, "reasons"].unique():
        parts = [p for p in text.split("; ") if p and "`" not in p]  # a policy rule names what it saw in `...`
        assert len(parts) <= 3 and set(parts) <= phrases


def test_verdicts_follow_threshold_and_band(detector):
    t, low = detector.threshold, detector.suspicious_from
    verdicts = detector.policy.verdicts(np.array([t, (t + low) / 2, low - 1e-3]))
    assert list(verdicts) == ["malicious", "suspicious", "benign"]


def test_another_band_keeps_the_lists_pinned_with_the_model(detector):
    # `predict --band` had dropped them: a stock WordPress file and a resolver's address were then judged as
    # any page of a small site
    banded = detector.with_band(0.3)
    assert banded.suspicious_from < detector.suspicious_from and banded.threshold == detector.threshold
    assert (banded.popularity, banded.known_paths, banded.resolvers) == \
        (detector.popularity, detector.known_paths, detector.resolvers)
    urls = ["http://kjhdsf-blog.xyz/wp-login.php", "https://8.8.8.8/resolve?name=example.com"]
    assert banded.score_values(urls)["reasons"].to_pylist() == detector.score_values(urls)["reasons"].to_pylist()


def test_a_redirectors_link_is_judged_as_the_page_it_leads_to(detector):
    # a phishing mail's link through Outlook's Safe Links or Google's redirector was judged as the redirector's
    # popular site (halved, `benign`); the page it leads to is what the reader reaches
    pages = ["http://kjhdsf-blog.xyz/paypal/signin/verify.php", "https://www.bbc.co.uk/news"]
    links = ["https://eur01.safelinks.protection.outlook.com/?url=http%3A%2F%2Fkjhdsf-blog.xyz%2Fpaypal%2Fsignin"
             "%2Fverify.php&data=04", "https://www.google.com/url?sa=t&q=https://www.bbc.co.uk/news&usg=x"]
    for scored in (detector.score_values(pages + links).to_pandas(),  # the batch path and the few-rows path
                   pd.DataFrame(detector.score_records(pages + links))):
        judged, wrapped = scored.iloc[:2], scored.iloc[2:]
        assert wrapped["model_score"].tolist() == judged["model_score"].tolist()
        assert wrapped["verdict"].tolist() == judged["verdict"].tolist()
        assert wrapped["reasons"].str.startswith("a link through `").all()
        assert wrapped["reasons"].iloc[0].startswith(
            "a link through `eur01.safelinks.protection.outlook.com` to `kjhdsf-blog.xyz`: judged as that page")


def test_unusable_rows_get_an_error_not_a_score(detector):
    values = ["", "   ", "x" * 70_000, "http://", "bad host/x", "http://ok.example.com/", None, b"\xff\xfe"]
    scored = detector.score_urls(values)
    assert len(scored) == len(values)
    assert list(scored["error"].str.split(" ").str[0]) == ["empty", "empty", "URL", "no", "host", "", "empty", "host"]
    assert scored.loc[scored["error"] != "", "score"].isna().all()
    assert scored.loc[5, "verdict"] in ("benign", "suspicious", "malicious")


def test_interleaved_kernel_matches_the_general_walk_and_lightgbm_on_odd_inputs(detector, pipeline, urls):
    from cybersentinel.model.compiled import _walk

    trees = detector.scorer.folds[0][0]
    assert trees.compact is not None  # no split of this model routes missing values
    X = pipeline.named_steps["features"].transform(pd.DataFrame({"url": urls[:203]}))  # not a multiple of 8
    X[::7, ::5] = np.nan
    X[1::11, 2] = np.inf
    raw, contrib = trees.predict(X)
    raw_general, contrib_general = _walk(X, trees.roots, trees.feature, trees.threshold, trees.left, trees.right,
                                         trees.value, trees.default_left, trees.missing, True)
    folds = pipeline.named_steps["classifier"].calibrated_classifiers_
    booster = getattr(folds[0].estimator, "estimator", folds[0].estimator).booster_
    np.testing.assert_array_equal(raw, raw_general)
    np.testing.assert_array_equal(raw, booster.predict(X, raw_score=True))
    np.testing.assert_allclose(contrib, contrib_general, atol=1e-4)
    for i in range(40):  # one row at a time (a request's): eight trees at once, the same sums in the same order
        one_raw, one_contrib = trees.predict(X[i:i + 1])
        assert one_raw.tobytes() == raw[i:i + 1].tobytes() and one_contrib.tobytes() == contrib[i:i + 1].tobytes()


@pytest.mark.parametrize("n_trees", [1, 5, 8, 13, 17])
def test_interleaved_kernel_walks_any_number_of_trees(detector, pipeline, urls, n_trees):
    """A request's rows walk eight trees at once, the last group fewer than eight; a batch's rows go eight at a
    time: the first ``n_trees`` trees give the general walk's sums, leaves and contributions on either path."""
    from cybersentinel.model.compiled import _walk, _walk8

    trees = detector.scorer.folds[0][0]
    roots, depth, *arrays, bias = trees.compact
    X = pipeline.named_steps["features"].transform(pd.DataFrame({"url": urls[:19]})).astype(np.float32)
    X[::3, ::4] = np.nan
    raw_general, contrib_general = _walk(X, trees.roots[:n_trees], trees.feature, trees.threshold, trees.left,
                                         trees.right, trees.value, trees.default_left, trees.missing, True)
    for rows in (slice(0, 1), slice(0, 8), slice(0, 19)):  # the per-row path, the batch path, both
        part = np.ascontiguousarray(X[rows])
        leaves = np.empty((len(part), n_trees), dtype=np.int32)
        raw, contrib = _walk8(part, roots[:n_trees], depth[:n_trees], *arrays, bias, True, leaves)
        np.testing.assert_array_equal(raw, raw_general[rows])
        np.testing.assert_allclose(contrib[:, :-1], contrib_general[rows, :-1], atol=1e-4)
        assert (leaves >= 0).all() and (leaves < len(arrays[-2])).all()
        leaves_alone = np.empty_like(leaves)
        assert _walk8(part, roots[:n_trees], depth[:n_trees], *arrays, bias, False, leaves_alone)[0].tobytes() \
            == raw.tobytes()
        assert leaves_alone.tobytes() == leaves.tobytes()


def test_deferred_contributions_are_the_contributions_predict_gives(detector, pipeline, urls):
    """The batch path walks the trees once keeping each row's leaves, and adds the contributions of only the rows
    it explains: bit for bit what `predict` gives, with one fold or several (their mean), on any subset of rows
    and without `compact` too."""
    import dataclasses

    X = pipeline.named_steps["features"].transform(pd.DataFrame({"url": urls[:203]}))  # not a multiple of 8
    X[::7, ::5] = np.nan
    rows = np.array([0, 5, 8, 9, 100, 200, 202])
    one = detector.scorer
    two = dataclasses.replace(one, folds=[one.folds[0], one.folds[0]])
    for scorer in (one, two):
        proba, contrib = scorer.predict(X)
        deferred, contributions = scorer.predict_deferred(X)
        assert deferred.tobytes() == proba.tobytes()
        assert contributions(rows).tobytes() == contrib[rows].tobytes()
        assert contributions(np.arange(len(X))).tobytes() == contrib.tobytes()
        assert contributions(np.array([], dtype=np.int64)).shape == (0, X.shape[1] + 1)
    trees = one.folds[0][0]
    general = dataclasses.replace(trees)  # a copy whose `compact` is not built: the general walk's contributions
    general.__dict__["compact"] = None
    raw, leaves = general.predict_leaves(X)
    assert raw.tobytes() == general.predict(X)[0].tobytes()
    assert general.leaf_contributions(leaves, rows).tobytes() == general.predict(X)[1][rows].tobytes()


def test_calibration_and_rounding_kernels_equal_numpy_bit_for_bit(detector):
    from cybersentinel.scoring.detector import _rounded

    calibrator = detector.scorer.folds[0][1]
    assert calibrator.method == "isotonic"
    x = calibrator.x
    rng = np.random.default_rng(3)
    scores = np.concatenate([x, np.nextafter(x, np.inf), np.nextafter(x, -np.inf), (x[1:] + x[:-1]) / 2,
                             rng.uniform(x[0] - 1, x[-1] + 1, 100_000), [np.inf, -np.inf, np.nan, 0.0, -0.0]])
    expected = np.clip(np.interp(scores, x, calibrator.y), 0.0, 1.0) + 0.0
    assert calibrator.probabilities(scores).tobytes() == expected.tobytes()
    values = np.concatenate([rng.uniform(-1, 1, 100_000), np.arange(0, 0.01, 1e-6) + 5e-7,
                             [np.nan, np.inf, -np.inf, 0.0, -0.0, 5e-7, -5e-7, 2.5e-6, 1e300, -1e300, 5e-324]])
    assert _rounded(values).tobytes() == np.round(values, 6).tobytes()


def test_compiled_file_is_reproducible_and_refuses_tampering(detector, model_dir, tmp_path):  # noqa: F811
    compiled = load_manifest(model_dir)["compiled"]
    sha = detector.scorer.save(tmp_path / "again.npz")
    assert sha == compiled["sha256"]  # same bytes every time: DVC sees no change when nothing changed
    data = bytearray((tmp_path / "again.npz").read_bytes())
    data[len(data) // 2] ^= 1
    (tmp_path / "bad.npz").write_bytes(data)
    with pytest.raises(ModelIntegrityError, match="does not match"):
        UrlScorer.load(tmp_path / "bad.npz", sha)
    with np.load(tmp_path / "again.npz", allow_pickle=False) as npz:  # plain arrays only, nothing to unpickle
        assert all(npz[name].dtype != object for name in npz.files)


def test_a_manifest_edited_after_evaluate_measured_it_is_refused(model_dir, tmp_path):  # noqa: F811
    # a threshold raised to 0.9999999 in model.json was served: every other file is checked against the manifest,
    # and nothing checked the manifest, whose policy decides the verdicts
    import hashlib
    import json
    import shutil

    folder = shutil.copytree(model_dir, tmp_path / "models")
    manifest_bytes = (folder / "model.json").read_bytes()
    measured = hashlib.sha256(manifest_bytes).hexdigest()
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"model_sha256": json.loads(manifest_bytes)["sha256"], "manifest_sha256": measured}))
    assert Detector.from_dir(folder, evaluated=metrics).threshold == json.loads(manifest_bytes)["policy"]["threshold"]
    assert Detector.from_dir(folder, pinned_sha256=measured.upper()).manifest["sha256"]
    tampered = json.loads(manifest_bytes)
    tampered["policy"]["threshold"] = 0.9999999
    (folder / "model.json").write_text(json.dumps(tampered))
    with pytest.raises(ModelIntegrityError, match="changed after `evaluate` measured this model"):
        Detector.from_dir(folder, evaluated=metrics)
    with pytest.raises(ModelIntegrityError, match="is not the pinned"):
        Detector.from_dir(folder, pinned_sha256=measured)
    # the record is of this folder: whatever else the edit changed (the model's own hash upper-cased or gone)
    folder_record = {"model_sha256": json.loads(manifest_bytes)["sha256"], "manifest_sha256": measured,
                     "model_dir": str(folder)}
    metrics.write_text(json.dumps(folder_record))
    for claimed in (tampered["sha256"].upper(), None):
        (folder / "model.json").write_text(json.dumps({**tampered, "sha256": claimed}))
        with pytest.raises(ModelIntegrityError, match="changed after `evaluate` measured this model"):
            Detector.from_dir(folder, evaluated=metrics)
    # metrics of another model and folder say nothing of this one (a registry download, a retrain's candidate)
    (folder / "model.json").write_text(json.dumps(tampered))
    metrics.write_text(json.dumps({"model_sha256": "0" * 64, "manifest_sha256": measured, "model_dir": "models"}))
    assert Detector.from_dir(folder, evaluated=metrics).threshold == 0.9999999
    assert Detector.from_dir(folder, evaluated=tmp_path / "absent.json").threshold == 0.9999999
    # nor can a manifest dodge the record by naming another model: the hash it claims is the model file's
    (folder / "model.json").write_text(json.dumps({**tampered, "sha256": "0" * 64}))
    with pytest.raises(ModelIntegrityError, match="is not the manifest's 000000000000"):
        Detector.from_dir(folder)
    (folder / "model.json").write_bytes(manifest_bytes)
    (folder / "model.skops").unlink()
    with pytest.raises(ModelIntegrityError, match="model.skops: missing"):
        Detector.from_dir(folder, evaluated=metrics)  # a record vouching for a model it cannot check
    assert Detector.from_dir(folder).scorer is not None  # the compiled file alone, as a Dask worker gets it


def test_the_compiled_detector_starts_without_scikit_learn(model_dir):  # noqa: F811
    import subprocess
    import sys

    code = ("import sys; from cybersentinel.scoring.detector import Detector; "
            f"d = Detector.from_dir({str(model_dir)!r}); print(d.score_urls(['http://paypal.com.x.tk/login'])"
            "['verdict'][0]); heavy = ('sklearn', 'scipy.stats', 'lightgbm', 'skops'); "
            "print(sorted(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] in ("malicious", "suspicious", "benign") and out[1] == "[]"


def test_models_without_a_compiled_form_are_scored_through_the_pipeline(pipeline, model_dir, urls):  # noqa: F811
    manifest = {k: v for k, v in load_manifest(model_dir).items() if k != "compiled"}
    manifest["kind"] = "tabular-like"  # nothing compiles it: predict_proba and occlusion reasons
    slow = Detector(pipeline, manifest)
    assert slow.scorer is None
    fast = Detector.from_dir(model_dir)
    X = pipeline.named_steps["features"].transform(urls[:50])
    np.testing.assert_allclose(slow._score_features(X)[0], fast._score_features(X)[0], atol=1e-9)


def test_the_equality_check_catches_a_changed_tree(detector, pipeline, urls):
    """evaluate.py's guard: a compiled form that drifts from the pipeline shows a difference."""
    import dataclasses

    expected = pipeline.predict_proba(pd.DataFrame({"url": urls}))[:, 1]
    trees, calibrator = detector.scorer.folds[0]
    value = trees.value.copy()
    value[trees.feature < 0] += 0.5  # every leaf of every tree pushes towards phishing
    drifted = dataclasses.replace(detector.scorer, folds=[(dataclasses.replace(trees, value=value), calibrator)])
    assert detector.scorer.max_difference(urls, expected) <= 1e-9
    assert drifted.max_difference(urls, expected) > 0.01


def test_an_address_is_never_explained_by_its_name(detector):
    urls = [f"http://{a}.{b}.{c}.{d}/login/verify.php" for a, b, c, d in ((45, 67, 89, 12), (185, 225, 17, 45))]
    scored = detector.score_urls(urls)
    name_words = {FEATURE_DESCRIPTIONS[n] for n in HOST_NAME_FEATURES} | {LOW_VALUE_DESCRIPTIONS.get(n, "")
                                                                          for n in HOST_NAME_FEATURES}
    assert (scored["verdict"] != "benign").all() and (scored["reasons"] != "").all()  # there is something to read
    for text in scored["reasons"]:
        assert not set(text.split("; ")) & (name_words - {""})


def test_row_rules_search_a_batch_once_and_find_what_each_pattern_finds():
    from cybersentinel.features.lexical import FEW_TEXTS
    from cybersentinel.scoring.detector import _ASSET_PATTERN, _rows_containing

    urls = ["http://a.example/wp-admin/x/index.php", "http://a.example/WP-ADMIN/x/", "http://a.example/x.CSS?v=1",
            "http://a.example/x.css#top", "http://a.example/x.cssx", "http://a.example/xmlrpc.php",
            "http://a.example/XMLRPC.php", "http://a.example/?rest_route=/wp/v2", "http://a.example/", ""]
    patterns = ["/wp-admin/|/wp-includes/", "wp-|xmlrpc|/author/", _ASSET_PATTERN]
    for batch in (urls * (FEW_TEXTS // len(urls) + 1), urls, ["http://a.example/"] * (FEW_TEXTS + 1)):
        parsed = ParsedUrls(batch)
        found = _rows_containing(parsed, patterns)
        assert [list(rows) for rows in found] == [list(parsed.containing(p)) for p in patterns]


def test_verdict_and_text_columns_hold_the_values_they_are_given():
    from cybersentinel.scoring.detector import _text_column, _verdict_column

    verdicts = np.array(["malicious", "", "benign", "suspicious", "benign"])
    assert _verdict_column(verdicts).to_pylist() == verdicts.tolist()
    assert _verdict_column(np.array(["odd", "benign"])).to_pylist() == ["odd", "benign"]  # any other value kept
    assert _verdict_column(np.array([], dtype="<U10")).to_pylist() == []
    for texts in (["", "", ""], ["", "drop", ""], []):
        column = _text_column(np.array(texts, dtype=object))
        assert pa.types.is_dictionary(column.type) and column.to_pylist() == texts


def test_an_address_alone_is_left_to_feeds_and_a_page_on_it_to_the_model(detector):
    """``93.184.216.34`` asks about an address (rule 5: benign, score 0, without feeds); ``http://93.184.216.34/``
    is a web page, which keeps the model's score (nearly every such root in the collections is phishing, and
    score 0 had put them below every legitimate page), as ``http://93.184.216.34/login.php`` does."""
    scored = detector.score_values(["93.184.216.34", "http://93.184.216.34/", "http://93.184.216.34/login.php"],
                                   reasons=True).to_pandas()
    assert scored["score"][0] == 0.0 and scored["reasons"][0] == "public IP address, no feeds loaded to check it"
    assert scored["score"][1] == pytest.approx(min(scored["model_score"][1], detector.policy.asset_ceiling))
    assert scored["model_score"][1] > 0 and not scored["reasons"][1].startswith("public IP address")
    assert scored["score"][2] == pytest.approx(scored["model_score"][2])


def rules_alone(models: Path, popularity: dict[str, int], urls: list[str]) -> list[list[dict]]:
    """Each URL's records from one request and from a batch of twenty copies (`_few_records`, `apply`), under a
    threshold no model score passes and a band down to 0: every verdict `malicious` there is a rule's."""
    detector = Detector.from_dir(models)
    policy = replace(detector.policy, threshold=1.0, suspicious_band=0.999999, listed_floor=1.0)
    decider = Decider(policy, popularity=popularity)
    return [detector.score_records(urls, decider=decider)[:len(urls)],
            detector.score_records(urls * 20, decider=decider)[:len(urls)]]


def test_a_victims_address_after_the_hash_or_as_the_query_corroborates_a_suspicion_on_an_unlisted_site(
        model_dir):  # noqa: F811
    """880 phishing URLs of the collections end so after '#', one legitimate one (an IRC channel), which scores low;
    146 phishing URLs and no legitimate one have the address as their whole query. A host where anyone can publish
    on a site of the pinned list is not vouched for by the site's rank (session 56)."""
    urls = ["https://shop.example-kit.top/o365/index.html#jane.doe@corp.example",
            "https://shop.example-kit.top/#amFuZS5kb2VAY29ycC5leGFtcGxl",
            "https://shop.example-kit.top/js/mailer-daemon.html?jane.doe@corp.example",
            "https://shop.example-kit.top/wp-content/?amFuZS5kb2VAY29ycC5leGFtcGxl",
            "https://shop.example-kit.top/wp-content/?amFuZUBjb3JwLmV4YW1wbGU=",  # base64's padding
            "https://kitbox.z13.web.core.windows.net/index.html#jane.doe@corp.example",  # anyone's, on a listed site
            "https://shop.example-kit.top/o365/index.html#section-2",
            "https://shop.example-kit.top/news?email=jane.doe@corp.example",  # a newsletter's named field
            "https://www.popular-site.com/#jane.doe@corp.example",  # a site of the pinned list: not corroborated
            "https://www.popular-site.com/?jane.doe@corp.example"]
    for records in rules_alone(model_dir, {"popular-site.com": 5, "windows.net": 30}, urls):
        verdicts = [r["verdict"] for r in records]
        assert verdicts[:6] == ["malicious"] * 6 and "malicious" not in verdicts[6:]
        assert "as a kit's link fills in its victim's address, and the model finds the URL suspicious" in \
            records[0]["reasons"] and "jane" not in records[0]["reasons"]


def test_a_copy_of_hotmails_old_inbox_link_corroborates_a_suspicion_on_an_unlisted_site(model_dir):  # noqa: F811
    """5,060 phishing URLs of the collections, 2013 to 2026, carry a copy of Hotmail's old inbox link, no legitimate
    one; Microsoft's own sites (on the pinned list) served the page. One request and a batch alike."""
    urls = ["http://shop.example-kit.top/excel/excel.php?rand=13InboxLightaspxn.1774256418&amp;fid.4.1252899642",
            "http://shop.example-kit.top/js/ii.php?.rand=13InboxLight.aspx?n=1774256418&fid=4",
            # a host where anyone can publish on a site of the list: the platform's rank does not vouch for it
            "http://ip-203-0-113-7.ip.secureserver.net/biz/ii.php?rand=13InboxLightaspxn.1774256418",
            "https://shop.example-kit.top/mail/inbox?view=light",
            "https://mail.live.com/mail/InboxLight.aspx?n=1774256418"]  # the pinned list's own page
    for records in rules_alone(model_dir, {"live.com": 5, "secureserver.net": 50}, urls):
        verdicts = [r["verdict"] for r in records]
        assert verdicts[:3] == ["malicious"] * 3 and "malicious" not in verdicts[3:]
        assert "a copy of Hotmail's old inbox link (`InboxLight.aspx`), as a family of kits writes it into its links" \
            in records[0]["reasons"]


def test_programs_for_download_on_an_address_or_named_as_documents_are_judged_by_the_policy(model_dir):  # noqa: F811
    """A program for download on a public address corroborates a suspicion (107 phishing URLs of the collections
    that no sign-in word marks, no legitimate one); a Windows program named as a document (``Form.pdf.lnk``: 10
    phishing URLs, no legitimate one) is deceptive by construction, whatever the model says. One request and a batch
    (`_few_records`, `apply`) alike; not on a site of the pinned list, whose path may name a file it does not
    serve."""
    detector = Detector.from_dir(model_dir)
    # a threshold no model score passes and a band down to 0: every verdict `malicious` here is a rule's
    policy = replace(detector.policy, threshold=1.0, suspicious_band=0.999999, listed_floor=1.0)
    decider = Decider(policy, popularity={"popular-site.com": 5})
    urls = ["http://83.222.191.91:8080/oops/loki.arm7", "http://94.156.167.30/setup.exe",
            "https://files.example-share.top/Form.pdf.lnk",
            "https://www.popular-site.com/search/Form.pdf.lnk",  # a site of the pinned list: a scanner's search
            "http://94.156.167.30/files/report.pdf", "http://10.0.0.5/setup.exe",  # a document; a private address
            "https://downloads.example-vendor.com/setup.exe"]  # a name, not an address: the model's word
    for records in (detector.score_records(urls, decider=decider), detector.score_records(urls * 20, decider=decider)):
        verdicts = [r["verdict"] for r in records[:7]]
        assert verdicts[:3] == ["malicious"] * 3 and "malicious" not in verdicts[3:]
        assert records[0]["reasons"].startswith("a Linux program for `arm7` processors for download (`loki.arm7`) "
                                                "on the public address `83.222.191.91`, and the model finds")
        assert records[2]["reasons"].startswith("a Windows shortcut named as a `.pdf` file (`Form.pdf.lnk`)")


def test_a_name_written_with_a_bidirectional_override_is_deceptive_on_any_site(model_dir):  # noqa: F811
    """A right-to-left override inside a name (``photo<U+202E>gpj.scr`` shows as ``photorcs.jpg``) is deceptive by
    construction, whatever the model says and on any site: one request and a batch alike, written as is or escaped,
    found even where the features' text lacks a kit's copy of its own address. Not in the query, and not the
    marks, embeddings and isolates of right-to-left text, nor those wrapping a link copied from it."""
    detector = Detector.from_dir(model_dir)
    policy = replace(detector.policy, threshold=1.0, suspicious_band=0.999999, listed_floor=1.0)
    decider = Decider(policy, popularity={"popular-site.com": 5})
    own = "aHR0cDovL2tpdC5leGFtcGxlLXNoYXJlLnRvcC8="  # base64 of the kit's own address: cut from the features' text
    urls = ["https://files.example-share.top/photo%E2%80%AEgpj.scr", "http://files.example-share.top/a\u202efdp.exe",
            "https://www.popular-site.com/files/report\u202ecod.exe",  # a file host of the pinned list too
            f"http://kit.example-share.top/Invoice_\u202efdp.exe/{own}/",
            "https://files.example-share.top/search?q=%E2%80%AEgpj.scr",  # the query
            "https://news.example-share.top/fa/\u202bخبر\u202c",  # right-to-left text's embedding
            "\u202bhttps://files.example-share.top/report.pdf\u202c"]  # a link copied from right-to-left text
    for records in (detector.score_records(urls, decider=decider), detector.score_records(urls * 20, decider=decider),
                    detector.score_values(urls * 20, decider=decider).to_pylist()):
        verdicts = [r["verdict"] for r in records[:7]]
        assert verdicts[:4] == ["malicious"] * 4 and "malicious" not in verdicts[4:]
        assert records[0]["reasons"].startswith("`U+202E` (right-to-left override) in the URL's name or path")


def test_evaluate_counts_every_probe_url_once_and_sums_the_wrong_verdicts(detector, tmp_path):
    """evaluate.py's probe lists: each URL of a list gets one verdict or an error (blank lines are no URLs), and the
    headline sums what each kind gets wrong: legitimate URLs called malicious, malicious ones not called so."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("evaluate_stage", Path(__file__).parents[1] / "stages/evaluate.py")
    evaluate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(evaluate)
    legitimate, malicious = tmp_path / "shops_legitimate.txt", tmp_path / "kits_phishing.txt"
    legitimate.write_text("https://www.wikipedia.org/\n\nmailto:someone@example.com\nhttp://45.67.89.12/login/verify.php\n")
    malicious.write_text("http://45.67.89.12/paypal/signin/verify.php\nhttps://www.wikipedia.org/\n")
    probes = evaluate.probe_verdicts(detector, {"legitimate": [legitimate], "malicious": [malicious]})
    assert set(probes) == {"shops_legitimate", "kits_phishing"}
    shops, kits = probes["shops_legitimate"], probes["kits_phishing"]
    assert shops["urls"] == 3 and shops["errors"] == 1 and kits["urls"] == 2 and kits["errors"] == 0
    assert all(p["malicious"] + p["suspicious"] + p["benign"] + p["errors"] == p["urls"] for p in probes.values())
    verdicts = detector.score_urls(["http://45.67.89.12/login/verify.php", "http://45.67.89.12/paypal/signin/verify.php",
                                    "https://www.wikipedia.org/"])["verdict"].tolist()
    assert shops["malicious"] == [verdicts[0], verdicts[2]].count("malicious")
    headline = evaluate.headline({"model_sha256": "", "manifest_sha256": "", "model_dir": "", "threshold": 0.5,
                                  "probes": probes})
    assert headline["probes"] == {"legitimate_malicious": shops["malicious"],
                                  "malicious_missed": 2 - kits["malicious"]}
    assert kits["malicious"] == [verdicts[1], verdicts[2]].count("malicious")
