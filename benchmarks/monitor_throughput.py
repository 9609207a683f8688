"""How fast `cybersentinel monitor` reads a log it is handed whole (`--once`): lines per second and CPU per line.

The log is written from real URLs (data/validated.parquet, else the offline mirror's upstream JSON), drawn with
replacement from ``--distinct`` of them so that URLs and hosts repeat as they do in traffic, as one of:
``suricata`` (EVE JSON: each request an ``http`` event, a ``dns`` query for its host and a ``tls`` event),
``zeek`` (a tab-separated http.log with its header) or ``squid`` (native access log). Clients are home addresses
(10.0.x.y), servers global ones. The command runs with the model in models/ and the feeds in data/feeds (when
there), as a user runs it, alerts to a file. Prints figures; asserts nothing.

    python benchmarks/monitor_throughput.py                       # 200,000 lines of each format
    python benchmarks/monitor_throughput.py --lines 50000 --formats suricata
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
FORMATS = ("suricata", "zeek", "squid")
ZEEK_FIELDS = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "trans_depth", "method", "host",
               "uri", "referrer", "version", "user_agent", "request_body_len", "response_body_len", "status_code"]


def real_urls() -> list[str]:
    validated = REPO / "data" / "validated.parquet"
    if validated.is_file():
        return pd.read_parquet(validated, columns=["url"])["url"].tolist()
    mirror = Path(os.environ.get("CYBERSENTINEL_DATA_MIRROR", REPO.parent / "shared" / "data" / "upstream"))
    return [url for name in ("data_legitimate_36400.json", "data_phishing_37175.json")
            for url in json.loads((mirror / name).read_text())]


def host_and_path(url: str) -> tuple[str, str]:
    rest = url.split("://", 1)[-1]
    host, _, path = rest.partition("/")
    return host.split("@")[-1].split(":")[0].lower() or "example.com", "/" + path


def lines_of(fmt: str, picks: list[str], rng: random.Random) -> list[str]:
    out = ["\t".join(["#fields", *ZEEK_FIELDS])] if fmt == "zeek" else []
    for n, url in enumerate(picks):
        host, path = host_and_path(url)
        client = f"10.0.{rng.randrange(8)}.{rng.randrange(1, 250)}"
        server = f"93.184.{rng.randrange(256)}.{n % 250 + 1}"
        when = 1_733_393_702 + n / 1000
        if fmt == "suricata":
            common = {"timestamp": f"2026-12-05T10:00:{n % 60:02d}.000000+0000", "src_ip": client, "dest_ip": server}
            query = {"type": "query", "rrname": host, "rrtype": "A"}
            out += [json.dumps({**common, "event_type": "dns", "dns": query}),
                    json.dumps({**common, "event_type": "http", "dest_port": 80,
                                "http": {"hostname": host, "url": path, "http_method": "GET", "status": 200}}),
                    json.dumps({**common, "event_type": "tls", "dest_port": 443, "tls": {"sni": host}})]
        elif fmt == "zeek":
            out.append("\t".join([f"{when:.6f}", f"C{n:x}", client, "51712", server, "80", "1", "GET", host,
                                  path.replace("\t", "\\x09"), "-", "1.1", "Mozilla/5.0", "0", "512", "200"]))
        else:
            out.append(f"{when:.3f}    150 {client} TCP_MISS/200 1234 GET http://{host}{path.replace(' ', '%20')} - "
                       f"HIER_DIRECT/{server} text/html")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=200_000, help="requests per format (suricata writes 3 lines each)")
    parser.add_argument("--distinct", type=int, default=50_000, help="distinct URLs the requests are drawn from")
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    pool = rng.sample(real_urls(), args.distinct)
    picks = [rng.choice(pool) for _ in range(args.lines)]
    feeds = REPO / "data" / "feeds"
    print(f"{args.lines:,} requests drawn from {args.distinct:,} distinct real URLs; 2 cores, load average "
          f"{os.getloadavg()[0]:.1f} before")
    with tempfile.TemporaryDirectory(prefix="cybersentinel-monitor-bench-") as folder:
        for fmt in args.formats.split(","):
            log, alerts = Path(folder) / f"{fmt}.log", Path(folder) / f"{fmt}-alerts.jsonl"
            lines = lines_of(fmt, picks, rng)
            log.write_text("\n".join(lines) + "\n")
            command = [sys.executable, "-m", "cybersentinel", "monitor", str(log), "--format", fmt, "--once",
                       "--alerts", str(alerts), "--model-dir", str(REPO / "models"),
                       *(["--feeds-dir", str(feeds)] if feeds.is_dir() else ["--no-feeds"])]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            seconds = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if done.returncode != 0:
                print(f"{fmt}: exit {done.returncode}\n{done.stderr[-2000:]}")
                continue
            report = json.loads(done.stderr[done.stderr.index("{"):done.stderr.rindex("}") + 1])  # rich, on stderr
            cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
            print(f"{fmt:9s} {len(lines):>9,} lines in {seconds:6.1f} s (start-up included): "
                  f"{len(lines) / seconds:>9,.0f} lines/s, {1e6 * cpu / len(lines):6.1f} us of CPU per line; "
                  f"scored {report.get('urls_scored', 0):,} "
                  f"distinct sites and URLs, {report.get('alerts', 0):,} alerts, malformed {report['malformed']}")


if __name__ == "__main__":
    main()
