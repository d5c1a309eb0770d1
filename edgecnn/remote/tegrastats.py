"""tegrastats lines -> power, temperature and clock figures (Jetson boards).

The one parser: `edgecnn bench --remote` (edgecnn/remote/jetson.py, on the board), and,
through deploy/tegrastats.py, deploy/jetson/jetson.py (JetPack 6, Python 3.10) and
deploy/nano/trtexec_report.py (JetPack 4.6, Python 3.6), so it is written for Python 3.6
and the standard library only, and imports nothing of edgecnn.

The line formats, as tegrastats prints them (one line per interval):
  JetPack 6 (Orin):  ... EMC_FREQ 0%@2133 GR3D_FREQ 0%@[305,305] ... cpu@47.5C gpu@45.9C
                     tj@47.5C VDD_IN 4758mW/4758mW VDD_CPU_GPU_CV 477mW/477mW ...
  JetPack 4 (Nano):  ... EMC_FREQ 0%@1600 GR3D_FREQ 0%@76 ... CPU@34.5C GPU@32C
                     PMIC@100C thermal@33.25C POM_5V_IN 2135/2135 POM_5V_GPU 0/0 ...
A rail is "NAME now/average" (mW, with or without the unit); the figures here use "now".
"""

import re

# The board's input power: VDD_IN on Orin Nano/NX, POM_5V_IN on Nano/TX2. AGX Orin has no
# input rail in tegrastats; there the module's rails are summed.
INPUT_RAILS = ("VDD_IN", "POM_5V_IN")
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?=\s|$)")
_TEMP = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*)@(-?\d+(?:\.\d+)?)C\b")
_GR3D = re.compile(r"\bGR3D_FREQ (\d+)%(?:@\[?([\d,]+)\]?)?")
_EMC = re.compile(r"\bEMC_FREQ (\d+)%(?:@(\d+))?")


def parse_line(line):
    """One line -> {"rails_mw": {name: now}, "temps_c": {zone: C}, "gpu_mhz", "emc_mhz"}
    (absent fields are left out; a sensor that is off reads -256 C and is dropped)."""
    out = {}
    rails = {m.group(1): int(m.group(2)) for m in _RAIL.finditer(line)
             if m.group(1) not in ("RAM", "SWAP")}
    if rails:
        out["rails_mw"] = rails
    temps = {m.group(1): float(m.group(2)) for m in _TEMP.finditer(line)
             if float(m.group(2)) > -40}
    if temps:
        out["temps_c"] = temps
    m = _GR3D.search(line)
    if m and m.group(2):
        # Orin lists one clock per GPC; they are set together
        out["gpu_mhz"] = max(int(v) for v in m.group(2).split(",") if v)
    m = _EMC.search(line)
    if m and m.group(2):
        out["emc_mhz"] = int(m.group(2))
    return out


def input_power_w(sample):
    """(watts, rail name) of one parsed line, or None when it has no rails."""
    rails = sample.get("rails_mw") or {}
    for name in INPUT_RAILS:
        if name in rails:
            return rails[name] / 1000, name
    if not rails:
        return None
    return sum(rails.values()) / 1000, "+".join(sorted(rails))


def summarize(samples, images, seconds):
    """Figures of the parsed lines sampled while `images` images ran in `seconds`:
    mean/max input power (W), energy per image (mJ), max temperature per zone, mean GPU and
    EMC clocks. ValueError when no line had a power reading."""
    power = [p for p in map(input_power_w, samples) if p is not None]
    if not power:
        raise ValueError("tegrastats gave no power readings during the timed calls")
    watts = [w for w, _ in power]
    mean_w = sum(watts) / len(watts)
    temps = {}
    for s in samples:
        for zone, c in (s.get("temps_c") or {}).items():
            temps[zone] = max(c, temps.get(zone, c))
    out = {"samples": len(samples), "rail": power[0][1], "power_w_mean": round(mean_w, 3),
           "power_w_max": round(max(watts), 3),
           "energy_mj_per_image": round(1000 * mean_w * seconds / images, 3),
           "temp_c_max": temps}
    for key in ("gpu_mhz", "emc_mhz"):
        values = [s[key] for s in samples if key in s]
        if values:
            out[key + "_mean"] = round(sum(values) / len(values), 1)
    return out
