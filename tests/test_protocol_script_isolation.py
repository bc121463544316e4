"""Python scripted protocols run in a child process (issue 17): one patched the validator out,
one left a process running, and `validate` ran them inside chipctl. Now the child has a time
and memory limit, everything it starts dies with it, and only plain data comes back."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest

from chipctl.cli.main import main
from chipctl.config.sourcefile import SourceError
from chipctl.protocol import validate
from chipctl.protocol.sandbox import run_script
from chipctl.protocol.script import load_script

BENCH = str(Path(__file__).parent / "data" / "bench_offline.yaml")
TAIL = '''
from chipctl.protocol.script import ProtocolBuilder
p = ProtocolBuilder("evil")
p.wait("1 min")
protocol = p.build()
'''


def script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "evil.py"
    path.write_text(textwrap.dedent(body) + TAIL)
    return path


def test_the_script_runs_in_another_process(tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    path = script(tmp_path, f"import os; open({str(marker)!r}, 'w').write(str(os.getpid()))\n")
    protocol = load_script(path)
    assert protocol.steps[0].duration_s == 60.0
    assert int(marker.read_text()) != os.getpid()


def test_a_script_cannot_patch_the_validator_out(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    original = validate.check_protocol
    path = script(tmp_path, """
        import chipctl.protocol.validate as v
        v.check_protocol = lambda protocol, bench, track_volumes=True: ([], v.DryRun())
    """)
    path.write_text(path.read_text().replace('p.wait("1 min")',
                                             'p.sample("no_such_pump", rate="5 uL/min", '
                                             'volume="5 uL")'))
    assert main(["validate", str(path), "--bench", BENCH]) == 2
    assert "unknown pump 'no_such_pump'" in capsys.readouterr().err
    assert validate.check_protocol is original


def test_a_process_the_script_starts_dies_with_it(tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    path = script(tmp_path, f"""
        import subprocess
        child = subprocess.Popen(["sleep", "300"])
        open({str(marker)!r}, "w").write(str(child.pid))
    """)
    load_script(path)
    pid = int(marker.read_text())
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), "the script's process outlived the load"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_an_endless_script_is_stopped_at_its_time_limit(tmp_path: Path) -> None:
    path = script(tmp_path, "while True:\n    pass\n")
    with pytest.raises(SourceError, match="ran longer than 2 s and was stopped"):
        run_script(path, time_limit_s=2.0)


def test_a_script_that_eats_memory_is_stopped(tmp_path: Path) -> None:
    path = script(tmp_path, "hog = bytearray(8 << 30)\n")
    with pytest.raises(SourceError, match="MemoryError"):
        run_script(path)


def test_only_plain_data_comes_back(tmp_path: Path) -> None:
    path = tmp_path / "odd.py"
    path.write_text(textwrap.dedent('''
        from chipctl.protocol.script import ProtocolBuilder
        p = ProtocolBuilder("odd")
        p.wait(duration=object())
        protocol = p.build()
    '''))
    with pytest.raises(SourceError) as info:
        load_script(path)
    assert "wait" in str(info.value) and "Traceback" not in str(info.value)


def test_a_forged_result_is_parsed_like_a_file(tmp_path: Path) -> None:
    """Whatever the child hands back is only data: parsed and checked here like a file."""
    result_path = "sys.argv[2]"
    path = tmp_path / "forge.py"
    path.write_text(textwrap.dedent(f'''
        import json, os, sys
        recipe = {{"name": "x", "description": "", "parameters": [],
                   "steps": [{{"kind": "wait", "value": {{"duration": "1e400 s"}},
                              "line": 1, "label": "1. wait"}}]}}
        open({result_path}, "w").write(json.dumps(recipe))
        os._exit(0)
    '''))
    with pytest.raises(SourceError, match="too large a number"):
        load_script(path)
