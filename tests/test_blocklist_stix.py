"""`blocklist export --format stix`: a STIX 2.1 bundle that the official parser (OASIS's `stix2`, with its pattern
validator) accepts, whose indicators keep their ids and times from one export to the next, and which reads back
nothing but its own fields from the file it replaces."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import stix2
from test_blocklist import DOMAINS, ROWS, blocklist_from_rows
from test_monitor import Scorer
from typer.testing import CliRunner

from cybersentinel.cli.app import app
from cybersentinel.ops.blocklist import STIX_IDENTITY, render_stix
from cybersentinel.ops.monitor import run_monitor

NOON, ONE = datetime(2026, 12, 5, 12, 0, tzinfo=UTC), datetime(2026, 12, 5, 13, 0, tzinfo=UTC)


def indicators(text: str) -> dict[str, dict]:
    return {item["name"]: item for item in json.loads(text)["objects"] if item["type"] == "indicator"}


def test_the_bundle_is_valid_stix_with_one_indicator_per_entry():
    bl = blocklist_from_rows()[0]
    text = render_stix(bl, now=NOON)
    bundle = stix2.parse(text, allow_custom=False)  # the specification's required fields, types, pattern grammar
    assert isinstance(bundle, stix2.Bundle) and bundle.objects[0].id == STIX_IDENTITY["id"]
    found = indicators(text)
    assert list(found) == [*DOMAINS, "1.2.3.4/32", "1.2.3.5/32", "2a00:1::5/128"]
    assert found["evil.example.com"]["pattern"] == "[domain-name:value = 'evil.example.com']"
    assert found["1.2.3.4/32"]["pattern"] == "[ipv4-addr:value = '1.2.3.4/32']"
    assert found["2a00:1::5/128"]["pattern"] == "[ipv6-addr:value = '2a00:1::5/128']"
    evil = found["evil.example.com"]
    assert (evil["confidence"], evil["description"]) == (99, "malicious (scored): second sighting")
    assert evil["created"] == evil["modified"] == evil["valid_from"] == "2026-12-05T12:00:00.000Z"
    assert all(item["created_by_ref"] == STIX_IDENTITY["id"] for item in found.values())
    assert stix2.parse(render_stix(blocklist_from_rows([])[0], now=NOON), allow_custom=False).objects[0].type == \
        "identity"  # an empty list is a bundle of the identity alone


def test_indicators_keep_their_ids_and_times_and_a_removed_one_is_revoked_once():
    first = render_stix(blocklist_from_rows()[0], now=NOON)
    assert render_stix(blocklist_from_rows()[0], first, now=ONE) == first  # nothing changed: the same file
    rows = [row for row in ROWS if "bücher" not in row[0]]
    rows[0] = ("http://evil.example.com/login", "malicious", "0.999", "second sighting")  # a new top score
    second = render_stix(blocklist_from_rows(rows)[0], first, now=ONE)
    stix2.parse(second, allow_custom=False)
    before, after = indicators(first), indicators(second)
    assert after["evil.example.com"]["id"] == before["evil.example.com"]["id"]
    assert (after["evil.example.com"]["created"], after["evil.example.com"]["modified"]) == \
        ("2026-12-05T12:00:00.000Z", "2026-12-05T13:00:00.000Z")
    assert after["1.2.3.4/32"] == before["1.2.3.4/32"]  # untouched
    gone = after["xn--bcher-phish-thb.de"]
    assert gone["revoked"] is True and gone["modified"] == "2026-12-05T13:00:00.000Z"
    third = render_stix(blocklist_from_rows(rows)[0], second, now=datetime(2026, 12, 6, tzinfo=UTC))
    assert "xn--bcher-phish-thb.de" not in indicators(third)  # told once; then gone
    assert json.loads(third)["id"] != json.loads(second)["id"] != json.loads(first)["id"]


def test_a_hand_edited_previous_bundle_gives_back_only_its_own_fields(tmp_path):
    first = json.loads(render_stix(blocklist_from_rows()[0], now=NOON))
    evil = next(item for item in first["objects"] if item.get("name") == "evil.example.com")
    evil["x_note"] = "<script>alert(1)</script>"  # a field we never write
    planted = {**evil, "id": "indicator--00000000-0000-4000-8000-000000000000", "name": "planted",
               "pattern": "[url:value = 'http://x/' OR file:name = 'a']"}  # not a pattern we write
    first["objects"] += [planted, "junk", {"type": "indicator"}]
    for previous in (json.dumps(first), "{not json", '{"objects": 3}', "[" * 10_000, ""):
        text = render_stix(blocklist_from_rows([row for row in ROWS if "evil" not in row[0]])[0], previous, now=ONE)
        stix2.parse(text, allow_custom=False)
        assert "<script>" not in text and "x_note" not in text and "planted" not in text
    revoked = indicators(render_stix(blocklist_from_rows([])[0], json.dumps(first), now=ONE))
    assert revoked["evil.example.com"]["revoked"] and "x_note" not in revoked["evil.example.com"]


def test_the_command_writes_the_bundle_and_the_monitor_renders_it_and_the_zone(tmp_path):
    scored = tmp_path / "scored.csv"
    scored.write_text("url,verdict,score,reasons\nhttp://kit.example.top/a,malicious,0.97,deceptive\n")
    result = CliRunner().invoke(app, ["blocklist", "export", str(scored), "-o", str(tmp_path / "out"), "-f", "stix",
                                      "--model-dir", str(tmp_path)], terminal_width=400)
    assert result.exit_code == 0, result.output
    bundle = tmp_path / "out" / "cybersentinel-stix.json"
    assert list(indicators(bundle.read_text())) == ["kit.example.top"] and bundle.stat().st_mode & 0o777 == 0o644
    # the monitor keeps both current as it blocks: the zone's serial goes up with each change, as export's does
    log, blocked, zone, stix = (tmp_path / name for name in ("access.log", "blocked.csv", "mon.rpz", "mon.json"))
    serials, names = [], []
    for url in ("http://kit.phish-one.top/a", "http://kit.phish-two.top/b"):
        with log.open("a") as handle:
            handle.write(f"1700000000.123    150 10.0.0.5 TCP_MISS/200 1234 GET {url} - HIER_DIRECT/- text/html\n")
        run_monitor(log, Scorer(), once=True, blocklist=blocked, render={"rpz": zone, "stix": stix},
                    alerts=open(tmp_path / "alerts.jsonl", "a"))  # noqa: SIM115 (closed with the process)
        serials.append(int(re.search(r"SOA\s+\S+\s+\S+\s+\((\d+)", zone.read_text()).group(1)))
        names.append(sorted(indicators(stix.read_text())))
    assert serials == [1, 2]
    assert names == [["kit.phish-one.top"], ["kit.phish-one.top", "kit.phish-two.top"]]
