"""Generate minewatch/data/sample_registry.yaml: 3 coal mines, a tailings pond and an open pit.

Deterministic (seeded): run it again and the file does not change.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import yaml

OUT = Path(__file__).resolve().parent.parent / "minewatch" / "data" / "sample_registry.yaml"
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰涛明超秀霞平刚桂"


def pcode(mine: str, vt: str, sensor: str, local: str) -> str:
    return f"{mine}_01{vt}{sensor}_{local}"


def coal_mine(code: str, name: str, county: str, rng: random.Random) -> dict[str, Any]:
    st = [f"{code}S{i:04d}" for i in range(1, 7)]
    stations = [{"code": s, "location": loc} for s, loc in zip(
        st, ["副井井口", "11301工作面", "11302工作面", "11303掘进面", "北翼大巷", "中央变电所"], strict=True)]
    pts: list[dict[str, Any]] = []
    n = 0

    def add(vt: str, sensor: str, station: int, loc_type: str, loc: str, face: str | None,
            **extra: Any) -> str:
        nonlocal n
        n += 1
        c = pcode(code, vt, sensor, f"T{n:04d}")
        p: dict[str, Any] = {"code": c, "station": st[station], "sensor_type": sensor,
                             "value_type": vt, "location_type": loc_type, "location": loc}
        if face:
            p["face"] = face
        p.update(extra)
        pts.append(p)
        return c

    faces = [("F11301", 1, "11301"), ("F11302", 2, "11302")]
    for face, s, nm in faces:
        feed = add("KG", "1011", s, "other", f"{nm}工作面馈电", face)
        relay = add("KG", "1009", s, "other", f"{nm}工作面断电器", face)
        d = [{"kind": "D", "target": feed, "name": "断电"}, {"kind": "D", "target": relay, "name": "断电"}]
        add("MN", "0001", s, "T0", f"{nm}回风隅角", face, unit="%CH4", range_low=0, range_high=4, relations=d)
        add("MN", "0001", s, "T1", f"{nm}工作面", face, unit="%CH4", range_low=0, range_high=4, relations=d)
        add("MN", "0001", s, "T2", f"{nm}回风巷", face, unit="%CH4", range_low=0, range_high=4, relations=d)
        add("MN", "0001", s, "shearer", f"{nm}采煤机", face, unit="%CH4", range_low=0, range_high=4, relations=d)
        add("MN", "0004", s, "other", f"{nm}回风巷CO", face, unit="ppm", range_low=0, range_high=500)
        add("MN", "0012", s, "other", f"{nm}进风巷O2", face, unit="%", range_low=0, range_high=25)
        add("MN", "0002", s, "other", f"{nm}回风巷风速", face, unit="m/s", range_low=0, range_high=15)
        add("MN", "0003", s, "other", f"{nm}工作面温度", face, unit="℃", range_low=0, range_high=40)
    hf = "H11303"
    hfeed = add("KG", "1011", 3, "other", "11303掘进面馈电", hf)
    hd = [{"kind": "D", "target": hfeed, "name": "断电"}]
    add("MN", "0001", 3, "heading", "11303掘进工作面", hf, unit="%CH4", range_low=0, range_high=4, relations=hd)
    add("MN", "0001", 3, "heading_return", "11303掘进回风流", hf, unit="%CH4", range_low=0, range_high=4, relations=hd)
    add("KG", "1001", 3, "other", "11303局部通风机", hf)
    add("MN", "0004", 3, "other", "11303掘进面CO", hf, unit="ppm", range_low=0, range_high=500)
    add("MN", "0002", 3, "other", "11303掘进面风速", hf, unit="m/s", range_low=0, range_high=15)
    add("MN", "0001", 4, "intake", "北翼进风大巷", None, unit="%CH4", range_low=0, range_high=4)
    add("MN", "0001", 4, "return_middle", "北翼回风巷中部", None, unit="%CH4", range_low=0, range_high=4)
    add("MN", "0001", 4, "main_return", "总回风巷", None, unit="%CH4", range_low=0, range_high=4)
    add("MN", "0001", 5, "chamber", "中央变电所", None, unit="%CH4", range_low=0, range_high=4)
    add("MN", "0004", 4, "other", "总回风巷CO", None, unit="ppm", range_low=0, range_high=500)
    add("MN", "0012", 4, "other", "北翼进风大巷O2", None, unit="%", range_low=0, range_high=25)
    add("MN", "0012", 5, "other", "中央变电所O2", None, unit="%", range_low=0, range_high=25)
    add("MN", "0013", 4, "other", "总回风巷CO2", None, unit="%", range_low=0, range_high=5)
    add("MN", "0013", 4, "other", "北翼回风巷CO2", None, unit="%", range_low=0, range_high=5)
    add("MN", "0002", 4, "other", "总回风巷风速", None, unit="m/s", range_low=0, range_high=15)
    add("MN", "0002", 4, "other", "北翼进风大巷风速", None, unit="m/s", range_low=0, range_high=15)
    add("MN", "0003", 5, "other", "中央变电所温度", None, unit="℃", range_low=0, range_high=40)
    add("MN", "0014", 4, "other", "北翼大巷粉尘", None, unit="mg/m3", range_low=0, range_high=1000)
    add("MN", "0018", 4, "other", "总回风巷湿度", None, unit="%RH", range_low=0, range_high=100)
    add("KG", "1010", 0, "other", "主要通风机", None)
    add("KG", "1004", 1, "other", "11301采煤机开停", "F11301")
    add("LJ", "3001", 0, "other", "主井煤量计量", None, unit="t")
    areas = [
        {"code": "A00", "name": "井口", "stations": [st[0]], "shaft": True},
        {"code": "A01", "name": "11301工作面", "stations": [st[1]], "approved": 40, "face": "F11301"},
        {"code": "A02", "name": "11302工作面", "stations": [st[2]], "approved": 40, "face": "F11302"},
        {"code": "A03", "name": "11303掘进工作面", "stations": [st[3]], "approved": 25, "face": "H11303"},
        {"code": "A04", "name": "北翼大巷", "stations": [st[4]], "approved": 80},
        {"code": "A05", "name": "中央变电所(限制区域)", "stations": [st[5]], "approved": 4, "restricted": True},
    ]
    cards = []
    for i in range(150):
        role = "leader" if i < 8 else ("visitor" if i >= 144 else "worker")
        nm = rng.choice(SURNAMES) + rng.choice(GIVEN) + (rng.choice(GIVEN) if rng.random() < 0.5 else "")
        cards.append({"code": f"C{code[-3:]}{i:04d}", "role": role, "name": nm})
    return {"code": code, "name": name, "kind": "coal", "county": county, "city": "140100",
            "province": "140000", "gas_class": "high", "approved_underground": 450,
            "shift_hours": 8, "stations": stations, "points": pts, "areas": areas, "cards": cards}


def tailings(code: str) -> dict[str, Any]:
    s = f"{code}S0001"
    pts: list[dict[str, Any]] = []

    def add(sensor: str, local: str, loc: str, unit: str, levels: dict[str, Any]) -> None:
        pts.append({"code": pcode(code, "MN", sensor, local), "station": s, "sensor_type": sensor,
                    "value_type": "MN", "location": loc, "unit": unit, "levels": levels,
                    "expected_period_s": 600, "max_gap_s": 3600})

    for i in range(2):
        add("0029", f"W{i+1:04d}", f"库水位{i+1}", "m", {"blue": 1226.0, "yellow": 1227.0, "orange": 1228.0, "red": 1229.0})
    for i in range(4):
        add("0030", f"P{i+1:04d}", f"浸润线{i+1}", "m", {"blue": 8.0, "yellow": 7.0, "orange": 6.6, "red": 6.0, "worse": "lower"})
    add("0031", "R0001", "坝顶雨量计", "mm", {"blue": 25.0, "yellow": 50.0, "orange": 100.0, "red": 250.0})
    for i in range(4):
        add("0021", f"D{i+1:04d}", f"坝体表面位移{i+1}", "mm", {"blue": 20.0, "yellow": 40.0, "orange": 64.0, "red": 80.0})
    add("0032", "B0001", "干滩长度", "m", {"blue": 120.0, "yellow": 110.0, "orange": 100.0, "red": 90.0, "worse": "lower"})
    add("0033", "F0001", "安全超高", "m", {"blue": 2.5, "yellow": 2.0, "orange": 1.5, "red": 1.0, "worse": "lower"})
    return {"code": code, "name": "清徐县东沟尾矿库", "kind": "tailings", "county": "140121",
            "city": "140100", "province": "140000", "stations": [{"code": s, "location": "坝顶监测站"}],
            "points": pts}


def openpit(code: str) -> dict[str, Any]:
    s = f"{code}S0001"
    pts = [{"code": pcode(code, "MN", "0034", f"S{i+1:04d}"), "station": s, "sensor_type": "0034",
            "value_type": "MN", "location": f"北帮边坡GNSS{i+1}", "unit": "mm", "slope_height_m": 120.0,
            "levels": {"blue": 300.0, "yellow": 450.0, "orange": 576.0, "red": 720.0},
            "expected_period_s": 600, "max_gap_s": 3600} for i in range(6)]
    return {"code": code, "name": "古交市西山露天矿", "kind": "openpit", "county": "140181",
            "city": "140100", "province": "140000", "stations": [{"code": s, "location": "北帮监测站"}],
            "points": pts}


# Demo coordinates (WGS-84 longitude, latitude) near each mine's county seat, for the console's map.
COORDS: dict[str, tuple[float, float]] = {
    "140100000001": (112.3412, 37.5891),
    "140100000002": (112.2905, 37.6203),
    "140100000003": (112.0927, 37.9048),
    "140100000901": (112.3988, 37.5702),
    "140100000902": (112.1561, 37.9417),
}


def with_coords(mine: dict[str, Any]) -> dict[str, Any]:
    """The mine with `longitude` / `latitude` placed after its region codes."""
    out: dict[str, Any] = {}
    for key, value in mine.items():
        out[key] = value
        if key == "province":
            out["longitude"], out["latitude"] = COORDS[mine["code"]]
    return out


def main() -> None:
    rng = random.Random(20261123)
    reg = {
        "version": 1,
        "regions": [
            {"code": "140000", "name": "山西省", "level": "province"},
            {"code": "140100", "name": "太原市", "level": "city", "parent": "140000"},
            {"code": "140121", "name": "清徐县", "level": "county", "parent": "140100"},
            {"code": "140181", "name": "古交市", "level": "county", "parent": "140100"},
        ],
        "mines": [
            coal_mine("140100000001", "清徐县东于煤业有限公司", "140121", rng),
            coal_mine("140100000002", "清徐县马峪煤业有限公司", "140121", rng),
            coal_mine("140100000003", "古交市屯兰煤业有限公司", "140181", rng),
            tailings("140100000901"),
            openpit("140100000902"),
        ],
    }
    reg["mines"] = [with_coords(m) for m in reg["mines"]]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    header = "# Generated by scripts/make_sample_registry.py; edit the script, not this file.\n"
    OUT.write_text(header + yaml.safe_dump(reg, allow_unicode=True, sort_keys=False, width=120), encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
