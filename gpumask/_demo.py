"""The built-in example behind ``python -m gpumask demo``.

It runs the Gammapy tutorial "Creating exclusion masks" on its geometry (Crab,
5 deg, 0.02 deg, galactic), on the selected backend:

1. the tutorial's two ds9 regions are rasterised by ``WcsGeom.region_mask``
   (exact spherical geometry, ``method="sky"``) -> ``exclusion_mask.fits``;
2. a seeded simulated counts map (flat background, the Crab and two fainter
   sources) goes through ``ExcessMapEstimator("0.4 deg")`` and the significance
   mask with hysteresis (``sqrt_ts >= 5`` seeds, grown to ``>= 3``), dilated by
   0.1 deg -> ``significance_mask.fits``;
3. both combined (a pixel is usable when both say so) -> ``combined_mask.fits``;
4. the iterative ``KernelBackgroundEstimator`` (0.1 deg disk, 0.4-0.7 deg ring) on
   the same counts, without the known background -> ``kbe_exclusion_mask.fits`` and
   ``kbe_background.fits``.

Nothing is copied to the host before the FITS files are written.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from astropy.coordinates import SkyCoord

from .backend import count_transfers, resolve_backend
from .datasets import MapDataset
from .estimators import ExcessMapEstimator
from .geom import WcsGeom
from .kernel_background import KernelBackgroundEstimator
from .maps import Map
from .morphology import exclusion_from_significance

DEMO_REGIONS = "galactic;box(185,-4,1.0,0.5,45)\nicrs;circle(83.633083,22.0145,0.3)"
# simulated sources: (l, b) in deg, counts, Gaussian sigma in deg
DEMO_SOURCES = ((184.557, -5.784, 3000.0, 0.05), (185.6, -4.9, 400.0, 0.15), (183.4, -6.6, 150.0, 0.1))
DEMO_BACKGROUND = 0.5  # counts per pixel


def simulated_dataset(geom, backend, seed=0) -> MapDataset:
    """Seeded counts = Poisson(flat background + Gaussian sources) on ``geom``."""
    rng = np.random.default_rng(seed)
    ny, nx = geom.data_shape
    lon, lat = geom.get_coord(backend="numpy")
    expected = np.full((ny, nx), DEMO_BACKGROUND)
    for l0, b0, n_src, sigma in DEMO_SOURCES:
        d2 = ((lon - l0) * np.cos(np.radians(b0))) ** 2 + (lat - b0) ** 2
        pixel_sr = (0.02 / sigma) ** 2 / (2 * np.pi)
        expected += n_src * pixel_sr * np.exp(-0.5 * d2 / sigma**2)
    counts = rng.poisson(expected).astype(np.float32)
    background = np.full((ny, nx), DEMO_BACKGROUND)
    return MapDataset(
        Map.from_geom(geom, data=counts, backend=backend),
        background=Map.from_geom(geom, data=background, backend=backend),
        name="demo",
    )


def run_demo(out_dir, backend=None, overwrite=False) -> dict:
    """Build the tutorial's region, significance and combined exclusion masks and
    write them to ``out_dir`` with ``summary.json``."""
    be = resolve_backend(backend)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / "exclusion_mask.fits"
    summary_path = out / "summary.json"
    names = ("significance_mask", "combined_mask", "kbe_exclusion_mask", "kbe_background")
    outputs = {name: out / f"{name}.fits" for name in names}
    for path in (target, summary_path, *outputs.values()):
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass --overwrite or choose another --out")

    t0 = time.perf_counter()
    position = SkyCoord(83.633083, 22.0145, unit="deg", frame="icrs")
    geom = WcsGeom.create(skydir=position, width="5 deg", binsz=0.02, frame="galactic")
    dataset = simulated_dataset(geom, be.name)
    with count_transfers() as transfers:
        # False = excluded, gammapy's convention
        mask = geom.region_mask(DEMO_REGIONS, inside=False, backend=be)
        sqrt_ts = ExcessMapEstimator("0.4 deg").run(dataset)["sqrt_ts"]
        significance = exclusion_from_significance(sqrt_ts, 5.0, low=3.0, nan="keep")
        significance = significance.binary_erode("0.1 deg")  # grow the excluded pixels
        combined = mask & significance
        kbe = KernelBackgroundEstimator("0.1 deg", ("0.4 deg", "0.3 deg"), mask_dilation_radius="0.04 deg")
        kbe_result = kbe.run({"counts": dataset.counts})
    elapsed = time.perf_counter() - t0
    mask.write(target, overwrite=overwrite)
    significance.write(outputs["significance_mask"], overwrite=overwrite)
    combined.write(outputs["combined_mask"], overwrite=overwrite)
    kbe_result["exclusion"].write(outputs["kbe_exclusion_mask"], overwrite=overwrite)
    kbe_result["background"].write(outputs["kbe_background"], overwrite=overwrite)

    def excluded(m):
        host = m.to_numpy()
        return int(host.size - host.sum())

    n_excluded = excluded(mask)
    summary = {
        "backend": be.name,
        "geometry": {"npix": list(geom.npix), "binsz_deg": 0.02, "frame": geom.frame, "proj": geom.projection},
        "regions": DEMO_REGIONS.splitlines(),
        "excluded_pixels": n_excluded,
        "excluded_fraction": n_excluded / mask.data.size,
        "significance": {
            "correlation_radius_deg": 0.4,
            "threshold": 5.0,
            "hysteresis_low": 3.0,
            "dilation_deg": 0.1,
            "peak_sqrt_ts": round(float(np.nanmax(sqrt_ts.to_numpy())), 3),
            "excluded_pixels": excluded(significance),
        },
        "combined_excluded_pixels": excluded(combined),
        "kernel_background": {
            "source_radius_deg": 0.1,
            "ring_deg": [0.4, 0.7],
            "passes": kbe_result.n_iter,
            "converged": kbe_result.converged,
            "excluded_pixels": excluded(kbe_result["exclusion"]),
            "mean_background": round(float(kbe_result["background"].to_numpy().mean()), 4),
            "true_background": DEMO_BACKGROUND,
        },
        "host_copies_before_writing": transfers.calls,
        "seconds": round(elapsed, 4),
        "mask_file": str(target),
        "significance_mask_file": str(outputs["significance_mask"]),
        "combined_mask_file": str(outputs["combined_mask"]),
        "kbe_exclusion_mask_file": str(outputs["kbe_exclusion_mask"]),
        "kbe_background_file": str(outputs["kbe_background"]),
    }
    text = json.dumps(summary, indent=2)
    tmp = summary_path.with_suffix(".json.tmp")
    tmp.write_text(text)
    tmp.replace(summary_path)
    return summary
