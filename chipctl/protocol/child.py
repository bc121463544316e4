"""The child process of a scripted protocol (chipctl.protocol.sandbox starts it as
`python -m chipctl.protocol.child SCRIPT RESULT`): it runs the script and writes what the
builder recorded, or its problems, as plain JSON for the parent to parse."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from chipctl.config.sourcefile import SourceError
from chipctl.protocol.script import execute_script


def child_main(script: str, result: str) -> int:
    """Run `script`; write {"problems": [...]} or its builder's recipe to `result` as JSON."""
    try:
        data: dict[str, Any] = execute_script(script)
    except SourceError as exc:
        data = {"problems": [[p.line, p.message] for p in exc.problems]}
    try:
        text = json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        text = json.dumps({"problems": [[0, f"the script passed a value that is not plain "
                                         f"data ({exc})"]]})
    Path(result).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":  # pragma: no cover - run as the child
    sys.exit(child_main(sys.argv[1], sys.argv[2]))
