"""The samples carry the patterns the courses compute: port calls, transits and gaps in AIS;
product churn in scanner data; homes and moving daytime population in phone events; cloud-
masked NDVI that separates crops; a Rural Access Index strictly between 0 and 1; unique
quasi-identifier combinations in the microdata."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely

pytestmark = pytest.mark.catalog


def test_ais_has_port_calls_transits_and_gaps(root_catalog):
    positions = root_catalog["ais.positions"].read()
    ports = root_catalog["ais.ports"].read()
    inside = np.zeros(len(positions), dtype=bool)
    for polygon in ports.geometry:
        inside |= shapely.contains_xy(polygon, positions.lon.to_numpy(), positions.lat.to_numpy())
    slow = positions[inside & (positions.sog < 0.5)]
    dwell = slow.groupby("mmsi").timestamp.agg(lambda t: (t.max() - t.min()).total_seconds() / 3600)
    assert (dwell > 6).sum() >= 10  # many vessels lie in port for hours
    never_in_port = set(positions.mmsi) - set(positions.mmsi[inside])
    fast = positions[positions.mmsi.isin(never_in_port)].groupby("mmsi").sog.median() > 10
    assert fast.sum() >= 3  # transits
    gaps = positions.groupby("mmsi").timestamp.agg(lambda t: t.sort_values().diff().max())
    assert (gaps > pd.Timedelta(hours=3)).sum() >= 3
    registry = root_catalog["ais.vessels"].read()
    assert 0 < len(set(positions.mmsi) - set(registry.mmsi)) < 10


def test_scanner_products_enter_and_leave(root_catalog):
    sales = root_catalog["scanner.transactions"].read()
    weeks = sorted(sales.week.unique())
    first = set(sales.gtin[sales.week == weeks[0]])
    last = set(sales.gtin[sales.week == weeks[-1]])
    assert 0.2 < len(first - last) / len(first) < 0.8
    assert 0.2 < len(last - first) / len(last) < 0.8
    products = root_catalog["scanner.products"].read()
    assert set(sales.gtin) <= set(products.gtin)
    assert set(products.coicop) <= set(root_catalog["scanner.coicop"].read().code)


def test_phone_events_reveal_homes_and_daytime_movement(root_catalog):
    events = root_catalog["mobile_phone.events"].read()
    cells = root_catalog["mobile_phone.cells"].read()[["cell_id", "area_id"]]
    areas = root_catalog["mobile_phone.areas"].read()
    events = events.merge(cells, on="cell_id")
    hour = (events.timestamp + pd.Timedelta(hours=2)).dt.hour
    night = events[(hour >= 21) | (hour < 7)]
    home = night.groupby(["device_id", "area_id"]).size().reset_index(name="n")
    home = home.sort_values("n").groupby("device_id").tail(1)
    counts = home.area_id.value_counts().reindex(areas.area_id, fill_value=0)
    assert np.corrcoef(counts, areas.population)[0, 1] > 0.8
    day = events[(hour >= 10) & (hour < 16)].groupby("area_id").device_id.nunique()
    share_day = day / day.sum()
    share_night = counts / counts.sum()
    assert (share_day - share_night.reindex(share_day.index)).abs().max() > 0.02


def test_cloud_masking_matters_and_crops_differ(root_catalog):
    ds = root_catalog["earth_observation.reflectance"].read()
    fields = root_catalog["earth_observation.fields"].read()
    red, nir = ds.red.astype("float64"), ds.nir.astype("float64")
    ndvi = ((nir - red) / (nir + red)).values
    clear = ds.cloud_mask.values == 0
    assert 0.05 < 1 - clear.mean() < 0.6
    gx, gy = np.meshgrid(ds.x.values, ds.y.values)
    peaks = {}
    for crop in ("maize", "banana"):
        inside = np.zeros(gx.shape, dtype=bool)
        for polygon in fields.geometry[fields.crop == crop]:
            inside |= shapely.contains_xy(polygon, gx, gy)
        masked = np.where(clear, ndvi, np.nan)[:, inside]
        per_date = np.nanmean(masked, axis=1)
        peaks[crop] = (np.nanmin(per_date), np.nanmax(per_date))
        assert np.nanmean(ndvi[:, inside]) < np.nanmean(masked)  # clouds drag NDVI down
    assert peaks["maize"][1] - peaks["maize"][0] > 0.3  # a season
    assert peaks["banana"][1] - peaks["banana"][0] < 0.15  # evergreen
    ds.close()


def test_rural_access_index_is_meaningful(root_catalog):
    grid = root_catalog["rural_access.population"].read()
    roads = root_catalog["rural_access.roads"].read().to_crs(grid.attrs["crs"])
    population = grid.population.values
    rural = grid.settlement_class.values == 1
    gx, gy = np.meshgrid(grid.x.values, grid.y.values)

    def share(selected):
        reach = shapely.union_all(selected.buffer(2000).values)
        near = shapely.contains_xy(reach, gx, gy)
        return population[rural & near].sum() / population[rural].sum()

    index = share(roads[roads.all_season])
    assert 0.3 < index < 0.85
    assert share(roads) > index + 0.05  # surface and condition matter
    grid.close()


def test_microdata_has_unique_quasi_identifier_combinations(root_catalog):
    people = root_catalog["privacy.microdata"].read()
    keys = ["district", "sex", "age", "marital_status", "occupation"]
    sizes = people.groupby(keys).size()
    assert (sizes == 1).sum() > 100
    coarse = people.assign(band=people.age // 20).groupby(["province", "sex", "band"]).size()
    assert coarse.min() >= 2
