"""Credentials never reach a message: one redaction rule (core/redact.py) for every URI and DSN printed or logged,
clear errors for malformed DSNs and Mongo URIs, and an unreachable registry named as such."""

from __future__ import annotations

import base64
import socket
import time
import warnings
from pathlib import Path
from urllib.parse import quote

import pytest
from fixtures_model import model_dir  # noqa: F401
from typer.testing import CliRunner

from cybersentinel.cli.app import app
from cybersentinel.core.redact import mask_credentials, mask_password, mask_secret_parameters, redact
from cybersentinel.core.retry import one_line
from cybersentinel.ingest.base import SourceError
from cybersentinel.ingest.mongodb import describe_mongodb_uri, mongo_client
from cybersentinel.ingest.postgres import describe_dsn
from cybersentinel.tracking.runs import stage_run
from cybersentinel.url.parsing import browser_url

SECRET = "s3cr3tTail"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("text", [
    f"http://user:{SECRET}@mlflow.example:5000/",
    f"see https://user:{SECRET}@mlflow.example/x and more",
    f"postgresql://analyst:p@{SECRET}@db.example:5432/intel",
    f"postgresql://analyst:p@ss/{SECRET}@db.example/intel",
    f"host=db.example password={SECRET} dbname=intel",
    f"host=db.example password = '{SECRET} with blanks' dbname=intel",
    f"mongodb://reader:{SECRET}@h1.example,h2.example:27018/intel?authSource=admin",
    f"mongodb+srv://reader:{SECRET}@cluster.example/intel",
    f"s3://bucket/x?endpoint=http://key:{SECRET}@minio.example:9000",
])
def test_credentials_are_redacted(text: str) -> None:
    shown = redact(text)
    assert SECRET not in shown and "***" in shown


def test_text_without_credentials_is_unchanged() -> None:
    for text in ("http://mlflow.example:5000/", "sqlite:////tmp/mlflow.db", "https://x.example/a@b",
                 "user@example.org wrote", "dbname=intel host=db"):
        assert redact(text) == text
    assert redact("http://u:pw@db.example:5432/intel") == "http://***@db.example:5432/intel"


@pytest.mark.parametrize(("text", "redacted"), [
    (f"http://api.example/p1?api_key={SECRET}&cursor=2", "http://api.example/p1?api_key=***&cursor=2"),
    (f"/p2?cursor=2&X-API-Key={SECRET}", "/p2?cursor=2&X-API-Key=***"),
    (f"https://b.s3.example/o?X-Amz-Signature={SECRET}#f", "https://b.s3.example/o?X-Amz-Signature=***#f"),
    (f"next: http://x/?access_token={SECRET} failed", "next: http://x/?access_token=*** failed"),
    ("http://x/?monkeys=1&keyboard=2&q=token", "http://x/?monkeys=1&keyboard=2&q=token"),  # no credential there
    (f"http://x/?accessToken={SECRET}&sslpassword={SECRET}", "http://x/?accessToken=***&sslpassword=***"),
    (f"https://user:{SECRET}\t16@db.example/", "https://***@db.example/"),  # a tab inside the user-info
])
def test_credentials_in_query_parameters_are_redacted(text: str, redacted: str) -> None:
    assert redact(text) == redacted


@pytest.mark.parametrize(("text", "masked"), [
    (f"https://alice:{SECRET}@bank.example.org/login", "https://alice:***@bank.example.org/login"),
    (f"http://www.paypal.com:{SECRET}@evil.top/", "http://www.paypal.com:***@evil.top/"),
    (f"postgresql://analyst:p@{SECRET}@db.example/intel", "postgresql://analyst:***@db.example/intel"),
    (f"http://u:p/{SECRET}@host/x", "http://u:***@host/x"),  # no tail of the password leaks
    (f"http://go.example/r?to=https://u:{SECRET}@x.example/", "http://go.example/r?to=https://u:***@x.example/"),
    (f"see http://a:{SECRET}@c.example and HTTPS://d:{SECRET}@f.example ok",
     "see http://a:***@c.example and HTTPS://d:***@f.example ok"),
    (f"http:\\\\u:{SECRET}@h.example", "http:\\\\u:***@h.example"),  # as browsers read them
    (f"http:u:{SECRET}@h.example", "http:u:***@h.example"), (f"//u:{SECRET}@h.example", "//u:***@h.example"),
    (f"http://u:{SECRET}@[2001:db8::1]/", "http://u:***@[2001:db8::1]/"),
    ("https://alice:***@bank.example.org/login", "https://alice:***@bank.example.org/login"),  # idempotent
    (f"http://\tbob:{SECRET}@kit.example.net/x", "http://bob:***@kit.example.net/x"),  # a browser drops the tab
    (f"http://bob:\n{SECRET}@kit.example.net/x", "http://bob:***@kit.example.net/x"),
    # blanks in a URL's user-info, which the scorer reads as user-info all the same (the URL is the whole text)
    (f"http://alice:p {SECRET}@bank.example/", "http://alice:***@bank.example/"),
    (f"http://alice:{SECRET}\u3000@bank.example/", "http://alice:***@bank.example/"),
    (f" http://www.paypal.com:p {SECRET}@evil.top/", " http://www.paypal.com:***@evil.top/"),  # a blank before it
    (f"s3://AKIA:{SECRET} x@bucket/x.csv", "s3://AKIA:***@bucket/x.csv"),  # any scheme's "//"
    # no scheme: a ':' and an '@' before any '/' are user-info, as an address bar reads a typed address
    (f"alice:{SECRET}@bank.example/login", "alice:***@bank.example/login"),
    (f"www.paypal.com:{SECRET}@evil.top/x", "www.paypal.com:***@evil.top/x"),
    (f"alice:p {SECRET}@bank.example/", "alice:***@bank.example/"), (f"alice:{SECRET}@h", "alice:***@h"),
    (f"see alice:{SECRET}@bank.example ok", "see alice:***@bank.example ok"),
])
def test_mask_password_hides_the_password_and_keeps_the_user_name(text: str, masked: str) -> None:
    assert mask_password(text) == masked


@pytest.mark.parametrize("text", [
    "http://www.paypal.com@evil.top/", "http://evil.example:8080/login?email=a@b.example", "https://x.example/a@b",
    "http://[::1]:80/a@b", "mailto:bob@example.org", "user@example.org wrote", "http://u:@h.example", "a.example",
    "", "@", "://:@", "http://[::1", "http://[", "http://a]b", "http://[::1]x", "\ud800://\udfff@", "\x00:/:@",
    # a ':' and an '@' in a path or query, or after a scheme whose address is no user's
    "https://x.example/a:b@c", "x.example/a:b@c", "bank.example:8080/a@b", "x.example/?at=1:2@3",
    "MAILTO:bob@example.org", "sip:alice:1@voip.example", "xmpp:bob@chat.example", "javascript:alert(1)//@x",
    "news:a@b", ":pw@host",
])
def test_mask_password_leaves_other_text_alone_and_never_raises(text: str) -> None:
    assert mask_password(text) == text


@pytest.mark.parametrize(("url", "masked"), [
    ("https://x.example/cb?access_token=abc&code=xyz", "https://x.example/cb?access_token=***&code=***"),
    ("https://x.example/cb#access_token=abc&id_token=j.w.t&state=s1", "https://x.example/cb#access_token=***"
     "&id_token=***&state=s1"),  # OAuth's implicit flow hands the tokens over in the fragment
    ("https://b.s3.example/o?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=9f&X-Amz-Security-Token=t&X-Amz-Expires=60",
     "https://b.s3.example/o?X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Security-Token=***&X-Amz-Expires=60"),
    ("http://kit.example/l.php?user=bob&pass=hunter 2&pwd=x;y&next=/", "http://kit.example/l.php?user=bob&pass=***"
     "&pwd=***&next=/"),  # a value runs to the next '&' or '#': blanks and ';' too
    ("https://x.example/?accessToken=a&Refresh-Token=b&acc%65ss_token=c&API_KEY=d&sig=e&SessionId=f",
     "https://x.example/?accessToken=***&Refresh-Token=***&acc%65ss_token=***&API_KEY=***&sig=***&SessionId=***"),
    ("https://x.example/?a=1;token=t1&next=/b?secret=s2", "https://x.example/?a=1;token=***&next=/b?secret=***"),
    ("https://x.example/a&token=t/b", "https://x.example/a&token=t/b"),  # in the path: no parameter
    ("https://x.example/?key=k1&monkey=m&tokens=2&q=token&token=", "https://x.example/?key=k1&monkey=m&tokens=2"
     "&q=token&token="),  # `key` names a record as often as a credential; an empty value stays empty
    ("https://x.example/cb?code=***", "https://x.example/cb?code=***"), ("token=1", "token=1"), ("?", "?"), ("", ""),
    # names a review found unmasked (session 42): `redact` masked some of them in messages
    ("https://x.example/cb?api_token=a&oauth_token=b&oauth_verifier=c&secret_key=d&access_key=e&private_key=f"
     "&auth_key=g", "https://x.example/cb?api_token=***&oauth_token=***&oauth_verifier=***&secret_key=***"
     "&access_key=***&private_key=***&auth_key=***"),
    ("https://sso.example/cas/login?ticket=ST-1&PHPSESSID=p&sid=s&jwt=j&SAMLResponse=r&access_token[]=t",
     "https://sso.example/cas/login?ticket=***&PHPSESSID=***&sid=***&jwt=***&SAMLResponse=***&access_token[]=***"),
])
def test_mask_secret_parameters_hides_credential_values_by_name(url: str, masked: str) -> None:
    assert mask_secret_parameters(url) == masked
    assert mask_secret_parameters(masked) == masked  # idempotent


SAFE_LINK = ("https://nam12.safelinks.protection.outlook.com/?url=https%3A%2F%2Fapp.example.com%2Fcb%3Fcode%3D{}"
             "%26state%3Dx%2By%26lang%3Den&data=05%7C01%7Cbob%40corp.example&reserved=0")


@pytest.mark.parametrize(("url", "masked"), [
    # a token in a URL handed over as a parameter's value, percent-encoded: the rest of the value kept byte for byte
    (SAFE_LINK.format(SECRET), SAFE_LINK.format("***")),
    (f"https://example.com/r?next=https%3A%2F%2Fx.example%2Flogin%3Faccess_token%3D{SECRET}",
     "https://example.com/r?next=https%3A%2F%2Fx.example%2Flogin%3Faccess_token%3D***"),
    (f"https://example.com/r?next=https%3a%2f%2fx.example%2fcb%23id_token%3d{SECRET}%26state%3d1&lang=en",
     "https://example.com/r?next=https%3a%2f%2fx.example%2fcb%23id_token%3d***%26state%3d1&lang=en"),  # lower case
    # encoded twice (such a link inside another): its value ends at its own or an outer level's separator
    (f"https://go.example/?u=https%3A%2F%2Fnam12.safelinks.example%2F%3Furl%3Dhttps%253A%252F%252Fa.example%252Fcb"
     f"%253Fcode%253D{SECRET}%2526state%253Dx%26data%3D1",
     "https://go.example/?u=https%3A%2F%2Fnam12.safelinks.example%2F%3Furl%3Dhttps%253A%252F%252Fa.example%252Fcb"
     "%253Fcode%253D***%2526state%253Dx%26data%3D1"),
    (f"https://go.example/?u=x%3Fcode%3D{SECRET}%2526tail%26lang%3Den",  # a '&' in the token itself, encoded again
     "https://go.example/?u=x%3Fcode%3D***%26lang%3Den"),
    (f"https://go.example/?u=x%253Faccess_token%255B%255D%253D{SECRET}", "https://go.example/?u=x%253Faccess_token"
     "%255B%255D%253D***"),
    ("https://go.example/?u=x%3Fstate%3D1%26q%3Dtoken", "https://go.example/?u=x%3Fstate%3D1%26q%3Dtoken"),
])
def test_mask_secret_parameters_hides_credentials_in_an_encoded_url_in_a_value(url: str, masked: str) -> None:
    assert mask_secret_parameters(url) == masked
    assert mask_secret_parameters(masked) == masked  # idempotent


RESET = f"https://bob:{SECRET}@bank.example/reset?token={SECRET}&user=bob"
RESET_BYTES = RESET.encode()


@pytest.mark.parametrize("link", [
    # mail gateways and a search engine write the page a link leads to in another encoding than a query's
    f"https://eu-west-1.protection.sophos.com/?d=bank.example&u={base64.b64encode(RESET_BYTES).decode()}&p=m&i=NjA",
    f"https://eu-west-1.protection.sophos.com/?u={quote(base64.b64encode(RESET_BYTES + b'12'))}&p=m",  # %3D padding
    f"https://www.bing.com/ck/a?!&&p=5f&u=a1{base64.urlsafe_b64encode(RESET_BYTES).decode().rstrip('=')}&ntb=1",
    f"https://urldefense.proofpoint.com/v2/url?u=https-3A__bob-3A{SECRET}-40bank.example_reset-3Ftoken-3D{SECRET}"
    "-26user-3Dbob&d=DwM",
    f"https://secure-web.cisco.com/1vbkhrbOYdyg8pdI2OZ_x-Y/{quote(RESET, safe='')}",  # escaped, as a path segment
    f"https://nam12.safelinks.protection.outlook.com/?url={quote(RESET, safe='')}&data=05",  # escaped in a value
])
def test_a_credential_in_a_wrapped_links_page_is_masked_and_the_link_still_leads_there(link: str) -> None:
    masked = mask_credentials(link)
    page = browser_url(masked)  # the gateway's link read as the page it leads to (`url.parsing.redirect_target`)
    assert SECRET not in masked and SECRET not in page
    assert page.startswith("https://bob:***@bank.example/reset?token=***&user=bob")
    assert page == mask_credentials(browser_url(link))  # masking the link masks the page it leads to
    assert mask_credentials(masked) == masked  # idempotent


@pytest.mark.parametrize("url", [
    "https://eu-west-1.protection.sophos.com/?u=aHR0cHM6Ly9iYW5rLmV4YW1wbGUvYQ==&p=m",  # https://bank.example/a
    "https://x.example/?u=aHR0cHM6Ly9%%%&p=1",  # not base64
    "https://x.example/?u=aHR0c_w&p=1",  # bytes that are not UTF-8
    "https://urldefense.proofpoint.com/v2/url?u=https-3A__bank.example_a-3Fq-3D1&d=DwM",
    "https://x.example/?u=https%3A%2F%2Fbank.example%3A8443%2Fa%40b",  # a port, then a path's '@': no user-info
    "https://x.example/?u=https%3A%2F%2Fbob%40bank.example%2F",  # a user's name, no password: evidence
])
def test_a_wrapped_link_without_a_credential_is_kept_as_written(url: str) -> None:
    assert mask_credentials(url) == url


def test_encoded_pages_are_found_in_linear_time_on_hostile_text() -> None:
    started = time.monotonic()
    for text in ("?" + "=aHR0c" * 100_000, "?u=aHR0c" + "A" * 400_000 + "!", "?" + "=https-3A__" * 100_000,
                 "/" + "%3Ftoken%3D" * 100_000, "?u=http%3A%2F%2Fa" + "%3Ab" * 100_000,
                 "?u=http%3A%2F%2Fa%3A" + "b" * 400_000 + "%2F", "?" + "http%3A%2F%2Fa%3Ab" * 50_000):
        mask_secret_parameters(text)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(("url", "masked"), [
    (f"https://shop.example/cart;jsessionid={SECRET}?item=1", "https://shop.example/cart;jsessionid=***?item=1"),
    (f"https://shop.example/a;JSESSIONID={SECRET}/b;v=2", "https://shop.example/a;JSESSIONID=***/b;v=2"),
    (f"https://shop.example/a;sessionid={SECRET};phpsessid={SECRET}#top", "https://shop.example/a;sessionid=***"
     ";phpsessid=***#top"),
    (f"shop.example/a;jsessionid={SECRET}", "shop.example/a;jsessionid=***"),  # a page key: no scheme
    ("https://shop.example/a;v=2;key=1/b", "https://shop.example/a;v=2;key=1/b"),  # no credential, as in a query
    # before the path it is user-info hiding the real host (evidence): a mask there had erased `evil.top`
    ("http://www.paypal.com;sid=1@evil.top/login", "http://www.paypal.com;sid=1@evil.top/login"),
    ("www.paypal.com;token=1@evil.top/login", "www.paypal.com;token=1@evil.top/login"),
    (f"http://x.example/a;sid={SECRET}@evil.top/b", "http://x.example/a;sid=***@evil.top/b"),
])
def test_mask_secret_parameters_hides_credentials_in_path_parameters(url: str, masked: str) -> None:
    assert mask_secret_parameters(url) == masked
    assert mask_credentials(url) == masked and mask_secret_parameters(masked) == masked


def test_mask_secret_parameters_takes_linear_time_on_hostile_text() -> None:
    started = time.monotonic()
    for text in ("?" + "%3Fa" * 100_000, "?a=" + "%253F" * 100_000 + "code%253D", "/" + ";a" * 200_000 + "=",
                 "?u=" + "%3Fcode%3D%25" * 100_000, "?" + "%26token%3D%25x" * 100_000, ";" * 400_000 + "=?"):
        mask_secret_parameters(text)
    assert time.monotonic() - started < 5


def test_mask_credentials_hides_both_and_keeps_the_rest_as_evidence() -> None:
    assert mask_credentials(f"https://alice:{SECRET}@x.example/cb?access_token={SECRET}&code={SECRET}&lang=en") == (
        "https://alice:***@x.example/cb?access_token=***&code=***&lang=en")
    assert mask_credentials(f"alice:{SECRET}@bank.example/login?pwd={SECRET}") == "alice:***@bank.example/login?pwd=***"
    started = time.monotonic()
    for text in ("?" + "token=a&" * 100_000, "?" * 400_000 + "=", "?" + "a=b;" * 100_000 + "#token=1"):
        mask_credentials(text)
    assert time.monotonic() - started < 5


def test_mask_password_takes_linear_time_on_hostile_text() -> None:
    started = time.monotonic()
    for text in ("x://" * 200_000 + " @", "@" + "a://a:" * 200_000, "http://" + "/" * 200_000 + "@",
                 "a." * 200_000 + "@", ":/" * 200_000 + "@"):
        mask_password(text)
    assert time.monotonic() - started < 5  # a backtracking pattern takes minutes (a scored body may hold 4 MB)


def test_exception_messages_are_redacted() -> None:
    assert SECRET not in one_line(ConnectionError(f"cannot reach http://u:{SECRET}@host:5000/api"))


def test_a_postgres_password_with_an_at_sign_does_not_leak_its_tail() -> None:
    with pytest.raises(SourceError) as caught:
        describe_dsn(f"postgresql://analyst:p@{SECRET}@db.example:5432/intel")
    assert SECRET not in str(caught.value) and "%40" in str(caught.value)
    with pytest.raises(SourceError) as caught:  # digits, then a '/': libpq reads a port and a database name
        describe_dsn(f"postgresql://analyst:1234/{SECRET}@db.example:5432/intel")
    assert SECRET not in str(caught.value) and "%2F" in str(caught.value)
    assert describe_dsn("postgresql://analyst:pw@db.example:5432/intel") == "analyst@db.example:5432/intel"


@pytest.mark.parametrize("dsn", [f"host=127.0.0.1 port=1 password=ab {SECRET}", f"postgresql://u:p@{SECRET}@127.0.0.1:1/d",
                                 "postgresql://u:pw@127.0.0.1:notaport/d"])
def test_etl_with_a_malformed_dsn_is_a_clear_error(dsn: str) -> None:
    result = CliRunner().invoke(app, ["etl", "migrate", "--to", "postgres"], env={"CYBERSENTINEL_PG_DSN": dsn})
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit), result.exception
    assert "not valid" in result.output and SECRET not in result.output


@pytest.mark.parametrize("uri", [f"mongodb://u:{SECRET}@host:notaport/db", f"mongodb://u:x@{SECRET}@host/db",
                                 f"mongodb://u:{SECRET}@[bad/db", f"notmongo://u:{SECRET}@host/db"])
def test_a_malformed_mongo_uri_is_a_clear_error(uri: str, monkeypatch) -> None:
    with pytest.raises(SourceError) as caught:
        mongo_client(uri, {"connect_timeout_s": 1})
    assert SECRET not in str(caught.value) and "MongoDB URI" in str(caught.value)
    assert SECRET not in describe_mongodb_uri(uri)
    result = CliRunner().invoke(app, ["etl", "migrate", "--to", "mongodb"], env={"CYBERSENTINEL_MONGODB_URI": uri})
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit), result.exception
    assert SECRET not in result.output


def test_the_stage_tracking_warning_hides_the_password(monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://user:{SECRET}@127.0.0.1:{closed_port()}")
    with warnings.catch_warnings(record=True) as caught, stage_run("train", "exp"):
        warnings.simplefilter("always")
    messages = " ".join(str(w.message) for w in caught)
    assert "unreachable" in messages and SECRET not in messages and "127.0.0.1" in messages


def test_fetch_model_and_serve_report_an_unreachable_registry_without_the_password(model_dir: Path,  # noqa: F811
                                                                                    tmp_path: Path) -> None:
    env = {"MLFLOW_TRACKING_URI": f"http://user:{SECRET}@127.0.0.1:{closed_port()}"}
    fetched = CliRunner().invoke(app, ["fetch-model", "--out", str(tmp_path / "m"), "--name", "x"], env=env)
    assert fetched.exit_code == 2, fetched.output
    assert "unreachable" in fetched.output and "no version with alias" not in fetched.output
    assert SECRET not in fetched.output
    served = CliRunner().invoke(app, ["serve", "--model-alias", "champion", "--model-dir", str(model_dir)], env=env)
    assert served.exit_code == 2, served.output
    assert "unreachable" in served.output and SECRET not in served.output


def test_promote_reports_an_unreachable_registry_quickly_without_the_password(tmp_path: Path) -> None:
    test = tmp_path / "test.parquet"
    test.write_bytes(b"PAR1")  # never read: the registry is asked first
    env = {"MLFLOW_TRACKING_URI": f"http://user:{SECRET}@127.0.0.1:{closed_port()}",
           "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}  # without the probe, MLflow's default retries take minutes
    started = time.monotonic()
    result = CliRunner().invoke(app, ["promote", "--name", "x", "--test-data", str(test)], env=env)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert "unreachable" in result.output and SECRET not in result.output
    assert time.monotonic() - started < 30
