"""What every screen shares: the database, the signed-in user, and safe text display.

Text that comes from outside (articles, titles, abstracts, notes, usernames) is never given
to Streamlit as HTML. It is shown through ``md_escape`` / ``highlight``, which escape every
Markdown and HTML special character before adding the few Markdown marks the screen needs.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

import streamlit as st
from sqlalchemy import Engine
from sqlmodel import Session

from evidence import db, queries
from evidence.config import get_settings
from evidence.errors import StaleWrite, SubstantiateError
from evidence.models import AppUser

# Shared session-state keys (every page-only key starts with its page's name instead).
USER_KEY = "user_id"
CLAIM_KEY = "claim_id"
QUEUE_FILTERS_KEY = "queue_filters"
FLASH_KEY = "flash"
PAGE_KEY = "current_page"
PREVIOUS_PAGE_KEY = "previous_page"

QUEUE_PAGE = "app_pages/queue.py"
CLAIM_PAGE = "app_pages/claim.py"
ADJUDICATION_PAGE = "app_pages/adjudication.py"

_MD_SPECIAL = frozenset(string.punctuation)

# Set this to a function that fetches one PMID from PubMed into the database (in its own
# transactions, e.g. ``lambda pmid: ingest.pubmed.fetch_studies(engine, client, [pmid])``)
# and "Add a study by PMID" fetches unknown PMIDs itself before linking them. Left unset,
# an unknown PMID is refused with the command that fetches it.
FETCH_STUDY: Callable[[str], object] | None = None


# --------------------------------------------------------------------------- database


@st.cache_resource(show_spinner="Opening the database…")
def _engine(url: str) -> Engine:
    # Keyed on the URL so a changed DATABASE_URL gets its own engine; the schema is
    # created or upgraded once per engine, before any screen reads it.
    engine = db.get_engine()
    db.upgrade(engine)
    return engine


def engine() -> Engine:
    """The app's engine for the configured database, schema upgraded."""
    return _engine(get_settings().effective_database_url)


@contextmanager
def reading() -> Iterator[Session]:
    """A short read-only session (``db.read_session``: it never takes the write lock)."""
    with db.read_session(engine()) as session:
        yield session


@contextmanager
def writing() -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with db.session_scope(engine()) as session:
        yield session


# --------------------------------------------------------------------------- users


def sso_providers() -> list[str | None]:
    """The OIDC providers configured in ``st.secrets["auth"]`` (``[None]``: the default one).

    Empty when there is no secrets file or no ``[auth]`` section: SSO is then not offered.
    """
    try:
        auth = st.secrets["auth"] if "auth" in st.secrets else None
    except (FileNotFoundError, KeyError):
        return []
    if not isinstance(auth, Mapping):
        return []
    named = [str(k) for k, v in auth.items() if isinstance(v, Mapping)]
    if named:
        return list(named)
    return [None] if "client_id" in auth else []


def sso_identity() -> tuple[str | None, str | None] | None:
    """``(subject, email)`` of the SSO-signed-in person, or ``None``."""
    if not sso_providers() or not st.user.get("is_logged_in"):
        return None
    sub, email = st.user.get("sub"), st.user.get("email")
    return (str(sub) if sub else None, str(email) if email else None)


def current_user() -> AppUser | None:
    """The signed-in, active user (password or SSO), or ``None``."""
    with reading() as session:
        user_id = st.session_state.get(USER_KEY)
        if user_id is not None:
            user = queries.get_user(session, int(user_id))
            if user is None:
                del st.session_state[USER_KEY]
            return user
        identity = sso_identity()
        if identity is not None:
            user = queries.user_for_oidc(session, subject=identity[0], email=identity[1])
            if user is not None:
                st.session_state[USER_KEY] = user.id
            return user
    return None


def require_user() -> AppUser:
    """The signed-in user; a page that needs one stops here otherwise."""
    user = current_user()
    if user is None:
        st.warning("Sign in first.")
        st.stop()
    return user


def sign_out() -> None:
    """Forget the signed-in user (and end the SSO session when there is one)."""
    for key in list(st.session_state.keys()):
        del st.session_state[key]
    if sso_identity() is not None:
        st.logout()


# --------------------------------------------------------------------------- navigation


def open_claim(claim_id: int) -> NoReturn:
    """Show a claim on the claim screen."""
    st.session_state[CLAIM_KEY] = int(claim_id)
    st.switch_page(CLAIM_PAGE, query_params={"claim": str(claim_id)})


def entered_page() -> bool:
    """Whether this run is the first on the current page (the user came from elsewhere)."""
    return bool(st.session_state.get(PREVIOUS_PAGE_KEY) != st.session_state.get(PAGE_KEY))


def flash(kind: str, message: str) -> None:
    """Show ``message`` (already safe Markdown) at the top of the next run."""
    st.session_state[FLASH_KEY] = (kind, message)


def show_flash() -> None:
    """Show and forget the message left by ``flash``."""
    item = st.session_state.pop(FLASH_KEY, None)
    if item is None:
        return
    kind, message = item
    {"success": st.success, "info": st.info, "warning": st.warning}.get(kind, st.info)(message)


def show_error(error: BaseException) -> None:
    """Show a library error as a one-line message (its text escaped)."""
    if isinstance(error, StaleWrite):
        st.error(md_escape(str(error)), icon=":material/sync_problem:")
    elif isinstance(error, SubstantiateError):
        st.error(md_escape(str(error)), icon=":material/error:")
    else:
        st.error(md_escape(f"{error.__class__.__name__}: {error}"), icon=":material/error:")


# --------------------------------------------------------------------------- safe text


def md_escape(text: str, *, inline: bool = True) -> str:
    """``text`` as Markdown that displays literally: every ASCII punctuation mark escaped.

    CommonMark lets any ASCII punctuation be backslash-escaped, so ``<script>``, ``**``,
    ``[x](y)``, ``$`` (LaTeX), ``:`` (Streamlit directives and emoji) and ``#`` all show as
    typed. Runs of spaces collapse to one. With ``inline`` line breaks become spaces
    (titles, labels); otherwise each line break is kept as a hard break.
    """
    escaped = "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in text)
    if inline:
        return re.sub(r"\s+", " ", escaped)
    return "  \n".join(re.sub(r"\s+", " ", line).strip() for line in escaped.split("\n"))


def _runs(flags: Sequence[bool]) -> Iterator[tuple[int, int, bool]]:
    i = 0
    while i < len(flags):
        j = i
        while j < len(flags) and flags[j] == flags[i]:
            j += 1
        yield i, j, flags[i]
        i = j


def _wrap(piece: str, mark: str, close: str) -> str:
    # Markdown marks must touch non-space characters on their inner side.
    if not piece.strip():
        return md_escape(piece)
    lead = " " if piece[0].isspace() else ""
    trail = " " if piece[-1].isspace() else ""
    return f"{lead}{mark}{md_escape(piece.strip())}{close}{trail}"


def _highlight_line(text: str, marked: Sequence[bool], bold: Sequence[bool],
                    color: str) -> str:
    out: list[str] = []
    for i, j, is_marked in _runs(marked):
        inner = "".join(
            _wrap(text[a:b], "**", "**") if is_bold else md_escape(text[a:b])
            for a, b, is_bold in _runs(bold[i:j]) for a, b in [(a + i, b + i)]
        )
        if is_marked and inner.strip():
            lead = " " if inner[0].isspace() else ""
            trail = " " if inner[-1].isspace() else ""
            out.append(f"{lead}:{color}-background[{inner.strip()}]{trail}")
        else:
            out.append(inner)
    return "".join(out).strip()


def highlight(
    text: str,
    spans: Sequence[tuple[int, int]] = (),
    *,
    terms: Sequence[str] = (),
    color: str = "orange",
    bold_spans: bool = False,
    inline: bool = True,
) -> str:
    """Markdown showing ``text`` literally, with ``spans`` on a coloured background.

    Parameters
    ----------
    text
        Untrusted text.
    spans
        ``(start, end)`` character ranges to highlight.
    terms
        Words to show in bold wherever they occur (whole words, any case).
    color
        Streamlit palette colour of the highlight.
    bold_spans
        Also make the highlighted spans bold.
    inline
        Line breaks become spaces; otherwise each is kept as a hard break.
    """
    n = len(text)
    marked = [False] * n
    for start, end in spans:
        for k in range(max(0, start), min(n, end)):
            marked[k] = True
    bold = [bold_spans and m for m in marked]
    for term in {t.strip() for t in terms if t and t.strip()}:
        for m in re.finditer(rf"(?<!\w){re.escape(term)}(?!\w)", text, flags=re.IGNORECASE):
            for k in range(m.start(), m.end()):
                bold[k] = True
    lines = []
    offset = 0
    for line in text.split("\n"):
        end = offset + len(line)
        lines.append(_highlight_line(line, marked[offset:end], bold[offset:end], color))
        offset = end + 1
    return (" " if inline else "  \n").join(lines).strip()


def label(value: Any) -> str:
    """A vocabulary value as words (``partially_supports`` -> ``partially supports``)."""
    return "—" if value is None else str(value).replace("_", " ")
