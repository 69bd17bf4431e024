"""The catalog: one row of metadata per stored file. SQLite by default.

Routes and the callback only see the ``Catalog`` protocol, so a PostgreSQL implementation can
follow without touching them. A row is ``pending`` before its file is linked into the store and
``ready`` after; only ready rows are visible through the API, and reconcile repairs the rest.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, Protocol

from callback_api.errors import InsufficientStorage, LandingError, Unavailable

State = Literal["pending", "ready"]


@dataclass(frozen=True)
class MediaRecord:
    id: str
    item_id: str
    filename: str
    content_type: str
    size: int
    sha256: str | None
    created_at: str
    state: State = "pending"
    disposition: Literal["inline", "attachment"] = "inline"
    fields: str = "{}"  # the simple text fields of the form it came in, as JSON


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming an idempotency key: ours to use, or someone else's."""

    owned: bool
    media_ids: list[str] | None  # the first request's result, once it has finished
    fingerprint: str = ""  # what the first request was (kind, size, name); "" if unknown


@dataclass(frozen=True)
class ItemUsage:
    """What an item holds: its rows, pending ones included (they are being stored)."""

    item_id: str
    files: int
    bytes: int


# Called inside the write transaction that inserts pending rows; raising aborts the insert.
UsageCheck = Callable[[ItemUsage], None]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def ago(seconds: float) -> str:
    """``now()`` of that many seconds ago: timestamps compare as strings."""
    moment = datetime.now(UTC) - timedelta(seconds=seconds)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


class Catalog(Protocol):
    def insert_pending(
        self, records: Sequence[MediaRecord], check: UsageCheck | None = None
    ) -> None: ...
    def mark_ready(self, ids: Sequence[str], idempotency: tuple[str, str] | None) -> None: ...
    def discard(self, ids: Sequence[str], idempotency: tuple[str, str] | None) -> None: ...
    def get(self, media_id: str) -> MediaRecord | None: ...
    def list_item(
        self, item_id: str, limit: int, cursor: str | None
    ) -> tuple[list[MediaRecord], str | None]: ...
    def delete(self, media_id: str) -> MediaRecord | None: ...
    def claim_key(
        self, item_id: str, key: str, fingerprint: str, expired_before: str, stale_before: str
    ) -> Claim: ...
    def all_records(self) -> Iterator[MediaRecord]: ...
    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS media (
    id TEXT PRIMARY KEY,
    item_id TEXT NOT NULL,
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL CHECK (size >= 0),
    sha256 TEXT,
    created_at TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'ready')),
    disposition TEXT NOT NULL CHECK (disposition IN ('inline', 'attachment')),
    fields TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS media_by_item ON media (item_id, created_at, id);
CREATE TABLE IF NOT EXISTS idempotency (
    item_id TEXT NOT NULL,
    key TEXT NOT NULL,
    media_ids TEXT,
    created_at TEXT NOT NULL,
    fingerprint TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (item_id, key)
);
CREATE INDEX IF NOT EXISTS idempotency_by_age ON idempotency (created_at);
"""
_FINGERPRINT_COLUMN = "fingerprint TEXT NOT NULL DEFAULT ''"
_COLUMNS = (
    "id, item_id, filename, content_type, size, sha256, created_at, state, disposition, fields"
)


def _domain_error(exc: sqlite3.Error) -> LandingError | None:
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # primary code of an extended one
    if code == sqlite3.SQLITE_FULL:
        return InsufficientStorage("no space left while writing the catalog")
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return Unavailable("the catalog stayed locked past its busy timeout; retry")
    return None


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT. A failed COMMIT is rolled back too: the connection is
    reused by its thread and must never stay inside a transaction holding the write lock.
    A full disk becomes 507 and a lock not obtained in time 503, never a bare 500."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        error = _domain_error(exc)
        if error is None:
            raise
        raise error from exc


class SqliteCatalog:
    """One connection per thread (FastAPI runs sync routes in a thread pool); WAL mode."""

    def __init__(self, path: Path, durable: bool, busy_timeout_ms: int = 10_000) -> None:
        self.path = path
        self._durable = durable
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._conn()
        # Catalogs made before claims kept a fingerprint get the column first (the index in
        # the schema script needs nothing new).
        columns = {row[1] for row in conn.execute("PRAGMA table_info(idempotency)")}
        if columns and "fingerprint" not in columns:
            try:
                conn.execute(f"ALTER TABLE idempotency ADD COLUMN {_FINGERPRINT_COLUMN}")
            except sqlite3.OperationalError as exc:
                if "duplicate column" not in str(exc):  # another worker added it first
                    raise
        conn.executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            conn.execute("PRAGMA journal_mode = WAL")
            # FULL syncs the WAL on every commit: a 201 then survives power loss.
            conn.execute(f"PRAGMA synchronous = {'FULL' if self._durable else 'NORMAL'}")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def _unsynced(self, conn: sqlite3.Connection) -> Iterator[None]:
        if not self._durable:
            yield
            return
        conn.execute("PRAGMA synchronous = NORMAL")
        try:
            yield
        finally:
            conn.execute("PRAGMA synchronous = FULL")

    def _write(self, statements: Sequence[tuple[str, Sequence[object]]]) -> list[int]:
        conn = self._conn()
        with _transaction(conn):
            counts = [conn.execute(sql, params).rowcount for sql, params in statements]
        return counts

    def insert_pending(
        self, records: Sequence[MediaRecord], check: UsageCheck | None = None
    ) -> None:
        """Insert pending rows; ``check`` first sees each item's usage in the same write
        transaction (BEGIN IMMEDIATE), so that concurrent uploads cannot all pass a quota.

        Not synced even when durable: a pending row promises nothing to the client, and if a
        crash loses it the file it would have named is an orphan that reconcile quarantines.
        The ready commit syncs the WAL, and with it this row, before the 201."""
        conn = self._conn()
        with self._unsynced(conn), _transaction(conn):
            if check is not None:
                for item_id in sorted({r.item_id for r in records}):
                    files, size = conn.execute(
                        "SELECT count(*), coalesce(sum(size), 0) FROM media WHERE item_id = ?",
                        (item_id,),
                    ).fetchone()
                    check(ItemUsage(item_id, files, size))
            for r in records:
                conn.execute(
                    f"INSERT INTO media ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                    (
                        r.id,
                        r.item_id,
                        r.filename,
                        r.content_type,
                        r.size,
                        r.sha256,
                        r.created_at,
                        r.disposition,
                        r.fields,
                    ),
                )

    def mark_ready(self, ids: Sequence[str], idempotency: tuple[str, str] | None) -> None:
        statements: list[tuple[str, Sequence[object]]] = [
            ("UPDATE media SET state = 'ready' WHERE id = ? AND state = 'pending'", (i,))
            for i in ids
        ]
        if idempotency:
            statements.append(
                (
                    "UPDATE idempotency SET media_ids = ? WHERE item_id = ? AND key = ?",
                    (json.dumps(list(ids)), *idempotency),
                )
            )
        counts = self._write(statements)
        if any(count != 1 for count in counts[: len(ids)]):
            raise LookupError(f"pending rows vanished while being committed: {list(ids)}")

    def discard(self, ids: Sequence[str], idempotency: tuple[str, str] | None) -> None:
        statements: list[tuple[str, Sequence[object]]] = [
            ("DELETE FROM media WHERE id = ? AND state = 'pending'", (i,)) for i in ids
        ]
        if idempotency:
            statements.append(
                (
                    "DELETE FROM idempotency WHERE item_id = ? AND key = ? AND media_ids IS NULL",
                    idempotency,
                )
            )
        self._write(statements)

    def get(self, media_id: str) -> MediaRecord | None:
        row = (
            self._conn()
            .execute(f"SELECT {_COLUMNS} FROM media WHERE id = ? AND state = 'ready'", (media_id,))
            .fetchone()
        )
        return MediaRecord(*row) if row else None

    def list_item(
        self, item_id: str, limit: int, cursor: str | None
    ) -> tuple[list[MediaRecord], str | None]:
        sql = f"SELECT {_COLUMNS} FROM media WHERE item_id = ? AND state = 'ready'"
        params: list[object] = [item_id]
        if cursor:
            sql += (
                " AND (created_at, id) > "
                "(SELECT created_at, id FROM media WHERE id = ? AND item_id = ?)"
            )
            params += [cursor, item_id]
        sql += " ORDER BY created_at, id LIMIT ?"
        params.append(limit + 1)
        rows = [MediaRecord(*row) for row in self._conn().execute(sql, params)]
        page = rows[:limit]
        return page, (page[-1].id if len(rows) > limit else None)

    def delete(self, media_id: str) -> MediaRecord | None:
        record = self.get(media_id)
        if record is None:
            return None
        self._write([("DELETE FROM media WHERE id = ?", (media_id,))])
        return record

    def claim_key(
        self, item_id: str, key: str, fingerprint: str, expired_before: str, stale_before: str
    ) -> Claim:
        """Take the key, or learn who has it. In one write transaction, so that of many
        concurrent requests with one key exactly one owns it. Answers older than
        ``expired_before`` are forgotten, and claims older than ``stale_before`` that never
        finished (their request crashed) are given up, for every key at once (indexed)."""
        conn = self._conn()
        with _transaction(conn):
            conn.execute(
                "DELETE FROM idempotency WHERE (created_at < ? AND media_ids IS NOT NULL)"
                " OR (created_at < ? AND media_ids IS NULL)",
                (expired_before, stale_before),
            )
            row = conn.execute(
                "SELECT media_ids, fingerprint FROM idempotency WHERE item_id = ? AND key = ?",
                (item_id, key),
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO idempotency (item_id, key, created_at, fingerprint)"
                    " VALUES (?, ?, ?, ?)",
                    (item_id, key, now(), fingerprint),
                )
        if row is None:
            return Claim(owned=True, media_ids=None, fingerprint=fingerprint)
        return Claim(False, json.loads(row[0]) if row[0] else None, row[1])

    def all_records(self) -> Iterator[MediaRecord]:
        conn = sqlite3.connect(self.path)
        try:
            yield from (MediaRecord(*row) for row in conn.execute(f"SELECT {_COLUMNS} FROM media"))
        finally:
            conn.close()

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()


def open_catalog(database: Path, durable: bool, busy_timeout_s: float = 10.0) -> Catalog:
    return SqliteCatalog(database, durable, busy_timeout_ms=int(busy_timeout_s * 1000))
