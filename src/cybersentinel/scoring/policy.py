"""The decision policy: the one place where a score becomes a verdict.

Every door (``predict``, the service and its web page, ``monitor``, ``blocklist export``, ``evaluate``) turns
the model's score and what else is known of an input into ``score``, ``verdict`` and ``reason`` here. The
parameters come from ``params.yaml`` (``policy``; the threshold is chosen by ``train`` for a false-positive
budget) and are written into the model manifest, whose SHA-256 the registry checks on every fetch. The model and
every rule read a URL as the browser requests it (`cybersentinel.url.parsing.browser_url`): a backslash for a
slash, ``https:host`` or a host in full-width letters is judged as the URL it stands for.

The rules, first match decides:

1. On the local block list (analyst confirmed): ``malicious``, score 1.
2. On the allowlist (file, ``--allow``, analyst feedback), or the address of a public DNS resolver that
   systemd-resolved names (``8.8.8.8`` is ``dns.google``: pinned with the model, stage ``software``): ``benign``,
   score 0. Only rule 1 overrides it.
3. Listed in a feed (a global IP address in an IP feed, or the host or a parent name in a domain list), or deceptive by
   construction (a registered name that imitates a brand with look-alike characters, or a popular site once they are
   read as Latin letters: `decider.imitated_site`; a brand's domain or a country's ending such as ``.co.jp`` in the
   subdomain of an unrelated registered domain, a host name put before an ``@`` so the browser goes elsewhere, a page in
   a folder of ``/wp-admin/`` or ``/wp-includes/`` that WordPress does not ship: `planted_page`, a Windows program named
   as a document, ``Form.pdf.lnk``: `decider.disguised_program`, or, on any site, a name written with a bidirectional
   override, which shows ``photo<U+202E>gpj.scr`` as ``photorcs.jpg``: `decider.reversed_text`): the score is raised to
   at least ``listed_floor`` and the threshold, so the verdict is ``malicious``; such a rule never lowers a score. So is
   a URL the model finds at least ``suspicious`` whose host names a brand as a word of its subdomain while the
   registered domain is neither the brand's nor on the pinned popularity list (``apple.lnc.siahxu.cn``,
   ``www3-vpass.example.com``; `decider.named_brands`): the name alone also fits a few legitimate pages (a fan blog's
   ``apple.`` subdomain), which the model scores low, so it corroborates a suspicion rather than making one. So does a
   site of that list written by its whole name as labels of such a subdomain (``us.battle.net.eu-wow.net``,
   ``dqx.jp.cusy.usa.cc``; `decider.named_sites`), for the regional sites kits copy that are no brand, an unlisted
   punycode name under a generic ending that is one of the list's top ``popular_rank`` sites with marks on its letters
   (``coinbȧse.com``: `decider.marked_site`; a mark can be a language's own spelling), and an e-mail address alone after
   ``#`` or as the whole query on a site not on that list or a host where anyone can publish on one (rule 6: the
   platform's rank is not the page's; ``…/index.html#jane@corp.com``, ``…/?jane@corp.com``, in
   base64 too: a kit's link filling in its victim's address; `decider.victim_address`), and a copy of Hotmail's old
   inbox link on such a site (``…/excel.php?rand=13InboxLightaspxn.1774256418&fid.4.1252899642``: a family of kits
   writes it into its links, 5,060 phishing URLs of the collections, no legitimate one; `decider.copied_inbox_link`).
   So is a sign-in page on a
   public address (``http://45.67.89.13:2095/webmail/``: a word of signing in, `decider.address_sign_in`, in the path
   or query of a URL whose host is a global IP address) the model finds at least ``suspicious``: such pages are
   phishing in every collection (5,769 URLs of ``data/validated.parquet``, no legitimate one:
   ``benchmarks/deception_counts.py``), since real services put their
   sign-in pages on names with certificates; an administrator's panel on an address is rare, and the model must find it
   suspicious too. So is a program for download on a public address (``http://83.222.191.91/oops/loki.arm7``,
   ``http://83.222.191.91/bins/mips``, ``http://94.156.167.30/setup.exe``: `decider.address_program`), as malware's
   loaders fetch them; none of the collections' legitimate URLs on an address is one.
   When ``floor_corroborated`` is on, such corroborating evidence makes a URL at least ``suspicious`` whatever the
   model says (its score raised to the band's floor): the model scores some kits low (``paypal.derfrage.de``,
   ``www.bankofamerica.gonatmed.com``), and on the held-out collections 2-235 phishing URLs a fold that it scored
   under the band carry such evidence, against 0-2 legitimate ones (session 62).
4. A stock file of widely deployed web software (``/wp-login.php``, ``/wp-admin/admin-ajax.php``: the file list
   of Debian's ``wordpress`` package, pinned with the model): ``benign``, its score multiplied by
   ``stock_file_factor`` and kept below ``suspicious``. A kit on a compromised site lives outside those files.
   The factor keeps the model's word on the site in the order of scores: the phishing collections list stock
   files of hacked sites (a kit's ``wp-login.php``), and a score of 0 put them below every legitimate page.
5. An IP address written alone (``203.0.113.7``: no scheme, no path, no query, as lists of addresses and firewall
   logs write them) is not scored by the URL model, whose lexical features say nothing about an address: private
   and bogon addresses are reported as such, other addresses as not listed; ``benign``, score 0. A web page on an
   address (``http://203.0.113.7/``, its root included) is a URL, and the model scores it; but at the root the
   model reads nothing of the site but that it is an address (it scores such roots 0.7-0.99, phishing and
   legitimate alike), so there the model's word alone makes it at most ``suspicious``. In every collection
   nearly all such roots are phishing (3,086 phishing URLs and 35 legitimate ones in ``data/validated.parquet``),
   so their scores rank them with suspicious pages rather than, as score 0 did, below every legitimate one.
   A URL on a private or bogon address (an intranet page, a cloud metadata endpoint) is not reachable from the
   internet: ``benign``, score 0, reported as such (FireHOL level 1 lists the private ranges, so feeds are not
   applied either).
6. A popular site (registered domain in the Tranco top ``popular_rank``; all its subdomains, since the
   registered domain follows the public suffix list's private section, so ``user.github.io`` or
   ``x.blogspot.com`` are sites of their own): the score is multiplied by ``popular_factor``. So is a
   registered domain's own name (``example.com``, ``www.example.com``) down to ``popular_name_rank``, but not
   its other subdomains there: free and cheap hosts ranked there (``hol.es``, ``000webhostapp.com``) give
   their customers subdomains, and a kit on one is not the ranked site. A site under a government's own suffix
   on that section (``www.access.service.gov.uk``: `GOVERNMENT_SUFFIXES`) carries the suffix's rank, and so does
   a company's own service there (``update.googleapis.com``: `OPERATOR_SERVICES`), not its customers' files. The list is
   the one pinned with the model (`cybersentinel.intel.popular`), so live feeds do not change the decision.
   Not on a host where anyone can publish (``cap_user_content``, `USER_CONTENT_HOSTS`: ``sites.google.com``,
   ``forms.gle``, a SharePoint tenant, a ``*.weebly.com`` site): the platform's rank says nothing of what its
   users put there, and 5-9% of PhishTank's and Phishing.Database's URLs sit on such hosts. Such a URL keeps the model's
   score but is at most ``suspicious`` on the model's word alone (just below the threshold): legitimate shared
   documents and forms look the same to a URL-only model, and blocking one breaks a workplace's files. A customer's
   site on a site builder whose names hold customers' sites only (`OWN_SITES`: ``x.weebly.com``; a hosting
   platform's name for a customer's site or server, ``x.myftpupload.com``; a blog under one of Blogger's country
   names, ``x.blogspot.it``, which the pinned list no longer holds) is not capped: it is a site of its own, as the
   private section makes ``x.wixsite.com`` one, and its model score stands.
7. Otherwise the model's score stands.

Last, when ``cap_page_assets`` is on, a page asset (a script, style sheet, image, font or media file:
`page_asset`) has its score multiplied by ``page_asset_factor`` and is at most ``suspicious`` on the model's word
alone: the model learned from the pages phishing lists name, and what it says of a CMS theme's ``style.css`` or a
site's ``jquery.min.js`` is a guess; blocking one breaks pages, and a phishing site's assets come with its pages,
which are judged. Rules 1 and 3 (the block list, feeds, deception) still make an asset ``malicious``.

So, when ``cap_vendor_pages`` is on, is a page that software or a service serves on an organisation's own name
(`decider.vendor_page`). A site's own Outlook on the web (``https://mail.smallfirm.de/owa/``: Exchange's sign-in
and start pages on a host one label below a site under an ICANN suffix, named as organisations name their mail
servers, the site's name holding no brand and no mail service's word: `decider.own_webmail`): every firm that runs
Exchange serves those pages, and the model, trained on lists that name such pages of real universities and
hospitals as phishing, scores many of them ``malicious``; a kit copied to ``mail.<a domain of its own>`` looks the
same to a URL-only model, so the cap leaves it ``suspicious`` for an analyst rather than clearing it. A customer's
name on a service that serves its own pages there (``acme.pagerduty.com``, AWS's access portal
``d-9067642ac7.awsapps.com/start``, a Shopify shop's ``/admin``: `decider.tenant_page`): the pages are the
service's, but the name costs anyone a sign-up, so they are capped too rather than cleared. And a university
library's proxy of another site (``login.microsoftonline.com.ezproxy.bethel.edu``, only under academic endings:
`decider.library_proxy`), whose host writes the proxied site's name by design: no deception is read in it either.

And so, when ``cap_own_script_names`` is on, is a name in a script of its own under an ending in one
(``президент.рф``: `own_script_name`): the model reads it through its punycode, and the training lists hold such names
on their phishing side only; its look-alikes of brands are the deception rules' to find.

Then ``malicious`` from ``threshold``, ``suspicious`` in the ``suspicious_band`` below it, else ``benign``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from cybersentinel.core.redact import mask_secret_parameters
from cybersentinel.features.lexical import rendered
from cybersentinel.url.parsing import canonical_host, host_and_parents, page_key, ranked_name

NOT_JUDGED_IP = ("private", "bogon")
# How a row's host stands in it (`ParsedUrls.host_standing`), which rule 5 reads for addresses: in a URL with a
# path or query, as the root page of a URL (``http://203.0.113.7/``), or written alone (``203.0.113.7``)
IN_PAGE, ROOT_PAGE, ALONE = 0, 1, 2


@dataclass(frozen=True)
class Policy:
    threshold: float
    suspicious_band: float = 0.15
    listed_floor: float = 0.9
    popular_rank: int = 10_000
    popular_factor: float = 0.5
    popular_name_rank: int = 0  # 0: only rule 6's ``popular_rank`` (models trained before this field)
    cap_page_assets: bool = True
    page_asset_factor: float = 1.0  # 1: only the cap (models trained before this field)
    cap_user_content: bool = False  # rule 6's user-content hosts (off for models trained before this field)
    stock_file_factor: float = 0.0  # rule 4; 0: score 0 (models trained before this field)
    cap_vendor_pages: bool = False  # `decider.vendor_page` (off for models trained before this field)
    cap_own_script_names: bool = False  # `own_script_name` (off for models trained before this field)
    floor_corroborated: bool = False  # rule 3's evidence alone: at least suspicious (off for models trained before)
    # the width a user asked to be shown as `suspicious` instead of ``suspicious_band`` (`cybersentinel predict
    # --band`); a corroborating rule still acts from the recorded band's floor, so `malicious` is the same at any
    # width and every door gives the same verdict there. Never recorded with a model.
    shown_band: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"policy threshold {self.threshold} is not in (0, 1]")
        if not 0.0 <= self.suspicious_band < 1.0 or not 0.0 < self.listed_floor <= 1.0:
            raise ValueError("policy suspicious_band must be in [0, 1) and listed_floor in (0, 1]")
        if self.shown_band is not None and not 0.0 <= self.shown_band < 1.0:
            raise ValueError(f"a shown suspicious band of {self.shown_band} is not in [0, 1)")
        if not 0.0 <= self.popular_factor <= 1.0 or self.popular_rank < 0 or self.popular_name_rank < 0:
            raise ValueError("policy popular_factor must be in [0, 1], popular_rank and popular_name_rank >= 0")
        if not 0.0 <= self.page_asset_factor <= 1.0 or not 0.0 <= self.stock_file_factor <= 1.0:
            raise ValueError("policy page_asset_factor and stock_file_factor must be in [0, 1]")

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> Policy:
        policy = manifest.get("policy")
        if not isinstance(policy, Mapping):
            raise ValueError("the model manifest has no decision policy; retrain the model (dvc repro)")
        policy = {"cap_vendor_pages": policy["cap_own_webmail"], **policy} if "cap_own_webmail" in policy else policy
        return cls(**{k: policy[k] for k in asdict(cls(threshold=1.0)) if k in policy})

    def as_dict(self) -> dict[str, Any]:
        """The fields, as a model's manifest records them (a band only shown is not recorded)."""
        fields = asdict(self)
        if fields["shown_band"] is None:
            del fields["shown_band"]
        return fields

    @property
    def asset_ceiling(self) -> float:
        """The highest score a page asset keeps on the model's word alone: just below the threshold, by more than
        the 6-decimal rounding of every door's output, so a shown score never reads as the threshold (and with no
        band shown, ``predict --band 0``, such a URL is `benign`, never `malicious`)."""
        return max(0.0, self.threshold - 1e-6)

    @property
    def benign_ceiling(self) -> float:
        """The highest score a `benign` verdict shows: just below ``suspicious``, by more than the 6-decimal
        rounding of every door's output."""
        return max(0.0, self.suspicious_from - 1e-6)

    @property
    def popular_list_size(self) -> int:
        """How many of the Tranco list's top registered domains rule 6 reads."""
        return max(self.popular_rank, self.popular_name_rank)

    def is_popular(self, rank: int | None, own_name: bool) -> bool:
        """Rule 6: whether a host of a registered domain of this Tranco rank counts as a popular site."""
        return rank is not None and (rank <= self.popular_rank or (own_name and rank <= self.popular_name_rank))

    @property
    def suspicious_from(self) -> float:
        """The lowest score called `suspicious` (the shown band's floor when one is asked for)."""
        return max(0.0, self.threshold - (self.suspicious_band if self.shown_band is None else self.shown_band))

    @property
    def corroboration_from(self) -> float:
        """The lowest model score a corroborating rule (rule 3) turns `malicious`: the recorded band's floor."""
        return max(0.0, self.threshold - self.suspicious_band)

    def verdicts(self, scores: np.ndarray) -> np.ndarray:
        return np.where(scores >= self.threshold, "malicious",
                        np.where(scores >= self.suspicious_from, "suspicious", "benign"))

    def verdict(self, score: float) -> str:
        return "malicious" if score >= self.threshold else "suspicious" if score >= self.suspicious_from else "benign"


class Evidence(NamedTuple):
    """What is known of one input's host apart from the model's score (strings, numbers and None: the decider
    caches it as a plain tuple, which the garbage collector stops tracking)."""

    is_ip: bool = False
    is_bare_ip: bool = False  # an address alone, not a URL on an address
    feeds: tuple[str, ...] = ()
    ip_status: str | None = None  # listed / unlisted / private / bogon (IP hosts only)
    ip_category: str | None = None  # loopback, link-local, private, reserved... (non-global addresses)
    tranco_rank: int | None = None  # of the registered domain
    registered_domain: str = ""
    allowed: str = ""  # why the host is allowlisted, "" if it is not
    blocked: str = ""  # why the host is on the local block list, "" if it is not
    deception: str = ""  # how the URL deceives (look-alike brand, host before '@'), "" if it does not
    known_file: str = ""  # the stock file of known web software the URL names, "" if none
    asset: str = ""  # the kind of page asset the URL names (`page_asset`), "" if it names none
    own_name: bool = False  # the host is its registered domain or that name's ``www.``
    user_content: str = ""  # the `USER_CONTENT_HOSTS` entry the host falls under, "" if none
    # what corroborates a suspicious score (rule 3), "" if nothing: a brand named in the subdomain of an unpopular
    # site not the brand's, a sign-in page or a program for download on a public address
    corroboration: str = ""
    address_root: bool = False  # the root page of an address, written as a URL (rule 5)
    vendor_page: str = ""  # a page software or a service serves on an organisation's own name (`decider.vendor_page`)

    def changes_anything(self, policy: Policy) -> bool:
        """Whether `decide` can differ from the plain threshold rule (most hosts: no)."""
        return changes_anything(policy, [self])[0]


def changes_anything(policy: Policy, evidences: Iterable[tuple]) -> list[bool]:
    """`Evidence.changes_anything` of each evidence: an `Evidence` or the tuple of its fields in order (the
    decider caches plain tuples)."""
    popular = policy.is_popular
    assets = policy.cap_page_assets
    vendor = policy.cap_vendor_pages
    own_script = policy.cap_own_script_names
    return [bool(blocked or allowed or feeds or deception or known_file or is_bare_ip or ip_status in NOT_JUDGED_IP
                 or (rank is not None and popular(rank, own_name)) or (asset and assets) or corroboration
                 or address_root or (vendor_page and vendor) or (own_script and own_script_name(registered)))
            for _, is_bare_ip, feeds, ip_status, _, rank, registered, allowed, blocked, deception, known_file, asset,
            own_name, _, corroboration, address_root, vendor_page in evidences]


def decide(policy: Policy, model_score: float, evidence: Evidence) -> tuple[float, str, str]:
    """(score, verdict, reason) of one input; ``reason`` is "" when the model's score stands alone."""
    if evidence.blocked:
        return 1.0, "malicious", f"on the local block list ({evidence.blocked})"
    if evidence.allowed:
        return 0.0, "benign", f"allowlisted ({evidence.allowed})"
    corroborated = evidence.corroboration if evidence.corroboration and model_score >= policy.corroboration_from \
        else ""
    if evidence.feeds or evidence.deception or corroborated:
        why = "; ".join(filter(None, [f"listed in {', '.join(evidence.feeds)}" if evidence.feeds else "",
                                      evidence.deception, f"{corroborated}, and the model finds the URL suspicious"
                                      if corroborated else ""]))
        floor = max(policy.listed_floor, policy.threshold)
        score = floor if evidence.is_bare_ip else max(model_score, floor)
        return score, "malicious", why
    if evidence.corroboration and policy.floor_corroborated:  # the model's score is under the band
        # the recorded band's floor, or a narrower shown band's (none with ``--band 0``: then `benign`)
        score = max(policy.corroboration_from, min(policy.suspicious_from, policy.asset_ceiling))
        return score, policy.verdict(score), f"{evidence.corroboration}: at least suspicious, whatever the model's " \
            "score"
    if evidence.known_file:
        score = min(model_score * policy.stock_file_factor, policy.benign_ceiling)
        return score, "benign", f"stock {evidence.known_file}: the site's own software, not a phishing kit"
    if evidence.is_bare_ip:
        if evidence.ip_status in NOT_JUDGED_IP:
            return 0.0, "benign", f"{evidence.ip_category or evidence.ip_status} address: not routable, not judged"
        status = "not listed in any loaded feed" if evidence.ip_status else "no feeds loaded to check it"
        return 0.0, "benign", f"public IP address, {status}"
    if evidence.ip_status in NOT_JUDGED_IP:  # an intranet page or a cloud metadata URL: nobody outside reaches it
        return 0.0, "benign", f"{evidence.ip_category or evidence.ip_status} address, not reachable from the " \
            "internet: not judged"
    rank = evidence.tranco_rank
    score, reason = model_score, ""
    if policy.is_popular(rank, evidence.own_name):
        if not (evidence.user_content and policy.cap_user_content):
            score, reason = model_score * policy.popular_factor, popular_reason(evidence.registered_domain, rank)
        elif evidence.user_content in OWN_SITES:
            if score >= policy.threshold:  # judged as any unranked site is: the model's word stands
                reason = f"a site of its own on {evidence.user_content[2:]}: {evidence.registered_domain}'s rank " \
                    "does not vouch for it"
        elif score >= policy.threshold:
            score, reason = policy.asset_ceiling, f"a host where anyone can publish ({evidence.user_content}): " \
                f"{evidence.registered_domain}'s rank does not vouch for it, and on the model's word alone it is at " \
                "most suspicious"
    if policy.cap_own_script_names and score >= policy.threshold and own_script_name(evidence.registered_domain):
        name, _, ending = rendered(evidence.registered_domain).partition(".")
        score, reason = policy.asset_ceiling, f"`{name}.{ending}`, a name in its own script under `.{ending}`: the " \
            "model reads it through its punycode and learned from no legitimate site named so, so on its word alone " \
            "it is at most suspicious"
    if evidence.address_root and score >= policy.threshold:
        score, reason = policy.asset_ceiling, f"the root page of the address `{evidence.registered_domain}`: the " \
            "model reads nothing of a site there but its address, so on its word alone it is at most suspicious"
    if evidence.vendor_page and policy.cap_vendor_pages and score >= policy.threshold:
        score, reason = policy.asset_ceiling, f"{evidence.vendor_page}: on the model's word alone it is at most " \
            "suspicious"
    factor = policy.page_asset_factor
    if evidence.asset and policy.cap_page_assets and (factor < 1.0 or score >= policy.threshold):
        score = min(score * factor, policy.asset_ceiling)
        how = f"its score counts {factor:g} and" if factor < 1.0 else "on its word alone"
        reason = "; ".join(filter(None, [reason, f"a page asset ({evidence.asset}): the model judges pages, so {how} "
                                                 "at most suspicious"]))
    return score, policy.verdict(score), reason


# Blogger's blogs under its country names (``x.blogspot.it``), as the public suffix list's private section listed them
# beside ``blogspot.com`` until it dropped them; the pinned tldextract's copy keeps ``blogspot.com`` alone, so here
# ``blogspot.it`` (Tranco rank 8,938) reads as the site and its rank halved the score of every blog under it: in
# data/validated.parquet 5,456 phishing URLs (Phishing.Database 5,133) and 2,729 legitimate ones (most of them
# reddit's 2013 links) sit on these names. A blog there is a site of its own, as ``x.blogspot.com`` is (session 57).
BLOGGER_SITES = tuple(f"*.blogspot.{ending}" for ending in (
    "ae", "al", "am", "ba", "be", "bg", "bj", "ca", "cf", "ch", "cl", "co.at", "co.id", "co.il", "co.ke", "co.nz",
    "co.uk", "co.za", "com.ar", "com.au", "com.br", "com.by", "com.co", "com.cy", "com.ee", "com.eg", "com.es",
    "com.mt", "com.ng", "com.tr", "com.uy", "cv", "cz", "de", "dk", "fi", "fr", "gr", "hk", "hr", "hu", "ie", "in",
    "is", "it", "jp", "kr", "li", "lt", "lu", "md", "mk", "mr", "mx", "my", "nl", "no", "pe", "pt", "qa", "re", "ro",
    "rs", "ru", "se", "sg", "si", "sk", "sn", "td", "tw", "ug", "vn"))

# Hosts where anyone can publish pages, forms or files, on registered domains that are popular themselves (rule 6).
# "*.name": the sites under a platform's name (``x.weebly.com``), not the platform's own name or ``www.``;
# "name": that host and every name under it. Platforms on the public suffix list's private section
# (``github.io``, ``wixsite.com``, ``pages.dev``) need no entry: each user's site is a registered domain of its
# own there, never a popular one. Shorteners and file-transfer links are left out: the model scores their
# legitimate links as high as the phishing ones (reddit's 2013 links: bit.ly, t.co 0.92-0.997), so they stay
# discounted; so is Tumblr (92 of its 2,084 legitimate blogs in data/validated.parquet score `suspicious` or more
# on the model's word, 26 of its 72 phishing ones). Written from general knowledge of the services; session 36
# added the site builders, Azure's and Bunny CDN's static hosts, Zoho's public forms and WordPress.com's blogs, on
# which a probe's kit (model score 1.0 on ``x.b-cdn.net``) came out ``benign`` under the popular-site discount.
USER_CONTENT_HOSTS = (
    "sites.google.com", "docs.google.com", "drive.google.com", "script.google.com", "forms.gle",
    "storage.googleapis.com", "firebasestorage.googleapis.com", "*.googleusercontent.com",
    "*.sharepoint.com", "1drv.ms", "onedrive.live.com", "forms.office.com", "sway.office.com",
    "*.weebly.com", "*.godaddysites.com", "*.mystrikingly.com", "*.webnode.com", "*.myportfolio.com",
    "*.tripod.com", "*.jimdofree.com", "*.yolasite.com", "*.squarespace.com", "*.teachable.com", "*.gitbook.io",
    "*.notion.site", "*.webflow.io", "*.hubspotpagebuilder.com", "*.hs-sites.com", "*.mybluehost.me",
    "*.secureserver.net", "filesusr.com", "*.backblazeb2.com", "*.wasabisys.com", "*.myqcloud.com",
    "ipfs.io", "dweb.link", "cloudflare-ipfs.com", "linktr.ee", "bio.site", "telegra.ph", "*.jotform.com",
    "*.typeform.com", "*.formstack.com", "zohopublic.com", "*.wordpress.com", "*.jimdosite.com", "*.site123.me",
    "*.tilda.ws", "*.strikingly.com", "*.web.core.windows.net", "*.b-cdn.net",
    "*.sslip.io", "*.nip.io",  # wildcard DNS: ``203.0.113.50.sslip.io`` is that address, whoever runs it
    # session 41 (a review's kits, `malicious` on the model's word, `benign` under the discount): Salesforce's
    # public sites, HubSpot's shared forms, Mailchimp's hosted pages, Padlet's boards
    "*.force.com", "*.my.site.com", "*.salesforce-sites.com", "share.hsforms.com", "mailchi.mp", "padlet.com",
    # session 57, from the popular sites whose discount held the most phishing URLs of data/validated.parquet at a
    # model score over the threshold (the phishing URLs on each in brackets; none of the collections' legitimate URLs
    # is on them): customers' own sites and servers, GoDaddy's temporary WordPress names (79), Cloudways' app
    # names (75), Webnode's newer name (30), Contabo's server names (54), Azure's names for its customers' virtual
    # machines (37); Brevo's hosted forms (100), Wix's users' files, served from www.filesusr.com too (435), Alibaba
    # Cloud's storage buckets (38), Flowcode's link pages (57)
    "*.myftpupload.com", "*.cloudwaysapps.com", "*.webnode.page", "*.contaboserver.net", "*.cloudapp.azure.com",
    "*.sibforms.com", "*.aliyuncs.com", "flow.page",
    *BLOGGER_SITES,
)
# Of those, the site builders whose names hold their customers' web sites only, each a site of its own as the
# public suffix list's private section makes ``x.wixsite.com`` or ``x.pages.dev`` one: such a site is judged as any
# unranked site is, on the model's word, not capped (session 47; since session 57 also the hosting platforms' names
# for their customers' sites and servers, and Blogger's blogs). Not the others:
# shared documents, files and forms, firms' portals and apps (``*.sharepoint.com``, ``*.my.site.com``, Azure's
# static websites), which legitimate work opens every day and which look like their kits to a URL-only model;
# names for anyone's server (``*.nip.io``:
# ``grafana.192.168.1.20.nip.io/login`` is an intranet page); builders whose own pages or default names look like kits
# (Jimdo's sign-in on every site, Strikingly's, SITE123's hex names); GoDaddy's own pages on its customers' sites
# (`/m/login`) are `decider.tenant_page`s; platforms whose own services share their customers' names
# (``email.secureserver.net`` is GoDaddy's webmail, ``subscribe.wordpress.com`` WordPress.com's own links, both
# 0.997-0.999 from the model). In data/validated.parquet the cap held 636 phishing URLs on these sites at
# `suspicious` (``office365-secure-login.weebly.com`` at 0.999) and none of their 185 legitimate URLs.
OWN_SITES = frozenset({"*.weebly.com", "*.godaddysites.com", "*.mybluehost.me", "*.webnode.com", "*.myportfolio.com",
                       "*.webnode.page", "*.myftpupload.com", "*.cloudwaysapps.com", "*.contaboserver.net",
                       "*.cloudapp.azure.com",
                       *BLOGGER_SITES})
_USER_HOSTS = frozenset(e for e in USER_CONTENT_HOSTS if not e.startswith("*."))
_USER_SITES_UNDER = frozenset(e[2:] for e in USER_CONTENT_HOSTS if e.startswith("*."))
_USER_CONTENT_TAILS = frozenset(".".join(e.split(".")[-2:]) for e in USER_CONTENT_HOSTS)


def user_content_host(host: str) -> str:
    """The `USER_CONTENT_HOSTS` entry a lower-cased host name falls under, "" if none."""
    if ".".join(host.rsplit(".", 2)[-2:]) not in _USER_CONTENT_TAILS:  # most hosts: one set look-up
        return ""
    for name in host_and_parents(host):
        if name in _USER_HOSTS:
            return name
        if name in _USER_SITES_UNDER and host not in (name, "www." + name):
            return "*." + name
    return ""


def popular_reason(registered_domain: str, rank: int) -> str:
    """Rule 6's reason for a popular site (and the name ranked, where it is a government suffix). A punycode name
    is shown as browsers show it, its ``xn--`` form beside it, which is what the lists and logs hold:
    ``popular site стопкоронавирус.рф (xn--80aesfpebagmfblc0a.xn--p1ai, Tranco rank 5,000)``."""
    ranked = ranked_name(registered_domain)
    shown = rendered(registered_domain)
    written = "" if shown == registered_domain else f"{registered_domain}, "
    of = "" if ranked == registered_domain else f"{rendered(ranked)}: "
    return f"popular site {shown} ({written}{of}Tranco rank {rank:,})"


def own_script_name(registered_domain: str) -> bool:
    """Whether a registered domain is a name written in a script of its own (punycode) under an ending written in one
    (``президент.рф``: ``xn--d1abbgf6aiiy.xn--p1ai``). Such endings' registries take names of their own script only
    (``.рф`` Cyrillic ones), so the name imitates no Latin brand's; `.コム` also takes ASCII names
    (``applei.xn--tckwe``), which are not these. The collections hold 68 URLs on such names, every one phishing
    (kits on hacked ``.рф`` sites), and the model reads the name through its punycode: 11 of 59 legitimate pages on such
    names were `malicious` (`benchmarks/native_script_sites_legitimate.txt`, docs/experiments.md, "Session 61")."""
    label, _, ending = registered_domain.partition(".")
    return label.startswith("xn--") and "xn--" in ending


def popular_only(policy: Policy, evidence: tuple) -> bool:
    """Whether rule 6 alone decides a host of these `Evidence` fields (a tuple, as `changes_anything` takes) when
    nothing is known of the row itself: `decide` then multiplies the score by ``popular_factor``, nothing else."""
    _, is_bare_ip, feeds, ip_status, _, rank, _, allowed, blocked, deception, known_file, asset, own_name, \
        user_content, corroboration, address_root, vendor_page = evidence[:17]
    return not (blocked or allowed or feeds or deception or known_file or is_bare_ip or asset or corroboration
                or address_root or (vendor_page and policy.cap_vendor_pages)
                or ip_status in NOT_JUDGED_IP or (user_content and policy.cap_user_content)) \
        and policy.is_popular(rank, own_name)


def page_entry(url: str) -> str:
    """The key a list holds one page under, and a URL correction's target: `page_key` with the values of
    credential parameters masked (`core.redact.mask_secret_parameters`: ``a.example/cb?code=***``). Masked on
    both sides, the listed URL's and the scored one's: a key is stored and shown (a reason, `feedback list`), so it
    holds no token, and a page opened with another token (an OAuth callback's ``code``, a kit's ``session``) is
    the same page. The scored URL itself is not changed: the model reads it as sent."""
    return mask_secret_parameters(page_key(url))


class SiteList:
    """Host names whose own names and all subdomains a list covers (an allowlist or a local block list), each
    with why it is there. ``match`` answers with the most specific listed name. A list can also hold single
    URLs (analyst feedback on one page, not its site), matched by `page_entry` in ``match_url``."""

    def __init__(self, entries: Mapping[str, str] | Iterable[str] = (), why: str = "listed",
                 urls: Mapping[str, str] | None = None):
        items = entries.items() if isinstance(entries, Mapping) else ((e, why) for e in entries)
        self.entries: dict[str, str] = {}
        for name, reason in items:
            name = name.strip().lower().rstrip(".")
            if name:  # as a browser resolves it, as the hosts it is matched with are: bücher.de is xn--bcher-kva.de,
                # 2001:db8::1 is [2001:db8::1]
                self.entries.setdefault(canonical_host(name) or name, reason)
        self.urls: dict[str, str] = {}
        for url, reason in (urls or {}).items():
            if key := page_entry(url):
                self.urls.setdefault(key, reason)

    def __len__(self) -> int:
        return len(self.entries) + len(self.urls)

    def __bool__(self) -> bool:
        return bool(self.entries or self.urls)

    def merged(self, other: SiteList) -> SiteList:
        """Both lists' names and URLs; where both list one, this list's reason stands."""
        return SiteList({**other.entries, **self.entries}, urls={**other.urls, **self.urls})

    def match(self, host: str) -> str:
        """``"<why>: <name>"`` for the listed name covering ``host``, else "". An IP address matches only
        itself (``3.4`` is no parent of ``1.2.3.4``)."""
        if not self.entries:
            return ""
        for name in host_and_parents(host.lower().rstrip(".")):
            if name in self.entries:
                return f"{self.entries[name]}: {name}"
        return ""

    def match_url(self, url: str) -> str:
        """``"<why>: <url>"`` when this very page is listed (`page_entry`: as the browser requests it, without the
        fragment, an empty query, a default port or a credential parameter's value), else ""."""
        key = page_entry(url) if self.urls else ""
        return f"{self.urls[key]}: {key}" if key in self.urls else ""


def read_site_list(paths: Iterable[str | Path], names: Iterable[str], why: str) -> SiteList:
    """A `SiteList` from files (one host name per line; ``#`` comments and blank lines skipped) and names."""
    entries: dict[str, str] = {}
    for path in paths:
        for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            name = line.split("#", 1)[0].strip()
            if name:
                if problem := _not_a_host_name(name):
                    raise ValueError(f"{path}:{number}: {name[:60]!r} is not a host name{problem}")
                entries.setdefault(name, f"{why} {Path(path).name}")
    for name in names:
        if problem := _not_a_host_name(name.strip()):
            raise ValueError(f"{name[:60]!r} is not a host name{problem}")
        entries.setdefault(name, why)
    return SiteList(entries)


def _not_a_host_name(name: str) -> str:
    """Why a list's entry cannot be a host name (as an explanation after "is not a host name"), "" if it can be:
    a URL, a wildcard or text with spaces would never match a host, and a list silently matching nothing
    leaves a site unprotected (or unblocked)."""
    if not name:
        return ": it is empty"
    if "*" in name or name.startswith("."):
        return ": a name covers its subdomains already, without a wildcard or a leading dot"
    if any(c.isspace() or c in "/?@;'\"" for c in name) or (":" in name and canonical_host(
            name if name.startswith("[") else f"[{name}]") is None):
        return ": write the host alone (example.com, 2001:db8::1), not a URL or a port"
    return ""
