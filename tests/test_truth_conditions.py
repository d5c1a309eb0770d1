"""bench's conditions (issue 24): load average and CPU clock before and after timing, a
"noisy" mark from the load or the run's own noise band, efficiency or roofline above 100%
shown as a measurement problem, and a footnote that explains exactly the table's columns."""

from __future__ import annotations

from pathlib import Path

from edgecnn.bench.machine import load_and_clock, noisy_reasons
from edgecnn.bench.report import COLUMNS, IDENTITY, OVER_100, render
from edgecnn.timing.harness import BenchCase, run_group
from edgecnn.timing.loop import TimingPlan
from edgecnn.timing.stats import noise_band
from tests.test_bench import SleepRunner


def test_load_and_clock_read_what_the_os_reports(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/loadavg").write_text("3.52 1.10 0.70 2/345 6789\n")
    for i, khz in enumerate((2_400_000, 1_600_000)):
        d = tmp_path / f"sys/devices/system/cpu/cpu{i}/cpufreq"
        d.mkdir(parents=True)
        (d / "scaling_cur_freq").write_text(f"{khz}\n")
    assert load_and_clock(tmp_path) == {"load_1min": 3.52, "cpu_mhz": 2000.0}
    vm = tmp_path / "vm"  # no cpufreq: /proc/cpuinfo's MHz
    (vm / "proc").mkdir(parents=True)
    (vm / "proc/cpuinfo").write_text("processor\t: 0\ncpu MHz\t\t: 2994.000\n\n"
                                     "processor\t: 1\ncpu MHz\t\t: 3006.000\n")
    assert load_and_clock(vm) == {"load_1min": None, "cpu_mhz": 3000.0}
    here = load_and_clock()
    if Path("/proc/loadavg").is_file():
        assert here["load_1min"] is not None and here["load_1min"] >= 0


def test_noisy_from_load_above_cores_or_a_wide_noise_band() -> None:
    quiet = {"load_1min": 0.5, "cpu_mhz": 3000.0}
    assert noisy_reasons(quiet, quiet, 2, {"a": 1.0}, 5.0) == []
    why = noisy_reasons(quiet, {"load_1min": 3.1}, 2, {"a": 12.0}, 5.0)
    assert len(why) == 2 and "3.10 after timing, above the 2 cores" in why[0]
    assert "a timed 12.0% apart" in why[1]
    assert noise_band([1.0] * 10 + [1.5] * 10) == 0.5
    assert noise_band([1.0] * 7) is None


def _records() -> list:
    log: list[str] = []
    cases = [BenchCase(model="m", runtime="sleep", precision="fp32", batch=1,
                       input_shape=(1, 4, 4), macs=1000,
                       make_runner=lambda: SleepRunner(0.0005, log, "a"))]
    return run_group(cases, TimingPlan(warmup=1, iters=10), peak_gmacs=1.0, rounds=2)


def test_efficiency_over_100_is_a_problem_not_a_result() -> None:
    records = _records()
    assert records[0].noise_pct is not None  # the run's own noise band, in every record
    records[0].efficiency_pct, records[0].roofline_pct = 185.0, 42.0  # a peak measured low
    text = render(records, "table", {"before": {"load_1min": 0.2, "cpu_mhz": None},
                                     "after": {"load_1min": 2.5, "cpu_mhz": 2100.0},
                                     "noisy": ["load average 2.50 after timing"]})
    table, _, foot = text.partition("\n\n")
    assert OVER_100 in table and "185" not in table and "42" in table
    assert f"{OVER_100}: eff % or roof % above 100 is a measurement problem" in foot
    assert "before timing load 0.20, CPU ?; after load 2.50, CPU 2100 MHz" in foot
    assert "NOISY: these figures cannot be trusted: load average 2.50" in foot


def test_footnote_explains_exactly_the_columns_shown() -> None:
    records = _records()
    for with_roof in (False, True):
        records[0].roofline_pct = 50.0 if with_roof else None
        table, _, foot = render(records, "table", {}).partition("\n\n")
        header = table.splitlines()[0]
        shown = [h for h, _, _ in COLUMNS if f" {h} " in f" {header} "]
        notes = foot.partition("Columns: ")[2]
        for h, _, _ in COLUMNS:
            if h in IDENTITY:
                continue
            assert (h in shown) == (h in notes), h
        assert ("roof %" in header) == with_roof
