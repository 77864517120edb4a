"""``ferxai aggregate``: pool normalized stacks into global heatmaps (PNG, HDF5, JET PNG)."""

from __future__ import annotations

import argparse
import logging

from ferxai.core.arguments import json_arg
from ferxai.core.errors import ConfigError
from ferxai.heatmaps.heatmap import heatmap_paths, write_heatmap
from ferxai.heatmaps.pooling import pool_stacks

log = logging.getLogger(__name__)


def cli_aggregate_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stacks", nargs="+", help="normalized stacks to pool")
    parser.add_argument("--out-h5", help="heatmap HDF5 (mean, stretched, uint8)")
    parser.add_argument("--out-png", help="grayscale uint8 heatmap PNG")
    parser.add_argument("--out-jet", default=None, help="optional JET-coloured PNG")
    parser.add_argument(
        "--attrs", default="{}", help="JSON object of attributes (network, fold, expression...)"
    )
    parser.add_argument(
        "--plan",
        action="append",
        default=[],
        help='JSON list of {"stacks": [...], "stem": PATH, "attrs": {...}}: several heatmaps '
        "(STEM.png, STEM.h5, STEM_jet.png) in one process, each stack read once (repeatable)",
    )
    parser.add_argument("--chunk", type=int, default=64, help="maps read at a time (memory)")
    # --plan records each heatmap itself, with its own stacks (below)
    parser.set_defaults(
        provenance_inputs=("stacks",), provenance_outputs=("out_h5", "out_png", "out_jet")
    )


def cli_aggregate(args: argparse.Namespace) -> None:
    from ferxai.core import provenance

    if args.chunk < 1:
        raise ConfigError(f"--chunk {args.chunk}: must be at least 1.")
    jobs = [job for plan in args.plan for job in json_arg(plan, "--plan", list)]
    if args.stacks:
        if not (args.out_h5 and args.out_png):
            raise ConfigError("aggregate: --stacks needs --out-h5 and --out-png.")
        attrs = json_arg(args.attrs, "--attrs", dict)
        jobs.append({"stacks": args.stacks, "attrs": attrs,
                     "out": (args.out_h5, args.out_png, args.out_jet)})
    if not jobs:
        raise ConfigError("aggregate: give --stacks (with --out-h5/--out-png) or --plan.")
    cache: dict = {}
    for job in jobs:
        if job.get("out"):
            out_h5, out_png, out_jet = job["out"]
        else:
            out_png, out_h5, out_jet = heatmap_paths(job["stem"])
        heatmap = pool_stacks(job["stacks"], args.chunk, job.get("attrs", {}), cache)
        write_heatmap(heatmap, out_h5, out_png, out_jet)
        if "stem" in job:  # one record per planned heatmap, naming exactly the stacks it pools
            record = provenance.build(job["stacks"], job.get("attrs", {}), {"command": "aggregate"})
            for path in (out_h5, out_png):
                provenance.write_sidecar(path, record)
        if heatmap.empty:
            log.warning("%s: empty heatmap: %s", out_png, heatmap.reason)
        else:
            log.info("%s: pooled %d maps", out_png, heatmap.count)
