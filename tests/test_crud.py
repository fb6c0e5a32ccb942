"""Writes: article revisions, canonical grouping, optimistic concurrency, users, audit."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from evidence import audit, crud
from evidence.config import get_settings
from evidence.errors import InputError, PermissionDenied, StaleWrite
from evidence.models import Article, AuditEvent, CanonicalClaim, Citation, Claim
from ingest import store
from ingest.articles import parse_document
from tests.factories import make_user

TEXT = (
    "Ketamine Therapy in Springfield\n"
    "Ketamine can relieve depression symptoms within hours.\n"
    "Most patients report minimal side effects.\n"
    "See https://pubmed.ncbi.nlm.nih.gov/12345678/ and https://www.webmd.com/ketamine.\n"
)


def _ingest(session: Session, text: str, source: str = "post.txt") -> store.ArticleIngestResult:
    parsed = parse_document(text.encode(), source=source)
    res = store.store_article(session=session, parsed=parsed, actor="tester")
    session.commit()
    return res


def test_ingest_stores_exact_claims_citations_and_audit(session: Session) -> None:
    res = _ingest(session, TEXT)
    assert res.status == "new" and res.claims >= 2
    article = res.article
    for claim in session.exec(select(Claim)).all():
        assert article.text[claim.start:claim.end] == claim.text
        assert claim.canonical_id is not None
    kinds = {c.kind: c for c in session.exec(select(Citation)).all()}
    assert kinds["pmid"].identifier == "12345678" and kinds["pmid"].status == "pending"
    assert kinds["web"].status == "not_scholarly"
    actions = [e.action for e in session.exec(select(AuditEvent)).all()]
    assert actions.count("article.ingest") == 1
    assert actions.count("claim.extract") == res.claims
    assert audit.verify(session).ok


def test_same_content_is_noop(session: Session) -> None:
    _ingest(session, TEXT)
    n_events = len(session.exec(select(AuditEvent)).all())
    res = _ingest(session, TEXT)
    assert res.status == "unchanged"
    assert len(session.exec(select(Article)).all()) == 1
    assert len(session.exec(select(AuditEvent)).all()) == n_events


def test_changed_content_is_new_revision_and_old_claims_stay(session: Session) -> None:
    first = _ingest(session, TEXT)
    old_claims = {c.id: c.text for c in session.exec(select(Claim)).all()}
    second = _ingest(session, TEXT + "Ketamine is FDA approved for treatment-resistant "
                                     "depression as a nasal spray.\n")
    assert second.status == "new_version"
    assert second.article.previous_id == first.article.id
    assert second.article.revision == 2
    session.expire_all()
    old = session.get(Article, first.article.id)
    assert old is not None and old.is_current is False and old.version == 2
    # The earlier revision's claims are untouched (same ids, same text).
    for cid, text in old_claims.items():
        c = session.get(Claim, cid)
        assert c is not None and c.text == text and c.article_id == first.article.id
    # Repeated claims across revisions share canonical claims.
    new_claims = session.exec(select(Claim).where(Claim.article_id == second.article.id)).all()
    old_canon = {session.get(Claim, cid).canonical_id for cid in old_claims}  # type: ignore[union-attr]
    assert sum(1 for c in new_claims if c.canonical_id in old_canon) >= len(old_claims)


def test_repeated_claim_across_articles_is_one_canonical(session: Session) -> None:
    _ingest(session, "Clinic A\nKetamine provides relief from depression within hours.\n",
            source="a.txt")
    _ingest(session, "Clinic B\nMany patients feel relief from depression within hours of "
                     "ketamine.\n", source="b.txt")
    claims = session.exec(select(Claim).where(Claim.category == "onset")).all()
    assert len(claims) == 2
    assert claims[0].canonical_id == claims[1].canonical_id
    threshold = get_settings().claim_group_threshold
    assert all(c.canonical_score is not None and c.canonical_score >= threshold for c in claims)


def test_regroup_is_versioned_and_audited(session: Session) -> None:
    _ingest(session, TEXT)
    claim = session.exec(select(Claim).order_by(col(Claim.id))).first()
    assert claim is not None and claim.id is not None
    lead = make_user(session, username="lead")
    other = make_user(session, username="other")
    moved = crud.regroup_claim(session=session, claim_id=claim.id, canonical_id=None,
                               expected_version=claim.version, user=lead,
                               new_statement="ketamine relieves depression")
    session.commit()
    assert moved.version == 2
    cc = session.get(CanonicalClaim, moved.canonical_id)
    assert cc is not None and cc.statement == "ketamine relieves depression"
    ev = session.exec(select(AuditEvent).where(AuditEvent.action == "claim.regroup")).one()
    assert ev.actor == "lead" and ev.before["canonical_id"] != ev.after["canonical_id"]
    with pytest.raises(StaleWrite, match="changed by someone else"):
        crud.regroup_claim(session=session, claim_id=claim.id, canonical_id=None,
                           expected_version=1, user=other)


def test_stale_write_is_refused_and_shows_current(session: Session) -> None:
    _ingest(session, TEXT)
    claim = session.exec(select(Claim)).first()
    assert claim is not None and claim.id is not None
    alice, bob = make_user(session, username="alice"), make_user(session, username="bob")
    crud.edit_claim(session=session, claim_id=claim.id, expected_version=1, user=alice,
                    category="safety")
    session.commit()
    with pytest.raises(StaleWrite) as exc:
        crud.edit_claim(session=session, claim_id=claim.id, expected_version=1, user=bob,
                        category="efficacy")
    assert exc.value.current["category"] == "safety"
    session.rollback()
    assert session.get(Claim, claim.id).category == "safety"  # type: ignore[union-attr]


def test_concurrent_writers_keep_one_chain(engine: Engine) -> None:
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(10):
                with Session(engine) as s:
                    audit.record(s, actor=f"w{n}", action="t", entity="x", entity_id=i)
                    s.commit()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with Session(engine) as s:
        result = audit.verify(s)
    assert result.ok and result.checked == 40


def test_users_and_roles(session: Session) -> None:
    admin = crud.add_user(session=session, username="root", role="admin", password="pw-admin",
                          actor=None)  # the first user: no one to act yet
    viewer = crud.add_user(session=session, username="val", role="viewer", password="pw-val-12",
                           actor=admin)
    session.commit()
    assert crud.authenticate(session=session, username="val", password="pw-val-12") == viewer
    assert crud.authenticate(session=session, username="val", password="nope") is None
    assert viewer.password_hash and viewer.password_hash.startswith("$argon2")
    with pytest.raises(PermissionDenied, match="val is a viewer"):
        crud.set_user_role(session=session, user_id=admin.id, role="viewer",  # type: ignore[arg-type]
                           expected_version=admin.version, actor=viewer)
    updated = crud.set_user_role(session=session, user_id=viewer.id,  # type: ignore[arg-type]
                                 role="reviewer", expected_version=viewer.version, actor=admin)
    assert updated.role == "reviewer"
    ev = session.exec(select(AuditEvent).where(AuditEvent.action == "user.role")).one()
    assert "password_hash" not in (ev.after or {})
    with pytest.raises(InputError, match="unknown role"):
        crud.add_user(session=session, username="x", role="boss", password="password1",
                      actor=admin)
    with pytest.raises(InputError, match="at least 8 characters"):
        crud.add_user(session=session, username="y", role="viewer", password="short",
                      actor=admin)


def test_seed_claim_repeated_in_all_five_articles_is_one_canonical(engine: Engine) -> None:
    from pathlib import Path

    from substantiate import jobs

    seeds = Path(__file__).resolve().parents[1] / "data" / "articles"
    jobs.ingest_articles(engine, [str(seeds)])
    with Session(engine) as s:
        claims = s.exec(select(Claim)).all()
        weeks = [c for c in claims if "weeks" in c.text and "antidepressant" in c.text.lower()]
        groups = {c.canonical_id for c in weeks}
        biggest = max(groups, key=lambda g: sum(c.canonical_id == g for c in claims))
        members = [c for c in claims if c.canonical_id == biggest]
        assert len({c.article_id for c in members}) == 5
        cc = s.get(CanonicalClaim, biggest)
        assert cc is not None and "weeks" in cc.statement  # readable, not a stem soup
        assert all(c.canonical_score is not None for c in members)
        assert len({c.canonical_id for c in claims}) < len(claims)


class _Summary:
    """A job summary that keeps changing after it is handed to the run."""

    def __init__(self) -> None:
        self.done = 0

    def as_dict(self) -> dict[str, int]:
        return {"done": self.done}


def test_ingest_run_closes_ok_partial_or_error_with_the_final_stats(engine: Engine) -> None:
    from evidence.models import IngestRun

    summary = _Summary()
    with crud.ingest_run(engine, kind="ingest_articles", actor="tester",
                         params={"inputs": ["a.txt"]}) as run:
        with Session(engine) as s:  # committed before the work starts: a crash leaves a trace
            assert s.get(IngestRun, run.id).status == "running"  # type: ignore[union-attr]
        run.stats = summary
        summary.done = 3  # read when the run closes, not when it is handed over
    with crud.ingest_run(engine, kind="ingest_pubmed", actor="tester", params={}) as run:
        run.problems.extend(["NCBI error: busy", "network unavailable"])
    with pytest.raises(InputError, match="no such file"):
        with crud.ingest_run(engine, kind="ingest_medline", actor="tester", params={}) as run:
            run.stats = {"inserted": 2}
            raise InputError("big.xml.gz: no such file")
    with Session(engine) as s:
        rows = s.exec(select(IngestRun).order_by(col(IngestRun.id))).all()
        assert [(r.kind, r.status, r.error, r.stats) for r in rows] == [
            ("ingest_articles", "ok", None, {"done": 3}),
            ("ingest_pubmed", "partial", "NCBI error: busy; network unavailable", {}),
            ("ingest_medline", "error", "big.xml.gz: no such file", {"inserted": 2}),
        ]
        assert all(r.finished_at is not None for r in rows)
        actions = s.exec(select(AuditEvent.action).where(AuditEvent.entity == "ingest_run")
                         .order_by(col(AuditEvent.id))).all()
        assert actions == ["run.ingest_articles", "run.ingest_pubmed", "run.ingest_medline"]
        assert audit.verify(s).ok


def test_ingest_articles_keep_going_is_a_partial_run_with_progress_per_item(
    engine: Engine, tmp_path
) -> None:
    from evidence.models import IngestRun
    from substantiate import jobs

    (tmp_path / "a.txt").write_text(TEXT)
    (tmp_path / "b.txt").write_text("  \n")
    calls: list[tuple[str, int, int | None]] = []
    summary = jobs.ingest_articles(engine, [str(tmp_path)], keep_going=True,
                                   progress=lambda *a: calls.append(a))  # type: ignore[arg-type]
    assert summary.new == 1 and len(summary.errors) == 1
    assert calls == [("articles", 0, 2), ("articles", 1, 2), ("articles", 2, 2)]
    with Session(engine) as s:
        run = s.get(IngestRun, summary.run_id)
        assert run is not None and run.status == "partial"
        assert run.error == summary.errors[0] and "empty" in run.error
        assert run.stats["new"] == 1
