"""`bayesft-keras tune --task detection` and `bayesft-keras evaluate` on a detector, end to end."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from bayesft_keras.cli import app
from bayesft_keras.evaluation import DriftReport
from bayesft_keras.tuning.config import load_preset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny detection search: one BayesFT trial and the no-dropout baseline, one epoch each."""
    from bayesft_keras.detection import task as detection_task
    from bayesft_keras.detection.data import load
    from bayesft_keras.tuning.search import run_search

    config = load_preset("detection-quick").replace(
        trials=1, initial_points=1, epochs=1, chips=2, report_sigmas=[0.0, 0.3, 2],
        report_chips=2,
    )
    directory = tmp_path_factory.mktemp("run")
    # 500 scenes instead of 3000: the wiring is under test, and pycocotools
    # scores every chip of every trial.
    small = load(config.dataset, seed=config.seed, num_examples=500)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(detection_task, "load_data", lambda config: small)
        return run_search(config, directory, verbose=0)


def test_tune_detection_scores_trials_by_map(run):
    assert run.config.task == "detection" and set(run.methods) == {"bayesft", "no_dropout"}
    bayesft = run.methods["bayesft"]
    assert set(bayesft.hyperparameters) == {
        "dropout_stage1", "dropout_stage2", "dropout_stage3", "dropout_head"}
    # The hand-picked first point is the centre of the detection preset's range.
    assert all(v == pytest.approx(0.25) for v in bayesft.hyperparameters.values())
    report = bayesft.report
    # Report sigmas: 0, 0.3 and the objective's 0.2.
    assert report.metric == "map50" and report.chip_metrics.shape == (3, 2)
    assert report.values.tolist() == [0.0, 0.2, 0.3]
    assert report.num_examples == 100
    assert 0.0 <= report.clean <= 1.0 and np.all(report.chip_metrics[0] == report.clean)
    assert (run.directory / "reports" / "comparison.png").stat().st_size > 0


def test_evaluate_command_on_a_detector(run, tmp_path):
    out = tmp_path / "report"
    result = CliRunner().invoke(app, [
        "evaluate", str(run.directory / "best_model.keras"), "--dataset", "digits-detect",
        "--sigmas", "0,0.2", "--chips", "2", "--max-examples", "100", "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    report = DriftReport.from_json(out / "report.json")
    assert report.metric == "map50" and report.num_examples == 100
    assert report.values.tolist() == [0.0, 0.2]
    coco = CliRunner().invoke(app, [
        "evaluate", str(run.directory / "best_model.keras"), "--dataset", "digits-detect",
        "--sigmas", "0", "--chips", "1", "--metric", "map", "--max-examples", "100",
        "--out", str(tmp_path / "coco"),
    ])
    assert coco.exit_code == 0, coco.output
    assert json.loads((tmp_path / "coco" / "report.json").read_text())["metric"] == "map"
    # COCO mAP@[.5:.95] is at most mAP@0.5.
    assert DriftReport.from_json(tmp_path / "coco" / "report.json").clean <= report.clean + 1e-12


@pytest.mark.parametrize("args, message", [
    (["tune", "--task", "detection", "--arch", "vgg"], "Unknown detection architecture 'vgg'"),
    (["tune", "--task", "detection", "--dataset", "digits"], "Unknown detection dataset 'digits'"),
    (["tune", "--task", "segmentation"], "`task` must be one of"),
])
def test_tune_detection_bad_input_is_one_line(args, message, tmp_path):
    result = CliRunner().invoke(app, args + ["--dir", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_map_metric_needs_a_detection_dataset(run, tmp_path):
    result = CliRunner().invoke(app, [
        "evaluate", str(run.directory / "best_model.keras"), "--dataset", "digits",
        "--metric", "map50", "--out", str(tmp_path / "r"),
    ])
    assert result.exit_code == 2 and "scores object detection" in result.output
