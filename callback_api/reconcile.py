"""``landing reconcile``: make the media root and the catalog agree again (invariant 3).

A landing writes a pending row, links the file, then marks the row ready before the client
gets its 201; a delete removes the row, then the file. A crash between two steps leaves:

- a pending row older than the longest request: the client was never told 2xx. The row is
  deleted and its file, if any, moved to the quarantine;
- a file in the media root without a row: moved to the quarantine;
- a ready row whose file is gone (lost media, e.g. a restore without the files): the row is
  deleted and reported;
- an idempotency claim whose request never finished: cleared so the client can retry.

A file that has a row is never moved or deleted. Files are scanned before rows are read, and
a row is always written before its file, so a file seen without a row is really an orphan;
each action re-checks its condition just before it acts. Dry run unless ``apply``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from callback_api.catalog import Catalog, MediaRecord, open_catalog
from callback_api.catalog import now as iso_now
from callback_api.progress import NoProgress, Progress
from callback_api.settings import Settings
from callback_api.store import MediaStore, StorageError
from callback_api.sweep import cutoff, last_change


@dataclass
class ReconcileReport:
    applied: bool
    min_age_seconds: float
    files_scanned: int = 0
    rows_scanned: int = 0
    orphan_files: list[str] = field(default_factory=list)
    stale_pending: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    stale_claims: list[tuple[str, str]] = field(default_factory=list)
    quarantined: list[Path] = field(default_factory=list)
    recent: int = 0  # orphans and pending rows too young to judge; the next run will
    skipped: list[Path] = field(default_factory=list)  # not a media file: left alone

    @property
    def problems(self) -> int:
        return (
            len(self.orphan_files)
            + len(self.stale_pending)
            + len(self.lost)
            + len(self.stale_claims)
        )

    def summary(self) -> str:
        verb = "fixed" if self.applied else "found"
        text = (
            f"reconcile: {self.files_scanned} file(s) and {self.rows_scanned} row(s) scanned; "
            f"{verb} {len(self.orphan_files)} file(s) without a row, "
            f"{len(self.stale_pending)} stale pending row(s), "
            f"{len(self.lost)} ready row(s) whose file is lost, "
            f"{len(self.stale_claims)} unfinished idempotency claim(s)"
        )
        if self.applied:
            text += f"; {len(self.quarantined)} file(s) moved to the quarantine"
        elif self.problems:
            text += "; run with --apply to repair"
        if self.recent:
            text += f"; {self.recent} too recent to judge"
        if self.skipped:
            text += f"; {len(self.skipped)} unknown entr(ies) left alone"
        return text


def _timestamp(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _scan_files(store: MediaStore, report: ReconcileReport, progress: Progress) -> dict[str, float]:
    """Media id -> when its file last changed (a link changes ctime). Small per file: a store
    of millions fits in memory."""
    files: dict[str, float] = {}
    for media_id in store.ids_on_disk():
        progress.step()
        path = store.path_for(media_id)
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode):
            report.skipped.append(path)
            continue
        files[media_id] = last_change(info)
    report.files_scanned = len(files)
    return files


def _stale_claims(database: Path, cutoff: float) -> list[tuple[str, str]]:
    # The Catalog protocol has no listing of claims yet; read them without writing.
    if not database.exists():
        return []
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT item_id, key, created_at FROM idempotency WHERE media_ids IS NULL"
        ).fetchall()
    finally:
        conn.close()
    return [(item, key) for item, key, created in rows if _timestamp(created) < cutoff]


def _quarantine(
    path: Path, quarantine_dir: Path, media_id: str, reason: str, row: MediaRecord | None
) -> Path:
    """Move a file aside (a rename: same filesystem) with a note saying where it came from."""
    target = quarantine_dir / media_id
    counter = 0
    while target.exists():
        counter += 1
        target = quarantine_dir / f"{media_id}.{counter}"
    os.rename(path, target)
    note = {
        "id": media_id,
        "reason": reason,
        "from": str(path),
        "quarantined_at": iso_now(),
        "row": asdict(row) if row else None,
    }
    target.with_name(target.name + ".json").write_text(json.dumps(note, indent=2) + "\n")
    return target


def _check_quarantine(settings: Settings) -> None:
    quarantine, media = settings.paths.quarantine_dir, settings.paths.media_root
    quarantine.mkdir(parents=True, exist_ok=True)
    if media.exists() and os.stat(quarantine).st_dev != os.stat(media).st_dev:
        raise StorageError(
            f"paths.quarantine_dir {quarantine} is not on the filesystem of paths.media_root "
            f"{media}; files are moved there by rename, never copied"
        )


def reconcile(
    settings: Settings,
    apply: bool = False,
    progress: Progress | None = None,
    now: float | None = None,
    min_age: float | None = None,
    catalog: Catalog | None = None,
) -> ReconcileReport:
    """Compare the media root with the catalog; with ``apply``, repair what does not agree.

    ``min_age`` (default: the longest request) is how old a pending row, an orphan file or a
    claim must be before it is judged; 0 is only safe while no app is running.
    """
    progress = progress or NoProgress("reconcile")
    limit, before = cutoff(settings, now, min_age)
    report = ReconcileReport(applied=apply, min_age_seconds=limit)
    store = MediaStore(settings.paths.media_root, settings.uploads.durable)
    if apply:
        _check_quarantine(settings)

    def aside(media_id: str, reason: str, row: MediaRecord | None) -> None:
        # The file may never have been linked (a pending row) or be gone already.
        with contextlib.suppress(FileNotFoundError):
            path, quarantine = store.path_for(media_id), settings.paths.quarantine_dir
            report.quarantined.append(_quarantine(path, quarantine, media_id, reason, row))

    own_catalog = catalog is None
    catalog = catalog or open_catalog(settings.paths.database, settings.uploads.durable)
    try:
        files = _scan_files(store, report, progress)
        ready: set[str] = set()
        pending: dict[str, MediaRecord] = {}
        for record in catalog.all_records():
            progress.step()
            if record.state == "pending":
                pending[record.id] = record
            else:
                ready.add(record.id)
        report.rows_scanned = len(ready) + len(pending)

        for media_id, changed in files.items():
            if media_id in ready or media_id in pending:
                continue
            if changed >= before:
                report.recent += 1
                continue
            report.orphan_files.append(media_id)
            if apply and catalog.get(media_id) is None:
                aside(media_id, "orphan", None)

        for media_id, record in pending.items():
            if _timestamp(record.created_at) >= before:
                report.recent += 1
                continue
            report.stale_pending.append(media_id)
            if apply:
                catalog.discard([media_id], None)
                # Only a pending row is discarded; if it became ready meanwhile, keep all.
                if catalog.get(media_id) is None:
                    aside(media_id, "pending", record)

        for media_id in sorted(ready - files.keys()):
            if store.path_for(media_id).exists():
                continue  # linked after the scan: nothing is lost
            report.lost.append(media_id)
            if apply:
                catalog.delete(media_id)

        report.stale_claims = _stale_claims(settings.paths.database, before)
        if apply:
            for claim in report.stale_claims:
                # Deletes the claim only while it is still unfinished (media_ids IS NULL).
                catalog.discard([], claim)
    finally:
        progress.finish()
        if own_catalog:
            catalog.close()
    return report
