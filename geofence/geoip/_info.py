"""Read-only facts about the databases an engine opened, for ``geofence validate``.

Nothing here opens a file or changes a database: it reads what the opened database already
knows (its metadata, through the very reader the engine looks up with), so that what is
reported is what the engine answers with.
"""

from __future__ import annotations

import contextlib
from importlib import metadata
from typing import Any

from geofence._record import record
from geofence.geoip._databases import EmbeddedCountryDB
from geofence.geoip._mmdb import MaxMindDB
from geofence.geoip._reloading import Reloading


@record(frozen=True)
class DatabaseInfo:
    """What one opened database is. ``embedded`` is the iptocc default (no file)."""

    embedded: bool
    description: str  # as the engine's messages name it
    path: str | None = None
    database_type: str | None = None  # metadata "database_type", e.g. "GeoIP2-City"
    build_epoch: int | None = None  # metadata "build_epoch": Unix seconds
    ip_version: int | None = None  # 4: an IPv4-only database; 6: both
    node_count: int | None = None  # search tree nodes (the format has no record count)
    record_size: int | None = None  # bits per search tree record
    title: str | None = None  # metadata "description" in English, if any
    has_subdivisions: bool = False
    follows_file: bool = False  # a replaced file is picked up (geoip.reload_interval > 0)
    reloads: int = 0
    # The embedded data's version (the iptocc distribution), which is all it says of its date.
    data_version: str | None = None


def describe(db: object) -> DatabaseInfo:
    """The facts of a database from :func:`geofence.geoip.open_country_db` and friends."""
    if isinstance(db, EmbeddedCountryDB):
        return DatabaseInfo(
            embedded=True, description=db.description, data_version=_iptocc_version()
        )
    follows = isinstance(db, Reloading)
    # The database answering now (Reloading swaps it when the file is replaced).
    current: Any = db._current if isinstance(db, Reloading) else db
    if not isinstance(current, MaxMindDB):
        return DatabaseInfo(embedded=False, description=str(getattr(db, "description", db)))
    meta = current.reader.metadata()
    titles = getattr(meta, "description", None)
    title = titles.get("en") if isinstance(titles, dict) else None
    return DatabaseInfo(
        embedded=False,
        description=current.description,
        path=current.path,
        database_type=current.database_type,
        build_epoch=current.build_epoch,
        ip_version=_int(getattr(meta, "ip_version", None)),
        node_count=_int(getattr(meta, "node_count", None)),
        record_size=_int(getattr(meta, "record_size", None)),
        title=title if isinstance(title, str) else None,
        has_subdivisions=current.has_subdivisions,
        follows_file=follows,
        reloads=int(getattr(db, "reloads", 0)),
    )


def _int(value: object) -> int | None:
    return value if isinstance(value, int) else None


def _iptocc_version() -> str | None:
    with contextlib.suppress(metadata.PackageNotFoundError):
        return metadata.version("iptocc")
    return None
