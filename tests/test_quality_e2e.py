"""The quality stage in the `.test` workflow run (tests/conftest.py's test_run): per-job curves and
scores, the per-method image table and the trust table with its ranking."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from ferxai.comparison.localisation_scores import LOCALISATION_SCORES
from ferxai.core.io import read_csv, read_h5
from ferxai.quality.trust import TABLE_COLUMNS
from tests.conftest import REPO

pytestmark = pytest.mark.e2e

CONFIG = yaml.safe_load((REPO / ".test" / "config.yaml").read_text())
QUALITY = CONFIG["quality"]


def check_quality_outputs(results):
    quality = results / "quality"
    steps = QUALITY["steps"]
    measured = 0
    for net in QUALITY.get("networks") or CONFIG["networks"]["names"]:
        for fold in QUALITY["folds"]:
            job = quality / "lime" / net / f"fold{fold}"
            rows = read_csv(job / "scores.csv")
            measured += len(rows)
            arrays, attrs = read_h5(job / "curves.h5", [])
            assert attrs["network"] == net and attrs["method"] == "lime"
            for row in rows:
                expression = row["expression"]
                names = [f"{expression}/{k}" for k in ("deletion", "insertion", "mprt_spearman")]
                curves, _ = read_h5(job / "curves.h5", names)
                assert curves[names[0]].shape[1] == steps + 1
                assert curves[names[2]].shape[1] == QUALITY["mprt"]["layers"]
                for key in ("deletion_auc", "insertion_auc"):
                    assert 0.0 <= float(row[key]) <= 1.0
                assert -1.0 <= float(row["mprt_spearman"]) <= 1.0
                assert not math.isnan(float(row["random_logit_ssim"]))
                if QUALITY.get("road", {}).get("enabled"):
                    assert 0.0 <= float(row["road_auc"]) <= 1.0
    assert measured > 0, "no image measured: the .test positives are empty"
    images = read_csv(quality / "lime" / "scores.csv")
    assert len([r for r in images if r["deletion_auc"] != "nan"]) == measured
    localised = [r for r in images if r["auc"] != "nan"]
    assert localised and all(0.0 <= float(r["pointing_game"]) <= 1.0 for r in localised)
    table = read_csv(quality / "trust.csv")
    assert list(table[0]) == list(TABLE_COLUMNS)
    pooled = {r["score"]: r for r in table if r["network"] == "all"}
    assert {"deletion_auc", "insertion_auc", "mprt_ssim", *LOCALISATION_SCORES} <= set(pooled)
    for row in pooled.values():
        low, mean, high = (float(row[k]) for k in ("ci_low", "mean", "ci_high"))
        assert np.isnan(low) or low - 1e-12 <= mean <= high + 1e-12
    ranking = read_csv(quality / "ranking.csv")
    assert [r["rank"] for r in ranking] == ["1"]
    assert (quality / "curves.png").stat().st_size > 1000
    extended = read_csv(results / "comparison" / "lime" / "extended_metrics.csv")
    assert set(LOCALISATION_SCORES) <= set(extended[0])


def test_quality_stage_outputs(test_run):
    check_quality_outputs(test_run / "results")
