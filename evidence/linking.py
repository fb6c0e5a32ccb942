"""Linking claims to the studies that bear on them, and judging the articles' citations.

For every claim of every current article revision:

* ``cited`` — each study its article cites, scored against the claim;
* ``local`` — the best studies in the whole database (BM25 over title + abstract + MeSH;
  with ``semantic``, BM25's candidates re-scored with sentence embeddings, see
  ``evidence.semantic``, before the best ``LOCAL_K`` are kept);
* ``pubmed`` — with discovery on, a PubMed query per canonical claim, its top results
  fetched, stored and ranked.

One link per (claim, study): the first origin in ``cited > manual > pubmed > local`` is the
link's origin and the others are listed in ``also_found_by``. Re-running is idempotent;
manual links and links a reviewer has assessed are never removed.

Fit: a study *fits* a claim when it shares the claim's condition and intervention (a claim
naming neither is read with its article's; see ``grading.assess_indirectness``); only when
there is nothing of either kind to compare must ``MIN_MATCHED_TERMS`` specific claim words
meet its title or abstract instead. Regulatory statements (approvals, scheduling, label
warnings) are fitted by no clinical study: they are flagged ``needs_regulatory_source``;
history, prevalence and cost statements are fitted by none either. Links that do not fit
are kept, ranked below the fitting ones, and shown only as weaker matches: they count
towards no flag, no summary figure and no certainty. A claim's flags are about that claim;
a cited study that fits no claim of its article is flagged on the citation
(``addresses_no_claim``) and counted on the article, not on each claim.

Certainty: each claim's suggested GRADE certainty is computed from its fitting links by
``claim_certainty`` — from the records alone until a reviewer assesses a link, then from
the assessed links with their stances and relevance (``review.save_assessment`` refreshes
it).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from evidence import audit, embeddings, ranking_index, vocabulary
from evidence.db import read_session, session_scope
from evidence.grading import (
    CertaintySuggestion,
    ClaimContext,
    LinkEvidence,
    article_context,
    assess_indirectness,
    flag_codes,
    non_clinical_statement,
    regulatory_statement,
    suggest_certainty,
)
from evidence.match import Document, Ranker, build_pubmed_query, explain, tokenize
from evidence.models import (
    Article,
    Assessment,
    CanonicalClaim,
    Citation,
    Claim,
    ClaimSource,
    EvidenceLink,
    Study,
    utcnow,
)

ORIGIN_ORDER = ("cited", "manual", "surveillance", "pubmed", "local")
# Origins a reviewer or surveillance chose: a re-link keeps the link and its origin.
KEPT_ORIGINS = ("manual", "surveillance")
LOCAL_K = 5          # local candidates kept per claim
CANDIDATES_K = 50    # BM25 results per claim from which the local ones are chosen
MIN_MATCHED_TERMS = 2  # distinct matching words for a study to "address" a claim
DISCOVER_K = 5       # PubMed results fetched per canonical claim

CLAIM_FLAGS = vocabulary.CLAIM_FLAGS
# Categories whose claims assert an effect a study can test even when they also mention a
# regulator ("the FDA-approved spray works within hours").
_CLINICAL_CATEGORIES = frozenset({"efficacy", "onset", "safety", "comparison", "mechanism"})


@dataclass
class ArticleFit:
    """Per article: claims with fitting cited evidence, only fitting discovered evidence,
    no fitting evidence; regulatory claims; and the cited studies that fit no claim."""

    article_id: int
    source: str
    claims: int = 0
    with_fitting_citation: int = 0
    only_discovered: int = 0
    no_evidence: int = 0
    needs_regulatory_source: int = 0
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
    ranking: str = ""  # how the local ranker was obtained (persisted index or in memory)
    semantic: str = ""  # with semantic re-ranking: the embeddings used, and where from
    studies_embedded: int = 0  # studies encoded this run (not found in the embedding store)

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"links_created": self.links_created, "links_updated": self.links_updated,
                "links_removed": self.links_removed, "ranking": self.ranking,
                "semantic": self.semantic, "studies_embedded": self.studies_embedded,
                "discovered_pmids": self.discovered_pmids, "problems": self.problems,
                "articles": [a.as_dict() for a in self.articles]}


def _mesh_names(study: Study) -> list[str]:
    return [str(m.get("descriptor", "")) for m in study.mesh or []]


def study_document(study: Study) -> Document:
    """The ranker's view of a study (as the persisted ranking index sees it)."""
    assert study.id is not None
    return ranking_index.document_of(study.id, study.title, study.abstract, study.mesh)


# Words every health text shares: matching on them alone says nothing about fit.
_GENERIC = frozenset(tokenize(" ".join(sorted(vocabulary.GENERIC_WORDS))))


def regulatory_only(claim_text: str, category: str | None) -> str | None:
    """Why no clinical study can fit this claim, or None.

    A regulatory statement (an approval, off-label status, scheduling, a label warning)
    needs the regulator's record; history, prevalence and cost need their own sources.
    A claim that also asserts a clinical effect (its category is efficacy, onset, safety,
    comparison or mechanism) can still be fitted by studies on that effect (and a
    regulatory one is flagged all the same).
    """
    reason = non_clinical_statement(claim_text)
    if reason is None or (category or "") in _CLINICAL_CATEGORIES:
        return None
    return reason


def addresses(
    claim_text: str, study: Study, *, context: ClaimContext | None = None,
    category: str | None = None,
) -> tuple[bool, dict[str, Any], dict[str, Any]]:
    """Whether a study fits a claim, with the explanation and indirectness behind it.

    Parameters
    ----------
    claim_text
        The claim.
    study
        The study.
    context
        The claim's article's conditions and main interventions
        (``grading.article_context``), used when the claim itself names none.
    category
        The claim's category; a regulatory statement is fitted by no study.

    Returns
    -------
    (fits, explanation, indirectness)
        ``fits`` is true when the study shares the claim's condition and intervention
        (``grading.assess_indirectness`` finds no blocking mismatch and at least one
        shared term; with nothing to compare, ``MIN_MATCHED_TERMS`` distinct, specific
        claim words, not generic ones like "treatment", in its title/abstract) and the
        claim is not a regulatory, history, prevalence or cost statement.
        ``explanation["fit_reasons"]`` says why, one line per test.
    """
    exp = explain(claim_text, study.title, study.abstract)
    ind = assess_indirectness(claim_text, study_title=study.title,
                              study_mesh=_mesh_names(study), study_abstract=study.abstract,
                              context=context)
    specific = {stem for t in exp.terms for stem in tokenize(t)} - _GENERIC
    regulatory = regulatory_only(claim_text, category)
    # Fit is a matter of condition and intervention; only when neither side names any
    # (nothing to compare) do shared words have to stand in for them.
    enough_words = bool(ind.shared) or len(specific) >= MIN_MATCHED_TERMS
    fits = enough_words and ind.on_topic and regulatory is None
    reasons: list[str] = []
    if regulatory:
        reasons.append(f"does not fit: {regulatory}; no clinical study can substantiate it")
    blocking = [m for m in ind.mismatches if m.blocking]
    for m in blocking:
        reasons.append(f"does not fit: {m.dimension} differs (claim: "
                       f"{', '.join(m.claim_terms) or 'none'}; study: "
                       f"{', '.join(m.study_terms) or 'none named'})")
    if not enough_words:
        reasons.append(f"does not fit: names no condition or intervention to compare, and "
                       f"only {len(specific)} specific claim word(s) are in the study's "
                       f"title/abstract (needs {MIN_MATCHED_TERMS})")
    if fits:
        reasons.append("fits: shares the claim's condition and intervention"
                       + (" (indirect: " + ", ".join(sorted({m.dimension for m in
                                                             ind.mismatches})) + ")"
                          if ind.indirect else ""))
    explanation = {"sentences": [list(s) for s in exp.sentences], "terms": exp.terms,
                   "specific_terms": sorted(specific), "on_topic": ind.on_topic,
                   "fit_reasons": reasons}
    indirectness = {
        "indirect": ind.indirect,
        "mismatches": [{"dimension": m.dimension, "claim_terms": list(m.claim_terms),
                        "study_terms": list(m.study_terms), "blocking": m.blocking}
                       for m in ind.mismatches],
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
    index_dir: Path | None = None,
    semantic: bool = False,
    embeddings_dir: Path | None = None,
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
    index_dir
        The persisted ranking index (``evidence.ranking_index``) to rank with, built or
        updated first if it is missing or stale; None ranks in memory. Both rank alike.
    semantic
        Re-rank each claim's BM25 candidates by the hybrid score of
        ``evidence.semantic.HybridReranker`` (BM25 and sentence-embedding cosine) before
        the best ``local_k`` are kept; the links' scores are then hybrid scores. Needs the
        ``[semantic]`` extra.
    embeddings_dir
        The embedding store of ``semantic`` (``evidence.embeddings``); default
        ``<index_dir>/embeddings/<model>`` when ``index_dir`` is given, else the
        vectors are kept in memory for this run only.

    Returns
    -------
    LinkSummary
        ``studies_embedded``: studies encoded this run (their text was not in the store).

    Raises
    ------
    evidence.semantic.SemanticUnavailable
        With ``semantic``, if the extra is not installed (before anything is written).
    evidence.errors.EmbeddingStoreError
        If a file of the embedding store is unreadable (before any link is written).
    """
    summary = LinkSummary()
    if semantic:
        from evidence.semantic import require

        require()
    discovered: dict[int, set[int]] = {}  # canonical id -> study ids from PubMed
    if discover is not None:
        with read_session(engine) as session:
            canon = list(session.exec(select(CanonicalClaim)).all())
        for cc in canon:
            query = build_pubmed_query(cc.statement, category=cc.category)
            try:
                pmids = discover(query, cc.statement)
            except Exception as e:  # noqa: BLE001  (reported, the run goes on locally)
                summary.problems.append(f"discovery for canonical claim {cc.id}: {e}")
                continue
            if pmids:
                with read_session(engine) as session:
                    ids = session.exec(select(Study.id).where(col(Study.pmid).in_(pmids))).all()
                assert cc.id is not None
                discovered[cc.id] = {i for i in ids if i is not None}
                summary.discovered_pmids += len(pmids)

    # Studies are read when a claim needs them (candidates, citations, existing links,
    # also those PubMed has since deleted), not all at once: a mirror holds millions.
    studies = _StudyCache(engine)
    live = ranking_index.live_study_ids(engine)
    with read_session(engine) as session:
        articles = list(session.exec(select(Article).where(col(Article.is_current))
                                     .order_by(col(Article.id))).all())
        cited_by_article: dict[int, set[int]] = {}
        for article_id, study_id in session.exec(
            select(Citation.article_id, Study.id)
            .join(Study, col(Study.pmid) == col(Citation.pmid))
            .where(Citation.status == "resolved", col(Study.deleted).is_(False))
        ).all():
            if study_id is not None:
                cited_by_article.setdefault(article_id, set()).add(study_id)
    ranker: Ranker | None = None
    if index_dir is not None and len(live):
        chosen = ranking_index.ranker_for_link(engine, index_dir)
        summary.ranking = chosen.message
        if np.array_equal(chosen.study_ids, live):
            ranker = chosen.ranker
        else:  # studies changed while the index was brought up to date
            summary.ranking += "; studies changed meanwhile: ranked in memory instead"
    if ranker is None and len(live):
        # In study id order, as the persisted index is, so ties break the same way.
        ranker = Ranker(ranking_index.documents(engine, live.tolist()))
        if not summary.ranking:
            summary.ranking = f"ranked {len(live)} studies in memory"
    reranked: dict[int, list[tuple[str, float]]] | None = None
    if semantic and ranker is not None:
        store_dir = embeddings_dir or (embeddings.store_path(index_dir)
                                       if index_dir is not None else None)
        reranked = _rerank_claims(engine, ranker, store_dir, local_k, summary)

    for article in articles:
        assert article.id is not None
        fit = _link_article(engine, article, studies, ranker,
                            cited_by_article.get(article.id, set()), discovered, summary,
                            actor=actor, local_k=local_k, on_claim=on_claim,
                            reranked=reranked)
        summary.articles.append(fit)
    return summary


class _StudyCache(Mapping[int | None, Study]):
    """Studies by id, read from the database on first use and kept (detached)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._rows: dict[int | None, Study] = {}

    def prefetch(self, ids: Collection[int | None]) -> None:
        """Read the studies of ``ids`` not read yet, in one query per 500."""
        missing = sorted({i for i in ids if i is not None and i not in self._rows})
        if not missing:
            return
        with read_session(self._engine) as session:
            for start in range(0, len(missing), 500):  # SQLite's parameter limit
                chunk = missing[start : start + 500]
                for study in session.exec(select(Study).where(col(Study.id).in_(chunk))):
                    self._rows[study.id] = study

    def __getitem__(self, study_id: int | None) -> Study:
        if study_id not in self._rows:
            self.prefetch([study_id])
        return self._rows[study_id]

    def __iter__(self) -> Iterator[int | None]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


def _rerank_claims(
    engine: Engine, ranker: Ranker, store_dir: Path | None, local_k: int,
    summary: LinkSummary,
) -> dict[int, list[tuple[str, float]]]:
    """Every current claim's BM25 candidates, re-ranked by the hybrid score (by claim id).

    All claims at once: the studies missing from the embedding store are encoded in one
    batch and saved once. Only the candidates' text is read from the database.
    """
    from evidence.semantic import HybridReranker

    store = embeddings.EmbeddingStore(store_dir) if store_dir is not None else None
    with read_session(engine) as session:
        rows = session.exec(select(Claim.id, Claim.text)
                            .join(Article, col(Article.id) == col(Claim.article_id))
                            .where(col(Article.is_current)).order_by(col(Claim.id))).all()
    ids = [cid for cid, _ in rows if cid is not None]
    texts = [text for cid, text in rows if cid is not None]
    results = ranker.search_many(texts, k=max(local_k, CANDIDATES_K))
    needed = sorted({int(doc_id) for result in results for doc_id, _ in result})
    reranker = HybridReranker(ranking_index.documents(engine, needed), store=store)
    results = reranker.rerank_many(texts, results)
    summary.studies_embedded = reranker.encoded
    where = (f"store at {store_dir}, {len(store)} vectors" if store is not None
             else "kept in memory")
    summary.semantic = (f"re-ranked with {embeddings.MODEL_NAME} embeddings: "
                        f"{reranker.encoded} studies embedded this run ({where})")
    return dict(zip(ids, results, strict=True))


def _link_article(
    engine: Engine,
    article: Article,
    studies: _StudyCache,
    ranker: Ranker | None,
    cited: set[int],
    discovered: dict[int, set[int]],
    summary: LinkSummary,
    *,
    actor: str,
    local_k: int,
    on_claim: Callable[[int], None] | None,
    reranked: Mapping[int, list[tuple[str, float]]] | None = None,
) -> ArticleFit:
    assert article.id is not None
    fit = ArticleFit(article_id=article.id, source=article.source, cited_studies=len(cited))
    context = article_context(article.text)
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
            if reranked is not None and claim.id in reranked:
                for doc_id, score in reranked[claim.id]:
                    scores[int(doc_id)] = score
            elif ranker is not None:
                for doc_id, score in ranker.search(claim.text, k=max(local_k, CANDIDATES_K)):
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
        sources: dict[int, list[str]] = {}
        for cid, kind in session.exec(select(ClaimSource.claim_id, ClaimSource.kind).where(
                col(ClaimSource.claim_id).in_([c.id for c in claims]))).all():
            sources.setdefault(cid, []).append(kind)
        not_addressing = [studies[sid].pmid for sid, ok in cited_fits.items() if not ok]
        fit.cited_not_addressing = sorted(not_addressing)
        _flag_citations(session, article.id, set(not_addressing), actor=actor)
        assessed = _assessed_links(session, [ln.id for links in per_claim_links.values()
                                             for ln in links if ln.id is not None])
        for claim in claims:
            assert claim.id is not None
            links = per_claim_links[claim.id]
            flags = claim_flags(claim, links, studies, sources.get(claim.id, ()), assessed)
            suggestion = claim_certainty(session, claim, links=links, studies=studies)
            _set_claim_derived(session, claim, flags=flags, suggestion=suggestion, actor=actor)
            if "needs_regulatory_source" in flags:
                fit.needs_regulatory_source += 1
            if any(ln.origin == "cited" and ln.fits for ln in links):
                fit.with_fitting_citation += 1
            elif any(ln.fits for ln in links):
                fit.only_discovered += 1
            else:
                fit.no_evidence += 1
    return fit


def _sync_links(
    session: Session,
    claim: Claim,
    candidates: dict[int, dict[str, Any]],
    scores: dict[int, float],
    studies: _StudyCache,
    cited_fits: dict[int, bool],
    summary: LinkSummary,
    *,
    actor: str,
    context: ClaimContext,
) -> list[EvidenceLink]:
    existing = {ln.study_id: ln for ln in session.exec(
        select(EvidenceLink).where(EvidenceLink.claim_id == claim.id)).all()}
    assessed = set(session.exec(
        select(EvidenceLink.id).join(Assessment, col(Assessment.link_id) == col(EvidenceLink.id))
        .where(EvidenceLink.claim_id == claim.id)).all())
    before = {str(sid): [ln.origin, round(ln.score, 4)] for sid, ln in existing.items()}
    studies.prefetch([*candidates, *existing])
    judged = {sid: addresses(claim.text, studies[sid], context=context,
                             category=claim.category) for sid in candidates}
    # Fitting studies first, then weaker matches; by score within each.
    ranked = sorted(candidates, key=lambda sid: (not judged[sid][0], -scores.get(sid, 0.0), sid))
    kept: list[EvidenceLink] = []
    for rank, sid in enumerate(ranked, start=1):
        fits, explanation, indirectness = judged[sid]
        origins = set(candidates[sid]["origins"])
        link = existing.pop(sid, None)
        if link is not None and link.origin in KEPT_ORIGINS:
            origins.add(link.origin)
        if "cited" in origins and fits:
            cited_fits[sid] = True
        origin, also = _candidate_origin(origins)
        values: dict[str, Any] = {"origin": origin, "also_found_by": also,
                  "score": round(scores.get(sid, 0.0), 6), "rank": rank,
                  "explanation": explanation,
                  "indirect": bool(fits and indirectness["indirect"]),
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
        if link.origin in KEPT_ORIGINS or link.id in assessed:
            kept.append(link)  # a reviewer's (or surveillance's) link or reading stays
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
        flags = ["addresses_no_claim"] if cit.pmid in misfit_pmids else []
        if list(cit.flags or []) != flags:
            before = audit.snapshot(cit)
            session.execute(update(Citation).where(col(Citation.id) == cit.id)
                            .values(flags=flags, updated_at=utcnow()))
            session.refresh(cit)
            audit.record(session, actor=actor, action="citation.fit", entity="citation",
                         entity_id=cit.id, before=before, after=audit.snapshot(cit))


REGULATORY_SOURCE_KINDS = ("drug_label", "regulatory_decision")
"""Attached source kinds that answer a claim's ``needs_regulatory_source`` flag."""


def claim_flags(claim: Claim, links: Sequence[EvidenceLink],
                studies: Mapping[int | None, Study],
                source_kinds: Sequence[str] = (),
                assessed: Collection[int | None] = ()) -> list[str]:
    """The flags about one claim's own evidence, in `vocabulary.CLAIM_FLAGS` order.

    Only fitting links count (a weaker match raises no flag and hides none), except that
    a retracted study a reviewer has assessed raises ``retracted_evidence`` fitting or not.

    Parameters
    ----------
    claim
        The claim.
    links
        Its evidence links.
    studies
        The linked studies by id.
    source_kinds
        Kinds of the non-PubMed sources attached to the claim; a drug label or a
        regulatory decision answers ``needs_regulatory_source``.
    assessed
        Ids of the links a reviewer has assessed: a surveillance link stays
        ``new_evidence`` until one is.

    Returns
    -------
    list of str
    """
    fitting = [ln for ln in links if ln.fits]
    flags: list[str] = []
    if not any(ln.origin == "cited" for ln in fitting):
        flags.append("no_fitting_citation")
    if regulatory_statement(claim.text) and not set(source_kinds) & set(
            REGULATORY_SOURCE_KINDS):
        flags.append("needs_regulatory_source")
    # A retracted study a reviewer has read counts too, fitting or not: the claim may rest on it.
    if any(studies[ln.study_id].is_retracted for ln in links
           if ln.fits or ln.id in assessed):
        flags.append("retracted_evidence")
    best = sorted(fitting, key=lambda ln: -ln.score)[:3]
    if best and all(ln.indirect for ln in best):
        flags.append("indirect_evidence")
    if not fitting:
        flags.append("no_evidence")
    if any(ln.origin == "surveillance" and ln.id not in assessed for ln in fitting):
        flags.append("new_evidence")
    return flags


def link_evidence(
    link: EvidenceLink, study: Study, assessment: Assessment | None = None, *, label: str = "",
) -> LinkEvidence:
    """What the certainty rules need to know about one link (and one reviewer's reading)."""
    flags = flag_codes(study.flags or []) or (["retracted"] if study.is_retracted else [])
    dims = sorted({str(m.get("dimension")) for m in (link.indirectness or {}).get(
        "mismatches", []) if not m.get("blocking")})
    return LinkEvidence(
        design=study.design or "unknown", rank=study.design_rank or 0, relevant=bool(link.fits)
        or assessment is not None, stance=assessment.stance if assessment else None,
        indirect=bool(link.indirect), retracted=study.is_retracted, flags=flags,
        label=label or f"PMID {study.pmid}",
        relevance=assessment.relevance if assessment else None, indirect_dimensions=dims,
        study=f"PMID {study.pmid}")


def claim_certainty(
    session: Session,
    claim: Claim,
    *,
    reviewer_id: int | None = None,
    links: Sequence[EvidenceLink] | None = None,
    studies: Mapping[int | None, Study] | None = None,
) -> CertaintySuggestion:
    """The suggested GRADE certainty for a claim, from its links and their assessments.

    Parameters
    ----------
    session
        Open session.
    claim
        The claim.
    reviewer_id
        Use only this reviewer's assessments (a reviewer's own view under independent
        review); None uses every reviewer's.
    links, studies
        The claim's links and their studies, when the caller has them already.

    Returns
    -------
    CertaintySuggestion
        From the assessed links when there are any (``basis="assessments"``), else from the
        fitting links' records alone (``basis="metadata"``).
    """
    if links is None:
        links = list(session.exec(select(EvidenceLink)
                                  .where(EvidenceLink.claim_id == claim.id)).all())
    if studies is None:
        ids = [ln.study_id for ln in links]
        studies = {s.id: s for s in session.exec(select(Study).where(col(Study.id).in_(ids))
                                                 ).all()} if ids else {}
    by_link: dict[int, list[Assessment]] = {}
    link_ids = [ln.id for ln in links if ln.id is not None]
    if link_ids:
        stmt = select(Assessment).where(col(Assessment.link_id).in_(link_ids))
        if reviewer_id is not None:
            stmt = stmt.where(Assessment.reviewer_id == reviewer_id)
        for a in session.exec(stmt.order_by(col(Assessment.id))).all():
            by_link.setdefault(a.link_id, []).append(a)
    items: list[LinkEvidence] = []
    for ln in links:
        study = studies[ln.study_id]
        readings = by_link.get(ln.id or -1, [])
        if readings:
            many = len(readings) > 1
            for i, a in enumerate(readings, start=1):
                label = f"PMID {study.pmid}" + (f" (reading {i})" if many else "")
                items.append(link_evidence(ln, study, a, label=label))
        elif ln.fits:
            items.append(link_evidence(ln, study))
    return suggest_certainty(items)


def refresh_claim_derived(session: Session, claim_id: int, *, actor: str) -> Claim | None:
    """Recompute a claim's flags and suggested certainty from its links and assessments.

    Called when an assessment is saved, so the suggestion follows the reviewers' work.
    """
    claim = session.get(Claim, claim_id)
    if claim is None:
        return None
    links = list(session.exec(select(EvidenceLink).where(EvidenceLink.claim_id == claim_id)
                              ).all())
    ids = [ln.study_id for ln in links]
    studies: dict[int | None, Study] = {s.id: s for s in session.exec(
        select(Study).where(col(Study.id).in_(ids))).all()} if ids else {}
    suggestion = claim_certainty(session, claim, links=links, studies=studies)
    kinds = list(session.exec(select(ClaimSource.kind)
                              .where(ClaimSource.claim_id == claim_id)).all())
    assessed = _assessed_links(session, [ln.id for ln in links if ln.id is not None])
    _set_claim_derived(session, claim,
                       flags=claim_flags(claim, links, studies, kinds, assessed),
                       suggestion=suggestion, actor=actor)
    session.refresh(claim)
    return claim


def _assessed_links(session: Session, link_ids: Sequence[int]) -> set[int]:
    if not link_ids:
        return set()
    return set(session.exec(select(Assessment.link_id).where(
        col(Assessment.link_id).in_(list(link_ids)))).all())


def _set_claim_derived(session: Session, claim: Claim, *, flags: list[str],
                       suggestion: CertaintySuggestion, actor: str) -> None:
    # Derived fields do not bump the claim's version: a relink must not make a reviewer's
    # open edit of the claim stale. The change is still audited.
    reasons = list(suggestion.reasons)
    if (claim.flags == flags and claim.suggested_certainty == suggestion.level
            and claim.suggestion_reasons == reasons
            and claim.suggestion_basis == suggestion.basis):
        return
    before = {"flags": claim.flags, "suggested_certainty": claim.suggested_certainty,
              "suggestion_reasons": claim.suggestion_reasons,
              "suggestion_basis": claim.suggestion_basis}
    after = {"flags": flags, "suggested_certainty": suggestion.level,
             "suggestion_reasons": reasons, "suggestion_basis": suggestion.basis}
    session.execute(update(Claim).where(col(Claim.id) == claim.id).values(
        **after, updated_at=utcnow()))
    audit.record(session, actor=actor, action="claim.derive", entity="claim",
                 entity_id=claim.id, before=before, after=after)
