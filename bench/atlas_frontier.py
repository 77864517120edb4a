"""How close can one region per AU come to the published Ekman masks? (issue 24)

Prints the IoU of the shipped AU atlas's prototype unions against the published masks of
Gaya-Morey et al. (2024), then the pixel-level frontier: every pixel of the 224 x 275 canvas may
be given any subset of the 13 prototype AUs, which fixes its membership in each expression's
union. Pixels are grouped by which published masks contain them (and, for the restricted runs,
by face zone); a group may be split between AU subsets. The best mean IoU with every expression
>= 0.75 is found by Frank-Wolfe (an LP per step, scipy's HiGHS) from random starts. Restricted
runs forbid AUs in zones where FACS does not move the skin (docs/groundtruth.md).

    python bench/atlas_frontier.py [--reference DIR]   # DIR holds ekman_gt/{Expression}_gt.png
"""

from __future__ import annotations

import argparse
import itertools
import os
from pathlib import Path

import numpy as np
from scipy.optimize import linprog

from ferxai.comparison.au_atlas import atlas_masks, iou, prototype_aus, prototype_masks
from ferxai.comparison.groundtruth import draw_masks, load_masks, load_spec
from ferxai.core.constants import EXPRESSIONS

FLOOR = 0.75


def zone(spec_points: dict, region: dict) -> np.ndarray:
    return draw_masks({"points": spec_points, "expressions": {"z": {"regions": [region]}}})["z"]


def frontier(pub: np.ndarray, gen: dict, zones: list, starts: int = 4, seed: int = 0):
    """Best (IoU per expression) with min >= FLOOR; zones: [(mask, allowed AUs)], first wins."""
    code = (pub.astype(int) * (1 << np.arange(6))[:, None, None]).sum(0)
    zid = np.zeros(code.shape, int)
    for k, (mask, _) in enumerate(zones, 1):
        zid[mask & (zid == 0)] = k
    allowed = [sorted(gen)] + [a for _, a in zones]
    cells = [(z, v, c) for z in range(len(allowed))
             for v, c in zip(*np.unique(code[zid == z], return_counts=True), strict=True)]
    cols = []  # (cell, TP row, FP row)
    for ci, (z, v, _) in enumerate(cells):
        target = np.array([v >> i & 1 for i in range(6)])
        vecs = {tuple(int(any(gen[a][i] for a in s)) for i in range(6))
                for k in range(len(allowed[z]) + 1) for s in itertools.combinations(allowed[z], k)}
        cols += [(ci, target * np.array(w), (1 - target) * np.array(w)) for w in vecs]
    tp = np.array([c[1] for c in cols], float)
    fp = np.array([c[2] for c in cols], float)
    g = pub.reshape(6, -1).sum(1).astype(float)
    a_eq = np.zeros((len(cells), len(cols)))
    for j, c in enumerate(cols):
        a_eq[c[0], j] = 1
    b_eq = np.array([c[2] for c in cells], float)
    a_ub, b_ub = -(tp - FLOOR * fp).T, -FLOOR * g  # IoU >= FLOOR, linear in the allocation

    def lp(c):
        return linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, method="highs").x

    def score(x):
        return (x @ tp) / (g + x @ fp)

    rng, best = np.random.default_rng(seed), None
    for _ in range(starts):
        x = lp(rng.normal(size=len(cols)))
        for _ in range(300):
            d = g + x @ fp
            step = lp(-(tp @ (1 / d) - fp @ ((x @ tp) / d**2))) - x
            gamma = max(np.linspace(0, 1, 201), key=lambda t: score(x + t * step).mean())
            if gamma == 0:
                break
            x = x + gamma * step
        if best is None or score(x).mean() > score(best).mean():
            best = x
    return score(best)


def show(label: str, scores) -> None:
    cells = " ".join(f"{e[:3]} {s:.3f}" for e, s in zip(EXPRESSIONS, scores, strict=True))
    print(f"{label:58s} {cells} | mean {np.mean(scores):.3f} min {np.min(scores):.3f}")


def main() -> None:
    default = os.environ.get("FERXAI_REFERENCE_DIR") or Path(__file__).resolve().parents[2] / (
        "shared/reference/gaya-morey-2024")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=Path(default))
    args = parser.parse_args()
    published = load_masks(args.reference / "ekman_gt")
    pub = np.stack([published[e] for e in EXPRESSIONS])
    unions = prototype_masks(atlas_masks())
    show("shipped atlas", [iou(unions[e], pub[i]) for i, e in enumerate(EXPRESSIONS)])

    proto = prototype_aus()
    gen = {a: tuple(int(a in proto[e]) for e in EXPRESSIONS) for a in {a for v in proto.values()
                                                                       for a in v}}
    pts = dict(load_spec()["points"])
    forehead = zone(pts, {"polygons": [[19, 20, 21, 22, 23, 24, 25, 26, "top_26", "top_19"]]})
    temples = zone(pts, {"triangles": [
        [1, 37, 19], [1, 37, "below_37"], [1, 19, "temple_1_86"], [18, 19, 37],
        [17, 46, 26], [17, 46, "below_46"], [17, 26, "temple_17_88"], [27, 26, 46]]})
    philtrum = zone(pts, {"strips": [[33, 32, 51, 50], [33, 34, 51, 52], [35, 34, 53, 52],
                                     [35, 36, 53, 54]]})
    no_26 = [9, 12, 15, 16, 23]
    runs = [
        ("pixel optimum, any AUs anywhere", []),
        ("forehead {1,2,4}, temples {4,6}, philtrum without AU26",
         [(forehead, [1, 2, 4]), (temples, [4, 6]), (philtrum, no_26)]),
        ("  ... and AU5 allowed on the forehead",
         [(forehead, [1, 2, 4, 5]), (temples, [4, 6]), (philtrum, no_26)]),
        ("  ... and AU15 allowed on the temples",
         [(forehead, [1, 2, 4]), (temples, [4, 6, 15]), (philtrum, no_26)]),
    ]
    for label, zones in runs:
        show(label, frontier(pub, gen, zones))


if __name__ == "__main__":
    main()
