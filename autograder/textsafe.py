"""Student-controlled text made safe for each report format.

Messages, outputs, file and folder names come from the submission: they may hold terminal
escape sequences, Markdown or HTML meant to fake a score, characters that XML forbids, or
spreadsheet formulas.  Every report writer passes such text through one of these.
"""

from __future__ import annotations

import re

# C0/C1 controls except tab and newline, DEL, bidirectional overrides, line/paragraph separators.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def clean(text, limit: int | None = None) -> str:
    """Plain text for a terminal or a log: no control characters (tab and newline kept), capped."""
    text = text if isinstance(text, str) else str(text)
    if limit is not None and len(text) > limit:
        text = text[:limit] + " [...]"
    text = text.replace("\r\n", "\n")
    return _SURROGATE.sub("\ufffd", _CONTROL.sub("", text))


def one_line(text, limit: int = 300) -> str:
    return " ".join(clean(text, limit).split())


def md_inline(text, limit: int = 300) -> str:
    """Text inside a Markdown line: Markdown and HTML syntax escaped, on one line."""
    text = one_line(text, limit)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def md_block(text, limit: int = 4000, indent: str = "") -> list[str]:
    """Lines of a fenced Markdown code block holding ``text`` verbatim (a fence longer than any inside)."""
    text = clean(text, limit)
    longest = max((len(m) for m in re.findall(r"`+|~+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{indent}{fence}text", *(f"{indent}{line}" for line in text.splitlines()), f"{indent}{fence}"]


def xml_text(text, limit: int | None = None) -> str:
    """Text that XML 1.0 accepts (ElementTree escapes the markup characters itself)."""
    return clean(text, limit)


def csv_cell(text) -> str:
    """A CSV field a spreadsheet will not run: a leading = + - @ (or tab, CR) is neutralised with a quote."""
    text = one_line(text, 500)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def safe_text(text, limit: int = 300) -> str:
    """A file or folder name for a message: one line, no control characters."""
    return one_line(str(text), limit)
