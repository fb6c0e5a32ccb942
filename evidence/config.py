"""Settings: the one place that reads the environment (and an optional ``.env``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

NCBI_EUTILS = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/"


class Settings(BaseSettings):
    """Every setting, with its environment variable name and a description.

    README's "Settings" table documents each field; ``tests/test_docs.py`` checks that.
    """

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    data_dir: Path = Field(
        default=Path("data"),
        validation_alias="SUBSTANTIATE_DATA_DIR",
        description="Folder for the default SQLite database, the article corpus and caches.",
    )
    index_dir: Path | None = Field(
        default=None,
        validation_alias="INDEX_DIR",
        description="Folder of the persisted ranking index that `link` ranks with "
        "(`substantiate index build|update|status`). Default: `<data dir>/index`.",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias="DATABASE_URL",
        description=(
            "SQLAlchemy URL of the database. Default: a SQLite file "
            "`<data dir>/substantiate.db`. PostgreSQL: `postgresql+psycopg://user@host/db`."
        ),
    )
    ncbi_email: str = Field(
        default="substantiate@example.org",
        validation_alias="NCBI_EMAIL",
        description="Contact e-mail sent with every E-utilities request (NCBI asks for one).",
    )
    ncbi_tool: str = Field(
        default="substantiate",
        validation_alias="NCBI_TOOL",
        description="Tool name sent with every E-utilities request.",
    )
    ncbi_api_key: SecretStr | None = Field(
        default=None,
        validation_alias="NCBI_API_KEY",
        description="Optional NCBI API key: raises the rate limit from 3 to 10 requests/s. "
        "Never logged or stored.",
    )
    eutils_base_url: str = Field(
        default=NCBI_EUTILS,
        validation_alias="EUTILS_BASE_URL",
        description="Base URL of the E-utilities (a mirror or the local test server).",
    )
    ncbi_max_wait: float = Field(
        default=120.0,
        validation_alias="NCBI_MAX_WAIT",
        description="Longest total time (seconds) spent retrying one E-utilities request.",
    )
    independent_review: bool = Field(
        default=True,
        validation_alias="INDEPENDENT_REVIEW",
        description="Dual independent review: reviewers do not see others' verdicts on a "
        "claim until they have submitted their own.",
    )
    claim_group_threshold: float = Field(
        default=0.66,
        validation_alias="CLAIM_GROUP_THRESHOLD",
        description="Score (0-1: shared wording plus agreement of the claims' frames, i.e. "
        "category, outcome, comparator and numbers), averaged over a canonical claim's indexed "
        "members, at or above which a new claim joins it in the claim library.",
    )
    claim_group_semantic_threshold: float = Field(
        default=0.75,
        validation_alias="CLAIM_GROUP_SEMANTIC_THRESHOLD",
        description="Mixed score (0-1: embedding cosine and the score without embeddings) at "
        "or above which a new claim joins a canonical claim its score without embeddings falls "
        "short of, when the [semantic] extra is installed.",
    )
    claim_group_semantic: bool = Field(
        default=True,
        validation_alias="CLAIM_GROUP_SEMANTIC",
        description="Group claims by meaning (sentence embeddings) when the [semantic] extra "
        "is installed; off: lexical grouping only.",
    )
    cli_user: str | None = Field(
        default=None,
        validation_alias="SUBSTANTIATE_USER",
        description="Username the CLI acts as for writes that need a role (`users`, "
        "`claims regroup`); `--as USER` overrides it.",
    )
    db_lock_wait: float = Field(
        default=600.0,
        gt=0,
        validation_alias="DB_LOCK_WAIT",
        description="Longest time (seconds) a writer waits, queued, for another writer to "
        "finish with a SQLite database before giving up with an error (`-v` shows the wait).",
    )
    max_article_bytes: int = Field(
        default=20_000_000,
        gt=0,
        validation_alias="MAX_ARTICLE_BYTES",
        description="Largest article (file or URL download) read, in bytes (default 20 MB = "
        "20,000,000): a bigger file is refused before it is read, a download stops past it.",
    )
    verdict_review_months: int = Field(
        default=12,
        ge=1,
        le=120,
        validation_alias="VERDICT_REVIEW_MONTHS",
        description="Months after a final verdict is recorded that it must be reviewed "
        "again: `substantiate surveil` re-opens a claim whose verdict is older (reason "
        "`expired`).",
    )
    app_port: int = Field(
        default=8501,
        validation_alias="SUBSTANTIATE_APP_PORT",
        description="Port `substantiate app` serves the reviewer app on.",
    )

    session_idle_hours: float = Field(
        default=8.0,
        gt=0,
        validation_alias="SESSION_IDLE_HOURS",
        description="Hours without activity after which an app sign-in (kept across reloads "
        "and tabs by a browser cookie) expires and the reviewer must sign in again.",
    )
    sign_in_max_failures: int = Field(
        default=5,
        ge=1,
        validation_alias="SIGN_IN_MAX_FAILURES",
        description="Failed password sign-ins for one username, or from one client, within "
        "SIGN_IN_WINDOW_MINUTES after which further attempts are refused unchecked.",
    )
    sign_in_window_minutes: float = Field(
        default=15.0,
        gt=0,
        validation_alias="SIGN_IN_WINDOW_MINUTES",
        description="Window (minutes) over which failed sign-ins are counted; attempts are "
        "allowed again once enough failures have aged out of it.",
    )
    client_ip_header: str | None = Field(
        default=None,
        validation_alias="CLIENT_IP_HEADER",
        description="Request header that names the client's address when the app runs "
        "behind a reverse proxy (e.g. `X-Forwarded-For`; its first address is used). Unset: "
        "the address of the connection itself. Only set it when the proxy overwrites it.",
    )

    @property
    def effective_database_url(self) -> str:
        """The database URL in force: ``DATABASE_URL`` or the SQLite default."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'substantiate.db').as_posix()}"

    @property
    def effective_index_dir(self) -> Path:
        """The ranking index folder in force: ``INDEX_DIR`` or ``<data dir>/index``."""
        return self.index_dir if self.index_dir is not None else self.data_dir / "index"

    @property
    def api_key(self) -> str | None:
        """The NCBI API key as plain text, or ``None``."""
        return self.ncbi_api_key.get_secret_value() if self.ncbi_api_key else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings (read once)."""
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings so the next call re-reads the environment."""
    get_settings.cache_clear()
