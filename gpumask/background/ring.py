"""Ring background: gammapy's RingBackgroundMaker and AdaptiveRingBackgroundMaker
on the data's backend.

Fixed ring (:class:`RingBackgroundEstimator`).  ``R`` is the 0/1 annulus
``r_in <= r <= r_in + width`` in pixels (angles divided by the longitude pixel
scale ``geom.pixel_scales[0]``, as gammapy), ``E`` the exclusion mask (True =
usable) and ``U = E & isfinite(counts) & isfinite(background)``.  In every
energy plane::

    counts_off     = conv(where(U, counts, 0), R)
    acceptance_off = conv(where(U, background, 0), R)     (0 where it is <= 0)
    acceptance     = background
    mask_safe      = mask_safe & (acceptance_off > 0)

and the returned :class:`~gpumask.MapDatasetOnOff` gives ``alpha =
nan_to_num(acceptance / acceptance_off)`` and ``background = alpha *
counts_off``.  The planes of both inputs go through one batched FFT
(:mod:`gpumask.stats.convolution`).

Adaptive ring (:class:`AdaptiveRingBackgroundEstimator`).  Rings ``R_0, R_1, ...``
grow (inner radius for ``method="fixed_width"``, width for ``"fixed_r_in"``)
until ``r_out_max``, exactly as gammapy lists them.  With ``D`` the 0/1 disk of
radius ``theta``::

    acceptance_theta = conv(background, D)
    alpha_i          = acceptance_theta / acceptance_off_i   (inf where acceptance_off_i <= 0)

and each pixel of each plane takes ``counts_off`` and ``acceptance_off`` from
the first ring with ``alpha_i <= threshold_alpha`` (``ring_index``, -1 if none).
The data is transformed once (:class:`~gpumask.stats.convolution.Convolver`); the
rings follow in batches of one inverse FFT each, sized by ``max_batch_bytes``,
and every batch is folded into the running choice with array operations.

Differences from gammapy 2.1, on purpose:

* an exclusion mask on another geometry is resampled to the counts pixels
  (nearest pixel); pixels outside its footprint are usable.  gammapy fills NaN
  there and its FFT turns every output pixel NaN;
* non-finite counts or background pixels are left out of the ring sums (a
  ``where``, not a product): in gammapy one NaN spreads over the whole map.
  They are reported: a :class:`~gpumask.NonFiniteInputWarning` naming the
  input and its number of bad pixels, and ``n_nonfinite`` (input name ->
  count) in the returned dataset's ``meta``.  Finding them reads one device
  boolean per run (a flag, no copy of map data); the counts are copied only
  when there are some;
* ``counts_off`` and ``acceptance_off`` are exactly 0 where the ring holds no
  usable pixel with a non-zero background (excluded, outside the map or zero
  background): ring sums below the FFT's round-off floor, 64 eps times the
  largest input value times the ring's pixel count, are set to 0.  gammapy
  keeps FFT round-off of either sign there, so inside a large exclusion region
  or where the background is 0 its ``acceptance_off > 0`` test (``mask_safe``)
  and, for the adaptive ring, its ring choice follow the sign of float32
  noise.  ``acceptance_off <= 0`` is stored as 0;
* convolutions are float64 (gammapy stores float32);
* adaptive ring, ``theta``: gammapy multiplies it by the pixel scale (a
  "0.22 deg" disk becomes 0.011 px, one pixel, at 0.05 deg/px); here it is
  divided, so the disk has radius ``theta``;
* adaptive ring, output ``acceptance``: the per-pixel background.  ``theta``
  only steers the ring choice.  An acceptance correlated over ``theta`` would
  count the correlation twice once ExcessMapEstimator correlates the on/off
  dataset (gammapy's pre-0.8 AdaptiveRingBackgroundEstimator also took alpha
  from the per-pixel on exposure; gammapy 2.1's theta bug makes its output
  per-pixel in practice too);
* adaptive ring, pixels where no ring reaches ``threshold_alpha``:
  ``counts_off = acceptance_off = 0`` and ``mask_safe`` False (gammapy leaves
  NaN and, as ``NaN <= 0`` is False, keeps them safe);
* adaptive ring: any number of energy planes, the ring chosen per plane
  (gammapy uses the first plane only);
* a missing ``mask_safe`` is all True (gammapy fails).
"""

from __future__ import annotations

import numbers

import numpy as np

from .._progress import progress_bar
from .._repr import html_table
from .._utils import parse_angle
from ..backend import common_backend, memory_available
from ..sky.bridge import as_dataset, as_geom, as_map, is_gammapy_object
from ..sky.datasets import MapDataset, MapDatasetOnOff
from ..sky.maps import Map
from ..stats.convolution import Convolver, _check_dtype, _NonFinite, convolve, disk_kernel, ring_kernel

__all__ = ["RingBackgroundEstimator", "AdaptiveRingBackgroundEstimator"]

_DEFAULT_BATCH_BYTES = 512 * 2**20
# ring sums below this many eps times (largest input x kernel sum) are FFT round-off
_ROUNDOFF_FACTOR = 64  # numpy: ring batches of at most 512 MiB


class RingBackgroundEstimator:
    """Off counts and off acceptance from a ring around every pixel (gammapy's
    RingBackgroundMaker; see the module docstring for the formulas).

    Parameters
    ----------
    r_in : angle
        Inner radius of the ring ("0.5 deg", a Quantity, or a number in deg).
    width : angle
        Width of the ring (positive).
    exclusion_mask : Map, optional
        Boolean map, True = usable, False = excluded, on any geometry: a 2-D
        mask applies to every energy plane, a cube mask needs the dataset's
        non-spatial axes.  Pixels outside its footprint are usable.
    dtype : float64 (default) or float32
        Precision of the convolutions.
    """

    tag = "RingBackgroundEstimator"

    def __init__(self, r_in, width, exclusion_mask=None, dtype=np.float64):
        self.r_in = parse_angle(r_in, "r_in")
        self.width = parse_angle(width, "width", allow_zero=False)
        self.exclusion_mask = _check_mask(exclusion_mask)
        self.dtype = _check_dtype(dtype)

    def _params(self) -> list[tuple[str, str]]:
        return [("r_in", f"{self.r_in:g} deg"), ("width", f"{self.width:g} deg"),
                ("exclusion_mask", _mask_label(self.exclusion_mask))]

    def __repr__(self):
        return f"{type(self).__name__}(" + ", ".join(f"{k}={v}" for k, v in self._params()) + ")"

    def _repr_html_(self):
        return html_table(f"gpumask {type(self).__name__}", self._params())

    def kernel(self, geom) -> np.ndarray:
        """The 0/1 ring for ``geom`` (pixels = angle / ``geom.pixel_scales[0]``).

        Parameters
        ----------
        geom : WcsGeom

        Returns
        -------
        numpy.ndarray
            Odd-sized square host array (astropy's Ring2DKernel, peak-normalised).
        """
        return ring_kernel(self.r_in, self.width, binsz=_lon_scale(geom))

    def make_maps_off(self, dataset) -> dict:
        """Off maps of ``dataset`` on its counts geometry.

        Parameters
        ----------
        dataset : MapDataset
            Needs counts and background.

        Returns
        -------
        dict of Map
            ``counts_off`` and ``acceptance_off`` (``dtype``), on the dataset's
            backend.  Non-finite input pixels are left out of the ring sums and
            reported by a NonFiniteInputWarning.
        """
        return self._make_maps_off(dataset)[0]

    def _make_maps_off(self, dataset):
        inputs = _RingInputs(dataset, self.exclusion_mask, type(self).__name__)
        kernel = self.kernel(inputs.geom)
        conv = convolve(inputs.stack, kernel, dtype=self.dtype)
        counts_off, acceptance_off = inputs.split(conv, kernel.sum())
        return inputs.off_maps(counts_off, acceptance_off), inputs.n_nonfinite

    def run(self, dataset) -> MapDatasetOnOff:
        """On/off dataset of ``dataset`` with ring off counts.

        Parameters
        ----------
        dataset : MapDataset

        Returns
        -------
        MapDatasetOnOff
            counts, exposure and mask_fit of ``dataset``, ``counts_off``,
            ``acceptance = background``, ``acceptance_off`` and ``mask_safe &
            (acceptance_off > 0)``; its ``meta`` is the dataset's plus
            ``n_nonfinite`` (non-finite pixels left out, by input name).
        """
        dataset = _converted(dataset, self.exclusion_mask)
        maps, n_nonfinite = self._make_maps_off(dataset)
        return _on_off(dataset, maps["counts_off"], dataset.background, maps["acceptance_off"], n_nonfinite)


class AdaptiveRingBackgroundEstimator:
    """Ring background with rings grown until alpha is small enough (gammapy's
    AdaptiveRingBackgroundMaker, with ``theta`` as documented; see the module
    docstring).

    Parameters
    ----------
    r_in : angle
        Inner radius of the first ring.
    r_out_max : angle
        Rings end where their outer radius would reach it (gammapy's ``arange``).
    width : angle
        Width of the first (``"fixed_r_in"``) or every (``"fixed_width"``) ring.
    stepsize : angle, optional
        Growth between rings (default "0.02 deg").
    threshold_alpha : float, optional
        Largest acceptable ``alpha_i`` (default 0.1).
    theta : angle, optional
        Radius of the disk integrating the on acceptance for ``alpha_i``
        (default "0.22 deg").
    method : {"fixed_width", "fixed_r_in"}, optional
        Grow the inner radius at fixed width, or the width at fixed inner radius.
    exclusion_mask : Map, optional
        As for :class:`RingBackgroundEstimator`.
    dtype : float64 (default) or float32
        Precision of the convolutions.
    max_batch_bytes : int, optional
        Memory for the transforms of one batch of rings
        (``Convolver.plane_bytes``; at least one ring per batch, and choosing
        the ring takes about as much again).  Default: 512 MiB on numpy, a
        quarter of the free device memory on cupy.
    """

    tag = "AdaptiveRingBackgroundEstimator"

    def __init__(
        self,
        r_in,
        r_out_max,
        width,
        stepsize="0.02 deg",
        threshold_alpha=0.1,
        theta="0.22 deg",
        method="fixed_width",
        exclusion_mask=None,
        dtype=np.float64,
        max_batch_bytes=None,
    ):
        if method not in ("fixed_width", "fixed_r_in"):
            raise ValueError(f"method must be 'fixed_width' or 'fixed_r_in', got {method!r}")
        self.method = method
        self.r_in = parse_angle(r_in, "r_in")
        self.r_out_max = parse_angle(r_out_max, "r_out_max", allow_zero=False)
        self.width = parse_angle(width, "width", allow_zero=False)
        self.stepsize = parse_angle(stepsize, "stepsize", allow_zero=False)
        self.theta = parse_angle(theta, "theta", allow_zero=False)
        if self.r_out_max <= self.r_in + self.width:
            raise ValueError(
                f"r_out_max ({self.r_out_max:g} deg) must exceed r_in + width "
                f"({self.r_in + self.width:g} deg), or there is no ring"
            )
        if (
            not isinstance(threshold_alpha, numbers.Real)
            or isinstance(threshold_alpha, bool)
            or not np.isfinite(threshold_alpha)
            or threshold_alpha <= 0
        ):
            raise ValueError(f"threshold_alpha must be a positive finite number, got {threshold_alpha!r}")
        self.threshold_alpha = float(threshold_alpha)
        if max_batch_bytes is not None and (
            not isinstance(max_batch_bytes, numbers.Integral) or isinstance(max_batch_bytes, bool) or max_batch_bytes < 1
        ):
            raise ValueError(f"max_batch_bytes must be a positive integer or None, got {max_batch_bytes!r}")
        self.max_batch_bytes = max_batch_bytes
        self.exclusion_mask = _check_mask(exclusion_mask)
        self.dtype = _check_dtype(dtype)

    def _params(self) -> list[tuple[str, str]]:
        return [
            ("r_in", f"{self.r_in:g} deg"), ("r_out_max", f"{self.r_out_max:g} deg"),
            ("width", f"{self.width:g} deg"), ("stepsize", f"{self.stepsize:g} deg"),
            ("threshold_alpha", f"{self.threshold_alpha:g}"), ("theta", f"{self.theta:g} deg"),
            ("method", repr(self.method)), ("exclusion_mask", _mask_label(self.exclusion_mask)),
        ]

    def __repr__(self):
        return f"{type(self).__name__}(" + ", ".join(f"{k}={v}" for k, v in self._params()) + ")"

    def _repr_html_(self):
        return html_table(f"gpumask {type(self).__name__}", self._params())

    def kernels(self, geom) -> list:
        """The rings in the order they are tried, as gammapy lists them.

        Parameters
        ----------
        geom : WcsGeom

        Returns
        -------
        list of numpy.ndarray
            0/1 host arrays; pixel radii are angles / ``geom.pixel_scales[0]``.
        """
        scale = _lon_scale(geom)
        r_in, r_out_max, width, step = (v / scale for v in (self.r_in, self.r_out_max, self.width, self.stepsize))
        if self.method == "fixed_width":
            pairs = [(r, width) for r in np.arange(r_in, r_out_max - width, step)]
        else:
            pairs = [(r_in, w) for w in np.arange(width, r_out_max - r_in, step)]
        if not pairs:
            raise ValueError(f"no ring fits between r_in and r_out_max for this geometry ({self!r})")
        return [ring_kernel(float(r), float(w), binsz=1.0) for r, w in pairs]

    def theta_kernel(self, geom) -> np.ndarray:
        """The 0/1 disk of radius ``theta`` / ``geom.pixel_scales[0]`` pixels."""
        return disk_kernel(self.theta, binsz=_lon_scale(geom))

    def _batch_size(self, convolver, n_kernels, backend):
        limit = self.max_batch_bytes
        if limit is None:
            limit = _DEFAULT_BATCH_BYTES
            if backend.name == "cupy":
                # free device memory plus the blocks CuPy's pool holds unused
                limit = (memory_available(backend) or 4 * _DEFAULT_BATCH_BYTES) // 4
        return int(min(n_kernels, max(1, limit // convolver.plane_bytes(1))))

    def make_maps_off(self, dataset) -> dict:
        """Off maps of ``dataset`` with the adaptive ring choice.

        Parameters
        ----------
        dataset : MapDataset
            Needs counts and background; any number of energy planes.

        Returns
        -------
        dict of Map
            ``counts_off``, ``acceptance_off`` (0 where no ring qualifies),
            ``acceptance`` (the dataset's background) and ``ring_index`` (int32,
            index into :meth:`kernels`, -1 where no ring qualifies).  Non-finite
            input pixels are left out of every sum and reported by a
            NonFiniteInputWarning.
        """
        return self._make_maps_off(dataset)[0]

    def _make_maps_off(self, dataset):
        inputs = _RingInputs(dataset, self.exclusion_mask, type(self).__name__)
        xp = inputs.xp
        kernels = self.kernels(inputs.geom)
        shape = tuple(max(k.shape[i] for k in kernels) for i in (0, 1))
        convolver = Convolver(inputs.stack, shape, dtype=self.dtype)
        acc_theta = convolve(inputs.finite_background(), self.theta_kernel(inputs.geom), dtype=self.dtype)
        counts_off = xp.zeros(inputs.planes_shape, dtype=self.dtype)
        acceptance_off = xp.zeros(inputs.planes_shape, dtype=self.dtype)
        ring_index = xp.full(inputs.planes_shape, -1, dtype=np.int32)
        batch = self._batch_size(convolver, len(kernels), inputs.backend)
        with progress_bar(len(kernels), "adaptive rings", unit="ring") as bar:
            for start in range(0, len(kernels), batch):
                chunk = kernels[start : start + batch]
                conv = convolver.convolve_many(chunk)  # (b, 2n, ny, nx)
                c, a = inputs.split(conv, [k.sum() for k in chunk])
                del conv
                for i in range(len(chunk)):  # rings in order: the first that qualifies wins
                    with np.errstate(divide="ignore", invalid="ignore"):
                        # alpha = acc_theta / acceptance_off as gammapy divides (ties at the threshold)
                        take = (a[i] > 0) & (acc_theta / a[i] <= self.threshold_alpha) & (ring_index < 0)
                    counts_off = xp.where(take, c[i], counts_off)
                    acceptance_off = xp.where(take, a[i], acceptance_off)
                    ring_index = xp.where(take, np.int32(start + i), ring_index)
                del c, a
                bar.update(len(chunk))
        maps = inputs.off_maps(counts_off, acceptance_off)
        maps["acceptance"] = dataset.background
        maps["ring_index"] = Map.from_geom(inputs.geom, data=ring_index.reshape(inputs.geom.data_shape))
        return maps, inputs.n_nonfinite

    def run(self, dataset) -> MapDatasetOnOff:
        """On/off dataset of ``dataset`` with adaptive ring off counts.

        Parameters
        ----------
        dataset : MapDataset

        Returns
        -------
        MapDatasetOnOff
            As :meth:`RingBackgroundEstimator.run`; ``mask_safe`` is also False
            where no ring qualifies.
        """
        dataset = _converted(dataset, self.exclusion_mask)
        maps, n_nonfinite = self._make_maps_off(dataset)
        return _on_off(dataset, maps["counts_off"], maps["acceptance"], maps["acceptance_off"], n_nonfinite)


# ----------------------------------------------------------------------------- helpers


def _check_mask(mask):
    if mask is None:
        return None
    if is_gammapy_object(mask):
        mask = as_map(mask, "exclusion_mask")
    if not isinstance(mask, Map):
        raise TypeError(
            f"exclusion_mask must be a boolean gpumask Map (True = usable, False = excluded) or None, "
            f"got {type(mask).__name__}"
        )
    if not mask.is_mask:
        raise TypeError(
            f"exclusion_mask must be a boolean Map (True = usable, False = excluded), got dtype {mask.dtype}; "
            "convert it explicitly, e.g. mask > 0.5"
        )
    return mask


def _mask_label(mask) -> str:
    """What a repr says of an exclusion mask (no data read: None or its shape)."""
    if mask is None:
        return "None"
    return f"Map{tuple(mask.geom.npix) + tuple(ax.nbin for ax in mask.geom.axes)} ({mask.backend.name})"


def _converted(dataset, exclusion_mask):
    """A gammapy dataset as a gpumask one (on the exclusion mask's backend when there
    is one; one counted upload per map); anything else as it is."""
    if not is_gammapy_object(dataset):
        return dataset
    return as_dataset(dataset, backend=None if exclusion_mask is None else exclusion_mask.backend)


def _lon_scale(geom) -> float:
    """Longitude pixel scale in deg, gammapy's ring pixel unit (gammapy geometries taken)."""
    return float(as_geom(geom).pixel_scales[0].deg)


class _RingInputs:
    """A dataset's ring-sum inputs as ``(2n, ny, nx)`` planes on its backend:
    ``where(U, counts, 0)`` and ``where(U, background, 0)``, n planes each."""

    def __init__(self, dataset, exclusion_mask, owner):
        dataset = _converted(dataset, exclusion_mask)
        if not isinstance(dataset, MapDataset) or isinstance(dataset, MapDatasetOnOff):
            raise TypeError(
                f"{owner} needs a gpumask MapDataset with counts and background (see gpumask.read_dataset), "
                f"got {type(dataset).__name__}"
            )
        if dataset.background is None:
            raise ValueError(f"{owner} needs a dataset with a background map (the ring acceptance)")
        self.backend = common_backend(dataset.counts, dataset.background, exclusion_mask, op=owner)
        xp = self.xp = self.backend.xp
        geom = self.geom = dataset.counts.geom
        ny, nx = geom.data_shape_image
        self.n_planes = n = int(np.prod(geom.data_shape[:-2], dtype=np.int64))
        self.planes_shape = (n, ny, nx)
        counts = dataset.counts.data.reshape(self.planes_shape)
        background = dataset.background.data.reshape(self.planes_shape)
        self._background = background
        # one flag for both inputs; a warning and the counts when some are bad
        check = _NonFinite({"counts": counts, "background": background}, owner)
        self.n_nonfinite = check.counts
        usable = check.finite
        excl = _exclusion_data(exclusion_mask, geom, owner)
        if excl is not None:
            excl = excl.reshape((-1, ny, nx))
            usable = excl if usable is None else usable & excl
        if usable is None:  # every pixel finite and no exclusion mask
            dtype = np.result_type(counts.dtype, background.dtype, 0.0)  # as xp.where(.., 0.0) gives
            self.stack = xp.concatenate([counts, background]).astype(dtype, copy=False)
        else:
            self.stack = xp.concatenate([xp.where(usable, counts, 0.0), xp.where(usable, background, 0.0)])
        # largest |value| of each input: with the kernel's sum it bounds the ring
        # sums, and eps times that bound is the FFT's round-off floor
        self.scale = xp.max(xp.abs(self.stack.reshape(2, -1)), axis=1)

    def finite_background(self):
        """Background planes with non-finite values as 0 (the adaptive theta disk)."""
        xp = self.xp
        return xp.where(xp.isfinite(self._background), self._background, 0.0)

    def split(self, conv, kernel_sums):
        """``(counts_off, acceptance_off)`` from convolved stacks ``(..., 2n, ny, nx)``
        (a leading axis per kernel when ``kernel_sums`` has several): ring sums
        below the FFT round-off floor are exactly 0, and acceptance_off <= 0 is 0."""
        xp, n = self.xp, self.n_planes
        eps = np.finfo(conv.dtype).eps
        sums = xp.asarray(np.asarray(kernel_sums, dtype=np.float64) * _ROUNDOFF_FACTOR * eps)
        if conv.ndim == 4:
            sums = sums.reshape(-1, 1, 1, 1)
        floor_counts = sums * self.scale[0]
        floor_acc = sums * self.scale[1]
        acceptance_off = conv[..., n : 2 * n, :, :]
        empty = acceptance_off <= floor_acc
        counts_off = conv[..., :n, :, :]
        counts_off = xp.where(empty | (xp.abs(counts_off) <= floor_counts), 0.0, counts_off)
        acceptance_off = xp.where(empty, 0.0, acceptance_off)
        return counts_off.astype(conv.dtype, copy=False), acceptance_off.astype(conv.dtype, copy=False)

    def off_maps(self, counts_off, acceptance_off):
        shape = self.geom.data_shape
        return {
            "counts_off": Map.from_geom(self.geom, data=counts_off.reshape(shape)),
            "acceptance_off": Map.from_geom(self.geom, data=acceptance_off.reshape(shape)),
        }


def _exclusion_data(mask, geom, owner):
    """The exclusion mask's data on the counts pixels: ``(ny, nx)`` or the cube shape."""
    if mask is None:
        return None
    if mask.geom.axes:
        if geom.to_image().to_cube(mask.geom.axes) != geom:
            raise ValueError(
                f"{owner}: an exclusion mask with axes {mask.geom.axes_names[2:]} needs the dataset's axes "
                f"{geom.axes_names[2:]}; use a 2-D mask (e.g. mask.reduce_over_axes('all', keepdims=False))"
            )
        return mask.interp_to_geom(geom).data
    return mask.interp_to_geom(geom.to_image()).data


def _on_off(dataset, counts_off, acceptance, acceptance_off, n_nonfinite):
    has_off = acceptance_off > 0
    mask_safe = has_off if dataset.mask_safe is None else dataset.mask_safe & has_off
    return MapDatasetOnOff(
        counts=dataset.counts,
        counts_off=counts_off,
        acceptance=acceptance,
        acceptance_off=acceptance_off,
        exposure=dataset.exposure,
        mask_safe=mask_safe,
        mask_fit=dataset.mask_fit,
        name=dataset.name,
        meta={**dataset.meta, "n_nonfinite": n_nonfinite},
    )
