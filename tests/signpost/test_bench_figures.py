"""The arithmetic behind figures that travel between machines: calibration, ratios, spread, and overload's ramp."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from signpost.bench import calibration, figures, overload, scale
from signpost.bench.load import Sample, summarise


def point(
    broker: float, nodes: float, p50: float = 10.0, p99: float = 20.0, rate: float | None = None
) -> dict[str, Any]:
    return {
        "offered_rate": rate,
        "searches": 100,
        "broker_cpu_ms_per_search": broker,
        "nodes_cpu_ms_per_search": nodes,
        "driver_cpu_ms_per_search": 1.0,
        "latency_ms": {"p50": p50, "p95": p99, "p99": p99},
        "statuses": {"200": 100},
        "not_answered": {},
    }


def test_calibration_loop_and_sort_are_cpu_milliseconds_that_grow_with_the_work() -> None:
    small, large = calibration.python_loop_ms(100_000, repeats=2), calibration.python_loop_ms(1_000_000, repeats=2)
    assert 0 < small < large  # ten times the additions cannot cost less CPU
    assert 0 < calibration.numpy_sort_ms(10_000, repeats=1) < calibration.numpy_sort_ms(1_000_000, repeats=1)


def test_a_sample_records_the_load_and_asks_the_floor_only_when_given_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(calibration, "LOOP_OPS", 10_000)  # the shape is under test here, not the machine
    monkeypatch.setattr(calibration, "SORT_ELEMENTS", 10_000)
    asked: list[int] = []

    def floor() -> dict[str, Any]:
        asked.append(1)
        return {"caller_cpu_ms_per_round": 4.0}

    without = calibration.sample()
    with_floor = calibration.sample(floor)
    assert "grpc_floor" not in without and with_floor["grpc_floor"] == {"caller_cpu_ms_per_round": 4.0}
    assert asked == [1] and len(without["load_average"]) == 3
    assert without["python_loop_ops"] == 10_000 and without["python_loop_ms"] > 0
    assert without["numpy_sort_elements"] == 10_000 and without["numpy_sort_ms"] >= 0


def test_the_reference_is_the_mean_of_before_and_after_and_either_alone_will_do() -> None:
    before = {"python_loop_ms": 100.0, "numpy_sort_ms": 50.0, "grpc_floor": {"caller_cpu_ms_per_round": 30.0}}
    after = {"python_loop_ms": 120.0, "numpy_sort_ms": 70.0, "grpc_floor": {"caller_cpu_ms_per_round": 40.0}}
    assert calibration.reference(before, after) == {
        "python_loop_ms": 110.0,
        "numpy_sort_ms": 60.0,
        "grpc_floor_cpu_ms_per_round": 35.0,
    }
    alone = calibration.reference({"python_loop_ms": 90.0, "numpy_sort_ms": 40.0})
    assert alone == {"python_loop_ms": 90.0, "numpy_sort_ms": 40.0}  # no floor measured, no floor invented


def test_calibrated_measures_before_and_after_the_benchmark_not_during_it(monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []

    def sample(floor: object = None) -> dict[str, Any]:
        order.append("sample")
        return {"python_loop_ms": 1.0, "numpy_sort_ms": 1.0}

    def measure() -> dict[str, Any]:
        order.append("measure")
        return {"benchmark": "x"}

    monkeypatch.setattr(calibration, "sample", sample)
    report = calibration.calibrated(measure)
    assert order == ["sample", "measure", "sample"]
    assert set(report["calibration"]) == {"before", "after", "reference"}


def test_point_ratios() -> None:
    r = figures.point_ratios(point(broker=30.0, nodes=60.0), authorities=150, floor_ms=15.0, loop_ms=45.0)
    assert r == {
        "broker_cpu_over_floor": 2.0,
        "broker_cpu_us_per_authority": 200.0,
        "nodes_cpu_us_per_authority": 400.0,
        "cpu_over_python_loop": 2.0,
    }
    # Without a floor (a benchmark that did not measure one) the ratio is absent, never a division by zero.
    assert figures.point_ratios(point(1, 1), 1, None, 0.0)["broker_cpu_over_floor"] is None


def test_run_ratios_key_loads_by_rate_and_take_federated_over_central() -> None:
    run = {
        "federated": {"serial": point(30, 60, p50=60, p99=150), "loads": [point(10, 25, rate=50.0)]},
        "central": {"serial": point(4, 6, p50=10, p99=25), "loads": []},
    }
    r = figures.run_ratios(run, authorities=152, floor_ms=15.0, loop_ms=100.0)
    assert set(r["loads"]) == {"50/s"} and r["loads"]["50/s"]["cpu_over_python_loop"] == 0.35
    assert r["federated_over_central"] == {"p50": 6.0, "p99": 6.0}
    assert "federated_over_central" not in figures.run_ratios({"federated": run["federated"]}, 152, 15.0, 100.0)


def test_spread_is_least_median_greatest_of_figures_every_run_has() -> None:
    runs = [
        {"federated": {"serial": point(30, 60, p99=100)}, "only_here": 1},
        {"federated": {"serial": point(20, 50, p99=300)}},
        {"federated": {"serial": point(40, 70, p99=200)}},
    ]
    s = figures.spread(runs)
    assert s["federated.serial.latency_ms.p99"] == {"min": 100.0, "median": 200.0, "max": 300.0}
    assert s["federated.serial.broker_cpu_ms_per_search"] == {"min": 20.0, "median": 30.0, "max": 40.0}
    assert "only_here" not in s  # a figure one run lacks has no spread
    # Counts keyed by outcome and the settings themselves are not figures.
    assert not any(k.endswith((".searches", ".offered_rate")) or ".statuses." in k for k in s)


def test_flatten_keys_loads_by_offered_rate_and_skips_booleans() -> None:
    flat = figures.flatten({"loads": [point(1, 2, rate=25.0), point(1, 2, rate=50.0)], "complete": False})
    assert "loads.25/s.latency_ms.p99" in flat and "loads.50/s.broker_cpu_ms_per_search" in flat
    assert "complete" not in flat


def test_summarise_counts_refusals_by_reason_and_judges_coverage_of_admitted_searches_only() -> None:
    results = [
        Sample(100.0, 200, "", 100, 100),
        Sample(120.0, 200, "", 99, 100, ("timeout",)),
        Sample(130.0, 200, "", 90, 100, ("circuit_open",) * 10),
        Sample(52.0, 503, "503 overloaded", queued_ms=50.0),  # 50 ms waiting for the client's own connection
        Sample(3.0, 0, "ClientConnectorError"),
        Sample(1.0, 400, "400 invalid_request"),  # a subject below the minimum query: no load makes it valid
    ]
    s = summarise(results, elapsed=1.0, authorities=100)
    assert s["refused"] == 2 and s["refused_by_reason"] == {"503 overloaded": 1, "ClientConnectorError": 1}
    assert s["invalid"] == 1 and s["statuses"] == {"200": 3, "503": 1, "0": 1, "400": 1}
    assert s["throughput_per_second"] == 3.0
    assert s["coverage_complete"] == 0.2  # of every search sent
    assert s["admitted_heard_from_all"] == round(1 / 3, 4)
    assert s["admitted_heard_from_99pc"] == round(2 / 3, 4)  # 99 of 100 is heard enough; 90 is not
    assert s["not_answered"] == {"timeout": 1, "circuit_open": 10}
    assert s["latency_ms"]["p50"] == 120.0  # admitted only: the refusals' 2-3 ms do not flatter it
    assert s["refused_latency_ms"] == {"p50": 2.0, "p99": 3.0}  # the load generator's own queue is not the broker's
    assert s["client_queue_ms"]["p99"] == 50.0
    none_admitted = summarise([Sample(2.0, 503, "503 overloaded")], elapsed=1.0, authorities=100)
    assert none_admitted["admitted_heard_from_all"] is None and none_admitted["admitted_heard_from_99pc"] is None


def test_the_ramp_climbs_while_carried_and_stops_at_the_first_failure() -> None:
    assert overload.next_rate([(20.0, True)]) == 25.0
    assert overload.next_rate([(20.0, True), (25.0, True), (31.2, False)]) is None
    assert overload.capacity_of([(20.0, True), (25.0, True), (31.2, False)]) == 25.0


def test_the_ramp_descends_from_a_first_rate_not_carried_until_one_is() -> None:
    assert overload.next_rate([(20.0, False)]) == 16.0
    assert overload.next_rate([(20.0, False), (16.0, True)]) is None
    assert overload.capacity_of([(20.0, False), (16.0, True)]) == 16.0
    assert overload.capacity_of([(20.0, False), (16.0, False)]) is None


def test_the_ramp_is_bounded_in_steps_and_rate() -> None:
    climbing = [(float(i), True) for i in range(1, overload.RAMP_MAX_STEPS + 1)]
    assert overload.next_rate(climbing) is None
    assert overload.next_rate([(0.55, False)]) is None  # 0.44/s is below the least rate worth offering


def test_carried_needs_both_coverage_and_the_tail() -> None:
    ok = {"coverage_complete": 0.995, "latency_ms": {"p99": 480.0}}
    assert overload.carried(ok)
    assert not overload.carried({**ok, "coverage_complete": 0.98})
    assert not overload.carried({**ok, "latency_ms": {"p99": 501.0}})


def test_the_serial_estimate_is_cores_over_cpu_per_search() -> None:
    serial = {"broker_cpu_ms_per_search": 30.0, "nodes_cpu_ms_per_search": 69.0, "driver_cpu_ms_per_search": 1.0}
    assert overload.estimate_from_serial(serial, cores=2) == 20.0


def test_admitted_means_heard_fails_on_a_gap_or_an_open_circuit() -> None:
    level = {
        "admitted_heard_from_99pc": 1.0,
        "not_answered": {},
        "circuits": {"authorities_with_circuit_opened": 0},
    }
    assert overload.verdict(level) is True
    assert overload.verdict({**level, "admitted_heard_from_99pc": 0.999}) is False  # one search short is one too many
    assert overload.verdict({**level, "circuits": {"authorities_with_circuit_opened": 3}}) is False
    assert overload.verdict({**level, "not_answered": {"circuit_open": 1}}) is False
    assert overload.verdict({**level, "admitted_heard_from_99pc": None}) is None  # nothing admitted, nothing judged


def test_each_run_lands_in_the_json_with_its_ratios_and_the_spread(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    before = {"python_loop_ms": 100.0, "numpy_sort_ms": 50.0, "grpc_floor": {"caller_cpu_ms_per_round": 20.0}}
    report: dict[str, Any] = {"authorities": 10, "calibration": calibration.block(before)}
    runs: list[dict[str, Any]] = [
        {"python_loop_ms": 100.0, "federated": {"serial": point(40, 60), "loads": [point(10, 30, rate=25.0)]}},
        {"python_loop_ms": 110.0, "federated": {"serial": point(20, 50), "loads": [point(12, 28, rate=25.0)]}},
        {},  # not yet measured
    ]
    scale._record_runs(report, runs, out)
    saved = json.loads(out.read_text())
    assert saved["complete"] is False and len(saved["runs"]) == 2
    assert saved["federated"] == runs[0]["federated"]
    assert saved["runs"][0]["ratios"]["serial"]["broker_cpu_over_floor"] == 2.0
    assert saved["runs"][1]["ratios"]["serial"]["cpu_over_python_loop"] == round(70 / 110, 3)
    assert saved["spread"]["ratios.serial.broker_cpu_over_floor"] == {"min": 1.0, "median": 1.5, "max": 2.0}
    assert saved["spread"]["federated.loads.25/s.broker_cpu_ms_per_search"]["max"] == 12.0
