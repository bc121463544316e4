"""The protocol file format and the Python script API: what each step means, parameters, and the
promise that a script and a file build the same steps."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from chipctl.config.bench import load_bench
from chipctl.config.sourcefile import SourceError
from chipctl.protocol import parse_protocol
from chipctl.protocol.model import (
    Flow,
    Image,
    Monitor,
    ParameterError,
    Prime,
    Prompt,
    Repeat,
    Wait,
)
from chipctl.protocol.script import ProtocolBuilder, load_any, load_script
from chipctl.protocol.validate import check_protocol

DATA = Path(__file__).parent / "data"


def parse(text: str):
    return parse_protocol(textwrap.dedent(text), "p.yaml")


def problems_of(text: str) -> list[str]:
    with pytest.raises(SourceError) as info:
        parse(text)
    return [str(p) for p in info.value.problems]


def test_steps_are_typed_and_in_lab_units() -> None:
    protocol = parse("""
        schema_version: 1
        name: t
        steps:
          - prime: {pump: buffer_pump, volume: 0.02 mL, rate: 50 uL/min}
          - block: {pump: buffer_pump, duration: 2 min, rate: 10 uL/min}
          - incubate: 10 min
          - stain: {pump: stain_pump, volume: 20 uL, rate: 0.12 mL/h}
          - wash: {pump: buffer_pump, volume: 30 uL, rate: 20 uL/min, direction: withdraw}
          - prompt: Turn the valve by hand
        """)
    prime, block, wait, stain, wash, prompt = protocol.steps
    assert prime == Prime(label="1. prime", pump="buffer_pump", volume_ul=20.0, rate_ul_min=50.0)
    assert isinstance(block, Flow) and block.reagent == "block"
    assert block.planned_volume_ul == pytest.approx(20.0)
    assert wait == Wait(label="3. incubate", duration_s=600.0)
    assert stain.rate_ul_min == pytest.approx(2.0) and stain.reagent == "stain"
    assert wash.direction == "withdraw" and wash.planned_duration_s == pytest.approx(90.0)
    assert prompt == Prompt(label="6. prompt", message="Turn the valve by hand")
    assert [s.line for s in protocol.steps] == [5, 6, 7, 8, 9, 10]


def test_steps_are_immutable() -> None:
    step = parse("steps: [{wait: 1 min}]").steps[0]
    with pytest.raises(AttributeError):
        step.duration_s = 5  # type: ignore[misc]


def test_image_fields_grid_and_positions() -> None:
    protocol = parse("""
        steps:
          - image: {zones: [CD9], channels: [AF488], fields: 4, field_spacing: 100 um}
          - image: {zones: CD63, channels: [AF647], grid: [1, 3], field_spacing: 250 um}
          - image:
              zones: [CD81]
              channels: [{channel: AF555, exposure: 0.1 s, power: 30 %}]
              positions: [[0 um, 0 um], [-200 um, 0.1 mm]]
              autofocus: true
        """)
    four, row, custom = protocol.steps
    assert isinstance(four, Image)
    assert sorted(four.field_offsets()) == [(-50, -50), (-50, 50), (50, -50), (50, 50)]
    assert row.field_offsets() == [(-250, 0), (0, 0), (250, 0)]
    assert custom.field_offsets() == [(0, 0), (-200, 100)]
    assert custom.channels[0].exposure_ms == pytest.approx(100.0)
    assert custom.autofocus and custom.frames == 2


def test_monitor_with_plateau_and_budget() -> None:
    (monitor,) = parse("""
        steps:
          - monitor:
              zone: CD63
              channel: {channel: AF647, exposure: 50 ms, power: 40 %}
              flow: {pump: sample_pump, rate: 10 uL/min, volume: 100 uL}
              interval: 1 min
              until_plateau: {points: 3, tolerance: 10 %, min_count: 5}
        """).steps
    assert isinstance(monitor, Monitor)
    assert monitor.flow.planned_volume_ul == 100.0 and monitor.flow.reagent == "sample"
    assert (monitor.interval_s, monitor.until_plateau, monitor.plateau_points) == (60.0, True, 3)
    assert (monitor.plateau_tolerance_pct, monitor.plateau_min_count) == (10.0, 5)


def test_repeat_unrolls_in_order_with_nested_labels() -> None:
    protocol = parse("""
        steps:
          - repeat:
              times: 2
              steps:
                - wash: {pump: buffer_pump, volume: 10 uL, rate: 10 uL/min}
                - wait: 30 s
        """)
    (repeat,) = protocol.steps
    assert isinstance(repeat, Repeat)
    assert [s.label for s in protocol.flat_steps()] == ["1.1. wash", "1.2. wait"] * 2


def test_parameters_defaults_required_and_unknown() -> None:
    protocol = parse("""
        parameters:
          sample: {description: sample name}
          dilution: {default: "1:10"}
          operator: ""
        steps:
          - prompt: "Load {sample} at {dilution}"
        """)
    assert protocol.resolve_parameters({"sample": "S1"}) == {
        "sample": "S1", "dilution": "1:10", "operator": ""}
    with pytest.raises(ParameterError, match="'sample' is required"):
        protocol.resolve_parameters({})
    with pytest.raises(ParameterError, match="unknown parameter 'donor'"):
        protocol.resolve_parameters({"sample": "S1", "donor": "3"})


def test_problems_are_all_reported_with_lines() -> None:
    found = problems_of("""
        schema_version: 1
        name: t
        stepz: []
        steps:
          - prime: {pump: buffer_pump, volume: 20 uL, rate: 50}
          - flow: {pump: sample_pump, rate: 5 uL/min}
          - image: {zones: [CD63], channels: [AF647], grid: [0, 2]}
          - wait: 10 minutes please
        """)
    assert found[0] == "p.yaml:4: unknown top-level field 'stepz'; known fields: " \
        "schema_version, name, description, parameters, steps"
    assert found[1].startswith("p.yaml:6: step 1 (prime): prime.rate: write the unit")
    assert found[2].startswith("p.yaml:7: step 2 (flow): flow: give either a volume")
    assert found[3].startswith("p.yaml:8: step 3 (image): image.grid:")
    assert found[4].startswith("p.yaml:9: step 4 (wait): wait.duration: cannot read")
    assert len(found) == 5


SCRIPT = '''
from chipctl.protocol.script import ProtocolBuilder

p = ProtocolBuilder("same")
sample = p.parameter("sample", default="S1")
p.prime("buffer_pump", volume="20 uL", rate="50 uL/min")
with p.repeat(2):
    p.sample("sample_pump", rate="5 uL/min", volume="10 uL")
    p.incubate("1 min")
p.image(["CD63", "isotype"], channels=[p.channel("AF647", exposure="50 ms", power="60 %")],
        grid=(1, 2), field_spacing="350 um")
p.monitor("CD63", p.channel("AF647"), {"pump": "sample_pump", "rate": "2 uL/min",
          "volume": "4 uL"}, interval="30 s", until_plateau=True)
p.prompt(f"Done with {sample}")
protocol = p.build()
'''

YAML = '''
parameters: {sample: {default: S1}}
steps:
  - prime: {pump: buffer_pump, volume: 20 uL, rate: 50 uL/min}
  - repeat:
      times: 2
      steps:
        - sample: {pump: sample_pump, rate: 5 uL/min, volume: 10 uL}
        - incubate: 1 min
  - image:
      zones: [CD63, isotype]
      channels: [{channel: AF647, exposure: 50 ms, power: 60 %}]
      grid: [1, 2]
      field_spacing: 350 um
  - monitor:
      zone: CD63
      channel: AF647
      flow: {pump: sample_pump, rate: 2 uL/min, volume: 4 uL}
      interval: 30 s
      until_plateau: true
  - prompt: "Done with {sample}"
'''


def test_script_builds_the_same_steps_as_a_file(tmp_path: Path) -> None:
    script = tmp_path / "same.py"
    script.write_text(SCRIPT)
    from_script = load_script(script)
    from_file = parse(YAML)
    assert from_script.steps == from_file.steps
    assert from_script.parameters == from_file.parameters
    assert from_script.source == str(script) and "ProtocolBuilder" in from_script.source_text
    assert from_script.steps[1].line == 7  # the `with p.repeat(2):` line
    assert from_script.flat_steps()[1].line == 8  # p.sample(...) inside it


def test_script_problems_name_the_script_line(tmp_path: Path) -> None:
    script = tmp_path / "bad.py"
    script.write_text(SCRIPT.replace('rate="5 uL/min"', 'rate="5 uL"'))
    with pytest.raises(SourceError) as info:
        load_script(script)
    assert str(info.value).startswith(f"{script}:8: sample: sample.rate: '5 uL' is not a flow rate")


def test_script_steps_carry_lines_into_validation(tmp_path: Path) -> None:
    script = tmp_path / "zone.py"
    script.write_text(SCRIPT.replace('["CD63", "isotype"]', '["CD63", "CD99"]'))
    protocol = load_any(script)
    problems, _ = check_protocol(protocol, load_bench(DATA / "bench_offline.yaml"))
    assert [str(p) for p in problems] == [
        f"{script}:10: 3. image: unknown capture zone 'CD99'; the chip has: "
        "CD9, CD63, CD81, isotype"]


def test_yaml_is_never_executed(tmp_path: Path) -> None:
    evil = tmp_path / "evil.yaml"
    marker = tmp_path / "pwned"
    evil.write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\nsteps: []\n")
    with pytest.raises(SourceError):
        load_any(evil)
    assert not marker.exists()


def test_monitor_with_flows_alongside_runs_them_for_the_main_flows_time() -> None:
    (monitor,) = parse("""
        steps:
          - monitor:
              zone: CD63
              channel: AF555
              flow: {pump: sample_pump, rate: 2 uL/min, volume: 20 uL}
              with: [{pump: stain_pump, rate: 0.5 uL/min}]
        """).steps
    (stain,) = monitor.alongside
    assert (stain.pump, stain.duration_s, stain.planned_volume_ul) == ("stain_pump", 600.0, 5.0)
    assert monitor.total_rate_ul_min == 2.5
    problems, plan = check_protocol(parse_protocol(textwrap.dedent("""
        steps:
          - monitor:
              zone: CD63
              channel: AF555
              flow: {pump: sample_pump, rate: 2000 uL/min, volume: 800 uL}
              with: [{pump: stain_pump, rate: 1500 uL/min}]
        """), "m.yaml"), load_bench(DATA / "bench_offline.yaml"))
    assert [str(p) for p in problems] == [
        "m.yaml:3: 1. monitor: draws 600 uL from stain_pump, which holds only 500 uL at that "
        "point: the syringe would run dry",
        "m.yaml:3: 1. monitor: 3500 uL/min together drives 116 kPa through the chip, over its "
        "100 kPa limit (max 3026.6 uL/min)"]
    assert plan.volume_by_pump_ul == {"stain_pump": 600.0, "sample_pump": 800.0}


def test_every_unreadable_field_of_a_step_is_reported() -> None:
    found = problems_of("""
        steps:
          - sample:
              pump: 3.5
              rate: 5
              volume: lots
          - wait: {duration: 1 min, then: 2 min}
        """)
    assert found == [
        "p.yaml:4: step 1 (sample): sample.pump: expected a name, got 3.5",
        "p.yaml:5: step 1 (sample): sample.rate: write the unit, e.g. '5 uL/min'",
        "p.yaml:6: step 1 (sample): sample.volume: cannot read 'lots' as a quantity: it does "
        "not start with a number (write e.g. '5 uL/min')",
        "p.yaml:7: step 2 (wait): wait: unknown field 'then'; known fields: duration",
    ]


LABELLED = """
    schema_version: 1
    name: t
    steps:
      - stain: {pump: stain_pump, volume: 20 uL, rate: 2 uL/min,
                labels: {CD9: AF488, CD63: AF555, CD81: AF647}}
      - monitor:
          zone: CD63
          channel: AF555
          flow: {pump: sample_pump, rate: 2 uL/min, volume: 4 uL}
          with: [{pump: stain_pump, rate: 0.5 uL/min, labels: {CD63: AF555}}]
    """


def test_a_stain_says_which_antibody_carries_which_dye() -> None:
    stain, monitor = parse(LABELLED).steps
    assert isinstance(stain, Flow)
    assert stain.label_channels == {"CD9": "AF488", "CD63": "AF555", "CD81": "AF647"}
    assert monitor.alongside[0].label_channels == {"CD63": "AF555"}


@pytest.mark.parametrize(("labels", "message"), [
    ("[CD9, AF488]", "stain.labels: a mapping of marker to dye"),
    ("{CD9: AF488, CD63: AF488}", "stain.labels: dye AF488 carries more than one marker"),
    ("{CD9: {dye: AF488}}", "stain.labels: marker and dye are names"),
])
def test_labels_that_cannot_be_read_name_the_line(labels: str, message: str) -> None:
    found = problems_of(f"""
        schema_version: 1
        name: t
        steps:
          - prime: {{pump: buffer_pump, volume: 20 uL, rate: 50 uL/min}}
          - stain: {{pump: stain_pump, volume: 20 uL, rate: 2 uL/min,
                    labels: {labels}}}
        """)
    assert len(found) == 1 and found[0].startswith(f"p.yaml:7: step 2 (stain): {message}")


def test_a_label_dye_the_bench_cannot_image_is_a_problem() -> None:
    protocol = parse(LABELLED.replace("CD81: AF647", "CD81: AF700"))
    problems, _ = check_protocol(protocol, load_bench(DATA / "bench_offline.yaml"))
    (found,) = [str(p) for p in problems if "labels" in str(p)]
    assert found.startswith("p.yaml:5: 1. stain: labels: CD81 is labelled with 'AF700', which "
                            "is no channel of the illuminator (") and "AF647" in found


def test_a_script_stain_carries_its_labels(tmp_path: Path) -> None:
    script = tmp_path / "stain.py"
    script.write_text("from chipctl.protocol.script import ProtocolBuilder\n"
                      "p = ProtocolBuilder('s')\n"
                      "p.stain('stain_pump', rate='2 uL/min', volume='20 uL',\n"
                      "        labels={'CD63': 'AF555'})\n"
                      "protocol = p.build()\n")
    (stain,) = load_any(script).steps
    assert stain.label_channels == {"CD63": "AF555"}


def test_monitor_while_the_fluid_stands_flows_nothing() -> None:
    text = textwrap.dedent("""
        steps:
          - monitor:
              zone: CD63
              channel: AF555
              incubate: 20 min
              interval: 1 min
              until_plateau: {points: 5, tolerance: 2 %}
        """)
    (monitor,) = parse_protocol(text, "m.yaml").steps
    assert isinstance(monitor, Monitor)
    assert (monitor.incubate_s, monitor.flows, monitor.total_rate_ul_min) == (1200.0, (), 0)
    assert monitor.until_plateau and monitor.plateau_points == 5
    problems, plan = check_protocol(parse_protocol(text, "m.yaml"),
                                    load_bench(DATA / "bench_offline.yaml"))
    assert problems == [] and plan.volume_by_pump_ul == {}
    assert plan.duration_s == 1200.0 and plan.images == 21
    builder = ProtocolBuilder("standing")
    builder.monitor("CD63", "AF555", incubate="20 min", interval="1 min",
                    until_plateau={"points": 5, "tolerance": "2 %"})
    (built,) = builder.build().steps
    assert isinstance(built, Monitor)
    assert (built.incubate_s, built.flows, built.plateau_tolerance_pct) == (1200.0, (), 2.0)


@pytest.mark.parametrize("extra, message", [
    ("flow: {pump: sample_pump, rate: 2 uL/min, volume: 20 uL}", "either flows or incubates"),
    ("with: [{pump: stain_pump, rate: 0.5 uL/min}]", "either flows or incubates"),
])
def test_a_monitor_that_both_flows_and_incubates_is_refused(extra: str, message: str) -> None:
    with pytest.raises(Exception, match=message):
        parse_protocol(textwrap.dedent(f"""
            steps:
              - monitor:
                  zone: CD63
                  channel: AF555
                  incubate: 20 min
                  {extra}
            """), "m.yaml")
