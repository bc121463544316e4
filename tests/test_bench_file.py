"""The bench file loader: valid files load; broken ones name the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from wire import expected_protocol

from chipctl.config.bench import load_bench
from chipctl.config.devices import DRIVER_SETTINGS
from chipctl.config.sourcefile import SourceError
from chipctl.devices.registry import DRIVERS
from chipctl.protocol import parse_protocol
from chipctl.protocol.validate import check_protocol
from chipctl.runs.syringes import SyringeLedger

GOOD = """\
name: two pumps
time_scale: 1
devices:
  sample_pump:
    driver: newera
    url: /dev/ttyUSB0
    address: 1
    syringe: {inner_diameter: 4.699 mm, volume: 1 mL}
  camera: {driver: sim-camera, url: "socket://127.0.0.1:4000", pixel_size_um: 0.65}
chip:
  channel: {width: 1 mm, height: 50 um, length: 20 mm}
  pressure_limit: 100 kPa
  zones:
    CD63: {antibody: anti-CD63, center_um: [1500, 0], size_um: [800, 800]}
    isotype: {antibody: isotype IgG, center_um: [4500, 0]}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bench.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> str:
    with pytest.raises(SourceError) as info:
        load_bench(path)
    return str(info.value)


def test_good_bench_loads_with_settings_and_units(tmp_path: Path) -> None:
    bench = load_bench(write(tmp_path, GOOD))
    pump = bench.pumps["sample_pump"]
    assert pump.address == 1 and pump.baudrate == 19200  # the New Era default
    assert pump.syringe.inner_diameter_mm == 4.699 and pump.syringe.volume_ul == 1000.0
    assert bench.devices["sample_pump"].kind == "pump"
    assert bench.chip.pressure_limit_kpa == 100.0
    assert bench.chip.channel.width_um == 1000.0
    assert bench.chip.zones["isotype"].is_control
    assert not bench.chip.zones["CD63"].is_control
    assert set(bench.of_kind("camera")) == {"camera"}


def test_pressure_follows_hydraulic_resistance(tmp_path: Path) -> None:
    chip = load_bench(write(tmp_path, GOOD)).chip
    # A 1 mm x 50 um x 20 mm duct: R = 12 mu L / (w h^3 (1 - 0.63 h/w)) ~ 2.0e12 Pa s/m^3,
    # so 10 uL/min (1.67e-10 m^3/s) needs ~0.33 kPa; the limit allows ~300 uL/min.
    assert chip.channel.pressure_kpa(10.0) == pytest.approx(0.331, rel=0.02)
    assert chip.max_flow_ul_min() == pytest.approx(100 / chip.channel.pressure_kpa(1.0))


def test_unknown_driver_names_file_line_and_known_drivers(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("driver: newera", "driver: neweraa"))
    message = problems_of(path)
    assert f"{path}:5:" in message
    assert "unknown driver 'neweraa'" in message and "newera" in message


def test_missing_url_names_the_device_line(tmp_path: Path) -> None:
    text = GOOD.replace('  camera: {driver: sim-camera, url: "socket://127.0.0.1:4000", ',
                        "  camera: {driver: sim-camera, ")
    message = problems_of(write(tmp_path, text))
    assert ":9:" in message and "devices.camera: missing field 'url'" in message


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "devices:\n  a: {driver: newera, url: x\n  b: 1\n")
    message = problems_of(path)
    assert str(path) in message and "YAML syntax error" in message
    assert ":3:" in message


def test_wrong_unit_and_unknown_field_are_both_reported(tmp_path: Path) -> None:
    text = GOOD.replace("pressure_limit: 100 kPa", "pressure_limit: 100 uL\n  colour: red")
    message = problems_of(write(tmp_path, text))
    assert ":12: chip.pressure_limit: '100 uL' is not a pressure" in message
    assert ":13: chip.colour: unknown field 'colour'" in message


@pytest.mark.parametrize("content", [b"", b"\x00\x01\x02binary", b"- just\n- a list\n"])
def test_empty_binary_or_non_mapping_files_are_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bench.yaml"
    path.write_bytes(content)
    assert str(path) in problems_of(path)


def test_missing_file(tmp_path: Path) -> None:
    assert "cannot read bench file" in problems_of(tmp_path / "nope.yaml")


def test_a_device_setting_is_typed_ranged_and_named_by_line(tmp_path: Path) -> None:
    text = GOOD.replace("    address: 1\n", "    address: 120\n    colour: red\n")
    text = text.replace("pixel_size_um: 0.65", "pixel_size_um: 0.65 uL")
    message = problems_of(write(tmp_path, text))
    assert ":7: devices.sample_pump.address: Input should be less than or equal to 99" in message
    assert ":8: devices.sample_pump.colour: unknown field 'colour'" in message
    assert ":10: devices.camera.pixel_size_um: '0.65 uL' is not a length" in message


def test_contents_above_the_syringe_volume_are_refused(tmp_path: Path) -> None:
    text = GOOD.replace("volume: 1 mL}", "volume: 1 mL, contents: 2 mL}")
    message = problems_of(write(tmp_path, text))
    assert (":8: devices.sample_pump.syringe: contents 2000 uL exceed the syringe's 1000 uL"
            in message)


def test_the_syringe_contents_default_is_the_same_wherever_it_is_read(tmp_path: Path) -> None:
    """GOOD's syringe states no contents: full, for validation, the run record and the pump."""
    bench = load_bench(write(tmp_path, GOOD))
    assert bench.pumps["sample_pump"].syringe.contents_ul == 1000.0
    protocol = parse_protocol("name: p\nsteps:\n  - sample: {pump: sample_pump, rate: 10 uL/min,"
                              " volume: 1000 uL}\n", "p.yaml")
    problems, plan = check_protocol(protocol, bench)
    assert problems == [] and plan.volume_by_pump_ul == {"sample_pump": 1000.0}  # not dry
    assert SyringeLedger.from_bench(bench).snapshot()["sample_pump"]["contents_ul"] == 1000.0
    with expected_protocol([]) as transport:
        pump = DRIVERS["newera"].factory("sample_pump", bench.pumps["sample_pump"], transport)
        assert pump.syringe.contents_ul == 1000.0


def test_every_driver_a_bench_may_name_has_one_registry_entry() -> None:
    assert set(DRIVERS) == set(DRIVER_SETTINGS)
    for name, driver in DRIVERS.items():
        assert driver.settings is DRIVER_SETTINGS[name]
        # a Micro-Manager microscope is whichever of camera, stage, illuminator its roles say
        assert driver.kind in ("pump", "illuminator", "stage", "camera", "valve", "microscope")
    assert {n: d.baudrate for n, d in DRIVERS.items()
            if d.kind not in ("camera", "microscope")} == {
        "newera": 19200, "harvard": 115200, "coolled": 57600, "prior": 9600, "vici": 9600}


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("    address: 1\n", "    address: 100\n",
     ":7: devices.sample_pump.address: Input should be less than or equal to 99"),
    ("    address: 1\n", "    address: 1\n    baudrate: fast\n",
     ":8: devices.sample_pump.baudrate: Input should be a valid integer"),
    ("    syringe: {inner_diameter: 4.699 mm, volume: 1 mL}\n", "    syringe: [1]\n",
     ":8: devices.sample_pump.syringe: Input should be a valid dictionary"),
    ("  pressure_limit: 100 kPa\n", "  pressure_limit: nan kPa\n",
     ":12: chip.pressure_limit: cannot read 'nan kPa' as a quantity"),
    ("    address: 1\n", "    address: 1\n    safe_mode: 0.4 s\n",
     ":8: devices.sample_pump.safe_mode: the pump counts whole seconds"),
])
def test_issue17_bench_files_are_refused_with_file_and_line(tmp_path: Path, old: str, new: str,
                                                             expected: str) -> None:
    """Issue 17: these ended a run in a traceback (or, nan kPa, switched the over-pressure
    check off); now each is refused naming the file, the line and the field."""
    assert old in GOOD
    message = problems_of(write(tmp_path, GOOD.replace(old, new)))
    assert expected in message and "bench.yaml" in message


def test_a_port_that_cannot_be_opened_is_told_by_device_and_entry(tmp_path: Path) -> None:
    """Issue 17: failures named the port (socket://127.0.0.1:PORT), not the device. Now the
    device and its bench-file entry come first; the port stays as a detail (which cable)."""
    from chipctl.engine import BenchUnavailable, Engine

    text = GOOD.replace("url: /dev/ttyUSB0", 'url: "socket://127.0.0.1:9"')
    bench = load_bench(write(tmp_path, text))
    engine = Engine(bench, runs_dir=tmp_path / "runs", lock_dir=tmp_path / "locks")
    with pytest.raises(BenchUnavailable) as info:
        engine.connect()
    message = str(info.value)
    assert message.startswith("cannot connect to the bench: sample_pump: cannot open its port "
                              "socket://127.0.0.1:9: ")
    assert message.endswith(f"(bench file {bench.path}, entry devices.sample_pump)")


@pytest.mark.parametrize(("named", "told"), [
    ("camera2", "no device is named 'camera2'; the bench's cameras: camera"),
    ("sample_pump", "'sample_pump' is a pump, not a camera; the bench's cameras: camera"),
])
def test_an_led_triggered_by_names_a_camera_of_the_bench(tmp_path: Path, named: str,
                                                         told: str) -> None:
    light = ("  light:\n    driver: coolled\n    url: /dev/ttyUSB1\n"
             f"    triggered_by: {named}\n")
    text = GOOD.replace("chip:\n", light + "chip:\n")
    message = problems_of(write(tmp_path, text))
    assert f":13: devices.light.triggered_by: {told}" in message
    wired = load_bench(write(tmp_path, text.replace(f"triggered_by: {named}",
                                                    "triggered_by: camera")))
    assert wired.devices["light"].triggered_by == "camera"  # type: ignore[union-attr]


def test_the_chip_makers_tolerance_sets_the_capture_models_input_uncertainty(
        tmp_path: Path) -> None:
    from chipctl.analysis.calibration import capture_factor
    from chipctl.analysis.capture import tolerances, zone_model
    from chipctl.analysis.transport import FlowSegment, SizeDistribution

    default = load_bench(write(tmp_path, GOOD))
    assert tolerances(default).height_um == 2.0 and tolerances(default).zone_length_um == 10.0
    exact = load_bench(write(tmp_path, GOOD.replace(
        "  pressure_limit: 100 kPa\n", "  pressure_limit: 100 kPa\n  tolerance: "
        "{channel_height: 0 um, channel_width: 0 um, zone_size: 0 um}\n")))
    loose = load_bench(write(tmp_path, GOOD.replace(
        "  pressure_limit: 100 kPa\n", "  pressure_limit: 100 kPa\n  tolerance: "
        "{channel_height: 5 um}\n")))
    assert tolerances(loose).height_um == 5.0 and tolerances(loose).width_um == 10.0
    sizes = SizeDistribution.lognormal(100.0, 1.4)
    segments = [FlowSegment(2.0, 50.0)]

    def rsd(bench: object) -> float:
        model = zone_model(bench, bench.chip.zones["CD63"], sizes)  # type: ignore[attr-defined]
        return capture_factor(model, segments, "CD63",
                              tol=tolerances(bench)).rsd  # type: ignore[arg-type]

    assert rsd(exact) < rsd(default) < rsd(loose)


def test_a_bad_tolerance_names_its_line(tmp_path: Path) -> None:
    text = GOOD.replace("  pressure_limit: 100 kPa\n",
                        "  pressure_limit: 100 kPa\n  tolerance: {channel_height: -2 um}\n")
    message = problems_of(write(tmp_path, text))
    assert "bench.yaml:13" in message and "channel_height" in message
