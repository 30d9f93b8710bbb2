"""The file-level rules of CONTRACT section 2: a file's field rules applied to the table read
from it -> (typed valid frame, rejects), duplicate keys, and the reject-rate limit (2.6). Pure.

A row that breaks several rules is reported once, for the first broken column in the contract's
column order. Duplicate keys are resolved after the row rules: identical rows collapse to one,
differing versions of one key are all rejected.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recon.errors import InputRefused
from recon.frames import arrow_strings, dictionary_codes
from recon.protect import mask_cards_in_text
from recon.sources.rawtable import BAD_BYTES_REASON, RawTable, empty_rejects
from recon.validate import FileSpec, RuleContext, Validated


def missing_columns(raw: RawTable, spec: FileSpec) -> list[str]:
    present = set(raw.header or raw.frame.columns)
    return [column for column in spec.columns if column not in present]


def duplicated_columns(raw: RawTable, spec: FileSpec) -> list[str]:
    names = list(raw.header or raw.frame.columns)
    return [column for column in spec.columns if names.count(column) > 1]


def validate(raw: RawTable, spec: FileSpec, context: RuleContext) -> Validated:
    """Apply `spec`'s rules to `raw`; the caller has checked the required columns are present."""
    source = raw.frame[spec.columns]
    typed: dict[str, pd.Series] = {}
    first_failure = pd.Series(-1, index=source.index, dtype="int64")
    reasons = [check.reason for check in spec.checks]
    for position, check in enumerate(spec.checks):
        parsed, ok = check.parse(source[check.column], context)
        typed[check.column] = parsed
        first_failure = first_failure.mask((first_failure < 0) & ~ok.to_numpy(bool), position)
    typed_frame = pd.DataFrame(typed, index=source.index)
    columns = spec.columns
    for cross_check in spec.cross_checks:
        broken, column, reason = cross_check(typed_frame, context)
        position = len(reasons)
        reasons.append(reason)
        columns = columns + [column]
        first_failure = first_failure.mask((first_failure < 0) & broken.to_numpy(bool), position)

    failed = first_failure >= 0
    rejects = _rejects_frame(raw, source, failed, first_failure, columns, reasons)
    _sharpen_reasons(rejects, source, failed, first_failure, spec)
    typed_frame["line"] = raw.lines
    # Rows are dropped once, at the end: copying a million-row frame costs a few hundred ms.
    passed = ~failed.to_numpy()
    dropped, key_rejects, collapsed = resolve_duplicate_keys(typed_frame, passed, spec, raw.file)
    keep = passed & ~dropped
    valid = typed_frame if keep.all() else typed_frame[keep]
    all_rejects = pd.concat([raw.broken, rejects, key_rejects], ignore_index=True)
    all_rejects = all_rejects.sort_values("line", kind="stable", ignore_index=True)
    return Validated(raw.file, valid.reset_index(drop=True), all_rejects, raw.records, collapsed,
                     raw.cut)


def _rejects_frame(raw, source, failed, first_failure, columns, reasons) -> pd.DataFrame:
    if not failed.any():
        return empty_rejects()
    positions = first_failure[failed].to_numpy()
    column_names = np.asarray(columns, dtype=object)[positions]
    # One lookup per column named, not per rejected row: a wholly wrong file has a million.
    rows = source.index[failed.to_numpy()]
    values = np.empty(len(rows), dtype=object)
    for name in set(column_names):
        named = column_names == name
        values[named] = source.loc[rows[named], name].to_numpy(object)
    return pd.DataFrame({
        "file": raw.file,
        "line": raw.lines[failed.to_numpy()],
        "column": column_names,
        "value": values,
        "reason": np.asarray(reasons, dtype=object)[positions],
    })


def _sharpen_reasons(rejects: pd.DataFrame, source: pd.DataFrame, failed: pd.Series,
                     first_failure: pd.Series, spec: FileSpec) -> None:
    """Replace, in place, a rule's reason by its precise_reason where that has one."""
    if rejects.empty:
        return
    positions = first_failure[failed].to_numpy()
    for position, check in enumerate(spec.checks):
        named = positions == position
        if check.precise_reason is None or not named.any():
            continue
        precise = check.precise_reason(rejects.loc[named, "value"].astype("str"), check.column)
        better = (precise.str.len() > 0).to_numpy(bool)
        if better.any():
            rows = rejects.index[named][better]
            rejects.loc[rows, "reason"] = precise.to_numpy(object)[better]


def resolve_duplicate_keys(frame: pd.DataFrame, passed: np.ndarray, spec: FileSpec,
                           file: str) -> tuple[np.ndarray, pd.DataFrame, int]:
    """Among the rows that `passed` the row rules: collapse identical rows of one key; reject
    every row of a key seen with differing values. Returns (rows to drop, rejects, collapsed).

    Rows are compared by value, after parsing: `1234.5` and `1234.50` are the same amount.
    """
    no_drop = np.zeros(len(frame), dtype=bool)
    if not spec.key or not passed.any():
        return no_drop, empty_rejects(), 0
    key = list(spec.key)
    # Find repeated keys on integer codes (hashing millions of strings per row is slow), then
    # compare whole rows only among those.
    keys = frame[key] if passed.all() else frame.loc[passed, key]
    repeated_key = np.zeros(len(frame), dtype=bool)
    repeated_key[passed] = repeated(key_codes(keys, key))
    if not repeated_key.any():
        return no_drop, empty_rejects(), 0
    dropped, rejects, collapsed = _resolve_repeats(frame[repeated_key], spec, file)
    return frame.index.isin(dropped), rejects, collapsed


def repeated(codes: np.ndarray) -> np.ndarray:
    """True where a code occurs more than once. Dictionary codes are dense: counted directly."""
    if codes.size and 0 <= codes.min() and codes.max() < 4 * codes.size:
        return np.bincount(codes)[codes] > 1
    return pd.Series(codes).duplicated(keep=False).to_numpy()


def key_codes(frame: pd.DataFrame, key: list[str]) -> np.ndarray:
    """One int64 per row, equal exactly when the rows' `key` columns are equal."""
    codes = np.zeros(len(frame), dtype=np.int64)
    for column in key:
        values = frame[column]
        if pd.api.types.is_integer_dtype(values.dtype):
            column_codes = values.to_numpy(np.int64)
        else:
            column_codes = dictionary_codes(arrow_strings(values))[0]
        if column == key[0]:
            codes = column_codes
            continue
        span = int(column_codes.max(initial=0)) - int(column_codes.min(initial=0)) + 1
        if int(codes.max(initial=0)) < (1 << 62) // span:
            codes = codes * span + (column_codes - column_codes.min(initial=0))
        else:  # re-densify rather than overflow
            codes = pd.factorize(pd.MultiIndex.from_arrays([codes, column_codes]))[0].astype(
                np.int64)
    return codes


def _resolve_repeats(valid: pd.DataFrame, spec: FileSpec,
                     file: str) -> tuple[pd.Index, pd.DataFrame, int]:
    """Among rows whose key repeats: (index of rows to drop, their rejects, rows collapsed)."""
    key = list(spec.key)
    keyed = valid[spec.columns]
    repeated_key = keyed.duplicated(subset=key, keep=False)
    exact_repeat = keyed.duplicated(keep="first")
    distinct = keyed[repeated_key & ~exact_repeat]
    versions = distinct.groupby(key, sort=False, dropna=False).size()
    conflicting_keys = versions[versions > 1].index
    in_conflict = pd.Series(False, index=keyed.index)
    if len(conflicting_keys):
        key_index = pd.MultiIndex.from_frame(keyed[key]) if len(key) > 1 else pd.Index(keyed[key[0]])
        in_conflict = pd.Series(key_index.isin(conflicting_keys), index=keyed.index)
    collapsed_rows = exact_repeat & ~in_conflict
    rejected = valid[in_conflict]
    rejects = pd.DataFrame({
        "file": file,
        "line": rejected["line"].to_numpy(),
        "column": "/".join(key),
        "value": keyed.loc[rejected.index, key].astype(str).agg("/".join, axis=1).to_numpy()
        if len(rejected) else [],
        "reason": f"{'/'.join(key)} appears on several rows with different values",
    }) if len(rejected) else empty_rejects()
    return valid.index[in_conflict | collapsed_rows], rejects, int(collapsed_rows.sum())


def check_reject_rate(validated: Validated, max_reject_rate: float) -> None:
    """CONTRACT 2.6: a file with more than `max_reject_rate` of its rows rejected refuses the
    run, naming its first reject and, when the rejects look alike, what the file probably is."""
    if validated.rows_read == 0:
        return
    rate = validated.rows_rejected / validated.rows_read
    if rate > max_reject_rate:
        first = validated.rejects.iloc[0]
        cause, next_step = likely_cause(validated.rejects)
        raise InputRefused(
            f"{validated.rows_rejected} of {validated.rows_read} rows rejected ({rate:.1%}), over "
            f"the {max_reject_rate:.1%} limit; first: line {first['line']}, column "
            f"{first['column'] or '-'}: {first['reason']}{cause}",
            file=validated.file,
            next_step=next_step or "fix the upstream file, or rerun with a higher "
                                   "--max-reject-rate if the rows may really be left out")


def likely_cause(rejects: pd.DataFrame) -> tuple[str, str]:
    """What a file with mostly one kind of reject probably is, and what to do about it."""
    most = len(rejects) / 2
    bad_bytes = rejects["reason"].str.startswith(BAD_BYTES_REASON)
    if bad_bytes.sum() > most:
        return ("; the file does not look like UTF-8 (GB18030?)",
                "a settlement file declares its encoding in its .ctl (encoding=gb18030); "
                "the other files must be UTF-8: ask the sender to fix the file or its .ctl")
    due = rejects.loc[rejects["column"] == "due_date", "value"]
    if len(due) > most:
        return (mask_cards_in_text(f"; most rows are due {due.value_counts().index[0]}: these "
                                   f"look like another date's files"),
                "put each date's files in its own inbox folder, then rerun the date")
    return "", ""
