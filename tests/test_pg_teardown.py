"""The PostgreSQL test schema is dropped even when a test leaves a transaction open."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import _PG_REASON, PG_ADMIN_URL, pg_schema

pytestmark = pytest.mark.skipif(bool(_PG_REASON), reason=_PG_REASON or "")


def test_schema_is_dropped_although_a_connection_holds_a_lock_on_it() -> None:
    leaked = []
    with pytest.warns(UserWarning, match="terminated 1 connection"):
        with pg_schema() as url:
            schema = url.rsplit("application_name=", 1)[1]
            eng = create_engine(url)
            conn = eng.connect()
            conn.execute(text("CREATE TABLE t (x int)"))
            conn.commit()
            conn.execute(text("SELECT * FROM t"))  # idle in transaction, holding a lock
            leaked.append((eng, conn))  # kept alive: nothing collects it
    admin = create_engine(PG_ADMIN_URL)
    with admin.connect() as c:
        left = c.execute(text("SELECT count(*) FROM pg_namespace WHERE nspname = :s"),
                         {"s": schema}).scalar_one()
    admin.dispose()
    assert left == 0
    for eng, conn in leaked:
        conn.invalidate()  # its server side is gone already
        eng.dispose()
