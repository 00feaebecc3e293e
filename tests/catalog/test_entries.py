"""Every entry of the shipped catalog reads with its declared reader and matches its schema;
pandas and dask agree; plain Intake reads the same files; samples are byte-identical."""

from __future__ import annotations

import intake
import pytest

from statbox.catalog.build import build_root
from statbox.catalog.metadata import DOMAINS
from statbox.catalog.samples import SCALE_NAMES, file_digests, generate
from statbox.catalog.samples.common import SCALES
from statbox.catalog.verify import dataset_findings, frame_findings, sample_problems
from tests.catalog.conftest import ROOT_CATALOG
from tests.conftest import REPO

pytestmark = pytest.mark.catalog

ENTRIES = sorted(intake.from_yaml_file(str(ROOT_CATALOG)).entries)
TABULAR = [
    name
    for name, entry in intake.from_yaml_file(str(ROOT_CATALOG)).entries.items()
    if entry.reader.rsplit(":", 1)[1] in ("PandasParquet", "PandasCSV")
]


def test_every_domain_has_entries_and_restricted_and_registered_levels_exist(root_catalog):
    entries = root_catalog.info.entries.values()
    assert {e.domain for e in entries} == set(DOMAINS)
    levels = {e.name: e.metadata.access.level.value for e in entries}
    assert levels["mobile_phone.events"] == "restricted"
    assert "registered" in levels.values()
    assert all(e.data_path == e.name.replace(".", "/", 1) for e in entries)


@pytest.mark.parametrize("name", ENTRIES)
def test_entry_reads_with_its_reader_and_matches_its_schema(root_catalog, name):
    info = root_catalog.info
    entry = info.entries[name]
    reader = root_catalog[name]
    assert type(reader).__module__ + ":" + type(reader).__name__ == entry.reader
    data = reader.read()
    schema = entry.metadata.schema_
    if schema.is_table:
        loose = not entry.datatype.endswith(":Parquet")
        assert len(data) > 0
        assert frame_findings(data, schema, loose=loose) == []
    else:
        assert dataset_findings(data, schema) == []
        data.close()
    assert sample_problems(info, entry) == []


@pytest.mark.parametrize("name", TABULAR)
def test_pandas_and_dask_agree_on_rows(root_catalog, name):
    frame = root_catalog[name].read()
    lazy = root_catalog.to_dask(name)
    assert type(lazy).__module__.startswith("dask")
    assert len(lazy) == len(frame)
    assert list(lazy.columns) == list(frame.columns)


def test_plain_intake_reads_the_same_rows_through_the_environment(
    root_catalog, samples, monkeypatch
):
    monkeypatch.setenv("STATBOX_DATA_ROOT", str(samples))
    plain = intake.from_yaml_file(str(ROOT_CATALOG))
    assert len(plain["sdg.indicators"].read()) == len(root_catalog["sdg.indicators"].read())
    assert len(plain["ais.positions"].read()) == len(root_catalog["ais.positions"].read())


def test_root_catalog_is_built_from_the_domain_catalogs():
    assert ROOT_CATALOG.read_text() == build_root(REPO / "catalogs")


def test_samples_are_byte_identical_for_a_seed_and_differ_for_another(samples, tmp_path):
    again = generate(tmp_path / "again", "small", progress=False)["files"]
    first = file_digests(samples)
    assert first == again
    assert len(first) > 20
    other = generate(tmp_path / "other", "small", seed=7, progress=False)["files"]
    assert other.keys() == first.keys()
    assert sum(other[k]["sha256"] != first[k]["sha256"] for k in first) > len(first) // 2


def test_scale_names_match_the_scales():
    assert tuple(SCALES) == SCALE_NAMES


def test_small_samples_stay_under_100_mb(samples):
    assert sum(f["bytes"] for f in file_digests(samples).values()) < 100 * 1024**2
