"""Exact permutation test: do the networks' global heatmaps split along a grouping of the networks?

The paper reads its dendrograms as two clusters, networks pre-trained on ImageNet versus networks
trained from scratch. This module tests that reading without the clustering:

- r(a, b) is the Pearson correlation of two global heatmaps' pixel values (OpenCV's
  ``TM_CCOEFF_NORMED`` on equal-size images, the dendrograms' similarity); d = 1 − r.
- T = mean d over pairs of networks from different groups − mean d over pairs from the same group.
- The null distribution is every relabelling of the networks that keeps the group sizes, enumerated
  exactly when there are at most ``max_exact`` of them (12 networks in groups of 4 and 8: 495),
  else ``n_random`` seeded random relabellings. p = share of relabellings with T ≥ T observed, the
  observed one included.
- ``all``: T summed over the expressions, the same relabelling applied to every expression.

Pure computation (numpy), no file I/O. ``ferxai compare`` writes :func:`group_test`'s rows as
``group_test.csv`` (:data:`GROUP_TEST_COLUMNS`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations

import numpy as np

from ferxai.comparison.metrics import pearson_matrix
from ferxai.core.constants import EXPRESSIONS, NETWORKS
from ferxai.core.errors import ConfigError, DataError

log = logging.getLogger(__name__)

GROUP_TEST_COLUMNS: tuple[str, ...] = ("expression", "statistic", "p_value", "permutations")
SCRATCH_GROUP = "from_scratch"
PRETRAINED_GROUP = "pretrained"
MAX_EXACT = 100_000
N_RANDOM = 10_000
# Relabellings whose T equals the observed one up to rounding (e.g. the observed split with two
# equal-size groups swapped, summed in another order) count as "≥ observed".
_TIE_TOLERANCE = 1e-9

__all__ = [
    "GROUP_TEST_COLUMNS",
    "correlation_distances",
    "default_groups",
    "group_statistic",
    "group_statistics",
    "group_test",
    "parse_groups",
    "relabellings",
]


# ---------------------------------------------------------------------------- groups of networks


def parse_groups(specs: Iterable[str], known: Iterable[str] | None = None) -> dict[str, list[str]]:
    """``["NAME=net,net,...", ...]`` (the ``--groups`` values) → ``{NAME: [net, ...]}``.

    ``known``: the valid network names (default: the paper's twelve). Raises :class:`ConfigError`
    for a malformed item, an empty or repeated group name, an unknown network, a network listed
    twice, fewer than two groups, or no group with at least two networks (no within-group pair).
    """
    known_list = list(NETWORKS if known is None else known)
    known_set = set(known_list)
    lowered = {name.lower(): name for name in known_list}
    groups: dict[str, list[str]] = {}
    owner: dict[str, str] = {}
    for spec in specs:
        name, sep, members = str(spec).partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(
                f"--groups {spec!r}: expected NAME=network,network,... "
                "(e.g. --groups scratch=WeiNet,SongNet pretrained=VGG16,VGG19)."
            )
        if name in groups:
            raise ConfigError(
                f"--groups: group {name!r} is given twice. Give each group once, with all its "
                "networks after the '='."
            )
        nets = [net.strip() for net in members.split(",") if net.strip()]
        if not nets:
            raise ConfigError(
                f"--groups {spec!r}: group {name!r} has no networks. "
                "List them after the '=', separated by commas."
            )
        for net in nets:
            if net not in known_set:
                hint = f" Did you mean {lowered[net.lower()]!r}?" if net.lower() in lowered else ""
                raise ConfigError(
                    f"--groups {spec!r}: unknown network {net!r}.{hint} "
                    f"Known networks: {', '.join(known_list)}."
                )
            if net in owner:
                where = "twice in it" if owner[net] == name else f"also in group {owner[net]!r}"
                raise ConfigError(
                    f"--groups: network {net!r} of group {name!r} is {where}. "
                    "Put each network in one group only."
                )
            owner[net] = name
        groups[name] = nets
    if len(groups) < 2:
        raise ConfigError(
            f"--groups: {len(groups)} group(s) given ({', '.join(groups) or 'none'}); the test "
            "compares at least two. Give two or more NAME=network,... items."
        )
    if all(len(nets) < 2 for nets in groups.values()):
        raise ConfigError(
            "--groups: every group has a single network, so there is no pair within a group to "
            "compare with. Put at least two networks in one group."
        )
    return groups


def default_groups(networks: Iterable[str]) -> dict[str, list[str]] | None:
    """The registry's from-scratch / pre-trained split of ``networks`` (the paper's order).

    None when the networks do not include both kinds (nothing to test). Names the registry does
    not know are left out (logged).
    """
    from ferxai.networks import list_models, model_info

    present = set(networks)
    registry = [name for name in list_models() if name in present]
    unknown = sorted(present - set(registry))
    if unknown:
        log.info("group test: %s not in the network registry; left out", ", ".join(unknown))
    scratch = [name for name in registry if not model_info(name).pretrained_default]
    pretrained = [name for name in registry if model_info(name).pretrained_default]
    if not scratch or not pretrained or len(scratch) + len(pretrained) < 3:
        return None
    return {SCRATCH_GROUP: scratch, PRETRAINED_GROUP: pretrained}


# ------------------------------------------------------------------------------------ statistic


def correlation_distances(maps: np.ndarray) -> np.ndarray:
    """d = 1 − Pearson r of the pixel values of every pair of maps (n, H, W) → (n, n).

    Zero diagonal; NaN rows/columns for constant maps (r undefined).
    """
    distances = 1.0 - pearson_matrix(maps)
    np.fill_diagonal(distances, np.where(np.isnan(np.diag(distances)), np.nan, 0.0))
    return distances


def _codes(labels: Sequence) -> tuple[np.ndarray, list]:
    """Group labels (any hashable) → integer codes 0..k−1 in order of first appearance."""
    names = list(dict.fromkeys(labels))
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[label] for label in labels], dtype=np.int64), names


def _pair_counts(sizes: Sequence[int]) -> tuple[int, int]:
    n = int(sum(sizes))
    within = sum(s * (s - 1) // 2 for s in sizes)
    return n * (n - 1) // 2 - within, within


def group_statistics(distance_matrix: np.ndarray, label_matrix: np.ndarray) -> np.ndarray:
    """T of each relabelling: ``label_matrix`` (P, n) integer group codes → (P,) float64.

    All rows must have the same group sizes (they are relabellings of one labelling). Evaluated at
    once: with M the (P, n, k) one-hot memberships, the within-group sum of row p is
    ½ Σ_k M[p,:,k]ᵀ D M[p,:,k].
    """
    dist = np.asarray(distance_matrix, dtype=np.float64)
    labels = np.atleast_2d(np.asarray(label_matrix, dtype=np.int64))
    n = dist.shape[0]
    if dist.shape != (n, n) or labels.shape[1] != n:
        raise DataError(
            f"group test: distance matrix {dist.shape} and labels {labels.shape} do not match; "
            "give an (n, n) matrix and (P, n) labels."
        )
    if not np.isfinite(dist).all():
        raise DataError(
            "group test: the distance matrix has NaN (a constant heatmap: correlation undefined). "
            "Leave constant or empty heatmaps out."
        )
    dist = dist.copy()
    np.fill_diagonal(dist, 0.0)
    k = int(labels.max()) + 1
    sizes = np.bincount(labels[0], minlength=k)
    n_cross, n_within = _pair_counts(sizes.tolist())
    if n_within == 0 or n_cross == 0:
        raise ConfigError(
            f"group test: group sizes {sizes.tolist()} leave no pair within a group or none "
            "across groups. Use at least two groups, one with two or more networks."
        )
    members = (labels[:, :, None] == np.arange(k)).astype(np.float64)  # (P, n, k)
    within = 0.5 * np.einsum("pik,ij,pjk->p", members, dist, members, optimize=True)
    total = dist.sum() / 2.0
    return (total - within) / n_cross - within / n_within


def group_statistic(distance_matrix: np.ndarray, labels: Sequence) -> float:
    """T = mean d across groups − mean d within groups, for one labelling of the n networks.

    ``distance_matrix``: (n, n) d = 1 − r (only the off-diagonal entries are used);
    ``labels``: the group of each network (any hashable values).
    """
    codes, _ = _codes(list(labels))
    return float(group_statistics(distance_matrix, codes[None])[0])


def _n_relabellings(sizes: Sequence[int]) -> int:
    count, left = 1, int(sum(sizes))
    for size in sizes:
        count *= math.comb(left, size)
        left -= size
    return count


def _enumerate(sizes: Sequence[int]) -> np.ndarray:
    """Every assignment of codes 0..k−1 to n positions with the given group sizes, (P, n)."""
    n = int(sum(sizes))
    rows: list[np.ndarray] = []

    def fill(row: np.ndarray, free: tuple[int, ...], group: int) -> None:
        if group == len(sizes) - 1:
            out = row.copy()
            out[list(free)] = group
            rows.append(out)
            return
        for chosen in combinations(free, sizes[group]):
            row[list(chosen)] = group
            chosen_set = set(chosen)
            fill(row, tuple(i for i in free if i not in chosen_set), group + 1)

    fill(np.full(n, -1, np.int64), tuple(range(n)), 0)
    return np.stack(rows)


def relabellings(
    codes: Sequence[int],
    max_exact: int = MAX_EXACT,
    n_random: int = N_RANDOM,
    seed: int = 0,
) -> tuple[np.ndarray, bool]:
    """The null's relabellings of ``codes`` (n,) → ((P, n) codes, exact).

    Exact: every assignment keeping the group sizes (the observed one among them) when there are at
    most ``max_exact``. Otherwise the observed labelling (row 0) followed by ``n_random`` random
    permutations of it from ``numpy.random.default_rng(seed)``.
    """
    codes = np.asarray(codes, dtype=np.int64)
    sizes = np.bincount(codes).tolist()
    if _n_relabellings(sizes) <= max_exact:
        return _enumerate(sizes), True
    if n_random < 1:
        raise ConfigError(f"group test: n_random={n_random}; give at least 1 random relabelling.")
    rng = np.random.default_rng(seed)
    drawn = rng.permuted(np.tile(codes, (n_random, 1)), axis=1)
    return np.vstack([codes[None], drawn]), False


def _p_value(null: np.ndarray, observed: float) -> float:
    """Share of the null (the observed relabelling included) with T ≥ observed (ties counted)."""
    tolerance = _TIE_TOLERANCE * max(1.0, abs(observed))
    return float(np.count_nonzero(null >= observed - tolerance) / null.size)


# ------------------------------------------------------------------------------------ the test


def _usable(
    maps: Mapping[str, np.ndarray], networks: Sequence[str], expression: str
) -> tuple[list[str], np.ndarray]:
    """The networks with a non-constant map for ``expression`` and their distance matrix."""
    present = [net for net in networks if net in maps]
    missing = [net for net in networks if net not in maps]
    if missing:
        log.warning("group test, %s: no heatmap for %s; left out", expression, ", ".join(missing))
    if not present:
        return [], np.zeros((0, 0))
    shapes = {np.shape(maps[net]) for net in present}
    if len(shapes) != 1:
        raise DataError(
            f"group test, {expression}: heatmaps of different shapes {sorted(shapes)}; the "
            "correlation needs equal-size maps. Give heatmaps of one canvas."
        )
    dist = correlation_distances(np.stack([np.asarray(maps[net]) for net in present]))
    constant = np.isnan(np.diag(dist))
    if constant.any():
        log.warning(
            "group test, %s: constant heatmap (correlation undefined) for %s; left out",
            expression,
            ", ".join(net for net, c in zip(present, constant, strict=True) if c),
        )
        keep = ~constant
        present = [net for net, k in zip(present, keep, strict=True) if k]
        dist = dist[np.ix_(keep, keep)]
    return present, dist


def _testable(nets: Sequence[str], group_of: Mapping[str, str]) -> bool:
    sizes = [sum(group_of[n] == g for n in nets) for g in dict.fromkeys(group_of.values())]
    sizes = [s for s in sizes if s]
    n_cross, n_within = _pair_counts(sizes)
    return len(sizes) >= 2 and n_within > 0 and n_cross > 0


def _nan_row(expression: str) -> dict:
    nan = float("nan")
    return {"expression": expression, "statistic": nan, "p_value": nan, "permutations": 0}


def group_test(
    maps_by_expression: Mapping[str, Mapping[str, np.ndarray]],
    groups: Mapping[str, Sequence[str]],
    seed: int = 0,
    max_exact: int = MAX_EXACT,
    n_random: int = N_RANDOM,
) -> list[dict]:
    """The permutation test of ``groups`` on each expression's heatmaps, and on all of them.

    ``maps_by_expression``: ``{expression: {network: 2-D heatmap}}`` (the uint8 global heatmaps,
    as the dendrograms use). ``groups``: ``{group name: [network, ...]}`` (:func:`default_groups`
    or :func:`parse_groups`); networks in no group are not tested. Networks without a heatmap or
    with a constant one for an expression are left out of it (logged), and out of ``all``, which
    uses the networks usable in every expression.

    Returns rows ``{expression, statistic, p_value, permutations}`` in :data:`EXPRESSIONS` order
    (expressions present in ``maps_by_expression``), then ``all``. ``permutations`` is the number
    of relabellings p is a share of (exact: all of them; random: ``n_random`` + the observed).
    A test left without a within-group or an across-group pair gives NaN and 0 permutations.
    """
    group_of: dict[str, str] = {}
    for name, members in groups.items():
        for net in members:
            if net in group_of:
                raise ConfigError(
                    f"groups: network {net!r} is in {group_of[net]!r} and {name!r}. "
                    "Put each network in one group only."
                )
            group_of[net] = name
    unknown = sorted(set(maps_by_expression) - set(EXPRESSIONS))
    if unknown:
        raise DataError(
            f"group test: unknown expression(s) {unknown}; expected names from {EXPRESSIONS}."
        )
    networks = list(group_of)
    expressions = [e for e in EXPRESSIONS if e in maps_by_expression]
    usable = {e: _usable(maps_by_expression[e], networks, e) for e in expressions}

    def run(nets: Sequence[str], dists: Sequence[np.ndarray]) -> tuple[float, float, int]:
        codes, _ = _codes([group_of[n] for n in nets])
        labels, _exact = relabellings(codes, max_exact, n_random, seed)
        null = sum(group_statistics(d, labels) for d in dists)
        observed = float(sum(group_statistics(d, codes[None])[0] for d in dists))
        return observed, _p_value(null, observed), int(labels.shape[0])

    rows = []
    for expr in expressions:
        nets, dist = usable[expr]
        if not _testable(nets, group_of):
            log.warning("group test, %s: too few networks per group left; NaN", expr)
            rows.append(_nan_row(expr))
            continue
        statistic, p_value, count = run(nets, [dist])
        rows.append(
            {"expression": expr, "statistic": statistic, "p_value": p_value, "permutations": count}
        )
    if not expressions:
        return rows
    common = [n for n in networks if all(n in usable[e][0] for e in expressions)]
    if not _testable(common, group_of):
        log.warning("group test, all: too few networks usable in every expression; NaN")
        rows.append(_nan_row("all"))
        return rows
    dists = []
    for expr in expressions:
        nets, dist = usable[expr]
        index = [nets.index(n) for n in common]
        dists.append(dist[np.ix_(index, index)])
    statistic, p_value, count = run(common, dists)
    rows.append(
        {"expression": "all", "statistic": statistic, "p_value": p_value, "permutations": count}
    )
    return rows
