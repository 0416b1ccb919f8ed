"""``gpumask demo``: the main job on the built-in example (README's first command).

Simulates a field around the Crab with the catalogued sources in it, builds the
region, catalog, significance and combined exclusion masks, runs the kernel
background estimator, writes FITS files, a matplotlib figure (preview.png) and a
JSON summary, and prints where they are (see :mod:`gpumask.cli._demo`).
"""

from __future__ import annotations

import sys


def add_parser(sub):
    p = sub.add_parser(
        "demo",
        help="simulate a field around the Crab, build its exclusion masks and run the KBE",
        description=(
            "Simulate the Gammapy tutorial's field around the Crab (5 deg, 0.02 deg, galactic) "
            "with the catalogued sources in it, build the region, catalog, significance and "
            "combined exclusion masks, run the kernel background estimator, and write FITS "
            "files, preview.png and summary.json to --out."
        ),
    )
    p.add_argument("--out", default="gpumask-demo", help="output directory (default: ./gpumask-demo)")
    p.add_argument("--backend", default=None, help="numpy | cupy | auto")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    return p


def run(args) -> int:
    from ..backend import BackendError  # noqa: PLC0415
    from ..info import info  # noqa: PLC0415
    from ._demo import run_demo  # noqa: PLC0415

    try:
        print(info(backend=args.backend))
        print()
        summary = run_demo(args.out, backend=args.backend, overwrite=args.overwrite)
    except (BackendError, FileExistsError, FileNotFoundError, ValueError) as exc:
        print(f"gpumask: error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(report(summary)))
    return 0


def report(summary) -> list[str]:
    """The lines ``gpumask demo`` prints: the figures, then one line per file."""
    from ._demo import OUTPUTS  # noqa: PLC0415

    sig = summary["significance"]
    cat = summary["catalog"]
    kbe = summary["kernel_background"]
    bkg = summary["background_model"]
    nx, ny = summary["geometry"]["npix"]
    lines = [
        (f"Exclusion masks ({nx}x{ny} px, backend {summary['backend']}) built in {summary['seconds']:.3f} s, "
        f"{summary['host_copies_before_writing']} host copies before writing"),
        (f"  field        : Poisson counts on a smooth background, {bkg['counts_per_pixel']} = "
        f"{bkg['min']:.2f} to {bkg['max']:.2f} counts/px"),
        f"  sources      : {cat['file']}, {len(cat['sources'])} sources:",
    ]
    for src in cat["sources"]:
        size = "point-like" if src["size_deg"] == 0 else f"sigma {src['size_deg']:g} deg"
        lines.append(
            f"    {src['name']:<18} {src['counts']:>5.0f} counts, {size}: sqrt_ts {src['sqrt_ts_at_position']:5.1f}, "
            f"catalog radius {src['radius_deg']:.3f} deg"
        )
    lines += [
        f"  regions      : {'; '.join(summary['regions'])}: {summary['excluded_pixels']} px excluded",
        f"  catalog      : default radius rule (psf {cat['psf_deg']:g} deg): {cat['excluded_pixels']} px excluded",
        (f"  significance : r = {sig['correlation_radius_deg']} deg, peak sqrt_ts {sig['peak_sqrt_ts']:.1f}, "
        f">= {sig['threshold']:g} grown to >= {sig['hysteresis_low']:g}, dilated {sig['dilation_deg']} deg: "
        f"{sig['excluded_pixels']} px excluded"),
        f"  combined     : {summary['combined_excluded_pixels']} px excluded",
        (f"  KBE          : disk {kbe['source_radius_deg']} deg, ring {kbe['ring_deg'][0]}-{kbe['ring_deg'][1]} deg, "
        f"{'converged' if kbe['converged'] else 'stopped'} after {kbe['passes']} passes: "
        f"{kbe['excluded_pixels']} px excluded"),
        (f"                 background mean {kbe['mean_background']:.4f} (true {kbe['true_background']:.4f}), "
        f"mean relative error {100 * kbe['mean_relative_error']:.1f}%"),
        "Files (FITS masks: True = usable; gammapy.maps.Map.read or ds9):",
    ]
    width = max(len(summary[key]) for key in OUTPUTS)
    lines += [f"  {summary[key]:<{width}}  {text}" for key, (_, text) in OUTPUTS.items()]
    return lines
