import pytest
from hypothesis import given
from hypothesis import strategies as st

from cybersentinel.url.parsing import normalise, parse_ip, registered_domain, split_url, url_fields


@pytest.mark.parametrize(
    ("raw", "host", "registered", "is_ip"),
    [
        ("http://login.paypal.com.evil.co.uk/x?y=1#z", "login.paypal.com.evil.co.uk", "evil.co.uk", False),
        ("WWW.Example.COM/Path", "www.example.com", "example.com", False),
        ("http://192.168.0.1:8080/admin", "192.168.0.1", "192.168.0.1", True),
        ("http://[2001:db8::1]:443/", "[2001:db8::1]", "[2001:db8::1]", True),
        ("http://user:pw@bank.com@203.0.113.9/", "203.0.113.9", "203.0.113.9", True),
        ("localhost:8080/x", "localhost", "localhost", False),
        ("http://3232235521/", "3232235521", "3232235521", True),
        ("xn--80ak6aa92e.com", "xn--80ak6aa92e.com", "xn--80ak6aa92e.com", False),
    ],
)
def test_split_url_finds_host_and_registered_domain(raw, host, registered, is_ip):
    parts = split_url(raw)
    assert (parts.host, parts.registered_domain, parts.is_ip) == (host, registered, is_ip)


def test_split_url_keeps_path_query_fragment_and_port():
    parts = split_url("https://a.example.org:8443/p/q.php?x=1&y=2#frag")
    assert (parts.scheme, parts.port, parts.path, parts.query, parts.fragment) == (
        "https", "8443", "/p/q.php", "x=1&y=2", "frag")


@pytest.mark.parametrize("raw", ["", None, float("nan"), b"\xff\xfe\x00bad", "http://[::1", "http://",
                                 "\x00\x1f\x7f", "a" * 70_000, "::::", "@@@", "http://[]/", 12345])
def test_split_url_is_total_on_garbage(raw):
    parts = split_url(raw)
    assert isinstance(parts.host, str)


@given(st.one_of(st.text(), st.binary()))
def test_split_url_never_raises(raw):
    split_url(raw)
    registered_domain(raw)
    normalise(raw)


def test_normalise_applies_the_data_readme_rule():
    assert normalise("HTTPS://WWW.Example.com/") == "example.com"
    assert normalise("http://example.com/a/") == "example.com/a"
    assert normalise("www.example.com") == "example.com"


def test_parse_ip_accepts_integer_and_hex_forms_but_not_names():
    assert str(parse_ip("3232235521")) == "192.168.0.1"
    assert str(parse_ip("0xC0A80001")) == "192.168.0.1"
    assert parse_ip("example.com") is None
    assert parse_ip("99999999999") is None


@pytest.mark.parametrize("url", ["HTTP://User:pw@WWW.Example.co.uk:8080/A/b.php?q=1#frag", "example.com:443/x",
                                 "//a.b@[2001:db8::1]:80/p", "localhost:8080/x", "http://h\\\\p?x#y", "", "  a  "])
def test_url_fields_are_split_urls_fields_without_the_host_split(url):
    parts = split_url(url)
    assert url_fields(url) == (parts.scheme, parts.userinfo, parts.host, parts.port, parts.path, parts.query,
                               parts.fragment)
