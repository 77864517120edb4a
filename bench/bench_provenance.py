"""Cost of provenance records: sha256 throughput of ferxai.core.provenance.file_sha256 and the time of
build() over a paper-sized attribution job's inputs (checkpoint + positives + dataset table).

    python bench/bench_provenance.py [--mb 256]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from ferxai.core import provenance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=256, help="size of the fake checkpoint in MB")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "model.pt"
        with open(ckpt, "wb") as fh:
            for _ in range(args.mb):
                fh.write(os.urandom(1 << 20))
        table = Path(tmp) / "dataset.csv"
        table.write_text(
            "image_id,path\n" + "".join(f"img{i},/data/{i}.png\n" for i in range(10000))
        )
        provenance.git_commit()  # cached: measured apart below
        start = time.perf_counter()
        provenance.file_sha256(ckpt)
        seconds = time.perf_counter() - start
        print(f"sha256 of {args.mb} MB: {seconds:.3f} s ({args.mb / seconds:.0f} MB/s)")
        start = time.perf_counter()
        for _ in range(10):
            provenance.build([table], {"num_samples": 1000, "n_segments": 30})
        print(f"build() on a 10,000-row table: {(time.perf_counter() - start) / 10 * 1e3:.2f} ms")
        provenance.git_commit.cache_clear()
        start = time.perf_counter()
        provenance.git_commit()
        print(f"git rev-parse (once per process): {(time.perf_counter() - start) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
