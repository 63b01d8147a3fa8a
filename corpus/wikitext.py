"""Wiki markup → plain text: a small regex-based cleaner for MediaWiki article source.

Not a MediaWiki parser: templates are dropped, not expanded (as WikiExtractor does by
default, and as BERT/RoBERTa's Wikipedia text was produced), so infoboxes, citation
templates and navboxes vanish with them. What it does, in order:

1. HTML comments `<!-- ... -->` removed; `<ref ...>...</ref>` and `<ref .../>` removed
   (footnotes are not prose); whole-content tags whose body is not prose (`<math>`,
   `<gallery>`, `<timeline>`, `<score>`, `<syntaxhighlight>`, `<source>`, `<imagemap>`)
   removed with their body.
2. Templates `{{...}}`, nested to any depth, and tables `{| ... |}` (which may hold
   templates, and nest too): removed innermost-first, by repeated substitution of a
   template/table that holds no other one, until nothing changes. Magic words like
   `__TOC__` removed.
3. Links: `[[File:...]]`, `[[Image:...]]`, `[[Category:...]]` and interlanguage links
   (`[[de:...]]`) removed, including captions that hold nested links; `[[target|label]]`
   → label, `[[target]]` → target (the `#section` part dropped when it is the whole
   text); the "blend" suffix (`[[bus]]es` → buses) is kept by leaving trailing letters alone.
   External links `[http://x label]` → label, bare `[http://x]` removed.
4. Bold/italic quotes (`'''''`, `'''`, `''`) removed; headings `== H ==` → `H` on their
   own line; list markers (`*`, `#`, `:`, `;`) at line starts removed; horizontal rules
   dropped; remaining HTML tags stripped (their text kept); HTML entities unescaped.
5. Whitespace: runs of spaces collapsed, at most one blank line between paragraphs,
   lines that are left empty of letters and digits (table debris) dropped.

Sections whose content is references or navigation ("References", "External links",
"See also", "Further reading", "Notes", "Bibliography", "Sources") are cut, as they are
lists of citations rather than prose.
"""
from __future__ import annotations

import html
import re

_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_REF_PAIRED = re.compile(r"<ref\b[^>/]*(?:/(?!>)[^>/]*)*>.*?</ref\s*>", re.S | re.I)
_REF_SELF = re.compile(r"<ref\b[^>]*/>", re.I)
_NON_PROSE_TAGS = re.compile(
    r"<(math|gallery|timeline|score|syntaxhighlight|source|imagemap|chem|graph|mapframe|"
    r"templatedata|templatestyles)\b[^>]*>.*?</\1\s*>", re.S | re.I)
_SELF_CLOSING_NON_PROSE = re.compile(r"<(templatestyles|references)\b[^>]*/>", re.I)
# A template or table that contains no other template/table opener.
_INNER_TEMPLATE = re.compile(r"\{\{(?:(?!\{\{|\}\}).)*\}\}", re.S)
_INNER_TABLE = re.compile(r"\{\|(?:(?!\{\||\|\}).)*\|\}", re.S)
_INNER_PARAM = re.compile(r"\{\{\{(?:(?!\{\{\{|\}\}\}).)*\}\}\}", re.S)
_MAGIC = re.compile(r"__[A-Z]+__")
# Links whose text is not part of the article's prose: files, categories, interlanguage.
_DROP_LINK_PREFIX = re.compile(
    r"\[\[\s*:?\s*(?:file|image|media|category|[a-z]{2,3}(?:-[a-z]+)?)\s*:", re.I)
_INNER_LINK = re.compile(r"\[\[([^\[\]]*)\]\]")
_EXT_LINK_LABEL = re.compile(r"\[(?:https?|ftp)://[^\s\]]+\s+([^\]]*)\]", re.I)
_EXT_LINK_BARE = re.compile(r"\[(?:https?|ftp)://[^\s\]]*\]", re.I)
_BOLD_ITALIC = re.compile(r"'{2,5}")
_HEADING = re.compile(r"^\s*(={1,6})\s*(.*?)\s*\1\s*$", re.M)
_LIST_MARK = re.compile(r"^[*#:;]+\s*", re.M)
_RULE = re.compile(r"^-{4,}\s*$", re.M)
_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANKS = re.compile(r"\n{3,}")
_CUT_SECTIONS = {"references", "external links", "see also", "further reading", "notes",
                 "bibliography", "sources", "footnotes", "citations", "notes and references"}


def _remove_nested(text: str, pattern: re.Pattern, limit: int = 50) -> str:
    """Remove innermost matches repeatedly: nested constructs go from the inside out."""
    for _ in range(limit):
        text, n = pattern.subn("", text)
        if not n:
            break
    return text


def _links(text: str) -> str:
    """Resolve [[...]] links innermost-first, dropping files/categories/interlanguage."""
    def repl(m: re.Match) -> str:
        whole = m.group(0)
        if _DROP_LINK_PREFIX.match(whole):
            return ""
        inner = m.group(1)
        target, bar, label = inner.partition("|")
        if bar:
            return label if label.strip() else target.split("#", 1)[0]  # pipe trick
        return target.lstrip(":").split("#", 1)[0] or target.lstrip("#")

    for _ in range(10):  # captions of files can hold links: resolve inside out
        text, n = _INNER_LINK.subn(repl, text)
        if not n:
            break
    return text


def _cut_sections(text: str) -> str:
    out, skipping, level = [], False, 0
    for line in text.split("\n"):
        m = _HEADING.match(line)
        if m:
            lvl = len(m.group(1))
            if skipping and lvl > level:
                continue
            skipping = m.group(2).strip().lower() in _CUT_SECTIONS
            level = lvl
            if skipping:
                continue
        elif skipping:
            continue
        out.append(line)
    return "\n".join(out)


def wiki_to_text(markup: str) -> str:
    """Plain text of one article's wiki source (see the module docstring)."""
    t = _COMMENT.sub("", markup)
    t = _REF_SELF.sub("", t)
    t = _REF_PAIRED.sub("", t)
    t = _NON_PROSE_TAGS.sub("", t)
    t = _SELF_CLOSING_NON_PROSE.sub("", t)
    t = _remove_nested(t, _INNER_PARAM)
    # Templates and tables interleave ({| inside {{ and back): alternate until stable.
    for _ in range(20):
        before = len(t)
        t = _remove_nested(t, _INNER_TEMPLATE)
        t = _remove_nested(t, _INNER_TABLE)
        if len(t) == before:
            break
    t = t.replace("{{", "").replace("}}", "")  # unbalanced leftovers
    t = _MAGIC.sub("", t)
    t = _cut_sections(t)
    t = _links(t)
    t = _EXT_LINK_LABEL.sub(r"\1", t)
    t = _EXT_LINK_BARE.sub("", t)
    t = _BOLD_ITALIC.sub("", t)
    t = _HEADING.sub(lambda m: "\n" + m.group(2) + "\n", t)
    t = _RULE.sub("", t)
    t = _LIST_MARK.sub("", t)
    t = _TAG.sub("", t)
    t = html.unescape(t)
    lines = []
    for line in t.split("\n"):
        line = _SPACES.sub(" ", line).strip()
        if line and not any(c.isalnum() for c in line):
            continue  # table/template debris such as "|}" or "|-"
        lines.append(line)
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()
