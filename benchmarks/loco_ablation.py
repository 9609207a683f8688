"""Ablations of the classifier over the `generalise` folds, in seconds rather than a `dvc repro` each.

Stage `generalise` spends nearly all of a fold's time in the featurizer (the cross-fitted n-gram scorers). A change
to LightGBM alone (its settings, its seed, which features it reads, row weights, noise on the n-gram scores it
trains on) does not change the featurizer, so `cache` featurizes every fold once (the nine collections left out,
forward in time, and the in-distribution split: about 100 s a fold, two at a time) and `run` then trains and
scores only the classifier, about 15 s for all eleven folds. Each `run` prints one line: every fold's ROC-AUC and
TPR at 1% FPR of the classifier's raw score (the calibration is monotone, so the ranking is the stage's model
ranking: the baseline reproduces `reports/generalisation_details.json`'s model ROC-AUC to four decimals; the
served decision is not computed). Prints figures; asserts nothing. Reads data/prepared.parquet, params.yaml and
models/best_params.json (`dvc repro`); the cache holds features of the collections, so keep it out of git. Its
manifest.json records each fold file's SHA-256 and what the folds were made from (the prepared table's SHA-256 and
the parameters that shape them): `run` refuses a file whose hash differs and a cache older than the pipeline's outputs.

    python benchmarks/loco_ablation.py cache                     # once, after `dvc repro`
    python benchmarks/loco_ablation.py run baseline
    python benchmarks/loco_ablation.py run seed1 --seed 1        # how far LightGBM's seed alone moves each fold
    python benchmarks/loco_ablation.py run no-entropy --drop domain_entropy
    python benchmarks/loco_ablation.py run extra-trees --set extra_trees=true
    python benchmarks/loco_ablation.py run noisy-ngrams --ngram-noise 1.0
    python benchmarks/loco_ablation.py run root-pages --weight root-pages --root-strength 1   # session 56

Changes to the n-gram scorers need the folds featurized again: ``--featurizer NAME`` (given to both `cache` and
`run`; its own cache folder unless ``--cache`` says otherwise) caches them with one of `FEATURIZERS` instead of the
recipe's, without its `name_familiarity` (session 20 measured that feature here; session 21 made it the recipe's).
Session 19's four did not lift the folds (README, "Session 19"): they live here, not in the package. Session 23's
(`ROW_VARIANTS`) keep the recipe's featurizer, name familiarity included, and change its training rows: the prepared
table's `country_homepages` rows left out or replaced (`with_country_homepages`); session 47's ``hacked-homepages``
adds the home pages of the sites kits were planted on (`hacked_site_homepages`, not kept); session 59's
``token-copies`` adds copies of 5% of each class's rows with an opaque token in the query or path
(`token_copies`, not kept):

    python benchmarks/loco_ablation.py --featurizer split-host cache
    python benchmarks/loco_ablation.py --featurizer split-host run split-host --drop host_ngram_score
    python benchmarks/loco_ablation.py --featurizer no-country-homepages cache
    python benchmarks/loco_ablation.py --featurizer no-country-homepages run before-session-23 --seed 1

Session 28's (`EXTRA_FEATURES`) keep the recipe's featurizer and rows and add features after its own:
``path-segments``, the path scorer's highest and lowest score of one part of the path and query; session 60's
``path-words``, the share of the path's and of the query's characters that the recipe's dictionary words cover, as
`name_words` reads a host's name (`path_query_words`, not kept).

    python benchmarks/loco_ablation.py --featurizer path-segments cache
    python benchmarks/loco_ablation.py --featurizer path-segments run highest-part --drop path_segment_min
    python benchmarks/loco_ablation.py --featurizer path-words cache
    python benchmarks/loco_ablation.py --featurizer path-words run path-only --drop query_words

Session 29's (`SCORER_ROWS`) keep the recipe's featurizer and rows and fit its n-gram scorers on fewer of the rows:
``pathful-rows``, only the rows with an n-gram in the scorer's span (the path scorer without the homepages).
``--ngram-c C`` (before `cache`, `run` and `probe`) caches the recipe with the n-gram scorers' regularisation C
changed, in a folder of its own; ``--ngram-range LO,HI`` and ``--ngram-buckets N`` (session 57) likewise change the
n-gram lengths they hash and the number of hash buckets:

    python benchmarks/loco_ablation.py --ngram-c 3 cache
    python benchmarks/loco_ablation.py --ngram-c 3 run weaker-regularisation --seed 1
    python benchmarks/loco_ablation.py --ngram-range 3,6 --ngram-buckets 4194304 cache

`rows FOLD` prints what one cached fold gets wrong: its collection's highest-scoring legitimate and lowest-scoring
phishing rows, and how many of each class's registered domains are on the pinned popularity list.

    python benchmarks/loco_ablation.py rows account_pages_2026 --top 20

`probe` asks what the in-distribution fold's model (what a deployment trains, less the test split) makes of the
hand-written URL lists (`PROBES`: the sanity sets, the small sites' links), which `cache` featurizes with that fold:
how many of each list reach the score that the budget's share of the legitimate test rows reach, each list's worst
URLs, and each legitimate list's ROC-AUC against the phishing shapes. The model's raw score, not the served
decision (no popularity, no rules).

    python benchmarks/loco_ablation.py --featurizer pathful-rows-missing probe --top 5
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "cybersentinel-loco"
IN_DISTRIBUTION = "in_distribution"


def fold_rows(table: Any, params: Mapping[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(training rows, evaluation rows) of every fold stage `generalise` runs, plus the in-distribution split."""
    from cybersentinel.core.config import feedback_source_names
    from cybersentinel.model.generalisation import forward_rows, held_out_collections, loco_rows

    collections = held_out_collections(table, feedback_source_names(params["dataset"]))
    folds = {name: loco_rows(table, name) for name in collections}
    folds["forward"] = forward_rows(table, params["generalise"]["cutoff_year"])
    folds[IN_DISTRIBUTION] = ((table["split"] == "train").to_numpy(),
                              (table["split"] == "test").to_numpy() & ~table["synthetic"].to_numpy())
    return folds


def cache_inputs(params: Mapping[str, Any], variant: str = "recipe") -> dict[str, Any]:
    """What the cached folds are made from: when any of it changes (`dvc repro`), the cache is stale."""
    from cybersentinel.core.files import sha256_file

    shaping = {key: params[key] for key in ("dataset", "featurizer", "seed")}
    if variant != "recipe":
        shaping["featurizer_variant"] = variant
    return {"prepared_sha256": sha256_file(REPO / "data" / "prepared.parquet"),
            "params": json.loads(json.dumps({**shaping, "cutoff_year": params["generalise"]["cutoff_year"]},
                                            sort_keys=True, default=str))}


def verified_folds(cache: Path, chosen: list[str], inputs: Mapping[str, Any]) -> list[Path]:
    """The cached fold files asked for, each checked against the manifest; a clear error otherwise."""
    from cybersentinel.core.files import sha256_file

    manifest_path = cache / "manifest.json"
    if not manifest_path.exists():
        raise SystemExit(f"no cached folds in {cache}: run `python benchmarks/loco_ablation.py cache` first")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("inputs") != inputs:
        raise SystemExit(f"the folds in {cache} were made from other data or parameters than this checkout's: "
                         "run `python benchmarks/loco_ablation.py cache` again")
    names = sorted(name for name in manifest["folds"] if not chosen or name in chosen)
    if not names:
        raise SystemExit(f"none of the folds asked for is cached in {cache}: {chosen}")
    for name in names:
        if sha256_file(cache / f"{name}.npz") != manifest["folds"][name]:
            raise SystemExit(f"{cache / name}.npz does not match the SHA-256 its manifest records: cache it again")
    return [cache / f"{name}.npz" for name in names]


def cache_fold(table: Any, training: np.ndarray, evaluation: np.ndarray, params: Mapping[str, Any], out: Path,
               variant: str = "recipe", phishing_roots: frozenset[str] = frozenset(), country_pool: Any = None) -> None:
    """The fold's featurizer fitted on its training rows as `fit_recipe` fits it (or as ``variant`` changes it);
    both matrices saved (no pickle)."""
    from cybersentinel.core.files import atomic_path
    from cybersentinel.features.featurizer import build_featurizer

    train, rows = table[training], table[evaluation]
    if variant in ROW_VARIANTS or variant in EXTRA_FEATURES or variant in SCORER_ROWS:
        if variant == "hacked-homepages":
            import pandas as pd

            train = pd.concat([train, hacked_site_homepages(train, phishing_roots)], ignore_index=True)
        elif variant == "token-copies":
            import pandas as pd

            train = pd.concat([train, token_copies(train, TOKEN_SHARE, params["seed"])], ignore_index=True)
        elif variant in ("country-pages", "country-pages-only"):
            train = with_country_pages(train, country_pool, set(rows["group"]), out.stem, params,
                                       pages_only=variant == "country-pages-only")
        elif variant in ROW_VARIANTS[1:]:
            train = with_country_homepages(train, popular_domains(params["featurizer"]["familiar_sites"]),
                                           set(rows["group"]), params["seed"], variant)
        featurizer = build_featurizer(dict(params["dataset"]), dict(params["featurizer"]), [])
        if variant == "path-segments":
            featurizer = with_path_segments(featurizer)
        if variant == "path-words":
            featurizer = with_path_words(featurizer)
        if variant in SCORER_ROWS:
            featurizer = with_pathful_rows(featurizer, pathless_missing=variant == "pathful-rows-missing")
        top = params["featurizer"]["familiar_sites"]
        names = {"popular_sites": popular_domains(top), "judged_sites": set(rows["group"])} if top else {}
        if params["featurizer"].get("name_words"):
            from cybersentinel.features.words import read_words

            names["words"] = read_words(REPO / "data" / "words.txt")
        x_train = featurizer.fit_transform(train[["url"]], train["label"].to_numpy(), **names)
    else:
        if variant == "tranco-homepages":
            train = with_homepages(train, popular_domains(100_000), set(rows["group"]), TRANCO_ROWS, params["seed"])
        featurizer = variant_featurizer(variant, params["featurizer"])
        x_train = featurizer.fit_transform(train[["url", "source"]], train["label"].to_numpy())
    probes = {}
    if out.stem == IN_DISTRIBUTION:  # the hand-written URL lists, featurized by the model a deployment would train
        import pandas as pd

        for path in PROBES:
            urls = read_probe(REPO / path)
            probes[f"probe_url_{Path(path).stem}"] = np.asarray(urls, dtype=str)
            probes[f"probe_x_{Path(path).stem}"] = featurizer.transform(pd.DataFrame({"url": urls}))
    with atomic_path(out) as temporary, open(temporary, "wb") as file:  # a file object: savez adds no suffix
        np.savez(file, names=np.asarray(featurizer.get_feature_names_out(), dtype=str), x_train=x_train,
                 y_train=train["label"].to_numpy(), source_train=train["source"].to_numpy(dtype=str),
                 group_train=train["group"].to_numpy(dtype=str), x_eval=featurizer.transform(rows[["url"]]),
                 y_eval=rows["label"].to_numpy(), **probes)


# the hand-written lists the in-distribution fold also scores (`probe`): the sanity sets and the small sites' links
PROBES = ("tests/data/sanity_legitimate.txt", "tests/data/sanity_phishing.txt", "benchmarks/small_site_links.txt",
          "benchmarks/small_site_links_other_languages.txt", "benchmarks/transactional_links_legitimate.txt",
          "benchmarks/everyday_links_legitimate.txt", "benchmarks/campaigns_2024_2026_phishing.txt",
          "benchmarks/new_traffic_phishing.txt")


def read_probe(path: Path) -> list[str]:
    """A probe list's URLs: one a line, blank lines and # comments skipped."""
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def probe_report(path: Path, model: Mapping[str, Any], best_params: Mapping[str, Any], max_fpr: float, seed: int,
                 top: int, weighting: str = "none", root_strength: float = 1.0) -> list[str]:
    """What the in-distribution fold's classifier makes of the probe lists, as printed lines: each list's URLs at
    or above the score that ``max_fpr`` of the legitimate test rows reach (the budget over all of them: read per
    collection, as the recipe reads it on out-of-fold scores, it rests on a few rows of the smallest collection and
    moves with the seed), its ``top`` highest-scoring URLs (lowest for the phishing shapes), each with the share
    of the legitimate test rows scoring at least as high (how far inside the budget's reach it sits, whatever the
    threshold), and each legitimate list's ROC-AUC against the phishing shapes, which no threshold moves."""
    from sklearn.metrics import roc_auc_score

    from cybersentinel.model.estimators import build_estimator

    with np.load(path, allow_pickle=False) as fold:
        stems = [key.removeprefix("probe_url_") for key in fold.files if key.startswith("probe_url_")]
        if not stems:
            raise SystemExit(f"{path} holds no probe lists: cache the {IN_DISTRIBUTION} fold again")
        names = fold["names"].tolist()
        weights = None if weighting == "none" else row_weights(
            weighting, fold["y_train"], fold["source_train"], fold["group_train"], root_pages(fold, names),
            root_strength)
        estimator = build_estimator(model, seed).set_params(**best_params).fit(fold["x_train"], fold["y_train"],
                                                                               sample_weight=weights)
        scores = estimator.predict_proba(fold["x_eval"])[:, 1]
        y_eval = fold["y_eval"]
        legitimate = np.sort(scores[y_eval == 0])
        threshold = float(np.quantile(scores[y_eval == 0], 1.0 - max_fpr, method="higher"))
        lines = [f"threshold {threshold:.4f} ({np.mean(scores[y_eval == 0] >= threshold):.2%} of the legitimate "
                 f"test rows at or above it), test recall {np.mean(scores[y_eval == 1] >= threshold):.3f}"]
        probes = {stem: (fold[f"probe_url_{stem}"], estimator.predict_proba(fold[f"probe_x_{stem}"])[:, 1])
                  for stem in stems}
    shapes = [probe for stem, (_, probe) in probes.items() if "phishing" in stem]
    for stem, (urls, probe) in probes.items():
        phishing = "phishing" in stem
        line = f"{stem}: {int((probe >= threshold).sum())} of {len(urls)} at or above the threshold"
        if shapes and not phishing:
            labels = np.r_[np.zeros(len(probe)), np.ones(sum(len(shape) for shape in shapes))]
            line += f", ROC-AUC against the phishing shapes {roc_auc_score(labels, np.r_[probe, *shapes]):.4f}"
        lines.append(line)
        order = np.argsort(probe if phishing else -probe, kind="stable")[:top]
        lines += [f"  {probe[i]:.4f}  ({1 - np.searchsorted(legitimate, probe[i]) / len(legitimate):.3%} of the "
                  f"legitimate test rows at or above)  {urls[i][:100]}" for i in order]
    return lines


# ---- featurizer variants (`--featurizer`) ------------------------------------------------------------------------
FEATURIZERS = ("recipe", "split-host", "collection-crossfit", "shared-ngrams", "tranco-homepages", "host-less-suffix",
               "suffix-apart", "no-country-homepages", "country-homepages", "country-share", "country-kits",
               "path-segments", "pathful-rows", "pathful-rows-missing", "hacked-homepages", "country-pages",
               "country-pages-only", "token-copies", "path-words")
# the recipe's featurizer (name familiarity included) on changed training rows
ROW_VARIANTS = ("recipe", "no-country-homepages", "country-homepages", "country-share", "country-kits",
                "hacked-homepages", "country-pages", "country-pages-only", "token-copies")
# the recipe's featurizer (name familiarity included) and its training rows, with more features after its own
EXTRA_FEATURES = ("path-segments", "path-words")
# the recipe's featurizer and training rows, with its n-gram scorers fitted on fewer of those rows
SCORER_ROWS = ("pathful-rows", "pathful-rows-missing")
SEGMENT_SEPARATORS = b"/?&#;"  # where a path or query splits into the parts `path_segment_scores` scores apart
SUFFIX_CUT = ("host-less-suffix", "suffix-apart")  # the variants whose host scorer reads the host without its suffix
TRANCO_ROWS = 16_000  # as many as `sample.per_source_class` lets any other collection and class have


def registered_and_subdomain_spans(parsed: Any) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Within each row's host span (``www.`` cut): the registered domain's (start, end), and the subdomain's
    before it (without its dot; empty when there is none)."""
    from cybersentinel.features.featurizer import _registered_domains

    starts, ends = parsed.host_spans()
    names, host_of_row = parsed.host_index()
    lengths = np.asarray([len(name.encode()) for name in _registered_domains(names)], dtype=np.int64)[host_of_row]
    registered_start = ends - np.minimum(lengths, ends - starts)
    return (registered_start, ends), (starts, np.maximum(registered_start - 1, starts))


def host_less_suffix_spans(parsed: Any) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Within each row's host span (``www.`` cut): the host without its public suffix and the dot before it, and
    the suffix after that dot (empty where nothing is cut: an address, a host under no known suffix, a host that
    is a suffix)."""
    from cybersentinel.url.parsing import split_host_columns

    starts, ends = parsed.host_spans()
    names, host_of_row = parsed.host_index()
    splits = split_host_columns([name.decode("utf-8", "replace") for name in names])
    cut = np.asarray([len(suffix.encode()) + 1 if suffix and domain and not is_ip else 0 for suffix, domain, is_ip
                      in zip(splits.suffix, splits.domain, splits.is_ip, strict=True)], dtype=np.int64)[host_of_row]
    host_end = np.maximum(ends - cut, starts)
    return (starts, host_end), (np.minimum(host_end + 1, ends), ends)


def shared_buckets(matrix: Any, sources: np.ndarray, least: int = 2) -> np.ndarray:
    """Which n-gram hash buckets rows of at least ``least`` collections use."""
    collections = np.zeros(matrix.shape[1], dtype=np.int32)
    for source in np.unique(sources):
        collections[np.unique(matrix[sources == source].indices)] += 1
    return collections >= least


def crossfit_splits(n_splits: int, domains: np.ndarray, sources: np.ndarray, by_collection: bool,
                    ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(training rows, held-out rows) of the n-gram scores' cross-fitting: folds grouped by registered domain, as
    the recipe's; or by collection, each fold's training rows also without the held-out rows' registered domains
    (as stage `generalise` keeps a left-out collection's sites out of its training rows)."""
    from sklearn.model_selection import GroupKFold

    groups = sources if by_collection else domains
    splits = []
    for train, held in GroupKFold(n_splits=n_splits).split(domains, groups=groups):
        if by_collection:
            train = train[~np.isin(domains[train], np.unique(domains[held]))]
        splits.append((train, held))
    return splits


def popular_domains(top: int, path: Path = REPO / "data" / "intel" / "tranco_top100k.csv") -> list[str]:
    """The pipeline's pinned popularity list (stage `intel`): its top ``top`` registered domains, most popular
    first, read as stages `featurize` and `generalise` read them."""
    from cybersentinel.intel.popular import read_popular_sites

    return list(read_popular_sites(path, top))


def with_homepages(train: Any, domains: list[str], held: set[str], count: int, seed: int) -> Any:
    """``train`` with ``count`` popular sites' homepages (``http://<domain>/``) added as legitimate rows of a
    collection of their own, drawn at random from ``domains`` less the fold's evaluated sites (``held``)."""
    import pandas as pd

    candidates = [domain for domain in domains if domain not in held]
    chosen = np.sort(np.random.default_rng(seed).choice(len(candidates), min(count, len(candidates)), replace=False))
    picked = [candidates[i] for i in chosen]
    rows = pd.DataFrame({"url": [f"http://{domain}/" for domain in picked], "label": 0, "source": "tranco_homepages",
                         "group": picked})
    return pd.concat([train[["url", "label", "source", "group"]], rows], ignore_index=True)


def with_country_homepages(train: Any, domains: list[str], held: set[str], seed: int, variant: str) -> Any:
    """``train`` with the prepared table's `country_homepages` rows replaced as ``variant`` says (session 23):
    ``no-country-homepages``: none (the recipe before session 23); ``country-homepages``: homepages of every country
    ending (a public suffix whose last label has two letters), as many as the ending needs for its share of the
    legitimate training rows to reach its share of the phishing ones; ``country-share``: of every country ending,
    as many as its share of the list's sites; ``country-kits``: as ``country-homepages``, but only endings whose
    phishing rows are mostly pages below the root (what `country_homepages` does, counted on the fold's rows). Drawn
    at random from ``domains`` less the fold's evaluated sites (``held``) and the sites already in training."""
    from collections import Counter

    import pandas as pd

    from cybersentinel.data.prepare import COUNTRY_HOMEPAGES, country_homepages
    from cybersentinel.url.parsing import split_host

    train = train[train["source"] != COUNTRY_HOMEPAGES][["url", "label", "source", "group"]]
    if variant == "no-country-homepages":
        return train
    listed = [domain for domain in domains if domain not in held]
    if variant == "country-kits":
        rows = country_homepages(train.assign(split="train", synthetic=False), listed, seed)[list(train.columns)]
        return pd.concat([train, rows], ignore_index=True)
    label = train["label"].to_numpy()
    suffixes = np.asarray([split_host(group)[2] for group in train["group"]], dtype=object)
    legit_per_phishing = (label == 0).sum() / max(1, (label == 1).sum())
    shares = Counter(split_host(domain)[2] for domain in domains)
    known = set(train["group"])
    by_suffix: dict[str, list[str]] = {}
    for domain in listed:
        if domain not in known:
            by_suffix.setdefault(split_host(domain)[2], []).append(domain)
    rng = np.random.default_rng(seed)
    picked: list[str] = []
    for ending in sorted(by_suffix):
        country = ending.rsplit(".", 1)[-1]
        if len(country) != 2 or not country.isalpha():
            continue
        legit, phishing = (suffixes == ending) & (label == 0), (suffixes == ending) & (label == 1)
        wanted = shares[ending] / len(domains) * (label == 0).sum() if variant == "country-share" else \
            phishing.sum() * legit_per_phishing
        need = round(wanted) - int(legit.sum())
        if need > 0:
            candidates = by_suffix[ending]
            picked += [candidates[i] for i in
                       np.sort(rng.choice(len(candidates), min(need, len(candidates)), replace=False))]
    rows = pd.DataFrame({"url": [f"http://{domain}/" for domain in picked], "label": 0, "source": COUNTRY_HOMEPAGES,
                         "group": picked})
    return pd.concat([train, rows], ignore_index=True)


WORDPRESS_FOLDER = re.compile(r"/wp-(?:content|includes|admin)/", re.IGNORECASE)


def phishing_root_sites(frame: Any) -> set[str]:
    """The groups (registered domains) with a phishing row at the root of a host: a name whose home page is
    phishing was registered or taken over for it, so its home page is no evidence of an ordinary site."""
    from cybersentinel.url.parsing import split_url

    phishing = frame[frame["label"] == 1]
    root = phishing["url"].map(lambda url: split_url(url).path.strip("/") == "").to_numpy()
    return set(phishing.loc[root, "group"])


def hacked_site_homepages(frame: Any, phishing_roots: frozenset[str]) -> Any:
    """Session 47's ``hacked-homepages`` (tried, not kept): legitimate training rows for the sites kits were planted
    on, the home page (``http://<host>/``) of each host whose phishing rows sit in WordPress's own folders
    (``/wp-content/``, ``/wp-includes/``, ``/wp-admin/``): the site is its owner's, only the kit's path is the
    phishers'. Not for a name with a phishing root page (``phishing_roots``, over every validated row), an address,
    or a site under a hosting platform's suffix (a site made for the kit)."""
    from cybersentinel.url.parsing import normalise, on_private_suffix, split_url

    phishing = frame[(frame["label"] == 1) & ~frame["synthetic"] & ~frame["group"].isin(phishing_roots)]
    parts = phishing["url"].map(split_url)
    planted = parts.map(lambda p: bool(WORDPRESS_FOLDER.search(p.path)) and not p.is_ip
                        and not on_private_suffix(p.host)).to_numpy(dtype=bool)
    rows = phishing[planted].assign(url="http://" + parts[planted].map(lambda p: p.host) + "/", label=0,
                                    source="hacked_site_homepages", synthetic=True).drop_duplicates("url")
    known = set(frame["url"].map(normalise))
    return rows[~rows["url"].map(normalise).isin(known)].reset_index(drop=True)


TOKEN_SHARE = 0.05  # of each class's training rows copied with a token (`token-copies`)
TOKEN_NAMES = ("token", "key", "code", "sig", "signature", "t", "id", "hash", "uid", "u", "e", "s", "k", "ref",
               "session", "auth", "confirmation_token", "reset_token", "verify", "ticket", "state", "nonce")


def random_token(rng: np.random.Generator) -> str:
    """An opaque value as links carry them: hex, base64url, a UUID, digits or a JWT's shape."""
    hexdigits, b64 = "0123456789abcdef", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    kind = rng.integers(5)
    if kind == 0:
        return "".join(rng.choice(list(hexdigits), int(rng.choice([16, 20, 24, 32, 40, 48, 64]))))
    if kind == 1:
        return "".join(rng.choice(list(b64), int(rng.integers(16, 48))))
    if kind == 2:
        raw = "".join(rng.choice(list(hexdigits), 32))
        return "-".join((raw[:8], raw[8:12], raw[12:16], raw[16:20], raw[20:]))
    if kind == 3:
        return "".join(rng.choice(list("0123456789"), int(rng.integers(6, 14))))
    return ".".join("".join(rng.choice(list(b64), n)) for n in (36, int(rng.integers(40, 120)), 43))


def token_copies(train: Any, share: float, seed: int) -> Any:
    """Copies of ``share`` of each class's real training rows with an opaque token added (a query field or a last
    part of the path), drawn the same way for both classes: the collections' legitimate lists were crawled or
    gathered where nobody's token appears, so a token's presence, length and letters say which list a URL came
    from, not what the site is. The copies keep their row's group, so the cross-fitting keeps a site together."""
    rng = np.random.default_rng(seed)
    real = train[~train["synthetic"]] if "synthetic" in train else train
    parts = []
    for label in (0, 1):
        rows = real[real["label"] == label]
        picked = rows.iloc[np.sort(rng.choice(len(rows), int(len(rows) * share), replace=False))]
        urls = []
        for url in picked["url"]:
            token = random_token(rng)
            base = url.split("#", 1)[0]
            if rng.random() < 0.25:
                head, _, query = base.partition("?")
                if "/" not in head.split("://", 1)[-1]:
                    head += "/"
                urls.append(f"{head.rstrip('/')}/{token}" + (f"?{query}" if query else ""))
            else:
                name = TOKEN_NAMES[rng.integers(len(TOKEN_NAMES))]
                if "?" in base:
                    urls.append(f"{base}&{name}={token}")
                else:
                    head = base if "/" in base.split("://", 1)[-1] else base + "/"
                    urls.append(f"{head}?{name}={token}")
        parts.append(picked.assign(url=urls, synthetic=True))
    import pandas as pd

    return pd.concat(parts, ignore_index=True)


def country_pages_pool(table: Any, params: Mapping[str, Any]) -> Any:
    """Session 47's ``country-pages`` pool: the validated legitimate rows the prepared table left out that are
    pages below the root of a site under a country's ending (its last label two letters), with their group,
    ending and year, less the groups of the prepared table's test split (they stay out of every training set)."""
    import pandas as pd

    from cybersentinel.data.prepare import assign_groups, row_years
    from cybersentinel.url.parsing import normalise, split_host, split_url

    validated = pd.read_parquet(REPO / "data" / "validated.parquet")
    legit = validated[validated["label"] == 0].reset_index(drop=True)
    legit = legit[~legit["url"].map(normalise).isin(set(table["url"].map(normalise)))].reset_index(drop=True)
    legit = legit[legit["url"].map(lambda url: split_url(url).path.strip("/") != "")].reset_index(drop=True)
    legit["group"] = assign_groups(legit, params["dataset"])
    legit["ending"] = legit["group"].map(lambda group: split_host(group)[2])
    country = legit["ending"].str.rsplit(".", n=1).str[-1]
    legit = legit[(country.str.len() == 2) & country.str.isalpha()]
    legit = legit[~legit["group"].isin(set(table.loc[table["split"] == "test", "group"]))]
    from cybersentinel.core.config import dataset_sources

    years = {s["name"]: s.get("year") for s in dataset_sources(params["dataset"])}
    legit = legit.assign(year=row_years(legit, years), split="train", synthetic=False)
    return legit.reset_index(drop=True)


def with_country_pages(train: Any, pool: Any, held: set[str], fold: str, params: Mapping[str, Any],
                       per_group: int = 3, pages_only: bool = False) -> Any:
    """Session 47's ``country-pages``: ``train`` with real legitimate pages (below the root) of country endings that
    the recipe's sampling left out, from ``pool`` (`country_pages_pool`), for each ending as many as its share of the
    legitimate training rows needs to reach its share of the phishing ones, at most ``per_group`` of one site, drawn
    at random. Never the held-out collection's rows or its evaluated sites (``held``); for the forward fold, only
    rows of the years it knows. With ``pages_only`` (``country-pages-only``) the shares are counted over pages below
    the root alone, so the country homepages do not count as the ending's legitimate rows."""
    import pandas as pd

    from cybersentinel.data.prepare import KIT_ROOT_SHARE
    from cybersentinel.url.parsing import split_host, split_url

    usable = pool[(pool["source"] != fold) & ~pool["group"].isin(held)]
    if fold == "forward":
        usable = usable[usable["year"] <= params["generalise"]["cutoff_year"]]
    usable = usable.sample(frac=1.0, random_state=params["seed"])
    usable = usable[usable.groupby("group", sort=False).cumcount() < per_group]
    label = train["label"].to_numpy()
    ending = np.asarray([split_host(group)[2] for group in train["group"]], dtype=object)
    root = np.asarray([split_url(url).path.strip("/") == "" for url in train["url"]])
    legit_per_phishing = (label == 0).sum() / max(1, (label == 1).sum())
    picked = []
    for suffix, rows in usable.groupby("ending", sort=True):
        phishing = int(((ending == suffix) & (label == 1)).sum())
        if not phishing or root[(ending == suffix) & (label == 1)].mean() > KIT_ROOT_SHARE:
            continue  # the phishers' own endings (`.cc`, `.tk`), as `country_homepages` leaves them
        counted = ~root if pages_only else np.ones(len(root), dtype=bool)  # the pages' shares, not the homepages'
        phishing = int(((ending == suffix) & (label == 1) & counted).sum())
        need = round(phishing * legit_per_phishing) - int(((ending == suffix) & (label == 0) & counted).sum())
        if need > 0:
            picked.append(rows.head(need))
    added = pd.concat(picked, ignore_index=True)[list(train.columns)] if picked else train.iloc[:0]
    return pd.concat([train, added], ignore_index=True)


def variant_featurizer(variant: str, settings: Mapping[str, Any]) -> Any:
    """The recipe's `UrlFeaturizer` with its n-gram scorers changed as ``variant`` says:
    ``split-host`` adds a scorer of the registered domain and one of the subdomain (features ``reg_ngram_score``,
    ``sub_ngram_score``; drop ``host_ngram_score`` to replace the host scorer by them);
    ``collection-crossfit`` cross-fits the scores with whole collections held out (`crossfit_splits`);
    ``shared-ngrams`` fits each scorer only on n-grams that rows of two or more of its collections use;
    ``tranco-homepages`` is the recipe's featurizer (its rows change, in `cache_fold`);
    ``host-less-suffix``: the host scorer reads the host without its public suffix (`host_less_suffix_spans`);
    ``suffix-apart``: the same, and a third scorer reads the suffix alone (feature ``suffix_ngram_score``).
    None has the recipe's `name_familiarity`."""
    from cybersentinel.features.featurizer import UrlFeaturizer, _registered_domains
    from cybersentinel.features.lexical import FEATURIZER_VERSION, ParsedUrls

    if variant not in FEATURIZERS[1:]:
        raise ValueError(f"unknown featurizer variant {variant!r}: expected one of {', '.join(FEATURIZERS)}")

    class VariantFeaturizer(UrlFeaturizer):
        def fit_transform(self, X, y=None, **fit_params):
            parsed, y = ParsedUrls(X[["url"]]), np.asarray(y)
            hand = parsed.hand_features()
            self.n_features_in_, self.version_ = 1, FEATURIZER_VERSION
            spans = [host_less_suffix_spans(parsed)[0] if variant in SUFFIX_CUT else parsed.host_spans(),
                     parsed.rest_spans()]
            if variant == "split-host":
                spans += registered_and_subdomain_spans(parsed)
            if variant == "suffix-apart":
                spans.append(host_less_suffix_spans(parsed)[1])
            matrices = [self.ngram_matrix(parsed, *span) for span in spans]
            names, host_of_row = parsed.host_index()
            domains = np.asarray(_registered_domains(names))[host_of_row]
            sources = X["source"].to_numpy(dtype=str)

            def fit(matrix, rows):
                matrix, keep = matrix[rows], None
                if variant == "shared-ngrams":  # the other buckets' columns emptied: their weights stay 0
                    keep = shared_buckets(matrix, sources[rows])
                    matrix = matrix.multiply(keep[None, :]).tocsr()
                return self._fit_scorer(matrix, y[rows])

            oof = np.zeros((len(y), len(matrices)), dtype=np.float32)
            for train, held in crossfit_splits(self.cv, domains, sources, variant == "collection-crossfit"):
                for j, matrix in enumerate(matrices):
                    oof[held, j] = fit(matrix, train).decision_function(matrix[held])
            everything = np.arange(len(y))
            scorers = [fit(matrix, everything) for matrix in matrices]
            self.scorers_, self.extra_scorers_ = scorers[:2], scorers[2:]
            return np.hstack([hand, oof])

        def transform(self, X):
            out = super().transform(X[["url"]])
            parsed = ParsedUrls(X[["url"]])
            if variant in SUFFIX_CUT:  # the host scorer reads the host without its suffix here too
                column = list(super().get_feature_names_out()).index("host_ngram_score")
                out[:, column] = self.scorers_[0].decision_function(
                    self.ngram_matrix(parsed, *host_less_suffix_spans(parsed)[0]))
            if not self.extra_scorers_:
                return out
            spans = registered_and_subdomain_spans(parsed) if variant == "split-host" else \
                host_less_suffix_spans(parsed)[1:]
            extra = [scorer.decision_function(self.ngram_matrix(parsed, *span))
                     for scorer, span in zip(self.extra_scorers_, spans, strict=True)]
            return np.hstack([out, np.column_stack(extra).astype(np.float32)])

        def get_feature_names_out(self, input_features=None):
            extra = (["reg_ngram_score", "sub_ngram_score"] if variant == "split-host" else ["suffix_ngram_score"]) \
                if self.extra_scorers_ else []
            return np.asarray([*super().get_feature_names_out(), *extra], dtype=object)

    return VariantFeaturizer(ngram_range=tuple(settings["ngram_range"]), n_features=settings["n_features"],
                             C=settings["C"], cv=settings["cv"])


def path_segments(data: np.ndarray, starts: np.ndarray, ends: np.ndarray, least: int) -> tuple[np.ndarray, ...]:
    """(start, end, row) of every part of each row's span between `SEGMENT_SEPARATORS` that is at least ``least``
    bytes long (shorter parts have no n-gram of the scorer), in row order."""
    separator = np.isin(data, np.frombuffer(SEGMENT_SEPARATORS, dtype=np.uint8))
    found_starts, found_ends, found_rows = [], [], []
    for row, (start, end) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        cuts = [start - 1, *(start + np.flatnonzero(separator[start:end])).tolist(), end]
        for left, right in zip(cuts[:-1], cuts[1:], strict=True):
            if right - left - 1 >= least:
                found_starts.append(left + 1)
                found_ends.append(right)
                found_rows.append(row)
    return (np.asarray(found_starts, dtype=np.int64), np.asarray(found_ends, dtype=np.int64),
            np.asarray(found_rows, dtype=np.int64))


def path_segment_scores(featurizer: Any, parsed: Any, scorer: Any, fallback: np.ndarray,
                        rows: np.ndarray | None = None) -> np.ndarray:
    """Per row (of ``rows``, default all): the highest and the lowest score the path scorer gives one part of its
    path and query on its own (so a kit's token is not averaged away by a harmless parameter beside it);
    ``fallback`` (the row's whole path score) where no part is long enough."""
    starts, ends = parsed.rest_spans()
    if rows is not None:
        starts, ends = starts[rows], ends[rows]
    seg_starts, seg_ends, seg_rows = path_segments(parsed.data, starts, ends, featurizer.ngram_range[0])
    out = np.column_stack([fallback, fallback]).astype(np.float32)
    if len(seg_rows):
        scores = scorer.decision_function(featurizer.ngram_matrix(parsed, seg_starts, seg_ends))
        first = np.flatnonzero(np.r_[True, seg_rows[1:] != seg_rows[:-1]])
        out[seg_rows[first], 0] = np.maximum.reduceat(scores, first)
        out[seg_rows[first], 1] = np.minimum.reduceat(scores, first)
    return out


def with_pathful_rows(featurizer: Any, pathless_missing: bool = False) -> Any:
    """``featurizer`` (the recipe's `UrlFeaturizer`) whose n-gram scorers learn only from rows with at least one
    n-gram in their span: the path scorer no longer sees the homepages, which are mostly legitimate, so it cannot
    learn "has a path" as a sign of phishing. A row without a path scores the scorer's intercept, or, with
    ``pathless_missing``, a missing value (NaN), which LightGBM routes apart from every score."""
    from cybersentinel.features.featurizer import UrlFeaturizer
    from cybersentinel.features.lexical import ParsedUrls, ngram_counts

    class PathfulRows(UrlFeaturizer):
        def _fit_scorer(self, X, y):
            keep = X.getnnz(axis=1) > 0
            return super()._fit_scorer(X[keep], np.asarray(y)[keep])

        def pathless_apart(self, X, out):
            if pathless_missing:
                starts, ends = ParsedUrls(X).rest_spans()
                column = list(self.get_feature_names_out()).index("path_ngram_score")
                out[ngram_counts(ends - starts, *self.ngram_range) == 0, column] = np.nan
            return out

        def fit_transform(self, X, y=None, **fit_params):
            return self.pathless_apart(X, super().fit_transform(X, y, **fit_params))

        def transform(self, X):
            return self.pathless_apart(X, super().transform(X))

    return PathfulRows(**featurizer.get_params())


def with_path_segments(featurizer: Any) -> Any:
    """``featurizer`` (the recipe's `UrlFeaturizer`) with two more features: `path_segment_scores` from the
    fitted path scorer (out of fold for the training rows, on the featurizer's own grouped folds)."""
    from sklearn.model_selection import GroupKFold

    from cybersentinel.features.featurizer import UrlFeaturizer, _registered_domains
    from cybersentinel.features.lexical import ParsedUrls

    class PathSegments(UrlFeaturizer):
        def fit_transform(self, X, y=None, **fit_params):
            out = super().fit_transform(X, y, **fit_params)
            parsed, y = ParsedUrls(X), np.asarray(y)
            path_score = out[:, list(super().get_feature_names_out()).index("path_ngram_score")]
            matrix = self.ngram_matrix(parsed, *parsed.rest_spans())
            hosts = parsed.hosts()
            groups = np.asarray(_registered_domains(hosts.dictionary.to_pylist()))[hosts.indices.to_numpy()]
            extra = np.zeros((len(y), 2), dtype=np.float32)
            for train_idx, held_idx in GroupKFold(n_splits=self.cv).split(out, y, groups):  # the parent's folds
                scorer = self._fit_scorer(matrix[train_idx], y[train_idx])
                extra[held_idx] = path_segment_scores(self, parsed, scorer, path_score[held_idx], held_idx)
            return np.hstack([out, extra])

        def transform(self, X):
            out = super().transform(X)
            parsed = X if isinstance(X, ParsedUrls) else ParsedUrls(X)
            path_score = out[:, list(super().get_feature_names_out()).index("path_ngram_score")]
            return np.hstack([out, path_segment_scores(self, parsed, self.scorers_[1], path_score)])

        def get_feature_names_out(self, input_features=None):
            return np.asarray([*super().get_feature_names_out(), "path_segment_max", "path_segment_min"],
                              dtype=object)

    return PathSegments(**featurizer.get_params())


def path_query_words(words: Any, urls: Sequence[str]) -> np.ndarray:
    """Per URL, the share of its path's and of its query's characters that ``words`` (`NameWords`) cover, lower-cased
    and split where a character is neither a letter nor a digit (digits count, and are never covered);
    `NOTHING_TO_READ` for an empty path or query."""
    from cybersentinel.features.words import _coverages, _joined
    from cybersentinel.url.parsing import split_url

    parts = [split_url(url) for url in urls]
    apart = re.compile(r"[^a-z0-9]+")
    columns = [[apart.sub("-", getattr(part, side).lower()).strip("-") for part in parts] for side in ("path", "query")]
    return np.column_stack([_coverages(*_joined(texts), words._table) for texts in columns]).astype(np.float32)


def with_path_words(featurizer: Any) -> Any:
    """``featurizer`` (the recipe's `UrlFeaturizer`, fitted with words) with `path_query_words` after its own."""
    from cybersentinel.features.featurizer import UrlFeaturizer

    def urls(X: Any) -> list[str]:
        return X["url"].tolist()

    class PathWords(UrlFeaturizer):
        def fit_transform(self, X, y=None, **fit_params):
            return np.hstack([super().fit_transform(X, y, **fit_params), path_query_words(self.name_words(), urls(X))])

        def transform(self, X):
            return np.hstack([super().transform(X), path_query_words(self.name_words(), urls(X))])

        def get_feature_names_out(self, input_features=None):
            return np.asarray([*super().get_feature_names_out(), "path_words", "query_words"], dtype=object)

    return PathWords(**featurizer.get_params())


WEIGHTINGS = ("root-pages", "none", "cell", "domain")


def root_pages(fold: Any, names: list[str]) -> np.ndarray | None:
    """Which of a cached fold's training rows are root pages (``path_depth`` 0); None without that feature."""
    return fold["x_train"][:, names.index("path_depth")] == 0 if "path_depth" in names else None


def row_weights(scheme: str, y: np.ndarray, sources: np.ndarray, groups: np.ndarray, root: np.ndarray | None = None,
                root_strength: float = 1.0) -> np.ndarray | None:
    """Training-row weights: ``root-pages`` the recipe's (`root_page_weights` of ``root_strength``: each class's
    rows without a path brought towards the same share), ``cell`` gives every (collection, class) the same total,
    ``domain`` every registered domain; each class keeps its total. ``none``: no weights."""
    from cybersentinel.model.estimators import root_page_weights
    from cybersentinel.model.metrics import group_weights

    if scheme == "none":
        return None
    if scheme == "root-pages":
        if root is None:
            raise ValueError("root-pages weights need the rows' path_depth feature")
        return root_page_weights(y, root, root_strength)
    if scheme not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {scheme!r}: expected one of {', '.join(WEIGHTINGS)}")
    weights = group_weights(np.char.add(sources.astype(str), y.astype(str)) if scheme == "cell" else groups)
    for label in (0, 1):
        chosen = y == label
        weights[chosen] *= chosen.sum() / weights[chosen].sum()
    return weights


def run_fold(path: Path, model: Mapping[str, Any], best_params: Mapping[str, Any], **changes: Any,
             ) -> tuple[float, float]:
    """(ROC-AUC, TPR at 1% FPR) of one cached fold's classifier trained with the changes asked for."""
    from sklearn.metrics import roc_auc_score

    from cybersentinel.model.metrics import tpr_at_fpr

    y_eval, scores = fold_scores(path, model, best_params, **changes)
    return float(roc_auc_score(y_eval, scores)), float(tpr_at_fpr(y_eval, scores, 0.01))


def fold_scores(path: Path, model: Mapping[str, Any], best_params: Mapping[str, Any], *, drop: frozenset[str],
                overrides: Mapping[str, Any], seed: int, bag: int, ngram_noise: float, weighting: str,
                root_strength: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(labels, scores) of one cached fold's evaluation rows, from its classifier trained with the changes asked
    for."""
    from cybersentinel.model.estimators import build_estimator

    with np.load(path, allow_pickle=False) as fold:
        names = fold["names"].tolist()
        unknown = drop - set(names)
        if unknown:
            raise SystemExit(f"--drop names no feature: {sorted(unknown)}; the features are {names}")
        keep = [i for i, name in enumerate(names) if name not in drop]
        x_train, x_eval = fold["x_train"][:, keep], fold["x_eval"][:, keep]
        y_train, y_eval = fold["y_train"], fold["y_eval"]
        weights = row_weights(weighting, y_train, fold["source_train"], fold["group_train"],
                              root_pages(fold, names), root_strength)
    if ngram_noise:  # the training rows' n-gram scores made less trustworthy than their out-of-fold noise says
        columns = [j for j, i in enumerate(keep) if names[i].endswith("_ngram_score")]
        x_train = x_train.copy()
        x_train[:, columns] += np.random.default_rng(seed).normal(0.0, ngram_noise, (len(x_train), len(columns)))
    scores = np.zeros(len(x_eval))
    for member in range(bag):  # `bag` models of consecutive seeds, their probabilities averaged
        estimator = build_estimator(model, seed + member).set_params(**{**best_params, **overrides})
        scores += estimator.fit(x_train, y_train, sample_weight=weights).predict_proba(x_eval)[:, 1]
    return y_eval, scores / bag


def fold_report(rows: Any, scores: np.ndarray, collection: str, popular: Sequence[str], top: int) -> list[str]:
    """What a fold gets wrong, as printed lines: the held-out ``collection``'s legitimate rows that score highest
    and its phishing rows that score lowest (``top`` of each), and how many of the registered domains
    (``rows["group"]``) of each class are on the ``popular`` list: legitimate rows in all and above 0.95, phishing
    rows in all and above 0.99."""
    scored = rows.assign(score=scores)
    rank = {domain: i for i, domain in reversed(list(enumerate(popular, 1)))}
    on_list = np.array([rank.get(domain, np.inf) for domain in scored["group"]])  # inf: not on the list
    own = scored["source"] == collection
    lines = []
    for label, name, worst_first, high in ((0, "legitimate", False, 0.95), (1, "phishing", True, 0.99)):
        chosen = scored["label"] == label
        if (chosen & own).any():
            worst = scored[chosen & own].sort_values("score", ascending=worst_first, kind="stable").head(top)
            lines.append(f"{collection}: {int((chosen & own).sum()):,} {name} rows; "
                         f"{'lowest' if worst_first else 'highest'} scores:")
            lines += [f"  {score:.4f}  {url[:110]}" for score, url in zip(worst["score"], worst["url"], strict=True)]
        for subset, what in ((chosen, "all"), (chosen & (scored["score"] > high), f"score > {high}")):
            if subset.any():
                ranks = on_list[subset.to_numpy()]
                lines.append(f"{name} rows of the fold ({what}): {int(subset.sum()):,}, registered domain in the "
                             f"list's top 10,000 {np.mean(ranks <= 10_000):.1%}, top {len(popular):,} "
                             f"{np.mean(np.isfinite(ranks)):.1%}")
    return lines


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs, each value read as JSON (``extra_trees=true``, ``max_bin=31``), else as text."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set takes key=value, not {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def featurizer_overrides(c: float | None, lengths: str | None, buckets: int | None) -> dict[str, Any]:
    """The n-gram scorers' settings ``--ngram-c``, ``--ngram-range`` and ``--ngram-buckets`` put in place of
    params.yaml's; a clear error for a value the featurizer would refuse or misread."""
    out: dict[str, Any] = {}
    if c is not None:
        if c <= 0:
            raise SystemExit("--ngram-c must be positive")
        out["C"] = c
    if lengths is not None:
        lo, sep, hi = lengths.partition(",")
        if not (sep and lo.isdigit() and hi.isdigit() and 1 <= int(lo) <= int(hi)):
            raise SystemExit(f"--ngram-range takes LO,HI with 1 <= LO <= HI, not {lengths!r}")
        out["ngram_range"] = [int(lo), int(hi)]
    if buckets is not None:
        if buckets < 2 or buckets & (buckets - 1):
            raise SystemExit(f"--ngram-buckets must be a power of two, not {buckets}")
        out["n_features"] = buckets
    return out


def main() -> None:
    from joblib import Parallel, delayed

    from cybersentinel.core.files import read_params, sha256_file, write_json

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=None,
                        help=f"where the fold matrices live (default: {DEFAULT_CACHE}, -NAME for a --featurizer)")
    parser.add_argument("--featurizer", default="recipe", choices=FEATURIZERS,
                        help="the n-gram scorers' variant to cache and run (see FEATURIZERS)")
    parser.add_argument("--ngram-c", type=float, default=None,
                        help="the n-gram scorers' regularisation C instead of params.yaml's (its own cache folder)")
    parser.add_argument("--ngram-range", default=None, metavar="LO,HI",
                        help="the n-gram lengths the scorers hash instead of params.yaml's (its own cache folder)")
    parser.add_argument("--ngram-buckets", type=int, default=None,
                        help="the scorers' hash buckets (a power of two) instead of params.yaml's (own cache folder)")
    parser.add_argument("--folds", default="", help="comma-separated fold names (default: every fold)")
    parser.add_argument("--jobs", type=int, default=2)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("cache", help="featurize every fold once")
    run = commands.add_parser("run", help="train and score the classifier of every cached fold")
    run.add_argument("name", help="a label for the printed line")
    run.add_argument("--drop", default="", help="comma-separated features the classifier does not read")
    run.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="LightGBM settings over the chosen ones")
    run.add_argument("--seed", type=int, default=None, help="default: params.yaml's")
    run.add_argument("--bag", type=int, default=1, help="average this many models of consecutive seeds")
    run.add_argument("--ngram-noise", type=float, default=0.0, help="normal noise (sd) on the training n-gram scores")
    run.add_argument("--weight", default=None, choices=WEIGHTINGS,
                     help="training-row weights (default: the recipe's, root-pages or none as params.yaml says)")
    run.add_argument("--root-strength", type=float, default=None,
                     help="root-pages: how far towards the same share (default: params.yaml's train.root_page_balance)")
    show = commands.add_parser("rows", help="one cached fold's worst rows, and its sites on the popularity list")
    show.add_argument("fold", help="a cached fold: the left-out collection's name")
    show.add_argument("--top", type=int, default=40, help="rows shown of each class")
    show.add_argument("--seed", type=int, default=None, help="default: params.yaml's")
    probe = commands.add_parser("probe", help="the in-distribution fold's model on the hand-written URL lists")
    probe.add_argument("--top", type=int, default=10, help="URLs shown of each list")
    probe.add_argument("--seed", type=int, default=None, help="default: params.yaml's")
    args = parser.parse_args()
    if args.jobs < 1 or args.command == "run" and (args.bag < 1 or args.ngram_noise < 0):
        raise SystemExit("--bag and --jobs must be at least 1, --ngram-noise at least 0")
    variant = args.featurizer
    if args.cache is None:
        suffix = "" if variant == "recipe" else f"-{variant}"
        suffix += "" if args.ngram_c is None else f"-C{args.ngram_c:g}"
        suffix += "" if args.ngram_range is None else f"-n{args.ngram_range.replace(',', '-')}"
        suffix += "" if args.ngram_buckets is None else f"-b{args.ngram_buckets}"
        args.cache = DEFAULT_CACHE.with_name(DEFAULT_CACHE.name + suffix)
    params = read_params(REPO / "params.yaml")
    # recorded in the manifest's inputs with the rest of the featurizer's settings
    params["featurizer"].update(featurizer_overrides(args.ngram_c, args.ngram_range, args.ngram_buckets))
    chosen = [name for name in args.folds.split(",") if name]
    if args.command == "cache":
        import pandas as pd

        table = pd.read_parquet(REPO / "data" / "prepared.parquet")
        folds = fold_rows(table, params)
        todo = {name: rows for name, rows in folds.items() if not chosen or name in chosen}
        args.cache.mkdir(parents=True, exist_ok=True)
        manifest_path = args.cache / "manifest.json"
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        inputs = cache_inputs(params, variant)
        folds_done = manifest.get("folds", {}) if manifest.get("inputs") == inputs else {}  # a stale cache is redone
        roots = frozenset()
        if variant == "hacked-homepages":  # as stage `prepare` finds them: over every row, before sampling
            from cybersentinel.data.prepare import assign_groups

            validated = pd.read_parquet(REPO / "data" / "validated.parquet", columns=["url", "label"])
            roots = frozenset(phishing_root_sites(validated.assign(group=assign_groups(validated, params["dataset"]))))
        pool = country_pages_pool(table, params) if variant.startswith("country-pages") else None
        Parallel(n_jobs=args.jobs)(delayed(cache_fold)(table, *rows, params, args.cache / f"{name}.npz", variant,
                                                       roots, pool) for name, rows in todo.items())
        folds_done.update({name: sha256_file(args.cache / f"{name}.npz") for name in todo})
        write_json(manifest_path, {"inputs": inputs, "folds": folds_done})
        print(f"cached {len(todo)} folds in {args.cache}")
        return
    best_params = json.loads((REPO / "models" / "best_params.json").read_text())
    recipe_weighting = "root-pages" if params["train"]["root_page_balance"] else "none"
    root_strength = params["train"]["root_page_balance"] or 1.0
    if args.command == "rows":
        import pandas as pd

        path, = verified_folds(args.cache, [args.fold], cache_inputs(params, variant))
        table = pd.read_parquet(REPO / "data" / "prepared.parquet")
        rows = table[fold_rows(table, params)[args.fold][1]].reset_index(drop=True)
        y_eval, scores = fold_scores(path, params["model"], best_params, drop=frozenset(), overrides={},
                                     seed=params["seed"] if args.seed is None else args.seed, bag=1,
                                     ngram_noise=0.0, weighting=recipe_weighting, root_strength=root_strength)
        if not np.array_equal(rows["label"].to_numpy(), y_eval):
            raise SystemExit(f"{path} does not hold this table's rows of fold {args.fold}: cache it again")
        print("\n".join(fold_report(rows, scores, args.fold, popular_domains(100_000), args.top)))
        return
    if args.command == "probe":
        path, = verified_folds(args.cache, [IN_DISTRIBUTION], cache_inputs(params, variant))
        print("\n".join(probe_report(path, params["model"], best_params, params["threshold"]["max_fpr"],
                                     params["seed"] if args.seed is None else args.seed, args.top,
                                     recipe_weighting, root_strength)))
        return
    paths = verified_folds(args.cache, chosen, cache_inputs(params, variant))
    options = {"drop": frozenset(filter(None, args.drop.split(","))), "overrides": parse_overrides(args.set),
               "seed": params["seed"] if args.seed is None else args.seed, "bag": args.bag,
               "ngram_noise": args.ngram_noise, "weighting": args.weight or recipe_weighting,
               "root_strength": args.root_strength or root_strength}
    results = Parallel(n_jobs=args.jobs)(delayed(run_fold)(p, params["model"], best_params, **options) for p in paths)
    by_fold = dict(zip((p.stem for p in paths), results, strict=True))
    left_out = [auc for name, (auc, _) in by_fold.items() if name not in ("forward", IN_DISTRIBUTION)]
    summary = f"min {min(left_out):.4f} mean {np.mean(left_out):.4f} | " if left_out else ""
    print(f"{args.name}: {summary}" + "  ".join(f"{name} {auc:.4f}/{tpr:.3f}" for name, (auc, tpr) in by_fold.items()))


if __name__ == "__main__":
    main()
