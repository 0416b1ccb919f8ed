"""``gpumask info``: versions, the backend chosen and why, the GPUs, CUPY_CACHE_DIR."""

from __future__ import annotations

import json
import sys


def add_parser(sub):
    p = sub.add_parser("info", help="versions, the backend chosen and why, the GPU(s)")
    p.add_argument("--backend", default=None, help="numpy | cupy | auto (default: GPUMASK_BACKEND or auto)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


def run(args) -> int:
    from ..backend import BackendError  # noqa: PLC0415
    from ..info import info  # noqa: PLC0415

    try:
        report = info(backend=args.backend)
    except BackendError as exc:
        print(f"gpumask: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(dict(report), indent=2) if args.json else report)
    return 0
