"""``gpumask examples DIR [--n N]``: simulated fields to try ``gpumask batch`` without
data (:func:`gpumask.batch.write_example_fields`)."""

from __future__ import annotations

import sys
from pathlib import Path

#: What the command writes in DIR (refused when present, without --overwrite).
WRITES = ("config.yaml", "fields.csv", "catalog.ecsv", "inputs")


def add_parser(sub):
    p = sub.add_parser(
        "examples",
        help="write simulated fields, a config and a field list to try gpumask batch",
        description="Write N simulated fields (counts and background maps along the galactic plane), "
        "a catalog of their sources, a mask config (DIR/config.yaml, outputs to DIR/out) and a field "
        "list (DIR/fields.csv), then run them with: gpumask batch DIR/fields.csv --config DIR/config.yaml. "
        "The same as gpumask.batch.write_example_fields(DIR, n=N) in Python.",
    )
    p.add_argument("folder", metavar="DIR", help="folder to write to (created if missing)")
    p.add_argument("--n", type=int, default=20, metavar="N", help="number of fields (default 20)")
    p.add_argument("--npix", type=int, default=250, metavar="NPIX", help="pixels per side (default 250)")
    p.add_argument("--binsz", type=float, default=0.02, metavar="DEG", help="pixel size in deg (default 0.02)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace example files already in DIR")
    return p


def run(args) -> int:
    from ..batch.examples import write_example_fields  # noqa: PLC0415

    folder = Path(args.folder).expanduser()
    try:
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(f"{folder} is a file; give a folder")
        present = [name for name in WRITES if (folder / name).exists()]
        if present and not args.overwrite:
            raise FileExistsError(f"{folder} already holds {', '.join(present)}; give another folder or "
                                  "pass --overwrite")
        config, fields = write_example_fields(folder, n=args.n, npix=args.npix, binsz=args.binsz, seed=args.seed)
    except (OSError, ValueError) as exc:
        print(f"gpumask: error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.n} simulated fields of {args.npix} x {args.npix} px in {folder}")
    print(f"  config    : {config}")
    print(f"  field list: {fields}")
    print(f"next: gpumask batch {fields} --config {config}")
    return 0
