"""Roles are enforced against the database: forged, unknown, deactivated and demoted users.

The library tests run on SQLite and on PostgreSQL (the ``engine`` / ``session`` fixtures);
the CLI tests run the real command line in-process on the default SQLite database.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from evidence import config, crud, queries, review
from evidence.errors import InputError, PermissionDenied
from evidence.models import AppUser, AuditEvent, Claim
from tests._cli import run_cli as _cli
from tests.factories import (
    make_canonical,
    make_claim,
    make_link,
    make_study,
    make_user,
    make_verdict,
)

VERDICT = {"substantiation": "substantiated", "certainty": "moderate", "action": "approve",
           "rationale": "read the trial"}

Write = Callable[[Any], object]


def _n_events(session: Session) -> int:
    return len(session.exec(select(AuditEvent.id)).all())


def _actors(session: Session, action: str) -> list[str]:
    return list(session.exec(select(AuditEvent.actor).where(AuditEvent.action == action)
                             .order_by(col(AuditEvent.id))).all())


def _every_write(session: Session) -> dict[str, Write]:
    """Every write that needs a role, each as ``write(acting_user)``."""
    group = make_canonical(session)
    claim = make_claim(session, canonical_id=group.id)
    sibling = make_claim(session, canonical_id=group.id)
    other_group = make_canonical(session, statement="ketamine is safe")
    link = make_link(session, claim=claim)
    study = make_study(session, pmid="90000701")
    author = make_user(session, username="author", role="adjudicator")
    verdict = make_verdict(session, claim=claim, reviewer=author, kind="final",
                           canonical_claim_id=group.id)
    target = make_user(session, username="target", role="reviewer")
    session.commit()
    assert claim.id and sibling.id and link.id and target.id and verdict.id
    assert group.id and other_group.id
    c, s, g, og, t, v = claim.id, sibling.id, group.id, other_group.id, target.id, verdict.id
    link_id, pmid = link.id, study.pmid
    return {
        "save_assessment": lambda u: review.save_assessment(
            session, user=u, link_id=link_id, stance="supports"),
        "save_verdict": lambda u: review.save_verdict(session, user=u, claim_id=c, **VERDICT),
        "save_final_verdict": lambda u: review.save_final_verdict(
            session, user=u, claim_id=c, expected_version=1, **VERDICT),
        "apply_verdict_to_group": lambda u: review.apply_verdict_to_group(
            session=session, user=u, verdict_id=v, expected_version=1),
        "merge_groups": lambda u: review.merge_groups(session=session, user=u, source_id=g,
                                                      target_id=og),
        "split_claim": lambda u: review.split_claim(session=session, user=u, claim_id=s,
                                                    expected_version=1),
        "add_claim_source": lambda u: review.add_claim_source(
            session, user=u, claim_id=c, kind="drug_label", url="https://label.example/k"),
        "add_manual_link": lambda u: review.add_manual_link(session, user=u, claim_id=c,
                                                            pmid=pmid),
        "require_reviewer": lambda u: review.require_reviewer(session, u),
        "review.add_user": lambda u: review.add_user(
            session, actor=u, username="mallory", role="admin", password="long enough pw"),
        "review.set_role": lambda u: review.set_role(
            session, actor=u, user_id=t, role="admin", expected_version=1),
        "crud.add_user": lambda u: crud.add_user(
            session=session, actor=u, username="mallory", role="admin", password=None),
        "crud.set_user_role": lambda u: crud.set_user_role(
            session=session, actor=u, user_id=t, role="admin", expected_version=1),
        "crud.set_user_active": lambda u: crud.set_user_active(
            session=session, actor=u, user_id=t, active=False, expected_version=1),
        "crud.edit_claim": lambda u: crud.edit_claim(
            session=session, user=u, claim_id=c, expected_version=1, status="final"),
        "crud.regroup_claim": lambda u: crud.regroup_claim(
            session=session, user=u, claim_id=s, canonical_id=og, expected_version=1),
    }


WRITES = ["save_assessment", "save_verdict", "save_final_verdict", "apply_verdict_to_group",
          "merge_groups", "split_claim", "add_claim_source", "add_manual_link",
          "require_reviewer", "review.add_user", "review.set_role", "crud.add_user",
          "crud.set_user_role", "crud.set_user_active", "crud.edit_claim",
          "crud.regroup_claim"]
ADMIN_WRITES = ["save_final_verdict", "review.add_user", "review.set_role", "crud.add_user",
                "crud.set_user_role", "crud.set_user_active", "crud.edit_claim"]


def _refused(session: Session, write: Write, user: object, match: str,
             name: str = "the write") -> None:
    """``write(user)`` raises ``PermissionDenied`` matching ``match`` and writes nothing."""
    before = _n_events(session)
    try:
        write(user)
    except PermissionDenied as e:
        assert re.search(match, str(e)), f"{name}: {e}"
    else:
        pytest.fail(f"{name} was not refused")
    session.rollback()
    assert _n_events(session) == before, name


# --------------------------------------------------------------------------- library


def test_a_forged_admin_object_with_a_viewers_id_is_refused(session: Session) -> None:
    writes = _every_write(session)
    vera = make_user(session, username="vera", role="viewer")
    session.commit()
    forged = AppUser(id=vera.id, username="root", role="admin", active=True)
    for name in ADMIN_WRITES:
        # The role and name are read from vera's row, not from the object ...
        _refused(session, writes[name], forged, "^vera is a viewer; this needs the role",
                 name)
        session.expunge_all()  # ... also by a session that has never loaded her
        _refused(session, writes[name], forged, "^vera is a viewer; this needs the role",
                 name)


def test_a_deactivated_user_is_refused_every_write(session: Session) -> None:
    writes = _every_write(session)
    gone = make_user(session, username="gone", role="admin")  # the role would allow it all
    root = make_user(session, username="root", role="admin")
    session.commit()
    assert gone.id is not None
    gone_id = gone.id
    crud.set_user_active(session=session, user_id=gone_id, active=False, expected_version=1,
                         actor=root)
    session.commit()
    stale = AppUser(id=gone_id, username="gone", role="admin", active=True)
    for name in WRITES:
        _refused(session, writes[name], stale, "^gone is deactivated$", name)
        _refused(session, writes[name], gone_id, "^gone is deactivated$", name)


def test_no_user_an_unknown_id_and_an_unsaved_user_are_refused(session: Session) -> None:
    writes = _every_write(session)
    for name in WRITES:
        _refused(session, writes[name], None, "^sign in first$", name)
        _refused(session, writes[name], 999999, "^user 999999 does not exist$", name)
        _refused(session, writes[name], AppUser(id=999999, username="x", role="admin"),
                 "^user 999999 does not exist$", name)
        _refused(session, writes[name], AppUser(username="x", role="admin"),
                 "not a stored user", name)


def test_audit_names_the_stored_username_not_the_objects(session: Session) -> None:
    writes = _every_write(session)
    root = make_user(session, username="root", role="admin")
    session.commit()
    disguised = AppUser(id=root.id, username="somebody else", role="viewer")
    writes["crud.edit_claim"](disguised.id)
    writes["save_final_verdict"](disguised)
    writes["crud.add_user"](disguised)
    session.commit()
    assert _actors(session, "verdict.update") == ["root"]
    assert _actors(session, "user.add") == ["root"]
    assert _actors(session, "claim.edit") == ["root"]


def test_a_role_change_in_another_session_counts_at_the_next_write(engine: Engine) -> None:
    with Session(engine) as setup:
        claim = make_claim(setup)
        root = make_user(setup, username="root", role="admin")
        make_user(setup, username="rita", role="reviewer")
        setup.commit()
        claim_id, root_id = claim.id, root.id
    assert claim_id is not None and root_id is not None

    def set_role(role: str) -> None:  # an admin, in a transaction of their own
        with Session(engine) as admin:
            rita = crud.find_user(admin, username="rita")
            assert rita is not None and rita.id is not None
            crud.set_user_role(session=admin, user_id=rita.id, role=role,
                               expected_version=rita.version, actor=root_id)
            admin.commit()

    # The app's flow: the user is loaded once (and kept), then the writes follow.
    with Session(engine, expire_on_commit=False) as sign_in:
        rita = crud.find_user(sign_in, username="rita")
    assert rita is not None and rita.role == "reviewer"
    with Session(engine, expire_on_commit=False) as page:
        review.save_verdict(page, user=rita, claim_id=claim_id, **VERDICT)
        page.commit()
        set_role("viewer")
        assert rita.role == "reviewer"  # the object the page holds is stale
        with pytest.raises(PermissionDenied, match="^rita is a viewer"):
            review.save_verdict(page, user=rita, claim_id=claim_id, expected_version=1,
                                **{**VERDICT, "action": "revise_wording"})
        page.rollback()
        with Session(engine) as fresh, pytest.raises(PermissionDenied, match="rita is a viewer"):
            review.save_verdict(fresh, user=rita, claim_id=claim_id, expected_version=1,
                                **VERDICT)
        set_role("reviewer")
        review.save_verdict(page, user=rita, claim_id=claim_id, expected_version=1,
                            **{**VERDICT, "action": "revise_wording"})
        page.commit()
    with Session(engine) as check:
        assert queries.verdicts(check)["action"].tolist() == ["revise_wording"]
        assert _actors(check, "verdict.update") == ["rita"]


def test_postgresql_holds_the_acting_users_row_until_the_write_commits(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite writers hold the database's write lock: a role change waits anyway")
    with Session(engine) as setup:
        claim = make_claim(setup)
        root = make_user(setup, username="root", role="admin")
        rita = make_user(setup, username="rita", role="reviewer")
        setup.commit()
        claim_id, root_id, rita_id = claim.id, root.id, rita.id
    assert claim_id is not None and rita_id is not None

    def demote(*, wait: bool) -> None:
        with Session(engine) as admin:
            if not wait:
                admin.execute(text("SET LOCAL lock_timeout = '100ms'"))
            crud.set_user_role(session=admin, user_id=rita_id, role="viewer",
                               expected_version=1, actor=root_id)
            admin.commit()

    with Session(engine) as writing:
        review.save_verdict(writing, user=rita_id, claim_id=claim_id, **VERDICT)
        # The verdict is not committed yet: the demotion must wait for it, at rita's row
        # (not only later, at the audit trail's lock).
        with pytest.raises(OperationalError, match="lock timeout") as blocked:
            demote(wait=False)
        assert str(blocked.value.statement).startswith("UPDATE app_user")
        writing.commit()
    demote(wait=True)  # once the write is committed the role change goes through
    with Session(engine) as check:
        assert check.get(AppUser, rita_id).role == "viewer"  # type: ignore[union-attr]
        assert _actors(check, "verdict.create") == ["rita"]


def test_edit_claim_status_needs_an_adjudicator(session: Session) -> None:
    claim = make_claim(session)
    rita = make_user(session, username="rita", role="reviewer")
    ada = make_user(session, username="ada", role="adjudicator")
    session.commit()
    assert claim.id is not None
    with pytest.raises(PermissionDenied, match="^rita is a reviewer; this needs the role "
                                               "adjudicator$"):
        crud.edit_claim(session=session, user=rita, claim_id=claim.id, expected_version=1,
                        status="final")
    session.rollback()
    crud.edit_claim(session=session, user=rita, claim_id=claim.id, expected_version=1,
                    category="safety")
    with pytest.raises(InputError, match="unknown claim status 'done'"):
        crud.edit_claim(session=session, user=ada, claim_id=claim.id, expected_version=2,
                        status="done")
    edited = crud.edit_claim(session=session, user=ada, claim_id=claim.id,
                             expected_version=2, status="final")
    session.commit()
    assert (edited.category, edited.status) == ("safety", "final")
    assert _actors(session, "claim.edit") == ["rita", "ada"]


def test_the_first_user_needs_no_actor_and_must_be_an_admin(session: Session) -> None:
    # The app never bootstraps (the first admin comes from `ensure_first_admin`).
    _refused(session, lambda u: review.add_user(session, actor=u, username="root",
                                                role="admin", password=None),
             None, "^sign in first$")
    with pytest.raises(PermissionDenied, match="first user must be an admin, not a reviewer"):
        crud.add_user(session=session, actor=None, username="rita", role="reviewer",
                      password=None)
    session.rollback()
    root = crud.add_user(session=session, actor=None, username="root", role="admin",
                         password=None)
    session.commit()
    _refused(session, lambda u: crud.add_user(session=session, actor=u, username="eve",
                                              role="admin", password=None),
             None, "^sign in first$")
    vera = crud.add_user(session=session, actor=root, username="vera", role="viewer",
                         password=None)
    session.commit()
    _refused(session, lambda u: crud.add_user(session=session, actor=u, username="eve",
                                              role="admin", password=None),
             vera, "^vera is a viewer; this needs the role admin$")
    assert _actors(session, "user.add") == [crud.SYSTEM, "root"]


def test_the_last_active_admin_stays(session: Session) -> None:
    root = make_user(session, username="root", role="admin")
    ada = make_user(session, username="ada", role="admin")
    session.commit()
    assert root.id is not None and ada.id is not None
    crud.set_user_active(session=session, user_id=ada.id, active=False, expected_version=1,
                         actor=root)
    session.commit()
    assert crud.authenticate(session=session, username="ada", password="correct horse battery"
                             ) is None
    for change in (
        lambda: crud.set_user_role(session=session, user_id=root.id, role="viewer",  # type: ignore[arg-type]
                                   expected_version=1, actor=root),
        lambda: crud.set_user_active(session=session, user_id=root.id, active=False,  # type: ignore[arg-type]
                                     expected_version=1, actor=root),
    ):
        with pytest.raises(InputError, match="last active admin"):
            change()
        session.rollback()
    crud.set_user_active(session=session, user_id=ada.id, active=True, expected_version=2,
                         actor=root)
    session.commit()
    with pytest.raises(InputError, match="your own account"):  # even with another admin
        crud.set_user_active(session=session, user_id=root.id, active=False,
                             expected_version=1, actor=root)
    session.rollback()
    crud.set_user_role(session=session, user_id=root.id, role="viewer", expected_version=1,
                       actor=root)
    session.commit()
    assert _actors(session, "user.deactivate") == ["root"]
    assert _actors(session, "user.activate") == ["root"]
    assert crud.authenticate(session=session, username="ada", password="correct horse battery"
                             ) is not None


# --------------------------------------------------------------------------- CLI



def _engine() -> Engine:
    from evidence import db

    return db.get_engine()


def _usernames() -> dict[str, tuple[str, bool]]:
    with Session(_engine()) as s:
        return {u.username: (u.role, u.active) for u in s.exec(select(AppUser)).all()}


@pytest.fixture
def pw(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("NEW_PW", "long enough pw")
    return ["--password-env", "NEW_PW"]


def test_cli_bootstraps_the_first_admin_then_needs_as(monkeypatch, capsys, pw) -> None:
    monkeypatch.setenv("SUBSTANTIATE_USER", "root")  # configured ahead: no one to act yet
    config.reset_settings()
    code, _, err = _cli(monkeypatch, capsys, "users", "add", "rita", "--role", "reviewer", *pw)
    assert (code, err.strip()) == (
        1, "error: there are no users yet: the first user must be an admin, not a reviewer")
    code, out, err = _cli(monkeypatch, capsys, "users", "add", "root", "--role", "admin", *pw)
    assert (code, out.strip()) == (0, "added root (admin)"), err
    monkeypatch.delenv("SUBSTANTIATE_USER")
    config.reset_settings()
    code, _, err = _cli(monkeypatch, capsys, "users", "add", "eve", "--role", "admin", *pw)
    assert (code, err.strip()) == (
        1, "error: this command acts as a user: pass --as USER or set SUBSTANTIATE_USER")
    assert set(_usernames()) == {"root"}


def test_cli_as_an_unknown_user_or_a_viewer_writes_nothing(monkeypatch, capsys, pw) -> None:
    _cli(monkeypatch, capsys, "users", "add", "root", "--role", "admin", *pw)
    code, out, err = _cli(monkeypatch, capsys, "--as", "root", "users", "add", "vera",
                          "--role", "viewer", *pw)
    assert (code, out.strip()) == (0, "added vera (viewer)"), err
    code, _, err = _cli(monkeypatch, capsys, "--as", "ghost", "users", "add", "eve", *pw)
    assert (code, err.strip()) == (1, "error: no user named 'ghost' (--as / SUBSTANTIATE_USER)")
    code, _, err = _cli(monkeypatch, capsys, "--as", "vera", "users", "add", "eve",
                        "--role", "admin", *pw)
    assert (code, err.strip()) == (1, "error: vera is a viewer; this needs the role admin")
    code, _, err = _cli(monkeypatch, capsys, "--as", "vera", "users", "role", "vera", "admin")
    assert (code, err.strip()) == (1, "error: vera is a viewer; this needs the role admin")
    # No password prompt for a refused user: the refusal comes first (stdin is never read).
    code, _, err = _cli(monkeypatch, capsys, "--as", "vera", "users", "add", "eve")
    assert (code, err.strip()) == (1, "error: vera is a viewer; this needs the role admin")
    assert _usernames() == {"root": ("admin", True), "vera": ("viewer", True)}


def test_cli_admin_manages_roles_and_deactivation(monkeypatch, capsys, pw) -> None:
    _cli(monkeypatch, capsys, "users", "add", "root", "--role", "admin", *pw)
    monkeypatch.setenv("SUBSTANTIATE_USER", "root")  # the setting instead of --as
    config.reset_settings()
    code, out, err = _cli(monkeypatch, capsys, "users", "add", "rita", "--role", "viewer", *pw)
    assert code == 0, err
    code, out, err = _cli(monkeypatch, capsys, "users", "role", "rita", "reviewer")
    assert (code, out.strip()) == (0, "rita is now a reviewer"), err
    code, out, err = _cli(monkeypatch, capsys, "users", "deactivate", "rita")
    assert (code, out.strip()) == (0, "rita is now deactivated"), err
    code, _, err = _cli(monkeypatch, capsys, "--as", "rita", "users", "activate", "rita")
    assert (code, err.strip()) == (1, "error: rita is deactivated")
    code, _, err = _cli(monkeypatch, capsys, "users", "deactivate", "root")
    assert code == 1 and "last active admin" in err
    code, _, err = _cli(monkeypatch, capsys, "users", "role", "nobody", "admin")
    assert (code, err.strip()) == (1, "error: no user named 'nobody'")
    code, out, err = _cli(monkeypatch, capsys, "users", "activate", "rita")
    assert (code, out.strip()) == (0, "rita is now active"), err
    assert _usernames() == {"root": ("admin", True), "rita": ("reviewer", True)}
    with Session(_engine()) as s:
        assert _actors(s, "user.role") == ["root"]
        assert _actors(s, "user.add") == [crud.SYSTEM, "root"]


def test_cli_claims_regroup_acts_as_a_reviewer(monkeypatch, capsys, pw,
                                                tmp_path: Path) -> None:
    post = tmp_path / "post.txt"
    post.write_text("Ketamine clinic\nKetamine relieves depression within hours.\n"
                    "Most patients report minimal side effects.\n")
    assert _cli(monkeypatch, capsys, "ingest", "articles", str(post))[0] == 0
    _cli(monkeypatch, capsys, "users", "add", "root", "--role", "admin", *pw)
    _cli(monkeypatch, capsys, "--as", "root", "users", "add", "vera", "--role", "viewer", *pw)
    _cli(monkeypatch, capsys, "--as", "root", "users", "add", "rita", "--role", "reviewer", *pw)
    with Session(_engine()) as s:
        claim = s.exec(select(Claim).order_by(col(Claim.id))).first()
        assert claim is not None
        claim_id = str(claim.id)
    args = ["claims", "regroup", claim_id, "--new-statement", "ketamine works fast"]
    code, _, err = _cli(monkeypatch, capsys, *args)
    assert (code, err.strip()) == (
        1, "error: this command acts as a user: pass --as USER or set SUBSTANTIATE_USER")
    code, _, err = _cli(monkeypatch, capsys, "--as", "vera", *args)
    assert (code, err.strip()) == (1, "error: vera is a viewer; this needs the role reviewer "
                                      "or adjudicator")
    with Session(_engine()) as s:
        assert _actors(s, "claim.regroup") == []
    code, out, err = _cli(monkeypatch, capsys, "--as", "rita", *args)
    assert code == 0, err
    with Session(_engine()) as s:
        assert _actors(s, "claim.regroup") == ["rita"]
