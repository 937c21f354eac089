"""The synthetic world: contract, determinism, truth consistent with the catalog's rules,
realistic rates, non-random inspection, and the scheme only a combination reveals."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from sisam.contract import COLUMNS, ERROR_IDS, KEY
from sisam.declarations import read_declarations
from sisam.errors import SisamError
from sisam.knowledge import load_knowledge
from sisam.labels import label_matrix
from sisam.synth import WorldSummary, generate_world
from sisam.synth.actors import build_actors
from sisam.synth.geography import geography
from sisam.synth.inspection import INSPECTION_RATE, simulate
from sisam.synth.mechanisms import DRIFT_SHARE, build_mechanisms, scheme_personas
from sisam.synth.nomenclature import build_tariff
from sisam.synth.trade import build_trade

ERRORS = load_knowledge().errors
FIELD = {e.id: e.field for e in ERRORS}
DAYS = 180
TEST_DAYS = 20
TABLES = ("history", "rectified", "test", "truth", "rates")


def _files_digest(folder: Path, ext: str) -> dict[str, str]:
    return {name: hashlib.sha256((folder / f"{name}.{ext}").read_bytes()).hexdigest() for name in TABLES}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, WorldSummary]:
    out = tmp_path_factory.mktemp("world") / "w"
    return out, generate_world(30_000, DAYS, 11, out, test_days=TEST_DAYS)


@pytest.fixture(scope="module")
def tables(world: tuple[Path, WorldSummary]) -> dict[str, pd.DataFrame]:
    out, _ = world
    return {
        "history": read_declarations(out / "history.parquet"),
        "rectified": read_declarations(out / "rectified.parquet", kind="rectified"),
        "test": read_declarations(out / "test.parquet"),
        "truth": pd.read_parquet(out / "truth.parquet"),
    }


@pytest.fixture(scope="module")
def big_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, WorldSummary]:
    out = tmp_path_factory.mktemp("big") / "w"
    return out, generate_world(200_000, 365, 3, out, test_days=30)


def _history_truth(truth: pd.DataFrame) -> pd.DataFrame:
    return truth[truth["split"] == "history"].reset_index(drop=True)


# --- determinism and files ---------------------------------------------------------------------


def test_same_seed_gives_the_same_bytes_and_another_seed_another_world(tmp_path: Path) -> None:
    for name in ("a", "b"):
        generate_world(5_000, 60, 5, tmp_path / name, test_days=10)
    generate_world(5_000, 60, 6, tmp_path / "c", test_days=10)
    first = _files_digest(tmp_path / "a", "parquet")
    assert first == _files_digest(tmp_path / "b", "parquet")
    assert first["history"] != _files_digest(tmp_path / "c", "parquet")["history"]


def test_writes_atomically_and_leaves_no_temporary_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "w"
    generate_world(3_000, 30, 1, out, test_days=5)
    before = _files_digest(out, "parquet")
    calls = {"n": 0}
    real = pq.write_table

    def failing(table, where, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real(table, where, **kwargs)

    monkeypatch.setattr(pq, "write_table", failing)
    with pytest.raises(OSError, match="disk full"):
        generate_world(3_000, 30, 2, out, test_days=5)
    assert _files_digest(out, "parquet") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w"]


def test_csv_world_reads_back_and_derives_the_same_labels(tmp_path: Path) -> None:
    summary = generate_world(4_000, 60, 9, tmp_path / "csv", test_days=10, file_format="csv")
    assert [p.name for p in summary.files] == [f"{t}.csv" for t in TABLES]
    history = read_declarations(tmp_path / "csv" / "history.csv")
    rectified = read_declarations(tmp_path / "csv" / "rectified.csv", kind="rectified")
    truth = _history_truth(pd.read_csv(tmp_path / "csv" / "truth.csv", dtype={"declaration_id": str}))
    labels = label_matrix(history, rectified, ERRORS)
    found = truth[[f"found_{e}" for e in ERROR_IDS]].to_numpy()
    assert ((labels[:, :-1] == 1) == found).all()
    assert history["hs_code"].str.len().eq(8).all()


def test_arguments_out_of_range_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SisamError, match="file_format"):
        generate_world(100, 10, 1, tmp_path / "x", file_format="xlsx")
    with pytest.raises(SisamError, match="days must be at least 1"):
        generate_world(100, 0, 1, tmp_path / "x")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(("n_items", "days", "test_days"), [(1, 1, 0), (100, 1, 1), (300, 400, 0)])
def test_tiny_and_odd_worlds_are_generated(tmp_path: Path, n_items: int, days: int, test_days: int) -> None:
    summary = generate_world(n_items, days, 3, tmp_path / "w", test_days=test_days)
    truth = pd.read_parquet(tmp_path / "w" / "truth.parquet")
    assert summary.history_items + summary.test_items == n_items == len(truth)
    assert len(pd.read_parquet(tmp_path / "w" / "rectified.parquet")) == summary.inspected_items


def test_without_a_test_period_the_test_table_is_empty_but_typed(tmp_path: Path) -> None:
    summary = generate_world(2_000, 30, 4, tmp_path / "w", test_days=0)
    test = pd.read_parquet(tmp_path / "w" / "test.parquet")
    assert summary.test_items == 0 and len(test) == 0
    assert list(test.columns) == list(COLUMNS)


# --- contract ----------------------------------------------------------------------------------


def test_tables_have_the_contract_columns_and_types(world: tuple[Path, WorldSummary]) -> None:
    out, summary = world
    for name in ("history", "rectified", "test"):
        schema = pq.read_schema(out / f"{name}.parquet")
        assert schema.names == list(COLUMNS)
        for column, kind in COLUMNS.items():
            stored = str(schema.field(column).type)
            assert stored == {"string": "string", "integer": "int64", "date": "date32[day]", "number": "double"}[kind], column
    truth = pq.read_schema(out / "truth.parquet")
    expected = ["declaration_id", "item_no", "split", "inspected", "true_hs_code", "true_customs_value_usd",
                "true_import_duty_rate", "true_ipi_rate", "true_pis_rate", "true_cofins_rate",
                "true_antidumping_rate", "true_countervailing_rate"]
    for e in ERROR_IDS:
        expected += [f"p_{e}", f"e_{e}", f"found_{e}"]
    assert truth.names == expected
    assert str(truth.field("p_hs_code").type) == "double" and str(truth.field("e_hs_code").type) == "bool"
    assert summary.history_items + summary.test_items == 30_000


def test_keys_dates_and_codes_look_like_real_declarations(tables: dict[str, pd.DataFrame]) -> None:
    history, test = tables["history"], tables["test"]
    both = pd.concat([history, test], ignore_index=True)
    assert not both.duplicated(list(KEY)).any()
    assert both["declaration_id"].str.fullmatch(r"24\d{8}").all()
    first_items = both.groupby("declaration_id", sort=False)["item_no"].agg(["min", "max", "count"])
    assert (first_items["min"] == 1).all() and (first_items["max"] == first_items["count"]).all()
    assert history["date"].min() >= pd.Timestamp("2024-01-01")
    assert history["date"].max() < pd.Timestamp("2024-01-01") + pd.Timedelta(days=DAYS) <= test["date"].min()
    assert test["date"].max() < pd.Timestamp("2024-01-01") + pd.Timedelta(days=DAYS + TEST_DAYS)
    assert both["hs_code"].str.fullmatch(r"\d{8}").all()
    assert both["hs_code"].str[:2].isin([f"{c:02d}" for c in range(1, 98)]).all()
    assert both["origin_country"].str.fullmatch(r"[A-Z]{2}").all()
    assert set(both["currency"]) <= {"USD", "EUR", "GBP", "JPY", "CHF", "CNY", "BRL"}
    assert set(both["related_party"]) == {"Y", "N"}
    assert (both["customs_value_usd"] > 0).all() and (both["net_weight_kg"] > 0).all()
    kg = both["unit"] == "kg"
    assert (both.loc[kg, "quantity"] == both.loc[kg, "net_weight_kg"]).mean() > 0.95


def test_activity_is_heavy_tailed(tables: dict[str, pd.DataFrame]) -> None:
    history = tables["history"]
    items = history.groupby("declaration_id").size()
    assert items.median() <= 3 and items.max() >= 50
    per_importer = history["importer_id"].value_counts()
    top = per_importer.iloc[: max(1, len(per_importer) // 100)].sum() / len(history)
    assert top > 0.1  # the top 1 % of importers make over a tenth of the items
    assert history["hs_code"].value_counts().iloc[:100].sum() / len(history) > 0.15


def test_routes_are_consistent(tables: dict[str, pd.DataFrame]) -> None:
    history = tables["history"]
    eu = history["acquisition_country"].isin(["DE", "IT", "FR", "ES", "NL"])
    assert (history.loc[eu, "currency"] == "EUR").mean() > 0.4
    assert (history.loc[~eu, "currency"] == "USD").mean() > 0.85
    dense = history["customs_value_usd"] / history["net_weight_kg"]
    assert (history.loc[dense > 500, "transport_mode"] == "air").mean() > (history.loc[dense < 5, "transport_mode"] == "air").mean() + 0.3
    neighbours = history["acquisition_country"].isin(["AR", "UY", "PY"])
    assert (history.loc[neighbours, "transport_mode"] == "road").mean() > 0.4


# --- truth consistent with the rules ------------------------------------------------------------


def test_found_flags_equal_the_labels_derived_from_history_and_rectified(tables: dict[str, pd.DataFrame]) -> None:
    truth = _history_truth(tables["truth"])
    labels = label_matrix(tables["history"], tables["rectified"], ERRORS)
    assert ((labels[:, 0] >= 0) == truth["inspected"].to_numpy()).all()
    for j, e in enumerate(ERROR_IDS):
        assert ((labels[:, j] == 1) == truth[f"found_{e}"].to_numpy()).all(), e


def test_found_implies_an_inspected_real_error(tables: dict[str, pd.DataFrame]) -> None:
    truth = tables["truth"]
    for e in ERROR_IDS:
        found = truth[f"found_{e}"]
        assert not (found & ~truth[f"e_{e}"]).any(), e
        assert not (found & ~truth["inspected"]).any(), e
    assert not truth.loc[truth["split"] == "test", "inspected"].any()


def test_rectified_rows_differ_from_declared_only_in_fields_of_found_errors(tables: dict[str, pd.DataFrame]) -> None:
    history, rectified, truth = tables["history"], tables["rectified"], _history_truth(tables["truth"])
    declared = history[truth["inspected"].to_numpy()].reset_index(drop=True)
    found = truth[truth["inspected"]].reset_index(drop=True)
    assert (declared[list(KEY)].to_numpy() == rectified[list(KEY)].to_numpy()).all()
    changed_anywhere = False
    for column in COLUMNS:
        differs = (declared[column] != rectified[column]).to_numpy()
        allowed = np.zeros(len(declared), dtype=bool)
        for e in ERROR_IDS:
            if FIELD[e] == column:
                allowed |= found[f"found_{e}"].to_numpy()
        assert not (differs & ~allowed).any(), column
        changed_anywhere |= differs.any()
    assert changed_anywhere


def test_probabilities_are_calibrated(tables: dict[str, pd.DataFrame]) -> None:
    """Realised errors match the truth's probabilities within sampling noise.

    Declaration-level mechanisms strike every item of a declaration at once, so the noise
    bound treats a declaration's items as fully correlated (an upper bound of the variance).
    """
    truth = _history_truth(tables["truth"])
    declaration = pd.factorize(truth["declaration_id"])[0]
    for e in ERROR_IDS:
        p, y = truth[f"p_{e}"].to_numpy(), truth[f"e_{e}"].to_numpy()
        assert ((p >= 0) & (p <= 1)).all()
        size = np.bincount(declaration)
        mean_p = np.bincount(declaration, p) / size
        bound = 4.0 * np.sqrt((size**2 * mean_p * (1 - mean_p)).sum()) + 3.0
        assert abs(y.sum() - p.sum()) < bound, e
        assert not (y & (p == 0)).any(), e  # no error without a mechanism behind it


def test_a_corrected_code_also_corrects_what_follows_from_it(tables: dict[str, pd.DataFrame]) -> None:
    truth = _history_truth(tables["truth"])
    code_found = truth["found_hs_code"]
    assert (code_found & truth["found_import_duty_rate"]).sum() > 0
    assert not (truth["found_hs_chapter"] & ~code_found).any()


def test_true_values_agree_with_declared_and_rectified(tables: dict[str, pd.DataFrame]) -> None:
    truth, history = tables["truth"], tables["history"]
    h = _history_truth(truth)
    declared = history["hs_code"].to_numpy()
    true_code = h["true_hs_code"].to_numpy()
    assert ((declared != true_code) == h["e_hs_code"].to_numpy()).all()
    rect = tables["rectified"].set_index(["declaration_id", "item_no"])
    found = h[h["found_hs_code"]]
    assert len(found) > 0
    corrected = rect.loc[list(zip(found["declaration_id"], found["item_no"], strict=True)), "hs_code"]
    assert (corrected.to_numpy() == found["true_hs_code"].to_numpy()).all()
    value_ok = ~h["e_undervaluation"] & ~h["e_overvaluation"]
    assert (history["customs_value_usd"][value_ok] > 0).all() and (h["true_customs_value_usd"] > 0).all()


# --- rates, inspection, mechanisms ---------------------------------------------------------------


def test_error_rates_range_from_a_fraction_of_a_percent_to_a_few_percent(world: tuple[Path, WorldSummary]) -> None:
    _, summary = world
    rates = summary.true_rates
    assert set(rates) == set(ERROR_IDS)
    assert all(0.0003 <= r <= 0.06 for r in rates.values()), rates
    assert max(rates.values()) >= 0.02 and min(rates.values()) < 0.005
    assert all(0.0 <= r <= 0.2 for r in summary.found_rates.values())


def test_inspection_is_between_5_and_10_percent_and_targets_risk(tables: dict[str, pd.DataFrame]) -> None:
    truth = _history_truth(tables["truth"])
    inspected = truth["inspected"].to_numpy()
    assert 0.05 <= inspected.mean() <= 0.10
    any_error = truth[[f"e_{e}" for e in ERROR_IDS]].any(axis=1).to_numpy()
    assert any_error[inspected].mean() > 1.3 * any_error[~inspected].mean()
    assert INSPECTION_RATE == pytest.approx(inspected.mean(), abs=0.015)


def test_summary_renders_counts_and_every_error(world: tuple[Path, WorldSummary]) -> None:
    _, summary = world
    text = str(summary)
    assert f"{summary.history_items:,} history items" in text
    assert all(e in text for e in ERROR_IDS)
    assert len(text.splitlines()) < 20


def test_stale_rates_follow_a_rate_change(tables: dict[str, pd.DataFrame]) -> None:
    """IPI changes 30 % into the history; declarants keep the old rate for a while."""
    history, truth = tables["history"], _history_truth(tables["truth"])
    change = int(DAYS * 0.30)
    day = (history["date"] - pd.Timestamp("2024-01-01")).dt.days.to_numpy()
    ipi = truth["e_ipi_rate"].to_numpy()
    before = ipi[(day >= change - 25) & (day < change)].mean()
    after = ipi[(day >= change) & (day < change + 25)].mean()
    assert after > 3 * before


def test_schemes_stop_after_importers_are_caught() -> None:
    seed, n, days = 21, 40_000, 200
    geo = geography()
    tariff = build_tariff(seed, geo, days)
    actors = build_actors(seed, n, days + 10, days, tariff, geo)
    trade = build_trade(seed, n, days, days + 10, tariff, actors, geo)
    mechanisms, _ = build_mechanisms(seed, trade, tariff, actors, geo, days)
    simulate(seed, trade, tariff, actors, mechanisms, days)
    stopped = 0
    for mech in mechanisms:
        if mech.scheme < 0 or not mech.detected.any():
            continue
        importers = trade.importer[mech.items]
        caught_day = {}
        for imp, d in zip(importers[mech.detected], trade.day[mech.items][mech.detected], strict=True):
            caught_day.setdefault(int(imp), int(d))
        for imp, d in caught_day.items():
            later = (importers == imp) & (trade.day[mech.items] >= d + 14)
            if later.any() and (mech.q_effective[later] == 0).all():
                stopped += 1
                assert not mech.fired[later].any()
    assert stopped > 0


# --- every error occurs and is found; the combination-only scheme --------------------------------


@pytest.mark.slow
def test_every_error_type_occurs_and_is_found(big_world: tuple[Path, WorldSummary]) -> None:
    out, summary = big_world
    truth = _history_truth(pd.read_parquet(out / "truth.parquet"))
    for e in ERROR_IDS:
        assert truth[f"e_{e}"].sum() >= 50, e
        assert truth[f"found_{e}"].sum() >= 3, e
    assert 0.05 <= summary.inspected_items / summary.history_items <= 0.10


@pytest.mark.slow
def test_truth_probabilities_rank_errors_far_better_than_chance(big_world: tuple[Path, WorldSummary]) -> None:
    """The world's own knowledge (its mechanisms' probabilities) ranks every error type well:
    the 10 % of items it finds riskiest hold well over twice their share of each error."""
    out, _ = big_world
    truth = _history_truth(pd.read_parquet(out / "truth.parquet"))
    for e in ERROR_IDS:
        p, y = truth[f"p_{e}"].to_numpy(), truth[f"e_{e}"].to_numpy()
        top = np.argsort(-p, kind="stable")[: len(p) // 10]
        assert y[top].mean() > 2.0 * y.mean(), e


@pytest.mark.slow
def test_combination_scheme_is_invisible_to_each_attribute_alone(big_world: tuple[Path, WorldSummary]) -> None:
    out, summary = big_world
    scheme = summary.combination
    history = pd.read_parquet(out / "history.parquet", columns=["importer_id", "hs_code"])
    truth = _history_truth(pd.read_parquet(out / "truth.parquet", columns=["split", f"e_{scheme.error_id}"]))
    y = truth[f"e_{scheme.error_id}"].to_numpy()
    importer = history["importer_id"].to_numpy()
    heading = history["hs_code"].str[:4].to_numpy()
    in_pair = pd.MultiIndex.from_arrays([importer, heading]).isin(list(scheme.pairs))
    scheme_importer = np.isin(importer, [i for i, _ in scheme.pairs])
    scheme_heading = np.isin(heading, [h for _, h in scheme.pairs])
    base = y.mean()
    assert base == pytest.approx(scheme.base_rate, rel=0.2)
    # Each attribute alone: the scheme's importers and headings look like all others...
    assert 0.75 < y[scheme_importer].mean() / y[~scheme_importer].mean() < 1.33
    assert 0.75 < y[scheme_heading].mean() / y[~scheme_heading].mean() < 1.33

    def dispersion(keys: np.ndarray, min_items: int) -> float:
        counts = pd.DataFrame({"k": keys, "y": y}).groupby("k")["y"].agg(["sum", "count"])
        counts = counts[counts["count"] >= min_items]
        expected = counts["count"] * base
        return float(((counts["sum"] - expected) ** 2 / (expected * (1 - base))).mean())

    # ... and no importer or heading varies more than binomial noise would (dispersion ~ 1)...
    assert dispersion(importer, 100) < 1.5
    assert dispersion(heading, 100) < 1.5
    # ... while the pairs carry the error.
    assert y[in_pair].mean() > 5 * base
    assert y[in_pair].mean() > 8 * y[scheme_importer & ~in_pair].mean()


def test_drift_switches_schemes_on_its_day_and_leaves_earlier_days_alone(tmp_path: Path) -> None:
    persona = scheme_personas(5, 4000)
    moved = persona != np.arange(4000)
    assert sorted(persona.tolist()) == list(range(4000))  # a permutation: every scheme goes somewhere
    assert abs(moved.mean() - DRIFT_SHARE) < 0.05
    drift_day = 56  # a block boundary: earlier blocks' inspections see the same risks
    generate_world(12_000, 100, 5, tmp_path / "plain", test_days=20)
    generate_world(12_000, 100, 5, tmp_path / "drift", test_days=20, drift_day=drift_day)
    plain = pd.read_parquet(tmp_path / "plain" / "truth.parquet")
    drift = pd.read_parquet(tmp_path / "drift" / "truth.parquet")
    dates = pd.concat([pd.read_parquet(tmp_path / "plain" / f"{t}.parquet") for t in ("history", "test")])["date"]
    days = (pd.to_datetime(dates) - pd.Timestamp("2024-01-01")).dt.days.to_numpy()
    errors = [f"e_{e}" for e in ERROR_IDS]
    before = days < drift_day
    assert plain[errors][before].equals(drift[errors][before])
    assert plain["inspected"][before].equals(drift["inspected"][before])
    assert (plain[errors][~before].to_numpy() != drift[errors][~before].to_numpy()).any(axis=1).mean() > 0.005
    with pytest.raises(SisamError, match="drift_day must be between 1 and 119"):
        generate_world(1000, 100, 5, tmp_path / "bad", test_days=20, drift_day=120)


def test_rates_are_written_as_legislation_and_give_the_true_rates(world: tuple[Path, WorldSummary],
                                                                   tables: dict[str, pd.DataFrame]) -> None:
    from sisam.legislation import read_rates

    out, _ = world
    schedule = read_rates(out / "rates.parquet")
    truth = tables["truth"]
    dates = pd.concat([tables["history"], tables["test"]], ignore_index=True)["date"].to_numpy()
    sample = np.arange(0, len(truth), 7)
    for rate in ("ipi_rate", "pis_rate", "cofins_rate"):
        got = schedule.rate_at(rate, truth["true_hs_code"].to_numpy()[sample], dates[sample])
        assert np.array_equal(got, truth[f"true_{rate}"].to_numpy()[sample]), rate
    assert len(set(schedule.effective_dates)) == 5  # the first day and one change per rate
