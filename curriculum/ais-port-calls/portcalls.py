"""Port calls from AIS position reports: the method of lesson 1, as functions lesson 2 reuses.

A port call is a stay of one vessel inside one port polygon, moving at most
``max_speed_knots``, for at least ``min_duration_hours``. Reports of one stay follow each
other with no silence longer than ``max_gap_hours`` (a longer silence ends the stay: the
vessel may have left unseen).
"""

from __future__ import annotations

import pandas as pd
import shapely

MERCHANT_TYPES = (70, 89)
"""AIS ship types of cargo ships (70-79) and tankers (80-89): the vessels trade indicators count."""


def label_ports(positions: pd.DataFrame, ports) -> pd.Series:
    """The port_id of the port polygon each report lies in (missing outside every port)."""
    labels = pd.Series(None, index=positions.index, dtype=object)
    lon, lat = positions["lon"].to_numpy(), positions["lat"].to_numpy()
    for port_id, polygon in zip(ports["port_id"], ports.geometry, strict=True):
        labels[shapely.contains_xy(polygon, lon, lat)] = port_id
    return labels


def detect_port_calls(
    positions: pd.DataFrame,
    ports,
    max_speed_knots: float = 1.0,
    min_duration_hours: float = 2.0,
    max_gap_hours: float = 6.0,
) -> pd.DataFrame:
    """One row per port call: mmsi, ship_type, port_id, arrival, departure, hours, reports."""
    reports = positions.assign(port_id=label_ports(positions, ports))
    still = reports[reports["port_id"].notna() & (reports["sog"] <= max_speed_knots)]
    still = still.sort_values(["mmsi", "timestamp"], kind="stable")
    same_vessel = still["mmsi"].eq(still["mmsi"].shift())
    same_port = still["port_id"].eq(still["port_id"].shift())
    silence = still["timestamp"].diff() > pd.Timedelta(hours=max_gap_hours)
    stay = (~(same_vessel & same_port) | silence).cumsum()
    stays = still.groupby(stay.to_numpy()).agg(
        mmsi=("mmsi", "first"),
        ship_type=("ship_type", "first"),
        port_id=("port_id", "first"),
        arrival=("timestamp", "min"),
        departure=("timestamp", "max"),
        reports=("timestamp", "size"),
    )
    stays["hours"] = (stays["departure"] - stays["arrival"]).dt.total_seconds() / 3600
    calls = stays[stays["hours"] >= min_duration_hours]
    return calls.sort_values(["arrival", "mmsi"], kind="stable").reset_index(drop=True)


def is_merchant(ship_type: pd.Series) -> pd.Series:
    """Whether each AIS ship type is a cargo ship or a tanker."""
    low, high = MERCHANT_TYPES
    return ship_type.between(low, high)
