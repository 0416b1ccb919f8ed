"""``gpumask explain MASK.fits``: why the pixels of a mask file are excluded.

Reads a mask written with its provenance (``explain=True``, or a batch run with
``explain: true``: the EXPLAIN_* HDUs) and prints the components sorted by
excluded area; ``--at LON LAT`` names the components excluding a position,
``--region`` those excluding pixels inside a region, ``--ds9 OUT.reg`` writes
the components as a ds9 region file with their names, ``--json`` prints the same
as JSON for scripts.
"""

from __future__ import annotations

import json
import math
import sys

_FRAMES = ("icrs", "galactic")


def add_parser(sub):
    """Add the ``explain`` sub-command to ``sub`` (an argparse sub-parsers object).

    Parameters
    ----------
    sub : argparse._SubParsersAction

    Returns
    -------
    argparse.ArgumentParser

    Examples
    --------
    >>> import argparse
    >>> add_parser(argparse.ArgumentParser().add_subparsers()).prog  # doctest: +ELLIPSIS
    '... explain'
    """
    p = sub.add_parser(
        "explain", help="why the pixels of a mask file are excluded",
        description="Print the components (catalog sources, regions, significance blobs, dilation rings) "
        "that exclude the pixels of MASK, a FITS mask written with its provenance (explain=True), "
        "largest excluded area first; with --at, those excluding a position; with --region, those "
        "excluding pixels inside a region.")
    p.add_argument("mask", help="FITS mask file with EXPLAIN_LABEL, EXPLAIN_LABEL2 and EXPLAIN_COMPONENTS HDUs")
    p.add_argument("--at", nargs=2, action="append", metavar=("LON", "LAT"), default=[],
                   help="a position in degrees (repeatable)")
    p.add_argument("--frame", default="icrs", help="frame of --at: icrs (default) or galactic")
    p.add_argument("--region", action="append", default=[],
                   help="a ds9 region string or region file: the components excluding pixels inside it (repeatable)")
    p.add_argument("--top", type=int, default=20, help="rows of the summary (default 20; 0: all)")
    p.add_argument("--kind", help="only components of this kind (catalog source, region, significance blob, "
                   "dilation ring, mask)")
    p.add_argument("--ds9", metavar="OUT.reg", help="write the components as a ds9 region file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --ds9 file")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    return p


def _rows(table, columns):
    out = []
    for r in table:
        row = {}
        for c in columns:
            v = r[c]
            v = v.value if hasattr(v, "unit") and hasattr(v, "value") else v
            if isinstance(v, (bytes, str)) or getattr(v, "dtype", None) is not None and v.dtype.kind in "US":
                row[c] = str(v)
            elif isinstance(v, float) or getattr(v, "dtype", None) is not None and v.dtype.kind == "f":
                v = float(v)
                row[c] = None if math.isnan(v) else v
            else:
                row[c] = int(v)
        out.append(row)
    return out


_COLS = ("index", "kind", "name", "rule", "npix", "npix_alone", "solid_angle")


def _print_table(rows, extra=()):
    if not rows:
        print("  (none)")
        return
    cols = list(_COLS) + list(extra)
    text = [[("" if r.get(c) is None else f"{r[c]:.4g}" if isinstance(r.get(c), float) else str(r[c]))
             for c in cols] for r in rows]
    head = [c if c != "solid_angle" else "deg2" for c in cols]
    width = [min(max(len(h), *(len(t[i]) for t in text)), 60) for i, h in enumerate(head)]
    print("  " + "  ".join(h.ljust(w) for h, w in zip(head, width)))
    for t in text:
        print("  " + "  ".join(v[:60].ljust(w) for v, w in zip(t, width)))


def _position(lon, lat, frame):
    from astropy.coordinates import SkyCoord  # noqa: PLC0415

    try:
        lon, lat = float(lon), float(lat)
    except ValueError:
        raise ValueError(f"--at takes two numbers (degrees), got {lon!r} {lat!r}") from None
    if not (math.isfinite(lon) and math.isfinite(lat) and -90 <= lat <= 90):
        raise ValueError(f"--at {lon} {lat}: longitude must be finite and latitude within [-90, 90]")
    return SkyCoord(lon, lat, unit="deg", frame=frame)


def run(args) -> int:
    """Run ``gpumask explain`` with parsed ``args``; the exit status.

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    int
        0, or 2 for problems of the inputs or options (a file without provenance,
        a position off the map, an existing ``--ds9`` file).

    Examples
    --------
    >>> import gpumask.cli
    >>> gpumask.cli.main(["explain", "mask.fits", "--at", "83.63", "22.01"])  # doctest: +SKIP
    0
    """
    from .._utils import expand_user  # noqa: PLC0415
    from ..sky.io import FitsReadError, atomic_write_bytes, read_map  # noqa: PLC0415

    try:
        if args.frame not in _FRAMES:
            raise ValueError(f"--frame {args.frame!r} is not accepted; choose one of {', '.join(_FRAMES)}")
        if args.top < 0:
            raise ValueError(f"--top must be 0 or more, got {args.top}")
        positions = [_position(lon, lat, args.frame) for lon, lat in args.at]
        target = None
        if args.ds9:
            target = expand_user(args.ds9)
            if target.exists() and not args.overwrite:
                raise FileExistsError(f"--ds9 {target} exists; add --overwrite to replace it")
        mask = read_map(args.mask, backend="numpy")
        prov = mask.provenance
        if prov is None:
            raise ValueError(f"{args.mask} holds no provenance (no EXPLAIN_* HDUs): build the mask with "
                             "explain=True (or a batch with explain: true) and write it again")
        summary = prov.summary(top=args.top or None, kind=args.kind)
        excluded = int((~mask.data).sum())
        kinds = {}
        for k in prov.components["kind"]:
            kinds[str(k)] = kinds.get(str(k), 0) + 1
        report = {
            "file": str(args.mask), "shape": list(mask.geom.data_shape), "frame": mask.geom.frame,
            "excluded_pixels": excluded, "excluded_fraction": excluded / mask.data.size,
            "components": prov.n_components, "kinds": kinds,
            "summary": _rows(summary, _COLS),
        }
        at = []
        for pos in positions:
            rows = prov.explain(pos)
            ix, iy = rows.meta["pixel"]
            at.append({"lon": float(pos.spherical.lon.deg), "lat": float(pos.spherical.lat.deg),
                       "frame": args.frame, "pixel": [int(ix), int(iy)],
                       "excluded": bool(not mask.data[(0,) * (mask.data.ndim - 2) + (iy, ix)]),
                       "components": _rows(rows, _COLS)})
        inside = []
        for region in args.region:
            rmask = mask.geom.to_image().region_mask(region, backend="numpy")
            rows = prov.explain_region(rmask)
            inside.append({"region": region, "pixels": int(rmask.data.sum()),
                           "components": _rows(rows, _COLS + ("npix_in_region",))})
        if at:
            report["at"] = at
        if inside:
            report["regions"] = inside
        if target is not None:
            atomic_write_bytes(target, prov.to_ds9().encode(), overwrite=args.overwrite)
            report["ds9"] = str(target)
    except (FitsReadError, FileNotFoundError, FileExistsError, OSError, ValueError, TypeError) as exc:
        print(f"gpumask: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{report['file']}: {' x '.join(str(v) for v in report['shape'][::-1])} px ({report['frame']}), "
          f"{excluded} excluded ({100 * report['excluded_fraction']:.2f} %), {prov.n_components} components: "
          + ", ".join(f"{v} {k}" for k, v in kinds.items()))
    print(f"\ncomponents by excluded area{'' if not args.kind else f' ({args.kind})'}:")
    _print_table(report["summary"])
    for item in at:
        state = "excluded" if item["excluded"] else "usable"
        print(f"\nat ({item['lon']:.4f}, {item['lat']:.4f}) {item['frame']}: pixel {tuple(item['pixel'])}, {state}")
        _print_table(item["components"])
    for item in inside:
        print(f"\ninside {item['region']} ({item['pixels']} px):")
        _print_table(item["components"], ("npix_in_region",))
    if target is not None:
        print(f"\nds9 regions: {target}")
    return 0
