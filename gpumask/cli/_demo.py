"""The built-in example behind ``gpumask demo`` (README's first command).

It simulates a field like the seed notebook's, the geometry of the Gammapy
tutorial "Creating exclusion masks" (Crab, 5 deg, 0.02 deg, galactic), and
builds its exclusion masks on the selected backend.

The field
    * sources: the catalogued gamma-ray sources inside the field, from the package
      data file ``gpumask/cli/data/demo_sources.ecsv`` (positions and sizes from
      gamma-cat, 3FGL and 3HWC, see its header; simulated counts from the very
      bright Crab down to about 5 sigma);
    * counts: seeded Poisson draws of a smooth, known background (0.5 counts per
      pixel times a Galactic ridge ``1 + exp(-b^2 / (2 (3 deg)^2))``, about
      0.51 to 0.77 counts per pixel across the field) plus every source as a 2-D
      Gaussian of sigma ``hypot(size, 0.05 deg)``.

The masks (True = usable, False = excluded: gammapy's convention)
    1. the tutorial's two ds9 regions, rasterised by ``WcsGeom.region_mask``
       (exact spherical geometry) -> ``exclusion_mask.fits``;
    2. the catalog mask of the demo sources, ``gpumask.masks.catalog_mask.exclusion_mask``
       with the default radius rule (0.1 deg PSF in quadrature with 3 Gaussian
       sigma; point sources: 0.1 deg circles) -> ``catalog_mask.fits``;
    3. ``ExcessMapEstimator("0.4 deg")`` on the counts with the true background ->
       ``sqrt_ts.fits``; hysteresis (``sqrt_ts >= 5`` seeds grown to ``>= 3``),
       dilated by 0.1 deg -> ``significance_mask.fits``;
    4. the three combined (usable where all three say so) -> ``combined_mask.fits``;
    5. the iterative ``KernelBackgroundEstimator`` (0.1 deg disk, 0.4-0.7 deg
       ring) on the counts alone -> ``kbe_exclusion_mask.fits`` and
       ``kbe_background.fits``, compared with the true background in the summary.

Plus ``preview.png`` (a matplotlib figure, :func:`render_preview`: the significance
map on WCS axes with a labelled colorbar and the outline of every mask in a
legend, beside the KBE background; titled with the field and the excluded
fractions) and ``summary.json``.  Every output is checked before any work (an existing file
without ``overwrite`` raises :class:`FileExistsError` naming it, and nothing is
written); every file is written atomically.  Nothing is copied to the host
while the masks are built (``host_copies_before_writing`` in the summary); the
figure is drawn after the FITS files are written.
"""

from __future__ import annotations

import io
import json
import time

import numpy as np

from ..backend import count_transfers, resolve_backend
from ..background.kernel import KernelBackgroundEstimator
from ..batch.examples import DEMO_BACKGROUND, DEMO_RIDGE, DEMO_SEED, DEMO_SOURCES, demo_catalog, demo_dataset, demo_geom, true_background
from ..catalog import DEFAULT_PSF, source_shapes
from ..masks.catalog_mask import exclusion_mask
from ..masks.significance import exclusion_from_significance
from ..sky.io import atomic_write_bytes, output_folder_paths
from ..stats.excess import ExcessMapEstimator

__all__ = ["DEMO_REGIONS", "OUTPUTS", "render_preview", "run_demo"]

DEMO_REGIONS = "galactic;box(185,-4,1.0,0.5,45)\nicrs;circle(83.633083,22.0145,0.3)"

CORRELATION_RADIUS = 0.4  # deg, ExcessMapEstimator
THRESHOLD, HYSTERESIS_LOW = 5.0, 3.0
DILATION = 0.1  # deg, growth of the significance mask
KBE_SOURCE_RADIUS, KBE_RING, KBE_DILATION = 0.1, (0.4, 0.3), 0.04  # deg

# summary key -> (file name, what it holds), in the order they are printed
OUTPUTS = {
    "mask_file": ("exclusion_mask.fits", "regions mask: the tutorial's ds9 box and circle"),
    "catalog_mask_file": ("catalog_mask.fits", "catalog mask: one region per demo source"),
    "sqrt_ts_file": ("sqrt_ts.fits", "significance map (float), ExcessMapEstimator 0.4 deg"),
    "significance_mask_file": ("significance_mask.fits", "significance mask: hysteresis 5/3, dilated 0.1 deg"),
    "combined_mask_file": ("combined_mask.fits", "combined mask: regions & catalog & significance"),
    "kbe_exclusion_mask_file": ("kbe_exclusion_mask.fits", "kernel background estimator's exclusion mask"),
    "kbe_background_file": ("kbe_background.fits", "kernel background estimator's background (counts/pixel)"),
    "preview_file": ("preview.png", "figure: sqrt_ts with every mask outlined, and the KBE background"),
    "summary_file": ("summary.json", "these figures as JSON"),
}


def output_paths(out_dir, overwrite=False) -> dict:
    """``{summary key: path}`` of every output; raises FileExistsError naming the
    existing ones unless ``overwrite`` (nothing is created here)."""
    return output_folder_paths(out_dir, {key: name for key, (name, _) in OUTPUTS.items()}, overwrite)


def build_masks(geom, dataset, catalog, backend) -> dict:
    """Every mask of the demo and the KBE result, on ``backend`` (no host copy)."""
    masks = {"regions": geom.region_mask(DEMO_REGIONS, inside=False, backend=backend)}
    masks["catalog"] = exclusion_mask(geom, catalog, backend=backend)
    sqrt_ts = ExcessMapEstimator(f"{CORRELATION_RADIUS} deg").run(dataset)["sqrt_ts"]
    significance = exclusion_from_significance(sqrt_ts, THRESHOLD, low=HYSTERESIS_LOW, nan="keep")
    masks["significance"] = significance.binary_erode(f"{DILATION} deg")  # eroding "usable" grows "excluded"
    masks["combined"] = masks["regions"] & masks["catalog"] & masks["significance"]
    kbe = KernelBackgroundEstimator(
        f"{KBE_SOURCE_RADIUS} deg", tuple(f"{v} deg" for v in KBE_RING), mask_dilation_radius=f"{KBE_DILATION} deg"
    )
    masks["kbe"] = kbe.run({"counts": dataset.counts})  # last: its flag reads wait for the device
    masks["sqrt_ts"] = sqrt_ts
    return masks


def _write_fits(masks, paths, overwrite):
    kbe = masks["kbe"]
    items = (
        ("mask_file", masks["regions"]),
        ("catalog_mask_file", masks["catalog"]),
        ("sqrt_ts_file", masks["sqrt_ts"]),
        ("significance_mask_file", masks["significance"]),
        ("combined_mask_file", masks["combined"]),
        ("kbe_exclusion_mask_file", kbe["exclusion"]),
        ("kbe_background_file", kbe["background"]),
    )
    for key, m in items:
        m.write(paths[key], overwrite=overwrite)


def run_demo(out_dir, backend=None, overwrite=False) -> dict:
    """Simulate the demo field, build its masks and run the KBE; write everything
    to ``out_dir`` (created if missing) and return the summary (also written as
    ``summary.json``).

    Parameters
    ----------
    out_dir : str or path
    backend : str, optional
        numpy | cupy | auto (default: ``GPUMASK_BACKEND`` or auto).
    overwrite : bool
        Replace existing outputs; without it any existing output raises
        :class:`FileExistsError` before anything is computed or written.
    """
    be = resolve_backend(backend)
    paths = output_paths(out_dir, overwrite)
    geom = demo_geom()
    catalog = demo_catalog()
    dataset = demo_dataset(geom, backend=be.name, catalog=catalog)
    t0 = time.perf_counter()
    with count_transfers() as transfers:
        masks = build_masks(geom, dataset, catalog, be)
    elapsed = time.perf_counter() - t0
    paths["mask_file"].parent.mkdir(parents=True, exist_ok=True)
    _write_fits(masks, paths, overwrite)
    sqrt_ts = masks["sqrt_ts"].to_numpy()
    summary = _summary(geom, catalog, masks, sqrt_ts, be.name, transfers.calls, elapsed, paths)
    atomic_write_bytes(paths["preview_file"], render_preview(masks, summary), overwrite=overwrite)
    text = json.dumps(summary, indent=2) + "\n"
    atomic_write_bytes(paths["summary_file"], text.encode(), overwrite=overwrite)
    return summary


# ---------------------------------------------------------------------- the figure

PREVIEW_SIZE, PREVIEW_DPI = (14.0, 6.5), 100  # inches, dots per inch: a 1400x650 PNG


def render_preview(masks, summary) -> bytes:
    """The demo's figure as PNG bytes (matplotlib, Agg; no display, no pyplot state).

    Left: ``sqrt_ts`` (-3 to 10) on WCS axes with a labelled colorbar and the
    outline of the excluded regions of the regions, catalog, significance and
    combined masks, in a legend with each one's excluded fraction.  Right: the
    KBE background (counts per pixel) with its exclusion mask outlined.  The
    title names the field and the key numbers.  Each map crosses to the host
    once (counted; this runs after the FITS files are written).
    """
    from matplotlib.figure import Figure  # noqa: PLC0415

    sqrt_ts = masks["sqrt_ts"]
    geom = sqrt_ts.geom
    kbe = masks["kbe"]
    npix = summary["geometry"]["npix"]
    size = npix[0] * npix[1]

    def label(name, n_excluded):
        return f"{name}: {100 * n_excluded / size:.1f} % excluded"

    outlines = {
        label("regions (ds9 box, circle)", summary["excluded_pixels"]): masks["regions"],
        label("catalog", summary["catalog"]["excluded_pixels"]): masks["catalog"],
        label(f"significance (>= {THRESHOLD:g} sigma)", summary["significance"]["excluded_pixels"]):
            masks["significance"],
        label("combined", summary["combined_excluded_pixels"]): masks["combined"],
    }
    fig = Figure(figsize=PREVIEW_SIZE, dpi=PREVIEW_DPI)
    fig.subplots_adjust(left=0.06, right=0.93, bottom=0.09, top=0.84, wspace=0.42)
    left = fig.add_subplot(1, 2, 1, projection=geom.to_image().wcs)
    sqrt_ts.plot(
        ax=left, add_cbar=True, cmap="viridis", vmin=-3, vmax=10,
        kwargs_colorbar={"label": "sqrt(TS), ExcessMapEstimator 0.4 deg"},
        masks=outlines,
        kwargs_masks={"colors": ["white", "orange", "magenta", "red"], "linewidths": [1.2, 1.2, 1.2, 2.0],
                      "linestyles": ["solid", "solid", "solid", "dashed"],
                      "kwargs_legend": {"loc": "lower left", "fontsize": "x-small"}},
    )
    left.set_title("Significance and exclusion masks (outlines: excluded side inside)", fontsize="medium")
    right = fig.add_subplot(1, 2, 2, projection=geom.to_image().wcs)
    k = summary["kernel_background"]
    kbe["background"].plot(
        ax=right, add_cbar=True, cmap="afmhot",
        kwargs_colorbar={"label": f"background, counts / pixel (true mean {k['true_background']:.3f})"},
        masks={label("KBE exclusion", k["excluded_pixels"]): kbe["exclusion"]},
        kwargs_masks={"colors": ["cyan"], "kwargs_legend": {"loc": "lower left", "fontsize": "x-small"}},
    )
    state = "converged" if k["converged"] else "stopped"
    right.set_title(f"Kernel background estimate ({state} after {k['passes']} passes)", fontsize="medium")
    ring = k["ring_deg"]
    fig.suptitle(
        f"gpumask demo: simulated field around the Crab, {npix[0]}x{npix[1]} px of "
        f"{summary['geometry']['binsz_deg']} deg ({geom.frame}), {len(summary['catalog']['sources'])} sources\n"
        f"peak sqrt(TS) {summary['significance']['peak_sqrt_ts']:.1f}; combined mask excludes "
        f"{100 * summary['combined_excluded_pixels'] / size:.1f} %; KBE disk {k['source_radius_deg']} deg, "
        f"ring {ring[0]}-{ring[1]} deg",
        fontsize="medium",
    )
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=PREVIEW_DPI)
    return buffer.getvalue()


# ---------------------------------------------------------------------- the summary


def _excluded(m) -> int:
    host = m.to_numpy()
    return int(host.size - np.count_nonzero(host))


def _catalog_summary(geom, catalog, mask, sqrt_ts) -> dict:
    shapes = source_shapes(catalog)
    x, y = geom.coord_to_pix(catalog.positions)
    table = catalog.table
    sources = []
    for i in range(len(catalog)):
        pos = catalog.positions[i]
        row, col = round(float(y[i])), round(float(x[i]))
        sources.append({
            "name": str(catalog.names[i]),
            "ra_deg": round(float(pos.icrs.ra.deg), 5),
            "dec_deg": round(float(pos.icrs.dec.deg), 5),
            "glon_deg": round(float(pos.galactic.l.deg), 4),
            "glat_deg": round(float(pos.galactic.b.deg), 4),
            "size_deg": float(table["Size"][i]),
            "counts": float(table["Counts"][i]),
            "position_catalog": str(table["Position_Catalog"][i]),
            "radius_deg": round(float(shapes.semi_major[i]), 4),
            "sqrt_ts_at_position": round(float(sqrt_ts[row, col]), 2),
        })
    return {
        "file": f"gpumask/cli/data/{DEMO_SOURCES}",
        "psf_deg": DEFAULT_PSF,
        "sources": sources,
        "excluded_pixels": _excluded(mask),
    }


def _kbe_summary(kbe, truth) -> dict:
    background = kbe["background"].to_numpy()
    return {
        "source_radius_deg": KBE_SOURCE_RADIUS,
        "ring_deg": [KBE_RING[0], round(KBE_RING[0] + KBE_RING[1], 6)],
        "dilation_deg": KBE_DILATION,
        "passes": kbe.n_iter,
        "converged": kbe.converged,
        "cycle": kbe.cycle,
        "excluded_pixels": _excluded(kbe["exclusion"]),
        "mean_background": round(float(background.mean()), 4),
        "true_background": round(float(truth.mean()), 4),
        "mean_relative_error": round(float(np.mean(np.abs(background - truth) / truth)), 4),
        "mean_bias": round(float(np.mean(background / truth - 1.0)), 4),
    }


def _summary(geom, catalog, masks, sqrt_ts, backend, host_copies, elapsed, paths) -> dict:
    truth = true_background(geom)
    n_excluded = _excluded(masks["regions"])
    amplitude, sigma = DEMO_RIDGE
    summary = {
        "backend": backend,
        "geometry": {"npix": list(geom.npix), "binsz_deg": 0.02, "frame": geom.frame, "proj": geom.projection},
        "background_model": {
            "counts_per_pixel": f"{DEMO_BACKGROUND:g} * (1 + {amplitude:g} * exp(-b^2 / (2 * {sigma:g}^2)))",
            "min": round(float(truth.min()), 4),
            "max": round(float(truth.max()), 4),
            "mean": round(float(truth.mean()), 4),
            "seed": DEMO_SEED,
        },
        "regions": DEMO_REGIONS.splitlines(),
        "excluded_pixels": n_excluded,
        "excluded_fraction": n_excluded / truth.size,
        "catalog": _catalog_summary(geom, catalog, masks["catalog"], sqrt_ts),
        "significance": {
            "correlation_radius_deg": CORRELATION_RADIUS,
            "threshold": THRESHOLD,
            "hysteresis_low": HYSTERESIS_LOW,
            "dilation_deg": DILATION,
            "peak_sqrt_ts": round(float(np.nanmax(sqrt_ts)), 3),
            "excluded_pixels": _excluded(masks["significance"]),
        },
        "combined_excluded_pixels": _excluded(masks["combined"]),
        "kernel_background": _kbe_summary(masks["kbe"], truth),
        "host_copies_before_writing": host_copies,
        "seconds": round(elapsed, 4),
    }
    summary.update({key: str(path) for key, path in paths.items()})
    return summary
