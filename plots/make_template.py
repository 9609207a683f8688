"""Write plots/offline.html, the page `dvc plots show --html-template plots/offline.html` fills: DVC's default page
loads vega, vega-lite and vega-embed from a CDN and renders blank offline; this one carries them inline.

The scripts come from the npm registry at the pinned versions (`npm pack`, which checks each tarball against the
registry's integrity hash); their SHA-256 go into plots/README.md, and tests/test_plots_offline.py checks the
page's inline scripts against those. Run: python plots/make_template.py (needs npm and the npm registry)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
# vega-lite 5 (not 6): DVC's templates are written for the v5 schema (and its older `selection` syntax).
PACKAGES = {"vega": ("5.33.1", "build/vega.min.js"), "vega-lite": ("5.23.0", "build/vega-lite.min.js"),
            "vega-embed": ("6.29.0", "build/vega-embed.min.js")}

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
{{refresh_tag}}
<title>CyberSentinel plots</title>
<!-- Offline: {names} from the npm registry, inlined (plots/README.md); DVC's CDN scripts are left out. -->
{scripts}
<style>
  body {{ font-family: system-ui, sans-serif; margin: 1rem; }}
  table {{ border-spacing: 15px; }}
</style>
</head>
<body>
{{plot_divs}}
</body>
</html>
"""


def fetch(name: str, version: str, member: str, workdir: Path) -> bytes:
    out = subprocess.run(["npm", "pack", f"{name}@{version}", "--json", "--pack-destination", str(workdir)],
                         check=True, capture_output=True, text=True).stdout
    packed = json.loads(out)[0]
    with tarfile.open(workdir / packed["filename"]) as archive:
        source = archive.extractfile(f"package/{member}")
        assert source is not None, f"{name}@{version} has no {member}"
        return source.read()


def main() -> None:
    scripts, rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (version, member) in PACKAGES.items():
            code = fetch(name, version, member, Path(tmp)).decode()
            assert "</script" not in code.lower() and not re.search(r"\{(plot_divs|scripts|refresh_tag)\}", code)
            digest = hashlib.sha256(code.encode()).hexdigest()
            scripts.append(f"<script>/* {name}@{version} {member} */\n{code}\n</script>")
            rows.append(f"| {name} | {version} | `{member}` | `{digest}` |")
    names = ", ".join(f"{n}@{v}" for n, (v, _) in PACKAGES.items())
    (HERE / "offline.html").write_text(PAGE.format(names=names, scripts="\n".join(scripts)))
    readme = (HERE / "README.md").read_text()
    table = "\n".join(["| package | version | file | SHA-256 |", "| --- | --- | --- | --- |", *rows])
    (HERE / "README.md").write_text(re.sub(r"\| package \|.*?(?=\n\n|\Z)", table, readme, flags=re.S))


if __name__ == "__main__":
    main()
