"""Foundation benchmarks: gpumask (numpy, cupy) vs gammapy 2.1 on the same machine.

Cases: per-pixel sky coordinates, pixel solid angles, and writing and reading a
boolean mask, on the map sizes later issues use (250x250, 2000x2000, 18000x500
Galactic plane at 0.02 deg, 3600x1800 all-sky).

    python benchmarks/bench_foundation.py [--quick] [--out benchmarks/results/foundation.md]

Each cell is the best of several runs, after a warm-up. Absolute times are noise on
shared machines, so compare the ratios (gammapy / gpumask).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from _harness import _sync, backends, gpu_name, machine_line, measure, write_report

import gpumask

GEOMS = {
    "250x250 CAR": dict(npix=(250, 250), binsz=0.02, frame="galactic", skydir=(184.56, -5.78)),
    "2000x2000 CAR": dict(npix=(2000, 2000), binsz=0.02, frame="galactic", skydir=(0, 0)),
    "18000x500 CAR": dict(npix=(18000, 500), binsz=0.02, frame="galactic", skydir=(0, 0)),
    "3600x1800 AIT all-sky": dict(npix=(3600, 1800), binsz=0.1, frame="galactic", proj="AIT"),
    "2000x2000 TAN dec 60": dict(npix=(2000, 2000), binsz=0.01, frame="icrs", skydir=(30, 60), proj="TAN"),
}


def best_of(func, repeat, sync=None):
    """Best (minimum) of ``repeat`` timed calls of ``func`` after an untimed warm-up call."""
    return measure(func, sync, target=0.0, max_repeat=repeat, min_repeat=repeat)[0]["best"]


def run(quick=False):
    from gammapy.maps import Map as GMap
    from gammapy.maps import WcsGeom as GGeom

    repeat = 2 if quick else 3
    geoms = dict(list(GEOMS.items())[:2]) if quick else GEOMS
    rows = []
    for label, kwargs in geoms.items():
        # -- pixel-centre sky coordinates
        cells = {}
        for be in backends()[0]:
            def ours(be=be):
                gpumask.WcsGeom.create(**kwargs).get_coord(backend=be)
            cells[be] = best_of(ours, repeat, _sync(be))
        cells["gammapy"] = best_of(lambda: GGeom.create(**kwargs).get_coord(), repeat)
        rows.append(("sky coords of every pixel", label, cells))

        # -- solid angle
        cells = {}
        for be in backends()[0]:
            cells[be] = best_of(lambda be=be: gpumask.WcsGeom.create(**kwargs).solid_angle(backend=be), repeat, _sync(be))
        if quick or label != "18000x500 CAR":
            cells["gammapy"] = best_of(lambda: GGeom.create(**kwargs).solid_angle(), 1 if not quick else repeat)
        rows.append(("solid angle", label, cells))

        # -- write and read a boolean mask
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            geom = gpumask.WcsGeom.create(**kwargs)
            rng = np.random.default_rng(1)
            data = rng.random(geom.data_shape) > 0.1
            cells = {}
            for be in backends()[0]:
                m = gpumask.Map.from_geom(geom, data=data, backend=be)
                cells[be] = best_of(lambda m=m: m.write(tmp / f"g-{be}.fits", overwrite=True), repeat)
            gm = GMap.from_geom(GGeom.create(**kwargs), data=data)
            cells["gammapy"] = best_of(lambda: gm.write(tmp / "gp.fits", overwrite=True), repeat)
            rows.append(("write bool mask", label, cells))
            cells = {}
            for be in backends()[0]:
                cells[be] = best_of(lambda be=be: gpumask.read_map(tmp / f"g-{be}.fits", backend=be), repeat, _sync(be))
            cells["gammapy"] = best_of(lambda: GMap.read(tmp / "gp.fits", hdu="PRIMARY"), repeat)
            rows.append(("read mask", label, cells))
            size_ours = (tmp / "g-numpy.fits").stat().st_size
            size_gp = (tmp / "gp.fits").stat().st_size
            rows.append(("file size (MB)", label, {"numpy": size_ours / 1e6, "gammapy": size_gp / 1e6, "_size": True}))
    return rows


def to_markdown(rows):
    cols = backends()[0]
    header = "| case | map | " + " | ".join(f"gpumask {c} (s)" for c in cols) + " | gammapy 2.1 (s) | " + " | ".join(
        f"ratio gammapy/{c}" for c in cols
    ) + " |"
    lines = [header, "|" + "---|" * (3 + 2 * len(cols))]
    for case, label, cells in rows:
        if cells.get("_size"):
            lines.append(
                f"| {case} | {label} | {cells['numpy']:.2f} | " + " | ".join("" for _ in cols[1:])
                + f"{cells['gammapy']:.2f} | {cells['gammapy'] / cells['numpy']:.1f}x smaller |"
                + " |" * (len(cols) - 1)
            )
            continue
        ours = " | ".join(f"{cells[c]:.4f}" for c in cols)
        gp = cells.get("gammapy")
        gp_txt = f"{gp:.4f}" if gp is not None else "skipped"
        ratios = " | ".join(f"{gp / cells[c]:.1f}" if gp is not None else "-" for c in cols)
        lines.append(f"| {case} | {label} | {ours} | {gp_txt} | {ratios} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two small maps only")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "foundation.md"))
    args = parser.parse_args()
    rows = run(quick=args.quick)
    import gammapy

    env = machine_line(gpu_name(), {"gammapy": gammapy.__version__})
    head = f"# gpumask foundation benchmarks\n\n{env}\n\n"
    text = head + to_markdown(rows) + "\n"
    write_report(args.out, text)


if __name__ == "__main__":
    main()
