"""Labels: which error types an inspected item had, from its declared and rectified values.

The teacher of every sisam model is the pair (declared, rectified) of an item (contract.md,
sections 2 and 3): an error type is *found* on an inspected item when its rule holds between
the declared value ``d`` and the rectified value ``r`` of its field. An item absent from the
rectified table was not inspected, so its errors are *unknown*, which is not the same as
*absent*: the label matrix marks it -1, never 0, and learning leaves it out of the error
counts (hpb.md counts labelled items only).

The rules (architecture.md "Rules"; tolerances are relative to ``r``)::

    changed           strings: d.strip() != r.strip();  numbers: d != r as numbers
    prefix_changed    d.strip()[:prefix] != r.strip()[:prefix]
    increased         r > d
    increased_beyond  r > d * (1 + tolerance)
    decreased_beyond  r < d * (1 - tolerance)
    differs_beyond    |d - r| > tolerance * |r|

Missing values. The contract says an empty value means "not declared", so:

- strings: a missing value (None, NaN) is the empty string; "" and "  " and None are all
  the same value, so two missing values are unchanged and a missing value against "x" is a
  change;
- numbers: an empty string or NaN is *nothing declared*, which ranks below every number.
  Two missing values never make an error. One missing value makes ``changed`` and
  ``differs_beyond`` hold (no tolerance covers a value that appeared or vanished);
  ``increased`` and ``increased_beyond`` hold when only ``d`` is missing (the officer supplied
  a value the declarant left out, e.g. an antidumping rate); ``decreased_beyond`` holds when
  only ``r`` is missing.

Number columns given as strings (as read from a CSV) are compared as numbers: "5" and
"5.0" are the same rate, while the string column ``valuation_method`` keeps "1" and "01"
apart.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sisam.contract import COLUMNS, KEY

if TYPE_CHECKING:
    from sisam.knowledge import ErrorType

log = logging.getLogger("sisam.labels")

#: Value of the label matrix for an item that was not inspected (its errors are unknown).
UNLABELLED = -1

_STRING_RULES = ("changed", "prefix_changed")
_NUMBER_RULES = ("changed", "increased", "increased_beyond", "decreased_beyond", "differs_beyond")

ArrayLike = np.ndarray | pd.Series


def _as_stripped_strings(values: ArrayLike) -> pd.Series:
    """Strings with surrounding white space removed and missing values as ""."""
    series = pd.Series(np.asarray(values, dtype=object) if isinstance(values, np.ndarray) else values)
    return series.astype("str").where(series.notna(), "").str.strip()


def _as_numbers(values: ArrayLike) -> np.ndarray:
    """float64 values; strings are parsed as numbers, "" and missing become NaN.

    Raises ValueError naming the first value that is not a number, because a label computed
    from a mistyped value would silently be wrong.
    """
    array = np.asarray(values)
    if array.dtype.kind in "iufb":
        return array.astype(np.float64)
    series = pd.Series(array, dtype=object)
    text = series.where(series.notna(), "").astype("str").str.strip()
    numbers = pd.to_numeric(text.where(text != "", None), errors="coerce").to_numpy(np.float64)
    bad = np.isnan(numbers) & (text != "").to_numpy()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"cannot compare as numbers: expected a number or an empty value; "
            f"got {text.iloc[first]!r} at position {first}"
        )
    return numbers


def _string_rule(rule: str, declared: ArrayLike, rectified: ArrayLike, prefix: int) -> np.ndarray:
    d = _as_stripped_strings(declared)
    r = _as_stripped_strings(rectified)
    if rule == "prefix_changed":
        d = d.str.slice(0, prefix)
        r = r.str.slice(0, prefix)
    return (d.to_numpy(dtype=object) != r.to_numpy(dtype=object)).astype(bool)


def _number_rule(rule: str, declared: ArrayLike, rectified: ArrayLike, tolerance: float) -> np.ndarray:
    d = _as_numbers(declared)
    r = _as_numbers(rectified)
    d_missing = np.isnan(d)
    r_missing = np.isnan(r)
    one_missing = d_missing != r_missing
    # Comparisons with NaN are False, so the "both present" case falls out of plain numpy and
    # only the one-missing cases need the documented policy (module docstring).
    with np.errstate(invalid="ignore", over="ignore"):
        if rule == "changed":
            return (d != r) & ~(d_missing & r_missing)
        if rule == "increased":
            return (r > d) | (d_missing & ~r_missing)
        if rule == "increased_beyond":
            return (r > d * (1.0 + tolerance)) | (d_missing & ~r_missing)
        if rule == "decreased_beyond":
            return (r < d * (1.0 - tolerance)) | (r_missing & ~d_missing)
        # differs_beyond
        return (np.abs(d - r) > tolerance * np.abs(r)) | one_missing


def rule_holds(
    rule: str,
    declared: ArrayLike,
    rectified: ArrayLike,
    tolerance: float = 0.0,
    prefix: int = 0,
    column_type: str = "string",
) -> np.ndarray:
    """Where an error rule holds between declared and rectified values, element by element.

    Parameters
    ----------
    rule
        One of the rules of the module docstring (``knowledge/errors.toml`` names them).
    declared, rectified
        Values of the same contract column, aligned element by element (same length).
    tolerance
        Relative tolerance of the ``*_beyond`` rules (0.05 is 5 %), relative to ``r``.
    prefix
        Characters compared by ``prefix_changed`` (2 for the tariff chapter).
    column_type
        The contract type of the column: ``"string"`` or ``"number"``; it decides whether
        ``changed`` compares trimmed strings or numbers.

    Returns
    -------
    numpy.ndarray of bool, one element per item: True where the error is found.

    Examples
    --------
    >>> rule_holds("increased_beyond", [100.0, 100.0], [105.0, 105.5], tolerance=0.05,
    ...            column_type="number").tolist()
    [False, True]
    >>> rule_holds("changed", [" FOB", "5"], ["FOB", "5.0"]).tolist()
    [False, True]
    >>> rule_holds("changed", ["5", ""], ["5.0", ""], column_type="number").tolist()
    [False, False]
    """
    if len(declared) != len(rectified):
        raise ValueError(
            f"rule {rule!r}: declared and rectified values must be aligned; "
            f"got {len(declared)} declared and {len(rectified)} rectified values"
        )
    if column_type == "string":
        if rule not in _STRING_RULES:
            raise ValueError(
                f"rule {rule!r} does not apply to a string column; expected one of {_STRING_RULES}"
            )
        if rule == "prefix_changed" and prefix < 1:
            raise ValueError(f"rule 'prefix_changed' needs prefix >= 1; got {prefix}")
        return _string_rule(rule, declared, rectified, prefix)
    if column_type == "number":
        if rule not in _NUMBER_RULES:
            raise ValueError(
                f"rule {rule!r} does not apply to a number column; expected one of {_NUMBER_RULES}"
            )
        return _number_rule(rule, declared, rectified, tolerance)
    raise ValueError(f"unknown column type {column_type!r}; expected 'string' or 'number'")


def match_rectified(declared: pd.DataFrame, rectified: pd.DataFrame) -> np.ndarray:
    """Row of ``rectified`` holding each declared item, or -1 where it was not inspected.

    Items are matched by the key (declaration_id, item_no). Rectified rows without a declared
    row are ignored here (``sisam.declarations.check_pair`` reports them to the user).

    Raises ValueError if either table repeats a key: a repeated key would make the label of
    an item depend on row order.
    """
    for name, table in (("declared", declared), ("rectified", rectified)):
        repeated = table.duplicated(list(KEY), keep=False)
        if repeated.any():
            declaration_id, item_no = table.loc[repeated, list(KEY)].iloc[0].tolist()
            raise ValueError(
                f"{name} table repeats the key (declaration_id, item_no): expected each item "
                f"once; got {int(repeated.sum())} rows sharing keys, e.g. ({str(declaration_id)!r}, {int(item_no)})"
            )
    left = declared[list(KEY)].reset_index(drop=True)
    right = rectified[list(KEY)].reset_index(drop=True).assign(_row=np.arange(len(rectified)))
    merged = left.merge(right, how="left", on=list(KEY), sort=False)
    return merged["_row"].fillna(-1).to_numpy(np.int64)


def label_matrix(
    declared: pd.DataFrame, rectified: pd.DataFrame, errors: tuple[ErrorType, ...]
) -> np.ndarray:
    """The labels of every declared item: int8[len(declared), len(errors) + 1].

    Row i belongs to ``declared.iloc[i]``. Column j < len(errors) is 1 where error type
    ``errors[j]`` is found on the item and 0 where it is not; the last column ("any") is 1 where
    at least one error is found. An item with no rectified row was not inspected: its whole row
    is ``UNLABELLED`` (-1), because its errors are unknown, not absent (contract.md section 2).

    ``errors`` is ``load_knowledge().errors``; the column order is therefore
    ``Knowledge.label_ids``.
    """
    rows = match_rectified(declared, rectified)
    inspected = rows >= 0
    labels = np.full((len(declared), len(errors) + 1), UNLABELLED, dtype=np.int8)
    if not inspected.any():
        return labels
    found_any = np.zeros(int(inspected.sum()), dtype=bool)
    for j, error in enumerate(errors):
        d = declared[error.field].to_numpy()[inspected]
        r = rectified[error.field].to_numpy()[rows[inspected]]
        found = rule_holds(error.rule, d, r, error.tolerance, error.prefix, COLUMNS[error.field])
        labels[inspected, j] = found
        found_any |= found
    labels[inspected, -1] = found_any
    log.debug("labelled %d of %d items", int(inspected.sum()), len(declared))
    return labels
