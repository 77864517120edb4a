"""``ferxai quality``: one job's curves and scores on a real attribution stack, resuming, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ferxai.cli import main
from ferxai.core.io import read_csv, read_h5, read_stack, write_csv, write_png
from ferxai.quality.job import SCORE_COLUMNS, resume_path

NETWORK, SIZE = "SilNet", 32
LIME = '{"num_samples": 16, "n_segments": 8, "batch_size": 16, "cpu_forward": "eager"}'
QUALITY = '{"images_per_class": 2, "steps": 4, "regions": 5, "patch_size": 8, "random_logit": true, "mprt": {"layers": 2}, "road": {"enabled": true, "percentages": [30, 60]}}'  # noqa: E501


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> dict[str, Path]:
    """Three images, their dataset table, SilNet weights and the LIME stacks of two expressions."""
    from skimage.data import astronaut

    from ferxai.networks import create_model

    root = tmp_path_factory.mktemp("quality")
    image = astronaut()
    rows = []
    for i, (y, x) in enumerate([(0, 0), (100, 150), (200, 250)]):
        path = root / f"img{i}.png"
        write_png(path, np.ascontiguousarray(image[y : y + 200, x : x + 200]))
        rows.append(dict(image_id=f"s{i}/img{i}", path=str(path), expression="Fear", label=2,
                         subject=f"s{i}", width=200, height=200, landmarks="", sha1="x"))
    write_csv(root / "dataset.csv", rows, list(rows[0]))
    positives = [dict(image_id=r["image_id"], true_label=2, predicted=2, probability=0.9)
                 for r in rows]
    write_csv(root / "fear.csv", positives, list(positives[0]))
    write_csv(root / "anger.csv", [], list(positives[0]))
    torch.manual_seed(0)
    torch.save(create_model(NETWORK, input_size=SIZE).state_dict(), root / "model.pt")
    args = ["attribute", "--model", NETWORK, "--weights", str(root / "model.pt"),
            "--input-size", str(SIZE), "--dataset", str(root / "dataset.csv"),
            "--positives", str(root / "fear.csv"), str(root / "anger.csv"),
            "--expression", "Fear", "Anger", "--fold", "1", "--method", "lime",
            "--settings", LIME, "--seed", "3", "--device", "cpu",
            "--out", str(root / "Fear.h5"), str(root / "Anger.h5")]
    assert main(args) == 0
    return {"root": root}


def run_quality(job, out: Path, quality: str = QUALITY) -> int:
    root = job["root"]
    return main(["quality", "--model", NETWORK, "--weights", str(root / "model.pt"),
                 "--input-size", str(SIZE), "--dataset", str(root / "dataset.csv"),
                 "--stacks", str(root / "Fear.h5"), str(root / "Anger.h5"),
                 "--expression", "Fear", "Anger", "--fold", "1", "--method", "lime",
                 "--settings", LIME, "--quality", quality, "--seed", "3", "--device", "cpu",
                 "--curves", str(out / "curves.h5"), "--scores", str(out / "scores.csv")])


def test_a_job_writes_curves_and_one_row_per_image(job, tmp_path):
    assert run_quality(job, tmp_path) == 0
    rows = read_csv(tmp_path / "scores.csv")
    assert [r["image_id"] for r in rows] == ["s0/img0", "s1/img1"]  # images_per_class: 2
    assert list(rows[0]) == list(SCORE_COLUMNS)
    names = ["Fear/deletion", "Fear/insertion", "Fear/pixel_flipping", "Fear/region_perturbation",
             "Fear/mprt_spearman", "Fear/mprt_ssim", "Fear/random_logit_ssim", "Fear/road"]
    curves, attrs = read_h5(tmp_path / "curves.h5", names)
    assert curves["Fear/deletion"].shape == curves["Fear/insertion"].shape == (2, 5)
    assert curves["Fear/region_perturbation"].shape == (2, 5)
    assert curves["Fear/mprt_spearman"].shape == (2, 2) and curves["Fear/road"].shape == (2, 2)
    assert attrs["network"] == NETWORK
    # deletion starts at the image and insertion ends at it: the network's own probability
    stack = read_stack(job["root"] / "Fear.h5")
    np.testing.assert_allclose(curves["Fear/deletion"][:, 0], stack.probabilities[:2, 2], atol=1e-5)
    np.testing.assert_allclose(
        curves["Fear/insertion"][:, -1], stack.probabilities[:2, 2], atol=1e-5
    )
    for row in rows:
        assert 0 <= float(row["deletion_auc"]) <= 1 and 0 <= float(row["insertion_auc"]) <= 1
        # NaN where the randomised network's map is constant (no ranks to correlate, as Quantus)
        spearman = float(row["mprt_spearman"])
        assert np.isnan(spearman) or -1 <= spearman <= 1
    assert not any(p.name.endswith(".resume.h5") for p in tmp_path.iterdir())


def test_a_rerun_resumes_the_finished_expressions_with_the_same_result(job, tmp_path, caplog):
    """A job killed before its outputs keeps each finished expression; the rerun reuses them and
    writes what an uninterrupted job writes."""
    from ferxai.quality import job as quality_job

    first, rerun = tmp_path / "first", tmp_path / "rerun"
    assert run_quality(job, first) == 0

    def killed(*args, **kwargs):
        raise SystemExit(143)

    original = quality_job.write_outputs
    quality_job.write_outputs = killed
    try:
        with pytest.raises(SystemExit):
            run_quality(job, rerun)
    finally:
        quality_job.write_outputs = original
    assert resume_path(rerun / "curves.h5", "Fear").is_file()
    with caplog.at_level("INFO", logger="ferxai.quality"):
        assert run_quality(job, rerun) == 0
    assert "resumed from" in caplog.text
    assert (rerun / "scores.csv").read_text() == (first / "scores.csv").read_text()
    assert not resume_path(rerun / "curves.h5", "Fear").exists()
    # other settings do not reuse a resume file
    assert run_quality(job, first, QUALITY.replace('"steps": 4', '"steps": 3')) == 0
    assert read_h5(first / "curves.h5", ["Fear/deletion"])[0]["Fear/deletion"].shape == (2, 4)


@pytest.mark.parametrize(
    "quality, message",
    [
        ('{"steps": 1}', "quality.steps = 1"),
        ('{"patch_size": 33}', "quality.patch_size = 33 is larger than SilNet"),
        ('{"mprt": {"similarities": ["l2"]}}', "quality.mprt.similarities"),
        ('{"stepz": 3}', "unknown key"),
    ],
)
def test_bad_settings_stop_the_job_naming_the_key(job, tmp_path, capsys, quality, message):
    assert run_quality(job, tmp_path, quality) == 2
    assert message in capsys.readouterr().err
