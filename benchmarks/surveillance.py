"""Surveillance benchmark: 10,000 decided claims resting on 20,000 studies.

Usage::

    python -m benchmarks.surveillance [--studies 20000] [--claims 10000] [--groups 500]
        [--changed-share 0.01] [--new-evidence-share 0.1] [--batch-size 200]
        [--no-discover] [--no-api-key] [--database-url URL] [--quick]

Setup (not timed as part of the runs, reported as ``build``)
    The fake E-utilities server (``tests.fake_eutils``) starts on 127.0.0.1. A database is
    built with bulk inserts (SQLAlchemy core ``executemany`` on the models' tables, schema
    made by the migrations): ``--studies`` studies with synthetic PMIDs (93000000 up) whose
    rows are ``ingest.load.study_values`` of exactly the records the server serves for
    them (its real template record with the PMID and DOI rewritten), so every unchanged
    record compares equal; ``--claims`` claims, each with a final verdict by one
    adjudicator and status ``final``, in ``--groups`` canonical claims (500 groups of 20 by
    default; five claims per article), each claim linked (``fits``, origin ``cited``) to
    ``studies / claims`` studies and each link assessed once. The statements are plainly
    synthetic ("Zorvanib-0042 infusions relieve migraine within two weeks.").

    Before the runs, ``--changed-share`` of the studies (picked at random, seeded) are
    retracted on the server (the template record with a ``RetractionIn`` notice and the
    "Retracted Publication" type) and given a modification date (``mdat``) of today; for
    ``--new-evidence-share`` of the canonical claims the server's search for the claim's
    discovery query returns one new fitting randomised trial added (``edat``) today.

Runs, each through ``ingest.surveil.surveil`` with a real ``EntrezClient`` over loopback
(rate limit in force: 10 requests/s with an API key, the default here to keep the run
short; 3/s with ``--no-api-key``):

``full_run``
    Every linked record re-fetched, then discovery (one esearch per decided canonical
    claim and efetch batches of the new hits), then the apply transaction.
``repeat_run``
    The same again on the same database: nothing changed since, so its apply phase is the
    fixed cost of a quiet run (storing the search responses, the expiry scan).
``since_run``
    On a second database built the same way: ``since`` a week ago, no discovery, so the
    linked PMIDs are posted (epost, 10,000 per request), one ``datetype=mdat`` esearch per
    posted set keeps the modified records, and only those are fetched.

Figures, each against a baseline measured or computed in the same run:

- requests by utility, against the minimum the batch sizes allow: re-fetch
  ``ceil(studies / batch_size)`` (``strict_minimum``) plus ``ceil(changed / batch_size)``
  to fetch the changed records again, together, so that their stored response holds
  them alone (``minimum``); discovery one esearch per decided canonical claim plus
  ``ceil(new hits / batch_size)`` efetch; the ``since`` path ``ceil(studies / 10,000)``
  epost, one esearch over every posted set and ``ceil(modified / batch_size)`` efetch
  (``minimum``; one search and one paged fetch per posted set would be
  ``minimum_per_posted_set``). Target: ``ratio`` <= 1.1.
- wall time against the rate-limit floor (requests x the client's minimum interval,
  ``ingest.entrez.KEY_INTERVAL`` / ``NO_KEY_INTERVAL``): ``rate_limit_share`` is how much
  of the wall time the rate limit explains (1.0: all of it); ``parse_s`` is the time spent
  parsing the fetched PubMed XML.
- the apply phase (one write transaction: on SQLite every other writer waits for it):
  seconds and SQL statements (a SQLAlchemy ``before_cursor_execute`` count on write
  connections; an ``executemany`` counts once), by step and by statement kind, per changed
  record (the steps that store the changed records and re-open their claims) and per new
  evidence link; audit events written by action, raw responses stored and their bytes
  (gzip of the fake server's repeated template compresses far better than real PubMed
  XML: read ``raw_bytes_uncompressed``), claims re-opened; against the repeat run's
  apply phase (the quiet-run baseline).

- the process's peak resident memory after the build and after the full run
  (``peak_rss_mb``).

The fake server runs in this process: the time it spends building responses (and the
loopback transfer) is inside the wall times, where a real network would add latency
instead.

``summary`` repeats the headline figures. At tiny sizes ``rate_limit_share`` can exceed 1
by up to one interval's worth: the last request of a phase is counted a whole interval.

Prints one strict JSON object (no NaN) on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import random
import re
import resource
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic_core import PydanticUndefined
from sqlalchemy import Engine, create_engine, event, func, insert, text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel, col, select

import ingest.surveil as surveil_module
from evidence import db
from evidence import surveillance as rules
from evidence.match import build_pubmed_query
from evidence.models import (
    AppUser,
    Article,
    Assessment,
    AuditEvent,
    CanonicalClaim,
    Claim,
    EvidenceLink,
    RawRecord,
    Study,
    Verdict,
    utcnow,
)
from ingest.entrez import KEY_INTERVAL, NO_KEY_INTERVAL, EntrezClient
from ingest.load import study_values
from ingest.pubmed_xml import PubmedRecord, parse_pubmed_bytes
from ingest.surveil import EPOST_BATCH, SurveilReport, surveil
from tests._shared import SHARED
from tests.fake_eutils import PUBMED_FOOTER, PUBMED_HEADER, FakeEutils, RequestRecord
from tests.pubmed_records import article_xml

EMAIL = "benchmark@substantiate.example"
BENCH_KEY = "benchmark-api-key"
# Synthetic ranges (90000000+): never a real PubMed id.
FIRST_STUDY = 93_000_000
FIRST_NEW = 94_000_000
FIRST_NOTICE = 95_000_000
CLAIMS_PER_ARTICLE = 5
DECIDED_DAYS_AGO = 30
SINCE_DAYS = 7
PARSE_CHUNK = 1000
INSERT_CHUNK = 2000
TARGET_RATIO = 1.1
SEED = 7
CONDITIONS = ("depression", "PTSD", "anxiety", "obsessive-compulsive disorder", "chronic pain",
              "migraine", "binge-eating disorder", "alcohol use disorder", "obesity",
              "type 2 diabetes")
DEFAULTS = {"studies": 20_000, "claims": 10_000, "groups": 500, "changed_share": 0.01,
            "new_evidence_share": 0.1, "batch_size": 200}
QUICK = {"studies": 40, "claims": 20, "groups": 4, "changed_share": 0.05,
         "new_evidence_share": 0.5, "batch_size": 10}


# ----------------------------------------------------------------------------- plan


@dataclass
class Plan:
    """What the database holds and what the server changes."""

    studies: int
    claims: int
    groups: int
    batch_size: int
    changed: list[int]  # study indexes
    new_hit_groups: list[int]
    now: datetime
    statements: list[str] = field(default_factory=list)

    def pmid(self, study: int) -> str:
        """The PMID of study ``study``."""
        return str(FIRST_STUDY + study)

    def new_pmid(self, group: int) -> str:
        """The PMID of the new trial found for canonical claim ``group``."""
        return str(FIRST_NEW + group)

    def claim_of(self, study: int) -> int:
        """The claim study ``study`` is linked to."""
        return study % self.claims

    @property
    def changed_pmids(self) -> list[str]:
        """PMIDs the server serves retracted."""
        return [self.pmid(i) for i in self.changed]

    @property
    def new_pmids(self) -> set[str]:
        """PMIDs of the new trials discovery finds."""
        return {self.new_pmid(g) for g in self.new_hit_groups}

    @property
    def expected_reopened(self) -> int:
        """Claims that rest on a changed study."""
        return len({self.claim_of(i) for i in self.changed})


def _share(n: int, share: float) -> int:
    return 0 if share <= 0 or n <= 0 else min(n, max(1, round(n * share)))


def make_plan(*, studies: int, claims: int, groups: int, changed_share: float,
              new_evidence_share: float, batch_size: int, discover: bool) -> Plan:
    """Pick the changed studies and the claims that get new evidence (seeded)."""
    rng = random.Random(SEED)
    changed = sorted(rng.sample(range(studies), _share(studies, changed_share)))
    hits = (sorted(rng.sample(range(groups), _share(groups, new_evidence_share)))
            if discover else [])
    plan = Plan(studies, claims, groups, batch_size, changed, hits,
                now=utcnow().replace(microsecond=0))
    plan.statements = [f"Zorvanib-{g:04d} infusions relieve {CONDITIONS[g % len(CONDITIONS)]} "
                       "within two weeks." for g in range(groups)]
    return plan


# ----------------------------------------------------------------------------- server


def retracted_record(server: FakeEutils, pmid: str, notice: str) -> bytes:
    """The template record the server serves for ``pmid``, now retracted."""
    record = server.synthetic_record(pmid)
    cc = (f'<CommentsCorrections RefType="RetractionIn"><RefSource>J Synth Retract. '
          f'2026</RefSource><PMID Version="1">{notice}</PMID></CommentsCorrections>').encode()
    pt = b'<PublicationType UI="D016441">Retracted Publication</PublicationType>'
    for tag, insert_at in ((b"<CommentsCorrectionsList>", "after"),
                           (b"</PublicationTypeList>", "before")):
        if record.count(tag) != 1:
            raise RuntimeError(f"template record has no single {tag!r}")
        record = (record.replace(tag, tag + cc) if insert_at == "after"
                  else record.replace(tag, pt + tag))
    return record


def new_trial(plan: Plan, group: int) -> bytes:
    """A randomised trial that fits canonical claim ``group`` (hand-written, synthetic)."""
    drug = f"Zorvanib-{group:04d}"
    condition = CONDITIONS[group % len(CONDITIONS)]
    pmid = plan.new_pmid(group)
    return article_xml(
        pmid, title=f"{drug} infusions for {condition}: a randomized placebo-controlled trial",
        abstract=f"Adults with {condition} received {drug.lower()} infusions or placebo. "
                 f"Symptoms of {condition} improved within two weeks with {drug.lower()}.",
        publication_types=("Journal Article", "Randomized Controlled Trial"),
        mesh=("Humans",), year=plan.now.year, doi=f"10.5555/surveil-bench.{pmid}")


def prepare_server(server: FakeEutils, plan: Plan) -> None:
    """Serve the changed records retracted and the new trials behind discovery queries."""
    today = plan.now.astimezone(UTC).date().isoformat()
    for n, index in enumerate(plan.changed):
        pmid = plan.pmid(index)
        server.add_record(pmid, retracted_record(server, pmid, str(FIRST_NOTICE + n)))
        server.set_dates(pmid, modified=today)
    for group in plan.new_hit_groups:
        pmid = plan.new_pmid(group)
        server.add_record(pmid, new_trial(plan, group))
        server.set_dates(pmid, added=today)
        server.set_search(build_pubmed_query(plan.statements[group], category="efficacy"),
                          [pmid])


# ----------------------------------------------------------------------------- build


def _defaults(model: type[SQLModel]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if info.default_factory is not None:
            out[name] = info.default_factory()  # type: ignore[call-arg]
        elif info.default is not PydanticUndefined:
            out[name] = info.default
    return out


def _insert(engines: Sequence[Engine], model: type[SQLModel], rows: list[dict[str, Any]]
            ) -> None:
    base = _defaults(model)
    table = model.__table__  # type: ignore[attr-defined]
    for start in range(0, len(rows), INSERT_CHUNK):
        chunk = [{**base, **r} for r in rows[start:start + INSERT_CHUNK]]
        for engine in engines:
            with engine.begin() as conn:
                conn.execute(insert(table), chunk)


def _study_rows(server: FakeEutils, plan: Plan, start: int, stop: int,
                stamp: datetime) -> list[dict[str, Any]]:
    """``study`` rows parsed from exactly the bytes the server serves (before changes)."""
    pmids = [plan.pmid(i) for i in range(start, stop)]
    body = PUBMED_HEADER + b"\n".join(server.synthetic_record(p) for p in pmids) + PUBMED_FOOTER
    records = [r for r in parse_pubmed_bytes(body) if isinstance(r, PubmedRecord)]
    if [r.pmid for r in records] != pmids:
        raise RuntimeError("synthetic records did not parse back to their PMIDs")
    return [{**study_values(r, raw_record_id=None), "id": start + k + 1, "created_at": stamp,
             "updated_at": stamp} for k, r in enumerate(records)]


def build(engines: Sequence[Engine], server: FakeEutils, plan: Plan) -> dict[str, Any]:
    """Fill each (migrated, empty) database with the plan's claims, studies and verdicts."""
    started = time.perf_counter()
    stamp = plan.now - timedelta(days=DECIDED_DAYS_AGO)
    common = {"created_at": stamp, "updated_at": stamp}
    _insert(engines, AppUser, [{**common, "id": 1, "username": "adjudicator",
                                "display_name": "Adjudicator", "role": "adjudicator"}])
    _insert(engines, CanonicalClaim, [
        {**common, "id": g + 1, "statement": s, "key": s.lower(), "category": "efficacy"}
        for g, s in enumerate(plan.statements)])
    articles: list[dict[str, Any]] = []
    claims: list[dict[str, Any]] = []
    for a in range(math.ceil(plan.claims / CLAIMS_PER_ARTICLE)):
        members = range(a * CLAIMS_PER_ARTICLE, min(plan.claims, (a + 1) * CLAIMS_PER_ARTICLE))
        body = f"Clinic post {a}\n\n"
        for c in members:
            sentence = plan.statements[c % plan.groups]
            claims.append({**common, "id": c + 1, "article_id": a + 1, "start": len(body),
                           "end": len(body) + len(sentence), "text": sentence,
                           "category": "efficacy", "checkworthiness": 0.9,
                           "canonical_id": c % plan.groups + 1, "canonical_score": 1.0,
                           "status": "final"})
            body += sentence + "\n\n"
        articles.append({**common, "id": a + 1, "source": f"https://clinic.example/post-{a}",
                         "title": f"Clinic post {a}", "text": body,
                         "sha256": f"{a:064x}", "fetched_at": stamp})
    _insert(engines, Article, articles)
    _insert(engines, Claim, claims)
    for start in range(0, plan.studies, PARSE_CHUNK):
        _insert(engines, Study,
                _study_rows(server, plan, start, min(plan.studies, start + PARSE_CHUNK), stamp))
    links = [{**common, "id": j + 1, "claim_id": plan.claim_of(j) + 1, "study_id": j + 1,
              "origin": "cited", "score": 5.0, "rank": 1, "fits": True}
             for j in range(plan.studies)]
    _insert(engines, EvidenceLink, links)
    _insert(engines, Assessment, [{**common, "id": j + 1, "link_id": j + 1, "reviewer_id": 1,
                                   "stance": "supports", "relevance": "high"}
                                  for j in range(plan.studies)])
    _insert(engines, Verdict, [
        {**common, "id": c + 1, "claim_id": c + 1, "canonical_claim_id": c % plan.groups + 1,
         "reviewer_id": 1, "kind": "final", "substantiation": "substantiated",
         "certainty": "moderate", "rationale": "benchmark", "submitted": True}
        for c in range(plan.claims)])
    for engine in engines:
        if engine.dialect.name == "postgresql":  # explicit ids: move the sequences on
            with engine.begin() as conn:
                for model in (AppUser, CanonicalClaim, Article, Claim, Study, EvidenceLink,
                              Assessment, Verdict):
                    name = model.__tablename__
                    conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                                      f"(SELECT max(id) FROM {name}))"))
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 2), "databases": len(engines),
            "studies_per_s": round(plan.studies / seconds, 1) if seconds else None,
            "articles": len(articles), "links": len(links)}


# ----------------------------------------------------------------------------- probe

_VERB_RE = re.compile(r"^\s*(SELECT|INSERT\s+INTO|UPDATE|DELETE\s+FROM)\b", re.IGNORECASE)
_TABLE_RE = {
    "SELECT": re.compile(r"\bFROM\s+\"?(\w+)", re.IGNORECASE),
    "INSERT": re.compile(r"^\s*INSERT\s+INTO\s+\"?(\w+)", re.IGNORECASE),
    "UPDATE": re.compile(r"^\s*UPDATE\s+\"?(\w+)", re.IGNORECASE),
    "DELETE": re.compile(r"^\s*DELETE\s+FROM\s+\"?(\w+)", re.IGNORECASE),
}


def statement_kind(statement: str) -> str:
    """``"UPDATE claim"``, ``"SELECT audit_event"``...: the verb and the first table."""
    verb = _VERB_RE.match(statement)
    if verb is None:
        return statement.split(None, 1)[0].upper() if statement.strip() else "?"
    word = verb.group(1).split()[0].upper()
    table = _TABLE_RE[word].search(statement)
    if table is None and word == "SELECT":  # no table: a function call (advisory lock)
        table = re.match(r"\s*SELECT\s+(\w+)", statement, re.IGNORECASE)
    return f"{word} {table.group(1) if table else '?'}"


class Probe:
    """Counts SQL statements and times the steps of one surveillance run."""

    def __init__(self, engine: Engine, plan: Plan) -> None:
        self.plan = plan
        self.linked: set[str] = set()  # the PMIDs linked to claims when the run starts
        self.active = False
        self.label = "other"
        self.reset()
        event.listen(engine, "before_cursor_execute", self._statement)

    def reset(self) -> None:
        """Forget everything counted."""
        self.read_statements = 0
        self.write_statements: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        self.step_kinds: Counter[tuple[str, str]] = Counter()
        self.load_linked_s = 0.0
        self.step_seconds: dict[str, float] = defaultdict(float)
        self.first_write: float | None = None
        self.parse_s = 0.0
        self.batch_ends: list[float] = []

    def _statement(self, conn: Any, _cursor: Any, statement: str, _params: Any,
                   _context: Any, _many: bool) -> None:
        if not self.active:
            return
        if conn.get_execution_options().get(db.READ_ONLY):
            self.read_statements += 1
            return
        if self.first_write is None:
            self.first_write = time.perf_counter()
        kind = statement_kind(statement)
        self.write_statements[self.label] += 1
        self.kinds[kind] += 1
        self.step_kinds[self.label, kind] += 1

    def _fetched_label(self, pmids: Sequence[str]) -> str:
        return ("store_new_records" if any(p and p not in self.linked for p in pmids)
                else "store_changed_records")

    def _label_for(self, name: str, args: tuple[Any, ...]) -> str:
        if name == "save_response":
            raw = args[1]
            if raw.utility != "efetch":
                return "store_search_responses"
            return self._fetched_label(str(raw.params.get("id", "")).split(","))
        if name == "upsert_studies":
            return self._fetched_label([r.pmid for r in args[1]])
        if name == "mark_deleted":
            return "store_changed_records"
        return {"reopen_for_changes": "reopen_claims", "link_new_evidence": "link_new_evidence",
                "expire_verdicts": "expire_verdicts"}[name]

    def _step(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            outer, self.label = self.label, self._label_for(name, args)
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.step_seconds[self.label] += time.perf_counter() - started
                self.label = outer
        return wrapper

    def _timed(self, fn: Callable[..., Any], slot: str) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                setattr(self, slot, getattr(self, slot) + time.perf_counter() - started)
        return wrapper

    @contextmanager
    def watching(self) -> Iterator[None]:
        """Count and time while the block runs (the functions are wrapped, not changed)."""
        targets = [(surveil_module, n) for n in ("save_response", "upsert_studies",
                                                 "mark_deleted")]
        targets += [(rules, n) for n in ("reopen_for_changes", "link_new_evidence",
                                         "expire_verdicts")]
        timed = {"parse_pubmed_bytes": "parse_s", "linked_studies": "load_linked_s"}
        saved = [(module, name, getattr(module, name)) for module, name in targets]
        saved += [(surveil_module, name, getattr(surveil_module, name)) for name in timed]
        for module, name, fn in saved:
            setattr(module, name, self._timed(fn, timed[name]) if name in timed
                    else self._step(name, fn))
        self.reset()
        self.active = True
        try:
            yield
        finally:
            self.active = False
            for module, name, fn in saved:
                setattr(module, name, fn)


# ----------------------------------------------------------------------------- runs


def _ratio(a: float, b: float, places: int = 3) -> float | None:
    return round(a / b, places) if b else None


def _by_utility(log: Sequence[RequestRecord]) -> dict[str, int]:
    return dict(sorted(Counter(r.utility for r in log).items()))


def _phase(log: Sequence[RequestRecord], minimum: int, wall: float | None,
           interval: float) -> dict[str, Any]:
    floor = len(log) * interval
    return {"requests": len(log), "by_utility": _by_utility(log), "minimum": minimum,
            "ratio": _ratio(len(log), minimum, 4), "target_ratio": TARGET_RATIO,
            "within_target": len(log) <= TARGET_RATIO * minimum,
            "wall_s": round(wall, 3) if wall is not None else None,
            "rate_limit_floor_s": round(floor, 3),
            "rate_limit_share": _ratio(floor, wall) if wall else None}


def _db_state(engine: Engine) -> dict[str, Any]:
    with db.read_session(engine) as s:
        return {
            "audit_max": s.exec(select(func.max(AuditEvent.id))).one() or 0,
            "raw": s.exec(select(func.count()).select_from(RawRecord)).one(),
            "raw_bytes": int(s.exec(select(func.sum(func.length(RawRecord.body)))).one() or 0),
            "raw_size": int(s.exec(select(func.sum(RawRecord.size))).one() or 0),
            "reopened": s.exec(select(func.count()).select_from(Claim).where(
                col(Claim.status) == "reopened")).one(),
        }


def _audit_since(engine: Engine, after: int) -> dict[str, int]:
    with db.read_session(engine) as s:
        rows = s.exec(select(AuditEvent.action, func.count()).where(col(AuditEvent.id) > after)
                      .group_by(col(AuditEvent.action))).all()
    return dict(sorted((action, int(n)) for action, n in rows))


def linked_pmids(engine: Engine) -> list[str]:
    """The PMIDs linked to claims, in the order surveillance posts them (all decided)."""
    with db.read_session(engine) as s:
        pmids = s.exec(select(Study.pmid).where(
            col(Study.id).in_(select(EvidenceLink.study_id)))).all()
    return sorted(pmids, key=int)


def since_minimum(plan: Plan, pmids: Sequence[str]) -> tuple[int, int]:
    """(strict minimum, minimum with one search and paged fetch per posted set)."""
    changed = set(plan.changed_pmids)
    chunks = [pmids[i:i + EPOST_BATCH] for i in range(0, len(pmids), EPOST_BATCH)]
    per_set = sum(2 + math.ceil(sum(p in changed for p in c) / plan.batch_size)
                  for c in chunks)
    strict = len(chunks) + 1 + math.ceil(len(changed) / plan.batch_size)
    return strict, per_set


def run_once(engine: Engine, server: FakeEutils, probe: Probe, plan: Plan, *,
             api_key: str | None, since: date | None, discover: bool,
             new_hits_unstored: int, expect_reopened: int) -> dict[str, Any]:
    """One surveillance run, described."""
    interval = KEY_INTERVAL if api_key else NO_KEY_INTERVAL
    client = EntrezClient(EMAIL, base_url=server.url, api_key=api_key)
    before = _db_state(engine)
    linked = linked_pmids(engine)
    probe.linked = set(linked)
    server.clear_log()

    def batch_done(_: int) -> None:
        probe.batch_ends.append(time.perf_counter())

    with probe.watching():
        started = time.perf_counter()
        report: SurveilReport = surveil(engine, client, since=since, discover=discover,
                                        now=plan.now, batch_size=plan.batch_size,
                                        on_batch=batch_done)
        finished = time.perf_counter()
    log = server.requests
    after = _db_state(engine)
    audit = _audit_since(engine, before["audit_max"])
    apply_start = probe.first_write or finished
    # Discovery starts with the first search by date added; re-fetching is all before it
    # (the server logs arrival times by time.monotonic: moved onto perf_counter's clock).
    first = next((k for k, r in enumerate(log)
                  if r.utility == "esearch" and r.param("datetype") == "edat"), len(log))
    refetch, found = log[:first], log[first:]
    offset = time.perf_counter() - time.monotonic()
    refetch_end = (log[first].time + offset if first < len(log)
                   else probe.batch_ends[-1] if probe.batch_ends else started)
    if first == len(log):  # no discovery: re-fetching ran until the apply phase
        refetch_end = apply_start
    if since is None:
        # Every linked record once, then the changed ones again, together, so their stored
        # response holds them alone.
        strict = math.ceil(len(linked) / plan.batch_size)
        refetch_min = strict + math.ceil(report.records_changed / plan.batch_size)
        refetch_phase = _phase(refetch, refetch_min, refetch_end - started, interval)
        refetch_phase["strict_minimum"] = strict
        refetch_phase["ratio_to_strict_minimum"] = _ratio(len(refetch), strict, 4)
    else:
        strict, per_set = since_minimum(plan, linked)
        refetch_phase = _phase(refetch, strict, refetch_end - started, interval)
        refetch_phase["minimum_per_posted_set"] = per_set
        refetch_phase["ratio_per_posted_set"] = _ratio(len(refetch), per_set, 4)
    fetch_wall = apply_start - started
    out: dict[str, Any] = {
        "since": report.since, "discover": discover,
        "wall_s": round(finished - started, 3),
        "requests": _by_utility(log),
        "requests_total": len(log),
        "requests_counted_by_surveil": sum(report.requests.values()),
        "refetch": refetch_phase,
        "discovery": (_phase(found, plan.groups + math.ceil(new_hits_unstored / plan.batch_size),
                             apply_start - refetch_end, interval) if discover else None),
        "fetch": {"wall_s": round(fetch_wall, 3),
                  "rate_limit_floor_s": round(len(log) * interval, 3),
                  "rate_limit_share": _ratio(len(log) * interval, fetch_wall),
                  "parse_s": round(probe.parse_s, 3),
                  "parse_share": _ratio(probe.parse_s, fetch_wall),
                  "load_linked_studies_s": round(probe.load_linked_s, 3),
                  "read_statements": probe.read_statements},
        "server": {"max_requests_in_1s": server.max_rate(1.0),
                   "rate_violations": server.rate_violations(10 if api_key else 3)},
        "counts": report.counts(),
    }
    changed = len(report.changes)
    steps = dict(sorted(probe.write_statements.items()))
    per_changed = ("store_changed_records", "reopen_claims")
    changed_statements = sum(probe.write_statements[s] for s in per_changed)
    changed_seconds = sum(probe.step_seconds.get(s, 0.0) for s in per_changed)
    changed_audit = sum(probe.step_kinds[s, "INSERT audit_event"] for s in per_changed)
    links = len(report.new_evidence)
    apply_s = finished - apply_start
    out["apply"] = {
        "seconds": round(apply_s, 3),
        "share_of_wall": _ratio(apply_s, finished - started),
        "statements": sum(steps.values()),
        "statements_by_step": steps,
        "seconds_by_step": {k: round(v, 3) for k, v in sorted(probe.step_seconds.items())},
        "statements_by_kind": dict(probe.kinds.most_common()),
        "changed_records": changed,
        "statements_per_changed_record": _ratio(changed_statements, changed, 2),
        "seconds_per_changed_record": _ratio(changed_seconds, changed, 4),
        "per_changed_record_covers": list(per_changed),
        "audit_events": audit,
        "audit_events_total": sum(audit.values()),
        "audit_events_per_changed_record": _ratio(changed_audit, changed, 2),
        "statements_per_new_link": _ratio(probe.write_statements["link_new_evidence"], links,
                                          2),
        "seconds_per_new_link": _ratio(probe.step_seconds.get("link_new_evidence", 0.0), links, 4),
        "raw_responses_stored": after["raw"] - before["raw"],
        "raw_bytes_stored": after["raw_bytes"] - before["raw_bytes"],
        "raw_bytes_uncompressed": after["raw_size"] - before["raw_size"],
        "raw_bytes_per_changed_record": _ratio(after["raw_bytes"] - before["raw_bytes"],
                                               changed, 0),
        "claims_reopened": len(report.reopened),
        "claims_reopened_expected": expect_reopened,
        "claims_reopened_in_db": after["reopened"] - before["reopened"],
        "new_evidence_links": len(report.new_evidence),
    }
    return out


# ----------------------------------------------------------------------------- databases


@contextmanager
def databases(url: str | None, tmp: Path, count: int) -> Iterator[tuple[str, list[str]]]:
    """``count`` fresh database URLs: SQLite files, or new schemas of a PostgreSQL server."""
    if url is None:
        yield "sqlite", [f"sqlite:///{tmp / f'surveil{k}.db'}" for k in range(count)]
        return
    base = make_url(url).difference_update_query(["options"])
    admin = create_engine(base)
    schemas = [f"surveil_{uuid.uuid4().hex[:12]}" for _ in range(count)]
    with admin.begin() as conn:
        for schema in schemas:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield "postgresql", [base.update_query_dict({"options": f"-csearch_path={s}"})
                             .render_as_string(hide_password=False) for s in schemas]
    finally:
        with admin.begin() as conn:
            for schema in schemas:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def peak_rss_mb() -> float:
    """The process's peak resident memory so far, in MB (Linux reports KB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _progress(message: str) -> None:
    print(f"[surveillance] {message}", file=sys.stderr, flush=True)


def measure(*, studies: int, claims: int, groups: int, changed_share: float,
            new_evidence_share: float, batch_size: int, discover: bool, api_key: bool,
            database_url: str | None) -> dict[str, Any]:
    """Build, run the three surveillance runs and return the report ``main`` prints."""
    plan = make_plan(studies=studies, claims=claims, groups=groups,
                     changed_share=changed_share, new_evidence_share=new_evidence_share,
                     batch_size=batch_size, discover=discover)
    key = BENCH_KEY if api_key else None
    result: dict[str, Any] = {"benchmark": "surveillance"}
    started = time.perf_counter()
    with (tempfile.TemporaryDirectory(prefix="surveil-bench-") as tmp,
          FakeEutils(SHARED / "fixtures") as server,
          databases(database_url, Path(tmp), 2) as (backend, urls)):
        engines = [db.make_engine(u) for u in urls]
        try:
            for engine in engines:
                db.upgrade(engine)
            prepare_server(server, plan)
            _progress(f"building {studies} studies, {claims} claims on {backend}")
            built = build(engines, server, plan)
            built["peak_rss_mb"] = peak_rss_mb()
            main_db, since_db = engines
            probe = Probe(main_db, plan)
            since_probe = Probe(since_db, plan)
            expected = plan.expected_reopened
            _progress("full run")
            full = run_once(main_db, server, probe, plan, api_key=key, since=None,
                            discover=discover, new_hits_unstored=len(plan.new_hit_groups),
                            expect_reopened=expected)
            full["peak_rss_mb_after"] = peak_rss_mb()
            _progress("repeat run")
            repeat = run_once(main_db, server, probe, plan, api_key=key, since=None,
                              discover=discover, new_hits_unstored=0, expect_reopened=0)
            _progress("since run")
            since_day = plan.now.astimezone(UTC).date() - timedelta(days=SINCE_DAYS)
            since_run = run_once(since_db, server, since_probe, plan, api_key=key,
                                 since=since_day, discover=False, new_hits_unstored=0,
                                 expect_reopened=expected)
        finally:
            for engine in engines:
                engine.dispose()
    result.update({
        "database": backend,
        "api_key": api_key,
        "rate_limit_per_s": 10 if api_key else 3,
        "min_interval_s": KEY_INTERVAL if api_key else NO_KEY_INTERVAL,
        "note": ("with an API key (10 requests/s) to keep the run short" if api_key
                 else "without an API key (3 requests/s)"),
        "sizes": {"studies": studies, "claims": claims, "groups": groups,
                  "claims_per_group": round(claims / groups, 2),
                  "links": built["links"], "articles": built["articles"],
                  "changed_studies": len(plan.changed),
                  "new_evidence_groups": len(plan.new_hit_groups),
                  "batch_size": batch_size, "epost_batch": EPOST_BATCH},
        "build": built,
        "full_run": full,
        "repeat_run": repeat,
        "since_run": since_run,
    })
    checks = {
        "refetch_within_target": full["refetch"]["within_target"],
        "discovery_within_target": (full["discovery"]["within_target"]
                                    if full["discovery"] else None),
        "since_within_target": since_run["refetch"]["within_target"],
        "no_rate_violations": all(r["server"]["rate_violations"] == 0
                                  for r in (full, repeat, since_run)),
        "claims_reopened_as_expected": (
            full["apply"]["claims_reopened"] == expected
            and since_run["apply"]["claims_reopened"] == expected
            and repeat["apply"]["claims_reopened"] == 0),
        "requests_counted_alike": all(r["requests_total"] == r["requests_counted_by_surveil"]
                                      for r in (full, repeat, since_run)),
    }
    fa, ra, sa = full["apply"], repeat["apply"], since_run["apply"]
    result["summary"] = {
        "refetch_requests_vs_minimum": full["refetch"]["ratio"],
        "discovery_requests_vs_minimum": (full["discovery"]["ratio"]
                                          if full["discovery"] else None),
        "since_requests_vs_minimum": since_run["refetch"]["ratio"],
        "since_requests_vs_minimum_per_posted_set": since_run["refetch"][
            "ratio_per_posted_set"],
        "fetch_wall_s": full["fetch"]["wall_s"],
        "fetch_rate_limit_share": full["fetch"]["rate_limit_share"],
        "refetch_rate_limit_share": full["refetch"]["rate_limit_share"],
        "discovery_rate_limit_share": (full["discovery"]["rate_limit_share"]
                                       if full["discovery"] else None),
        "peak_rss_mb_build": built["peak_rss_mb"],
        "peak_rss_mb_after_full_run": full["peak_rss_mb_after"],
        "apply_s": fa["seconds"],
        "apply_s_vs_quiet_run": _ratio(fa["seconds"], ra["seconds"], 2),
        "apply_statements_per_changed_record": fa["statements_per_changed_record"],
        "apply_ms_per_changed_record": (round(fa["seconds_per_changed_record"] * 1000, 2)
                                        if fa["seconds_per_changed_record"] else None),
        "audit_events_per_changed_record": fa["audit_events_per_changed_record"],
        "raw_bytes_uncompressed_per_changed_record": _ratio(
            fa["raw_bytes_uncompressed"] - ra["raw_bytes_uncompressed"],
            fa["changed_records"], 0),
        "apply_statements_per_new_link": fa["statements_per_new_link"],
        "apply_ms_per_new_link": (round(fa["seconds_per_new_link"] * 1000, 2)
                                  if fa["seconds_per_new_link"] else None),
        "since_apply_statements_per_changed_record": sa["statements_per_changed_record"],
        "quiet_run_apply_statements": ra["statements"],
        "baselines": "requests: the minimum the batch sizes allow; wall time: requests x "
                     "the client's minimum interval; apply: the repeat run over the same "
                     "database with nothing changed (the quiet run)",
    }
    result["checks"] = checks
    result["ok"] = all(v is not False for v in checks.values())
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its JSON report; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--studies", type=int, help=f"default {DEFAULTS['studies']}")
    parser.add_argument("--claims", type=int, help=f"default {DEFAULTS['claims']}")
    parser.add_argument("--groups", type=int,
                        help=f"canonical claims (default {DEFAULTS['groups']})")
    parser.add_argument("--changed-share", type=float,
                        help="share of the studies retracted on the server (default "
                             f"{DEFAULTS['changed_share']})")
    parser.add_argument("--new-evidence-share", type=float,
                        help="share of the canonical claims with a new trial to find "
                             f"(default {DEFAULTS['new_evidence_share']})")
    parser.add_argument("--batch-size", type=int,
                        help=f"PMIDs per efetch (default {DEFAULTS['batch_size']})")
    parser.add_argument("--no-discover", action="store_true", help="skip discovery")
    parser.add_argument("--no-api-key", action="store_true",
                        help="run at 3 requests/s (no API key) instead of 10/s")
    parser.add_argument("--database-url",
                        help="a PostgreSQL server to run on (in temporary schemas, dropped "
                             "afterwards) instead of temporary SQLite files")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, for a test (options given still apply): "
                             + json.dumps(QUICK))
    args = parser.parse_args(argv)
    sizes = {**DEFAULTS, **(QUICK if args.quick else {}),
             **{k: v for k, v in vars(args).items() if k in DEFAULTS and v is not None}}
    problem = None
    if not (SHARED / "fixtures").is_dir():
        problem = f"{SHARED / 'fixtures'} is absent"
    elif not sizes["studies"] >= sizes["claims"] >= sizes["groups"] >= 1:
        problem = "need studies >= claims >= groups >= 1"
    elif not 1 <= sizes["batch_size"] <= 200:
        problem = "--batch-size must be 1 to 200"
    elif args.database_url and make_url(args.database_url).get_backend_name() != "postgresql":
        problem = "--database-url takes a PostgreSQL URL (SQLite runs use temporary files)"
    if problem:
        print(json.dumps({"benchmark": "surveillance", "error": problem}))
        return 2
    report = measure(studies=int(sizes["studies"]), claims=int(sizes["claims"]),
                     groups=int(sizes["groups"]), changed_share=float(sizes["changed_share"]),
                     new_evidence_share=float(sizes["new_evidence_share"]),
                     batch_size=int(sizes["batch_size"]), discover=not args.no_discover,
                     api_key=not args.no_api_key, database_url=args.database_url)
    print(json.dumps(report, allow_nan=False))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
