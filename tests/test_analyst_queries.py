"""The analysts' reads behind the notebooks: certainty counts, decision history, the record
versions verdicts rest on, the audit chain's status (both databases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
from sqlmodel import Session

from evidence import queries, review
from evidence.models import RawRecord, Study
from tests.factories import make_claim, make_link, make_study, make_user, make_verdict


def _seed(session: Session) -> dict[str, int]:
    raw = RawRecord(sha256="cd" * 32, body=b"<PubmedArticleSet/>", utility="efetch")
    session.add(raw)
    session.flush()
    claim = make_claim(session, suggested_certainty="moderate")
    make_claim(session)  # no suggestion
    fetched = make_study(session, pmid="90000051", pmid_version=3, record_sha256="ef" * 32,
                         raw_record_id=raw.id)
    later = make_study(session, pmid="90000052")
    make_link(session, claim=claim, study=fetched)
    make_link(session, claim=claim, study=later, fits=False)
    rita = make_user(session, username="rita")
    ada = make_user(session, username="ada", role="adjudicator")
    session.commit()
    assert claim.id is not None and later.id is not None
    first = review.save_verdict(session, user=rita, claim_id=claim.id,
                                substantiation="substantiated", certainty="moderate",
                                action="approve", rationale="trial supports it")
    session.commit()
    review.save_verdict(session, user=rita, claim_id=claim.id,
                        substantiation="unsubstantiated", certainty="low", action="remove",
                        rationale="second look", expected_version=first.version)
    session.commit()
    make_verdict(session, claim=claim, reviewer=ada, kind="final", certainty="high")
    session.commit()
    return {"claim": claim.id, "later": later.id}


def test_certainty_counts_history_and_audit_status(session: Session) -> None:
    seeded = _seed(session)
    df = queries.certainty_counts(session)
    assert list(df.columns) == queries.CERTAINTY_COUNT_COLUMNS
    assert len(df) == 15  # 3 bases x (4 levels + none), zeros included
    counts = {(b, c): n for b, c, n in df.itertuples(index=False)}
    assert counts[("suggested", "moderate")] == 1 and counts[("suggested", "none")] == 1
    assert counts[("review", "low")] == 1 and counts[("review", "moderate")] == 0
    assert counts[("final", "high")] == 1
    assert df["certainty"].tolist()[:5] == ["high", "moderate", "low", "very_low", "none"]
    # Who decided what, when, and what it was before.
    df = queries.decision_history(session)
    assert list(df.columns) == queries.DECISION_COLUMNS
    assert df["action"].tolist() == ["verdict.create", "verdict.update"]
    assert set(df["actor"]) == {"rita"} and set(df["claim_id"]) == {seeded["claim"]}
    created, changed = df.to_dict(orient="records")
    assert pd.isna(created["previous_substantiation"]) and not created["changed"]
    assert (changed["previous_substantiation"], changed["substantiation"]) == (
        "substantiated", "unsubstantiated")
    assert (changed["previous_certainty"], changed["certainty"]) == ("moderate", "low")
    assert changed["changed"] and changed["occurred_at"] >= created["occurred_at"]
    status = queries.audit_status(session)
    assert list(status.columns) == queries.AUDIT_STATUS_COLUMNS and len(status) == 1
    assert bool(status.iloc[0]["verified"]) and int(status.iloc[0]["events"]) >= 2
    assert len(str(status.iloc[0]["head_hash"])) == 64


def test_verdict_evidence_names_the_record_version(session: Session) -> None:
    seeded = _seed(session)
    df = queries.verdict_evidence(session)
    assert list(df.columns) == queries.VERDICT_EVIDENCE_COLUMNS
    assert len(df) == 4  # two verdicts x two linked studies
    row = df[(df["pmid"] == "90000051") & (df["kind"] == "review")].iloc[0]
    assert (row["reviewer"], row["pmid_version"]) == ("rita", 3)
    assert row["record_sha256"] == "ef" * 32 and row["raw_sha256"] == "cd" * 32
    assert not row["record_changed_since"]
    # The study changes after the decisions (re-fetched, retracted): the rows say so.
    study = session.get(Study, seeded["later"])
    assert study is not None
    study.updated_at = datetime.now(UTC) + timedelta(days=1)
    study.is_retracted = True
    session.commit()
    df = queries.verdict_evidence(session)
    flagged = df[df["record_changed_since"]]
    assert set(flagged["pmid"]) == {"90000052"} and len(flagged) == 2
    assert flagged["retracted"].all()
    assert df[df["pmid"] == "90000052"]["raw_sha256"].isna().all()
