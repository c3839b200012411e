"""geofence.hotpath._mmdbdata.country_at: a country database's record read in place.

The first address that leads to a data record has it decoded; in place, only the country
and subdivision codes are read, and the record goes to the maxminddb reader whenever it is
not of the plain shape (see geofence/hotpath/_mmdbdata.c). Checked here: every record of every
test database gives the reader's answer and none is left to the reader; hand-made records of
every data type, size form and pointer form; UTF-8 accepted exactly as Python accepts it; and
seeded damage to a real file's data section, where an answer in place must be the one the
pure-Python maxminddb decoder gives for the damaged bytes (or none at all).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import random
import struct
from pathlib import Path
from typing import Any

import maxminddb
import pytest
from maxminddb.decoder import Decoder

import geofence
from geofence._errors import DatabaseError
from geofence.clientip._addresses import parse_ip
from geofence.geoip import _mmdb as mmdb
from geofence.geoip._databases import COUNTRY
from geofence.geoip._tree import SEPARATOR
from geofence.hotpath import load

MMDBDATA = load("_mmdbdata")
pytestmark = pytest.mark.skipif(
    MMDBDATA is None,
    reason="geofence.hotpath._mmdbdata is not loaded (not built, or GEOFENCE_PURE_PYTHON)",
)

ROOT = Path(__file__).parents[2]
SOURCES = [Path("/work/shared/testdata/maxmind"), ROOT / "tests" / "data"]
CITY = Path("/work/shared/testdata/maxmind/test-data/GeoIP2-City-Test.mmdb")


def _country_databases() -> list[Path]:
    seen: dict[str, Path] = {}
    for source in SOURCES:
        for path in sorted(source.rglob("*.mmdb")):
            seen.setdefault(hashlib.sha256(path.read_bytes()).hexdigest(), path)
    found = []
    for path in sorted(seen.values()):
        try:
            mmdb.open_mmdb(str(path), COUNTRY, mmdb.MODES["auto"]).close()
        except Exception:  # not a country database, or refused at load: not read at all
            continue
        found.append(path)
    return found


# -- a small encoder of the MaxMind DB data format, for hand-made records -----------------------


def _control(kind: int, size: int) -> bytes:
    if size < 29:
        head, extra = size, b""
    elif size < 285:
        head, extra = 29, bytes([size - 29])
    elif size < 65821:
        head, extra = 30, (size - 285).to_bytes(2, "big")
    else:
        head, extra = 31, (size - 65821).to_bytes(3, "big")
    if kind <= 7:
        return bytes([kind << 5 | head]) + extra
    return bytes([head, kind - 7]) + extra


class Raw(bytes):
    """Bytes already encoded (a pointer, a key of another type): written as they are."""


def encode(value: Any) -> bytes:
    if isinstance(value, Raw):
        return bytes(value)
    if isinstance(value, bool):
        return _control(14, int(value))
    if isinstance(value, str):
        raw = value.encode()
        return _control(2, len(raw)) + raw
    if isinstance(value, bytes):
        return _control(4, len(value)) + value
    if isinstance(value, float):
        return _control(3, 8) + struct.pack(">d", value)
    if isinstance(value, int):
        kind = 8 if value < 0 else 5 if value < 1 << 16 else 6 if value < 1 << 32 else 10
        raw = value.to_bytes(4, "big", signed=True) if kind == 8 else _unsigned(value)
        return _control(kind, len(raw)) + raw
    if isinstance(value, list):
        return _control(11, len(value)) + b"".join(encode(item) for item in value)
    if isinstance(value, dict):
        items = b"".join(encode(key) + encode(v) for key, v in value.items())
        return _control(7, len(value)) + items
    raise TypeError(value)


def _unsigned(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def pointer(target: int) -> bytes:
    """A pointer field to ``target`` (from the data section's start), in the shortest form."""
    if target < 2048:
        return bytes([1 << 5 | target >> 8, target & 255])
    if target < 2048 + (1 << 19):
        value = target - 2048
        return bytes([1 << 5 | 1 << 3 | value >> 16]) + (value & 0xFFFF).to_bytes(2, "big")
    if target < 526336 + (1 << 27):
        value = target - 526336
        return bytes([1 << 5 | 2 << 3 | value >> 24]) + (value & 0xFFFFFF).to_bytes(3, "big")
    return bytes([1 << 5 | 3 << 3]) + target.to_bytes(4, "big")


def country_at(data: bytes, offset: int = 0) -> Any:
    assert MMDBDATA is not None
    return MMDBDATA.country_at(data, 0, offset)


def _string_keys(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _string_keys(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_string_keys(item) for item in value)
    return True


def reference(data: bytes, offset: int = 0) -> Any:
    """What the pure-Python maxminddb decoder says of the record: (country, subdivisions)
    in country_at's shape, or None for anything country_at must leave to the reader."""
    try:
        record, _ = Decoder(data, 0).decode(offset)
    except Exception:
        return None
    if not isinstance(record, dict) or not _string_keys(record):
        return None  # libmaxminddb refuses a map key that is not a string
    country = record.get("country")
    code = None
    if country is not None:
        if not isinstance(country, dict) or not isinstance(country.get("iso_code"), str):
            return None
        code = country["iso_code"]
    subdivisions = record.get("subdivisions")
    codes = None
    if subdivisions is not None:
        if not isinstance(subdivisions, list) or len(subdivisions) > 64:
            return None
        found = []
        for entry in subdivisions:
            if not isinstance(entry, dict):
                return None
            sub = entry.get("iso_code")
            if sub is not None and not isinstance(sub, str):
                return None
            found.append(sub)
        codes = tuple(found)
    return (code, codes)


# -- every record of every test database -----------------------------------------------------------


@pytest.mark.parametrize("path", _country_databases(), ids=lambda p: p.name)
def test_every_record_read_in_place_is_the_readers_answer(path: Path) -> None:
    db = mmdb.open_mmdb(str(path), COUNTRY, mmdb.MODES["auto"])
    reader = maxminddb.open_database(str(path), maxminddb.MODE_MMAP)
    try:
        assert db.tree is not None and db._in_place
        records: dict[int, Any] = {}
        for network, raw in reader:
            ip = parse_ip(str(network.network_address))
            records.setdefault(db.tree.leaf(ip), raw)
        assert records
        for record, raw in records.items():
            try:
                expected = db._decode(raw)
            except DatabaseError:  # a damaged record (tests/data): the reader's to report
                expected = None
            assert db._read_in_place(record) == expected, (path.name, raw)
    finally:
        reader.close()
        db.close()


@pytest.mark.parametrize("mode", ["memory", "file"])
def test_a_reader_mode_that_does_not_map_the_file_reads_through_the_reader(mode: str) -> None:
    db = mmdb.open_mmdb(str(CITY), COUNTRY, mmdb.MODES[mode])
    assert db.tree is not None and db.tree.data is None and not db._in_place
    db.close()


def test_an_engine_decides_the_same_with_records_read_in_place_and_by_the_reader() -> None:
    def engine(reader: str) -> geofence.Engine:
        return geofence.Engine.from_config(
            {
                "rules": [{"name": "r", "action": "block", "regions": ["GB-ENG", "US", "CN"]}],
                "geoip": {"country_db": str(CITY), "reader": reader},
            }
        )

    in_place, by_reader = engine("auto"), engine("memory")
    reader = maxminddb.open_database(str(CITY), maxminddb.MODE_MMAP)
    addresses = [str(network.network_address) for network, _ in reader]
    reader.close()
    decided = [
        [
            (d.action, d.country, d.subdivisions)
            for d in (e.decide(geofence.RequestInfo(peer=ip, path="/")) for ip in addresses)
        ]
        for e in (in_place, by_reader)
    ]
    assert decided[0] == decided[1]
    assert {action for action, _, _ in decided[0]} == {"allow", "block"}


# -- hand-made records ---------------------------------------------------------------------------

ODD_VALUES: list[Any] = [
    1.5,
    -7,
    2**40,
    2**100,
    True,
    False,
    b"\x00\xff",
    "x" * 28,
    "y" * 29,
    "z" * 300,
    "w" * 70_000,
    [],
    [1, "two", [3.0], {"four": 4}],
    {"nested": {"deeper": {"deepest": [True]}}},
    "Åland 日本 🌍",
]


@pytest.mark.parametrize("value", ODD_VALUES, ids=[str(i) for i in range(len(ODD_VALUES))])
def test_values_no_rule_reads_are_skipped_whatever_their_type_and_size(value: Any) -> None:
    record = {"continent": value, "country": {"names": value, "iso_code": "DE"}, "x": value}
    data = encode(record)
    assert country_at(data) == ("DE", None) == reference(data)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({}, (None, None)),
        ({"registered_country": {"iso_code": "FR"}}, (None, None)),
        ({"country": {"iso_code": "FR"}}, ("FR", None)),
        ({"country": {"iso_code": "FR"}, "subdivisions": []}, ("FR", ())),
        (
            {
                "subdivisions": [{"iso_code": "ENG"}, {"names": {"en": "X"}}],
                "country": {"iso_code": "GB"},
            },
            ("GB", ("ENG", None)),
        ),
        # the last of two equal keys, as a dict built from the record keeps it
        (
            {"country": {"iso_code": "FR"}, Raw(b"\x47country"): Raw(encode({"iso_code": "IT"}))},
            ("IT", None),
        ),
        # left to the reader: not the plain shape
        ([1, 2], None),
        ("a string", None),
        ({"country": {"names": {"en": "France"}}}, None),  # a country without a code
        ({"country": {"iso_code": 250}}, None),
        ({"country": "FR"}, None),
        ({"subdivisions": {"iso_code": "ENG"}}, None),
        ({"subdivisions": ["ENG"]}, None),
        ({"subdivisions": [{"iso_code": 1}]}, None),
        ({Raw(b"\xa1\x01"): 1}, None),  # a map key that is not a string (a uint16)
    ],
)
def test_records_of_each_shape(record: Any, expected: Any) -> None:
    data = encode(record)
    assert country_at(data) == expected
    assert reference(data) == expected


def test_values_behind_pointers_of_every_size_are_followed() -> None:
    # Targets past 0, 2,048 and 526,336 bytes of padding take pointers of 2, 3 and 4 bytes.
    for padding in (0, 3000, 600_000):
        pad = b"\x00" * padding
        country = encode({"iso_code": "JP"})
        key = encode("country")
        record_at = len(pad) + len(country) + len(key)
        # a map of one pair whose key and value are both pointers
        record = bytes([7 << 5 | 1]) + pointer(len(pad) + len(country)) + pointer(len(pad))
        data = pad + country + key + record
        assert country_at(data, record_at) == ("JP", None) == reference(data, record_at)


def test_a_five_byte_pointer_past_the_end_is_not_followed() -> None:
    target = 526336 + (1 << 27)
    assert pointer(target)[0] == 0x38
    assert country_at(bytes([7 << 5 | 1]) + encode("country") + pointer(target)) is None


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes([7 << 5 | 1]),  # a map whose pair is missing
        bytes([7 << 5 | 1]) + encode("country"),  # a key without a value
        bytes([7 << 5 | 1]) + encode("country") + bytes([1 << 5]),  # a cut pointer
        bytes([7 << 5 | 1]) + encode("country") + pointer(0),  # a pointer to the record itself
        bytes([7 << 5 | 1]) + encode("x") + bytes([3 << 5 | 4]) + b"\x00" * 4,  # 4-byte double
        bytes([7 << 5 | 1]) + encode("x") + bytes([5, 8]) + b"\x00" * 4,  # 4-byte float
        bytes([7 << 5 | 1]) + encode("x") + bytes([0xA3]) + b"\x00" * 3,  # 3-byte uint16
        bytes([7 << 5 | 1]) + encode("x") + bytes([14, 7]),  # boolean of size 14
        bytes([7 << 5 | 1]) + encode("x") + bytes([0, 5]),  # a data cache container
        bytes([7 << 5 | 1]) + encode("x") + bytes([0, 6]),  # an end marker
        bytes([7 << 5 | 1]) + encode("x") + bytes([0, 9]),  # no such type
        bytes([7 << 5 | 1]) + encode("x") + bytes([2 << 5 | 29]),  # a size byte missing
        bytes([7 << 5 | 1]) + encode("x") + bytes([2 << 5 | 5]) + b"ab",  # a string cut short
        encode(functools.reduce(lambda inner, key: {key: inner}, "abcdefghijklmnopqrst", {})),
    ],
)
def test_malformed_data_is_left_to_the_reader(data: bytes) -> None:
    assert country_at(data) is None


def test_a_pointer_to_a_pointer_is_refused() -> None:
    inner = encode({"iso_code": "FR"})
    first = pointer(0)
    record_at = len(inner) + len(first)
    data = inner + first + bytes([7 << 5 | 1]) + encode("country") + pointer(len(inner))
    assert country_at(data, record_at) is None


def test_offsets_and_starts_outside_the_buffer() -> None:
    assert MMDBDATA is not None
    data = encode({"country": {"iso_code": "FR"}})
    assert MMDBDATA.country_at(data, 0, 0) == ("FR", None)
    for start, offset in [(0, len(data)), (0, -1), (-1, 0), (len(data) + 1, 0), (0, 2**40)]:
        assert MMDBDATA.country_at(data, start, offset) is None
    with pytest.raises(TypeError):
        MMDBDATA.country_at("not a buffer", 0, 0)
    with pytest.raises(TypeError):
        MMDBDATA.country_at(data, 0)


def _utf8_record(raw: bytes) -> bytes:
    return (
        bytes([7 << 5 | 2])
        + encode("names")
        + _control(2, len(raw))
        + raw
        + encode("country")
        + encode({"iso_code": "FR"})
    )


def _decodes(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_utf8_is_accepted_exactly_as_python_accepts_it() -> None:
    samples = [bytes([a]) for a in range(256)]
    samples += [bytes([a, b]) for a in range(0xC0, 0x100) for b in range(0x70, 0xD0)]
    rng = random.Random(20261206)
    leads = [0xE0, 0xE1, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF4, 0xF5]
    for _ in range(20_000):
        size = rng.choice((3, 4))
        lead = rng.choice(leads)
        tail = bytes(
            rng.choice((0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0)) for _ in range(size - 1)
        )
        samples.append(bytes([lead]) + tail)
        samples.append(bytes([lead]) + tail[:-1])  # cut short
    for raw in samples:
        assert (country_at(_utf8_record(raw)) is not None) == _decodes(raw), raw.hex()


# -- damage to a real file's data section ---------------------------------------------------------


def test_seeded_damage_to_a_data_section_never_gives_an_answer_the_decoder_would_not() -> None:
    data = CITY.read_bytes()
    reader = maxminddb.open_database(str(CITY), maxminddb.MODE_MMAP)
    meta = reader.metadata()
    start = meta.node_count * meta.record_size // 4 + SEPARATOR
    db = mmdb.open_mmdb(str(CITY), COUNTRY, mmdb.MODES["auto"])
    assert db.tree is not None
    offsets = sorted(
        {
            db.tree.leaf(parse_ip(str(network.network_address))) - meta.node_count - SEPARATOR
            for network, _ in reader
        }
    )
    reader.close()
    db.close()
    end = data.rindex(b"\xab\xcd\xefMaxMind.com")
    rng = random.Random(7)
    answered = refused = 0
    for _ in range(300):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            damaged[rng.randrange(start, end)] = rng.randrange(256)
        section = bytes(damaged[start:])
        # the pointer targets checked, kept across the records of this file as a database does
        checked = bytearray((len(data) - start + 7) // 8)
        for offset in rng.sample(offsets, 8):
            assert MMDBDATA is not None
            got = MMDBDATA.country_at(bytes(damaged), start, offset, checked)
            if got is None:
                refused += 1
                continue
            answered += 1
            assert got == reference(section, offset), offset
    assert answered > 1000 and refused > 10, (answered, refused)


def test_ipv6_networks_of_the_test_database_are_in_place_too() -> None:
    db = mmdb.open_mmdb(str(CITY), COUNTRY, mmdb.MODES["mmap_ext"])
    assert db._in_place
    ip = parse_ip(str(ipaddress.ip_address("2a02:cf40::1")))
    answer, _ = db.find_prefix(ip)
    db.close()
    assert answer == mmdb.open_mmdb(str(CITY), COUNTRY, mmdb.MODES["memory"]).find(ip)


def test_a_pointer_target_marked_checked_is_not_checked_again() -> None:
    assert MMDBDATA is not None
    names = _control(2, 2) + b"\xc3\x28"  # invalid UTF-8, behind a pointer
    record_at = len(names)
    data = names + bytes([7 << 5 | 2]) + encode("names") + pointer(0) + encode("country")
    data += encode({"iso_code": "FR"})
    checked = bytearray(len(data))
    assert MMDBDATA.country_at(data, 0, record_at, checked) is None
    assert checked == bytearray(len(data))  # a target that failed is not marked
    checked[0] = 1  # as if the value at offset 0 had been checked
    assert MMDBDATA.country_at(data, 0, record_at, checked) == ("FR", None)
    assert MMDBDATA.country_at(data, 0, record_at, bytearray(len(data))) is None
    good = encode({"en": "France"}) + bytes([7 << 5 | 2]) + encode("names") + pointer(0)
    good += encode("country") + encode({"iso_code": "FR"})
    checked = bytearray(len(good))
    at = len(encode({"en": "France"}))
    assert MMDBDATA.country_at(good, 0, at, checked) == ("FR", None)
    assert checked[0] == 1  # the target checked, now marked
    assert MMDBDATA.country_at(good, 0, at, bytearray(0)) == ("FR", None)  # too short: unused
    assert MMDBDATA.country_at(good, 0, at, None) == ("FR", None)
    with pytest.raises(BufferError):
        MMDBDATA.country_at(good, 0, at, bytes(len(good)))  # read-only
