"""Maximum-likelihood Gaussian fit of accepted spots under the camera noise model, with CRLB.

Each spot's (2R+1)^2 window is modelled as b + A * Py(y) Px(x) + (neighbours' light): a
pixel-integrated Gaussian of the PSF sigma on a flat background. The camera's pixels are Poisson
plus read noise, whose variance is the noise model's linear function of the mean; shifted by the
read-noise variance, the electrons are Poisson (the sCMOS approximation of Huang et al., Nat
Methods 2013), and Fisher scoring with weights 1 / variance(model) converges to the maximum of
that likelihood. The Cramer-Rao bound of each parameter is the diagonal of the inverse Fisher
information at the fitted values.

Arrays are laid out pixel-major, spot-minor ((w, w, N)) and spots are processed in blocks, so
every numpy operation runs a long contiguous loop over cache-resident data; the 4 x 4 systems
are solved in closed form (vectorized Cholesky). Neighbours whose light reaches a window are
held at their current fit while the spot is refitted (a Jacobi sweep, as DAOSTORM does), so
touching spots do not pull each other's positions. A pixel whose residual exceeds both
``_OUTLIER_Z`` standard deviations and half the spot's amplitude (a hot pixel beside the spot)
is left out of the fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chipctl.vision.background import NoiseModel

_SQRT2 = np.sqrt(2.0)
_AS = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)  # A&S 7.1.26
_MAX_STEP_PX = 1.0
_MIN_VARIANCE = 1.0 / 12.0
_OUTLIER_Z = 8.0  # residuals beyond this many sd are not the spot's light (hot pixels)
_BLOCK = 4096  # spots per block: fewer, larger numpy calls


@dataclass(frozen=True)
class SpotFit:
    """Fitted parameters of N spots (frame coordinates, ADU) and their Cramer-Rao bounds.

    ``amplitude`` is the continuous Gaussian peak and ``background`` the flat level under the
    spot, both in ADU; ``crlb_x``/``crlb_y``/``crlb_amplitude`` are standard deviations;
    ``chi2`` is Pearson's statistic of the window (about ``pixels`` - 4 for a single
    well-modelled spot), ``elongation`` that of the residual's quadrupole moments (2 degrees
    of freedom).
    """

    x: np.ndarray
    y: np.ndarray
    amplitude: np.ndarray
    background: np.ndarray
    crlb_x: np.ndarray
    crlb_y: np.ndarray
    crlb_amplitude: np.ndarray
    chi2: np.ndarray
    pixels: np.ndarray
    converged: np.ndarray
    elongation: np.ndarray  # chi-square (2 dof) of the residual's quadrupole moments


@dataclass
class _Spots:
    """Current estimates: offsets from the window centre pixel, amplitude, background."""

    dx: np.ndarray
    dy: np.ndarray
    amp: np.ndarray
    bg: np.ndarray


def window_radius(psf_sigma: float) -> int:
    """Half-width of the fit window for a PSF of ``psf_sigma`` (3 for sigma 1.3)."""
    return max(2, int(round(2.5 * psf_sigma)))


def erf(z: np.ndarray, gauss: np.ndarray) -> np.ndarray:
    """erf(z) given exp(-z^2) (Abramowitz and Stegun 7.1.26, error < 1.5e-7)."""
    t = 1.0 / (1.0 + 0.3275911 * np.abs(z))
    poly = t * (_AS[0] + t * (_AS[1] + t * (_AS[2] + t * (_AS[3] + t * _AS[4]))))
    return np.copysign(1.0 - poly * gauss, z)


def profiles(offset: np.ndarray, sigma: float, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-integrated unit-peak Gaussian P over pixels -radius..radius of spots at
    ``offset`` (N,) from the window centre, and dP/d(offset); (2r+1, N) float32 each."""
    edges = np.arange(-radius - 0.5, radius + 1.0)
    z = (edges[:, None] - np.asarray(offset, np.float64)[None, :]) / (_SQRT2 * sigma)
    g = np.exp(-z * z)
    e = erf(z, g)
    p = sigma * np.sqrt(np.pi / 2.0) * (e[1:] - e[:-1])
    return p.astype(np.float32), (g[:-1] - g[1:]).astype(np.float32)


def fit_spots(raw: np.ndarray, ys: np.ndarray, xs: np.ndarray, x0: np.ndarray, y0: np.ndarray,
              amplitude0: np.ndarray, background0: np.ndarray, noise: NoiseModel, sigma: float,
              iterations: int = 1, pairs: tuple[np.ndarray, np.ndarray] | None = None
              ) -> SpotFit:
    """ML fit of spots centred near pixels (ys, xs), starting from (x0, y0, amplitude0,
    background0) in frame coordinates and ADU; ``sigma`` is the PSF sigma in pixels.

    From a consistent start (the filtered peak's sub-pixel estimate), one Fisher-scoring step
    is already an efficient estimator (Le Cam's one-step estimator; on the benchmark frames it
    gives the RMSE of three iterations); more ``iterations`` converge to the maximum. Spots
    whose neighbours' light reaches their window get one more sweep, with the neighbours at
    their refitted values. The bounds and the chi-square come from the information of the
    last step's start. ``pairs`` (spot, neighbour) may be given, sorted by spot, when already
    known (pairs farther apart than the light reaches are ignored).
    """
    ys, xs = np.asarray(ys, np.intp), np.asarray(xs, np.intp)
    r = window_radius(sigma)
    est = _Spots(np.asarray(x0, np.float64) - xs, np.asarray(y0, np.float64) - ys,
                 np.maximum(np.asarray(amplitude0, np.float64), 1e-3),
                 np.asarray(background0, np.float64).copy())
    pairs = _neighbour_pairs(ys, xs, r) if pairs is None else within(pairs, ys, xs, 2 * r)
    data, valid = _windows(raw, ys, xs, r)
    out = np.zeros((8, len(ys)))  # the last step (4 parameters) and the bounds' variances
    stats = np.zeros((2, len(ys)))
    crowded = np.unique(pairs[0])
    sweeps = [np.arange(len(ys))] * max(1, iterations) + [crowded]
    for active in sweeps:
        for b in (active[a:a + _BLOCK] for a in range(0, len(active), _BLOCK)):
            others = light_of(ys[b], xs[b], r, xs + est.dx, ys + est.dy, est.amp, sigma,
                              _targets(pairs, b, len(ys)))
            info, score, stats[:, b] = _information(_take(est, b), data[..., b],
                                                    valid[..., b], others, noise, sigma, r)
            low = _cholesky(info)
            out[:4, b] = _solve(low, score)
            out[4:, b] = _inverse_diagonal(low)
            est = _apply(est, out[:4], r, b)
    converged = (np.max(np.abs(out[:2]), axis=0) < 0.05) & (np.abs(est.dx) < r) & (
        np.abs(est.dy) < r)
    sd = np.sqrt(np.maximum(out[4:], 0.0))
    pixels = valid.reshape(-1, len(ys)).sum(axis=0)
    return SpotFit(xs + est.dx, ys + est.dy, est.amp, est.bg, sd[0], sd[1], sd[2], stats[0],
                   pixels, converged, stats[1])


def _targets(pairs: tuple[np.ndarray, np.ndarray], block: np.ndarray, n: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """The (spot, neighbour) pairs of the spots in ``block``, spots renumbered 0..len-1."""
    index = np.full(n, -1)
    index[block] = np.arange(len(block))
    sel = index[pairs[0]] >= 0
    return index[pairs[0][sel]], pairs[1][sel]


def _take(est: _Spots, b: np.ndarray) -> _Spots:
    return _Spots(est.dx[b], est.dy[b], est.amp[b], est.bg[b])


def _windows(raw: np.ndarray, ys: np.ndarray, xs: np.ndarray, r: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """(w, w, N) float32 windows around (ys, xs) and the float mask of pixels in the frame."""
    h, w = raw.shape
    d = np.arange(-r, r + 1)
    inner = (ys >= r) & (ys < h - r) & (xs >= r) & (xs < w - r)
    if inner.all() and raw.flags.c_contiguous:
        offsets = (d[:, None] * w + d[None, :])[:, :, None]
        data = raw.ravel()[offsets + (ys * w + xs)[None, None, :]].astype(np.float32)
        return data, np.ones_like(data)
    yy = d[:, None, None] + ys[None, None, :]
    xx = d[None, :, None] + xs[None, None, :]
    valid = ((yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)).astype(np.float32)
    data = raw[np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)].astype(np.float32)
    return data * valid, valid


def within(pairs: tuple[np.ndarray, np.ndarray], ys: np.ndarray, xs: np.ndarray,
           reach: int) -> tuple[np.ndarray, np.ndarray]:
    """The (n, m) ``pairs`` of pixels (ys, xs) at most ``reach`` apart along both axes."""
    n, m = pairs
    keep = (np.abs(xs[n] - xs[m]) <= reach) & (np.abs(ys[n] - ys[m]) <= reach)
    return n[keep], m[keep]


def reach_pairs(ty: np.ndarray, tx: np.ndarray, sy: np.ndarray, sx: np.ndarray, reach: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """(n, m), sorted by n, with integer source pixel (sy[m], sx[m]) within ``reach`` of
    target pixel (ty[n], tx[n]) along both axes."""
    if len(ty) == 0 or len(sy) == 0:
        return np.empty(0, np.intp), np.empty(0, np.intp)
    cell = reach + 1
    ncol = int(max(tx.max(), sx.max())) // cell + 3
    ks = (sy // cell + 1) * ncol + sx // cell + 1
    kt = (ty // cell + 1) * ncol + tx // cell + 1
    order, order_t = np.argsort(ks, kind="stable"), np.argsort(kt, kind="stable")
    ks, kt = ks[order], kt[order_t]  # sorted needles make searchsorted fast
    nn, mm = [], []
    for row in (-ncol, 0, ncol):  # the three cells of a row have consecutive keys
        lo = np.searchsorted(ks, kt + (row - 1), side="left")
        cnt = np.searchsorted(ks, kt + (row + 1), side="right") - lo
        n = np.repeat(order_t, cnt)
        nn.append(n)
        mm.append(order[np.repeat(lo - np.cumsum(cnt) + cnt, cnt) + np.arange(n.size)])
    n, m = np.concatenate(nn), np.concatenate(mm)
    near = (np.abs(sx[m] - tx[n]) <= reach) & (np.abs(sy[m] - ty[n]) <= reach)
    n, m = n[near], m[near]
    by_target = np.argsort(n, kind="stable")
    return n[by_target], m[by_target]


def light_of(ty: np.ndarray, tx: np.ndarray, r: int, sx: np.ndarray, sy: np.ndarray,
             amp: np.ndarray, sigma: float, pairs: tuple[np.ndarray, np.ndarray]
             ) -> np.ndarray:
    """Light (w, w, N) of sources at (sx, sy) with peaks ``amp`` in the (2r+1)^2 windows
    around target pixels (ty, tx), summed over the given (target, source) ``pairs``."""
    n, m = pairs
    w = 2 * r + 1
    out = np.zeros((w, w, len(ty)), np.float32)
    if n.size == 0:
        return out
    px, _ = profiles(sx[m] - tx[n], sigma, r)
    py, _ = profiles(sy[m] - ty[n], sigma, r)
    light = py[:, None, :] * px[None, :, :] * np.asarray(amp, np.float32)[m]
    starts = np.flatnonzero(np.r_[True, n[1:] != n[:-1]])
    out[:, :, n[starts]] = np.add.reduceat(light, starts, axis=2)
    return out


def _neighbour_pairs(ys: np.ndarray, xs: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, m), sorted by n, with spot m's light reaching spot n's window (m != n)."""
    n, m = reach_pairs(ys, xs, ys, xs, 2 * r)
    keep = n != m
    return n[keep], m[keep]


def _information(est: _Spots, data: np.ndarray, valid: np.ndarray, others: np.ndarray,
                 noise: NoiseModel, sigma: float, r: int
                 ) -> tuple[dict[tuple[int, int], np.ndarray], np.ndarray, np.ndarray]:
    """Fisher information and score of (dx, dy, A, b), and Pearson's chi-square.

    The model is separable, so every sum over a window is a contraction over columns with
    column profiles (one einsum for all of them), then over rows with row profiles.
    """
    px, dpx = profiles(est.dx, sigma, r)
    py, dpy = profiles(est.dy, sigma, r)
    amp = est.amp.astype(np.float32)
    lam = py[:, None, :] * (px * amp)[None, :, :]
    lam += est.bg.astype(np.float32)
    lam += others
    var = lam * np.float32(noise.slope)
    var += np.float32(noise.intercept)
    np.maximum(var, np.float32(_MIN_VARIANCE), out=var)
    diff = data - lam
    # a pixel far beyond what the model allows (a hot pixel in the window) is left out; a
    # bright spot's own misfit at the start stays below half its amplitude
    outlier = (diff * diff > np.float32(_OUTLIER_Z**2) * var) & (np.abs(diff) > 0.5 * amp)
    wgt = (valid * ~outlier) / var
    res = diff * wgt
    one = np.ones_like(px)
    wx = np.einsum("ijn,kjn->kin", wgt, np.stack([px, dpx, px * px, dpx * dpx, px * dpx, one]))
    rx = np.einsum("ijn,kjn->kin", res, np.stack([px, dpx, one]))
    a = est.amp

    def ysum(fy: np.ndarray, fx: np.ndarray) -> np.ndarray:
        return np.einsum("in,in->n", fy, fx).astype(np.float64)

    info = {(0, 0): a * a * ysum(py * py, wx[3]), (1, 1): a * a * ysum(dpy * dpy, wx[2]),
            (2, 2): ysum(py * py, wx[2]), (3, 3): ysum(one, wx[5]),
            (0, 1): a * a * ysum(py * dpy, wx[4]), (0, 2): a * ysum(py * py, wx[4]),
            (0, 3): a * ysum(py, wx[1]), (1, 2): a * ysum(py * dpy, wx[2]),
            (1, 3): a * ysum(dpy, wx[0]), (2, 3): ysum(py, wx[0])}
    score = np.stack([a * ysum(py, rx[1]), a * ysum(dpy, rx[0]), ysum(py, rx[0]),
                      ysum(one, rx[2])])
    chi2 = (res * diff).reshape(-1, len(a)).sum(axis=0).astype(np.float64)
    return info, score, np.stack([chi2, _quadrupole(diff * valid, est, noise, sigma, r)])


def _quadrupole(diff: np.ndarray, est: _Spots, noise: NoiseModel, sigma: float, r: int
                ) -> np.ndarray:
    """Elongation of the residual: its Gaussian-weighted quadrupole moments (u^2 - v^2, 2uv)
    about the fitted centre, squared and divided by their noise variance (chi-square with 2
    degrees of freedom for a well-modelled round spot). A merged pair leaves a large one."""
    d = np.arange(-r, r + 1, dtype=np.float32)[:, None]
    u = d - est.dx.astype(np.float32)
    v = d - est.dy.astype(np.float32)
    width = np.float32(2.0 * (1.5 * sigma) ** 2)
    gu, gv = np.exp(-u * u / width), np.exp(-v * v / width)
    u2g, v2g, ug, vg = u * u * gu, v * v * gv, u * gu, v * gv
    dq = np.einsum("ijn,kjn->kin", diff, np.stack([u2g, gu, ug]))
    q_c = np.einsum("in,in->n", gv, dq[0]) - np.einsum("in,in->n", v2g, dq[1])
    q_s = 2.0 * np.einsum("in,in->n", vg, dq[2])
    p_c = ((u2g**2).sum(0) * (gv**2).sum(0) - 2.0 * (u2g * gu).sum(0) * (v2g * gv).sum(0)
           + (gu**2).sum(0) * (v2g**2).sum(0))
    p_s = 4.0 * (ug**2).sum(0) * (vg**2).sum(0)
    var = noise.variance(est.bg + 0.1 * est.amp)
    return (q_c.astype(np.float64) ** 2 / (var * p_c) + q_s.astype(np.float64) ** 2
            / (var * p_s))


def _apply(est: _Spots, step: np.ndarray, r: int, b: np.ndarray) -> _Spots:
    """The estimates after ``step`` on spots ``b``: position steps capped, amplitudes kept
    positive."""
    out = _Spots(est.dx.copy(), est.dy.copy(), est.amp.copy(), est.bg.copy())
    shift = np.clip(step[:2, b], -_MAX_STEP_PX, _MAX_STEP_PX)
    out.dx[b] = np.clip(est.dx[b] + shift[0], -r, r)
    out.dy[b] = np.clip(est.dy[b] + shift[1], -r, r)
    out.amp[b] = np.maximum(est.amp[b] + step[2, b], 1e-3 * np.maximum(est.amp[b], 1.0))
    out.bg[b] = est.bg[b] + step[3, b]
    return out


def _cholesky(info: dict[tuple[int, int], np.ndarray]) -> list[list[np.ndarray]]:
    """Lower Cholesky factor of the symmetric 4 x 4 systems (entries as (N,) arrays)."""
    low: list[list[np.ndarray]] = [[np.zeros(0)] * 4 for _ in range(4)]
    for i in range(4):
        for j in range(i + 1):
            s = info[(j, i)].copy()
            for k in range(j):
                s -= low[i][k] * low[j][k]
            low[i][j] = np.sqrt(np.maximum(s, 1e-300)) if i == j else s / low[j][j]
    return low


def _solve(low: list[list[np.ndarray]], rhs: np.ndarray) -> np.ndarray:
    """Solve L L^T x = rhs for every spot (``low`` from :func:`_cholesky`, rhs: (4, N))."""
    z: list[np.ndarray] = []
    for i in range(4):
        s = rhs[i].copy()
        for k in range(i):
            s -= low[i][k] * z[k]
        z.append(s / low[i][i])
    x: list[np.ndarray] = [np.zeros(0)] * 4
    for i in reversed(range(4)):
        s = z[i].copy()
        for k in range(i + 1, 4):
            s -= low[k][i] * x[k]
        x[i] = s / low[i][i]
    return np.stack(x)


def _inverse_diagonal(low: list[list[np.ndarray]]) -> np.ndarray:
    """Diagonal of (L L^T)^-1 for every spot: squared column norms of L^-1, (4, N)."""
    n = len(low[0][0])
    inv: list[list[np.ndarray]] = [[np.zeros(n)] * 4 for _ in range(4)]
    for j in range(4):
        inv[j][j] = 1.0 / low[j][j]
        for i in range(j + 1, 4):
            s = np.zeros(n)
            for k in range(j, i):
                s -= low[i][k] * inv[k][j]
            inv[i][j] = s / low[i][i]
    return np.stack([sum(inv[i][j] ** 2 for i in range(j, 4)) for j in range(4)])
