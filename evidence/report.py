"""The substantiation report of one article, as HTML or PDF, for a compliance file.

``build`` reads everything the report shows into plain dataclasses; ``render_html`` (a
Jinja2 template with autoescaping always on: article text is untrusted) and ``render_pdf``
(fpdf2, pure Python) lay it out; ``generate`` does all three for a shell and records the
generation in the audit trail, reading in a read session and writing the one audit event
in its own short transaction.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from evidence import audit, db, queries
from evidence.errors import InputError, NotFound, PermissionDenied
from evidence.models import (
    SUBSTANTIATION,
    AppUser,
    Article,
    Assessment,
    AuditEvent,
    Citation,
    Claim,
    EvidenceLink,
    RawRecord,
    Study,
    Verdict,
    utcnow,
)
from evidence.vocabulary import CITATION_FLAGS, CLAIM_FLAGS, STUDY_FLAGS

FORMATS = {"html": "text/html", "pdf": "application/pdf"}
"""Report formats and their media types."""

TEMPLATES = Path(__file__).resolve().parent / "templates"
NO_VERDICT = "no final verdict"
# Authors named in a citation before "et al." (Vancouver style lists six).
MAX_AUTHORS = 6
# Unicode fonts the PDF embeds when one is installed (Debian's fonts-dejavu-core puts
# DejaVu here); without one it uses the PDF core fonts and marks what they cannot show.
UNICODE_FONTS = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/TTF/DejaVuSans.ttf"),
)


# --------------------------------------------------------------------------- the content


@dataclass(frozen=True)
class StudyEntry:
    """One linked study as the report cites it, with each reviewer's reading."""

    pmid: str
    citation: str
    title: str
    journal: str
    year: str
    doi: str | None
    design: str
    evidence_level: str
    origin: str
    fits: bool | None
    pubmed_url: str | None
    doi_url: str | None
    raw_sha256: str | None
    warnings: list[str]
    readings: list[str]


@dataclass(frozen=True)
class ClaimSection:
    """One claim of the article with its verdict, reasons, evidence and reviewers."""

    number: int
    claim_id: int
    text: str
    category: str
    status: str
    verdict: str
    certainty: str | None
    action: str | None
    rationale: str
    adjudicator: str | None
    decided_at: str | None
    review_by: str | None
    reopened: list[str]
    suggested_certainty: str | None
    reasons: list[str]
    domains: list[str]
    flags: list[str]
    reviews: list[str]
    studies: list[StudyEntry]
    sources: list[dict[str, str]]


@dataclass(frozen=True)
class CitationEntry:
    """One reference the article makes, and whether it addresses any of its claims."""

    raw: str
    kind: str
    identifier: str
    status: str
    pmid: str | None
    addresses: str


@dataclass(frozen=True)
class ArticleReport:
    """Everything the substantiation report of one article shows."""

    article_id: int
    title: str
    source: str
    revision: int
    sha256: str
    is_current: bool
    fetched_at: str
    generated_at: str
    generated_by: str
    audit_head: str | None
    audit_events: int
    summary: list[tuple[str, int]]
    claims: list[ClaimSection]
    citations: list[CitationEntry] = field(default_factory=list)


def label(value: object) -> str:
    """A vocabulary value as words (``partially_substantiated`` -> ``partially substantiated``)."""
    return str(value).replace("_", " ")


def pubmed_url(pmid: str) -> str | None:
    """The PubMed page of a PMID (``None`` for anything that is not one)."""
    return f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/" if str(pmid).isdigit() else None


def doi_url(doi: str | None) -> str | None:
    """The doi.org resolver URL of a DOI (``None`` without one)."""
    return f"https://doi.org/{quote(doi.strip(), safe='/')}" if doi and doi.strip() else None


def citation_text(study: Study) -> str:
    """A Vancouver-style reference: authors. Title. Journal. Year;Volume(Issue):Pages."""
    names = []
    for a in study.authors or []:
        if a.get("collective"):
            names.append(str(a["collective"]))
        elif a.get("last_name"):
            names.append(f"{a['last_name']} {a.get('initials') or ''}".strip())
    authors = ", ".join(names[:MAX_AUTHORS]) + (", et al" if len(names) > MAX_AUTHORS else "")
    where = str(study.pub_year or "n.d.")
    if study.volume:
        where += f";{study.volume}"
        if study.issue:
            where += f"({study.issue})"
    if study.pages:
        where += f":{study.pages}"
    parts = [authors, (study.title or "(no title)").rstrip("."),
             study.journal or study.iso_abbreviation or "", where]
    return ". ".join(p for p in parts if p) + "."


def _when(value: datetime | None) -> str | None:
    if value is None:
        return None
    return queries.iso_utc(value.replace(microsecond=0))


def audit_head(session: Session) -> tuple[str | None, int]:
    """The newest audit event's hash and the number of events (the chain's head)."""
    last = session.exec(select(AuditEvent).order_by(col(AuditEvent.id).desc()).limit(1)).first()
    return (last.hash, int(last.id or 0)) if last else (None, 0)


def build(session: Session, *, article_id: int, generated_by: str,
          now: datetime | None = None) -> ArticleReport:
    """Read one article's substantiation report.

    Parameters
    ----------
    session
        Read session.
    article_id
        The article (any revision).
    generated_by
        Who asks for it (``cli:<user>`` or the app's signed-in username), printed on it.
    now
        The generation time (default: now).

    Returns
    -------
    ArticleReport
        Claims in reading order, each with its final verdict (or status), certainty,
        reasons, GRADE domains rated down, flags, reviews and its studies with full
        citations; the article's citations and whether each addresses a claim; the
        audit chain's head.

    Raises
    ------
    NotFound
        No such article.
    """
    article = session.get(Article, article_id)
    if article is None:
        raise NotFound(f"article {article_id} does not exist")
    register = queries.claims_register(session, article_id=article_id)
    claims = {c.id: c for c in session.exec(
        select(Claim).where(col(Claim.article_id) == article_id)).all()}
    rows: list[dict[str, Any]] = [{str(k): v for k, v in row.items()}
                                  for row in register.to_dict("records")]
    sections = [_section(session, n, row, claims[int(row["claim_id"])])
                for n, row in enumerate(rows, start=1)]
    counts = Counter(s.verdict if s.certainty else NO_VERDICT for s in sections)
    summary = [(v, counts[v]) for v in (*map(label, SUBSTANTIATION), NO_VERDICT) if counts[v]]
    head, events = audit_head(session)
    return ArticleReport(
        article_id=article_id, title=article.title, source=article.source,
        revision=article.revision, sha256=article.sha256, is_current=article.is_current,
        fetched_at=_when(article.fetched_at) or "", generated_at=_when(now or utcnow()) or "",
        generated_by=generated_by, audit_head=head, audit_events=events, summary=summary,
        claims=sections, citations=_citations(session, article_id, sections),
    )


def _opt(value: Any) -> Any:
    """A DataFrame cell, with pandas' missing values (None, NaN, NaT) as ``None``."""
    return None if value is None or bool(pd.isna(value)) else value


def _section(session: Session, number: int, row: dict[str, Any],
             claim: Claim) -> ClaimSection:
    row = {k: v if isinstance(v, list) else _opt(v) for k, v in row.items()}
    final = row["substantiation"] is not None
    verdict = session.exec(
        select(Verdict).where(col(Verdict.claim_id) == claim.id, col(Verdict.kind) == "final")
    ).first()
    reviews = [
        f"{name}: {label(v.substantiation)}, certainty {label(v.certainty)} "
        f"({_when(v.updated_at)})"
        for v, name in session.exec(
            select(Verdict, AppUser.username)
            .join(AppUser, col(Verdict.reviewer_id) == col(AppUser.id))
            .where(col(Verdict.claim_id) == claim.id, col(Verdict.kind) == "review",
                   col(Verdict.submitted))
            .order_by(col(Verdict.id))
        ).all()
    ]
    if verdict is not None:
        suggested, reasons = verdict.suggested_certainty, list(verdict.suggestion_reasons)
        domains = [f"{label(d)}: {label(r)}" for d, r in (verdict.domains or {}).items()
                   if r != "not_serious"]
    else:
        suggested, reasons = claim.suggested_certainty, list(claim.suggestion_reasons or [])
        domains = []
    return ClaimSection(
        number=number, claim_id=claim.id or 0, text=claim.text, category=label(claim.category),
        status=label(claim.status),
        verdict=label(row["substantiation"]) if final else f"{NO_VERDICT} ({label(claim.status)})",
        certainty=label(row["certainty"]) if final else None,
        action=label(row["action"]) if final else None, rationale=row["rationale"] or "",
        adjudicator=row["adjudicator"], decided_at=_when(row["decided_at"]) if final else None,
        review_by=_when(row["review_by"]) if final else None,
        reopened=[str(r.get("text", "")) for r in claim.reopen_reasons or []]
        if claim.status == "reopened" else [],
        suggested_certainty=label(suggested) if suggested else None, reasons=reasons,
        domains=domains, flags=[CLAIM_FLAGS.get(f, label(f)) for f in claim.flags or []],
        reviews=reviews, studies=_studies(session, claim),
        sources=[{k: str(v) for k, v in s.items()} for s in row["sources"]],
    )


def _studies(session: Session, claim: Claim) -> list[StudyEntry]:
    readings: dict[int, list[str]] = {}
    for a, name in session.exec(
        select(Assessment, AppUser.username)
        .join(AppUser, col(Assessment.reviewer_id) == col(AppUser.id))
        .join(EvidenceLink, col(Assessment.link_id) == col(EvidenceLink.id))
        .where(col(EvidenceLink.claim_id) == claim.id).order_by(col(Assessment.id))
    ).all():
        text = f"{name}: {label(a.stance)}, relevance {a.relevance}"
        readings.setdefault(a.link_id, []).append(text + (f" ({a.note})" if a.note else ""))
    # The evidence is what fits the claim, what a reviewer linked, and what anyone assessed.
    shown = [(link, s) for link, s in session.exec(
        select(EvidenceLink, Study).join(Study, col(EvidenceLink.study_id) == col(Study.id))
        .where(col(EvidenceLink.claim_id) == claim.id)
        .order_by(col(EvidenceLink.rank).is_(None), col(EvidenceLink.rank),
                  col(EvidenceLink.id))
    ).all() if link.fits or link.origin == "manual" or link.id in readings]
    raw_ids = [s.raw_record_id for _, s in shown if s.raw_record_id is not None]
    raw_sha = dict(session.exec(select(RawRecord.id, RawRecord.sha256)
                                .where(col(RawRecord.id).in_(raw_ids))).all()) if raw_ids else {}
    out = []
    for link, s in shown:
        assert link.id is not None
        flags = [str(f.get("code")) for f in s.flags or []]
        if s.is_retracted and "retracted" not in flags:
            flags.insert(0, "retracted")
        sha = raw_sha.get(s.raw_record_id)
        out.append(StudyEntry(
            pmid=s.pmid, citation=citation_text(s), title=s.title or "(no title)",
            journal=s.journal or "", year=str(s.pub_year or ""), doi=s.doi,
            design=label(s.design or "unknown"), evidence_level=s.evidence_level or "?",
            origin=link.origin, fits=link.fits, pubmed_url=pubmed_url(s.pmid),
            doi_url=doi_url(s.doi), raw_sha256=sha if isinstance(sha, str) else None,
            warnings=[STUDY_FLAGS.get(f, label(f)) for f in flags],
            readings=readings.get(link.id, []),
        ))
    return out


def _citations(session: Session, article_id: int,
               sections: list[ClaimSection]) -> list[CitationEntry]:
    number = {s.claim_id: s.number for s in sections}
    fitting: dict[str, set[int]] = {}
    for cid, pmid in session.exec(
        select(EvidenceLink.claim_id, Study.pmid)
        .join(Study, col(EvidenceLink.study_id) == col(Study.id))
        .join(Claim, col(EvidenceLink.claim_id) == col(Claim.id))
        .where(col(Claim.article_id) == article_id, col(EvidenceLink.fits).is_(True))
    ).all():
        fitting.setdefault(pmid, set()).add(number.get(int(cid), 0))
    out = []
    for c in session.exec(select(Citation).where(col(Citation.article_id) == article_id)
                          .order_by(col(Citation.start), col(Citation.id))).all():
        if "addresses_no_claim" in (c.flags or []):
            addresses = CITATION_FLAGS["addresses_no_claim"]
        elif c.kind == "web":
            addresses = "not a scholarly source: cannot substantiate a claim"
        elif c.pmid and fitting.get(c.pmid):
            addresses = "addresses claim " + ", ".join(
                f"#{n}" for n in sorted(fitting[c.pmid]))
        elif c.pmid:
            addresses = "fits no claim of the article"
        else:
            addresses = f"not checked: {label(c.status)}" + (
                f" ({c.status_reason})" if c.status_reason else "")
        out.append(CitationEntry(raw=c.raw, kind=c.kind, identifier=c.identifier,
                                 status=label(c.status), pmid=c.pmid, addresses=addresses))
    return out


# --------------------------------------------------------------------------- HTML


def render_html(report: ArticleReport) -> str:
    """The report as a standalone HTML page (every value escaped by the template engine)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    # autoescape=True for every template, whatever its file name: nothing read from an
    # article, a record or a reviewer is ever marked safe.
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html.j2").render(r=report)


# --------------------------------------------------------------------------- PDF


def unicode_font() -> Path | None:
    """An installed Unicode TrueType font for the PDF, or ``None`` (core fonts are used)."""
    return next((p for p in UNICODE_FONTS if p.is_file()), None)


def _latin1(text: str) -> tuple[str, bool]:
    """Text the PDF core fonts can show: compatibility forms folded, accents kept where
    Latin-1 has them, anything else written as ``[U+XXXX]`` (and whether any was)."""
    out = []
    marked = False
    for ch in text:
        if ord(ch) < 256:
            out.append(ch)
            continue
        folded = _FOLD.get(ch) or unicodedata.normalize("NFKD", ch)
        folded = "".join(c for c in folded if not unicodedata.combining(c))
        if folded and all(ord(c) < 256 for c in folded):
            out.append(folded)
        else:
            out.append(f"[U+{ord(ch):04X}]")
            marked = True
    return "".join(out), marked


_FOLD = {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-",
         "\u2014": "--", "\u2026": "...", "\u2022": "*", "\u2212": "-", "\u2264": "<=",
         "\u2265": ">=", "\u2192": "->", "\u00a0": " ", "\u2009": " ", "\u202f": " "}


def render_pdf(report: ArticleReport, *, font: Path | None | bool = True) -> bytes:
    """The report as a PDF (fpdf2).

    Parameters
    ----------
    report
        What to lay out.
    font
        ``True``: embed an installed Unicode font (``unicode_font``) when there is one;
        a path: embed that TrueType font; ``None`` or ``False``: the PDF core fonts, which
        show Latin-1 only: other characters are folded (curly quotes, dashes) or written
        as ``[U+XXXX]``, and the report says so.

    Returns
    -------
    bytes
        The PDF file.
    """
    path = unicode_font() if font is True else (font or None)
    return _Pdf(report, font=path if isinstance(path, Path) else None).render()


class _Pdf:
    """Lays an ``ArticleReport`` out on A4 pages with a footer on each."""

    def __init__(self, report: ArticleReport, *, font: Path | None) -> None:
        from fpdf import FPDF

        self.r = report
        self.unicode = font is not None
        self.substituted = False
        footer = self._footer_lines()
        owner = self

        class Doc(FPDF):
            def footer(self) -> None:
                self.set_y(-16)
                owner._font(7)
                self.set_text_color(90, 90, 90)
                for line in footer:
                    self.cell(0, 3.5, owner.t(line), new_x="LMARGIN", new_y="NEXT")
                self.cell(0, 3.5, f"page {self.page_no()}/{{nb}}", align="R")

        self.pdf = Doc(format="A4")
        self.pdf.set_auto_page_break(auto=True, margin=22)
        self.glyphs: set[int] = set()
        if font is not None:
            self.pdf.add_font("body", "", str(font))
            bold = font.with_name(font.stem + "-Bold" + font.suffix)
            self.pdf.add_font("body", "B", str(bold if bold.is_file() else font))
            self.pdf.set_font("body", "", 10)
            self.glyphs = set(getattr(self.pdf.current_font, "cmap", None) or ())
        self.pdf.set_title(self.t(f"Substantiation report: {report.title or report.source}"))
        self.pdf.set_creator("Substantiate")
        self.pdf.set_creation_date(datetime.fromisoformat(report.generated_at))

    def _footer_lines(self) -> list[str]:
        r = self.r
        return [f"Audit chain head: {r.audit_head or '(no events)'} "
                f"({r.audit_events} events)",
                f"Generated {r.generated_at} by {r.generated_by}. "
                f"Article {r.article_id}, sha256 {r.sha256}."]

    def t(self, text: object) -> str:
        """Text as the current font can show it."""
        s = str(text)
        if self.unicode:
            # What the embedded font has no glyph for is marked, not silently dropped.
            shown = "".join(ch if ord(ch) in self.glyphs or ch == "\n" else f"[U+{ord(ch):04X}]"
                            for ch in s)
            self.substituted = self.substituted or shown != s
            return shown
        folded, marked = _latin1(s)
        self.substituted = self.substituted or marked
        return folded

    def _font(self, size: float, style: str = "") -> None:
        self.pdf.set_font("body" if self.unicode else "helvetica", style, size)

    def para(self, text: str, *, size: float = 10, style: str = "", h: float = 5,
             indent: float = 0, link: str = "") -> None:
        self._font(size, style)
        self.pdf.set_x(self.pdf.l_margin + indent)
        self.pdf.multi_cell(0, h, self.t(text), new_x="LMARGIN", new_y="NEXT", link=link,
                            align="L")

    def field(self, name: str, value: str, *, indent: float = 0) -> None:
        self.para(f"{name}: {value}", indent=indent, size=9, h=4.5)

    def render(self) -> bytes:
        r, pdf = self.r, self.pdf
        pdf.add_page()
        self.para("Substantiation report", size=18, style="B", h=9)
        self.para(r.title or "(untitled article)", size=13, style="B", h=6.5)
        pdf.ln(1)
        self.field("Source", r.source)
        self.field("Revision", f"{r.revision}" + ("" if r.is_current
                                                  else " (not the current revision)"))
        self.field("Article sha256", r.sha256)
        self.field("Fetched", r.fetched_at)
        self.field("Generated", f"{r.generated_at} by {r.generated_by}")
        self.field("Audit chain head", f"{r.audit_head or '(no events)'} "
                   f"({r.audit_events} events)")
        pdf.ln(2)
        self.para("Summary", size=13, style="B", h=7)
        self.para(f"{len(r.claims)} claims: " + "; ".join(
            f"{name}: {n}" for name, n in r.summary) if r.claims else "No claims.")
        for c in r.claims:
            self._claim(c)
        self._citation_list()
        if self.substituted:
            pdf.ln(2)
            self.para("Characters this PDF's font cannot show are written as [U+XXXX] (their "
                      "Unicode code point); the HTML report shows them as written.",
                      size=8, style="", h=4)
        out = pdf.output()
        return bytes(out)

    def _claim(self, c: ClaimSection) -> None:
        pdf = self.pdf
        pdf.ln(3)
        self.para(f"Claim {c.number} (#{c.claim_id}, {c.category})", size=12, style="B", h=6)
        self.para(f"\u201c{c.text}\u201d" if self.unicode else f'"{c.text}"', size=10)
        head = f"Verdict: {c.verdict}"
        if c.certainty:
            head += f"; certainty {c.certainty}; action {c.action}"
        self.para(head, size=10, style="B")
        if c.adjudicator:
            self.field("Decided by", f"{c.adjudicator} on {c.decided_at}")
        if c.review_by:
            self.field("Review by", c.review_by)
        for reason in c.reopened:
            self.field("Re-opened", reason, indent=4)
        if c.rationale:
            self.field("Rationale", c.rationale)
        if c.suggested_certainty:
            self.field("Suggested certainty", c.suggested_certainty)
        for reason in c.reasons:
            self.field("Reason", reason, indent=4)
        if c.domains:
            self.field("Rated down", "; ".join(c.domains))
        for flag in c.flags:
            self.field("Flag", flag)
        self.field("Reviews", "; ".join(c.reviews) if c.reviews else "none")
        n = len(c.studies)
        self.field("Evidence", f"{n} {'study' if n == 1 else 'studies'}" if n
                   else "no fitting, linked or assessed study")
        for i, s in enumerate(c.studies, start=1):
            self.para(f"[{i}] {s.citation}", size=9, h=4.5, indent=4)
            ids = f"PMID {s.pmid}" + (f" | DOI {s.doi}" if s.doi else "")
            self.para(ids, size=9, h=4.5, indent=8, link=s.pubmed_url or "")
            if s.pubmed_url:
                self.para(s.pubmed_url, size=8, h=4, indent=8, link=s.pubmed_url)
            if s.doi_url:
                self.para(s.doi_url, size=8, h=4, indent=8, link=s.doi_url)
            self.para(f"{s.design}, evidence level {s.evidence_level}; {s.origin}"
                      + ("" if s.fits else "; does not fit the claim"), size=8, h=4, indent=8)
            for w in s.warnings:
                self.para(f"WARNING: {w}", size=8, style="B", h=4, indent=8)
            for reading in s.readings:
                self.para(reading, size=8, h=4, indent=8)
        for src in c.sources:
            self.field("Non-PubMed source", f"{label(src['kind'])}: {src['title']} "
                       f"{src['url']}", indent=4)

    def _citation_list(self) -> None:
        self.pdf.ln(3)
        self.para("The article's citations", size=13, style="B", h=7)
        if not self.r.citations:
            self.para("The article cites nothing.")
        for cit in self.r.citations:
            ident = f"{cit.kind} {cit.identifier}" + (f" (PMID {cit.pmid})" if cit.pmid else "")
            self.para(f"{ident}: {cit.addresses}", size=9, h=4.5)


# --------------------------------------------------------------------------- shells' entry


def format_for(path: Path, fmt: str | None = None) -> str:
    """The report format ``fmt`` names, else the one ``path``'s suffix names.

    Raises
    ------
    InputError
        Neither names one of ``FORMATS``.
    """
    chosen = (fmt or path.suffix.lstrip(".")).lower()
    if chosen not in FORMATS:
        raise InputError(f"cannot tell the report format from {path.name!r}; "
                         f"use a .html or .pdf file name")
    return chosen


def hidden_reviews(session: Session, *, article_id: int, viewer: AppUser | None) -> list[int]:
    """The article's claims with someone else's review that ``viewer`` may not see yet.

    Under dual independent review a reviewer sees others' verdicts on a claim only after
    submitting their own (``queries.others_visible``); the report shows every review, so
    it is for viewers with none of these claims.
    """
    others = select(Verdict.id).where(col(Verdict.claim_id) == col(Claim.id),
                                      col(Verdict.kind) == "review", col(Verdict.submitted),
                                      col(Verdict.reviewer_id) != (viewer.id if viewer else -1))
    ids = session.exec(select(Claim.id).where(col(Claim.article_id) == article_id,
                                              others.exists())
                       .order_by(col(Claim.start))).all()
    return [int(cid) for cid in ids if cid is not None
            and not queries.others_visible(session, int(cid), viewer)]


def generate(engine: Engine, *, article_id: int, fmt: str, actor: str,
             viewer: AppUser | None = None) -> bytes:
    """Build, render and audit one article's report.

    The read happens in a read session; the ``report.generate`` audit event (format,
    size, the file's sha256, the audit head it shows) in a short transaction of its own.

    Parameters
    ----------
    engine
        The database.
    article_id
        The article.
    fmt
        ``html`` or ``pdf``.
    actor
        Who generates it (``cli:<user>`` or the app's username).
    viewer
        The app's signed-in user, whose review blinding the report must respect
        (``hidden_reviews``); ``None`` for the command line, which reads the database
        directly anyway.

    Returns
    -------
    bytes
        The file (HTML as UTF-8).

    Raises
    ------
    InputError
        Unknown format.
    NotFound
        No such article.
    PermissionDenied
        ``viewer`` may not yet see another reviewer's review of one of the claims.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown report format {fmt!r}; formats: {', '.join(FORMATS)}")
    with db.read_session(engine) as session:
        if viewer is not None:
            hidden = hidden_reviews(session, article_id=article_id, viewer=viewer)
            if hidden:
                raise PermissionDenied(
                    "the report shows every review, and under independent review you "
                    "cannot see others' reviews of claim(s) "
                    + ", ".join(f"#{c}" for c in hidden) + " until you submit your own")
        report = build(session, article_id=article_id, generated_by=actor)
    data = render_html(report).encode() if fmt == "html" else render_pdf(report)
    with db.session_scope(engine) as session:
        audit.record(session, actor=actor, action="report.generate", entity="article",
                     entity_id=article_id,
                     after={"format": fmt, "bytes": len(data),
                            "sha256": hashlib.sha256(data).hexdigest(),
                            "claims": len(report.claims), "audit_head": report.audit_head,
                            "generated_at": report.generated_at})
    return data
