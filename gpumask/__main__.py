"""Command line: ``gpumask info`` and ``gpumask demo`` (also ``python -m gpumask``)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpumask",
        description="Exclusion masks for gamma-ray background estimation, on the GPU.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p_info = sub.add_parser("info", help="versions, the backend chosen and why, the GPU")
    p_info.add_argument("--backend", default=None, help="numpy | cupy | auto (default: GPUMASK_BACKEND or auto)")

    p_demo = sub.add_parser(
        "demo",
        help="build the tutorial's region exclusion mask around the Crab and write it as FITS",
    )
    p_demo.add_argument("--out", default="gpumask-demo", help="output directory (default: ./gpumask-demo)")
    p_demo.add_argument("--backend", default=None, help="numpy | cupy | auto")
    p_demo.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    return parser


def main(argv=None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    command = args.command or "demo"
    from . import info  # noqa: PLC0415 - keep --help fast
    from .backend import BackendError  # noqa: PLC0415

    try:
        if command == "info":
            print(info(backend=args.backend))
            return 0
        from ._demo import run_demo  # noqa: PLC0415

        backend = getattr(args, "backend", None)
        out = getattr(args, "out", "gpumask-demo")
        overwrite = getattr(args, "overwrite", False)
        print(info(backend=backend))
        print()
        summary = run_demo(out, backend=backend, overwrite=overwrite)
    except (BackendError, FileExistsError, FileNotFoundError, ValueError) as exc:
        print(f"gpumask: error: {exc}", file=sys.stderr)
        return 2
    sig = summary["significance"]
    print(
        f"Exclusion masks ({summary['geometry']['npix'][0]}x{summary['geometry']['npix'][1]} px, "
        f"backend {summary['backend']}) built in {summary['seconds']:.3f} s, "
        f"{summary['host_copies_before_writing']} host copies before writing"
    )
    print(f"  regions      : {'; '.join(summary['regions'])}: {summary['excluded_pixels']} px excluded")
    print(
        f"  significance : simulated counts, r = {sig['correlation_radius_deg']} deg, peak sqrt_ts "
        f"{sig['peak_sqrt_ts']:.1f}, >= {sig['threshold']:g} grown to >= {sig['hysteresis_low']:g}, "
        f"dilated {sig['dilation_deg']} deg: {sig['excluded_pixels']} px excluded"
    )
    print(f"  combined     : {summary['combined_excluded_pixels']} px excluded")
    print(f"  masks        : {summary['mask_file']}, {summary['significance_mask_file']},")
    print(f"                 {summary['combined_mask_file']}  (gammapy.maps.Map.read or ds9)")
    print(f"  summary      : {summary['mask_file'].rsplit('/', 1)[0]}/summary.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
