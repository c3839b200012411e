"""MaxMind DB files: opened, type-checked and smoke-tested at load, then looked up with caches.

Every way a file can be wrong (missing, a directory, unreadable, empty, still compressed,
truncated, corrupt, the wrong kind of database) is a :class:`ConfigError` naming the setting,
raised while the engine is built. Nothing from ``maxminddb`` escapes as-is.

``maxminddb`` itself (about 9 MB of resident memory with what it imports) is imported when the
first file is opened, not with this module: an engine on the embedded default never needs it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import mmap
import os
import stat
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Generic, TypeVar

from geofence._cache import BoundedCache, bounded_put
from geofence._errors import ConfigError, DatabaseError
from geofence.clientip._addresses import IP
from geofence.geoip._kinds import CACHE_SIZE, Kind, _signature
from geofence.geoip._records import RecordDecoder
from geofence.geoip._tree import MAX_NODES, SEPARATOR, SearchTree, TreeError, read_children
from geofence.hotpath import load

if TYPE_CHECKING:
    import maxminddb

T = TypeVar("T")
logger = logging.getLogger("geofence")

# geofence.hotpath._mmdbdata (geofence/hotpath/_mmdbdata.c), or None: a country database's
# records read in place, from a memory map of the file (see MaxMindDB._read_in_place).
_IN_PLACE = load("_mmdbdata")
# The reader modes that map the file themselves: only then does geofence map it too, so that
# "memory" and "file" keep meaning that the file is not mapped.
_MAPPED_MODES = frozenset({0, 1, 2})
COUNTRY_KEY = "geoip.country_db"  # the kind whose records are read in place

# maxminddb's MODE_* values (its documented API, checked against it by the tests), written
# out so that naming a mode does not import the reader.
MODES = {
    "auto": 0,  # MODE_AUTO
    "mmap_ext": 1,  # MODE_MMAP_EXT
    "mmap": 2,  # MODE_MMAP
    "memory": 8,  # MODE_MEMORY
    "file": 4,  # MODE_FILE
}
# Search-tree leaves decoded at load from the start of the IPv4 and the global IPv6 space:
# enough to reach corrupt data in a damaged file, a few milliseconds on a full-size one.
WALK_LEAVES = 64
_IPV6_GLOBAL = 0x2000 << 112

# Magic numbers of what people download instead of the .mmdb itself.
_ARCHIVES = (
    (0, b"\x1f\x8b", "gzip-compressed"),
    (0, b"PK\x03\x04", "a zip archive"),
    (0, b"BZh", "bzip2-compressed"),
    (0, b"\xfd7zXZ\x00", "xz-compressed"),
    (0, b"\x28\xb5\x2f\xfd", "zstd-compressed"),
    (257, b"ustar", "a tar archive"),
)


def has_extension() -> bool:
    try:
        from maxminddb import extension
    except ImportError:
        return False
    return hasattr(extension, "Reader")


def reader_mode(name: str) -> int:
    if name == "mmap_ext" and not has_extension():
        raise ConfigError(
            "geoip.reader",
            "'mmap_ext' needs the maxminddb C extension, which is not installed here "
            "(install a maxminddb wheel for this platform, or use 'auto' or 'mmap')",
        )
    return MODES[name]


class MaxMindDB(Generic[T]):
    """One opened, validated file and the answers it gave. Looked up from many threads."""

    reloads = 0  # a plain database never changes (see reloading.Reloading)

    def __init__(
        self,
        reader: maxminddb.Reader,
        kind: Kind[T],
        *,
        path: str,
        database_type: str,
        build_epoch: int,
        has_subdivisions: bool,
        ipv4_only: bool,
        signature: tuple[int, ...],
        tree: SearchTree | None = None,
    ) -> None:
        self.reader = reader
        self.signature = signature  # of the file as it was just before it was opened
        self.path = path
        self.database_type = database_type
        self.build_epoch = build_epoch
        self.has_subdivisions = has_subdivisions
        self.description = f"{database_type} database {path!r}"
        self.cache: BoundedCache[str, T] = BoundedCache(CACHE_SIZE)
        self._decode = kind.decoder(RecordDecoder())
        self._ipv4_only = ipv4_only
        self._empty = kind.empty
        # find(): the search tree walked here, and answers by data pointer, so a record is
        # decoded once however many networks lead to it. Without a tree, find() is lookup().
        self.tree = tree
        self.answers: BoundedCache[int, T] = BoundedCache(CACHE_SIZE)
        # Only the country kind's records are read in place; the tree carries the mapped
        # file only for that kind (open_mmdb).
        self._in_place = tree is not None and tree.data is not None and _IN_PLACE is not None
        self._checked: bytearray | None = None  # see _read_in_place
        # The codes read in place -> their answer: a database holds many records per country
        # (they differ in what is not read), and each is decoded once (see _read_in_place).
        self._by_codes: dict[tuple[str | None, tuple[str | None, ...] | None], T] = {}

    def find_prefix(self, ip: IP) -> tuple[T, int]:
        """:meth:`find`, and how many leading bits of ``ip`` the answer holds for (the
        network the search tree's walk ended in; the full width without a tree)."""
        tree = self.tree
        if tree is None:
            return self.lookup(ip.text), 32 if ip.version == 4 else 128
        if ip.version == 6 and self._ipv4_only:
            return self._empty, 0  # every IPv6 address
        try:
            record, prefix = tree.leaf_prefix(ip)
        except TreeError as error:
            raise DatabaseError(
                f"{self.description}: lookup of {ip.text} failed: {error}"
            ) from None
        answer = self.answers.get(record)
        if answer is None:
            answer = self._decode_record(record, ip)
        return answer, prefix

    def finder(self) -> Callable[[IP], tuple[T, int]]:
        """:meth:`find_prefix`, compiled for the common case when geofence.hotpath._native is loaded
        (see SearchTree.finder): for a caller that asks on every new client (the engine)."""
        if self.tree is None:
            return self.find_prefix
        return self.tree.finder(
            self.answers, self.find_prefix, ipv6=not self._ipv4_only, decode=self._decode_record
        )

    def find(self, ip: IP) -> T:
        """The answer for a parsed address; raises DatabaseError like :meth:`lookup`."""
        tree = self.tree
        if tree is None:
            return self.lookup(ip.text)
        if ip.version == 6 and self._ipv4_only:
            return self._empty  # as in miss(): IPv6 is simply not in an IPv4-only database
        try:
            record = tree.leaf(ip)
        except TreeError as error:
            raise DatabaseError(
                f"{self.description}: lookup of {ip.text} failed: {error}"
            ) from None
        answer = self.answers.get(record)
        if answer is None:
            answer = self._decode_record(record, ip)
        return answer

    def _decode_record(self, record: int, ip: IP) -> T:
        """The answer for search tree ``record``, which the walk for ``ip`` ended on."""
        assert self.tree is not None
        if record == self.tree.node_count:
            answer = self._decode(None)
        else:
            try:
                self.tree.check(record)
            except TreeError as error:
                raise DatabaseError(
                    f"{self.description}: lookup of {ip.text} failed: {error}"
                ) from None
            found = self._read_in_place(record) if self._in_place else None
            # The reader reads the same file (see _load_tree) and walks to the same record: it
            # decodes every record _read_in_place leaves (and raises for a damaged one).
            answer = found if found is not None else self._read(ip.text, found_by_tree=True)
        return self.answers.put(record, answer)

    def _read_in_place(self, record: int) -> T | None:
        """The answer for data record ``record`` from the two codes a country rule reads,
        taken from the mapped file in C (about 1 % of what the reader's full record costs);
        None when the record is not of the plain shape that reads (the reader then decodes
        it, and reports what is wrong with it)."""
        tree = self.tree
        assert tree is not None and tree.data is not None and _IN_PLACE is not None
        data, start = tree.data
        checked = self._checked
        if checked is None:  # one bit per byte of the data section, made on first use
            checked = self._checked = bytearray((len(data) - start + 7) // 8)
        try:
            parts = _IN_PLACE.country_at(data, start, record - tree.node_count - SEPARATOR, checked)
        except ValueError:  # the map is closed (close()): the reader reports it
            return None
        if parts is None:
            return None
        known = self._by_codes.get(parts)
        if known is not None:
            return known
        country, subdivisions = parts
        # The same decoder as the reader's records go through, on just the keys it reads.
        raw: dict[str, object] = {}
        if country is not None:
            raw["country"] = {"iso_code": country}
        if subdivisions is not None:
            raw["subdivisions"] = [{} if c is None else {"iso_code": c} for c in subdivisions]
        try:
            answer = self._decode(raw)
        except DatabaseError:
            return None
        return bounded_put(self._by_codes, CACHE_SIZE, parts, answer)

    def lookup(self, ip: str) -> T:
        hit = self.cache.get(ip)
        if hit is not None:
            return hit
        return self.miss(ip)

    def miss(self, ip: str) -> T:
        # Documented: a native IPv6 client is simply not in an IPv4-only database.
        answer = self._empty if self._ipv4_only and ":" in ip else self._read(ip)
        return self.cache.put(ip, answer)

    def _read(self, ip: str, *, found_by_tree: bool = False) -> T:
        """The reader's record for ``ip``, decoded; DatabaseError naming the file and address."""
        try:
            record = self.reader.get(ip)
        except Exception as error:
            raise DatabaseError(f"{self.description}: lookup of {ip} failed: {error}") from None
        if record is None and found_by_tree:
            raise DatabaseError(
                f"{self.description}: lookup of {ip} failed: the reader found no record where "
                "the search tree has one"
            )
        try:
            return self._decode(record)
        except DatabaseError as error:
            # Name the file and the address: with two databases, say which one is damaged.
            raise DatabaseError(f"{self.description}: record for {ip}: {error}") from None

    def built(self) -> str:
        try:
            built = datetime.fromtimestamp(self.build_epoch, timezone.utc)
            return built.strftime("%Y-%m-%d %H:%M UTC")
        except (OverflowError, OSError, ValueError):
            return f"epoch {self.build_epoch}"

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.reader.close()
        if self.tree is not None and self.tree.data is not None:
            with contextlib.suppress(Exception):  # BufferError: a lookup reads it right now
                self.tree.data[0].close()

    def __del__(self) -> None:
        # Runs when no thread can reach this database any more (the reloader dropped it and
        # no lookup holds it): the moment its mmap / file descriptor can be released safely.
        # Not contextlib.suppress: at interpreter exit this module's globals may be None.
        try:  # noqa: SIM105
            self.close()
        except Exception:  # noqa: S110
            pass


def open_mmdb(path: str, kind: Kind[T], mode: int) -> MaxMindDB[T]:
    """Open ``path`` and prove it can answer; ConfigError(kind.key, reason) otherwise."""
    key = kind.key
    file_signature = _check_file(path, key)
    # Here, once per file opened (at engine build and at each reload), never per lookup.
    import maxminddb

    try:
        reader = maxminddb.open_database(path, mode)
    except OSError as error:
        raise ConfigError(key, f"{path!r} cannot be read ({_short(error)})") from None
    except Exception as error:
        raise ConfigError(
            key,
            f"{path!r} is not a valid MaxMind DB file ({_short(error)}); it may be truncated "
            "or corrupt: download it again",
        ) from None
    # Records read in place need the file mapped; only for country databases (the reader's
    # whole record is what the other kinds read anyway) and only if the reader maps it too.
    in_place = _IN_PLACE is not None and kind.key == COUNTRY_KEY and mode in _MAPPED_MODES
    try:
        return _validate(reader, path, kind, file_signature, in_place=in_place)
    except BaseException:
        with contextlib.suppress(Exception):
            reader.close()
        raise


def _check_file(path: str, key: str) -> tuple[int, ...]:
    fix = "point it at the .mmdb file"
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise ConfigError(key, f"{path!r} does not exist; {fix}") from None
    except (OSError, ValueError) as error:
        raise ConfigError(key, f"{path!r} cannot be read ({_short(error)})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ConfigError(key, f"{path!r} is a directory; {fix} inside it")
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(key, f"{path!r} is not a regular file; {fix}")
    if st.st_size == 0:
        raise ConfigError(key, f"{path!r} is empty (an interrupted download?); download it again")
    try:
        with open(path, "rb") as file:
            head = file.read(512)
    except OSError as error:
        raise ConfigError(key, f"{path!r} cannot be read ({_short(error)})") from None
    for offset, magic, what in _ARCHIVES:
        if head[offset : offset + len(magic)] == magic:
            raise ConfigError(key, f"{path!r} is {what}; decompress it first and {fix} it contains")
    return _signature(st)


def _validate(
    reader: maxminddb.Reader,
    path: str,
    kind: Kind[T],
    file_signature: tuple[int, ...],
    *,
    in_place: bool = False,
) -> MaxMindDB[T]:
    key = kind.key
    try:
        metadata = reader.metadata()
        database_type = metadata.database_type
        ip_version = metadata.ip_version
        build_epoch = metadata.build_epoch
        node_count = metadata.node_count
        record_size = metadata.record_size
    except Exception as error:
        raise ConfigError(key, f"{path!r} has corrupt metadata ({_short(error)})") from None
    if not isinstance(database_type, str) or ip_version not in (4, 6):
        raise ConfigError(key, f"{path!r} has corrupt metadata; download it again")
    has_subdivisions = kind.subdivisions(database_type)
    if has_subdivisions is None:
        raise ConfigError(
            key, f"{path!r} is a {_printable(database_type)} database; {key} needs {kind.wants}"
        )
    try:
        _walk(reader, 0, 32)
        if ip_version == 6:
            _walk(reader, _IPV6_GLOBAL, 128)
    except Exception as error:
        raise ConfigError(
            key, f"{path!r} is corrupt: a test lookup failed ({_short(error)}); download it again"
        ) from None
    return MaxMindDB(
        reader,
        kind,
        path=path,
        database_type=database_type,
        build_epoch=build_epoch if isinstance(build_epoch, int) else 0,
        has_subdivisions=has_subdivisions,
        ipv4_only=ip_version == 4,
        signature=file_signature,
        tree=_load_tree(path, file_signature, node_count, record_size, ip_version, in_place),
    )


def _load_tree(
    path: str,
    file_signature: tuple[int, ...],
    node_count: int,
    record_size: int,
    ip_version: int,
    in_place: bool = False,
) -> SearchTree | None:
    """The file's search tree, or None (find() then uses the reader) if it cannot be had safely.

    The tree must come from the very file the reader opened: the file is replaced on disk by
    renaming a new one over it, and a tree from one file with records from another would give
    wrong answers. So it is read only while the path still names the file, unchanged, that it
    named before the reader opened it.
    """
    if node_count > MAX_NODES:
        logger.info(
            "%r: %d search tree nodes, more than the %d geofence copies into memory; "
            "new addresses are looked up with the maxminddb reader",
            path,
            node_count,
            MAX_NODES,
        )
        return None
    if node_count <= 0:
        return None  # nothing to walk; the reader gives its own verdict
    try:
        with open(path, "rb") as file:
            if _signature(os.fstat(file.fileno())) != file_signature:
                return None
            children = read_children(file, node_count, record_size)
            # Mapped before the second check, so that the map is of the file the check saw.
            mapped = _map(file.fileno()) if in_place else None
            after = os.fstat(file.fileno())
    except (OSError, ValueError):
        return None
    if children is None or _signature(after) != file_signature:
        return None
    tree = SearchTree(
        children,
        node_count=node_count,
        record_size=record_size,
        ip_version=ip_version,
        file_size=after.st_size,
    )
    if mapped is not None and len(mapped) == after.st_size:
        tree.data = (mapped, node_count * record_size // 4 + SEPARATOR)
    return tree


def _map(fd: int) -> mmap.mmap:
    """A read-only map of the open file ``fd``. Python's mmap keeps a duplicate of the file
    descriptor before 3.13 (one more open descriptor per database); from 3.13 it need not."""
    if sys.version_info >= (3, 13):
        return mmap.mmap(fd, 0, access=mmap.ACCESS_READ, trackfd=False)
    return mmap.mmap(fd, 0, access=mmap.ACCESS_READ)


def _walk(reader: maxminddb.Reader, start: int, bits: int) -> None:
    """Decode the first leaves of the search tree from ``start``, network after network."""
    make = ipaddress.IPv4Address if bits == 32 else ipaddress.IPv6Address
    # The C reader refuses a tree record that points into the 16-byte separator before the
    # data section; the pure-Python reader decodes the zeros there as an empty record. Check
    # it ourselves so that a file is accepted or refused the same way in every reader mode.
    find = getattr(reader, "_find_address_in_tree", None)
    node_count = reader.metadata().node_count
    address = start
    for _ in range(WALK_LEAVES):
        if address >> bits:
            return
        packed = make(address).packed
        _, prefix = reader.get_with_prefix_len(make(address))
        if not 0 <= prefix <= bits:
            raise ValueError(f"impossible prefix length {prefix}")
        if find is not None:
            record, _ = find(bytearray(packed))
            if node_count < record < node_count + 16:
                raise ValueError("a search tree record points into the data section separator")
        shift = bits - prefix
        address = ((address >> shift) + 1) << shift


def _printable(text: str, limit: int = 64) -> str:
    """``text`` as is when it is plain, else escaped: file contents end up in messages."""
    return text[:limit] if text.isprintable() else repr(text[:limit])


def _short(error: BaseException) -> str:
    detail = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    return _printable(f"{type(error).__name__}: {detail}" if detail else type(error).__name__, 200)
