"""Deterministic generator of WARC crawls that look like CC-NEWS, for tests, the demo and benchmarks.

    python -m corpus.sample_crawl corpus/sample/sample.warc.gz          # the bundled sample
    python -m corpus.sample_crawl --pages 5000 /tmp/bench.warc.gz        # a bigger crawl

The WARC is written with warcio, one gzip member per record as Common Crawl does
(warcinfo, then request / response / metadata per fetch). WARC-Date and WARC-Record-ID are
derived from the seed, and gzip members carry no timestamp, so the same seed (and the same
Python, whose docs provide the English prose) gives a byte-identical file.

The bundled sample plants every case the pipeline must handle, each with a known expected
outcome: English articles wrapped in news-site boilerplate, boilerplate-only pages,
non-English pages (some with a missing or wrong `lang`), exact duplicates under other URLs
(some dated earlier than their original), URL variants of the same page, near duplicates
with small edits, non-HTML payloads, 404/301/500, empty pages, bad charsets, one huge page
and exactly one damaged record (a corrupt gzip member in the middle of the file, so the
records after it are still readable by resynchronising on the next gzip member).
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import html
import io
import random
import unicodedata
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from runroot import storage
from corpus import sample_text

BASE_DATE = dt.datetime(2019, 1, 7, 6, 0, 0, tzinfo=dt.timezone.utc)

ENGLISH_SITES = ["www.dailyherald.example", "metro-times.example", "www.theledger.example",
                 "news.harbourpost.example"]
FOREIGN_SITES = {"de": "www.zeitung.example.de", "fr": "www.lejournal.example.fr",
                 "es": "www.eldiario.example.es", "it": "www.ilgiornale.example.it",
                 "nl": "www.dekrant.example.nl", "pt": "www.ojornal.example.pt"}
NAV = ["Home", "World", "Business", "Politics", "Technology", "Science", "Health", "Sports",
       "Culture", "Travel", "Opinion", "Video", "Podcasts", "Weather", "Crosswords", "Subscribe"]
RELATED = ["Markets rally as investors weigh rate outlook", "Ten things to do this weekend",
           "City council delays vote on housing plan", "Opinion: what the new rules really mean",
           "Storm warning issued for the coast", "Local team clinches playoff spot",
           "How to save on your energy bill", "The best podcasts of the month"]


@dataclass
class Page:
    """One fetch: what the response record will contain."""
    url: str
    body: bytes
    date: dt.datetime
    status: str = "200 OK"
    content_type: str = "text/html; charset=utf-8"
    extra_headers: list[tuple[str, str]] = field(default_factory=list)
    kind: str = "article"  # what the page plants, for tests: article, foreign, boilerplate, ...


def slug(title: str) -> str:
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    return "-".join("".join(c if c.isalnum() else " " for c in ascii_title).split())[:60] or "page"


def render_article(host: str, title: str, paras: list[str], date: dt.datetime, lang: str | None,
                   charset: str = "utf-8", footer_note: str = "") -> str:
    """A news page: the article among menus, a cookie banner, share bar, related links, footer."""
    e = html.escape
    lang_attr = f' lang="{lang}"' if lang else ""
    nav = "".join(f'<li><a href="/{n.lower()}/">{n}</a></li>' for n in NAV)
    related = "".join(f'<li><a href="/related/{slug(r)}">{e(r)}</a></li>' for r in RELATED)
    body = "\n".join(f"<p>{e(p)}</p>" for p in paras)
    return f"""<!DOCTYPE html>
<html{lang_attr}>
<head>
<meta charset="{charset}">
<title>{e(title)} | {host}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta property="og:title" content="{e(title)}">
<style>body{{font-family:Georgia,serif;margin:0}} .nav li{{display:inline;margin:0 6px}} .cookie{{position:fixed;bottom:0}}</style>
<script>window.dataLayer=window.dataLayer||[];function gtag(){{dataLayer.push(arguments);}}gtag('js',new Date());gtag('config','UA-000000-1');</script>
</head>
<body>
<div class="cookie-banner" id="cookies">We use cookies to improve your experience and to show you personalised ads.
<a href="/privacy">Privacy policy</a> <button>Accept all</button> <button>Manage settings</button></div>
<header><a class="logo" href="/">{host}</a><ul class="nav">{nav}</ul>
<form action="/search"><input name="q" placeholder="Search"></form></header>
<nav class="breadcrumbs"><a href="/">Home</a> &rsaquo; <a href="/news/">News</a></nav>
<main>
<article>
<h1>{e(title)}</h1>
<div class="byline">By Staff Reporter &middot; <time datetime="{date:%Y-%m-%dT%H:%M:%SZ}">{date:%B %d, %Y}</time></div>
<div class="share"><a href="#">Share</a> <a href="#">Tweet</a> <a href="#">Email</a></div>
{body}
</article>
<aside class="related"><h2>Related stories</h2><ul>{related}</ul></aside>
<div class="newsletter">Sign up for our morning briefing. <input type="email"> <button>Sign up</button></div>
</main>
<footer><ul><li><a href="/about">About us</a></li><li><a href="/contact">Contact</a></li>
<li><a href="/terms">Terms of use</a></li><li><a href="/privacy">Privacy</a></li></ul>
<p>&copy; 2019 {host}. All rights reserved. {footer_note}</p></footer>
</body>
</html>
"""


def render_section_front(host: str, section: str, headlines: list[str]) -> str:
    """Boilerplate only: a section front of links, which should not yield a document."""
    items = "".join(f'<li><a href="/{slug(h)}">{html.escape(h)}</a></li>' for h in headlines)
    nav = "".join(f'<li><a href="/{n.lower()}/">{n}</a></li>' for n in NAV)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{section} | {host}</title>'
            f'</head><body><div class="cookie-banner">We use cookies. <button>Accept</button></div>'
            f'<ul class="nav">{nav}</ul><h1>{section}</h1><ul class="list">{items}</ul>'
            f'<footer>&copy; 2019 {host}. All rights reserved.</footer></body></html>')


def english_pool() -> list[tuple[str, list[str]]]:
    return sample_text.pydoc_articles() + sample_text.docstring_articles()


def edit_slightly(paras: list[str], rng: random.Random) -> list[str]:
    """A near duplicate: one sentence appended and one word changed, as a republished story."""
    paras = list(paras)
    i = rng.randrange(len(paras))
    words = paras[i].split()
    words[rng.randrange(len(words))] = "indeed"
    paras[i] = " ".join(words)
    return paras + ["Update: this story has been updated with additional details."]


def url_variant(url: str, k: int) -> str:
    """Forms of one URL that normalisation maps together (see corpus.urls)."""
    scheme, rest = url.split("://", 1)
    host, path = rest.split("/", 1)
    return [f"{scheme}://{host.upper()}/{path}", f"{url}?utm_source=twitter&utm_medium=social",
            f"{url}#comments", f"{scheme}://{host}:80/{path}", f"{url}/"][k % 5]


def sample_pages(seed: int = 0) -> list[Page]:
    """Every page of the bundled sample, in crawl order (shuffled, as a crawl interleaves hosts)."""
    rng = random.Random(seed)
    articles = _english_articles()
    pages = [Page(a.url, render_article(a.host, a.title, a.paras, a.date, "en").encode(), a.date)
             for a in articles]
    # One random stream, drawn in this order, so that the sample stays byte-identical.
    pages += _boilerplate_pages(rng)
    pages += _foreign_pages(rng)
    pages += _copies_of_articles(articles, pages[:len(articles)], rng)
    pages += _pages_without_a_document()
    pages += _pages_hard_to_read(articles)
    rng.shuffle(pages)
    return pages


@dataclass
class _Article:
    url: str
    host: str
    title: str
    paras: list[str]
    date: dt.datetime


def _minutes_after_base(minutes: int) -> dt.datetime:
    return BASE_DATE + dt.timedelta(minutes=minutes)


def _english_articles() -> list[_Article]:
    articles = []
    for i, (title, paras) in enumerate(english_pool()):
        host = ENGLISH_SITES[i % len(ENGLISH_SITES)]
        articles.append(_Article(f"https://{host}/news/2019/01/{slug(title)}", host, title, paras,
                                 _minutes_after_base(10 * i)))
    return articles


def _boilerplate_pages(rng: random.Random) -> list[Page]:
    pages = []
    for k in range(12):
        host = ENGLISH_SITES[k % len(ENGLISH_SITES)]
        section = NAV[1 + k % (len(NAV) - 1)]
        pages.append(Page(f"https://{host}/{section.lower()}/?page={k}",
                          render_section_front(host, section, rng.sample(RELATED, 6)).encode(),
                          _minutes_after_base(5 * k + 3), kind="boilerplate"))
    return pages


def _foreign_pages(rng: random.Random) -> list[Page]:
    """6 pages per language; one of each without `lang`, one German page declaring English."""
    pages = []
    for li, lang in enumerate(sorted(sample_text.FOREIGN_SENTENCES)):
        for k in range(6):
            title, paras = sample_text.foreign_article(lang, rng)
            host = FOREIGN_SITES[lang]
            declared = None if k == 4 else ("en" if (lang == "de" and k == 5) else lang)
            date = _minutes_after_base(7 * (li * 6 + k) + 1)
            body = render_article(host, title, paras, date, declared).encode()
            pages.append(Page(f"https://{host}/artikel/{li}-{k}-{slug(title)}", body, date,
                              kind="foreign"))
    return pages


def _copies_of_articles(articles: list[_Article], article_pages: list[Page],
                        rng: random.Random) -> list[Page]:
    """An article under a wrong language, and the exact, URL-variant and near duplicates."""
    # An English article whose page wrongly declares German: must still be kept.
    a = articles[3]
    pages = [Page(f"https://{a.host}/intl/{slug(a.title)}-de",
                  render_article(a.host, a.title + " (international edition)", a.paras[::-1], a.date, "de").encode(),
                  a.date + dt.timedelta(days=1), kind="article_wrong_lang")]

    for k in range(8):  # exact duplicates under other URLs (syndication); 3 dated earlier
        a = articles[10 + 7 * k]
        original = next(p for p in article_pages if p.url == a.url)
        shift = dt.timedelta(hours=-2) if k < 3 else dt.timedelta(hours=5)
        pages.append(Page(f"https://syndication.example.com/story/{1000 + k}", original.body,
                          a.date + shift, kind="exact_dup"))

    for k in range(5):  # the same article refetched under a URL variant, footer timestamp changed
        a = articles[15 + 9 * k]
        body = render_article(a.host, a.title, a.paras, a.date, "en", footer_note=f"Generated in {k + 3} ms.")
        pages.append(Page(url_variant(a.url, k), body.encode(), a.date + dt.timedelta(days=1),
                          kind="url_dup"))

    for k in range(8):  # near duplicates: small edits, another host, a day later
        a = articles[20 + 8 * k]
        host2 = ENGLISH_SITES[(ENGLISH_SITES.index(a.host) + 1) % len(ENGLISH_SITES)]
        body = render_article(host2, a.title, edit_slightly(a.paras, rng), a.date, "en")
        pages.append(Page(f"https://{host2}/world/{slug(a.title)}-{k}", body.encode(),
                          a.date + dt.timedelta(days=1), kind="near_dup"))
    return pages


def _pages_without_a_document() -> list[Page]:
    """Non-HTML payloads, HTTP errors and redirects, empty pages."""
    host = ENGLISH_SITES[0]
    d = _minutes_after_base(2000)
    return [
        Page(f"https://{host}/files/report.pdf", b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<<>>\n%%EOF\n",
             d, content_type="application/pdf", kind="not_html"),
        Page(f"https://{host}/api/latest.json", b'{"articles": [{"id": 1, "title": "Hello"}]}', d,
             content_type="application/json", kind="not_html"),
        Page(f"https://{host}/img/logo.png", bytes.fromhex("89504e470d0a1a0a0000000d49484452") + bytes(64), d,
             content_type="image/png", kind="not_html"),
        Page(f"https://{host}/static/site.css", b"body{margin:0}", d, content_type="text/css", kind="not_html"),
        Page(f"https://{host}/news/missing-story", b"<html><body><h1>Not found</h1></body></html>", d,
             status="404 Not Found", kind="status"),
        Page(f"http://{host}/news/old-path", b"", d, status="301 Moved Permanently",
             extra_headers=[("Location", f"https://{host}/news/new-path")], kind="status"),
        Page(f"https://{host}/news/broken", b"<html><body>Internal error</body></html>", d,
             status="500 Internal Server Error", kind="status"),
        Page(f"https://{host}/news/empty", b"", d, kind="empty"),
        Page(f"https://{host}/news/blank", b"<html><head></head><body>  </body></html>", d, kind="empty_html"),
    ]


def _pages_hard_to_read(articles: list[_Article]) -> list[Page]:
    """Bad charsets (cp1252 bytes declared as UTF-8, an unknown charset name), then one huge
    page (3 MiB of markup, over the default size cap; it compresses to a few KB)."""
    a = articles[5]
    mislabelled = render_article(a.host, "\u201cSmart quotes\u201d \u2014 " + a.title,
                                 [p.replace(" the ", " the\u00a0") for p in a.paras], a.date, "en")
    b = articles[6]
    huge = b"<html><body>" + b"<div><p>Live updates: scroll for more.</p></div>\n" * 64000 + b"</body></html>"
    return [
        Page(f"https://{a.host}/opinion/{slug(a.title)}-cp1252",
             mislabelled.encode("cp1252", errors="replace"), a.date + dt.timedelta(hours=3),
             content_type="text/html; charset=utf-8", kind="bad_charset"),
        Page(f"https://{b.host}/opinion/{slug(b.title)}-bogus",
             render_article(b.host, b.title + ", revisited", b.paras[1:] + b.paras[:1], b.date, "en").encode(),
             b.date + dt.timedelta(hours=4), content_type="text/html; charset=x-bogus-charset",
             kind="bad_charset"),
        Page(f"https://{b.host}/live/blog", huge, _minutes_after_base(2000), kind="huge"),
    ]


def generate_pages(n_pages: int, frac_non_english: float = 0.5, frac_duplicates: float = 0.1,
                   seed: int = 0) -> list[Page]:
    """A bigger crawl for benchmarks: English articles assembled from random paragraphs of
    the English pool (so they are distinct documents), foreign articles, and duplicates
    (exact copies under other URLs, URL variants and near duplicates) of earlier pages."""
    rng = random.Random(seed)
    paras = [p for _, ps in english_pool() for p in ps if len(p.split()) >= 15]
    titles = [title for title, _ in english_pool()]
    langs = sorted(sample_text.FOREIGN_SENTENCES)
    pages: list[Page] = []
    originals: list[tuple[Page, str, list[str], str]] = []
    for i in range(n_pages):
        date = BASE_DATE + dt.timedelta(seconds=37 * i)
        if originals and rng.random() < frac_duplicates:
            page, title, ps, lang = rng.choice(originals)
            kind = rng.choice(["exact_dup", "url_dup", "near_dup"])
            host = page.url.split("/")[2]
            if kind == "exact_dup":
                pages.append(Page(f"https://syndication.example.com/story/{i}", page.body, date, kind=kind))
            elif kind == "url_dup":
                body = render_article(host, title, ps, page.date, lang, footer_note=f"Served in {i % 97} ms.")
                pages.append(Page(url_variant(page.url, i), body.encode(), date, kind=kind))
            else:
                body = render_article(host, title, edit_slightly(ps, rng), page.date, lang)
                pages.append(Page(f"https://{host}/more/{i}", body.encode(), date, kind=kind))
            continue
        if rng.random() < frac_non_english:
            lang = langs[i % len(langs)]
            title, ps = sample_text.foreign_article(lang, rng)
            host = FOREIGN_SITES[lang]
            declared = None if rng.random() < 0.1 else lang
            kind = "foreign"
        else:
            lang = declared = "en"
            title = f"{rng.choice(titles)}: part {i}"
            ps = rng.sample(paras, rng.randint(4, 12))
            host = ENGLISH_SITES[i % len(ENGLISH_SITES)]
            kind = "article"
        page = Page(f"https://{host}/news/{i}/{slug(title)}",
                    render_article(host, title, ps, date, declared).encode(), date, kind=kind)
        pages.append(page)
        originals.append((page, title, ps, declared))
    return pages


def _record_id(seed: int, *parts) -> str:
    """A record id from the record's own content, not its position: the same page gets the
    same id whichever file it is written to (tests split one crawl over several files)."""
    return f"<urn:uuid:{uuid.UUID(bytes=hashlib.md5(repr((seed, *parts)).encode()).digest())}>"


def write_warc(path: str | Path, pages: list[Page], seed: int = 0, corrupt_at: int | None = None) -> None:
    """Write `pages` as a gzip-per-record WARC. `corrupt_at`: index of the page whose response
    record gets a damaged gzip member (bytes flipped mid-stream)."""
    path = Path(path)

    def record_bytes(uri, rtype, payload: bytes, date, http_headers=None, content_type=None):
        buf = io.BytesIO()
        writer = WARCWriter(buf, gzip=True)
        headers = {"WARC-Date": date.strftime("%Y-%m-%dT%H:%M:%SZ"),
                   "WARC-Record-ID": _record_id(seed, rtype, uri, date.isoformat(),
                                                hashlib.md5(payload).hexdigest())}
        if rtype == "warcinfo":
            headers["WARC-Filename"] = path.name
        rec = writer.create_warc_record(uri, rtype, payload=io.BytesIO(payload), length=len(payload),
                                        http_headers=http_headers, warc_content_type=content_type or "",
                                        warc_headers_dict=headers)
        writer.write_record(rec)
        return buf.getvalue()

    with storage.atomic_file(path) as tmp, open(tmp, "wb") as out:
        info = (b"software: roberta-pipeline corpus.sample_crawl\r\nformat: WARC File Format 1.1\r\n"
                b"description: deterministic sample crawl for tests and demos\r\n")
        out.write(record_bytes("", "warcinfo", info + path.name.encode(), BASE_DATE,
                               content_type="application/warc-fields"))
        for i, p in enumerate(pages):
            host = p.url.split("/")[2]
            req = f"GET /{p.url.split('/', 3)[3] if p.url.count('/') >= 3 else ''} HTTP/1.1\r\nHost: {host}\r\n" \
                  f"User-Agent: roberta-pipeline-sample/1.0\r\nAccept: text/html\r\n\r\n"
            out.write(record_bytes(p.url, "request", b"", p.date,
                                   http_headers=StatusAndHeaders(req.split("\r\n")[0],
                                                                 [("Host", host)], is_http_request=True)))
            headers = [("Content-Type", p.content_type), ("Content-Length", str(len(p.body)))] + p.extra_headers
            resp = record_bytes(p.url, "response", p.body, p.date,
                                http_headers=StatusAndHeaders(p.status, headers, protocol="HTTP/1.1"))
            if i == corrupt_at:
                mid = len(resp) // 2
                resp = resp[:mid] + bytes(b ^ 0x5A for b in resp[mid:mid + 64]) + resp[mid + 64:]
            out.write(resp)
            out.write(record_bytes(p.url, "metadata", f"fetchTimeMs: {100 + i % 900}\r\n".encode(), p.date,
                                   content_type="application/warc-fields"))


def generate_sample(path: str | Path, seed: int = 0) -> list[Page]:
    """The bundled sample: every planted case, and one damaged record in the middle."""
    pages = sample_pages(seed)
    # Damage an ordinary English article so the loss is one known document.
    victim = next(i for i in range(len(pages) // 2, len(pages)) if pages[i].kind == "article")
    write_warc(path, pages, seed, corrupt_at=victim)
    return pages


def generate_crawl(path: str | Path, n_pages: int, frac_non_english: float = 0.5,
                   frac_duplicates: float = 0.1, seed: int = 0) -> list[Page]:
    """A bigger, undamaged multilingual crawl for benchmarks."""
    pages = generate_pages(n_pages, frac_non_english, frac_duplicates, seed)
    write_warc(path, pages, seed)
    return pages


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="output .warc.gz path")
    ap.add_argument("--pages", type=int, default=0, help="generate a benchmark crawl of N pages instead of the sample")
    ap.add_argument("--non-english", type=float, default=0.5)
    ap.add_argument("--duplicates", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if a.pages:
        generate_crawl(a.out, a.pages, a.non_english, a.duplicates, a.seed)
    else:
        generate_sample(a.out, a.seed)
    print(f"wrote {a.out} ({Path(a.out).stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
