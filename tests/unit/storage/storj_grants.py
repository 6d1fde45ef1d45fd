"""Build and take apart Storj access grants offline, so libuplink can be tested without a satellite.

A grant is base58check(version 0) of the protobuf ``Scope{satellite_addr=1, api_key=2,
encryption_access=3}``; the API key is a macaroon (version 2; identifier packets for head and
caveats, then the signature) and each caveat a protobuf ``Caveat``. Only what the tests need.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field

import base58

SATELLITE = "12EayRS2V1kEsWESU9QMRseFhdxYxKicsiFmxrsLZHeLUtdps3S@127.0.0.1:7777"
AES_GCM = 2


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def decode_fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """Top-level protobuf fields as (number, varint value or bytes)."""
    fields: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        tag, pos = _read_varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _read_varint(data, pos)
            fields.append((number, value))
        elif wire == 2:
            length, pos = _read_varint(data, pos)
            fields.append((number, data[pos : pos + length]))
            pos += length
        elif wire == 1:
            fields.append((number, data[pos : pos + 8]))
            pos += 8
        elif wire == 5:
            fields.append((number, data[pos : pos + 4]))
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return fields


def make_grant(*, with_key: bool = True, satellite: str = SATELLITE) -> str:
    """A syntactically valid grant with a fresh API key and (optionally) a root encryption key."""
    head = os.urandom(32)
    secret = os.urandom(32)
    tail = hmac.new(secret, head, hashlib.sha256).digest()
    macaroon = bytes([2]) + _varint(2) + _varint(len(head)) + head + b"\x00" + b"\x00"
    macaroon += _varint(6) + _varint(len(tail)) + tail
    encryption = (_field(1, os.urandom(32)) if with_key else b"") + _varint(3 << 3) + _varint(AES_GCM)
    scope = _field(1, satellite.encode()) + _field(2, macaroon) + _field(3, encryption)
    return base58.b58encode_check(b"\x00" + scope).decode()


@dataclass
class Grant:
    """The parts of a decoded grant that sharing changes."""

    satellite: str
    caveats: list[list[tuple[int, int | bytes]]] = field(default_factory=list)
    has_default_key: bool = False
    store_entries: list[list[tuple[int, int | bytes]]] = field(default_factory=list)


def decode_grant(serialized: str) -> Grant:
    """Decode a serialized grant far enough to check its caveats and encryption store."""
    raw = base58.b58decode_check(serialized)
    assert raw[0] == 0, "grant version byte"
    scope = dict(decode_fields(raw[1:]))
    macaroon = scope[2]
    assert isinstance(macaroon, bytes) and macaroon[0] == 2
    packets: list[tuple[int, bytes]] = []
    pos = 1
    while pos < len(macaroon):
        kind, pos = _read_varint(macaroon, pos)
        if kind == 0:
            packets.append((0, b""))
            continue
        length, pos = _read_varint(macaroon, pos)
        packets.append((kind, macaroon[pos : pos + length]))
        pos += length
    identifiers = [data for kind, data in packets if kind == 2]
    encryption = scope.get(3, b"")
    assert isinstance(encryption, bytes)
    enc_fields = decode_fields(encryption)
    satellite = scope[1]
    assert isinstance(satellite, bytes)
    return Grant(
        satellite=satellite.decode(),
        caveats=[decode_fields(c) for c in identifiers[1:]],
        has_default_key=any(n == 1 for n, _ in enc_fields),
        store_entries=[decode_fields(v) for n, v in enc_fields if n == 2 and isinstance(v, bytes)],
    )
