"""Synthetic sCMOS fluorescence frames of captured vesicles, with ground truth.

Image model (../shared/reference/spot_counting.md sections 2, 3.1, 4.6): pixel-integrated
Gaussian PSF; background with radial vignetting, smooth random texture and a linear gradient;
each spot's peak amplitude A (e-, continuous Gaussian peak) solved from its local background
B so that SNR = A / sqrt(A + B + read_noise^2) (ISBI 2012 style, read noise in quadrature);
Poisson shot noise, Gaussian read noise with a per-pixel map (a fraction of high-noise RTS
pixels), a per-pixel offset spread, a few hot pixels with dark signal, offset 100 ADU,
0.46 e-/ADU, uint16 output.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np
from scipy.special import erf


@dataclass(frozen=True)
class SynthConfig:
    """Parameters of one synthetic frame (defaults: the issue-5 benchmark frame)."""

    shape: tuple[int, int] = (2048, 2048)
    n_spots: int = 2000
    snr: float = 4.0
    psf_sigma: float = 1.3
    sigma_jitter: float = 0.0  # relative sd of per-spot PSF sigma
    background_e: float = 100.0  # at the centre of the field
    vignetting: float = 0.45  # relative drop at the corners
    texture: float = 0.10  # peak relative amplitude of smooth texture
    gradient: float = 0.05  # relative linear gradient across the field
    offset_adu: float = 100.0
    e_per_adu: float = 0.46
    read_noise_e: float = 1.6
    offset_sd_adu: float = 0.5
    rts_fraction: float = 1e-3  # pixels with large read noise
    rts_noise_e: float = 8.0
    hot_fraction: float = 2e-5  # pixels with dark signal (hot pixels)
    hot_signal_e: tuple[float, float] = (50.0, 2000.0)
    border: int = 4
    lognormal_sd: float = 0.0  # >0: spot brightness varies lognormally around the SNR level
    debris: int = 0  # number of broad bright blobs (not vesicles)
    aggregates: int = 0  # clumps of ``aggregate_size`` vesicles within ~2 px (one object)
    aggregate_size: int = 12
    constant_snr: bool = True  # False: spots dim with the illumination like the background


@dataclass
class SynthFrame:
    """A frame and its ground truth (xy: N x 2 (x column, y row), amplitude in e-)."""

    image: np.ndarray
    xy: np.ndarray
    amplitude_e: np.ndarray
    background_e: np.ndarray
    hot_xy: np.ndarray
    debris_xy: np.ndarray
    aggregate_xy: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))


def amplitude_for_snr(snr: float | np.ndarray, background_e: np.ndarray, read_noise_e: float
                      ) -> np.ndarray:
    """Peak amplitude A with A / sqrt(A + B + r^2) = snr."""
    b = background_e + read_noise_e**2
    return (snr**2 + snr * np.sqrt(snr**2 + 4.0 * b)) / 2.0


def background_map(cfg: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """Vignetted, textured, tilted background in e- per pixel (float32)."""
    h, w = cfg.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - (w - 1) / 2) ** 2 + (yy - (h - 1) / 2) ** 2) / (((w - 1) / 2) ** 2
                                                                + ((h - 1) / 2) ** 2)
    vign = 1.0 - cfg.vignetting * r2
    coarse = rng.standard_normal((8, 8)).astype(np.float32)
    tex = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    tex *= cfg.texture / max(float(np.abs(tex).max()), 1e-9)
    grad = 1.0 + cfg.gradient * ((xx / max(w - 1, 1)) - 0.5) * 2.0
    return (cfg.background_e * vign * (1.0 + tex) * grad).astype(np.float32)


def render_spots(shape: tuple[int, int], xy: np.ndarray, amp: np.ndarray,
                 sigma: np.ndarray | float) -> np.ndarray:
    """Sum of pixel-integrated Gaussians of continuous peak ``amp`` at ``xy`` (float32)."""
    out = np.zeros(shape, np.float64)
    if len(xy) == 0:
        return out.astype(np.float32)
    sigma = np.broadcast_to(np.asarray(sigma, float), (len(xy),))
    rad = int(np.ceil(4.0 * sigma.max())) + 1
    d = np.arange(-rad, rad + 1)
    cx, cy = np.round(xy[:, 0]).astype(int), np.round(xy[:, 1]).astype(int)
    px = cx[:, None] + d[None, :]
    py = cy[:, None] + d[None, :]
    s = (sigma * np.sqrt(2.0))[:, None]
    gx = (erf((px + 0.5 - xy[:, :1]) / s) - erf((px - 0.5 - xy[:, :1]) / s)) / 2
    gy = (erf((py + 0.5 - xy[:, 1:]) / s) - erf((py - 0.5 - xy[:, 1:]) / s)) / 2
    norm = (amp * 2.0 * np.pi * sigma**2)[:, None, None]
    vals = gy[:, :, None] * gx[:, None, :] * norm
    yy = np.broadcast_to(py[:, :, None], vals.shape)
    xx = np.broadcast_to(px[:, None, :], vals.shape)
    ok = (yy >= 0) & (yy < shape[0]) & (xx >= 0) & (xx < shape[1])
    np.add.at(out, (yy[ok], xx[ok]), vals[ok])
    return out.astype(np.float32)


def random_positions(cfg: SynthConfig, n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform random positions at least ``cfg.border`` px from the edge."""
    h, w = cfg.shape
    b = cfg.border
    return np.column_stack([rng.uniform(b, w - 1 - b, n), rng.uniform(b, h - 1 - b, n)])


def expose(cfg: SynthConfig, photons_e: np.ndarray, rng: np.random.Generator,
           camera: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Camera: Poisson + per-pixel read noise, offset map, gain, uint16 clipping."""
    camera = camera or camera_maps(cfg, rng)
    e = rng.poisson(photons_e + camera["dark_e"]).astype(np.float32)
    e += rng.standard_normal(photons_e.shape, dtype=np.float32) * camera["read_e"]
    adu = camera["offset_adu"] + e / cfg.e_per_adu
    return np.clip(np.rint(adu), 0, 65535).astype(np.uint16)


def camera_maps(cfg: SynthConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Fixed-pattern maps of one camera: offset (ADU), read noise (e-), dark signal (e-)."""
    h, w = cfg.shape
    offset = cfg.offset_adu + cfg.offset_sd_adu * rng.standard_normal((h, w), np.float32)
    read = np.full((h, w), cfg.read_noise_e, np.float32)
    rts = rng.random((h, w)) < cfg.rts_fraction
    read[rts] = cfg.rts_noise_e * rng.lognormal(0.0, 0.4, int(rts.sum()))
    dark = np.zeros((h, w), np.float32)
    hot = rng.random((h, w)) < cfg.hot_fraction
    lo, hi = np.log(cfg.hot_signal_e[0]), np.log(cfg.hot_signal_e[1])
    dark[hot] = np.exp(rng.uniform(lo, hi, int(hot.sum())))
    return {"offset_adu": offset, "read_e": read, "dark_e": dark}


def make_frame(cfg: SynthConfig, rng: np.random.Generator) -> SynthFrame:
    """One frame with ``cfg.n_spots`` spots at exactly ``cfg.snr`` (ISBI definition)."""
    bg = background_map(cfg, rng)
    xy = random_positions(cfg, cfg.n_spots, rng)
    local = bg[np.round(xy[:, 1]).astype(int), np.round(xy[:, 0]).astype(int)]
    if cfg.constant_snr:
        amp = amplitude_for_snr(cfg.snr, local, cfg.read_noise_e)
    else:  # the SNR is reached where the field is brightest; spots dim with the illumination
        top = float(bg.max())
        amp = amplitude_for_snr(cfg.snr, np.full(len(xy), top), cfg.read_noise_e) * local / top
    if cfg.lognormal_sd > 0:
        amp = amp * rng.lognormal(-cfg.lognormal_sd**2 / 2, cfg.lognormal_sd, len(amp))
    sig = cfg.psf_sigma * (1.0 + cfg.sigma_jitter * rng.standard_normal(len(xy)))
    photons = bg + render_spots(cfg.shape, xy, amp, np.clip(sig, 0.3, None))
    debris_xy = random_positions(replace(cfg, border=20), cfg.debris, rng)
    if cfg.debris:
        damp = amplitude_for_snr(20.0, np.full(cfg.debris, cfg.background_e), 0.0)
        photons += render_spots(cfg.shape, debris_xy, damp, 4.0 * cfg.psf_sigma)
    clumps = random_positions(replace(cfg, border=20), cfg.aggregates, rng)
    if cfg.aggregates:
        members = np.repeat(clumps, cfg.aggregate_size, axis=0)
        members += rng.normal(0.0, 1.5, members.shape)
        mamp = amplitude_for_snr(cfg.snr, np.full(len(members), cfg.background_e), 0.0)
        photons += render_spots(cfg.shape, members, mamp, cfg.psf_sigma)
    camera = camera_maps(cfg, rng)
    image = expose(cfg, photons, rng, camera)
    hot = np.argwhere(camera["dark_e"] > 0)[:, ::-1].astype(float)
    return SynthFrame(image, xy, amp, bg, hot, debris_xy, clumps)


@dataclass
class SynthSequence:
    """Frames of one field over time; vesicle k sits at ``xy[k]`` in sample coordinates
    (the field at frame 0), arrives at frame ``arrival[k]``; ``drift[t]`` is the stage
    drift (dx, dy) of frame t, so it appears at xy[k] + drift[t]."""

    frames: list[np.ndarray]
    xy: np.ndarray
    arrival: np.ndarray
    drift: np.ndarray


def make_sequence(cfg: SynthConfig, n_frames: int, n_initial: int, arrival_rate: float,
                  drift_step: tuple[float, float], half_life_frames: float,
                  rng: np.random.Generator) -> SynthSequence:
    """Static vesicles arriving as a Poisson process, stage drift and photobleaching.

    Amplitudes start at ``cfg.snr`` and decay exponentially with ``half_life_frames``.
    """
    drift = np.outer(np.arange(n_frames), drift_step)
    margin = int(np.ceil(np.abs(drift).max())) + cfg.border
    arrivals = np.concatenate([np.zeros(n_initial, int)] + [
        np.full(rng.poisson(arrival_rate), t) for t in range(1, n_frames)])
    xy = random_positions(replace(cfg, border=margin), len(arrivals), rng)
    bg = background_map(cfg, rng)
    camera = camera_maps(cfg, rng)
    frames = []
    for t in range(n_frames):
        here = arrivals <= t
        pos = xy[here] + drift[t]
        local = bg[np.round(pos[:, 1]).astype(int), np.round(pos[:, 0]).astype(int)]
        amp = amplitude_for_snr(cfg.snr, local, cfg.read_noise_e)
        amp *= 0.5 ** ((t - arrivals[here]) / half_life_frames)
        photons = bg + render_spots(cfg.shape, pos, amp, cfg.psf_sigma)
        frames.append(expose(cfg, photons, rng, camera))
    return SynthSequence(frames, xy, arrivals, drift)


def same_field_frames(cfg: SynthConfig, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``n`` exposures of one static field (same spots and camera, fresh noise each)."""
    return static_field(cfg, n, rng)[0]


def static_field(cfg: SynthConfig, n: int, rng: np.random.Generator,
                 drift: np.ndarray | None = None, bleach: np.ndarray | None = None
                 ) -> tuple[list[np.ndarray], np.ndarray]:
    """``n`` exposures of one static field and the spot positions in the first (N x 2).

    ``drift`` (n x 2, px) displaces the sample in each exposure (stage drift: the spots move,
    the background and the camera's fixed pattern do not); ``bleach`` (n) scales every
    spot's brightness in each exposure (photobleaching between exposures).
    """
    drift = np.zeros((n, 2)) if drift is None else np.asarray(drift, float).reshape(n, 2)
    bleach = np.ones(n) if bleach is None else np.asarray(bleach, float).reshape(n)
    margin = int(np.ceil(np.abs(drift).max())) + cfg.border
    bg = background_map(cfg, rng)
    xy = random_positions(replace(cfg, border=margin), cfg.n_spots, rng)
    local = bg[np.round(xy[:, 1]).astype(int), np.round(xy[:, 0]).astype(int)]
    amp = amplitude_for_snr(cfg.snr, local, cfg.read_noise_e)
    camera = camera_maps(cfg, rng)
    frames = []
    for shift, scale in zip(drift, bleach, strict=True):
        photons = bg + render_spots(cfg.shape, xy + shift, amp * scale, cfg.psf_sigma)
        frames.append(expose(cfg, photons, rng, camera))
    return frames, xy
