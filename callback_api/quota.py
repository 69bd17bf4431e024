"""Per-item quotas: how many files and how many bytes one item may hold ([quota] settings).

Checked when the pending rows of an upload are inserted, before its file is linked, inside
the catalog's write transaction: of concurrent uploads to one item, exactly as many pass as
fit. Pending rows count, since they are files being stored. Over quota is 413 (the request is
too large for what the item has left; a retry only helps after a delete), never 507, which
is kept for a full disk: a 5xx tells clients to retry the same request, and that would fail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from callback_api.catalog import ItemUsage, MediaRecord
from callback_api.errors import QuotaExceeded
from callback_api.settings import Settings, size_bytes


@dataclass(frozen=True)
class ItemQuota:
    max_files: int | None
    max_bytes: int | None

    def check(self, usage: ItemUsage, adding: Sequence[MediaRecord]) -> None:
        """Raise 413 if storing ``adding`` would take the item past a limit."""
        new_bytes = sum(r.size for r in adding if r.item_id == usage.item_id)
        new_files = sum(1 for r in adding if r.item_id == usage.item_id)
        item = usage.item_id
        if self.max_files is not None and usage.files + new_files > self.max_files:
            raise QuotaExceeded(
                f"item {item!r} holds {usage.files} file(s); {new_files} more would pass its "
                f"quota of {self.max_files} file(s)"
            )
        if self.max_bytes is not None and usage.bytes + new_bytes > self.max_bytes:
            raise QuotaExceeded(
                f"item {item!r} holds {usage.bytes} bytes; {new_bytes} more would pass its "
                f"quota of {self.max_bytes} bytes"
            )


def quota_of(settings: Settings) -> ItemQuota | None:
    section = settings.quota
    max_bytes = (
        None if section.max_bytes_per_item is None else size_bytes(section.max_bytes_per_item)
    )
    if section.max_files_per_item is None and max_bytes is None:
        return None
    return ItemQuota(section.max_files_per_item, max_bytes)
