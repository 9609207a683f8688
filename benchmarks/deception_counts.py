"""How many URLs of each collection the policy's rule 3 calls deceptive by construction, by kind and label: the
figures the README quotes for the look-alike and country-ending rules (a rule is judged by the legitimate URLs it
marks), and how many it would mark by a brand named in an unpopular site's subdomain (`decider.named_brands`:
it only corroborates a suspicious score, so this counts where it may act), by a listed site's whole name there
(`decider.named_sites`, likewise), and how many are sign-in pages or programs for download on a public address
(`decider.address_sign_in`, `decider.address_program`) or end in a victim's e-mail address after `#` or as the whole
query on an unlisted site (`decider.victim_address`) or hold a kit's copy of Hotmail's old inbox link there
(`decider.copied_inbox_link`), likewise; and how many name a Windows program as a document
(`decider.disguised_program`, deceptive on an unlisted site; counted apart, beside its host's kind) or are
written with a bidirectional override (`decider.reversed_text`, deceptive on any site); the distinct
hosts of each kind; and how many URLs under `googleapis.com` carry its rank (`url.parsing.OPERATOR_SERVICES`) or
not, by label.
Punycode names that read as a listed site (`decider.imitated_site`) and, with marks, as a top one
(`decider.marked_site`, corroborating) are counted as the decider asks them: only where no other rule applies.
Reads data/validated.parquet (`dvc pull prepare` or `dvc repro`) and, for the named brands and sites, the
popularity list and policy pinned with the model (hash-checked); every distinct host is asked once.

    python benchmarks/deception_counts.py
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from cybersentinel.core.files import load_manifest
from cybersentinel.scoring.decider import (
    COPIED_INBOX_PATTERN,
    VICTIM_ADDRESS_PATTERN,
    Decider,
    address_program,
    address_sign_in,
    copied_inbox_link,
    deceptive_hosts,
    disguised_program,
    imitated_site,
    marked_site,
    named_brands,
    named_sites,
    reversed_text,
    victim_address,
)
from cybersentinel.scoring.detector import read_popularity
from cybersentinel.scoring.policy import Policy, user_content_host
from cybersentinel.url.parsing import (
    OPERATOR_SERVICES,
    host_registered_domain,
    ranked_name,
    split_host_columns,
    url_fields,
)

REPO = Path(__file__).resolve().parents[1]
# The kind of each reason `decider._deception` gives, in the order it tries them.
KINDS = (("punycode name reads as a listed site", re.compile(r"^punycode host .*, imitating the popular site")),
         ("punycode name is a top listed site with marks (if suspicious)", re.compile(r"with marks on its letters$")),
         ("registered name imitates a brand", re.compile(r"^`[^`]*` imitates|^punycode host")),
         ("brand's domain in the subdomain", re.compile(r"^brand `[^`]*` in the subdomain of unrelated")),
         ("country's ending in the subdomain", re.compile(r"in the subdomain of unrelated `[^`]*`$")),
         ("subdomain label imitates a brand", re.compile(r"in the subdomain of unrelated `[^`]*` imitates")),
         ("brand named in an unpopular site's subdomain (if suspicious)", re.compile(r"^brand `[^`]*` named in")),
         ("listed site named in an unlisted site's subdomain (if suspicious)", re.compile(r"named in the subdomain of "
                                                                                         r"`[^`]*`, a site not on")),
         ("country's ending written across the subdomain and the registered name",
          re.compile(r"written across the subdomain and unrelated `")),
         ("site's name written across the subdomain and the registered name (if suspicious)",
          re.compile(r"written across the subdomain and `[^`]*`, (?:not a popular site|a site not on)")),
         ("sign-in page on a public address (if suspicious)", re.compile(r"^a sign-in page \(")),
         ("program for download on a public address (if suspicious)", re.compile(r" for download \(`")),
         ("an e-mail address alone after # on an unlisted site (if suspicious)",
          re.compile(r"^an e-mail address.* alone after `#`")),
         ("an e-mail address alone as the query on an unlisted site (if suspicious)",
          re.compile(r"^an e-mail address.* alone after `\?`")),
         ("a copy of Hotmail's old inbox link on an unlisted site (if suspicious)",
          re.compile(r"^a copy of Hotmail's old inbox link")))


def kind_of(reason: str) -> str:
    return next((name for name, pattern in KINDS if pattern.search(reason)), "")


def main() -> None:
    table = pd.read_parquet(REPO / "data" / "validated.parquet", columns=["url", "label", "source"])
    hosts = table["url"].map(lambda url: url_fields(url)[2].lower().rstrip("."))
    distinct = sorted(set(hosts))
    splits = split_host_columns(distinct)
    manifest = load_manifest(REPO / "models")
    popular = read_popularity(REPO / "models", manifest)
    listed = [ranked_name(registered) in popular for registered in splits.registered]
    top = manifest["policy"].get("popular_rank", Policy(threshold=1.0).popular_rank)
    deceptive = [found or ("xn--" in registered and imitated_site(registered, popular)) or ""
                 for found, registered in zip(deceptive_hosts(distinct, splits), splits.registered, strict=True)]
    marked = ["xn--" in registered and marked_site(registered, popular, top) or "" for registered in splits.registered]
    # a host rule 3 calls deceptive is counted as such; a named brand or site only where nothing else is
    named = [brand or mark or site for brand, mark, site in zip(named_brands(splits, listed), marked,
                                                                named_sites(splits, listed, popular), strict=True)]
    reasons = {host: found or name for host, found, name in zip(distinct, deceptive, named, strict=True)}
    table["kind"] = hosts.map(lambda host: kind_of(reasons[host]))
    on_global = Decider(Policy(threshold=1.0)).global_addresses(distinct)
    on_address = hosts.map(dict(zip(distinct, on_global, strict=True))).to_numpy(dtype=bool)
    table.loc[on_address, "kind"] = table.loc[on_address, "url"].map(
        lambda url: kind_of(address_sign_in(url) or address_program(url)))
    # the hosts the pinned list does not vouch for: not on it, or where anyone can publish on a site of it (rule 6)
    unlisted = dict(zip(distinct, [not found or bool(user_content_host(host))
                                   for host, found in zip(distinct, listed, strict=True)], strict=True))
    victim = table["url"].str.contains(VICTIM_ADDRESS_PATTERN) & hosts.map(unlisted).to_numpy(dtype=bool) & \
        (table["kind"] == "")
    table.loc[victim, "kind"] = table.loc[victim, "url"].map(lambda url: kind_of(victim_address(url)))
    inbox = table["url"].str.contains(COPIED_INBOX_PATTERN) & hosts.map(unlisted).to_numpy(dtype=bool) & \
        (table["kind"] == "")
    table.loc[inbox, "kind"] = table.loc[inbox, "url"].map(lambda url: kind_of(copied_inbox_link(url)))
    disguised = (table["url"].map(disguised_program) != "") & hosts.map(unlisted).to_numpy(dtype=bool)
    print(f"Windows programs named as documents: {disguised.sum():,} URLs, by label "
          f"{table.loc[disguised, 'label'].value_counts().sort_index().to_dict()} (their hosts' kinds: "
          f"{table.loc[disguised, 'kind'].replace('', 'none').value_counts().to_dict()})")
    overridden = table["url"].map(reversed_text) != ""
    print(f"Names written with a bidirectional override: {overridden.sum():,} URLs, by label "
          f"{table.loc[overridden, 'label'].value_counts().sort_index().to_dict()}")
    marked = table[table["kind"] != ""]
    print(f"{len(table):,} URLs, {len(distinct):,} hosts; deceptive by construction: {len(marked):,}")
    print(marked.groupby(["kind", "source", "label"]).size().rename("urls").to_string())
    print("\ndistinct hosts by kind and label:")
    print(marked.groupby(["kind", "label"]).apply(lambda rows: hosts[rows.index].nunique()).rename("hosts").to_string())
    legitimate = marked[marked["label"] == 0]
    print("\nlegitimate URLs marked, by kind (first 5 each):")
    for kind, rows in legitimate.groupby("kind"):
        print(f"  {kind}: {len(rows):,}  " + "  ".join(rows["url"].str[:70].head(5)))
    # the names under a company's own suffix (`OPERATOR_SERVICES`): those that carry the suffix's rank, and the rest
    for suffix, services in OPERATOR_SERVICES.items():
        under = hosts.str.endswith("." + suffix).to_numpy()
        ranked = [ranked_name(host_registered_domain(host)) == suffix for host in hosts[under]]
        counts = table.loc[under].assign(ranked=ranked).groupby(["ranked", "label"]).size().to_dict()
        print(f"\nURLs under {suffix} whose name carries its rank ({len(services)} services) / does not, by "
              f"(ranked, label): {counts}")
    # the list's own punycode names, each asked as if it were not listed: would the look-alike rules take a
    # popular site's own spelling for another listed site's imitation?
    listed_punycode = [name for name in popular if "xn--" in name]
    others = {name: {site: rank for site, rank in popular.items() if site != name} for name in listed_punycode}
    taken = [name for name in listed_punycode
             if imitated_site(name, others[name]) or marked_site(name, others[name], top)]
    print(f"\nthe pinned list's {len(listed_punycode):,} punycode names read as another listed site: {len(taken)}"
          + (f" ({', '.join(taken[:5])})" if taken else ""))


if __name__ == "__main__":
    main()
