"""Reading articles: text, Markdown, HTML, URLs, and every way an input can be bad."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from evidence.errors import FetchError, InputError
from ingest.articles import (
    SUPPORTED_SUFFIXES,
    Link,
    ParsedArticle,
    fetch_url,
    iter_paths,
    parse_document,
    read_path,
)

ROOT = Path(__file__).resolve().parents[1]
SEEDS = sorted((ROOT / "data" / "articles").glob("*.txt"))
AWKWARD = ROOT / "tests" / "data" / "articles"


# --- seeds --------------------------------------------------------------------------


@pytest.mark.parametrize("path", SEEDS, ids=lambda p: p.stem)
def test_read_seed_keeps_text_exact(path: Path) -> None:
    article = read_path(path)
    raw = path.read_bytes().decode("utf-8")
    assert article.text == raw.replace("\r\n", "\n")
    assert article.content_type == "text/plain"
    assert article.links == []
    assert article.sha256 == hashlib.sha256(article.text.encode("utf-8")).hexdigest()
    assert article.source == str(path)


def test_txt_title_is_first_non_empty_line() -> None:
    article = parse_document(b"\n\n  Ketamine FAQ  \nKetamine works fast.\n", source="faq.txt")
    assert article.title == "Ketamine FAQ"


def test_txt_title_from_a_paragraph_is_clipped() -> None:
    first = "word " * 100
    article = parse_document(first.encode() + b"\nMore.", source="long.txt")
    assert len(article.title) <= 201
    assert article.title.endswith("…")


def test_seed_title_is_its_heading_line() -> None:
    article = read_path(ROOT / "data" / "articles" / "004_fd66a576c14499d5.txt")
    assert article.title == (
        "Exploring Ketamine Infusion Therapy: A Modern Approach to Mental Health"
    )


# --- awkward inputs, one table, one test over every file ----------------------------

# Every file in tests/data/articles must be listed: a new awkward input needs a decision.
AWKWARD_EXPECTED: dict[str, str] = {
    "bom_crlf.txt": "ok",
    "clinic_post.html": "ok",
    "clinic_post.md": "ok",
    "latin1_declared.html": "ok",
    "sentences.txt": "ok",
    "latin1_undeclared.txt": "undecodable bytes: not valid UTF-8 and no charset declared "
    "(byte 0xe9 at offset 95)",
    "whitespace_only.txt": "empty article (no text after extraction)",
    "no_text.html": "empty article (no text after extraction)",
    "brochure.pdf": "unsupported file type '.pdf' (supported: .txt, .text, .md, .markdown, "
    ".html, .htm, .xhtml)",
}


def test_awkward_inputs_table_lists_every_file() -> None:
    assert sorted(p.name for p in AWKWARD.iterdir()) == sorted(AWKWARD_EXPECTED)


@pytest.mark.parametrize("name", sorted(AWKWARD_EXPECTED))
def test_awkward_input(name: str) -> None:
    path = AWKWARD / name
    expected = AWKWARD_EXPECTED[name]
    if expected == "ok":
        article = read_path(path)
        assert article.text.strip()
        assert "\r" not in article.text
        assert not article.text.startswith("\ufeff")
        assert article.sha256 == hashlib.sha256(article.text.encode()).hexdigest()
    else:
        with pytest.raises(InputError) as info:
            read_path(path)
        assert str(info.value) == f"{path}: {expected}"


def test_bom_and_crlf_give_the_same_hash_as_clean_text() -> None:
    noisy = read_path(AWKWARD / "bom_crlf.txt")
    clean = parse_document(noisy.text.encode("utf-8"), source="clean.txt")
    assert noisy.text.startswith("Ketamine Basics\nKetamine can relieve")
    assert noisy.sha256 == clean.sha256


def test_declared_charset_decodes_latin1_html() -> None:
    article = read_path(AWKWARD / "latin1_declared.html")
    assert article.title == "Ketamine naïve patients"
    assert "approved by the FDA in 1970" in article.text


def test_charset_in_content_type_decodes_plain_text() -> None:
    data = "Caf\xe9 ketamine.".encode("latin-1")
    article = parse_document(data, source="x", content_type="text/plain; charset=ISO-8859-1")
    assert article.text == "Café ketamine."


def test_utf16_with_bom_is_decoded() -> None:
    data = "Ketamine works.".encode("utf-16")
    assert parse_document(data, source="u16.txt").text == "Ketamine works."


def test_undecodable_message_names_file_and_offset() -> None:
    with pytest.raises(InputError, match=r"^notes\.txt: undecodable bytes: .*offset 3\)$"):
        parse_document(b"abc\xff\xfe", source="notes.txt")


def test_wrong_declared_charset_is_reported() -> None:
    with pytest.raises(InputError, match=r"x\.html: unknown declared charset 'klingon'"):
        parse_document(b"<p>\xff</p>", source="x.html", content_type="text/html; charset=klingon")


# --- Markdown -----------------------------------------------------------------------


def test_markdown_is_reduced_to_plain_text_with_links() -> None:
    article = read_path(AWKWARD / "clinic_post.md")
    assert article.content_type == "text/markdown"
    assert article.title == "Ketamine Infusions: What the Research Says"
    assert "**" not in article.text and "](" not in article.text and "#" not in article.text
    # A paragraph wrapped over two source lines stays one line.
    assert (
        "Ketamine is an NMDA receptor antagonist. In a randomized trial, a single infusion "
        "relieved depressive symptoms within 24 hours (Murrough 2013)." in article.text
    )
    assert "- Dissociation is common during the infusion" in article.text
    assert "IV | 0.5 mg/kg" in article.text
    assert article.links == [
        Link("https://doi.org/10.1176/appi.ajp.2013.13030392", "Murrough 2013"),
        Link(
            "https://www.accessdata.fda.gov/drugsatfda_docs/label/2019/211243lbl.pdf",
            "FDA label",
        ),
        Link(
            "https://pubmed.ncbi.nlm.nih.gov/23982301/",
            "https://pubmed.ncbi.nlm.nih.gov/23982301/",
        ),
    ]


def test_markdown_title_falls_back_to_first_heading() -> None:
    article = parse_document(b"Intro line\n\n## Second\n\n# Main title\n", source="a.md")
    assert article.title == "Second"


# --- HTML ---------------------------------------------------------------------------


def test_html_main_text_title_and_links() -> None:
    data = (AWKWARD / "clinic_post.html").read_bytes()
    article = parse_document(data, source="https://clinic.example/faq/ketamine.html")
    assert article.content_type == "text/html"
    assert article.title == "Does Ketamine Work for Depression?"
    assert "Racemic ketamine infusions for depression remain off-label." in article.text
    assert "Services" not in article.text and "Call us" not in article.text
    assert [link.url for link in article.links] == [
        "https://pubmed.ncbi.nlm.nih.gov/23982301/",
        "https://clinic.example/blog/side-effects",
        "https://onlinelibrary.wiley.com/doi/full/10.1002/da.22345",
        "https://www.webmd.com/depression/features/what-does-ketamine-do-your-brain",
    ]
    assert article.links[0].text == "Murrough et al., 2013"


def test_html_links_from_a_local_file_stay_as_written() -> None:
    article = read_path(AWKWARD / "clinic_post.html")
    assert Link("/blog/side-effects", "side-effects guide") in article.links


def test_html_base_href_resolves_relative_links() -> None:
    html = (
        b"<html><head><base href='https://example.org/blog/'></head><body><article>"
        b"<p>Ketamine relieves depression within hours according to "
        b"<a href='study.html'>this study</a>.</p></article></body></html>"
    )
    article = parse_document(html, source="saved.html")
    assert article.links == [Link("https://example.org/blog/study.html", "this study")]


def test_html_short_page_without_main_content_still_parses() -> None:
    html = b"<html><body><div>Ketamine works fast.</div></body></html>"
    article = parse_document(html, source="short.htm")
    assert article.text == "Ketamine works fast."


def test_xhtml_with_xml_declaration_parses() -> None:
    data = (
        b'<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml">'
        b"<head><title>T</title></head><body><p>Ketamine is an NMDA antagonist.</p></body></html>"
    )
    article = parse_document(data, source="page.xhtml")
    assert "Ketamine is an NMDA antagonist." in article.text


# --- errors -------------------------------------------------------------------------


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    with pytest.raises(InputError, match=r"nope\.txt: no such file$"):
        read_path(missing)


def test_missing_file_of_unsupported_type_is_reported_missing(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"brochure\.pdf: no such file$"):
        read_path(tmp_path / "brochure.pdf")


def test_directory_is_not_an_article(tmp_path: Path) -> None:
    folder = tmp_path / "posts.txt"
    folder.mkdir()
    with pytest.raises(InputError, match=r"is a directory"):
        read_path(folder)


def test_unsupported_suffix_names_suffix_and_supported_ones(tmp_path: Path) -> None:
    path = tmp_path / "post.docx"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(InputError) as info:
        read_path(path)
    message = str(info.value)
    assert "'.docx'" in message
    assert all(suffix in message for suffix in SUPPORTED_SUFFIXES)


def test_unsupported_content_type_is_named() -> None:
    with pytest.raises(InputError, match=r"unsupported content type 'application/pdf'"):
        parse_document(b"%PDF", source="https://x.org/a", content_type="application/pdf")


def test_empty_bytes_are_an_empty_article() -> None:
    with pytest.raises(InputError, match=r"^e\.md: empty article"):
        parse_document(b"", source="e.md")


# --- iter_paths ---------------------------------------------------------------------


def test_iter_paths_expands_directories_sorted_and_supported_only(tmp_path: Path) -> None:
    (tmp_path / "b.md").write_text("b")
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "c.pdf").write_text("c")
    (tmp_path / ".hidden.txt").write_text("h")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "d.html").write_text("<p>d</p>")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "e.txt").write_text("e")
    explicit = tmp_path / "c.pdf"
    found = list(iter_paths([tmp_path, explicit, tmp_path / "a.txt"]))
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "a.txt",
        "b.md",
        "sub/d.html",
        "c.pdf",
    ]


def test_iter_paths_missing_path_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no such file or directory"):
        list(iter_paths([tmp_path / "gone"]))


def test_iter_paths_over_seeds_finds_all_five() -> None:
    assert [p.name for p in iter_paths([ROOT / "data" / "articles"])] == [p.name for p in SEEDS]


# --- URLs, against a real local HTTP server ----------------------------------------

ROUTES: dict[str, tuple[int, str, bytes]] = {
    "/post.html": (
        200,
        "text/html; charset=utf-8",
        (AWKWARD / "clinic_post.html").read_bytes(),
    ),
    "/notes": (200, "text/markdown", b"# Notes\n\nKetamine is an [NMDA](/nmda) antagonist.\n"),
    "/latin": (200, "text/plain; charset=iso-8859-1", "Café ketamine.".encode("latin-1")),
    "/generic.txt": (200, "application/octet-stream", b"Ketamine works.\n"),
    "/brochure": (200, "application/pdf", b"%PDF-1.4"),
    "/broken": (500, "text/plain", b"oops"),
}


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/post.html")
            self.end_headers()
            return
        status, content_type, body = ROUTES.get(self.path, (404, "text/plain", b"not here"))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_fetch_html_resolves_links_against_the_url(server: str) -> None:
    article = fetch_url(f"{server}/post.html")
    assert isinstance(article, ParsedArticle)
    assert article.source == f"{server}/post.html"
    assert article.content_type == "text/html"
    assert f"{server}/blog/side-effects" in [link.url for link in article.links]
    assert article.sha256 == read_path(AWKWARD / "clinic_post.html").sha256


def test_fetch_uses_the_servers_content_type_and_charset(server: str) -> None:
    markdown = fetch_url(f"{server}/notes")
    assert markdown.content_type == "text/markdown"
    assert markdown.links == [Link(f"{server}/nmda", "NMDA")]
    assert fetch_url(f"{server}/latin").text == "Café ketamine."


def test_fetch_falls_back_to_the_url_suffix_for_a_generic_type(server: str) -> None:
    assert fetch_url(f"{server}/generic.txt").text == "Ketamine works.\n"


def test_fetch_follows_redirects_but_keeps_the_requested_url(server: str) -> None:
    article = fetch_url(f"{server}/moved")
    assert article.source == f"{server}/moved"
    assert article.title == "Does Ketamine Work for Depression?"


def test_fetch_http_404_is_a_fetch_error_naming_url_and_status(server: str) -> None:
    url = f"{server}/missing"
    with pytest.raises(FetchError) as info:
        fetch_url(url)
    assert str(info.value) == f"cannot fetch {url}: HTTP 404 Not Found"


def test_fetch_http_500_is_a_fetch_error(server: str) -> None:
    with pytest.raises(FetchError, match=r"/broken: HTTP 500"):
        fetch_url(f"{server}/broken")


def test_fetch_unsupported_content_type_is_an_input_error(server: str) -> None:
    with pytest.raises(InputError, match=r"unsupported content type 'application/pdf'"):
        fetch_url(f"{server}/brochure")


def test_fetch_unreachable_url_is_a_fetch_error() -> None:
    # A port that was free a moment ago: nothing listens there.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/post.html"
    with pytest.raises(FetchError) as info:
        fetch_url(url, timeout=5)
    message = str(info.value)
    assert message.startswith(f"cannot fetch {url}: ")
    assert "\n" not in message
    assert "refused" in message.lower() or "connect" in message.lower()


def test_fetch_rejects_non_http_urls() -> None:
    with pytest.raises(InputError, match=r"not an http\(s\) URL"):
        fetch_url("ftp://example.org/post.html")
