"""A small real component study on the digits: outputs, resume, a user's build_fn, and the CLI."""

import csv
import glob
import json
import os

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from bayesft_keras.cli import app
from bayesft_keras.device.noise import ProgrammingNoise
from bayesft_keras.study import run_study
from bayesft_keras.study.summary import sigma_ranges

# Small enough for seconds per run: 64 hidden units, 2 epochs, 3 sigmas, 5 chips.
SMALL = dict(
    arch="mlp", dataset="digits", width=0.125, epochs=2, seeds=2, sigmas=[0.0, 0.75, 1.5], chips=5,
    components="dropout,activation", grid={"dropout": [0.5], "activation": ["tanh"]},
)


@pytest.fixture(scope="module")
def small_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    result = run_study(out=str(out), verbose=0, **SMALL)
    return result, out


def _csv_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _records(out):
    return {
        os.path.relpath(path, out): json.load(open(path, encoding="utf-8"))
        for path in glob.glob(os.path.join(out, "variants", "*", "*.json"))
    }


@pytest.mark.slow
def test_outputs(small_study):
    result, out = small_study
    assert result.trained == 6 and result.reused == 0
    assert sorted(_records(out)) == sorted(
        f"variants/{name}_seed{s}.json"
        for name in ("baseline/baseline", "dropout/rate_0.5", "activation/tanh")
        for s in (0, 1)
    )
    for name in ("results.csv", "table.md", "summary.md", "study.json", "dropout.png", "activation.png"):
        assert (out / name).is_file(), name
    assert result.files["plots"] == {c: str(out / f"{c}.png") for c in ("dropout", "activation")}
    import matplotlib.image

    image = matplotlib.image.imread(out / "dropout.png")
    assert image.shape[:2] == (540, 840)
    assert image[..., :3].std() > 0.05  # curves were drawn
    # 2 components x (baseline + 1 variant) x 3 sigmas.
    assert len(_csv_rows(out / "results.csv")) == 12
    table = (out / "table.md").read_text(encoding="utf-8").splitlines()
    assert table[0] == "| component | variant | σ = 0 | σ = 0.75 | σ = 1.5 |"
    assert [line.split(" | ")[1] for line in table[2:6]] == [
        "no dropout (baseline)", "dropout 0.5", "relu (baseline)", "tanh",
    ]


@pytest.mark.slow
def test_numbers_come_from_the_runs(small_study):
    result, out = small_study
    records = _records(out)
    for row in _csv_rows(out / "results.csv"):
        component = "baseline" if row["variant"] == "baseline" else row["component"]
        per_seed = [
            np.mean(records[f"variants/{component}/{row['variant']}_seed{s}.json"]["report"]["chip_metrics"],
                    axis=1)[SMALL["sigmas"].index(float(row["sigma"]))]
            for s in (0, 1)
        ]
        np.testing.assert_allclose(float(row["mean"]), np.mean(per_seed), atol=1e-12)
        np.testing.assert_allclose(float(row["std"]), np.std(per_seed, ddof=1), atol=1e-12)
    for record in records.values():
        chips = np.asarray(record["report"]["chip_metrics"])
        assert chips.shape == (3, 5)
        # sigma = 0 is the clean model on every chip; drift of sigma 1.5 ruins it.
        np.testing.assert_allclose(chips[0], record["report"]["clean"])
    baseline = result.component("dropout").baseline.mean()
    assert baseline[0] > 0.7  # trained far above chance (0.1) in 2 epochs (PyTorch's init: 0.74)
    assert baseline[2] < baseline[0] - 0.3


@pytest.mark.slow
def test_summary_claims_follow_the_table(small_study):
    result, out = small_study
    rows = _csv_rows(out / "results.csv")
    summary = (out / "summary.md").read_text(encoding="utf-8")
    sigmas = SMALL["sigmas"]
    for component in result.components:
        assert f"## {component.component.capitalize()}: {component.verdict}" in summary
        for comparison in component.comparisons:
            statement = comparison.statement()
            assert f"- {statement}" in summary
            mine = [r for r in rows if r["variant"] == comparison.variant.variant]
            verdicts = []
            for row in mine:
                diff, se = float(row["diff"]), float(row["diff_se"])
                expected = (
                    "not judged" if se == 0 else "helps" if diff > 2 * se
                    else "hurts" if diff < -2 * se else "no significant difference"
                )
                assert row["verdict"] == expected
                verdicts.append(expected)
            for verdict in ("helps", "hurts"):
                where = [i for i, v in enumerate(verdicts) if v == verdict]
                if where:
                    assert f"{verdict} at {sigma_ranges(sigmas, where)} (" in statement
                else:
                    assert f"{verdict} at" not in statement
    assert result.statements() == {
        c.component: [x.statement() for x in c.comparisons] for c in result.components
    }


@pytest.mark.slow
def test_resume_trains_only_missing_runs(small_study):
    _, out = small_study
    records = _records(out)
    csv_before = _csv_rows(out / "results.csv")
    missing = "variants/activation/tanh_seed1.json"
    os.remove(out / missing)
    before = {path: os.path.getmtime(out / path) for path in records if path != missing}
    result = run_study(out=str(out), verbose=0, **SMALL)
    assert (result.trained, result.reused) == (1, 5)
    assert (out / missing).is_file()
    assert all(os.path.getmtime(out / path) == mtime for path, mtime in before.items())
    rows = _csv_rows(out / "results.csv")
    assert [r for r in rows if r["component"] == "dropout"] == [
        r for r in csv_before if r["component"] == "dropout"
    ]

    # Other settings on the same folder: refused before anything is trained or written.
    study_json = (out / "study.json").read_text(encoding="utf-8")
    with pytest.raises(ValueError, match=r"made with other settings \(epochs: 2 there, 3 now\)"):
        run_study(out=str(out), verbose=0, **dict(SMALL, epochs=3, grid={"dropout": [0.5], "activation": ["elu"]}))
    assert (out / "study.json").read_text(encoding="utf-8") == study_json
    assert not (out / "variants" / "activation" / "elu_seed0.json").exists()


def test_build_fn(tmp_path):
    calls = []

    def small_mlp(dropout, activation):
        calls.append({"dropout": dropout, "activation": activation})
        return keras.Sequential([
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation=activation),
            keras.layers.Dropout(dropout),
            keras.layers.Dense(10, activation="softmax"),
        ])

    result = run_study(
        small_mlp, dataset="digits", components="dropout", grid={"dropout": [0.5]}, seeds=1,
        sigmas=[0.0, 1.0], chips=3, epochs=1, out=str(tmp_path), verbose=0,
    )
    # Settings that are not studied get the baseline's value.
    assert calls == [{"dropout": 0.0, "activation": "relu"}, {"dropout": 0.5, "activation": "relu"}]
    assert result.trained == 2
    assert "Component study: small_mlp on digits" in (tmp_path / "summary.md").read_text(encoding="utf-8")
    # One seed: the spread is over chips.
    assert result.component("dropout").baseline.spread_over == "chips"

    with pytest.raises(ValueError, match=r"must accept the keyword argument\(s\) \['depth'\]"):
        run_study(small_mlp, components="dropout,activation,depth", out=str(tmp_path / "x"), verbose=0)
    assert not (tmp_path / "x" / "variants").exists()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"seeds": 0}, r"`seeds` must be >= 1"),
        ({"sigmas": [-1.0]}, r"`sigmas` must be one or more non-negative"),
        ({"components": "dropout,size"}, r"Unknown component\(s\) \['size'\]"),
        ({"k": 0}, r"`k` must be a positive number"),
        ({"chips": 0}, r"`chips` must be an int >= 1"),
        ({"noise": ProgrammingNoise(0.1)}, r"`noise` needs a `sigma` parameter"),
        ({"arch": "lenet5", "components": "depth"}, r"depth component is not applicable to lenet5"),
        ({"build_fn": lambda **kw: None, "arch": "mlp"}, r"Give `build_fn` or `arch`, not both"),
        ({"build_fn": lambda **kw: None, "width": 0.5}, r"`width` applies to `arch` only"),
    ],
)
def test_bad_input(kwargs, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        run_study(out=str(tmp_path), verbose=0, **kwargs)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--components", "dropout,size"], "Unknown component(s) ['size']"),
        (["--seeds", "0"], "`seeds` must be >= 1"),
        (["--sigmas", "1.5:0:0.25"], "need start <= stop and step > 0"),
        (["--sigmas", "a,b"], "--sigmas must be start:stop:step or a comma-separated list"),
        (["--sigmas", "0,-1"], "`sigmas` must be one or more non-negative"),
        (["--arch", "lenet5", "--components", "depth"], "depth component is not applicable"),
    ],
)
def test_cli_bad_input(args, message, tmp_path):
    result = CliRunner().invoke(app, ["study", "--out", str(tmp_path)] + args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "variants").exists()


@pytest.mark.slow
def test_cli_reuses_a_finished_study(small_study):
    _, out = small_study
    result = CliRunner().invoke(app, [
        "study", "--components", "dropout", "--dropout-rates", "0.5", "--seeds", "2",
        "--sigmas", "0:1.5:0.75", "--chips", "5", "--epochs", "2", "--width", "0.125",
        "--out", str(out), "--quiet",
    ])
    assert result.exit_code == 0, result.output
    assert "0 runs trained, 4 reused" in result.stdout
    statement = next(
        line.strip() for line in (out / "summary.md").read_text(encoding="utf-8").splitlines()
        if line.startswith("- dropout 0.5")
    )
    assert statement[2:] in " ".join(result.stdout.split())
