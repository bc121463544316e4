"""The protocol library: where the shipped protocols are, and finding one by its name.

`chipctl run quickstart` means the library's quickstart.yaml when no file of that name is in
the working folder. The library is, in this order: the folder named by $CHIPCTL_PROTOCOLS, the
repository's protocols/ beside the installed packages (an editable or source install), or
share/chipctl/protocols under the environment's prefix (where pyproject.toml's data-files put
it in a packaged install; the GUI's open dialog looks in the same places).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

LIBRARY_ENV = "CHIPCTL_PROTOCOLS"
SUFFIXES = (".yaml", ".yml", ".py")


class ProtocolNotFound(LookupError):
    """Neither a file nor a protocol of the library (the message says where it looked)."""


PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding chipctl/


def protocol_library(environ: Mapping[str, str] = os.environ, package_root: Path = PACKAGE_ROOT,
                     prefix: str = sys.prefix) -> Path | None:
    """The library folder, or None if there is none."""
    candidates = [Path(environ[LIBRARY_ENV])] if environ.get(LIBRARY_ENV) else []
    candidates += [package_root / "protocols", Path(prefix) / "share" / "chipctl" / "protocols"]
    return next((path for path in candidates if path.is_dir()), None)


def library_names(library: Path | None = None) -> list[str]:
    """The protocols of the library by name (file name without its suffix)."""
    folder = library or protocol_library()
    if folder is None:
        return []
    return sorted({p.stem for p in folder.iterdir() if p.suffix in SUFFIXES and p.is_file()})


def find_protocol(name: str, library: Path | None = None) -> Path:
    """A protocol file: `name` itself if it exists, else the library's protocol of that name
    (with or without its suffix); ProtocolNotFound otherwise."""
    given = Path(name)
    if given.exists() or given.parent != Path("."):
        return given  # a path (even a missing one: its loader says why it cannot be read)
    folder = library or protocol_library()
    if folder is not None:
        stems = [name] if given.suffix in SUFFIXES else [name + s for s in SUFFIXES]
        for candidate in (folder / stem for stem in stems):
            if candidate.is_file():
                return candidate
    where = f"the protocol library ({folder})" if folder else "a protocol library (none found)"
    known = library_names(folder) if folder else []
    listing = f"; the library has: {', '.join(known)}" if known else ""
    raise ProtocolNotFound(f"no protocol {name!r}: not a file here, nor in {where}{listing}")
