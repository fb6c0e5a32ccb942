"""Linking claims to the studies that bear on them, and judging the articles' citations.

For every claim of every current article revision:

* ``cited`` — each study its article cites, scored against the claim;
* ``local`` — the best studies in the whole database (BM25 over title + abstract + MeSH);
* ``pubmed`` — with discovery on, a PubMed query per canonical claim, its top results
  fetched, stored and ranked.

One link per (claim, study): the first origin in ``cited > manual > pubmed > local`` is the
link's origin and the others are listed in ``also_found_by``. Re-running is idempotent;
manual links and links a reviewer has assessed are never removed.

Citation fit: a cited study *fits* a claim when the claim's key terms meet the study and
the study is not about a different condition. Claims with no fitting citation in their own
article, and cited studies that fit no claim of their article, are flagged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from evidence import audit
from evidence.db import session_scope
from evidence.grading import (
    LinkEvidence,
    assess_indirectness,
    named_concepts,
    suggest_certainty,
)
from evidence.match import Document, Ranker, build_pubmed_query, explain, tokenize
from evidence.models import (
    Article,
    Assessment,
    CanonicalClaim,
    Citation,
    Claim,
    EvidenceLink,
    Study,
    utcnow,
)

ORIGIN_ORDER = ("cited", "manual", "pubmed", "local")
LOCAL_K = 5          # local candidates kept per claim
MIN_MATCHED_TERMS = 2  # distinct matching words for a study to "address" a claim
DISCOVER_K = 5       # PubMed results fetched per canonical claim

CLAIM_FLAGS = {
    "no_fitting_citation": "none of the studies its article cites addresses this claim",
    "cited_not_addressing": "its article cites a study that addresses none of its claims",
    "retracted_evidence": "a linked study is retracted",
    "indirect_evidence": "the best linked evidence is about a different condition, drug or "
                         "route",
    "no_evidence": "no study in the database bears on this claim",
}


@dataclass
class ArticleFit:
    """Per article: claims with fitting cited evidence, only discovered evidence, none."""

    article_id: int
    source: str
    claims: int = 0
    with_fitting_citation: int = 0
    only_discovered: int = 0
    no_evidence: int = 0
    cited_studies: int = 0
    cited_not_addressing: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return dict(self.__dict__)


@dataclass
class LinkSummary:
    """What a link run did."""

    links_created: int = 0
    links_updated: int = 0
    links_removed: int = 0
    discovered_pmids: int = 0
    problems: list[str] = field(default_factory=list)
    articles: list[ArticleFit] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"links_created": self.links_created, "links_updated": self.links_updated,
                "links_removed": self.links_removed,
                "discovered_pmids": self.discovered_pmids, "problems": self.problems,
                "articles": [a.as_dict() for a in self.articles]}


def _mesh_names(study: Study) -> list[str]:
    return [str(m.get("descriptor", "")) for m in study.mesh or []]


def study_document(study: Study) -> Document:
    """The ranker's view of a study."""
    return Document(doc_id=str(study.id), title=study.title, abstract=study.abstract,
                    mesh=tuple(_mesh_names(study)))


# Words every health text shares: matching on them alone says nothing about fit.
GENERIC_WORDS = (
    "treatment treatments treat therapy therapies patient patients effective effectiveness "
    "effect effects report reports reported case cases study studies symptom symptoms "
    "clinical result results people use used help improve improvement outcome outcomes "
    "option options medical medication medications care health condition conditions "
    "disorder disorders evidence new provide provides"
)
_GENERIC = frozenset(tokenize(GENERIC_WORDS))


def claim_context(article_text: str) -> dict[str, tuple[str, ...]]:
    """What an article is about (conditions, drugs), to read its claims in context."""
    return named_concepts(article_text)


def contextual_claim(claim_text: str, context: dict[str, tuple[str, ...]] | None) -> str:
    """The claim, plus its article's drugs when the claim names none.

    "It relieves symptoms within hours" in a ketamine article is a claim about ketamine;
    judging intervention and route needs that. Conditions are not added here: a claim that
    names no condition is not judged indirect on condition (see ``addresses``).
    """
    if not context or named_concepts(claim_text)["drug"] or not context.get("drug"):
        return claim_text
    return f"{claim_text} ({'; '.join(context['drug'])})"


def _covers(condition: str, study: Study) -> bool:
    ind = assess_indirectness(condition, study_title=study.title,
                              study_mesh=_mesh_names(study), study_abstract=study.abstract)
    return not any(m.dimension == "condition" for m in ind.mismatches)


def addresses(
    claim_text: str, study: Study, *, context: dict[str, tuple[str, ...]] | None = None,
) -> tuple[bool, dict[str, Any], dict[str, Any]]:
    """Whether a study addresses a claim, with the explanation and indirectness behind it.

    Parameters
    ----------
    claim_text
        The claim.
    study
        The study.
    context
        The claim's article's conditions and drugs (``claim_context``), used when the
        claim itself names none.

    Returns
    -------
    (fits, explanation, indirectness)
        ``fits`` is true when at least ``MIN_MATCHED_TERMS`` distinct, specific claim words
        (not generic ones like "treatment") occur in the study's title/abstract, and the
        study is about at least one condition the claim names — or, for a claim naming no
        condition, one its article is about. An eating-disorder review cited under an
        article about depression fits none of its claims.
    """
    exp = explain(claim_text, study.title, study.abstract)
    ind = assess_indirectness(contextual_claim(claim_text, context), study_title=study.title,
                              study_mesh=_mesh_names(study), study_abstract=study.abstract)
    specific = {stem for t in exp.terms for stem in tokenize(t)} - _GENERIC
    conditions = named_concepts(claim_text)["condition"] or (context or {}).get("condition", ())
    on_topic = not conditions or any(_covers(c, study) for c in conditions)
    fits = len(specific) >= MIN_MATCHED_TERMS and on_topic
    explanation = {"sentences": [list(s) for s in exp.sentences], "terms": exp.terms,
                   "specific_terms": sorted(specific), "on_topic": on_topic}
    indirectness = {
        "indirect": ind.indirect,
        "mismatches": [{"dimension": m.dimension, "claim_terms": list(m.claim_terms),
                        "study_terms": list(m.study_terms)} for m in ind.mismatches],
        "reasons": list(ind.reasons),
    }
    return fits, explanation, indirectness


def _candidate_origin(origins: set[str]) -> tuple[str, list[str]]:
    ordered = [o for o in ORIGIN_ORDER if o in origins]
    return ordered[0], ordered[1:]


def link_all(
    engine: Engine,
    *,
    discover: Callable[[str, str], list[str]] | None = None,
    actor: str = "system",
    local_k: int = LOCAL_K,
    on_claim: Callable[[int], None] | None = None,
) -> LinkSummary:
    """Link every current claim to evidence; flag citation fit; suggest certainty.

    Parameters
    ----------
    engine
        Database engine.
    discover
        Optional PubMed discovery: called with (query, canonical statement) and returning
        PMIDs that it has fetched and stored. ``substantiate link --discover`` passes one
        backed by the E-utilities client.
    actor
        Recorded on audit events.
    local_k
        Local candidates kept per claim.
    on_claim
        Progress callback, called with 1 per claim linked.

    Returns
    -------
    LinkSummary
    """
    summary = LinkSummary()
    discovered: dict[int, set[int]] = {}  # canonical id -> study ids from PubMed
    if discover is not None:
        with Session(engine) as session:
            canon = list(session.exec(select(CanonicalClaim)).all())
        for cc in canon:
            query = build_pubmed_query(cc.statement, category=cc.category)
            try:
                pmids = discover(query, cc.statement)
            except Exception as e:  # noqa: BLE001  (reported, the run goes on locally)
                summary.problems.append(f"discovery for canonical claim {cc.id}: {e}")
                continue
            if pmids:
                with Session(engine) as session:
                    ids = session.exec(select(Study.id).where(col(Study.pmid).in_(pmids))).all()
                assert cc.id is not None
                discovered[cc.id] = {i for i in ids if i is not None}
                summary.discovered_pmids += len(pmids)

    with Session(engine) as session:
        studies = {s.id: s for s in session.exec(
            select(Study).where(col(Study.deleted).is_(False))).all()}
        articles = list(session.exec(select(Article).where(col(Article.is_current))
                                     .order_by(col(Article.id))).all())
        cited_by_article: dict[int, set[int]] = {}
        pmid_to_id = {s.pmid: sid for sid, s in studies.items() if sid is not None}
        for c in session.exec(select(Citation).where(Citation.status == "resolved")).all():
            if c.pmid and c.pmid in pmid_to_id:
                cited_by_article.setdefault(c.article_id, set()).add(pmid_to_id[c.pmid])
    ranker = Ranker([study_document(s) for s in studies.values()]) if studies else None

    for article in articles:
        assert article.id is not None
        fit = _link_article(engine, article, studies, ranker,
                            cited_by_article.get(article.id, set()), discovered, summary,
                            actor=actor, local_k=local_k, on_claim=on_claim)
        summary.articles.append(fit)
    return summary


def _link_article(
    engine: Engine,
    article: Article,
    studies: dict[int | None, Study],
    ranker: Ranker | None,
    cited: set[int],
    discovered: dict[int, set[int]],
    summary: LinkSummary,
    *,
    actor: str,
    local_k: int,
    on_claim: Callable[[int], None] | None,
) -> ArticleFit:
    assert article.id is not None
    fit = ArticleFit(article_id=article.id, source=article.source, cited_studies=len(cited))
    context = claim_context(article.text)
    with session_scope(engine) as session:
        claims = list(session.exec(select(Claim).where(Claim.article_id == article.id)
                                   .order_by(col(Claim.start))).all())
        fit.claims = len(claims)
        cited_fits: dict[int, bool] = {sid: False for sid in cited}
        per_claim_links: dict[int, list[EvidenceLink]] = {}
        for claim in claims:
            assert claim.id is not None
            candidates: dict[int, dict[str, Any]] = {}
            scores: dict[int, float] = {}
            if ranker is not None:
                for doc_id, score in ranker.search(claim.text, k=max(local_k, 50)):
                    scores[int(doc_id)] = score
                for sid, _ in sorted(scores.items(), key=lambda kv: -kv[1])[:local_k]:
                    candidates.setdefault(sid, {"origins": set()})["origins"].add("local")
            for sid in cited:
                candidates.setdefault(sid, {"origins": set()})["origins"].add("cited")
            if claim.canonical_id is not None:
                for sid in discovered.get(claim.canonical_id, set()):
                    candidates.setdefault(sid, {"origins": set()})["origins"].add("pubmed")
            per_claim_links[claim.id] = _sync_links(
                session, claim, candidates, scores, studies, cited_fits, summary, actor=actor,
                context=context)
            if on_claim:
                on_claim(1)
        not_addressing = [studies[sid].pmid for sid, ok in cited_fits.items() if not ok]
        fit.cited_not_addressing = sorted(not_addressing)
        _flag_citations(session, article.id, set(not_addressing), actor=actor)
        for claim in claims:
            assert claim.id is not None
            links = per_claim_links[claim.id]
            flags = _claim_flags(links, studies, article_misfit=bool(not_addressing))
            suggestion = suggest_certainty([
                LinkEvidence(design=studies[ln.study_id].design or "unknown",
                             rank=studies[ln.study_id].design_rank or 0,
                             relevant=_relevant(ln), stance=None, indirect=ln.indirect,
                             retracted=studies[ln.study_id].is_retracted,
                             label=f"PMID {studies[ln.study_id].pmid}")
                for ln in links
            ])
            _set_claim_derived(session, claim, flags=flags, suggestion=suggestion.level,
                               reasons=list(suggestion.reasons), actor=actor)
            has_fitting_cited = any(ln.origin == "cited" and ln.fits for ln in links)
            has_other = any(_relevant(ln) for ln in links)
            if has_fitting_cited:
                fit.with_fitting_citation += 1
            elif has_other:
                fit.only_discovered += 1
            else:
                fit.no_evidence += 1
    return fit


def _relevant(link: EvidenceLink) -> bool:
    return bool(link.fits)


def _sync_links(
    session: Session,
    claim: Claim,
    candidates: dict[int, dict[str, Any]],
    scores: dict[int, float],
    studies: dict[int | None, Study],
    cited_fits: dict[int, bool],
    summary: LinkSummary,
    *,
    actor: str,
    context: dict[str, tuple[str, ...]],
) -> list[EvidenceLink]:
    existing = {ln.study_id: ln for ln in session.exec(
        select(EvidenceLink).where(EvidenceLink.claim_id == claim.id)).all()}
    assessed = set(session.exec(
        select(EvidenceLink.id).join(Assessment, col(Assessment.link_id) == col(EvidenceLink.id))
        .where(EvidenceLink.claim_id == claim.id)).all())
    before = {str(sid): [ln.origin, round(ln.score, 4)] for sid, ln in existing.items()}
    ranked = sorted(candidates, key=lambda sid: (-scores.get(sid, 0.0), sid))
    kept: list[EvidenceLink] = []
    for rank, sid in enumerate(ranked, start=1):
        study = studies[sid]
        fits, explanation, indirectness = addresses(claim.text, study, context=context)
        origins = set(candidates[sid]["origins"])
        link = existing.pop(sid, None)
        if link is not None and link.origin == "manual":
            origins.add("manual")
        if "cited" in origins and fits:
            cited_fits[sid] = True
        origin, also = _candidate_origin(origins)
        values: dict[str, Any] = {"origin": origin, "also_found_by": also,
                  "score": round(scores.get(sid, 0.0), 6), "rank": rank,
                  "explanation": explanation, "indirect": bool(indirectness["indirect"]),
                  "indirectness": indirectness, "fits": fits}
        if link is None:
            link = EvidenceLink(claim_id=claim.id, study_id=sid, created_by=actor,  # type: ignore[arg-type]
                                **values)
            session.add(link)
            summary.links_created += 1
        else:
            changed = any(getattr(link, k) != v for k, v in values.items())
            if changed:
                for k, v in values.items():
                    setattr(link, k, v)
                link.updated_at = utcnow()
                summary.links_updated += 1
            session.add(link)
        kept.append(link)
    for link in existing.values():
        if link.origin == "manual" or link.id in assessed:
            kept.append(link)  # a reviewer's link or reading is never removed
            continue
        session.delete(link)
        summary.links_removed += 1
    session.flush()
    after = {str(ln.study_id): [ln.origin, round(ln.score, 4)] for ln in kept}
    if after != before:
        audit.record(session, actor=actor, action="links.update", entity="claim",
                     entity_id=claim.id, before={"links": before}, after={"links": after})
    return kept


def _flag_citations(session: Session, article_id: int, misfit_pmids: set[str], *,
                    actor: str) -> None:
    for cit in session.exec(select(Citation).where(Citation.article_id == article_id,
                                                   Citation.status == "resolved")).all():
        reason = ("cited but does not address any claim of its article"
                  if cit.pmid in misfit_pmids else None)
        if cit.status_reason != reason:
            before = audit.snapshot(cit)
            session.execute(update(Citation).where(col(Citation.id) == cit.id)
                            .values(status_reason=reason, updated_at=utcnow()))
            session.refresh(cit)
            audit.record(session, actor=actor, action="citation.fit", entity="citation",
                         entity_id=cit.id, before=before, after=audit.snapshot(cit))


def _claim_flags(links: Sequence[EvidenceLink], studies: dict[int | None, Study], *,
                 article_misfit: bool) -> list[str]:
    flags: list[str] = []
    if not any(ln.origin == "cited" and ln.fits for ln in links):
        flags.append("no_fitting_citation")
    if article_misfit:
        flags.append("cited_not_addressing")
    if any(studies[ln.study_id].is_retracted for ln in links):
        flags.append("retracted_evidence")
    relevant = [ln for ln in links if ln.fits]
    best = sorted(relevant, key=lambda ln: -ln.score)[:3]
    if best and all(ln.indirect for ln in best):
        flags.append("indirect_evidence")
    if not relevant:
        flags.append("no_evidence")
    return flags


def _set_claim_derived(session: Session, claim: Claim, *, flags: list[str], suggestion: str,
                       reasons: list[str], actor: str) -> None:
    # Derived fields do not bump the claim's version: a relink must not make a reviewer's
    # open edit of the claim stale. The change is still audited.
    if (claim.flags == flags and claim.suggested_certainty == suggestion
            and claim.suggestion_reasons == reasons):
        return
    before = {"flags": claim.flags, "suggested_certainty": claim.suggested_certainty,
              "suggestion_reasons": claim.suggestion_reasons}
    session.execute(update(Claim).where(col(Claim.id) == claim.id).values(
        flags=flags, suggested_certainty=suggestion, suggestion_reasons=reasons,
        updated_at=utcnow()))
    audit.record(session, actor=actor, action="claim.derive", entity="claim",
                 entity_id=claim.id, before=before,
                 after={"flags": flags, "suggested_certainty": suggestion,
                        "suggestion_reasons": reasons})
