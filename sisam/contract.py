"""The declaration contract (``shared/contract.md``): columns, types and the score table.

This module is the single source of truth for the fixed interface between sisam and the
data customs administrations hold. The contract never changes; it may only be extended
with optional columns, which readers pass through untouched.
"""

from __future__ import annotations

from typing import Final

#: Key of a declaration item.
KEY: Final = ("declaration_id", "item_no")

#: Column name -> contract type. Order is the contract's order.
#: Types: "string" (kept verbatim, leading zeros included), "integer", "date" (YYYY-MM-DD),
#: "number" (float).
COLUMNS: Final[dict[str, str]] = {
    "declaration_id": "string",
    "item_no": "integer",
    "date": "date",
    "importer_id": "string",
    "exporter_id": "string",
    "manufacturer_id": "string",
    "broker_id": "string",
    "customs_office": "string",
    "hs_code": "string",
    "description": "string",
    "origin_country": "string",
    "acquisition_country": "string",
    "transport_mode": "string",
    "incoterm": "string",
    "currency": "string",
    "quantity": "number",
    "unit": "string",
    "net_weight_kg": "number",
    "customs_value_usd": "number",
    "freight_usd": "number",
    "insurance_usd": "number",
    "tax_regime": "string",
    "preferential_claim": "string",
    "ex_tariff_claim": "string",
    "import_licence": "string",
    "related_party": "string",
    "fx_coverage": "string",
    "valuation_method": "string",
    "import_duty_rate": "number",
    "ipi_rate": "number",
    "pis_rate": "number",
    "cofins_rate": "number",
    "antidumping_rate": "number",
    "countervailing_rate": "number",
}

STRING_COLUMNS: Final = tuple(c for c, t in COLUMNS.items() if t == "string")
NUMBER_COLUMNS: Final = tuple(c for c, t in COLUMNS.items() if t == "number")

#: Columns whose values are codes of fixed width: a shorter value means the file lost
#: leading zeros (a spreadsheet read "01012100" as a number).
FIXED_WIDTH_CODES: Final[dict[str, int]] = {"hs_code": 8}

#: The 30 error types of the contract (section 3), in the contract's order: the label order
#: of every count table and the column order of every score file.
ERROR_IDS: Final = (
    "hs_code", "hs_chapter", "description", "origin_country", "acquisition_country",
    "exporter", "manufacturer", "related_party", "import_licence", "tax_regime",
    "preferential_claim", "ex_tariff_claim", "import_duty_rate", "ipi_rate", "pis_rate",
    "cofins_rate", "antidumping", "countervailing", "undervaluation", "overvaluation",
    "net_weight", "quantity", "unit", "incoterm", "freight", "insurance", "currency",
    "transport_mode", "fx_coverage", "valuation_method",
)

#: Table names of a synthetic world / a learning run, as written on disk.
WORLD_TABLES: Final = ("history", "rectified", "test", "truth")

SCORE_PREFIX: Final = "p_"
SCORE_ANY: Final = "p_any"
