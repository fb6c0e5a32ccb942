"""Parse PubMed XML (efetch responses, baseline and update files) into plain records.

The parser is pure: bytes, a file path or a binary file object go in, frozen dataclasses
come out. It never touches the network or a database, so it can be tested on its own and
reused by the E-utilities client (``ingest.entrez``) and the bulk loader
(``ingest.medline``).

Parsing uses lxml ``iterparse`` over the three record elements (``PubmedArticle``,
``PubmedBookArticle``, ``DeleteCitation``); each record is cleared, with its earlier
siblings, once it has been read, so memory stays flat however large the file is.
Gzip input is recognised by its magic bytes, whatever the file is called.

Safety
------
Entity expansion and DTD loading are switched off and the parser has no network access.
PubMed XML never declares entities of its own, so a document whose internal DTD subset
declares any entity (the shape of "billion laughs" and external-entity attacks) is
refused with :class:`evidence.errors.ParseError` before any record is produced. Entity
references a document makes without declaring them (possible when it names the external
PubMed DTD, which is not loaded) are never fetched: references to the standard HTML
character entities (``&nbsp;``, ``&eacute;``) become their characters, any other stays
as literal text (``&name;``).

Text
----
Titles, abstracts, affiliations and keywords keep the text of inline markup (``<i>``,
``<b>``, ``<u>``, ``<sup>``, ``<sub>``, MathML) and drop the tags. Inline tags never add
spaces, so ``r<sup>2</sup>`` stays ``r2`` and ``the<i>TERT</i>gene`` (as some 2018
PubMed downloads spell it) stays ``theTERTgene``: the parser cannot tell a lost space
from a real word-internal tag, and inventing spaces would split ``LE<sub>min</sub>``.
Block-like elements (``DispFormula``, MathML table rows and cells, ``<math
display="block">``) are set off by spaces. Inside MathML, whitespace that only indents
the markup is dropped (MathML ignores it), so a pretty-printed ``V̇O2max`` reads
``V.O2max`` and not ``V . O 2 m a x``. Every text value has its whitespace collapsed to
single ASCII spaces and trimmed (this also turns no-break and thin spaces into spaces).

Truncation and partial results
------------------------------
:func:`iter_pubmed` streams: when a file is truncated or malformed, the records before
the fault have already been yielded when it raises :class:`~evidence.errors.ParseError`.
Callers that must not store partial results (the loader) use :func:`parse_pubmed` or
:func:`parse_pubmed_bytes`, which read the whole document and return nothing unless all
of it parses.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, fields
from html.entities import name2codepoint
from operator import attrgetter
from typing import IO, Any, TypeAlias, TypeVar

from lxml import etree

from evidence.errors import InputError, ParseError
from evidence.grading import Flag, study_flags

__all__ = [
    "AbstractSection",
    "ArticleId",
    "Author",
    "CommentCorrection",
    "DeletedCitations",
    "HistoryDate",
    "Keyword",
    "MeshHeading",
    "MeshQualifier",
    "PubmedItem",
    "PubmedRecord",
    "Source",
    "iter_pubmed",
    "parse_pubmed",
    "parse_pubmed_bytes",
]

Source: TypeAlias = bytes | bytearray | memoryview | str | os.PathLike[str] | IO[bytes]

_RECORD_TAGS = ("PubmedArticle", "PubmedBookArticle", "DeleteCitation")
_ROOT_TAGS = ("PubmedArticleSet", "PubmedBookArticleSet")
_GZIP_MAGIC = b"\x1f\x8b"

# Local names (namespace stripped) of elements that read as separate blocks of text.
_BLOCK_TAGS = frozenset({"DispFormula", "mtr", "mtd", "mlabeledtr", "p", "br", "li", "div"})
# Emphasis wraps whole words: "the<i>TERT</i>gene" (as some PubMed records spell it) reads
# "the TERT gene". Sub- and superscripts are parts of words ("H<sub>2</sub>O") and are not.
_WORD_TAGS = frozenset({"i", "b", "u", "em", "strong"})
# MathML token elements: their content is text even when it is only a (no-break) space.
_MATH_TOKENS = frozenset({"mi", "mn", "mo", "mtext", "ms"})
_AUTHOR_TAGS = (
    "Author",
    "LastName",
    "ForeName",
    "Initials",
    "Suffix",
    "CollectiveName",
    "Identifier",
    "Affiliation",
)
_HTML_ENTITIES = {name: chr(code) for name, code in name2codepoint.items()}

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
_YEAR_MONTH = re.compile(r"(\d{4})(?:\s+([A-Za-z]+))?")
_DOI_PREFIX = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)", re.IGNORECASE)
_ORCID_CHARS = re.compile(r"[^0-9X]")
_ORCID_FORM = re.compile(r"\d{15}[\dX]")



_T = TypeVar("_T")


def _plain_repr(cls: type[_T]) -> type[_T]:
    """Give a dataclass the same ``repr`` text without reprlib's recursion guard.

    ``ingest.load.record_hash`` hashes a record's ``repr``; the generated ``__repr__``
    wraps every call in a guard against self-reference (a set and a thread id per nested
    object), about half the cost of hashing a bulk file's records. These records cannot
    refer to themselves, so the guard is dropped; the text is unchanged, field for field
    (``tests/test_pubmed_xml.py`` compares it with the generated one).
    """
    names = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
    template = f"{cls.__qualname__}(" + ", ".join(f"{n}={{!r}}" for n in names) + ")"
    if len(names) == 1:
        name = names[0]

        def __repr__(self: Any) -> str:
            return template.format(getattr(self, name))
    else:
        values = attrgetter(*names)

        def __repr__(self: Any) -> str:
            return template.format(*values(self))
    cls.__repr__ = __repr__  # type: ignore[method-assign]
    return cls



@_plain_repr
@dataclass(frozen=True, slots=True)
class AbstractSection:
    """One ``AbstractText`` element: a labelled section, or the whole unlabelled abstract.

    Attributes
    ----------
    label
        The publisher's label (``"OBJECTIVES"``), or ``None`` when unlabelled.
    nlm_category
        NLM's normalised category (``BACKGROUND``, ``OBJECTIVE``, ``METHODS``,
        ``RESULTS``, ``CONCLUSIONS``, ``UNASSIGNED``), or ``None``.
    text
        The section text, markup removed.
    """

    label: str | None
    nlm_category: str | None
    text: str


@_plain_repr
@dataclass(frozen=True, slots=True)
class Author:
    """A person or a collective (group) author.

    Attributes
    ----------
    last_name, fore_name, initials, suffix
        Name parts of a person; ``None`` for a collective.
    collective_name
        The group's name (``"COVID-19 Study Group"``); ``None`` for a person.
    orcid
        ORCID iD normalised to ``0000-0000-0000-000X``, or ``None`` when absent or
        not 16 digits.
    affiliations
        Affiliation strings, in document order.
    """

    last_name: str | None
    fore_name: str | None
    initials: str | None
    suffix: str | None
    collective_name: str | None
    orcid: str | None
    affiliations: tuple[str, ...]

    @property
    def display_name(self) -> str:
        """``"Last Initials"`` for a person (PubMed's short form), the name of a collective."""
        if self.collective_name:
            return self.collective_name
        return " ".join(part for part in (self.last_name, self.initials) if part)


@_plain_repr
@dataclass(frozen=True, slots=True)
class MeshQualifier:
    """A MeSH qualifier (subheading) attached to a descriptor."""

    name: str
    ui: str | None
    major: bool


@_plain_repr
@dataclass(frozen=True, slots=True)
class MeshHeading:
    """A MeSH heading: descriptor, its major-topic flag and its qualifiers.

    ``major`` is the descriptor's own ``MajorTopicYN``; PubMed also counts a heading as a
    major topic when one of its qualifiers is major, which :attr:`is_major_topic` gives.
    """

    descriptor: str
    descriptor_ui: str | None
    major: bool
    qualifiers: tuple[MeshQualifier, ...]

    @property
    def is_major_topic(self) -> bool:
        """True when the descriptor or any of its qualifiers is marked major."""
        return self.major or any(q.major for q in self.qualifiers)


@_plain_repr
@dataclass(frozen=True, slots=True)
class Keyword:
    """An author or indexer keyword; ``major`` is ``None`` when the flag is absent."""

    text: str
    major: bool | None


@_plain_repr
@dataclass(frozen=True, slots=True)
class ArticleId:
    """An identifier with its type: ``ArticleId`` (``pubmed``, ``doi``, ``pmc``, ``pii``,
    ``mid``, ...) or ``ELocationID`` (``doi``, ``pii``)."""

    id_type: str
    value: str


@_plain_repr
@dataclass(frozen=True, slots=True)
class CommentCorrection:
    """A link to a related notice: ``RetractionIn``, ``ErratumIn``, ``CommentOn``, ...

    Attributes
    ----------
    ref_type
        The ``RefType`` attribute, verbatim.
    pmid
        PMID of the related record, when PubMed gives one.
    ref_source
        The citation string of the related record (``"Gut. 2017 Jun;66(6):1135"``).
    """

    ref_type: str
    pmid: str | None
    ref_source: str | None


@_plain_repr
@dataclass(frozen=True, slots=True)
class HistoryDate:
    """A ``PubMedPubDate`` from the record's history (``received``, ``pubmed``, ...)."""

    status: str
    date: str | None


@_plain_repr
@dataclass(frozen=True, slots=True)
class PubmedRecord:
    """One PubMed citation (``PubmedArticle``) or book chapter (``PubmedBookArticle``).

    Text values are plain text (see the module notes); absent values are ``None`` or an
    empty tuple.

    Attributes
    ----------
    pmid
        The PubMed identifier (digits, as a string).
    version
        The ``PMID Version`` attribute (``"1"`` for nearly all records).
    status
        ``MedlineCitation Status``: ``MEDLINE``, ``PubMed-not-MEDLINE``,
        ``In-Data-Review``, ``In-Process``, ``Publisher``, ...; ``None`` for books.
    is_book
        True for a ``PubmedBookArticle``.
    title
        ``ArticleTitle``; for a whole book with no ``ArticleTitle``, the ``BookTitle``.
        An empty string when the record has no title.
    vernacular_title
        The title in the original language, when it is not English.
    abstract
        The ``AbstractText`` sections' texts joined by ``"\\n"`` (labels not included;
        they are in :attr:`abstract_sections`), or ``None`` without an abstract.
    abstract_sections
        Every ``AbstractText`` with its label and NLM category.
    copyright
        ``CopyrightInformation`` of the abstract.
    journal, iso_abbreviation, medline_ta, issn, issn_linking
        Journal full title, ISO abbreviation, NLM title abbreviation, the ISSN printed on
        the issue, and the linking ISSN.
    volume, issue, pages
        ``pages`` is ``MedlinePgn``, else ``StartPage-EndPage``.
    elocation_ids
        ``ELocationID`` values (electronic locations: DOI, publisher item id).
    pub_year
        Year of the issue: ``PubDate/Year``, else the first year in ``MedlineDate``.
    pub_date
        Best-effort ISO date of the issue: ``"2018-05-17"``, ``"2018-05"`` or ``"2018"``.
        A range (``"1998 Dec-1999 Jan"``, season ``"May-Jun"``) gives its first month.
    pub_season
        ``PubDate/Season`` verbatim (``"Spring"``, ``"May-Jun"``).
    medline_date
        ``PubDate/MedlineDate`` verbatim, for dates PubMed could not split.
    article_date
        Date of electronic publication (``ArticleDate``), ISO.
    date_completed, date_revised
        Indexing dates, ISO.
    authors
        Authors in order (for a book chapter, its authors; else the book's).
    languages
        ``Language`` codes (``"eng"``, ``"ger"``).
    publication_types, publication_type_uis
        ``PublicationType`` names and their MeSH UIs, position by position.
    mesh
        MeSH headings in order.
    chemicals
        ``NameOfSubstance`` of each ``Chemical``.
    keywords
        Keywords from every ``KeywordList``.
    doi, pmcid, pii
        From ``PubmedData/ArticleIdList``; ``doi`` and ``pii`` fall back to the
        ``ELocationID``. ``pmcid`` always starts with ``"PMC"``.
    article_ids
        Every ``ArticleId`` of the record itself (not of its references).
    comments_corrections
        Links to retractions, errata, comments, updates, ...
    publication_status
        ``ppublish``, ``epublish``, ``aheadofprint``.
    history
        ``PubMedPubDate`` entries.
    book_title, publisher
        For books: the book's title and publisher name.
    """

    pmid: str
    version: str | None
    status: str | None
    is_book: bool
    title: str
    vernacular_title: str | None
    abstract: str | None
    abstract_sections: tuple[AbstractSection, ...]
    copyright: str | None
    journal: str | None
    iso_abbreviation: str | None
    medline_ta: str | None
    issn: str | None
    issn_linking: str | None
    volume: str | None
    issue: str | None
    pages: str | None
    elocation_ids: tuple[ArticleId, ...]
    pub_year: int | None
    pub_date: str | None
    pub_season: str | None
    medline_date: str | None
    article_date: str | None
    date_completed: str | None
    date_revised: str | None
    authors: tuple[Author, ...]
    languages: tuple[str, ...]
    publication_types: tuple[str, ...]
    publication_type_uis: tuple[str | None, ...]
    mesh: tuple[MeshHeading, ...]
    chemicals: tuple[str, ...]
    keywords: tuple[Keyword, ...]
    doi: str | None
    pmcid: str | None
    pii: str | None
    article_ids: tuple[ArticleId, ...]
    comments_corrections: tuple[CommentCorrection, ...]
    publication_status: str | None
    history: tuple[HistoryDate, ...]
    book_title: str | None
    publisher: str | None

    def flags(self) -> tuple[Flag, ...]:
        """The study flags (retracted, expression of concern, erratum, ...) with reasons.

        Computed by `evidence.grading.study_flags`, the one implementation of flags, from
        the record's publication types, CommentsCorrections and languages.
        """
        return study_flags(
            publication_types=self.publication_types,
            comments_corrections=[(c.ref_type, c.pmid) for c in self.comments_corrections],
            languages=self.languages,
        )

    def _flagged(self, code: str) -> bool:
        return any(f.code == code for f in self.flags())

    @property
    def is_retracted(self) -> bool:
        """True when the record is marked "Retracted Publication" or links a retraction."""
        return self._flagged("retracted")

    @property
    def is_retraction_notice(self) -> bool:
        """True when the record is itself a retraction notice."""
        return self._flagged("retraction_notice")

    @property
    def has_expression_of_concern(self) -> bool:
        """True when an expression of concern about this record has been published."""
        return self._flagged("expression_of_concern")

    @property
    def has_erratum(self) -> bool:
        """True when an erratum was published, or the record corrected and republished."""
        return self._flagged("erratum") or self._flagged("corrected_and_republished")

    def to_dict(self) -> dict[str, Any]:
        """Return the record as JSON-safe data (dicts, lists, str, int, bool, None).

        The derived flags (``is_retracted``, ``is_retraction_notice``,
        ``has_expression_of_concern``, ``has_erratum``) are included.
        """
        data: dict[str, Any] = {"kind": "book" if self.is_book else "article"}
        data.update(_plain(self))
        data["is_retracted"] = self.is_retracted
        data["is_retraction_notice"] = self.is_retraction_notice
        data["has_expression_of_concern"] = self.has_expression_of_concern
        data["has_erratum"] = self.has_erratum
        return data


@_plain_repr
@dataclass(frozen=True, slots=True)
class DeletedCitations:
    """A ``DeleteCitation`` block of an update file: PMIDs to remove from the database."""

    pmids: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"kind": "delete", "pmids": [...]}``."""
        return {"kind": "delete", "pmids": list(self.pmids)}


PubmedItem: TypeAlias = PubmedRecord | DeletedCitations
# What lxml reads: a path it opens itself, or a binary stream.
_Stream: TypeAlias = IO[bytes] | gzip.GzipFile | io.RawIOBase


def _plain(value: Any) -> Any:
    """Convert dataclasses and tuples to dicts and lists, recursively."""
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    return value


# --------------------------------------------------------------------------- public API


def iter_pubmed(source: Source) -> Iterator[PubmedItem]:
    """Stream the records of a PubMed XML document.

    Parameters
    ----------
    source
        The document as bytes, a path, or a binary file object; gzip-compressed or not
        (recognised by its magic bytes).

    Yields
    ------
    PubmedRecord | DeletedCitations
        One item per ``PubmedArticle`` / ``PubmedBookArticle`` / ``DeleteCitation``, in
        document order.

    Raises
    ------
    ParseError
        The document is malformed, truncated, not a ``PubmedArticleSet``, declares
        entities, or holds a record without a PMID. Records before the fault have
        already been yielded; use :func:`parse_pubmed` when that is not acceptable.
    InputError
        A path cannot be opened.
    """
    stream, name, owned = _open(source)
    try:
        yield from _iterate(stream, name)
    finally:
        if owned is not None:
            owned.close()


def parse_pubmed(source: Source) -> list[PubmedItem]:
    """Parse a whole PubMed XML document, all or nothing.

    Parameters
    ----------
    source
        As for :func:`iter_pubmed`.

    Returns
    -------
    list[PubmedRecord | DeletedCitations]
        Every item, in document order; only returned when the whole document parsed.

    Raises
    ------
    ParseError
        As for :func:`iter_pubmed`; no item is returned.
    InputError
        A path cannot be opened.
    """
    return list(iter_pubmed(source))


def parse_pubmed_bytes(data: bytes) -> list[PubmedItem]:
    """Parse an in-memory PubMed XML document (an efetch response), all or nothing.

    Parameters
    ----------
    data
        The raw response body, gzip-compressed or not.

    Returns
    -------
    list[PubmedRecord | DeletedCitations]
        Every item, in document order; only returned when the whole document parsed.

    Raises
    ------
    ParseError
        The document is malformed, truncated or hostile; no item is returned.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"parse_pubmed_bytes needs bytes, not {type(data).__name__}")
    return parse_pubmed(data)


# --------------------------------------------------------------------------- reading


def _open(source: Source) -> tuple[_Stream, str, IO[bytes] | None]:
    """Return (what lxml should read, a name for messages, a file we must close)."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        if not data.strip():
            raise ParseError("<bytes>: the document is empty")
        buffer = io.BytesIO(data)
        if data.startswith(_GZIP_MAGIC):
            return gzip.GzipFile(fileobj=buffer, mode="rb"), "<bytes>", None
        return buffer, "<bytes>", None
    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        try:
            handle: IO[bytes] = open(path, "rb")  # closed by iter_pubmed
        except OSError as e:
            raise InputError(f"cannot open {path}: {e.strerror or e}") from e
        if handle.read(2) == _GZIP_MAGIC:
            handle.seek(0)
            return gzip.GzipFile(fileobj=handle, mode="rb"), path, handle
        handle.seek(0)
        return handle, path, handle
    name = str(getattr(source, "name", "<stream>"))
    head = source.read(2)
    if not isinstance(head, bytes):
        raise TypeError(f"{name}: the file must be opened in binary mode")
    stream = _Prefixed(head, source)
    if head == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=stream, mode="rb"), name, None
    return stream, name, None


class _Prefixed(io.RawIOBase):
    """A binary reader that replays bytes already read from a non-seekable stream."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        super().__init__()
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            if size is None or size < 0:
                return head + self._rest.read()
            if len(head) >= size:
                self._head = head[size:]
                return head[:size]
            return head + self._rest.read(size - len(head))
        return self._rest.read(-1 if size is None else size)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _iterate(stream: _Stream, name: str) -> Iterator[PubmedItem]:
    # Start events (of the root and of each record) let the document be vetted before
    # libxml2 reads any record content, so an entity attack is refused with its own
    # message rather than failing later as an expansion limit.
    context = etree.iterparse(
        stream,
        events=("start", "end"),
        tag=_RECORD_TAGS + _ROOT_TAGS,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
    )
    checked = False
    try:
        for event, elem in context:
            if event == "start":
                if not checked:
                    _check_document(elem.getroottree(), name)
                    checked = True
                continue
            tag = elem.tag
            if tag == "PubmedArticle":
                item: PubmedItem = _article(elem, name)
            elif tag == "PubmedBookArticle":
                item = _book(elem, name)
            elif tag == "DeleteCitation":
                item = DeletedCitations(tuple(_t(p) for p in elem.iterfind("PMID")))
            else:  # the end of the root element
                continue
            # Free the subtree and the cleared siblings before it, so the tree held by
            # iterparse never grows beyond one record.
            elem.clear(keep_tail=False)
            parent = elem.getparent()
            if parent is not None:
                while elem.getprevious() is not None:
                    del parent[0]
            yield item
        if not checked:
            root = context.root
            if root is None:
                raise ParseError(f"{name}: no XML document found")
            _check_document(root.getroottree(), name)
    except etree.XMLSyntaxError as e:
        raise ParseError(f"{name}: malformed or truncated XML: {_describe(e)}") from e
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise ParseError(f"{name}: corrupt or truncated gzip data: {e}") from e


def _describe(error: etree.XMLSyntaxError) -> str:
    message = error.msg or str(error)
    if error.lineno and f"line {error.lineno}" not in message:
        message = f"{message} (line {error.lineno})"
    return message


def _check_document(tree: etree._ElementTree, name: str) -> None:
    dtd = tree.docinfo.internalDTD
    if dtd is not None:
        # DTD.iterentities is missing from lxml-stubs.
        entities = [entity.name for entity in dtd.iterentities()]  # type: ignore[attr-defined]
        if entities:
            raise ParseError(
                f"{name}: the document declares entities in its DTD ({', '.join(entities[:5])});"
                " PubMed XML never does, so it is refused (entity-expansion / external-entity"
                " attack)"
            )
    root = tree.getroot()
    if root.tag not in _ROOT_TAGS:
        raise ParseError(f"{name}: not a PubMed document (root element <{root.tag}>)")


# --------------------------------------------------------------------------- text


def _norm(text: str) -> str:
    """Collapse whitespace runs to single spaces and trim."""
    # XML text can only hold space, tab, LF and CR as ASCII whitespace, so a long ASCII
    # string without a double space or one of the other three needs trimming only. That
    # test is a few memchr scans, several times cheaper than split-and-join on the long
    # texts (affiliations, abstracts) that dominate bulk files.
    if (
        len(text) > 32
        and text.isascii()
        and "  " not in text
        and "\n" not in text
        and "\t" not in text
        and "\r" not in text
    ):
        return text.strip()
    return " ".join(text.split())


def _t(el: etree._Element | None) -> str:
    """Plain text of an element: inline markup kept as text, whitespace collapsed."""
    if el is None:
        return ""
    if len(el) == 0:
        text = el.text
        return _norm(text) if text else ""
    parts: list[str] = []
    _collect(el, parts, "", False)
    return _norm("".join(parts))


def _opt(el: etree._Element | None) -> str | None:
    """Like :func:`_t`, but ``None`` for a missing or empty element."""
    return _t(el) or None


def _kids(el: etree._Element | None) -> dict[str, etree._Element]:
    """First child element by tag.

    lxml's ``find`` runs a path query per call; one pass over a handful of children is
    several times cheaper, which matters at baseline scale.
    """
    found: dict[str, etree._Element] = {}
    if el is not None:
        for child in el:
            found.setdefault(child.tag, child)
    return found


def _s(text: str | None) -> str | None:
    """Whitespace-collapsed text of a text-only (``#PCDATA``) element; ``None`` if empty."""
    # Names, MeSH terms and dates are short: split-and-join beats _norm's checks here.
    return " ".join(text.split()) or None if text else None


def _ends_alnum(parts: list[str]) -> bool:
    for part in reversed(parts):
        if part:
            return part[-1].isalnum()
    return False


def _collect(el: etree._Element, parts: list[str], local: str, in_math: bool) -> None:
    text = el.text
    if text and not (in_math and local not in _MATH_TOKENS and text.isspace()):
        parts.append(text)
    for child in el:
        tag = child.tag
        inner = ""
        if type(tag) is str:
            child_local = tag.rpartition("}")[2]
            child_math = in_math or child_local == "math"
            block = child_local in _BLOCK_TAGS or (
                child_local == "math" and child.get("display") == "block"
            )
            if block:
                parts.append(" ")
            elif child_local in _WORD_TAGS:
                inner = "".join(str(t) for t in child.itertext())
                if inner[:1].isalnum() and _ends_alnum(parts):
                    parts.append(" ")
            _collect(child, parts, child_local, child_math)
            if block:
                parts.append(" ")
        elif tag is etree.Entity:
            # An entity reference left unexpanded (resolve_entities=False): only the
            # standard HTML character entities are turned into their characters.
            reference = child.text or ""
            parts.append(_HTML_ENTITIES.get(reference[1:-1], reference))
        # Comments and processing instructions contribute no text, only their tails.
        tail = child.tail
        if tail and not (in_math and tail.isspace()):
            if inner[-1:].isalnum() and tail[0].isalnum():
                parts.append(" ")
            parts.append(tail)


# --------------------------------------------------------------------------- dates


def _month(value: str | None) -> int | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        number = int(value)
        return number if 1 <= number <= 12 else None
    return _MONTHS.get(value.lower().rstrip("."))


def _iso(year: str | None, month: int | None = None, day: str | None = None) -> str | None:
    if not year or not year.isdigit():
        return None
    if month is None:
        return year
    if day and day.isdigit() and 1 <= int(day) <= 31:
        return f"{year}-{month:02d}-{int(day):02d}"
    return f"{year}-{month:02d}"


def _ymd(el: etree._Element | None) -> str | None:
    """ISO date of a ``Year``/``Month``/``Day`` element (``ArticleDate``, ``DateRevised``)."""
    if el is None:
        return None
    year = month = day = None
    for part in el:
        tag = part.tag
        if tag == "Year":
            year = part.text
        elif tag == "Month":
            month = part.text
        elif tag == "Day":
            day = part.text
    return _iso(year.strip() if year else None, _month(month), day)


def _first_year_month(text: str) -> tuple[int | None, int | None]:
    """First year of a free-form date, and the month directly after it if any."""
    match = _YEAR_MONTH.search(text)
    if match is None:
        return None, None
    return int(match.group(1)), _month(match.group(2))


def _pub_date(
    el: etree._Element | None,
) -> tuple[int | None, str | None, str | None, str | None]:
    """Return (year, ISO-ish date, season, MedlineDate) of a ``PubDate`` element."""
    if el is None:
        return None, None, None, None
    parts = {child.tag: child.text for child in el}
    medline_date = _s(parts.get("MedlineDate"))
    if medline_date is not None:
        year, month = _first_year_month(medline_date)
        date = None if year is None else _iso(f"{year:04d}", month)
        return year, date, None, medline_date
    year_text = (parts.get("Year") or "").strip()
    season = _s(parts.get("Season"))
    if season is not None:
        month = _first_year_month(f"0000 {season}")[1]
        return _int(year_text), _iso(year_text, month), season, None
    month = _month(parts.get("Month"))
    date = _iso(year_text, month, parts.get("Day"))
    return _int(year_text), date, None, None


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    return int(text) if text.isdigit() else None


# --------------------------------------------------------------------------- parts


def _orcid(value: str) -> str | None:
    digits = _ORCID_CHARS.sub("", value.upper().rsplit("/", 1)[-1])
    if not _ORCID_FORM.fullmatch(digits):
        return None
    return f"{digits[0:4]}-{digits[4:8]}-{digits[8:12]}-{digits[12:16]}"


def _authors(author_list: etree._Element | None) -> tuple[Author, ...]:
    if author_list is None:
        return ()
    authors: list[Author] = []
    last = fore = initials = suffix = collective = orcid = None
    affiliations: list[str] = []
    started = False
    # One filtered walk of the whole list (the filter runs in C) touches far fewer
    # elements than visiting each author's children and their AffiliationInfo wrappers.
    for el in author_list.iter(_AUTHOR_TAGS):
        tag = el.tag
        if tag == "Author":
            if started:
                authors.append(
                    Author(last, fore, initials, suffix, collective, orcid, tuple(affiliations))
                )
            last = fore = initials = suffix = collective = orcid = None
            affiliations = []
            started = True
        elif tag == "LastName":
            last = _s(el.text)
        elif tag == "ForeName":
            fore = _s(el.text)
        elif tag == "Initials":
            initials = _s(el.text)
        elif tag == "Affiliation":
            affiliation = _t(el)
            if affiliation:
                affiliations.append(affiliation)
        elif tag == "Identifier":
            # Affiliations carry identifiers too (ROR, GRID), never an ORCID.
            if orcid is None and (el.get("Source") or "").upper() == "ORCID":
                orcid = _orcid(el.text or "")
        elif tag == "Suffix":
            suffix = _opt(el)
        elif tag == "CollectiveName":
            collective = _opt(el)
    if started:
        authors.append(Author(last, fore, initials, suffix, collective, orcid, tuple(affiliations)))
    return tuple(authors)


def _abstract(
    abstract: etree._Element | None,
) -> tuple[str | None, tuple[AbstractSection, ...], str | None]:
    if abstract is None:
        return None, (), None
    sections: list[AbstractSection] = []
    copyright_ = None
    for part in abstract:
        tag = part.tag
        if tag == "AbstractText":
            sections.append(
                AbstractSection(
                    part.get("Label") or None, part.get("NlmCategory") or None, _t(part)
                )
            )
        elif tag == "CopyrightInformation":
            copyright_ = _opt(part)
    text = "\n".join(section.text for section in sections if section.text) or None
    return text, tuple(sections), copyright_


def _mesh(mesh_list: etree._Element) -> tuple[MeshHeading, ...]:
    headings: list[MeshHeading] = []
    for heading in mesh_list:
        descriptor: etree._Element | None = None
        qualifiers: list[MeshQualifier] = []
        for part in heading:
            tag = part.tag
            if tag == "DescriptorName":
                descriptor = part
            elif tag == "QualifierName":
                qualifiers.append(
                    MeshQualifier(
                        _s(part.text) or "", part.get("UI"), part.get("MajorTopicYN") == "Y"
                    )
                )
        if descriptor is not None:
            headings.append(
                MeshHeading(
                    _s(descriptor.text) or "",
                    descriptor.get("UI"),
                    descriptor.get("MajorTopicYN") == "Y",
                    tuple(qualifiers),
                )
            )
    return tuple(headings)


def _keywords(keyword_list: etree._Element) -> list[Keyword]:
    keywords: list[Keyword] = []
    for keyword in keyword_list:
        if keyword.tag != "Keyword":
            continue
        text = _t(keyword)
        if text:
            flag = keyword.get("MajorTopicYN")
            keywords.append(Keyword(text, None if flag is None else flag == "Y"))
    return keywords


def _comments_corrections(cc_list: etree._Element) -> tuple[CommentCorrection, ...]:
    links: list[CommentCorrection] = []
    for cc in cc_list:
        ref_type = cc.get("RefType") or ""
        # "Cites" entries are the article's reference list (dozens per record), not
        # comments or corrections; skipping them keeps bulk parsing fast.
        if ref_type == "Cites":
            continue
        pmid = ref_source = None
        for part in cc:
            tag = part.tag
            if tag == "PMID":
                pmid = _s(part.text)
            elif tag == "RefSource":
                ref_source = _s(part.text)
        links.append(CommentCorrection(ref_type, pmid, ref_source))
    return tuple(links)


def _article_ids(id_list: etree._Element | None) -> tuple[ArticleId, ...]:
    if id_list is None:
        return ()
    ids: list[ArticleId] = []
    for article_id in id_list:
        if article_id.tag != "ArticleId":
            continue
        value = _t(article_id)
        if value:
            ids.append(ArticleId(article_id.get("IdType") or "", value))
    return tuple(ids)


def _elocations(elements: list[etree._Element]) -> tuple[ArticleId, ...]:
    ids: list[ArticleId] = []
    for el in elements:
        value = _t(el)
        if value:
            ids.append(ArticleId(el.get("EIdType") or "", value))
    return tuple(ids)


def _history(history: etree._Element | None) -> tuple[HistoryDate, ...]:
    if history is None:
        return ()
    dates: list[HistoryDate] = []
    for date in history:
        if date.tag != "PubMedPubDate":
            continue
        # The DTD fixes PubMedPubDate as numeric Year, Month, Day (then Hour, Minute):
        # format those directly and leave anything else to the general reader.
        iso: str | None = None
        if len(date) >= 3 and date[0].tag == "Year":
            try:
                year, month, day = date[0].text or "", date[1].text or "", date[2].text or ""
                iso = f"{int(year):04d}-{int(month):02d}-{int(day):02d}"
            except ValueError:
                pass
        dates.append(HistoryDate(date.get("PubStatus") or "", iso or _ymd(date)))
    return tuple(dates)


def _identifiers(
    article_ids: tuple[ArticleId, ...], elocations: tuple[ArticleId, ...]
) -> tuple[str | None, str | None, str | None]:
    """DOI, PMCID and PII: ArticleIdList first, ELocationID as the fallback."""
    found: dict[str, str] = {}
    for source in (article_ids, elocations):
        for article_id in source:
            found.setdefault(article_id.id_type.lower(), article_id.value)
    doi = found.get("doi")
    if doi is not None and not doi.startswith("10."):
        doi = _DOI_PREFIX.sub("", doi)
    pmcid = found.get("pmc")
    if pmcid is not None and not pmcid.upper().startswith("PMC"):
        pmcid = f"PMC{pmcid}"
    return doi, pmcid, found.get("pii")


def _publication_types(
    elements: list[etree._Element],
) -> tuple[tuple[str, ...], tuple[str | None, ...]]:
    return tuple(_t(el) for el in elements), tuple(el.get("UI") for el in elements)


def _pmid(el: etree._Element | None, record: etree._Element, name: str) -> str:
    pmid = _t(el)
    if not pmid:
        raise ParseError(f"{name}: <{record.tag}> without a PMID (line {record.sourceline})")
    return pmid


# --------------------------------------------------------------------------- records


def _article(elem: etree._Element, name: str) -> PubmedRecord:
    top = _kids(elem)
    citation = top.get("MedlineCitation")
    if citation is None:
        raise ParseError(
            f"{name}: <PubmedArticle> without <MedlineCitation> (line {elem.sourceline})"
        )

    pmid_el: etree._Element | None = None
    article: etree._Element | None = None
    mesh: tuple[MeshHeading, ...] = ()
    chemicals: list[str] = []
    keywords: list[Keyword] = []
    comments: tuple[CommentCorrection, ...] = ()
    medline_ta = issn_linking = date_completed = date_revised = None
    # One pass over the citation's children, dispatching on the tag, is markedly faster
    # than one path search per field.
    for child in citation:
        tag = child.tag
        if tag == "PMID":
            pmid_el = child
        elif tag == "Article":
            article = child
        elif tag == "MeshHeadingList":
            mesh = _mesh(child)
        elif tag == "ChemicalList":
            chemicals = [
                _s(part.text) or ""
                for chemical in child
                for part in chemical
                if part.tag == "NameOfSubstance"
            ]
        elif tag == "KeywordList":
            keywords.extend(_keywords(child))
        elif tag == "CommentsCorrectionsList":
            comments = _comments_corrections(child)
        elif tag == "MedlineJournalInfo":
            info = {part.tag: part.text for part in child}
            medline_ta = _s(info.get("MedlineTA"))
            issn_linking = _s(info.get("ISSNLinking"))
        elif tag == "DateCompleted":
            date_completed = _ymd(child)
        elif tag == "DateRevised":
            date_revised = _ymd(child)
    pmid = _pmid(pmid_el, elem, name)
    if article is None:
        raise ParseError(f"{name}: PMID {pmid} has no <Article> (line {elem.sourceline})")

    journal = title = vernacular = pagination = abstract_el = author_list = None
    article_date = None
    elocation_els: list[etree._Element] = []
    languages: list[str] = []
    type_els: list[etree._Element] = []
    for child in article:
        tag = child.tag
        if tag == "Journal":
            journal = child
        elif tag == "ArticleTitle":
            title = child
        elif tag == "Pagination":
            pagination = child
        elif tag == "ELocationID":
            elocation_els.append(child)
        elif tag == "Abstract":
            abstract_el = child
        elif tag == "AuthorList":
            author_list = child
        elif tag == "Language":
            languages.append(_t(child))
        elif tag == "PublicationTypeList":
            type_els = [el for el in child if el.tag == "PublicationType"]
        elif tag == "VernacularTitle":
            vernacular = child
        elif tag == "ArticleDate":
            if article_date is None:
                article_date = _ymd(child)

    journal_parts = _kids(journal)
    issue_parts = _kids(journal_parts.get("JournalIssue"))
    pub_year, pub_date, pub_season, medline_date = _pub_date(issue_parts.get("PubDate"))

    abstract, sections, copyright_ = _abstract(abstract_el)
    elocations = _elocations(elocation_els)
    publication_types, publication_type_uis = _publication_types(type_els)

    data = _kids(top.get("PubmedData"))
    article_ids = _article_ids(data.get("ArticleIdList"))
    doi, pmcid, pii = _identifiers(article_ids, elocations)

    return PubmedRecord(
        pmid=pmid,
        version=pmid_el.get("Version") if pmid_el is not None else None,
        status=citation.get("Status"),
        is_book=False,
        title=_t(title),
        vernacular_title=_opt(vernacular),
        abstract=abstract,
        abstract_sections=sections,
        copyright=copyright_,
        journal=_opt(journal_parts.get("Title")),
        iso_abbreviation=_opt(journal_parts.get("ISOAbbreviation")),
        medline_ta=medline_ta,
        issn=_opt(journal_parts.get("ISSN")),
        issn_linking=issn_linking,
        volume=_opt(issue_parts.get("Volume")),
        issue=_opt(issue_parts.get("Issue")),
        pages=_pages(pagination),
        elocation_ids=elocations,
        pub_year=pub_year,
        pub_date=pub_date,
        pub_season=pub_season,
        medline_date=medline_date,
        article_date=article_date,
        date_completed=date_completed,
        date_revised=date_revised,
        authors=_authors(author_list),
        languages=tuple(languages),
        publication_types=publication_types,
        publication_type_uis=publication_type_uis,
        mesh=mesh,
        chemicals=tuple(chemicals),
        keywords=tuple(keywords),
        doi=doi,
        pmcid=pmcid,
        pii=pii,
        article_ids=article_ids,
        comments_corrections=comments,
        publication_status=_opt(data.get("PublicationStatus")),
        history=_history(data.get("History")),
        book_title=None,
        publisher=None,
    )


def _pages(pagination: etree._Element | None) -> str | None:
    if pagination is None:
        return None
    parts = {child.tag: child.text for child in pagination}
    medline_pgn = _s(parts.get("MedlinePgn"))
    if medline_pgn:
        return medline_pgn
    start = _s(parts.get("StartPage"))
    end = _s(parts.get("EndPage"))
    if start and end and end != start:
        return f"{start}-{end}"
    return start


def _book_authors(lists: list[etree._Element]) -> tuple[Author, ...]:
    """Authors from the first ``AuthorList`` that is not a list of editors."""
    for author_list in lists:
        if author_list.get("Type", "authors") != "editors":
            return _authors(author_list)
    return ()


def _book(elem: etree._Element, name: str) -> PubmedRecord:
    document = elem.find("BookDocument")
    if document is None:
        raise ParseError(
            f"{name}: <PubmedBookArticle> without <BookDocument> (line {elem.sourceline})"
        )
    pmid_el = document.find("PMID")
    pmid = _pmid(pmid_el, elem, name)
    book = document.find("Book")
    book_title = publisher = None
    book_authors: tuple[Author, ...] = ()
    pub_year = pub_date = pub_season = medline_date = volume = None
    book_elocations: list[etree._Element] = []
    if book is not None:
        book_title = _opt(book.find("BookTitle"))
        publisher = _opt(book.find("Publisher/PublisherName"))
        pub_year, pub_date, pub_season, medline_date = _pub_date(book.find("PubDate"))
        volume = _opt(book.find("Volume"))
        book_authors = _book_authors(list(book.iterfind("AuthorList")))
        book_elocations = list(book.iterfind("ELocationID"))
    authors = _book_authors(list(document.iterfind("AuthorList"))) or book_authors
    abstract, sections, copyright_ = _abstract(document.find("Abstract"))
    keywords: list[Keyword] = []
    for keyword_list in document.iterfind("KeywordList"):
        keywords.extend(_keywords(keyword_list))
    type_els = list(document.iterfind("PublicationType"))
    publication_types, publication_type_uis = _publication_types(type_els)

    book_data = elem.find("PubmedBookData")
    id_list = book_data.find("ArticleIdList") if book_data is not None else None
    article_ids = _article_ids(id_list if id_list is not None else document.find("ArticleIdList"))
    elocations = _elocations(book_elocations)
    doi, pmcid, pii = _identifiers(article_ids, elocations)

    return PubmedRecord(
        pmid=pmid,
        version=pmid_el.get("Version") if pmid_el is not None else None,
        status=None,
        is_book=True,
        title=_t(document.find("ArticleTitle")) or book_title or "",
        vernacular_title=_opt(document.find("VernacularTitle")),
        abstract=abstract,
        abstract_sections=sections,
        copyright=copyright_,
        journal=None,
        iso_abbreviation=None,
        medline_ta=None,
        issn=None,
        issn_linking=None,
        volume=volume,
        issue=None,
        pages=_pages(document.find("Pagination")),
        elocation_ids=elocations,
        pub_year=pub_year,
        pub_date=pub_date,
        pub_season=pub_season,
        medline_date=medline_date,
        article_date=None,
        date_completed=None,
        date_revised=_ymd(document.find("DateRevised")),
        authors=authors,
        languages=tuple(_t(el) for el in document.iterfind("Language")),
        publication_types=publication_types,
        publication_type_uis=publication_type_uis,
        mesh=(),
        chemicals=(),
        keywords=tuple(keywords),
        doi=doi,
        pmcid=pmcid,
        pii=pii,
        article_ids=article_ids,
        comments_corrections=(),
        publication_status=_opt(book_data.find("PublicationStatus"))
        if book_data is not None
        else None,
        history=_history(book_data.find("History")) if book_data is not None else (),
        book_title=book_title,
        publisher=publisher,
    )
