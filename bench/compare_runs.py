"""Compare two workflow runs' results byte for byte: every HDF5 dataset and every CSV.

    .venv/bin/python bench/compare_runs.py RUN_A RUN_B

RUN_A and RUN_B are `--directory` folders of two runs (each holding results/). Logs and
benchmarks are skipped (they hold times). Used to show that a refactor changes no output
(docs/architecture.md); prints the counts compared and every difference.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py

SKIPPED = {"logs", "benchmarks"}


def datasets(path: Path) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    with h5py.File(path, "r") as h5:

        def visit(name, node):
            if isinstance(node, h5py.Dataset):
                found[name] = str(node.dtype).encode() + b"\0" + node[()].tobytes()

        h5.visititems(visit)
    return found


def compare(a: Path, b: Path) -> tuple[dict[str, int], list[str]]:
    counts, differences = {"h5": 0, "csv": 0}, []
    for path in sorted(a.rglob("*")):
        rel = path.relative_to(a)
        if not path.is_file() or SKIPPED & set(rel.parts) or path.suffix not in (".h5", ".csv"):
            continue
        other = b / rel
        if not other.exists():
            differences.append(f"{rel}: missing in the second run")
            continue
        if path.suffix == ".csv":
            counts["csv"] += 1
            if path.read_bytes() != other.read_bytes():
                differences.append(f"{rel}: differs")
            continue
        counts["h5"] += 1
        first, second = datasets(path), datasets(other)
        for name in sorted(first.keys() | second.keys()):
            if first.get(name) != second.get(name):
                differences.append(f"{rel}:{name}: differs")
    return counts, differences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    args = parser.parse_args()
    counts, differences = compare(args.run_a / "results", args.run_b / "results")
    print(f"compared {counts['h5']} HDF5 files (every dataset) and {counts['csv']} CSVs")
    print(f"{len(differences)} difference(s)")
    for line in differences:
        print(" ", line)


if __name__ == "__main__":
    main()
