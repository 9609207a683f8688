"""The software stage on tiny Debian packages built here with dpkg-deb: the stock WordPress paths, the public
DNS resolvers systemd-resolved names and wamerican's words, read from the mirror folder with their pinned SHA-256."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

RESOLVED_CONF = """#  This file is part of systemd.
# Some examples of DNS servers which may be used for DNS= and FallbackDNS=:
# Cloudflare: 1.1.1.1#cloudflare-dns.com 2606:4700:4700::1111#cloudflare-dns.com
# Google:     8.8.8.8#dns.google 2001:4860:4860:0::8888#DNS.Google
# Not an address: release#notes 999.1.1.1#bad.example
[Resolve]
DNS=10.0.0.1#not.a.comment
#DNS=
"""


# Excerpts in the shape of WordPress core's own sources (wp-includes/rest-api.php, post.php, a controller, the
# oEmbed controller), and a controller of another namespace whose routes pages do not link.
WORDPRESS_PHP = {
    "usr/share/wordpress/wp-includes/rest-api.php": "<?php\nfunction rest_get_url_prefix() {\n"
                                                    "\treturn apply_filters( 'rest_url_prefix', 'wp-json' );\n}\n",
    "usr/share/wordpress/wp-includes/post.php": "<?php\n\t\t\t'rest_base'             => 'pages',\n"
                                                "\t\t\t'rest_base' => 'posts',\n",
    "usr/share/wordpress/wp-includes/rest-api/endpoints/class-wp-rest-users-controller.php":
        "<?php\n\t\t$this->namespace = 'wp/v2';\n\t\t$this->rest_base = 'users';\n",
    "usr/share/wordpress/wp-includes/rest-api/endpoints/class-wp-rest-app-passwords-controller.php":
        "<?php\n\t\t$this->namespace = 'wp/v2';\n"
        "\t\t$this->rest_base = 'users/(?P<user_id>(?:[\\d]+|me))/application-passwords';\n",
    "usr/share/wordpress/wp-includes/rest-api/endpoints/class-wp-rest-site-health-controller.php":
        "<?php\n\t\t$this->namespace = 'wp-site-health/v1';\n\t\t$this->rest_base = 'tests';\n",
    "usr/share/wordpress/wp-includes/class-wp-oembed-controller.php":
        "<?php\n\t\tregister_rest_route(\n\t\t\t'oembed/1.0',\n\t\t\t'/embed',\n\t\t\tarray()\n\t\t);\n",
    "usr/share/wordpress/wp-includes/class-wp-rewrite.php":
        "<?php\nclass WP_Rewrite {\n\tpublic $author_base = 'author';\n\tpublic $search_base = 'search';\n"
        "\tpublic $pagination_base = 'page';\n\tpublic $feed_base = 'feed';\n",
}


def deb(tmp_path: Path, name: str, files: dict[str, str]) -> dict:
    root = tmp_path / "build" / name
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(f"Package: {name}\nVersion: 1\nArchitecture: all\n"
                                             "Maintainer: t <t@example.org>\nDescription: test\n")
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    out = tmp_path / "mirror" / f"{name}.deb"
    out.parent.mkdir(exist_ok=True)
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(out)], check=True,
                   capture_output=True)
    return {"label": name, "name": out.name, "url": "http://127.0.0.1:9/unused",
            "sha256": hashlib.sha256(out.read_bytes()).hexdigest()}


def run_stage(tmp_path: Path, software: dict) -> subprocess.CompletedProcess:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"software": software}))
    env = {**os.environ, "CYBERSENTINEL_SOFTWARE_MIRROR": str(tmp_path / "mirror")}
    return subprocess.run([sys.executable, str(REPO / "stages" / "software.py"), "--out", "software.txt",
                           "--resolvers", "resolvers.txt", "--words", "words.txt"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


WORD_LIST = "Aachen\naardvark\naardvark's\nab\ncafé\nZürich\nx-ray\naardvark\n"


def test_stock_paths_and_public_resolvers(tmp_path):
    wordpress = deb(tmp_path, "wordpress", {"usr/share/wordpress/wp-login.php": "<?php",
                                            "usr/share/wordpress/wp-admin/index.php": "<?php",
                                            "usr/share/doc/wordpress/README": "not served", **WORDPRESS_PHP})
    resolved = deb(tmp_path, "systemd-resolved", {"etc/systemd/resolved.conf": RESOLVED_CONF})
    english = {**deb(tmp_path, "wamerican", {"usr/share/dict/american-english": WORD_LIST}),
               "list": "usr/share/dict/american-english"}
    german = {**deb(tmp_path, "wngerman", {"usr/share/dict/ngerman": "Bäckerei\nAachen\nStraße\n"}),
              "list": "usr/share/dict/ngerman"}
    result = run_stage(tmp_path, {"wordpress": wordpress, "resolvers": resolved, "words": [english, german]})
    assert result.returncode == 0, result.stderr
    listed = (tmp_path / "software.txt").read_text().split()
    assert [p for p in listed if not p.startswith("/wp-includes/")] == [
        "/author/{slug}/", "/author/{slug}/feed/", "/author/{slug}/page/{n}/",  # from class-wp-rewrite.php
        "/wp-admin/", "/wp-admin/index.php", "/wp-json/", "/wp-json/oembed/1.0/embed", "/wp-json/wp/v2/pages",
        "/wp-json/wp/v2/posts", "/wp-json/wp/v2/users", "/wp-login.php"]  # no regex base, no other namespace
    assert (tmp_path / "resolvers.txt").read_text().splitlines() == [
        "1.1.1.1 cloudflare-dns.com", "2001:4860:4860::8888 dns.google", "2606:4700:4700::1111 cloudflare-dns.com",
        "8.8.8.8 dns.google"]  # compressed, lower case; tokens that are no address and active settings skipped
    # the lists together, as host names write them: lower case, accents off; no possessive, hyphenated or
    # two-letter entry, nor one with a letter that has no plain form ("straße"); once each
    assert (tmp_path / "words.txt").read_text().splitlines() == ["aachen", "aardvark", "backerei", "cafe", "zurich"]


def test_a_package_without_the_word_list_fails_clearly(tmp_path):
    wordpress = deb(tmp_path, "wordpress", {"usr/share/wordpress/wp-login.php": "<?php", **WORDPRESS_PHP})
    resolved = deb(tmp_path, "systemd-resolved", {"etc/systemd/resolved.conf": RESOLVED_CONF})
    for name, files in (("wamerican", {"usr/share/dict/british-english": WORD_LIST}),
                        ("wamerican-short", {"usr/share/dict/american-english": "ab\nok\nx's\n"})):
        words = {**deb(tmp_path, name, files), "list": "usr/share/dict/american-english"}
        result = run_stage(tmp_path, {"wordpress": wordpress, "resolvers": resolved, "words": [words]})
        assert result.returncode != 0 and "american-english" in result.stderr, result.stderr
        for written in ("words.txt", "software.txt", "resolvers.txt"):  # nothing written unless all was read
            assert not (tmp_path / written).exists()


def test_a_package_without_resolver_examples_fails_clearly(tmp_path):
    wordpress = deb(tmp_path, "wordpress", {"usr/share/wordpress/wp-login.php": "<?php", **WORDPRESS_PHP})
    empty = deb(tmp_path, "systemd-resolved", {"etc/systemd/resolved.conf": "[Resolve]\n#DNS=\n"})
    result = run_stage(tmp_path, {"wordpress": wordpress, "resolvers": empty})
    assert result.returncode != 0 and "no `address#name` resolver examples" in result.stderr
    assert not (tmp_path / "resolvers.txt").exists()
    tampered = {**empty, "sha256": "0" * 64}
    result = run_stage(tmp_path, {"wordpress": wordpress, "resolvers": tampered})
    assert result.returncode != 0 and "checksum mismatch" in result.stderr


def test_a_wordpress_package_without_rest_routes_fails_clearly(tmp_path):
    wordpress = deb(tmp_path, "wordpress", {"usr/share/wordpress/wp-login.php": "<?php"})
    resolved = deb(tmp_path, "systemd-resolved", {"etc/systemd/resolved.conf": RESOLVED_CONF})
    result = run_stage(tmp_path, {"wordpress": wordpress, "resolvers": resolved})
    assert result.returncode != 0 and "expected one rest_url_prefix in wp-includes, found none" in result.stderr
    assert not (tmp_path / "software.txt").exists()


def test_a_wordpress_package_without_rewrite_bases_fails_clearly(tmp_path):
    php = {k: v for k, v in WORDPRESS_PHP.items() if not k.endswith("class-wp-rewrite.php")}
    resolved = deb(tmp_path, "systemd-resolved", {"etc/systemd/resolved.conf": RESOLVED_CONF})
    partial = {"usr/share/wordpress/wp-includes/class-wp-rewrite.php": "<?php\n\tpublic $author_base = 'x';"}
    for rewrite in ({}, partial):
        shutil.rmtree(tmp_path / "build" / "wordpress", ignore_errors=True)
        wordpress = deb(tmp_path, "wordpress", {"usr/share/wordpress/wp-login.php": "<?php", **php, **rewrite})
        result = run_stage(tmp_path, {"wordpress": wordpress, "resolvers": resolved})
        assert result.returncode != 0 and "class-wp-rewrite.php" in result.stderr, result.stderr
        assert not (tmp_path / "software.txt").exists()
