"""``gpumask kbe``: the iterative kernel background estimator on FITS files.

::

    gpumask kbe COUNTS [--background FILE] [--exclusion FILE] [--hdu NAME]
                [--source-kernel ANGLE] [--ring R_IN WIDTH] [--threshold SIGMA]
                [--dilation ANGLE] [--niter-min N] [--niter-max N]
                [--out DIR] [--overwrite] [--backend NAME]

COUNTS is a map FITS file (gpumask, gammapy, Fermi tools) or a gammapy MapDataset
file, whose COUNTS and (unless ``--background`` is given) BACKGROUND are used; a
dataset's MASK_SAFE is not applied (the estimator has no notion of unsafe pixels;
the printed output says when one is present and not all True).  Cubes with one
energy axis are summed over energy to an image; other shapes are refused.

Defaults follow the gammapy KBE set-up on the Fermi-LAT 3FHL Galactic-centre
counts (0.05 deg pixels) that README and the tests use: a 0.1 deg source disk, a
0.3 to 0.6 deg ring (``--ring 0.3 deg 0.3 deg``: inner radius and width), a 5 sigma
threshold, a 0.02 deg mask dilation (the estimator's default), 2 to 10 passes.

Outputs in ``--out`` (default ``./gpumask-kbe``, created if missing):
``exclusion_mask.fits`` (bool, False = excluded), ``background.fits``,
``significance.fits`` (Cash sqrt_ts of the last pass) and ``kbe.json`` (passes,
convergence, parameters, input paths, timings, host copies).  Every option is
checked, and every target, before anything is read or computed; an existing
target without ``--overwrite`` is an error naming it; files are written
atomically.  Errors print ``gpumask: error: ...`` and return 2.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

OUTPUTS = {
    "exclusion_mask": ("exclusion_mask.fits", "exclusion mask (bool, True = usable, False = excluded)"),
    "background": ("background.fits", "background estimate (counts per pixel)"),
    "significance": ("significance.fits", "significance of the last pass (Cash sqrt_ts)"),
    "summary": ("kbe.json", "passes, convergence, parameters, inputs, timings"),
}

_ANGLE_HINT = "an angle such as '0.1 deg', '6 arcmin' or a number in deg"


class UsageError(ValueError):
    """A bad option value; the message names the option and what it accepts."""


def add_parser(sub):
    p = sub.add_parser(
        "kbe",
        help="iterative kernel background estimator on a counts map or MapDataset file",
        description=(
            "Estimate a background and an exclusion mask from a counts image with the iterative "
            "kernel background estimator (gammapy.detect's KBE): each pass excludes the pixels "
            "whose significance in the source disk reaches the threshold (grown by the dilation) "
            "and re-estimates the background from the counts in the ring, until the mask stops "
            "changing.  Energy cubes are summed to an image."
        ),
    )
    p.add_argument("counts", metavar="COUNTS",
                   help="counts map FITS file, or a gammapy MapDataset file (COUNTS, BACKGROUND HDUs)")
    p.add_argument("--background", metavar="FILE",
                   help="background map FITS file, starting estimate (default: the dataset's BACKGROUND, "
                        "else estimated from the counts)")
    p.add_argument("--exclusion", metavar="FILE",
                   help="initial exclusion mask FITS file (True/1 = usable); a boolean mask on another "
                        "geometry is resampled")
    p.add_argument("--hdu", metavar="NAME",
                   help="HDU of COUNTS to read as a map (default: COUNTS of a MapDataset file, else the "
                        "first HDU with data)")
    p.add_argument("--source-kernel", default="0.1 deg", metavar="ANGLE",
                   help="radius of the source (correlation) disk (default: 0.1 deg)")
    p.add_argument("--ring", nargs=2, default=["0.3 deg", "0.3 deg"], metavar=("R_IN", "WIDTH"),
                   help="inner radius and width of the background ring (default: 0.3 deg 0.3 deg, "
                        "i.e. 0.3 to 0.6 deg)")
    p.add_argument("--threshold", default="5", metavar="SIGMA",
                   help="pixels at or above this significance are excluded (default: 5)")
    p.add_argument("--dilation", default="0.02 deg", metavar="ANGLE",
                   help="radius by which excluded regions grow in every pass (default: 0.02 deg)")
    p.add_argument("--niter-min", default="2", metavar="N", help="passes to run at least (default: 2)")
    p.add_argument("--niter-max", default="10", metavar="N", help="passes to run at most (default: 10)")
    p.add_argument("--out", default="gpumask-kbe", metavar="DIR",
                   help="output directory, created if missing (default: ./gpumask-kbe)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--backend", default=None, help="numpy | cupy | auto (default: GPUMASK_BACKEND or auto)")
    return p


def run(args) -> int:
    from ..backend import BackendError  # noqa: PLC0415

    try:
        summary = run_kbe(args)
    except (UsageError, BackendError, FileExistsError, FileNotFoundError, ValueError) as exc:
        print(f"gpumask: error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(report(summary)))
    return 0


# ---------------------------------------------------------------------- options


def _angle(text, option, *, positive=True) -> float:
    from .._utils import parse_angle  # noqa: PLC0415

    try:
        value = parse_angle(text, option, allow_negative=True)
    except ValueError:
        raise UsageError(f"{option} must be {_ANGLE_HINT}, got {text!r}") from None
    if value < 0 or (positive and value == 0):
        kind = "positive" if positive else "zero or positive"
        raise UsageError(f"{option} must be {kind} ({_ANGLE_HINT}), got {text!r}")
    return value


def _positive_int(text, option) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise UsageError(f"{option} must be a positive integer, got {text!r}") from None
    if value < 1:
        raise UsageError(f"{option} must be a positive integer, got {text!r}")
    return value


def _threshold(text) -> float:
    try:
        value = float(str(text).strip())
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"--threshold must be a positive number (a significance in sigma, e.g. 5), got {text!r}")
    return value


def parameters(args) -> dict:
    """The estimator's parameters from the command line, checked (UsageError
    naming the option otherwise)."""
    params = {
        "source_kernel_deg": _angle(args.source_kernel, "--source-kernel"),
        "ring_r_in_deg": _angle(args.ring[0], "--ring R_IN", positive=False),
        "ring_width_deg": _angle(args.ring[1], "--ring WIDTH"),
        "threshold": _threshold(args.threshold),
        "dilation_deg": _angle(args.dilation, "--dilation", positive=False),
        "niter_min": _positive_int(args.niter_min, "--niter-min"),
        "niter_max": _positive_int(args.niter_max, "--niter-max"),
    }
    if params["niter_min"] > params["niter_max"]:
        raise UsageError(
            f"--niter-min ({params['niter_min']}) must not exceed --niter-max ({params['niter_max']})"
        )
    return params


def _input_path(text, option) -> Path:
    path = Path(text).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{option}: file not found: {path}")
    if not path.is_file():
        raise UsageError(f"{option}: {path} is not a file")
    return path


def output_paths(out_dir, overwrite) -> dict:
    """``{name: path}`` of the outputs; FileExistsError naming existing ones
    unless ``overwrite``.  Nothing is created here."""
    from ..sky.io import output_folder_paths  # noqa: PLC0415

    return output_folder_paths(out_dir, {key: name for key, (name, _) in OUTPUTS.items()}, overwrite)


# ---------------------------------------------------------------------- inputs


def _is_dataset(path) -> bool:
    """Whether ``path`` has a COUNTS HDU (a gammapy MapDataset file); reads headers only."""
    from astropy.io import fits  # noqa: PLC0415

    try:
        with fits.open(path, memmap=False) as hdulist:
            return any(hdu.name == "COUNTS" for hdu in hdulist)
    except (OSError, ValueError):
        return False  # not FITS: read_map reports it


def to_image(m, what):
    """``(image, n_energy_bins)``: ``m`` itself for a 2-D map, the sum over energy
    for a cube with one energy axis; ValueError naming ``what`` otherwise."""
    names = m.geom.axes_names[2:]
    if not names:
        return m, 0
    if names == ["energy"]:
        return m.sum_over_axes(keepdims=False), m.geom.axes[0].nbin
    raise UsageError(
        f"{what} has the non-spatial axes {names}; gpumask kbe takes a 2-D image or a cube "
        "with one energy axis (summed over energy)"
    )


def read_inputs(args, backend) -> tuple[dict, dict]:
    """``(images, info)``: the estimator's input images on ``backend`` and what
    was read (paths, HDUs, energy bins summed, notes)."""
    from ..backend import read_flag  # noqa: PLC0415
    from ..sky.datasets import read_dataset  # noqa: PLC0415
    from ..sky.io import read_map  # noqa: PLC0415

    counts_path = _input_path(args.counts, "COUNTS")
    bkg_path = _input_path(args.background, "--background") if args.background else None
    excl_path = _input_path(args.exclusion, "--exclusion") if args.exclusion else None
    info = {"counts": str(counts_path.resolve()), "notes": []}
    background = None
    if args.hdu is None and _is_dataset(counts_path):
        dataset = read_dataset(counts_path, backend=backend)
        info["counts_kind"], info["counts_hdu"] = "MapDataset", "COUNTS"
        counts = dataset.counts
        if bkg_path is None and dataset.background is not None:
            background, info["background_energy_bins_summed"] = to_image(dataset.background, "the BACKGROUND")
            info["background"] = f"{info['counts']} [BACKGROUND]"
        if dataset.mask_safe is not None and not read_flag(dataset.backend.xp.all(dataset.mask_safe.data)):
            info["notes"].append("the dataset's MASK_SAFE is not applied: all counts are used")
    else:
        counts = read_map(counts_path, hdu=args.hdu, backend=backend)
        info["counts_kind"], info["counts_hdu"] = "map", args.hdu
    counts, info["energy_bins_summed"] = to_image(counts, "COUNTS")
    images = {"counts": counts}
    if bkg_path is not None:
        background, info["background_energy_bins_summed"] = to_image(read_map(bkg_path, backend=backend),
                                                                      "--background")
        info["background"] = str(bkg_path.resolve())
    if background is not None:
        if background.geom != counts.geom:
            raise UsageError(f"--background {info['background']}: its geometry differs from the counts' "
                             f"({tuple(background.geom.npix)} px vs {tuple(counts.geom.npix)} px, or another WCS)")
        images["background"] = background
    else:
        info["background"] = None
    if excl_path is not None:
        images["exclusion"] = _read_exclusion(excl_path, backend)
        info["exclusion"] = str(excl_path.resolve())
    else:
        info["exclusion"] = None
    return images, info


def _read_exclusion(path, backend):
    from ..sky.io import read_map  # noqa: PLC0415

    mask = read_map(path, backend=backend)
    if mask.geom.axes:
        raise UsageError(f"--exclusion {path}: a 2-D mask is needed, got axes {mask.geom.axes_names[2:]}")
    return mask if mask.is_mask else mask != 0


# ---------------------------------------------------------------------- the run


def run_kbe(args) -> dict:
    """Check the options and targets, read the inputs, run the estimator, write
    the outputs; returns the summary written to ``kbe.json``."""
    from ..backend import count_transfers, resolve_backend  # noqa: PLC0415
    from ..background.kernel import KernelBackgroundEstimator  # noqa: PLC0415
    from ..sky.io import atomic_write_bytes  # noqa: PLC0415

    params = parameters(args)
    paths = output_paths(args.out, args.overwrite)
    be = resolve_backend(args.backend)
    t0 = time.perf_counter()
    images, info = read_inputs(args, be.name)
    t1 = time.perf_counter()
    kbe = KernelBackgroundEstimator(
        params["source_kernel_deg"],
        (params["ring_r_in_deg"], params["ring_width_deg"]),
        significance_threshold=params["threshold"],
        mask_dilation_radius=params["dilation_deg"],
    )
    pixel_size = float(abs(images["counts"].geom.wcs.wcs.cdelt).mean())
    try:
        kbe.kernels(pixel_size)
    except ValueError as exc:
        raise UsageError(f"--ring {args.ring[0]} {args.ring[1]}: {exc}; widen the ring") from None
    with count_transfers() as transfers:
        result = kbe.run(images, niter_min=params["niter_min"], niter_max=params["niter_max"])
        passes, converged, cycle = result.n_iter, result.converged, result.cycle
    t2 = time.perf_counter()
    _write_maps(result, paths, args.overwrite)
    t3 = time.perf_counter()
    summary = _summary(result, images["counts"].geom, params, info, be.name, paths)
    summary["run"] = {
        "passes": passes,
        "converged": converged,
        "cycle": cycle,
        "host_copies": transfers.calls,
        "flag_reads": transfers.flags,
        "timings_s": {"read": round(t1 - t0, 4), "kbe": round(t2 - t1, 4), "write": round(t3 - t2, 4)},
    }
    atomic_write_bytes(paths["summary"], (json.dumps(summary, indent=2) + "\n").encode(), overwrite=args.overwrite)
    return summary


def _write_maps(result, paths, overwrite):
    paths["exclusion_mask"].parent.mkdir(parents=True, exist_ok=True)
    result["exclusion"].write(paths["exclusion_mask"], overwrite=overwrite)
    result["background"].write(paths["background"], overwrite=overwrite)
    result["significance"].write(paths["significance"], overwrite=overwrite)


def _summary(result, geom, params, info, backend, paths) -> dict:
    from .. import __version__  # noqa: PLC0415

    exclusion = result["exclusion"].to_numpy()
    excluded = int(exclusion.size - exclusion.sum())
    kept = int(result["background_kept"].to_numpy().sum())
    ring = (params["ring_r_in_deg"], params["ring_r_in_deg"] + params["ring_width_deg"])
    return {
        "command": "gpumask kbe",
        "gpumask_version": __version__,
        "backend": backend,
        "inputs": info,
        "parameters": {**params, "ring_deg": [ring[0], round(ring[1], 10)]},
        "geometry": {
            "npix": list(geom.npix),
            "binsz_deg": round(float(abs(geom.wcs.wcs.cdelt[1])), 10),
            "frame": geom.frame,
            "proj": geom.projection,
        },
        "excluded_pixels": excluded,
        "excluded_fraction": excluded / exclusion.size,
        "background_kept_pixels": kept,
        "outputs": {key: str(path.resolve()) for key, path in paths.items()},
    }


# ---------------------------------------------------------------------- printing


def report(summary) -> list[str]:
    """The lines ``gpumask kbe`` prints."""
    inputs, params = summary["inputs"], summary["parameters"]
    nx, ny = summary["geometry"]["npix"]
    counts = f"{inputs['counts']}" + (" (MapDataset COUNTS)" if inputs["counts_kind"] == "MapDataset" else "")
    lines = [f"gpumask kbe: {counts}, {nx}x{ny} px, backend {summary['backend']}"]
    if inputs["energy_bins_summed"]:
        lines.append(f"  counts     : a cube with {inputs['energy_bins_summed']} energy bins, summed over energy "
                     "to an image")
    background = inputs["background"] or "none given: first estimate from the counts in the ring"
    if inputs.get("background_energy_bins_summed"):
        background += f", summed over {inputs['background_energy_bins_summed']} energy bins"
    lines.append(f"  background : {background}")
    if inputs["exclusion"]:
        lines.append(f"  exclusion  : {inputs['exclusion']} (initial mask)")
    lines += [f"  note       : {note}" for note in inputs["notes"]]
    run = summary["run"]
    state = "converged" if run["converged"] else (
        f"stopped on a limit cycle of {run['cycle']} passes" if run["cycle"] else "not converged")
    lines += [
        (f"  kernels    : source disk {params['source_kernel_deg']:g} deg, ring {params['ring_deg'][0]:g}-"
        f"{params['ring_deg'][1]:g} deg, threshold {params['threshold']:g}, dilation {params['dilation_deg']:g} deg, "
        f"{params['niter_min']}-{params['niter_max']} passes"),
        (f"  result     : {state} after {run['passes']} passes: {summary['excluded_pixels']} px excluded "
        f"({100 * summary['excluded_fraction']:.2f}%) in {run['timings_s']['kbe']:.3f} s, "
        f"{run['host_copies']} host copies during the run"),
    ]
    width = max(len(p) for p in summary["outputs"].values())
    for i, (key, (_, text)) in enumerate(OUTPUTS.items()):
        head = "  wrote      : " if i == 0 else " " * 15
        lines.append(f"{head}{summary['outputs'][key]:<{width}}  {text}")
    return lines
