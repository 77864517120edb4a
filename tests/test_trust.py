"""The trust table: means and bootstrap CIs per method × network, pooled rows, the ranking."""

from __future__ import annotations

import numpy as np
import pytest

from ferxai.quality.trust import DIRECTIONS, bootstrap_means, rank_methods, trust_table


def rows_of(method, network, deletion, insertion):
    return [
        {"method": method, "network": network, "fold": "1", "expression": "Fear",
         "image_id": f"{network}/{i}", **dict.fromkeys(DIRECTIONS, float("nan")),
         "deletion_auc": d, "insertion_auc": s}
        for i, (d, s) in enumerate(zip(deletion, insertion, strict=True))
    ]


@pytest.fixture
def rows():
    rng = np.random.default_rng(0)
    good = rows_of("ig", "WeiNet", rng.uniform(0.1, 0.2, 30), rng.uniform(0.6, 0.7, 30))
    bad = rows_of("lime", "WeiNet", rng.uniform(0.4, 0.5, 30), rng.uniform(0.3, 0.4, 30))
    other = rows_of("lime", "SilNet", rng.uniform(0.4, 0.5, 10), [np.nan] * 10)
    return good + bad + other


def test_table_means_and_intervals(rows):
    table = trust_table(rows, ["lime", "ig"], DIRECTIONS, n_boot=300, seed=1)
    by = {(r["method"], r["network"], r["score"]): r for r in table}
    lime = [r["deletion_auc"] for r in rows if r["method"] == "lime"]
    pooled = by[("lime", "all", "deletion_auc")]
    assert pooled["mean"] == pytest.approx(np.mean(lime)) and pooled["n_images"] == 40
    assert pooled["ci_low"] < pooled["mean"] < pooled["ci_high"]
    assert by[("lime", "SilNet", "deletion_auc")]["n_images"] == 10
    assert ("lime", "SilNet", "insertion_auc") not in by  # no finite value: no row
    assert by[("ig", "all", "insertion_auc")]["better"] == "higher"
    assert [r["network"] for r in table if r["method"] == "lime"][0] == "WeiNet"  # paper order
    again = trust_table(rows, ["lime", "ig"], DIRECTIONS, n_boot=300, seed=1)
    assert again == table  # deterministic for a seed


def test_ranking_follows_each_scores_direction(rows):
    table = trust_table(rows, ["lime", "ig"], DIRECTIONS, n_boot=0)
    ranking = rank_methods(table, ["lime", "ig"], DIRECTIONS)
    assert [r["method"] for r in ranking] == ["ig", "lime"]
    ig = ranking[0]
    assert ig["rank_deletion_auc"] == 1 and ig["rank_insertion_auc"] == 1 and ig["rank"] == 1
    assert ranking[1]["mean_rank"] == 2.0
    assert np.isnan(ig["rank_mprt_ssim"])  # not measured


def test_bootstrap_means_ignore_nan_and_cover_the_mean():
    values = np.array([1.0, 2.0, np.nan, 3.0, 4.0])
    means = bootstrap_means(values, 2000, np.random.default_rng(0))
    assert np.nanmin(means) >= 1.0 and np.nanmax(means) <= 4.0
    assert means.mean() == pytest.approx(2.5, abs=0.05)
    assert np.isnan(bootstrap_means(np.array([np.nan]), 5, np.random.default_rng(0))).all()


def test_scores_of_another_version_are_refused_naming_the_file(tmp_path):
    from ferxai.core.errors import DataError
    from ferxai.quality.trust import image_rows

    old = tmp_path / "scores.csv"
    old.write_text(
        "method,network,fold,expression,image_id,deletion_auc\nlime,WeiNet,1,Fear,a,0.1\n"
    )
    with pytest.raises(DataError, match=r"scores\.csv: no column\(s\) insertion_auc"):
        image_rows([old], [], None)
