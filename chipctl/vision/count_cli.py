"""``chipctl count IMAGE... [--json]``: count vesicles in image files.

Text output: one line per image (per page for multi-page TIFF). ``--json``: one JSON object
per line, ``{"image": PATH, "count": N, "estimated_count": E, "estimated_count_sd": S,
"crowding": C, "defocused": false, "spots": [{"x": X, "y": Y, "amplitude": A, "snr": S,
"photons": P, "crlb_x": SX, "crlb_y": SY, "multiplicity": M}, ...]}`` (see
``chipctl.vision.CountResult`` and ``SPOT_DTYPE``; null where not measured); a multi-page file
gives one object per page with an extra ``"page"`` key (0-based). x is the column and y the
row in pixels, (0, 0) at the centre of the top-left pixel. Exit code 0, or 2 if any image could
not be used (message on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from typing import TextIO

from chipctl.vision.counter import count_frame
from chipctl.vision.imageio import ImageError, Page, read_pages
from chipctl.vision.model import CameraCalibration, CountParams, CountResult


def add_count_arguments(parser: argparse.ArgumentParser) -> None:
    """Add IMAGE... --json --psf-sigma --offset --e-per-adu --read-noise to ``parser``."""
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="TIFF or PNG image(s)")
    parser.add_argument("--json", action="store_true", help="one JSON object per image")
    parser.add_argument("--psf-sigma", type=float, default=None, metavar="PX",
                        help="PSF Gaussian sigma in pixels (default 1.3)")
    parser.add_argument("--offset", type=float, default=None, metavar="ADU",
                        help="camera offset (default: estimated from the image)")
    parser.add_argument("--e-per-adu", type=float, default=None, metavar="X",
                        help="camera gain in electrons per ADU (default: estimated)")
    parser.add_argument("--read-noise", type=float, default=None, metavar="E",
                        help="read noise in electrons rms (default: estimated)")


def count_command(images: list[str], json_out: bool, psf_sigma: float | None,
                  offset: float | None, e_per_adu: float | None, read_noise: float | None,
                  out: TextIO,
                  recorded: Callable[[str], CountParams | None] | None = None) -> int:
    """Count every image; returns the exit code (0 ok, 2 invalid input).

    `recorded(path)` gives the parameters an image was counted with when it was taken (a
    run's saved frame), used unless parameters are given on the command line."""
    try:
        params = _params(psf_sigma, offset, e_per_adu, read_noise)
    except ValueError as exc:
        print(f"chipctl count: error: {exc}", file=sys.stderr)
        return 2
    given = any(v is not None for v in (psf_sigma, offset, e_per_adu, read_noise))
    status = 0
    for path in images:
        image_params = (recorded(path) if recorded and not given else None) or params
        try:
            pages = read_pages(path)
        except ImageError as exc:
            print(f"chipctl count: error: {path}: {exc}", file=sys.stderr)
            status = 2
            continue
        for page in pages:
            try:
                result = count_frame(page.frame, image_params)
            except ValueError as exc:
                print(f"chipctl count: error: {path}: {exc}", file=sys.stderr)
                status = 2
                continue
            _emit(path, page, result, json_out, out)
    return status


def _params(psf_sigma: float | None, offset: float | None, e_per_adu: float | None,
            read_noise: float | None) -> CountParams:
    checks = {"--psf-sigma": psf_sigma, "--e-per-adu": e_per_adu}
    for name, value in checks.items():
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number, got {value}")
    for name, value in {"--offset": offset, "--read-noise": read_noise}.items():
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a non-negative number, got {value}")
    cal = None
    if any(v is not None for v in (offset, e_per_adu, read_noise)):
        cal = CameraCalibration(offset, e_per_adu, read_noise)
    return CountParams(psf_sigma_px=psf_sigma or 1.3, calibration=cal)


def _emit(path: str, page: Page, result: CountResult, json_out: bool, out: TextIO) -> None:
    if not json_out:
        where = path if page.index is None else f"{path} [page {page.index}]"
        print(f"{where}: {result.count} vesicle{'' if result.count == 1 else 's'}", file=out)
        return
    obj: dict[str, object] = {"image": path}
    if page.index is not None:
        obj["page"] = page.index
    obj["count"] = result.count
    obj["estimated_count"] = _num(result.estimated_count, 1)
    obj["estimated_count_sd"] = _num(result.estimated_count_sd, 1)
    obj["crowding"] = _num(result.crowding, 3)
    obj["defocused"] = result.defocused
    obj["spots"] = [{"x": round(s.x, 3), "y": round(s.y, 3), "amplitude": _num(s.amplitude, 2),
                     "snr": _num(s.snr, 2), "photons": _num(s.photons, 1),
                     "crlb_x": _num(s.crlb_x, 4), "crlb_y": _num(s.crlb_y, 4),
                     "multiplicity": s.multiplicity} for s in result.spots_list()]
    print(json.dumps(obj), file=out)


def _num(value: float, digits: int) -> float | None:
    """``value`` rounded, or None (JSON null) when not a finite number."""
    return round(value, digits) if math.isfinite(value) else None


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m chipctl.vision.count_cli``)."""
    parser = argparse.ArgumentParser(prog="chipctl count")
    add_count_arguments(parser)
    a = parser.parse_args(argv)
    return count_command(a.images, a.json, a.psf_sigma, a.offset, a.e_per_adu, a.read_noise,
                         sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
