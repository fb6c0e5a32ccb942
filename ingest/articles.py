"""Reading articles: plain text, Markdown and HTML files, or a URL, into one plain text.

Everything downstream (claims, citations) stores character offsets into
``ParsedArticle.text``, so the text is kept exactly as the document gives it; the only
normalisation is of line endings (``\\r\\n`` and ``\\r`` become ``\\n``) and the removal of
a byte-order mark. ``ParsedArticle.sha256`` is the SHA-256 of that normalised text in
UTF-8, so re-reading the same content (a re-download, a copy with Windows line endings)
gives the same hash and can be recognised as a no-op.

Apart from reading files and fetching URLs, the functions here are pure: bytes in, a
frozen dataclass out.

Hostile input is refused with a one-line :class:`~evidence.errors.InputError` before
anything reaches a database, the same way for files, URLs and every format:

* only regular files are read: a FIFO, a device or a symlink to one is refused before it
  is opened (a FIFO would block, ``/dev/zero`` never ends);
* a file larger than the ``MAX_ARTICLE_BYTES`` setting is refused before it is read, and a
  download stops as soon as it passes the limit (or its ``Content-Length`` announces more);
* text that is not text is refused: a NUL character, any other C0 control character except
  tab, line feed, carriage return, form feed and vertical tab (the last two are whitespace
  in old plain-text files and harmless to both databases), and UTF-16 without a byte-order
  mark or a declared charset (which would otherwise decode as UTF-8 full of NULs).
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests
import trafilatura
from lxml import etree
from lxml import html as lxml_html
from markdown_it import MarkdownIt
from markdown_it.token import Token

from evidence.config import get_settings
from evidence.errors import FetchError, InputError

__all__ = [
    "SUPPORTED_SUFFIXES",
    "Link",
    "ParsedArticle",
    "check_text",
    "fetch_url",
    "iter_paths",
    "parse_document",
    "read_path",
]

TEXT = "text/plain"
MARKDOWN = "text/markdown"
HTML = "text/html"

#: File suffixes that can be read, and the content type each one is read as.
SUPPORTED_SUFFIXES: dict[str, str] = {
    ".txt": TEXT,
    ".text": TEXT,
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
    ".html": HTML,
    ".htm": HTML,
    ".xhtml": HTML,
}

_MIME_ALIASES: dict[str, str] = {
    "text/plain": TEXT,
    "text/markdown": MARKDOWN,
    "text/x-markdown": MARKDOWN,
    "text/html": HTML,
    "application/xhtml+xml": HTML,
}

# A title is a label in a list of articles; a first line that is really a paragraph is cut.
_MAX_TITLE = 200
_USER_AGENT = "substantiate/0.1 (claim-evidence database; article ingest)"


@dataclass(frozen=True)
class Link:
    """A hyperlink found in a document: its target URL and its anchor text."""

    url: str
    text: str


@dataclass(frozen=True)
class ParsedArticle:
    """A document reduced to plain text, with the links it carries.

    Attributes
    ----------
    source : str
        Where the document came from: a file path or a URL, as given.
    title : str
        The document's title (``<title>``/``<h1>``, first Markdown heading, or the first
        non-empty line of a text file).
    text : str
        The article text; claim and citation offsets index into this string.
    links : list[Link]
        Hyperlinks of the main content (HTML) or of the Markdown source; empty for
        plain text, whose URLs are found in ``text`` itself.
    content_type : str
        ``text/plain``, ``text/markdown`` or ``text/html``.
    sha256 : str
        Hex SHA-256 of ``text`` encoded as UTF-8.
    """

    source: str
    title: str
    text: str
    links: list[Link]
    content_type: str
    sha256: str


def parse_document(data: bytes, *, source: str, content_type: str | None = None) -> ParsedArticle:
    """Parse a document's bytes into a :class:`ParsedArticle`.

    Parameters
    ----------
    data : bytes
        The raw document.
    source : str
        File path or URL; names the document in errors, and its suffix decides the type
        when ``content_type`` is not given. For a URL it is also the base for relative
        links.
    content_type : str or None
        A MIME type, optionally with a ``charset`` parameter (as in an HTTP
        ``Content-Type`` header). When given it takes precedence over the suffix.

    Returns
    -------
    ParsedArticle

    Raises
    ------
    InputError
        The type is unsupported, the bytes cannot be decoded or are not text (see
        :func:`check_text`), or no text remains after extraction.
    """
    kind, charset = _resolve_type(source, content_type)
    if kind == HTML:
        charset = charset or _html_declared_charset(data)
    raw = _decode(data, source=source, declared=charset)
    check_text(raw, source=source)
    if kind == HTML:
        title, text, links = _parse_html(raw, source=source)
    elif kind == MARKDOWN:
        base = source if urlsplit(source).scheme in ("http", "https") else None
        title, text, links = _parse_markdown(_normalise_newlines(raw), base=base)
    else:
        text = _normalise_newlines(raw)
        title, links = _first_line(text), []
    if not text.strip():
        raise InputError(f"{source}: empty article (no text after extraction)")
    # Markup can spell control characters as references (&#1;); the results must be text too.
    check_text(text, source=source)
    check_text(title, source=source)
    for link in links:
        check_text(link.url + link.text, source=source)
    return ParsedArticle(
        source=source,
        title=_clip_title(title or _first_line(text)),
        text=text,
        links=links,
        content_type=kind,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
    )


def read_path(path: str | Path, *, max_bytes: int | None = None) -> ParsedArticle:
    """Read and parse one article file.

    Only a regular file (or a symlink to one) is opened, and only when it is no larger
    than ``max_bytes``; both are checked with ``stat`` before it is opened, and again on
    the open file.

    Parameters
    ----------
    path : str or Path
        A ``.txt``, ``.md`` or ``.html`` file (see :data:`SUPPORTED_SUFFIXES`).
    max_bytes : int or None
        The largest file read; default: the ``MAX_ARTICLE_BYTES`` setting.

    Returns
    -------
    ParsedArticle
        With ``source`` set to ``str(path)``.

    Raises
    ------
    InputError
        The file is missing, not a regular file, too large, unreadable, of an unsupported
        type, undecodable, not text, or empty.
    """
    p = Path(path)
    limit = max_bytes if max_bytes is not None else get_settings().max_article_bytes
    info = _stat(p)
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{p}: is a directory, not an article file")
    _check_regular(p, info.st_mode)
    # An unsupported file fails before it is read.
    _resolve_type(str(p), None)
    _check_size(p, info.st_size, limit)
    try:
        # O_NONBLOCK: should the path have become a FIFO since the stat, opening it does not
        # hang; the fstat below then refuses it.
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError as e:
        raise InputError(f"{p}: no such file") from e
    except OSError as e:
        raise InputError(f"{p}: cannot read ({e.strerror or e})") from e
    try:
        with os.fdopen(fd, "rb") as f:
            opened = os.fstat(f.fileno())
            _check_regular(p, opened.st_mode)
            _check_size(p, opened.st_size, limit)
            data = f.read(limit + 1)  # a file that grew since the stat is still bounded
    except OSError as e:
        raise InputError(f"{p}: cannot read ({e.strerror or e})") from e
    _check_size(p, len(data), limit)
    return parse_document(data, source=str(p))


def _stat(p: Path) -> os.stat_result:
    try:
        return p.stat()  # follows symlinks: a link to /dev/zero is a device
    except FileNotFoundError as e:
        raise InputError(f"{p}: no such file") from e
    except OSError as e:
        raise InputError(f"{p}: cannot read ({e.strerror or e})") from e


_FILE_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)


def _check_regular(p: Path, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")
    via = " (through a symlink)" if p.is_symlink() else ""
    raise InputError(f"{p}: is {kind}{via}, not a regular file; refused without reading it")


def _check_size(p: Path | str, size: int, limit: int) -> None:
    if size > limit:
        raise InputError(
            f"{p}: larger than the limit of {limit:,} bytes (setting MAX_ARTICLE_BYTES)"
        )


def iter_paths(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Expand files and directories into the article files to read.

    Directories are searched recursively for files with a supported suffix, in sorted
    order, skipping hidden files and folders. Files named explicitly are yielded as
    given, whatever their suffix, so that :func:`read_path` reports an unsupported one.
    Each file is yielded once.

    Parameters
    ----------
    paths : iterable of str or Path

    Yields
    ------
    Path

    Raises
    ------
    InputError
        A named path does not exist.
    """
    seen: set[Path] = set()
    for item in paths:
        p = Path(item)
        if p.is_dir():
            found = sorted(
                f
                for f in p.rglob("*")
                if f.is_file()
                and f.suffix.lower() in SUPPORTED_SUFFIXES
                and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
        elif p.exists():
            found = [p]
        else:
            raise InputError(f"{p}: no such file or directory")
        for f in found:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                yield f


def fetch_url(url: str, *, timeout: float = 20.0, max_bytes: int | None = None
              ) -> ParsedArticle:
    """Download an article and parse it.

    The type comes from the response's ``Content-Type`` (falling back to the URL's
    suffix when the server sends a generic type), and so does a declared charset.

    Parameters
    ----------
    url : str
        An ``http`` or ``https`` URL.
    timeout : float
        Seconds to wait for the connection and for each read.
    max_bytes : int or None
        The largest document read; default: the ``MAX_ARTICLE_BYTES`` setting. A larger
        ``Content-Length`` is refused before the body is read, and reading stops as soon
        as the body passes the limit.

    Returns
    -------
    ParsedArticle
        With ``source`` set to ``url``.

    Raises
    ------
    InputError
        The URL is not http(s), the document is larger than the limit, or it cannot be
        parsed (see :func:`parse_document`).
    FetchError
        The server cannot be reached, times out or answers with an HTTP error status.
    """
    limit = max_bytes if max_bytes is not None else get_settings().max_article_bytes
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InputError(f"{url}: not an http(s) URL")
    try:
        with requests.get(
            url, timeout=timeout, stream=True, headers={"User-Agent": _USER_AGENT}
        ) as resp:
            if resp.status_code >= 400:
                reason = f"HTTP {resp.status_code} {resp.reason or ''}".rstrip()
                raise FetchError(f"cannot fetch {url}: {reason}")
            announced = resp.headers.get("Content-Length", "")
            if announced.strip().isdigit():
                _check_size(url, int(announced), limit)
            chunks: list[bytes] = []
            size = 0
            for chunk in resp.iter_content(chunk_size=65536):
                size += len(chunk)
                _check_size(url, size, limit)
                chunks.append(chunk)
            header = resp.headers.get("Content-Type")
            final_url = resp.url or url
    except requests.RequestException as e:
        raise FetchError(f"cannot fetch {url}: {_request_reason(e)}") from e
    data = b"".join(chunks)
    content_type = _content_type_for_url(header, final_url)
    article = parse_document(data, source=final_url, content_type=content_type)
    # Identity stays the URL that was asked for; the final URL only resolved links.
    return ParsedArticle(
        source=url,
        title=article.title,
        text=article.text,
        links=article.links,
        content_type=article.content_type,
        sha256=article.sha256,
    )


def _request_reason(error: requests.RequestException) -> str:
    """A short reason for a failed request (requests' own messages run to many lines)."""
    if isinstance(error, requests.Timeout):
        return "timed out"
    if isinstance(error, requests.TooManyRedirects):
        return "too many redirects"
    if isinstance(error, requests.ConnectionError):
        match = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(error))
        return match.group(1).strip() if match else "connection failed"
    return f"{type(error).__name__}: {error}"


# --- types and decoding -------------------------------------------------------------


def _resolve_type(source: str, content_type: str | None) -> tuple[str, str | None]:
    """Return (canonical MIME type, declared charset or None)."""
    if content_type:
        mime, _, params = content_type.partition(";")
        mime = mime.strip().lower()
        if mime not in _MIME_ALIASES:
            supported = ", ".join(sorted(_MIME_ALIASES))
            raise InputError(
                f"{source}: unsupported content type {mime!r} (supported: {supported})"
            )
        match = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", params, re.IGNORECASE)
        return _MIME_ALIASES[mime], match.group(1) if match else None
    suffix = _suffix(source)
    if suffix not in SUPPORTED_SUFFIXES:
        supported = ", ".join(SUPPORTED_SUFFIXES)
        shown = repr(suffix) if suffix else "no suffix"
        raise InputError(f"{source}: unsupported file type {shown} (supported: {supported})")
    return SUPPORTED_SUFFIXES[suffix], None


def _suffix(source: str) -> str:
    parts = urlsplit(source)
    path = parts.path if parts.scheme in ("http", "https") else source
    return Path(path).suffix.lower()


def _content_type_for_url(header: str | None, url: str) -> str | None:
    """Prefer the server's type; fall back to the URL suffix when it is generic."""
    mime = (header or "").partition(";")[0].strip().lower()
    if mime in _MIME_ALIASES:
        return header
    if _suffix(url) in SUPPORTED_SUFFIXES:
        return None
    # Neither tells us: let parse_document name the server's type in its error.
    return header or "application/octet-stream"


def _html_declared_charset(data: bytes) -> str | None:
    """The charset an HTML document declares in a <meta> tag, if any."""
    head = data[:4096].decode("ascii", errors="replace")
    match = re.search(r"<meta[^>]+charset\s*=\s*[\"']?\s*([\w.:-]+)", head, re.IGNORECASE)
    return match.group(1) if match else None


def _decode(data: bytes, *, source: str, declared: str | None) -> str:
    """Decode as UTF-8 (with or without BOM), then as the declared charset.

    Guessing other encodings is refused: a wrong guess silently corrupts the text that
    every stored offset points into.
    """
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as e:
            raise InputError(
                f"{source}: undecodable bytes: invalid UTF-16 at byte offset {e.start}"
            ) from e
    if declared and _is_wide(declared):
        try:
            return data.decode(codecs.lookup(declared).name)
        except UnicodeDecodeError as e:
            raise InputError(
                f"{source}: undecodable bytes: not valid {declared} at byte offset {e.start}"
            ) from e
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as utf8_error:
        if declared:
            try:
                codec = codecs.lookup(declared)
            except LookupError as e:
                raise InputError(f"{source}: unknown declared charset {declared!r}") from e
        if declared and codec.name not in ("utf-8", "utf-8-sig"):
            try:
                return data.decode(codec.name)
            except UnicodeDecodeError as e:
                raise InputError(
                    f"{source}: undecodable bytes: not valid {declared} "
                    f"(byte 0x{data[e.start]:02x} at offset {e.start})"
                ) from e
        byte = data[utf8_error.start]
        raise InputError(
            f"{source}: undecodable bytes: not valid UTF-8 and no charset declared "
            f"(byte 0x{byte:02x} at offset {utf8_error.start})"
        ) from utf8_error


def _is_wide(charset: str) -> bool:
    try:
        return codecs.lookup(charset).name.startswith(("utf-16", "utf-32"))
    except LookupError:
        return False


# C0 control characters that are not text: all but tab, LF, VT, FF and CR.
_NOT_TEXT = re.compile("[\x00-\x08\x0e-\x1f]")


def check_text(text: str, *, source: str) -> None:
    """Refuse text holding characters that no article contains.

    A NUL character or any other C0 control character except tab, line feed, vertical
    tab, form feed and carriage return means the input is binary, or text in an encoding
    it does not declare (UTF-16 without a byte-order mark reads as UTF-8 with a NUL after
    every ASCII letter). PostgreSQL cannot store a NUL at all; refusing here keeps both
    databases alike.

    Parameters
    ----------
    text : str
        Decoded text.
    source : str
        Names the document in the error.

    Raises
    ------
    InputError
        Naming the first offending character and its offset.
    """
    match = _NOT_TEXT.search(text)
    if match is None:
        return
    at = match.start()
    if match.group() == "\x00":
        if _looks_like_utf16(text):
            raise InputError(
                f"{source}: not text: looks like UTF-16 without a byte-order mark or a "
                "declared charset (save it as UTF-8)"
            )
        raise InputError(f"{source}: not text: NUL character at offset {at}")
    raise InputError(
        f"{source}: not text: control character U+{ord(match.group()):04X} at offset {at}"
    )


def _looks_like_utf16(text: str) -> bool:
    """UTF-16 of mostly-ASCII text read as UTF-8: a NUL at every other position."""
    head = text[:2048]
    if len(head) < 4:
        return False
    even = head[0::2].count("\x00") / len(head[0::2])
    odd = head[1::2].count("\x00") / len(head[1::2])
    return max(even, odd) > 0.6 and min(even, odd) < 0.1


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _first_line(text: str) -> str:
    for line in text.split("\n"):
        if line.strip():
            return line.strip()
    return ""


def _clip_title(title: str) -> str:
    title = " ".join(title.split())
    if len(title) <= _MAX_TITLE:
        return title
    cut = title[:_MAX_TITLE].rsplit(" ", 1)[0]
    return cut + "…"


# --- HTML ---------------------------------------------------------------------------

_SKIPPED_SCHEMES = ("javascript:", "mailto:", "tel:", "data:", "#")


def _parse_html(raw: str, *, source: str) -> tuple[str, str, list[Link]]:
    """Main text via trafilatura, title, and the main content's links."""
    # lxml refuses str input that carries an XML encoding declaration (XHTML); the
    # bytes are already decoded, so the declaration has nothing left to say.
    raw = _XML_DECLARATION.sub("", raw, count=1)
    if not raw.strip():
        return "", "", []
    try:
        tree = lxml_html.document_fromstring(raw)
    except (etree.ParserError, ValueError) as e:
        raise InputError(f"{source}: cannot parse HTML ({e})") from e
    base = source if urlsplit(source).scheme in ("http", "https") else None
    base_href = tree.xpath("string(//base/@href)")
    if isinstance(base_href, str) and base_href.strip():
        base = urljoin(base or "", base_href.strip()) or None

    # trafilatura prunes the tree it is given, so it gets a string; without menus and
    # footers, because on a page with little text it takes them for the content.
    content = _without_furniture(raw)
    text = trafilatura.extract(
        content, url=base, output_format="txt", include_comments=False, include_tables=True
    )
    if text is None:
        # trafilatura gives up on pages with very little text; a short page is still an
        # article, so fall back to the body's own block text.
        text = _plain_body_text(lxml_html.document_fromstring(content))
    links = _content_links(content, tree, base=base)
    return _html_title(raw, tree), _normalise_newlines(text), links


_XML_DECLARATION = re.compile(r"\A\s*<\?xml[^>]*\?>")


def _html_title(raw: str, tree: lxml_html.HtmlElement) -> str:
    meta = trafilatura.extract_metadata(raw)
    if meta is not None and meta.title:
        return str(meta.title)
    for xpath in ("string(//title)", "string(//h1)"):
        value = tree.xpath(xpath)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


# Page furniture: menus, banners, footers, sidebars and forms carry no citations.
_FURNITURE = frozenset({"nav", "header", "footer", "aside", "form", "script", "style", "noscript"})
_FURNITURE_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search"})


def _is_furniture(element: lxml_html.HtmlElement, *, stop: lxml_html.HtmlElement) -> bool:
    node: lxml_html.HtmlElement | None = element
    while node is not None and node is not stop:
        if node.tag in _FURNITURE or (node.get("role") or "").lower() in _FURNITURE_ROLES:
            return True
        node = node.getparent()
    return False


def _drop(element: etree._Element) -> None:
    """Remove an element and its children, keeping the text that follows it."""
    parent = element.getparent()
    if parent is None:
        return
    if element.tail:
        previous = element.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + element.tail
        else:
            parent.text = (parent.text or "") + element.tail
    parent.remove(element)


def _without_furniture(raw: str) -> str:
    """The page as HTML without menus, sidebars and site-wide headers and footers."""
    tree = lxml_html.document_fromstring(raw)
    body = tree.find("body")
    if body is None:
        return raw
    elements = list(body.iter())
    for element in elements:
        tag = element.tag if isinstance(element.tag, str) else ""
        role = (element.get("role") or "").lower()
        if tag in ("header", "footer") or role in ("banner", "contentinfo"):
            # An article's own header holds its title; only the site's is furniture.
            if not any(a.tag in ("article", "main") for a in element.iterancestors()):
                _drop(element)
        elif tag in _FURNITURE or role in _FURNITURE_ROLES:
            _drop(element)
    return str(lxml_html.tostring(tree, encoding="unicode"))


def _plain_body_text(tree: lxml_html.HtmlElement) -> str:
    body = tree.find("body")
    root = body if body is not None else tree
    for element in list(root.iter()):
        if element is not root and _is_furniture(element, stop=root):
            _drop(element)
    blocks = (
        "p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "br", "section",
        "article", "blockquote", "pre", "dd", "dt", "main",
    )  # fmt: skip
    pieces: list[str] = []
    for el in root.iter():
        if el.tag in blocks:
            pieces.append("\n")
        if el.text:
            pieces.append(el.text)
        if el.tail:
            pieces.append(el.tail)
    lines = (" ".join(line.split()) for line in "".join(pieces).split("\n"))
    return "\n".join(line for line in lines if line)


def _content_links(raw: str, tree: lxml_html.HtmlElement, *, base: str | None) -> list[Link]:
    """The page's links that can be citations, in document order.

    Links inside the main content as trafilatura delimits it, plus every link inside an
    ``<article>`` or ``<main>`` element that is not page furniture: trafilatura drops
    link-only lists, which is exactly how reference sections are often written.
    """
    main_targets = {link.url for link in _trafilatura_links(raw, base=base)}
    containers = tree.xpath("//article | //main | //*[@role='main']")
    links: list[Link] = []
    for a in tree.iter("a"):
        link = _make_link(a.get("href"), a.text_content(), base=base)
        if link is None:
            continue
        in_content = any(
            container in a.iterancestors() and not _is_furniture(a, stop=container)
            for container in containers
        )
        if link.url in main_targets or in_content:
            links.append(link)
    return _unique(links)


def _trafilatura_links(raw: str, *, base: str | None) -> list[Link]:
    xml = trafilatura.extract(
        raw, url=base, output_format="xml", include_links=True, include_comments=False
    )
    if not xml:
        return []
    parser = etree.XMLParser(resolve_entities=False, no_network=True, recover=True)
    root = etree.fromstring(xml.encode("utf-8"), parser=parser)
    if root is None:
        return []
    links: list[Link] = []
    for ref in root.iter("ref"):
        link = _make_link(ref.get("target"), "".join(str(t) for t in ref.itertext()), base=base)
        if link is not None:
            links.append(link)
    return links


def _make_link(href: str | None, text: str, *, base: str | None) -> Link | None:
    if not href or not href.strip():
        return None
    href = href.strip()
    if href.lower().startswith(_SKIPPED_SCHEMES):
        return None
    url = urljoin(base, href) if base else href
    return Link(url=url, text=" ".join(text.split()))


def _unique(links: list[Link]) -> list[Link]:
    seen: set[Link] = set()
    out: list[Link] = []
    for link in links:
        if link not in seen:
            seen.add(link)
            out.append(link)
    return out


# --- Markdown -----------------------------------------------------------------------

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_MD = MarkdownIt("commonmark").enable("table").enable("strikethrough")


def _parse_markdown(source_text: str, *, base: str | None) -> tuple[str, str, list[Link]]:
    """Render Markdown to plain text: one line per block, list items as "- " lines."""
    title = ""
    match = _FRONT_MATTER.match(source_text)
    if match:
        for line in match.group(1).splitlines():
            key, _, value = line.partition(":")
            if key.strip().lower() == "title" and value.strip():
                title = value.strip().strip("\"'")
        source_text = source_text[match.end() :]

    tokens = _MD.parse(source_text)
    lines: list[str] = []
    links: list[Link] = []
    prefix = ""
    row: list[str] | None = None
    in_heading = False
    first_heading = ""
    for token in tokens:
        if token.type == "list_item_open":
            prefix = "- "
        elif token.type == "heading_open":
            in_heading = True
        elif token.type == "heading_close":
            in_heading = False
        elif token.type == "tr_open":
            row = []
        elif token.type == "tr_close" and row is not None:
            lines.append(" | ".join(row))
            row = None
        elif token.type == "inline":
            content = _render_inline(token.children or [], links, base=base)
            if in_heading and not first_heading and content.strip():
                first_heading = content.strip()
            if row is not None:
                row.append(content.strip())
                continue
            for i, line in enumerate(content.split("\n")):
                lines.append((prefix if i == 0 else "") + line)
            prefix = ""
        elif token.type in ("fence", "code_block"):
            lines.extend(token.content.rstrip("\n").split("\n"))
    text = "\n".join(line.rstrip() for line in lines)
    return title or first_heading, text.strip("\n"), _unique(links)


def _render_inline(children: list[Token], links: list[Link], *, base: str | None) -> str:
    out: list[str] = []
    href: str | None = None
    anchor: list[str] = []
    for child in children:
        piece = ""
        if child.type in ("text", "code_inline"):
            piece = child.content
        elif child.type == "softbreak":
            # A paragraph wrapped over several source lines is still one paragraph.
            piece = " "
        elif child.type == "hardbreak":
            piece = "\n"
        elif child.type == "image":
            piece = child.content
        elif child.type == "link_open":
            value = child.attrs.get("href")
            href = str(value) if value is not None else None
            anchor = []
        elif child.type == "link_close":
            link = _make_link(href, "".join(anchor), base=base)
            if link is not None:
                links.append(link)
            href = None
        out.append(piece)
        if href is not None:
            anchor.append(piece)
    return "".join(out)
