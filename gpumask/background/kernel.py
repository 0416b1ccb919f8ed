"""The iterative kernel background estimator (gammapy.detect's, brought back).

Starting from a background estimate ``B`` and an exclusion mask ``E`` (``True`` =
usable, gammapy's convention), each pass does, with ``C`` the counts,
``K = kernel_src / max(kernel_src)`` and ``R = kernel_bkg``:

1. significance ``S`` = Cash ``sqrt_ts`` of ``n_on = rint(conv(C, K))`` against
   ``b = conv(B, K)``, NaN where ``n_on < 1``;
2. exclusion ``E = erode((S < threshold) | isnan(S), disk(mask_dilation_radius))``
   with the outside counted as usable (eroding "usable" dilates "excluded");
3. background ``B = conv(C E, R) / conv(E, R)``.

Passes repeat until ``E`` no longer changes (after at least ``niter_min``
passes) or ``niter_max`` passes ran.  Without a background the first estimate is
``conv(C E0, R) / conv(E0, R)`` with the given exclusion ``E0`` (all usable when
absent).  Convolutions are zero-padded linear FFT convolutions
(:mod:`gpumask.stats.convolution`); the counts are correlated once, the kernel
transforms are cached, and a pass transforms only the background, the masked
counts and the mask (plus the mask once more for a dilation wider than a pixel).
Everything stays on the data's backend: a pass reads one boolean (did the mask
change?) through :func:`gpumask.backend.read_flag`; with ``sync=False`` not even
that, see :meth:`KernelBackgroundEstimator.run`.

Differences from gammapy (v0.5 to v0.16), on purpose:

* **true iteration**: every pass starts from the previous pass's background.
  From v0.8 on gammapy restarted each pass from the input images, so the loop
  was one iteration repeated;
* stopping: the mask must be identical to the previous pass's.  gammapy filled the
  holes of the "unchanged" map first, so any change enclosed by unchanged pixels
  counted as converged; and it counted from zero (``idx >= niter_min``), so it ran
  at least ``niter_min + 1`` passes where gpumask runs ``niter_min``;
* where the background kernel sees no usable pixel (a source region wider than
  the ring) ``conv(E, R)`` is 0: gammapy divides by it (NaN, then spread over
  the whole map by the next FFT); gpumask keeps the previous pass's background
  there (for the first estimate: the unmasked one, or the mean counts where the
  kernel reaches past the whole map) and flags those pixels in
  ``result["background_kept"]``;
* the exclusion is returned as a boolean map (gammapy: float 0/1);
* non-finite pixels (NaN or +-inf in the counts or the given background) are
  left out of every sum, of both images at once (a ``where``, not a product): of
  the correlated counts and background, and of the background kernel's sums,
  as if excluded there.  The other pixels equal a run in which the bad pixels
  hold no counts and no background and are never usable for the background;
  a bad pixel itself gets the values of its surroundings (its significance is
  that of the rest of its disk).  gammapy's FFT spreads one NaN over the whole
  map.  Bad pixels are reported (:class:`~gpumask.NonFiniteInputWarning`, and
  ``result.n_nonfinite``); finding them costs one more device flag per run,
  none with ``sync=False`` (no warning then: read ``result.n_nonfinite``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import numpy as np
from astropy import units as u

from .._progress import progress_bar
from .._repr import html_table
from .._utils import parse_angle
from ..backend import backend_of, common_backend, is_device_array, read_flag, to_host
from ..masks.morphology import _erode_data, _Footprint
from ..sky.bridge import as_map, is_gammapy_object
from ..sky.maps import Map
from ..stats.convolution import _check_dtype, _NonFinite, convolve, disk_kernel, ring_kernel
from ..stats.counts_statistic import TRUNCATION_VALUE

__all__ = ["KernelBackgroundEstimator", "KernelBackgroundResult"]

_IMAGE_KEYS = ("counts", "background", "exclusion")
_OUTPUT_KEYS = ("counts", "background", "exclusion", "significance")


class KernelBackgroundResult(Mapping):
    """Images of :class:`KernelBackgroundEstimator` by name, with how it got there.

    Keys: ``"counts"``, ``"background"``, ``"exclusion"`` (bool, True = usable),
    ``"significance"`` (of the last pass, against the background it started from)
    and ``"background_kept"`` (bool, True where the background kernel saw no
    usable pixel and the previous estimate was kept).  Maps when the counts were a
    Map, else arrays, on the counts' backend.

    Attributes
    ----------
    n_iter : int
        Passes that ran (to the one whose result this is).
    converged : bool
        Whether the exclusion mask came out of a pass unchanged (within
        ``niter_max`` passes and after at least ``niter_min``).
    cycle : int
        0, or the period when the run stopped because the mask repeated the mask
        of an earlier pass (a limit cycle: on noisy maps a few edge pixels can
        flip between 2 to 4 states for ever; gammapy's fill-holes test called
        that converged).  The images are those of the last pass.
    n_nonfinite : dict
        NaN or infinite pixels of the input ``"counts"`` and ``"background"``
        that were left out of the sums (0 each for clean inputs).  After a
        ``sync=False`` run they are copied from the device when first asked for.
    """

    def __init__(self, images, n_iter=None, converged=None, cycle=None, codes=None, nonfinite=None, why=None):
        self._images = dict(images)
        self._why = why  # what explain_exclusion needs: see _Problem.output
        self._n_iter = n_iter
        self._converged = converged
        self._cycle = cycle
        self._codes = codes  # device stop codes of a sync=False run, read on demand
        self._nonfinite = nonfinite

    def _read_codes(self):
        codes = to_host(self._codes)  # one small copy, after the run
        hits = np.flatnonzero(codes)
        code = int(codes[hits[0]]) if hits.size else 0
        self._n_iter = int(hits[0]) + 1 if hits.size else int(codes.size)
        self._converged = code == 1
        self._cycle = code - 1 if code > 1 else 0
        self._codes = None

    @property
    def n_iter(self) -> int:
        if self._codes is not None:
            self._read_codes()
        return self._n_iter

    @property
    def converged(self) -> bool:
        if self._codes is not None:
            self._read_codes()
        return self._converged

    @property
    def cycle(self) -> int:
        if self._codes is not None:
            self._read_codes()
        return self._cycle

    @property
    def n_nonfinite(self) -> dict:
        if self._nonfinite is None:
            return {"counts": 0, "background": 0}
        return self._nonfinite.counts

    def explain_exclusion(self):
        """The final exclusion (``self["exclusion"]``) with its provenance: why each
        pixel is excluded.

        Computed on demand from the significance that produced the exclusion (that
        of the last pass), the estimator's ``significance_threshold`` and its
        dilation disk: one "significance blob" component per connected (4-neighbour)
        region of ``significance >= threshold``, strongest peak first, then one
        "dilation ring" per blob whose growth by ``mask_dilation_radius`` excluded
        more pixels.  Rules name the pass (``KBE pass 3: sqrt_ts >= 5``).  For the
        initial state of a record (``images_stack[0]``, no pass ran) it is the given
        exclusion, with the provenance it had (else one component of kind "mask").
        A few small counted host copies (the component table).

        Returns
        -------
        `~gpumask.Map`
            Boolean, the same pixels and backend as ``self["exclusion"]``, with
            ``.provenance`` (:class:`~gpumask.sky.provenance.MaskProvenance`).

        Raises
        ------
        TypeError
            If the images are arrays (a provenance lives on a sky geometry).

        Examples
        --------
        >>> import gpumask
        >>> counts = gpumask.demo_dataset().counts.sum_over_axes(keepdims=False)
        >>> kbe = gpumask.KernelBackgroundEstimator("0.1 deg", ("0.3 deg", "0.2 deg"))
        >>> excl = kbe.run({"counts": counts}).explain_exclusion()
        >>> excl.explain(top=3)["kind"][0]                         # doctest: +SKIP
        'significance blob'
        """
        exclusion = self._images["exclusion"]
        if not isinstance(exclusion, Map) or self._why is None:
            raise TypeError("explain_exclusion() needs a run on Maps (a provenance lives on the map's "
                            f"geometry), got {type(exclusion).__name__} images")
        from ..masks._explain import blob_provenance, carry  # noqa: PLC0415
        from ..sky.provenance import MaskProvenance  # noqa: PLC0415

        why = self._why
        if why["initial"]:
            given = why["given"]
            prov = given.provenance if isinstance(given, Map) and given.geom == exclusion.geom else None
            if prov is None:
                prov = MaskProvenance.from_mask(exclusion, name="given exclusion", rule="KBE input exclusion")
            return Map.from_geom(exclusion.geom, data=exclusion.data)._explained(prov)
        n = why["pass"] if why["pass"] is not None else self.n_iter
        sig = self._images["significance"].data
        excluded = sig >= why["threshold"]  # NaN: usable, as in the passes
        be = backend_of(sig)
        prov = blob_provenance(exclusion.geom, sig, excluded, be, 1, f"KBE pass {n}: sqrt_ts >= {why['threshold']:g}")
        holder = Map.from_geom(exclusion.geom, data=~excluded)._explained(prov)
        out = Map.from_geom(exclusion.geom, data=exclusion.data)
        fp = why["footprint"]
        detail = (f"KBE pass {n}: dilation by {why['radius']:g} deg (disk of {fp.hx} x {fp.hy} px)")
        return carry(holder, out, detail, fp_array=None if fp.is_identity else fp.array())

    def __getitem__(self, key):
        try:
            return self._images[key]
        except KeyError:
            raise KeyError(f"no image {key!r}; available: {list(self._images)}") from None

    def __iter__(self):
        return iter(self._images)

    def __len__(self):
        return len(self._images)

    def _summary(self) -> list[tuple[str, str]]:
        counts = self._images["counts"]
        data = counts.data if isinstance(counts, Map) else counts
        if self._codes is not None:
            state = [("passes", "not read yet (run with sync=False)")]
        else:
            state = [("passes", str(self._n_iter)), ("converged", str(self._converged))]
            if self._cycle:
                state.append(("cycle", f"{self._cycle} passes"))
        return state + [
            ("images", ", ".join(self._images)),
            ("shape", str(tuple(data.shape))),
            ("backend", backend_of(data).name),
        ]

    def __repr__(self):
        rows = dict(self._summary())
        if self._codes is not None:
            state = "passes not read yet"
        else:
            state = f"{rows['passes']} passes, converged={rows['converged']}"
            state += f", cycle of {rows['cycle']}" if "cycle" in rows else ""
        return f"KernelBackgroundResult({state}; images {list(self._images)}, shape {rows['shape']}, backend {rows['backend']})"

    def _repr_html_(self):
        return html_table("gpumask KernelBackgroundResult", self._summary())


def _host_kernel(kernel, name):
    if hasattr(kernel, "array") and not isinstance(kernel, np.ndarray) and not is_device_array(kernel):
        kernel = kernel.array  # astropy Kernel objects
    if is_device_array(kernel):
        kernel = to_host(kernel)  # kernels are small and cached on the host side
    try:
        array = np.array(kernel, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 2-D array of weights, got {kernel!r}") from None
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(f"{name} must be a non-empty 2-D array, got shape {array.shape}")
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValueError(f"{name} must hold finite, non-negative weights")
    if not array.max() > 0:
        raise ValueError(f"{name} is all zeros")
    return array


def _is_angle(value):
    if isinstance(value, bool):
        return False
    return isinstance(value, (str, numbers.Real)) or (isinstance(value, u.Quantity) and value.isscalar)


class KernelBackgroundEstimator:
    """Estimate a background and an exclusion mask iteratively (seed API).

    Parameters
    ----------
    kernel_src : array or angle
        Source (correlation) kernel: any 2-D array of non-negative weights
        (e.g. ``Tophat2DKernel(3).array``; it is divided by its maximum, as
        gammapy), or an angle: the radius of the 0/1 top-hat disk (gammapy's
        correlation radius, ``r / mean |cdelt|`` pixels, inclusive edge).
    kernel_bkg : array or (r_in, width)
        Background kernel: a 2-D array of non-negative weights (e.g.
        ``Ring2DKernel(4, 2).array``), or a pair of angles giving the 0/1 ring
        ``r_in <= r <= r_in + width``.
    significance_threshold : float
        Pixels with significance at or above it are excluded (default 5).
    mask_dilation_radius : angle
        Radius of the disk by which excluded pixels are grown in every pass
        (default "0.02 deg"; below one pixel it grows nothing).
    keep_record : bool
        Keep the images of every pass in ``images_stack`` (the input images
        with their significance first).
    dtype : float64 (default) or float32
        Precision of the convolutions.

    Notes
    -----
    Plain arrays are taken to have 1 deg pixels (as the seed's example), which
    sets the pixel size of angular kernels and of ``mask_dilation_radius``; Maps
    use their geometry (``mean |cdelt|``).
    """

    def __init__(
        self,
        kernel_src,
        kernel_bkg,
        significance_threshold=5,
        mask_dilation_radius="0.02 deg",
        keep_record=False,
        dtype=np.float64,
    ):
        if _is_angle(kernel_src):
            self._src_radius = parse_angle(kernel_src, "kernel_src", allow_zero=False)
            self.kernel_src = None
        else:
            self._src_radius = None
            self.kernel_src = _host_kernel(kernel_src, "kernel_src")
        if isinstance(kernel_bkg, (tuple, list)) and len(kernel_bkg) == 2 and all(_is_angle(v) for v in kernel_bkg):
            self._ring = (
                parse_angle(kernel_bkg[0], "kernel_bkg r_in"),
                parse_angle(kernel_bkg[1], "kernel_bkg width", allow_zero=False),
            )
            self.kernel_bkg = None
        else:
            self._ring = None
            self.kernel_bkg = _host_kernel(kernel_bkg, "kernel_bkg")
        threshold = significance_threshold
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not math.isfinite(threshold):
            raise ValueError(f"significance_threshold must be a finite number, got {threshold!r}")
        self.significance_threshold = float(threshold)
        self.mask_dilation_radius = parse_angle(mask_dilation_radius, "mask_dilation_radius")
        self.keep_record = bool(keep_record)
        self.dtype = _check_dtype(dtype)
        self.images_stack = []

    def _params(self) -> list[tuple[str, str]]:
        src = f"{self._src_radius:g} deg" if self.kernel_src is None else f"array{self.kernel_src.shape}"
        bkg = (
            f"ring({self._ring[0]:g} deg, {self._ring[1]:g} deg)"
            if self.kernel_bkg is None
            else f"array{self.kernel_bkg.shape}"
        )
        return [
            ("kernel_src", src),
            ("kernel_bkg", bkg),
            ("significance_threshold", f"{self.significance_threshold:g}"),
            ("mask_dilation_radius", f"{self.mask_dilation_radius:g} deg"),
            ("keep_record", str(self.keep_record)),
        ]

    def __repr__(self):
        return "KernelBackgroundEstimator(" + ", ".join(f"{k}={v}" for k, v in self._params()) + ")"

    def _repr_html_(self):
        return html_table("gpumask KernelBackgroundEstimator", self._params())

    # ------------------------------------------------------------------ kernels
    def kernels(self, pixel_size=1.0):
        """``(K, R)``: the peak-normalised source kernel and the background kernel
        for pixels of ``pixel_size`` deg, as host arrays."""
        if self.kernel_src is None:
            k_src = disk_kernel(self._src_radius, binsz=pixel_size)
        else:
            k_src = self.kernel_src / self.kernel_src.max()
        if self.kernel_bkg is None:
            k_bkg = ring_kernel(self._ring[0], self._ring[1], binsz=pixel_size)
            if not k_bkg.any():
                raise ValueError(f"the ring {self._ring} deg holds no pixel centre at {pixel_size:g} deg pixels")
        else:
            k_bkg = self.kernel_bkg
        return k_src, k_bkg

    # ------------------------------------------------------------------ public API
    def run(self, images, niter_min=2, niter_max=10, sync=True) -> KernelBackgroundResult:
        """Iterate until the exclusion mask stops changing.

        Parameters
        ----------
        images : dict
            ``"counts"`` (2-D Map or array, numpy or cupy) and optionally
            ``"background"`` (same shape) and ``"exclusion"`` (initial mask, True
            = usable; a Map on another geometry is resampled, outside usable).
        niter_min : int
            Passes to run at least (default 2).
        niter_max : int
            Passes to run at most (default 10).
        sync : bool
            True (default): one boolean is read to find non-finite input pixels
            and, after each pass, one to decide whether to stop.  False: all
            ``niter_max`` passes are queued without reading anything; once the
            mask is stable the state is frozen on the device, so the images equal
            those of ``sync=True``, and ``n_iter``/``converged``/``n_nonfinite``
            are read when first asked for.  Non-finite inputs are left out as
            with ``sync=True``, but no NonFiniteInputWarning is issued (that
            would need a read): check ``result.n_nonfinite``.

        Returns
        -------
        KernelBackgroundResult
        """
        niter_min, niter_max = _check_niter(niter_min, niter_max)
        problem = _Problem(self, images, sync=sync)
        self.images_stack = []
        state = problem.initial_state()
        if self.keep_record:
            self.images_stack.append(problem.output(state, problem.significance(state.background), pass_no=0))
        xp = problem.xp
        history = []  # exclusion masks of the passes before the previous one
        codes = xp.zeros(niter_max, dtype=np.int32) if not sync else None
        done = xp.asarray(False)
        with progress_bar(niter_max, "KBE passes", unit="pass") as bar:
            for k in range(1, niter_max + 1):
                new = problem.step(state)
                bar.update()
                check = k >= niter_min  # before niter_min nothing may stop the run
                if check:
                    unchanged = xp.all(new.exclusion == state.exclusion)
                    # a mask equal to an earlier pass's (not the previous one) is a cycle
                    repeats = [xp.all(new.exclusion == old) for old in history]
                if k > 1:
                    history.append(state.exclusion)
                if sync:
                    state = new
                    if self.keep_record:
                        self.images_stack.append(problem.output(state, pass_no=k))
                    if not check:
                        continue
                    stop = unchanged if not repeats else unchanged | xp.any(xp.stack(repeats))
                    if read_flag(stop):
                        if read_flag(unchanged):
                            return problem.output(state, n_iter=k, converged=True, cycle=0)
                        last = max(j for j, r in enumerate(repeats) if read_flag(r))
                        return problem.output(state, n_iter=k, converged=False, cycle=len(repeats) + 1 - last)
                    continue
                state = state.where(done, new, xp)
                if check:
                    code = xp.where(unchanged, 1, 0).astype(np.int32)
                    if repeats:
                        # code 1 + period for a cycle; the latest repeat gives the period
                        index = xp.arange(len(repeats))
                        last = xp.max(xp.where(xp.stack(repeats), index, -1))
                        code = xp.where(unchanged | (last < 0), code, 2 + len(repeats) - last).astype(np.int32)
                    codes[k - 1] = xp.where(done, 0, code)
                    done = done | (code > 0)
                if self.keep_record:
                    self.images_stack.append(problem.output(state, pass_no=k))
        if sync:
            return problem.output(state, n_iter=niter_max, converged=False, cycle=0)
        return problem.output(state, codes=codes)

    def run_iteration(self, images) -> KernelBackgroundResult:
        """One pass from ``images`` (counts, and optionally background and
        exclusion, as for :meth:`run`); ``n_iter`` is 1 and ``converged`` tells
        whether the mask came out unchanged."""
        problem = _Problem(self, images)
        state = problem.initial_state()
        new = problem.step(state)
        xp = problem.xp
        unchanged = read_flag(xp.all(new.exclusion == state.exclusion))
        return problem.output(new, n_iter=1, converged=unchanged, cycle=0)


def _check_niter(niter_min, niter_max):
    for name, value in (("niter_min", niter_min), ("niter_max", niter_max)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if niter_min > niter_max:
        raise ValueError(f"niter_min ({niter_min}) must not exceed niter_max ({niter_max})")
    return int(niter_min), int(niter_max)


class _State:
    __slots__ = ("background", "exclusion", "significance", "kept")

    def __init__(self, background, exclusion, significance=None, kept=None):
        self.background = background
        self.exclusion = exclusion
        self.significance = significance
        self.kept = kept

    def where(self, done, new, xp):
        """``self`` where ``done`` (a device bool), else ``new``: freezes a stable
        state without reading ``done`` on the host."""
        picks = [
            xp.where(done, getattr(self, f), getattr(new, f)) if getattr(self, f) is not None else getattr(new, f)
            for f in self.__slots__
        ]
        return _State(*picks)


class _Problem:
    """One run's inputs on the device: counts, kernels, correlated counts."""

    def __init__(self, estimator, images, sync=True):
        self.est = estimator
        if not isinstance(images, Mapping):
            raise TypeError(f"images must be a dict with 'counts' (and 'background', 'exclusion'), got {type(images).__name__}")
        unknown = set(images) - set(_IMAGE_KEYS) - {"significance", "background_kept"}
        if unknown:
            raise ValueError(f"unknown images {sorted(unknown)}; accepted: {list(_IMAGE_KEYS)}")
        if "counts" not in images:
            raise ValueError("images needs 'counts'")
        images = {k: as_map(v, k) if is_gammapy_object(v) else v for k, v in images.items()}
        self.given_exclusion = images.get("exclusion")  # its provenance, for explain_exclusion
        counts = images["counts"]
        self.geom = counts.geom if isinstance(counts, Map) else None
        if self.geom is not None:
            if self.geom.axes:
                raise ValueError(
                    f"counts must be a 2-D image, got axes {self.geom.axes_names[2:]}; "
                    "sum them first (counts.sum_over_axes(keepdims=False))"
                )
            pixel_size = float(np.mean(np.abs(self.geom.wcs.wcs.cdelt)))
        else:
            pixel_size = 1.0  # the seed's convention for plain arrays
        data = {"counts": self._data(counts, "counts")}
        for key in ("background", "exclusion"):
            if images.get(key) is not None:
                data[key] = self._data(images[key], key)
        self.be = common_backend(*data.values(), op="KernelBackgroundEstimator")
        xp = self.xp = self.be.xp
        shape = data["counts"].shape
        for key, value in data.items():
            if value.shape != shape:
                raise ValueError(f"{key} has shape {value.shape}, counts {shape}")
        self.dtype = estimator.dtype
        # non-finite counts or background: out of every sum (self.valid False)
        self.nonfinite = _NonFinite(
            {"counts": data["counts"], "background": data.get("background")}, "KernelBackgroundEstimator",
            sync=sync,
        )
        self.valid = self.nonfinite.finite  # None: every pixel is finite
        self.counts = data["counts"].astype(self.dtype, copy=False)
        self.k_src, self.k_bkg = estimator.kernels(pixel_size)
        self.footprint = _Footprint.disk(estimator.mask_dilation_radius / pixel_size)
        self.exclusion0 = data["exclusion"] if "exclusion" in data else xp.ones(shape, dtype=bool)
        if self.exclusion0.dtype != np.bool_:
            self.exclusion0 = self.exclusion0 != 0
        self.background0 = data.get("background")
        if self.background0 is not None:
            self.background0 = self.background0.astype(self.dtype, copy=False)
        # the counts are correlated once: n_on does not change between passes
        self.n_on = xp.rint(convolve(self._finite(self.counts), self.k_src, dtype=self.dtype))
        # a background kernel weight below this is FFT round-off of an empty sum
        self.w_min = 0.5 * float(self.k_bkg[self.k_bkg > 0].min())

    def _data(self, value, key):
        if isinstance(value, Map):
            if self.geom is None:
                raise TypeError(f"{key} is a Map but counts is an array; give both as Maps or both as arrays")
            if value.geom != self.geom:
                if key != "exclusion":
                    raise ValueError(f"{key} geometry differs from the counts geometry")
                if not value.is_mask:
                    raise ValueError("an exclusion Map on another geometry must be boolean to be resampled")
                value = value.interp_to_geom(self.geom)
            return value.data
        if self.geom is not None:
            raise TypeError(f"counts is a Map, so {key} must be a Map on its geometry, got {type(value).__name__}")
        if not (isinstance(value, np.ndarray) or is_device_array(value)):
            raise TypeError(f"{key} must be a Map or an array, got {type(value).__name__}")
        if value.ndim != 2:
            raise ValueError(f"{key} must be a 2-D image, got shape {value.shape}")
        return value

    def _finite(self, data):
        """``data`` with the non-finite input pixels as 0 (for the sums)."""
        return data if self.valid is None else self.xp.where(self.valid, data, 0)

    # -------------------------------------------------------------- the steps
    def significance(self, background):
        """Cash ``sqrt_ts`` (= CashCountsStatistic(n_on, b).sqrt_ts, written as
        ``2 (n ln(n / b) - (n - b))``: one log instead of two cash() calls, and
        no cancellation between them), NaN where ``n_on < 1``."""
        xp = self.xp
        n = self.n_on
        b = convolve(self._finite(background), self.k_src, dtype=self.dtype)
        mu = xp.maximum(b, TRUNCATION_VALUE)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ts = 2 * (n * xp.log(n / mu) - (n - mu))
            sig = xp.sign(n - b) * xp.sqrt(xp.maximum(ts, 0))
        return xp.where(n < 1, xp.nan, sig)

    def _background(self, exclusion, previous):
        xp = self.xp
        if self.valid is not None:
            exclusion = exclusion & self.valid
        stack = xp.stack([xp.where(exclusion, self.counts, 0), exclusion.astype(self.dtype)])
        sums = convolve(stack, self.k_bkg, dtype=self.dtype)
        seen = sums[1] > self.w_min
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = sums[0] / sums[1]
        return xp.where(seen, ratio, previous), ~seen

    def initial_state(self):
        xp = self.xp
        if self.background0 is not None:
            return _State(self.background0, self.exclusion0, kept=xp.zeros(self.counts.shape, dtype=bool))
        # where the initial mask leaves the kernel empty: the unmasked estimate, and
        # where even that is empty (a kernel wider than the map) the mean counts
        ones = xp.ones(self.counts.shape, dtype=bool)
        if self.valid is None:
            mean = xp.mean(self.counts)
        else:  # the mean of the finite counts (identical to xp.mean when all are finite)
            n_valid = xp.maximum(xp.count_nonzero(self.valid), 1)
            mean = xp.mean(self._finite(self.counts)) * (self.counts.size / n_valid)
        plain, _ = self._background(ones, mean)
        background, kept = self._background(self.exclusion0, plain)
        return _State(background, self.exclusion0, kept=kept)

    def step(self, state):
        sig = self.significance(state.background)
        usable = (sig < self.est.significance_threshold) | self.xp.isnan(sig)
        exclusion = _erode_data(self.be, usable, self.footprint, border_value=True)
        background, kept = self._background(exclusion, state.background)
        return _State(background, exclusion, sig, kept)

    def output(self, state, significance=None, pass_no=None, **info):
        """The result of ``state``; ``pass_no``: the pass that produced it (0: the
        initial state; None: the result's ``n_iter``)."""
        sig = state.significance if significance is None else significance
        arrays = {
            "counts": self.counts,
            "background": state.background,
            "exclusion": state.exclusion,
            "significance": sig,
            "background_kept": state.kept,
        }
        if self.geom is not None:
            images = {k: Map.from_geom(self.geom, data=v) for k, v in arrays.items() if v is not None}
        else:
            images = {k: v for k, v in arrays.items() if v is not None}
        why = {"initial": state.significance is None, "given": self.given_exclusion,
               "threshold": self.est.significance_threshold, "radius": self.est.mask_dilation_radius,
               "footprint": self.footprint, "pass": pass_no}
        return KernelBackgroundResult(images, nonfinite=self.nonfinite, why=why, **info)
