"""A source file's bytes before any CSV splitting: read within the size limit, refused if binary,
a declared legacy encoding transcoded to UTF-8.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from recon.errors import InputRefused

UTF8_BOM = codecs.BOM_UTF8


def too_large(display: str, max_bytes: int) -> InputRefused:
    return InputRefused(f"file is over the {max_bytes:,}-byte limit", file=display,
                        next_step="check the upstream export, or raise RECON_MAX_FILE_BYTES")


def read_bytes(path: Path, display: str, max_bytes: int) -> bytes:
    """The bytes of `path`; a file over `max_bytes` is refused without reading more than that."""
    try:
        with path.open("rb") as handle:
            # One byte past the limit at most: a file still being written (or a device posing as
            # a file) cannot make us hold more than max_bytes.
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise InputRefused(f"cannot read file: {exc.strerror or exc}", file=display,
                           next_step="check the file exists and is readable") from exc
    if len(data) > max_bytes:
        raise too_large(display, max_bytes)
    return data


def is_utf8_text(data: bytes) -> bool:
    """Non-ASCII bytes that decode as UTF-8: text a declared legacy encoding would garble."""
    if data.isascii():
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def transcode(data: bytes, encoding: str, display: str) -> bytes:
    """Bytes in a declared non-UTF-8 encoding -> UTF-8; undecodable bytes stay marked.

    Undecodable bytes become lone surrogates (encoded with surrogatepass), which the readers below
    treat as invalid UTF-8, so their rows are rejected. A file whose bytes are in fact UTF-8 with
    non-ASCII text is refused: decoded as, say, GB18030 it would turn into mojibake that no row
    rule notices.
    """
    if is_utf8_text(data):
        raise InputRefused(
                f"the control file declares encoding {encoding}, but the bytes are UTF-8 text",
                file=display, next_step="correct or remove encoding= in the control file")
    try:
        text = data.decode(encoding, errors="surrogateescape")
    except (UnicodeError, ValueError, LookupError) as exc:
        # Bytes no escape can carry (an ASCII byte a UTF-16 or UTF-32 decoder cannot place), or a
        # codec that takes no error handler (idna, punycode): the file is not in that encoding.
        raise InputRefused(f"the bytes cannot be decoded as {encoding} "
                           f"({_decode_problem(exc)})", file=display,
                           next_step="correct or remove encoding= in the control file") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.encode("utf-8", errors="surrogatepass")


def _decode_problem(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"{exc.reason} at byte {exc.start:,}"
    return str(exc).split("(", 1)[0].strip() or type(exc).__name__


def is_utf8(encoding: str) -> bool:
    """`utf-8`, `UTF8`, `utf-8-sig`...: read by the UTF-8 path, which strips a BOM itself."""
    return codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")


def refuse_binary(data: bytes, display: str) -> None:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise InputRefused("file is UTF-16 text, not UTF-8", file=display,
                           next_step="ask the sender for a UTF-8 CSV export")
    if b"\x00" in data[:65536]:
        raise InputRefused("file holds NUL bytes: it is binary, not CSV text", file=display,
                           next_step="ask the sender for the CSV export")
