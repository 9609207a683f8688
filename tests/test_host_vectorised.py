"""The batch host paths equal their one-host references value for value: `host_rows` vs `host_row` (the
featurizer's host table), `deceptive_hosts` vs `deceptive_host` and `Decider.plain_evidence` vs
`Decider.evidence` (the decision policy), on hosts chosen for their edge cases."""

from __future__ import annotations

import numpy as np

from cybersentinel.features.familiarity import NameFamiliarity
from cybersentinel.features.lexical import (
    _HOST_COLUMNS,
    _host_cache,
    _host_table,
    _host_table_and_names,
    host_familiarity,
    host_row,
    host_rows,
)
from cybersentinel.scoring.decider import Decider, deceptive_host, deceptive_hosts
from cybersentinel.scoring.policy import Policy, SiteList
from cybersentinel.url.parsing import (
    FEW_HOSTS,
    PLAIN_NAME,
    _split_host,
    canonical_host,
    host_registered_domain,
    plain_names,
    split_host_columns,
    without_www,
)

HOSTS = [
    "", "a", "www", "www.", "com", "co.uk", "example.com", "www.example.com", "www.www.example.com",
    "a.b.c.example.co.uk", "x.github.io", "www.x.github.io", "github.io", "a.b.c.kawasaki.jp", "city.kawasaki.jp",
    # IP addresses and look-alikes
    "1.2.3.4", "[::1]", "[2001:db8::1]", "3232235521", "0x7f000001", "1.2.3", "999.1.1.1", "1.2.3.4.5",
    "localhost", "foo.localhost",
    # IDN, punycode, look-alikes, brands
    "xn--pple-43d.com", "xn--80ak6aa92e.com", "xn--zz.com", "münchen.de", "аpple.com", "école.fr", "a.公司.cn",
    "paypa1.com", "paypal.com", "secure-paypal.com.evil.ml", "paypal.com.evil.tk", "www.paypal-login.xyz",
    "rnicrosoft.com", "app1e-id.com", "wellsfargo.com", "login.microsoft.com.x.ru", "bit.ly", "www.bit.ly",
    # trailing and empty labels, very long labels, odd characters
    "example.com.", "a..b.com", ".com", "-a-.com", "a_b.example.net", "exa mple.com", "a\nb.com", "\ufffd.com",
    "b" * 300 + ".example.co.uk", "x" * 63 + "." + "y" * 63 + ".com", "bcdfghjklmnpqrstvwxz.top", "aaaa.tk",
    "AbC.com", "tinyurl.com", "a.com-login.example.org", "x.y.z.example.museum", "example.notatld", "_dmarc.x.com",
]


def test_host_rows_equal_host_row_for_every_edge_case() -> None:
    expected = np.array([host_row(h) for h in HOSTS], dtype=np.float64)
    got = host_rows(HOSTS)
    assert got.shape == (len(HOSTS), len(_HOST_COLUMNS))
    # byte for byte: the same floats (signed zeros and entropy sums included), not just close ones
    assert got.tobytes() == expected.tobytes()
    assert host_rows([]).shape == (0, len(_HOST_COLUMNS))


def test_the_cached_host_table_equals_host_row_in_float32() -> None:
    encoded = [h.encode("utf-8", "replace") for h in HOSTS]
    _host_cache.clear()
    first = _host_table(encoded[:10])  # some cached, the rest computed together with the cached ones in between
    table = _host_table(encoded)
    reference = np.array([host_row(h.decode("utf-8", "replace")) for h in encoded], dtype=np.float32)
    assert table.tobytes() == reference.tobytes()
    assert first.tobytes() == reference[:10].tobytes()


def test_the_host_tables_split_is_the_one_familiarity_would_make() -> None:
    """`host_familiarity` reads the names `_host_table_and_names` split rather than splitting them again: the same
    labels and registered domains, so the same values as when it splits them itself."""
    many = [*HOSTS, *(f"shop{i}.bakery{i}.co.uk" for i in range(20))]  # more than a few: split together
    encoded = [h.encode("utf-8", "replace") for h in dict.fromkeys(many)]
    _host_cache.clear()
    table, names = _host_table_and_names(encoded)
    assert set(names) == set(encoded)  # all new: each named
    texts = [h.decode("utf-8", "replace") for h in encoded]
    splits = split_host_columns(texts)
    assert [names[h] for h in encoded] == list(zip(splits.domain, splits.registered, map(without_www, splits.subdomain),
                                                   splits.is_ip, strict=True))
    popular = ["example.com", "paypal.com", "github.io", "kawasaki.jp", "wellsfargo.com", "bakery.co.uk"]
    shared = host_familiarity(encoded, table, NameFamiliarity.fit(popular), names)
    alone = host_familiarity(encoded, table, NameFamiliarity.fit(popular))
    assert shared.tobytes() == alone.tobytes() and shared.any()
    assert _host_table_and_names(encoded)[1] == {}  # all cached now: nothing split


def test_a_new_hosts_familiarity_alone_equals_the_batchs() -> None:
    """A service request's new host takes `host_familiarity`'s one-host path (`NameFamiliarity.of_name`, with the
    label and registered domain `_host_table_and_names` split for its row): bit for bit the batch's `of_names`,
    listed sites' own names and remembered values included."""
    popular = ["example.com", "paypal.com", "github.io", "kawasaki.jp", "wellsfargo.com", "bakery.co.uk", "x.github.io"]
    many = [*HOSTS, *(f"shop{i}.bakery{i}.co.uk" for i in range(20)), "bakery.co.uk", "www.example.com"]
    encoded = [h.encode("utf-8", "replace") for h in dict.fromkeys(many)]
    _host_cache.clear()
    batch = host_familiarity(encoded, _host_table(encoded), NameFamiliarity.fit(popular))
    assert batch.any()
    alone = NameFamiliarity.fit(popular)
    for i, host in enumerate(encoded):
        _host_cache.clear()
        table, names = _host_table_and_names([host])
        assert set(names) == {host}  # split for its row, and read by familiarity
        found = host_familiarity([host], table, alone, names)
        assert found.tobytes() == batch[i:i + 1].tobytes(), host
        assert host_familiarity([host], table, alone).tobytes() == found.tobytes()  # remembered


def test_deceptive_hosts_equal_deceptive_host() -> None:
    names = [canonical_host(h) or h for h in HOSTS]
    found = deceptive_hosts(names)
    assert found == [deceptive_host(h) for h in names]
    assert any(found)  # the fixture holds deceptive names: the comparison is not between empty strings only
    assert deceptive_hosts([]) == []


def test_plain_evidence_equals_evidence_one_by_one_even_when_the_cache_empties() -> None:
    policy = Policy(threshold=0.5)
    lists = dict(allow=SiteList(["example.com"]), block=SiteList(["evil.ml"]),
                 popularity={"paypal.com": 3, "github.io": 50})
    reference = Decider(policy, **lists)
    expected = [reference.evidence(h, False) for h in HOSTS]
    batch = Decider(policy, **lists, cache_size=7)  # fills and empties several times within one call
    batch.evidence(HOSTS[3], False)
    assert batch.plain_evidence(HOSTS) == expected
    assert batch.plain_evidence(HOSTS[::-1]) == expected[::-1]


def test_batch_entries_equal_evidence_entries_with_whether_they_change_anything() -> None:
    # a batch's new hosts (split by the suffix kernel) get the entries each host gets alone (split one by one),
    # and the flag cached with them is the policy's own `Evidence.changes_anything`
    policy = Policy(threshold=0.5, popular_rank=10, popular_name_rank=60)
    lists = dict(allow=SiteList(["example.com"]), block=SiteList(["evil.ml"]),
                 popularity={"paypal.com": 3, "github.io": 50, "bit.ly": 10})
    hosts = HOSTS + ["notlocalhost.com", "a.b.bit.ly", "mail.evil.ml"]
    assert len(hosts) > FEW_HOSTS
    reference = Decider(policy, **lists)
    alone = [reference.evidence(h, False) for h in hosts]
    expected = [(*evidence, evidence.changes_anything(policy)) for evidence in alone]
    assert Decider(policy, **lists)._entries(hosts, False) == expected
    assert {entry[-1] for entry in expected} == {True, False}


def test_the_suffix_kernel_splits_as_the_one_host_split() -> None:
    # `split_host_columns` walks the suffix trie in a byte kernel for a batch: wildcard and exception rules,
    # private suffixes, hosts that are a suffix, names under no suffix and IPv4-like names (left to `_split_host`)
    hosts = HOSTS + ["a.b.c.kawasaki.jp", "city.kawasaki.jp", "x.city.kawasaki.jp", "www.ck", "x.www.ck", "foo.ck",
                     "ck", "foo.bd", "a.foo.bd", "s3.amazonaws.com", "b.s3.amazonaws.com", "x.blogspot.com", "intranet",
                     "1.2.3.04", "deadbeef.com", "0x1.com", "a.xn--p1ai", "x" * 600 + ".com",
                     ".".join("a" * 300) + ".com"]
    assert len(hosts) > FEW_HOSTS
    found = split_host_columns(hosts)
    expected = [_split_host(h) for h in hosts]
    assert list(zip(found.subdomain, found.domain, found.suffix, found.is_ip, found.private, strict=True)) == expected
    assert found.registered == [host_registered_domain(h) for h in hosts]
    assert any(found.private) and any(found.is_ip) and "" in found.suffix
    assert split_host_columns(hosts[:3]).registered == found.registered[:3]  # a few hosts: one by one


def test_plain_names_in_a_batch_are_the_plain_name_pattern() -> None:
    # `plain_names` runs PLAIN_NAME through RE2 for a batch (its look-ahead as a second search)
    hosts = HOSTS + ["abc", "0x1f.com", "deadbeef", "a-b", "-ab", "ab-", "a.b.", "1.2.3.4", "xn--p1ai", "g", "0"]
    assert len(hosts) > FEW_HOSTS
    expected = [PLAIN_NAME.fullmatch(h) is not None for h in hosts]
    assert plain_names(hosts) == expected == [plain_names([h])[0] for h in hosts]
    assert any(expected) and not all(expected)
