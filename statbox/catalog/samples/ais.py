"""AIS sample: vessel position reports off the Kenyan and Tanzanian coast, a registry, ports.

The reports cover whole ISO weeks from Monday 4 March 2024 (four at both scales), so a weekly
indicator has full weeks and week-on-week changes. What the courses rely on, and this module
guarantees:

- tramp traders (cargo, tankers) sail a coastal lane between five ports at irregular times,
  often wait at an anchorage *outside* the port polygon, then lie moored *inside* it for many
  hours (port calls); some leave the region for days and come back;
- liner ships keep a weekly schedule: the same ports, on the same days, every week (they wait
  at the anchorage when early), so each calls at each of its ports once a week;
- extra tramp ships arrive in the third week only (a surge of imports): a busier week;
- transits pass offshore at 11-16 knots and never enter a port;
- ferries shuttle Dar es Salaam - Zanzibar daily with dwells of one to two hours;
- fishing boats trawl slowly (2-4 knots) offshore six days a week and rest on Fridays;
  sailing boats go out at weekends; tugs potter in ports;
- gaps: transponders switched off for hours, sparse reception far offshore, lost messages;
  some vessels report "under way" while moored, so speed and polygons matter, not status;
- a few fishing boats are missing from the registry, as in real registries.

Reports are thinned as a sample may thin real AIS (class A sends every 2-10 s under way and
every 3 minutes at anchor): one every 1-2.5 minutes under way, 2-5 minutes while trawling and
10-20 minutes at berth or at anchor. Values are quantised as AIS transmits them (0.1 knot,
0.1 degree). The fleet's make-up is fixed per scale (:data:`FLEET`); the draws are seeded.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from statbox.catalog.samples.common import (
    Scale,
    rng_for,
    write_geojson,
    write_parquet,
    write_partitioned,
)

START = dt.datetime(2024, 3, 4, tzinfo=dt.UTC)
HOUR = 3600.0

# UN/LOCODE, name, country, lat, lon, radius (deg), seaward offset (dlat, dlon), weight
PORTS = [
    ("KELAU", "Lamu", "KE", -2.272, 40.905, 0.018, (-0.04, 0.10), 1.0),
    ("KEMBA", "Mombasa", "KE", -4.064, 39.652, 0.026, (0.0, 0.14), 4.0),
    ("TZTGT", "Tanga", "TZ", -5.068, 39.108, 0.018, (0.0, 0.12), 1.5),
    ("TZZNZ", "Zanzibar", "TZ", -6.158, 39.186, 0.016, (0.02, -0.08), 1.5),
    ("TZDAR", "Dar es Salaam", "TZ", -6.830, 39.292, 0.024, (0.05, 0.12), 4.0),
]
# The coastal lane, north to south; ports join it at the node named in LANE_JOIN.
LANE = [
    (-1.60, 41.55),
    (-2.40, 41.05),
    (-3.20, 40.40),
    (-4.06, 39.85),
    (-4.75, 39.55),
    (-5.07, 39.27),
    (-5.35, 39.40),
    (-5.95, 39.22),
    (-6.15, 39.10),
    (-6.70, 39.45),
    (-7.60, 39.85),
]
LANE_JOIN = {"KELAU": 1, "KEMBA": 3, "TZTGT": 5, "TZZNZ": 8, "TZDAR": 9}
EAST_EXIT = (-4.50, 42.00)
OFFSHORE = [(-1.60, 41.95), (-3.00, 41.20), (-4.50, 40.75), (-6.00, 40.45), (-7.60, 40.30)]
RECEPTION_LON = 40.8
"""Beyond this longitude (far from coastal receivers) most reports are never received."""
WEEK = 7 * 24 * HOUR
SURGE_WEEK = 2
"""The week (0 = the first) in which the surge ships arrive."""

# Role, AIS ship type, share of the fleet. Shares, not draws, so every scale has each pattern.
FLEET = [
    ("tramp", 70, 0.18),
    ("tramp", 71, 0.04),
    ("tramp", 80, 0.12),
    ("tramp", 81, 0.04),
    ("liner", 70, 0.04),
    ("surge", 70, 0.07),
    ("surge", 80, 0.05),
    ("transit", 70, 0.14),
    ("ferry", 60, 0.06),
    ("fishing", 30, 0.16),
    ("tug", 52, 0.04),
    ("sailing", 36, 0.06),
]
# Weekly liner services: (port, berthing hour of the week from Monday 00:00 UTC, hours at berth).
SERVICES = [
    [("KEMBA", 6, 30), ("TZTGT", 54, 16), ("TZZNZ", 84, 14), ("TZDAR", 110, 30)],
    [("TZDAR", 30, 28), ("KEMBA", 80, 30), ("KELAU", 130, 20)],
]
INTERVALS = {
    "sail": (60, 150),
    "fishing": (120, 300),
    "moored": (600, 1200),
    "anchored": (600, 1200),
}
"""Seconds between two reports kept in the sample, by what the vessel is doing."""

MIDS = {
    "KE": 634,
    "TZ": 674,
    "PA": 352,
    "LR": 636,
    "MH": 538,
    "SG": 563,
    "MT": 248,
    "IN": 419,
    "AE": 470,
    "CN": 413,
    "GR": 240,
}
TYPE_NAMES = {
    30: "Fishing",
    36: "Sailing",
    52: "Tug",
    60: "Passenger",
    70: "Cargo",
    71: "Cargo, hazardous category A",
    80: "Tanker",
    81: "Tanker, hazardous category A",
}
NAME_A = [
    "OCEAN",
    "MSC",
    "SEA",
    "AFRICAN",
    "INDIAN",
    "EAST",
    "STAR",
    "GLOBAL",
    "BLUE",
    "KOTA",
    "CAPE",
    "SAFARI",
    "KILWA",
    "PWANI",
    "NORTHERN",
    "CORAL",
]
NAME_B = [
    "PIONEER",
    "SPIRIT",
    "TRADER",
    "EXPRESS",
    "HARMONY",
    "GRACE",
    "VOYAGER",
    "PRIDE",
    "FORTUNE",
    "EAGLE",
    "LION",
    "PEARL",
    "BREEZE",
    "DAWN",
    "HORIZON",
    "QUEEN",
]


@dataclass
class Segment:
    start: float  # seconds since START
    end: float
    kind: str  # sail | moored | anchored | fishing | absent
    path: np.ndarray  # (n, 2) lat, lon; a single point when stationary
    speed: float  # knots
    status: int


def _nm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in nautical miles (equirectangular: the region spans a few degrees)."""
    lat = np.radians((a[..., 0] + b[..., 0]) / 2)
    dy = (b[..., 0] - a[..., 0]) * 60
    dx = (b[..., 1] - a[..., 1]) * 60 * np.cos(lat)
    return np.hypot(dx, dy)


def _port_polygon(port: tuple, rng: np.random.Generator) -> list[tuple[float, float]]:
    _, _, _, lat, lon, radius, _, _ = port
    angles = np.linspace(0, 2 * np.pi, 9)[:-1] + rng.uniform(-0.15, 0.15, 8)
    radii = radius * rng.uniform(0.85, 1.15, 8)
    return [
        (lon + r * np.cos(a) / np.cos(np.radians(lat)), lat + r * np.sin(a))
        for a, r in zip(angles, radii, strict=True)
    ]


class Voyages:
    """Builds each vessel's timeline of segments."""

    def __init__(self, rng: np.random.Generator, horizon: float):
        self.rng = rng
        self.horizon = horizon
        self.ports = {p[0]: p for p in PORTS}

    def berth(self, code: str) -> np.ndarray:
        _, _, _, lat, lon, radius, _, _ = self.ports[code]
        r = radius * 0.5 * np.sqrt(self.rng.uniform())
        a = self.rng.uniform(0, 2 * np.pi)
        return np.array([lat + r * np.sin(a), lon + r * np.cos(a) / np.cos(np.radians(lat))])

    def approach(self, code: str, distance: float = 1.0) -> np.ndarray:
        _, _, _, lat, lon, _, (dlat, dlon), _ = self.ports[code]
        return np.array([lat + dlat * distance, lon + dlon * distance])

    def anchorage(self, code: str) -> np.ndarray:
        jitter = self.rng.normal(0, 0.006, 2)
        return self.approach(code, 0.6) + jitter

    def lane_between(self, a: int, b: int) -> list[tuple[float, float]]:
        step = 1 if b >= a else -1
        return [LANE[i] for i in range(a, b + step, step)]

    def route(self, start: np.ndarray, frm: str | None, to: str | None, exit_: str | None):
        """Waypoints from ``start`` (leaving port ``frm``) to port ``to`` or an exit."""
        points = [start]
        if frm is not None:
            points.append(self.approach(frm))
        a = LANE_JOIN[frm] if frm else (0 if exit_ == "N" else len(LANE) - 1)
        if to is not None:
            b = LANE_JOIN[to]
        else:
            b = {"N": 0, "S": len(LANE) - 1, "E": LANE_JOIN["KEMBA"]}[exit_ or "N"]
        points += [np.array(p) for p in self.lane_between(a, b)[:-1]]
        if to is not None:
            points += [np.array(LANE[b]), self.approach(to)]
        else:
            points.append(np.array(LANE[b]))
            if exit_ == "E":
                points.append(np.array(EAST_EXIT))
        return np.array(points)

    def sail(self, t: float, path: np.ndarray, speed: float, status: int = 0) -> Segment:
        hours = float(_nm(path[:-1], path[1:]).sum()) / speed
        return Segment(t, t + hours * HOUR, "sail", path, speed, status)

    def weights(self, codes: list[str]) -> np.ndarray:
        """Each port's chance of being a tramp's next destination (big ports draw more)."""
        weights = np.array([self.ports[c][7] for c in codes])
        return weights / weights.sum()

    def arrive(self, t: float, start: np.ndarray, to: str, wait: float) -> list[Segment]:
        """From off port ``to`` to a berth inside it, after ``wait`` seconds at its anchorage
        (outside the port polygon); no anchorage when ``wait`` is 0."""
        segments = []
        if wait > 0:
            anchor = self.anchorage(to)
            segments.append(self.sail(t, np.array([start, anchor]), 6))
            t = segments[-1].end
            segments.append(Segment(t, t + wait, "anchored", anchor[None], 0, 1))
            start = anchor
            t += wait
        berth = self.berth(to)
        segments.append(self.sail(t, np.array([start, berth]), self.rng.uniform(4, 7)))
        return segments

    def trader(self, kind: int, arrive: float | None = None, calls: int | None = None):
        """A tramp: irregular calls at ports drawn by size, spells away from the region.

        With ``arrive`` it enters the region then, makes ``calls`` calls and leaves for good
        (the surge ships); otherwise it is in the region, or in port, when the data begin.
        """
        rng = self.rng
        codes = list(self.ports)
        segments: list[Segment] = []
        lies = rng.uniform() < 0.1  # reports status 0 while moored
        here: str | None = None
        position = np.array(LANE[0] if rng.uniform() < 0.5 else LANE[-1])
        if arrive is not None:
            t = arrive
        else:
            t = -rng.uniform(0, 36) * HOUR
            if rng.uniform() < 0.5:  # already in port when the data begin
                here = str(rng.choice(codes, p=self.weights(codes)))
                position = self.berth(here)
                dwell = rng.uniform(6, 60) * HOUR
                segments.append(
                    Segment(t, t + dwell, "moored", position[None], 0, 0 if lies else 5)
                )
                t += dwell
        made = 0
        while t < self.horizon:
            done = calls is not None and made >= calls
            if here is not None and (done or (calls is None and rng.uniform() < 0.3)):
                exit_ = str(rng.choice(["N", "S", "E"]))
                path = self.route(position, here, None, exit_)
                segments.append(self.sail(t, path, rng.uniform(11, 15)))
                if done:
                    break
                t = segments[-1].end + rng.uniform(48, 120) * HOUR  # away from the region
                segments.append(Segment(segments[-1].end, t, "absent", path[-1:], 0, 0))
                here, position = None, np.array(LANE[0] if exit_ == "N" else LANE[-1])
                continue
            options = [c for c in codes if c != here]  # here is None when arriving
            to = str(rng.choice(options, p=self.weights(options)))
            exit_ = "N" if position[0] > -3 else "S"
            path = self.route(position, here, to, None if here else exit_)
            segments.append(self.sail(t, path, rng.uniform(10, 14.5)))
            busy = self.ports[to][7] > 2
            wait = 0.0
            if rng.uniform() < (0.6 if busy else 0.25):
                wait = rng.uniform(3, 30 if busy else 8) * HOUR
            segments += self.arrive(segments[-1].end, path[-1], to, wait)
            t = segments[-1].end
            low, high = (18, 72) if kind >= 80 else (10, 54)
            dwell = rng.uniform(low, high if busy else high / 2) * HOUR
            position = segments[-1].path[-1]
            segments.append(Segment(t, t + dwell, "moored", position[None], 0, 0 if lies else 5))
            t += dwell
            here = to
            made += 1
        return segments

    def liner(self, service: list[tuple[str, int, int]], phase: float) -> list[Segment]:
        """A liner: the ports of ``service`` in turn, berthing at the same hour every week
        (shifted by ``phase`` seconds), waiting at the anchorage when early, later when
        delayed; it is on its rotation when the data begin."""
        rng = self.rng
        code, hour, stay = service[0]
        here = code
        position = self.berth(code)
        t = -WEEK + phase + hour * HOUR
        segments = [Segment(t, t + stay * HOUR, "moored", position[None], 0, 5)]
        t += stay * HOUR
        weeks = int(self.horizon // WEEK) + 1
        schedule = [(w, *call) for w in range(-1, weeks + 1) for call in service][1:]
        for week, to, hour, stay in schedule:
            if t >= self.horizon:
                break
            path = self.route(position, here, to, None)
            leg = self.sail(t, path, rng.uniform(11.5, 13))
            window = week * WEEK + phase + hour * HOUR + rng.exponential(2 * HOUR)
            early = window - leg.end - HOUR  # about an hour from the approach to the berth
            segments += [leg, *self.arrive(leg.end, path[-1], to, early if early > HOUR else 0)]
            t = segments[-1].end
            dwell = stay * HOUR * rng.uniform(0.85, 1.1)
            here, position = to, segments[-1].path[-1]
            segments.append(Segment(t, t + dwell, "moored", position[None], 0, 5))
            t += dwell
        return segments

    def transit(self) -> list[Segment]:
        rng = self.rng
        lane = np.array(OFFSHORE)[:: (1 if rng.uniform() < 0.5 else -1)]
        lane = lane + rng.normal(0, 0.05, lane.shape)
        t = rng.uniform(-30, self.horizon / HOUR) * HOUR
        return [self.sail(t, lane, rng.uniform(11, 16))]

    def ferry(self) -> list[Segment]:
        rng = self.rng
        dar, znz = self.berth("TZDAR"), self.berth("TZZNZ")
        middle = np.array([-6.50, 39.24])
        segments: list[Segment] = []
        offset = rng.uniform(0, 3) * HOUR
        t = -24 * HOUR
        for day in range(int(self.horizon // (24 * HOUR)) + 1):
            departure = day * 24 * HOUR + 4 * HOUR + offset  # 07:00-10:00 local (UTC+3)
            segments.append(Segment(t, departure, "moored", dar[None], 0, 5))
            t = departure
            for _ in range(2):
                for frm, to in ((dar, znz), (znz, dar)):
                    trip = self.sail(t, np.array([frm, middle, to]), rng.uniform(22, 27))
                    dwell = rng.uniform(1.0, 2.0) * HOUR
                    segments += [
                        trip,
                        Segment(trip.end, trip.end + dwell, "moored", to[None], 0, 5),
                    ]
                    t = trip.end + dwell
        return segments

    def fishing(self) -> list[Segment]:
        rng = self.rng
        home = str(rng.choice(["KELAU", "TZTGT", "TZZNZ"]))
        berth = self.berth(home)
        segments: list[Segment] = []
        t = -24 * HOUR
        for day in range(int(self.horizon // (24 * HOUR)) + 1):
            if day % 7 == 4:
                continue  # Friday: the boats stay in port (the data begin on a Monday)
            departure = day * 24 * HOUR + rng.uniform(0, 2) * HOUR  # 03:00-05:00 local
            segments.append(Segment(t, departure, "moored", berth[None], 0, 0))
            ground = self.approach(home, rng.uniform(1.2, 2.2)) + rng.normal(0, 0.05, 2)
            leg = np.array([berth, self.approach(home, 0.5), ground])
            out = self.sail(departure, leg, rng.uniform(6, 8))
            hours = rng.uniform(5, 10)
            wander = ground + np.cumsum(rng.normal(0, 0.01, (max(int(hours * 4), 2), 2)), axis=0)
            fish = Segment(out.end, out.end + hours * HOUR, "fishing", wander, 3, 7)
            leg = np.array([wander[-1], self.approach(home, 0.5), berth])
            back = self.sail(fish.end, leg, rng.uniform(6, 8))
            segments += [out, fish, back]
            t = back.end
        return segments

    def sailing(self) -> list[Segment]:
        """A yacht: day sails off its home port at weekends (and now and then midweek); its
        transponder is on only from an hour before it casts off to an hour after it is back."""
        rng = self.rng
        home = str(rng.choice(["KELAU", "KEMBA", "TZZNZ"]))
        berth = self.berth(home)
        segments: list[Segment] = []
        for day in range(int(self.horizon // (24 * HOUR)) + 1):
            if day % 7 < 5 and rng.uniform() > 0.1:
                continue
            departure = day * 24 * HOUR + rng.uniform(5, 8) * HOUR  # 08:00-11:00 local
            offing = self.approach(home, 0.5)
            loop = [self.approach(home, rng.uniform(0.8, 1.6)) + rng.normal(0, 0.03, 2)]
            loop.append(loop[0] + rng.normal(0, 0.04, 2))
            trip = self.sail(departure, np.array([berth, offing, *loop, offing, berth]), 5)
            segments += [
                Segment(departure - HOUR, departure, "moored", berth[None], 0, 5),
                trip,
                Segment(trip.end, trip.end + HOUR, "moored", berth[None], 0, 5),
            ]
        return segments

    def tug(self) -> list[Segment]:
        rng = self.rng
        home = str(rng.choice(["KEMBA", "TZDAR"]))
        t = -2 * HOUR
        here = self.berth(home)
        segments = []
        while t < self.horizon:
            idle = rng.uniform(1, 6) * HOUR
            segments.append(Segment(t, t + idle, "moored", here[None], 0, 0))
            there = self.berth(home)
            segments.append(self.sail(t + idle, np.array([here, there]), rng.uniform(3, 6)))
            t, here = segments[-1].end, there
        return segments


def _sample(segments: list[Segment], rng: np.random.Generator, horizon: float):
    """Report times and kinematics along a timeline, within [0, horizon)."""
    rows = []
    for seg in segments:
        if seg.kind == "absent" or seg.end <= 0 or seg.start >= horizon:
            continue
        low, high = INTERVALS[seg.kind]
        span = seg.end - seg.start
        n = int(span / ((low + high) / 2)) + 2
        times = seg.start + np.cumsum(rng.uniform(low, high, n))
        times = times[(times < seg.end) & (times >= 0) & (times < horizon)]
        if len(times) == 0:
            continue
        frac = (times - seg.start) / span
        path = seg.path
        if len(path) == 1:
            spread = 0.00004 if seg.kind == "moored" else 0.0004  # swinging at anchor
            pos = path[0] + rng.normal(0, spread, (len(times), 2))
            sog = np.round(
                np.abs(rng.normal(0, 0.08 if seg.kind == "moored" else 0.25, len(times))), 1
            )
            cog = rng.uniform(0, 360, len(times))
            heading = np.full(len(times), rng.uniform(0, 360)) + rng.normal(0, 2, len(times))
        else:
            legs = _nm(path[:-1], path[1:])
            cum = np.concatenate([[0], np.cumsum(legs)]) / max(legs.sum(), 1e-9)
            index = np.clip(np.searchsorted(cum, frac, side="right") - 1, 0, len(legs) - 1)
            within = (frac - cum[index]) / np.maximum(cum[index + 1] - cum[index], 1e-12)
            pos = path[index] + (path[index + 1] - path[index]) * within[:, None]
            pos = pos + rng.normal(0, 0.00005, pos.shape)
            d = path[index + 1] - path[index]
            bearing = np.degrees(np.arctan2(d[:, 1] * np.cos(np.radians(pos[:, 0])), d[:, 0]))
            noise = 12 if seg.kind == "fishing" else 2
            cog = bearing + rng.normal(0, noise, len(times))
            heading = cog + rng.normal(0, 3, len(times))
            sog = np.round(np.clip(seg.speed + rng.normal(0, 0.3, len(times)), 0, None), 1)
        rows.append((times, pos, sog, np.round(cog % 360, 1), np.round(heading % 360), seg.status))
    return rows


def generate(out: Path, scale: Scale, seed: int) -> None:
    import pandas as pd
    import shapely

    if scale.ais_days % 7:
        raise ValueError(f"ais_days={scale.ais_days}: the AIS sample covers whole weeks")
    rng = rng_for(seed, "ais")
    horizon = scale.ais_days * 24 * HOUR
    voyages = Voyages(rng, horizon)
    fleet = _fleet(scale.ais_vessels)
    order = rng.permutation(len(fleet))
    registry, frames = [], []
    used_mmsi: set[int] = set()
    liners = fishing_boats = 0
    for i, (role, ship_type) in enumerate(fleet[k] for k in order):
        small = ship_type in (30, 36, 52)
        flag = (
            str(rng.choice(["KE", "TZ"]))
            if small or ship_type == 60
            else str(rng.choice(list(MIDS), p=_flag_weights()))
        )
        mmsi = MIDS[flag] * 1_000_000 + int(rng.integers(100_000, 999_999))
        while mmsi in used_mmsi:
            mmsi += 1
        used_mmsi.add(mmsi)
        if role == "liner":
            # The first ship of each service keeps its timetable; more ships sail a day later.
            phase = liners // len(SERVICES) * 24 * HOUR
            timeline = voyages.liner(SERVICES[liners % len(SERVICES)], phase)
            liners += 1
        elif role == "surge":
            arrive = SURGE_WEEK * WEEK + rng.uniform(0, 3) * 24 * HOUR
            timeline = voyages.trader(ship_type, arrive, calls=2)
        elif role == "tramp":
            timeline = voyages.trader(ship_type)
        else:
            timeline = getattr(voyages, role)()  # transit, ferry, fishing, tug, sailing
        rows = _sample(timeline, rng, horizon)
        if not rows:
            continue
        times = np.concatenate([r[0] for r in rows])
        pos = np.concatenate([r[1] for r in rows])
        keep = rng.uniform(size=len(times)) > 0.03  # lost messages
        keep &= ~((pos[:, 1] > RECEPTION_LON) & (rng.uniform(size=len(times)) < 0.75))
        for _ in range(int(horizon // WEEK) or 1):
            if rng.uniform() < 0.25:  # transponder switched off for hours
                off = rng.uniform(0, horizon)
                keep &= ~((times > off) & (times < off + rng.uniform(3, 12) * HOUR))
        frame = pd.DataFrame(
            {
                "mmsi": np.full(len(times), mmsi, dtype="int64"),
                "timestamp": times,
                "lat": np.round(pos[:, 0], 6),
                "lon": np.round(pos[:, 1], 6),
                "sog": np.concatenate([r[2] for r in rows]).astype("float32"),
                "cog": np.concatenate([r[3] for r in rows]).astype("float32"),
                "heading": np.concatenate([r[4] for r in rows]).astype("int16") % 360,
                "nav_status": np.concatenate([np.full(len(r[0]), r[5]) for r in rows]).astype(
                    "int8"
                ),
                "ship_type": np.full(len(times), ship_type, dtype="int16"),
            }
        )[keep]
        if small:
            frame["heading"] = np.int16(511)  # class B transponders: heading not available
        frames.append(frame)
        if ship_type == 30:
            fishing_boats += 1
            if fishing_boats % 5 == 2:
                continue  # unregistered fishing boats
        registry.append(_vessel(rng, i, mmsi, ship_type, flag, small))
    positions = pd.concat(frames, ignore_index=True)
    stamp = pd.Timestamp(START) + pd.to_timedelta(np.floor(positions["timestamp"]), unit="s")
    positions["timestamp"] = stamp.astype("datetime64[ms, UTC]")
    positions = positions.sort_values(["timestamp", "mmsi"], kind="stable").reset_index(drop=True)
    dates = positions["timestamp"].dt.strftime("%Y-%m-%d")
    write_partitioned(positions, out / "ais" / "positions", "date", dates)

    vessels = pd.DataFrame(registry).sort_values("mmsi", kind="stable").reset_index(drop=True)
    for column, dtype in (
        ("mmsi", "int64"),
        ("imo", "Int64"),
        ("ship_type", "int16"),
        ("length_m", "float32"),
        ("beam_m", "float32"),
        ("gross_tonnage", "Int64"),
        ("year_built", "Int64"),
    ):
        vessels[column] = vessels[column].astype(dtype)
    write_parquet(vessels, out / "ais" / "vessels" / "vessels.parquet")

    shapes = [shapely.Polygon(_port_polygon(p, rng)) for p in PORTS]
    records = [{"port_id": p[0], "name": p[1], "country": p[2]} for p in PORTS]
    write_geojson(records, shapes, out / "ais" / "ports" / "ports.geojson")


def _fleet(n: int) -> list[tuple[str, int]]:
    """``n`` vessels as (role, ship type), in :data:`FLEET`'s shares (largest remainders)."""
    shares = np.array([share for _, _, share in FLEET])
    exact = n * shares / shares.sum()
    counts = np.floor(exact).astype(int)
    for k in np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]:
        counts[k] += 1
    return [
        (role, ship_type)
        for (role, ship_type, _), c in zip(FLEET, counts, strict=True)
        for _ in range(c)
    ]


def _flag_weights() -> list[float]:
    w = np.array([0.5, 0.5, 3, 2.5, 2, 1.5, 1.5, 1, 1, 1, 1])
    return list(w / w.sum())


def _vessel(rng, index: int, mmsi: int, ship_type: int, flag: str, small: bool) -> dict:
    name = f"{NAME_A[rng.integers(len(NAME_A))]} {NAME_B[rng.integers(len(NAME_B))]}"
    if small:
        name = f"{name.split()[1]} {index}"
    imo = None
    if not small:
        digits = [int(d) for d in str(int(rng.integers(900_000, 999_999)))]
        check = sum(d * (7 - k) for k, d in enumerate(digits)) % 10
        imo = int("".join(map(str, digits)) + str(check))
    sizes = {
        30: (14, 30),
        36: (10, 25),
        52: (25, 35),
        60: (35, 60),
        70: (120, 300),
        71: (120, 250),
        80: (120, 250),
        81: (150, 330),
    }
    length = float(np.round(rng.uniform(*sizes[ship_type]), 1))
    beam = float(np.round(length * rng.uniform(0.14, 0.18), 1))
    tonnage = None if ship_type in (30, 36) else int(length * beam * rng.uniform(2.5, 4.5))
    return {
        "mmsi": mmsi,
        "imo": imo,
        "name": name,
        "ship_type": ship_type,
        "ship_type_name": TYPE_NAMES[ship_type],
        "flag": flag,
        "length_m": length,
        "beam_m": beam,
        "gross_tonnage": tonnage,
        "year_built": int(rng.integers(1990, 2023)),
    }
