"""The catalog's rules on the world's coded columns (fast twin of ``sisam.labels``).

The world keeps its columns coded: tariff lines, countries, parties and other strings as
integer codes whose equality is the equality of the written strings (``sisam.synth.tables``
canonicalises descriptions so this holds even where two keys print alike), numbers as the
float64 values that are written. The rules of ``knowledge/errors.toml`` then reduce to
integer and float comparisons, evaluated here with the same float expressions as
``sisam.labels.rule_holds``, so that labels derived from the written tables equal these
exactly (tests/test_synth.py checks it).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from sisam.knowledge import ErrorType

#: Catalog error id -> the world's field it reads (see ``sisam.synth.trade.FIELDS``).
ERROR_FIELD = {
    "hs_code": "line", "hs_chapter": "line", "description": "desc", "origin_country": "origin",
    "acquisition_country": "acquisition", "exporter": "exporter", "manufacturer": "manufacturer",
    "related_party": "related", "import_licence": "licence", "tax_regime": "regime",
    "preferential_claim": "pref", "ex_tariff_claim": "ex", "import_duty_rate": "duty",
    "ipi_rate": "ipi", "pis_rate": "pis", "cofins_rate": "cofins", "antidumping": "ad",
    "countervailing": "cvd", "undervaluation": "value", "overvaluation": "value",
    "net_weight": "weight", "quantity": "quantity", "unit": "unit", "incoterm": "incoterm",
    "freight": "freight", "insurance": "insurance", "currency": "currency",
    "transport_mode": "mode", "fx_coverage": "fx", "valuation_method": "valuation",
}
#: The world's field -> the contract column it is written to.
FIELD_COLUMN = {
    "line": "hs_code", "desc": "description", "origin": "origin_country",
    "acquisition": "acquisition_country", "exporter": "exporter_id", "manufacturer": "manufacturer_id",
    "related": "related_party", "licence": "import_licence", "regime": "tax_regime",
    "pref": "preferential_claim", "ex": "ex_tariff_claim", "duty": "import_duty_rate", "ipi": "ipi_rate",
    "pis": "pis_rate", "cofins": "cofins_rate", "ad": "antidumping_rate", "cvd": "countervailing_rate",
    "value": "customs_value_usd", "weight": "net_weight_kg", "quantity": "quantity", "unit": "unit",
    "incoterm": "incoterm", "freight": "freight_usd", "insurance": "insurance_usd", "currency": "currency",
    "mode": "transport_mode", "fx": "fx_coverage", "valuation": "valuation_method",
}


def check_catalog(errors: tuple[ErrorType, ...]) -> None:
    """Refuse a catalog whose error types read other columns than the world writes them to."""
    for error in errors:
        field = ERROR_FIELD.get(error.id)
        if field is None or FIELD_COLUMN[field] != error.field:
            raise ValueError(
                f"the synthetic world cannot produce error type {error.id!r} on column {error.field!r}: "
                f"expected one of the contract's 30 error types on its own column")


def holds(error: ErrorType, declared: np.ndarray, rectified: np.ndarray, prefix_code: np.ndarray | None = None) -> np.ndarray:
    """Where ``error``'s rule holds between coded declared and rectified values.

    ``prefix_code`` maps a tariff-line code to the code of its first ``error.prefix``
    characters (needed by ``prefix_changed`` only).
    """
    d, r = declared, rectified
    rule, tol = error.rule, error.tolerance
    if rule == "changed":
        return d != r
    if rule == "prefix_changed":
        if prefix_code is None:
            raise ValueError(f"rule prefix_changed of {error.id!r} needs the prefix codes")
        return prefix_code[d] != prefix_code[r]
    if rule == "increased":
        return r > d
    if rule == "increased_beyond":
        return r > d * (1.0 + tol)
    if rule == "decreased_beyond":
        return r < d * (1.0 - tol)
    if rule == "differs_beyond":
        return np.abs(d - r) > tol * np.abs(r)
    raise ValueError(f"unknown rule {rule!r} of error type {error.id!r}")


def rule_matrix(errors: tuple[ErrorType, ...], declared: Mapping[str, np.ndarray],
                rectified: Mapping[str, np.ndarray], prefix_codes: Mapping[int, np.ndarray]) -> np.ndarray:
    """bool[n, len(errors)]: every error's rule between two aligned coded tables."""
    n = len(next(iter(declared.values())))
    out = np.zeros((n, len(errors)), dtype=bool)
    for j, error in enumerate(errors):
        field = ERROR_FIELD[error.id]
        out[:, j] = holds(error, declared[field], rectified[field], prefix_codes.get(error.prefix))
    return out
