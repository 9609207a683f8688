"""The batch host paths equal their one-host references value for value: `host_rows` vs `host_row` (the
featurizer's host table), `deceptive_hosts` vs `deceptive_host` and `Decider.plain_evidence` vs
`Decider.evidence` (the decision policy), on hosts chosen for their edge cases."""

from __future__ import annotations

import numpy as np

from cybersentinel.features.lexical import _HOST_COLUMNS, _host_cache, _host_table, host_row, host_rows
from cybersentinel.scoring.decider import Decider, deceptive_host, deceptive_hosts
from cybersentinel.scoring.policy import Policy, SiteList
from cybersentinel.url.parsing import canonical_host

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


def test_plain_entries_equal_evidence_entries_with_whether_they_change_anything() -> None:
    # plain ASCII names skip `_evidence_of`'s IP checks: the same cache entries, the `changes_anything` flag included
    policy = Policy(threshold=0.5, popular_rank=10)
    lists = dict(allow=SiteList(["example.com"]), block=SiteList(["evil.ml"]),
                 popularity={"paypal.com": 3, "github.io": 50, "bit.ly": 10})
    hosts = HOSTS + ["notlocalhost.com", "a.b.bit.ly", "mail.evil.ml"]
    reference = Decider(policy, **lists)
    expected = [reference._entry(reference._evidence_of(h, False)) for h in hosts]
    assert Decider(policy, **lists)._plain_entries(hosts) == expected
    assert {entry[-1] for entry in expected} == {True, False}
