"""Gateway profiles (docs/FORMATS.md): one TOML file per gateway saying how its own file is read.

A profile names the gateway, where its file for D is found, the format and layout, which of its
fields feed the seven settlement columns, how its values read (amount unit, timestamp format,
status words) and how the file is proven complete. Profiles are read with the standard `tomllib`
and checked by the pydantic models below, so a mistake is a usage error naming the file, the key
and the problem, before any file of the night is opened.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Literal, Union

from pydantic import (BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError,
                      field_validator, model_validator)

from recon.arrival import is_text_encoding
from recon.codes import CodeMap, DEFAULT_SCHEMES, normalise_scheme, read_overrides
from recon.contract import RootCause
from recon.errors import UsageError
from recon.timetext import date_placeholders, time_pattern, zone_of

SETTLEMENT_COLUMNS = ("gateway_txn_id", "instruction_id", "amount", "status", "response_code",
                      "response_msg", "txn_time")
OPTIONAL_COLUMNS = ("response_code", "response_msg")
FORMATS = ("contract", "delimited", "fixed_width", "pain.002", "camt.054")
SETTLEMENT_VALUES = ("SUCCESS", "FAILED", "PENDING")
MAX_PROFILE_BYTES = 1 << 20

# What the ISO 20022 readers hand over as the status word, and what it means (CONTRACT 2.4.1).
# A profile's [status] map adds to these or overrides them.
ISO_STATUS_MAP = {
    "ACSC": "SUCCESS", "ACCP": "SUCCESS", "RJCT": "FAILED",
    "PDNG": "PENDING", "ACTC": "PENDING", "RCVD": "PENDING",
    # camt.054 entries: booked, pending, or returned (RtrInf present)
    "BOOK": "SUCCESS", "RTRN": "FAILED",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Constant(_Strict):
    constant: StrictStr


ColumnSource = Union[StrictStr, StrictInt, list[Union[StrictStr, StrictInt]], Constant]


class FixedField(_Strict):
    name: StrictStr = Field(min_length=1)
    width: StrictInt = Field(gt=0)
    start: StrictInt | None = Field(default=None, gt=0)  # 1-based byte position in the record


class Layout(_Strict):
    """How a text file (delimited or fixed-width) splits into lines, records and fields."""

    delimiter: StrictStr = ","
    quote: StrictStr = '"'  # "" = no quoting
    header_line: StrictInt = Field(default=1, ge=0)  # 0 = no header: columns by position
    first_data_line: StrictInt | None = Field(default=None, gt=0)
    trailer_lines: StrictInt = Field(default=0, ge=0)
    skip_matching: list[StrictStr] = []
    comment: StrictStr = ""
    field_prefix: StrictStr = ""
    trailing_delimiter: bool = False
    fields: list[FixedField] = []  # fixed_width only
    separator: StrictStr = ""  # fixed_width: one byte between fields, or none

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, value: str) -> str:
        if len(value) != 1 or value in "\r\n":
            raise ValueError("must be exactly one character (use \"\\t\" for a tab)")
        return value

    @field_validator("quote")
    @classmethod
    def _quote(cls, value: str) -> str:
        if len(value) > 1 or value in "\r\n" and value:
            raise ValueError('must be one character, or "" for no quoting')
        return value

    @field_validator("skip_matching")
    @classmethod
    def _regexes(cls, values: list[str]) -> list[str]:
        for value in values:
            _compile(value)
        return values


class Values(_Strict):
    amount_unit: Literal["yuan", "fen"] = "yuan"
    time_format: StrictStr = "contract"  # contract | iso | a pattern such as yyyyMMddHHmmss
    timezone: StrictStr | None = None  # default RECON_TIMEZONE

    @field_validator("time_format")
    @classmethod
    def _format(cls, value: str) -> str:
        time_pattern(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                zone_of(value)
            except Exception:
                raise ValueError(f"unknown time zone {value!r} (use a name such as "
                                 f"Asia/Shanghai or UTC, or an offset such as +08:00)") from None
        return value


class StatusRules(_Strict):
    map: dict[str, Literal["SUCCESS", "FAILED", "PENDING"]] = {}
    contains: dict[str, Literal["SUCCESS", "FAILED", "PENDING"]] = {}
    constant: Literal["SUCCESS", "FAILED", "PENDING"] | None = None


class Completeness(_Strict):
    method: Literal["ctl", "summary", "message", "marker"]
    file: StrictStr = ""  # ctl / marker: the name, with {name} {stem} placeholders
    pattern: StrictStr = ""  # summary (and a marker's content): count and total groups
    total_of: Literal["success", "all"] = "success"
    total_unit: Literal["yuan", "fen"] | None = None  # default: the file's amount unit

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        if value:
            compiled = _compile(value)
            if "count" not in compiled.groupindex:
                raise ValueError("the pattern needs a group (?P<count>...) for the record count")
        return value


class Codes(_Strict):
    scheme: StrictStr = "iso8583"
    table: StrictStr = ""  # CSV scheme,response_code,root_cause beside the profile


class Profile(_Strict):
    gateway: StrictStr = Field(min_length=1)
    format: Literal["contract", "delimited", "fixed_width", "pain.002", "camt.054"]
    files: StrictStr = ""  # glob in INBOX/<D>/ with {D:%Y%m%d}-style date placeholders
    member: StrictStr = "*"  # inside a zip: glob of the member(s) to read
    encoding: StrictStr = "utf-8"
    lists: Literal["all", "success_only"] = "all"
    layout: Layout = Layout()
    columns: dict[str, ColumnSource] = {}
    values: Values = Values()
    status: StatusRules = StatusRules()
    codes: Codes = Codes()
    completeness: Completeness
    source: Path = Field(default=Path(), exclude=True)

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str) -> str:
        if not is_text_encoding(value):
            raise ValueError(f"{value!r} is not a text encoding (use utf-8, gbk, gb18030, ...)")
        return value

    @field_validator("columns")
    @classmethod
    def _columns(cls, columns: dict) -> dict:
        unknown = sorted(set(columns) - set(SETTLEMENT_COLUMNS))
        if unknown:
            raise ValueError(f"unknown settlement column(s) {', '.join(unknown)}; the columns are "
                             f"{', '.join(SETTLEMENT_COLUMNS)}")
        return columns

    @field_validator("files")
    @classmethod
    def _files(cls, value: str) -> str:
        if "/" in value or "\\" in value:
            raise ValueError("is a file name pattern inside INBOX/<D>/, without folders")
        date_placeholders(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "Profile":
        text = self.format in ("delimited", "fixed_width")
        if self.format == "fixed_width" and not self.layout.fields:
            raise ValueError("layout.fields: a fixed_width profile lists its fields "
                             "([[layout.fields]] name, width)")
        if self.format == "fixed_width" and len(self.layout.separator.encode(self.encoding)) > 1:
            raise ValueError("layout.separator: must be one byte in the file's encoding, or \"\"")
        if self.format != "fixed_width" and self.layout.fields:
            raise ValueError("layout.fields: only a fixed_width profile has fields")
        if self.completeness.method == "summary" and not text:
            raise ValueError("completeness.method: summary lines are for delimited and "
                             "fixed_width files; XML uses method = \"message\"")
        if self.completeness.method == "summary" and not self.completeness.pattern:
            raise ValueError("completeness.pattern: method summary needs a pattern with "
                             "(?P<count>...) and (?P<total>...) groups")
        if self.completeness.method == "message" and self.format not in ("pain.002", "camt.054"):
            raise ValueError("completeness.method: message counts exist only in pain.002 and "
                             "camt.054 files")
        if self.format == "fixed_width":
            names = [field.name for field in self.layout.fields]
            repeated = sorted({name for name in names if names.count(name) > 1})
            if repeated:
                raise ValueError(f"layout.fields: field name(s) {', '.join(repeated)} appear "
                                 f"twice")
        if text or self.format == "contract":
            self._check_column_sources()
        if self.status.constant is None and "status" not in self.columns \
                and self.format in ("delimited", "fixed_width") and self.lists == "all":
            raise ValueError("columns.status: say which field holds the status, or give "
                             "status.constant (e.g. \"SUCCESS\" for a success-only file)")
        if self.lists == "success_only" and self.status.constant not in (None, "SUCCESS"):
            raise ValueError("status.constant: a success_only file's rows are SUCCESS")
        return self

    def _check_column_sources(self) -> None:
        required = [c for c in SETTLEMENT_COLUMNS if c not in OPTIONAL_COLUMNS and c != "status"]
        if self.format != "contract":
            missing = [column for column in required if column not in self.columns]
            if missing:
                raise ValueError(f"columns: no source for {', '.join(missing)} (a field name, "
                                 f"a position, a list of them, or {{ constant = \"...\" }})")
        names = {field.name for field in self.layout.fields}
        for column, source in self.columns.items():
            for part in source if isinstance(source, list) else [source]:
                if isinstance(part, bool):
                    raise ValueError(f"columns.{column}: give a field name or a position")
                if isinstance(part, int) and (self.format == "fixed_width" or part < 1):
                    raise ValueError(f"columns.{column}: positions are 1-based numbers of a "
                                     f"delimited file's fields")
                if isinstance(part, int) and self.format == "delimited" \
                        and self.layout.header_line:
                    continue
                if isinstance(part, str) and self.format == "fixed_width" and part not in names:
                    raise ValueError(f"columns.{column}: {part!r} is not one of layout.fields "
                                     f"({', '.join(sorted(names))})")
                if isinstance(part, str) and self.format == "delimited" \
                        and not self.layout.header_line:
                    raise ValueError(f"columns.{column}: a file without a header "
                                     f"(header_line = 0) names its fields by position (1, 2, ...)")

    # --- derived --------------------------------------------------------------------------------

    @property
    def key(self) -> str:
        return self.gateway.upper()

    def file_pattern(self) -> str:
        return self.files or f"settlement_{self.gateway}.csv"

    @property
    def scheme(self) -> str:
        """The scheme name rows of this gateway are read in (see with_profile_codes)."""
        base = normalise_scheme(self.codes.scheme)
        return f"{base}@{self.key.lower()}" if self.codes.table else base

    def status_words(self) -> dict[str, str]:
        words = dict(ISO_STATUS_MAP) if self.format in ("pain.002", "camt.054") else {}
        if self.format == "contract":
            words.update({"SUCCESS": "SUCCESS", "FAILED": "FAILED"})
        words.update({key.strip().upper(): value for key, value in self.status.map.items()})
        return words


def _compile(pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None


# --- loading ------------------------------------------------------------------------------------

class Profiles:
    """The configured gateways' profiles, by upper-cased gateway id."""

    def __init__(self, profiles: list[Profile] | None = None, folder: Path | None = None) -> None:
        self.by_gateway = {profile.key: profile for profile in profiles or []}
        self.folder = folder

    def __bool__(self) -> bool:
        return bool(self.by_gateway)

    def get(self, gateway: str) -> Profile | None:
        return self.by_gateway.get(gateway.upper())


def load_profiles(folder: Path | None) -> Profiles:
    """Every `*.toml` of `folder`; UsageError naming the file, key and problem on any mistake."""
    if folder is None:
        return Profiles()
    if not folder.is_dir():
        raise UsageError(f"{folder}: the profiles folder does not exist or is not a folder",
                         next_step="check --profiles / RECON_PROFILES")
    profiles: list[Profile] = []
    seen: dict[str, Path] = {}
    for path in sorted(folder.glob("*.toml")):
        profile = load_profile(path)
        if profile.key in seen:
            raise UsageError(f"{path}: key gateway: {profile.gateway!r} already has a profile "
                             f"({seen[profile.key].name})", next_step="keep one profile per gateway")
        seen[profile.key] = path
        profiles.append(profile)
    return Profiles(profiles, folder)


def load_profile(path: Path) -> Profile:
    try:
        data = path.read_bytes()[:MAX_PROFILE_BYTES + 1]
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the profile: {exc.strerror or exc}") from None
    if len(data) > MAX_PROFILE_BYTES:
        raise UsageError(f"{path}: a profile is at most {MAX_PROFILE_BYTES:,} bytes")
    try:
        document = tomllib.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise UsageError(f"{path}: the profile is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}",
                         next_step="see docs/FORMATS.md for the profile syntax") from None
    try:
        profile = Profile.model_validate({**document, "source": path})
    except ValidationError as exc:
        problems = "; ".join(_problem(error) for error in exc.errors())
        raise UsageError(f"{path}: {problems}",
                         next_step="see docs/FORMATS.md for the profile keys") from None
    if profile.codes.table:
        table = (path.parent / profile.codes.table)
        if not table.is_file():
            raise UsageError(f"{path}: key codes.table: {table} does not exist")
    elif not _known_scheme(profile.codes.scheme):
        raise UsageError(f"{path}: key codes.scheme: {profile.codes.scheme!r} is not a scheme of "
                         f"its own (iso8583, iso20022); give codes.table with its codes")
    return profile


def _known_scheme(scheme: str) -> bool:
    return normalise_scheme(scheme) in DEFAULT_SCHEMES


UNION_TAG = re.compile(r"str|int|list\[.*\]|Constant|function-.*|literal\[.*\]")


def _key(location: tuple) -> str:
    # pydantic names the union member it tried ("str", "list[...]"): those are not keys
    kept = [str(part) for part in location
            if not (isinstance(part, str) and UNION_TAG.fullmatch(part))]
    return ".".join(kept) or "(top level)"


def _problem(error: dict) -> str:
    key, message = _key(error["loc"]), _message(error)
    named = re.match(r"^([a-z_]+(?:\.[a-z_]+)*): (.*)$", message, re.S)
    if key == "(top level)" and named:  # a check across keys names its key first
        key, message = named.groups()
    return f"key {key}: {message}"


def _message(error: dict) -> str:
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        return "unknown key (misspelt? see docs/FORMATS.md)"
    if error["type"] == "missing":
        return "required key is missing"
    return message.removeprefix("Value error, ")


# --- response codes -----------------------------------------------------------------------------

def with_profile_codes(codes: CodeMap, profiles: Profiles) -> CodeMap:
    """`codes` plus one private scheme per profile that ships a code table.

    A profile's table is read in the --reason-codes format; its rows naming the profile's scheme
    make scheme `<scheme>@<GATEWAY>`, which starts as the section-5 scheme of that name (with the
    operator's overrides) when there is one, then takes the table's codes on top.
    """
    extra: dict[tuple[str, str], RootCause] = {}
    for profile in profiles.by_gateway.values():
        if not profile.codes.table:
            continue
        base = normalise_scheme(profile.codes.scheme)
        private = profile.scheme
        for (scheme, code), cause in codes.mapping.items():
            if scheme == base:
                extra[(private, code)] = cause
        table = read_overrides(profile.source.parent / profile.codes.table)
        rows = {(private, code): cause for (scheme, code), cause in table.items()
                if scheme == base}
        if not rows:
            raise UsageError(f"{profile.source}: key codes.table: no row of "
                             f"{profile.codes.table} names scheme {base!r}",
                             next_step="the table's scheme column must equal codes.scheme")
        extra.update(rows)
    if not extra:
        return codes
    merged = CodeMap()
    merged.mapping = {**codes.mapping, **extra}
    return merged


__all__ = ["Profile", "Profiles", "load_profiles", "load_profile", "with_profile_codes",
           "SETTLEMENT_COLUMNS"]
