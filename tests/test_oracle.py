"""`BayesFTOracle`: GP search on a cheap noisy objective (no training), first trial, resume.

The objective is the one of ``benchmarks/bench_oracle_search.py``: 5 "dropout
rates" in [0.2, 0.8], values 0.1-0.3 like drift accuracy on MNIST, Gaussian
noise of std 0.015, the optimum 0.30 on the edge of the box (three rates at
0.8, one at 0.2, one at 0.56); the centre scores 0.207.
"""

import contextlib
import io

import keras_tuner
import numpy as np
import pytest

from bayesft_keras.tuning.oracle import BayesFTOracle

LOW, HIGH, DIM = 0.2, 0.8, 5
NAMES = [f"dropout_{i}" for i in range(DIM)]
NOISE = 0.015
OPTIMUM = 0.30


def true_value(x):
    u = (np.asarray(x, float) - LOW) / (HIGH - LOW)
    h = [u[..., 0] ** 1.5, u[..., 1] ** 1.5, u[..., 2], 1 - 4 * (u[..., 3] - 0.6) ** 2 / 1.44, 1 - u[..., 4]]
    return 0.1 + 0.2 * np.mean(h, axis=0)


def noisy_value(x, trial_id, seed):
    """The objective as a trial measures it: the noise depends on the seed and the trial only."""
    rng = np.random.default_rng([seed, int(trial_id)])
    return float(true_value(x) + NOISE * rng.standard_normal())


def space():
    hp = keras_tuner.HyperParameters()
    for name in NAMES:
        hp.Float(name, LOW, HIGH)
    return hp


def search(oracle, seed, directory):
    """Runs ``oracle`` to its budget on the noisy objective; the rates it tried, in order."""
    oracle._set_project_dir(str(directory), "p")
    xs = []
    with contextlib.redirect_stdout(io.StringIO()):  # the oracle's progress display
        while True:
            trial = oracle.create_trial("t0")
            if trial.status != "RUNNING":
                break
            x = [trial.hyperparameters.values[n] for n in NAMES]
            oracle.update_trial(trial.trial_id, {"score": noisy_value(x, trial.trial_id, seed)})
            trial.status = "COMPLETED"
            oracle.end_trial(trial)
            xs.append(x)
    return np.array(xs)


def objective():
    return keras_tuner.Objective("score", "max")


SEEDS = (1, 2, 3)  # the first three (not 0: Keras Tuner's RandomSearchOracle takes seed 0 as "random")
BUDGET = 20  # the hand-picked centre, 3 random trials, 16 GP trials
TOLERANCE = 0.02  # of the optimum's true value 0.30: a little more than one measurement's noise (0.015)


@pytest.mark.slow
def test_gp_search_reaches_the_optimum_region_and_beats_random_search(tmp_path):
    """Within 20 trials, every seed tries a configuration within 0.02 of the optimum (true value >= 0.28).

    0.02 is a little more than the noise of one measurement (0.015): closer
    than that, a search cannot tell configurations apart. Seeds 1-3, run with
    this test's procedure (best true value tried):

        BayesFTOracle                  0.300 0.300 0.298  (seeds 1-12: >= 0.28 in 11 of 12)
        old BayesFTOracle (centre, then
          Keras Tuner's GP as it is)   0.273 0.262 0.263  (seeds 1-12: 6 of 12)
        RandomSearchOracle             0.241 0.246 0.253

    so this test FAILS with the old oracle (checked by swapping it in). The
    GP trials (after the 4 initial ones) average 0.267 here, the old oracle's
    0.213, random search's 0.202: the bound 0.24 asks the model-guided trials
    to be good on the whole, not one lucky trial.
    """
    gp_best, gp_mean, random_best = [], [], []
    for seed in SEEDS:
        oracle = BayesFTOracle(
            objective=objective(), max_trials=BUDGET, num_initial_points=4, hyperparameters=space(), seed=seed
        )
        xs = search(oracle, seed, tmp_path / f"gp{seed}")
        assert len(xs) == BUDGET
        values = true_value(xs)
        gp_best.append(values.max())
        gp_mean.append(values[4:].mean())
        baseline = keras_tuner.oracles.RandomSearchOracle(
            objective=objective(), max_trials=BUDGET, hyperparameters=space(), seed=seed
        )
        random_best.append(true_value(search(baseline, seed, tmp_path / f"random{seed}")).max())
    gp_best, random_best = np.array(gp_best), np.array(random_best)
    assert np.all(gp_best >= OPTIMUM - TOLERANCE), gp_best
    assert np.all(gp_best > random_best), (gp_best, random_best)
    assert np.mean(gp_mean) > 0.24, gp_mean


def test_first_trial_is_the_centre_or_the_hand_picked_point(tmp_path):
    hp = keras_tuner.HyperParameters()
    hp.Float("rate", 0.2, 0.8)
    hp.Float("lr", 1e-4, 1e-2, sampling="log")
    hp.Int("units", 16, 48, step=16)
    hp.Choice("act", ["relu", "tanh", "gelu"], default="tanh")
    hp.Boolean("bn", default=True)
    hp.Fixed("bits", 4)
    oracle = BayesFTOracle(objective=objective(), max_trials=2, hyperparameters=hp, seed=0)
    oracle._set_project_dir(str(tmp_path / "a"), "p")
    first = oracle.create_trial("t0").hyperparameters.values
    assert first == {"rate": 0.5, "lr": pytest.approx(1e-3), "units": 32, "act": "tanh", "bn": True, "bits": 4}

    oracle = BayesFTOracle(
        objective=objective(), max_trials=2, hyperparameters=hp.copy(), seed=0,
        initial_values={"rate": 0.8, "act": "gelu"},
    )
    oracle._set_project_dir(str(tmp_path / "b"), "p")
    first = oracle.create_trial("t0").hyperparameters.values
    assert first["rate"] == 0.8 and first["act"] == "gelu" and first["units"] == 32
    assert oracle.seed == 0  # kept (Keras Tuner's Oracle would draw a random seed for 0)


def test_mixed_hyperparameters_get_valid_gp_proposals(tmp_path):
    """Float, Int, Choice, Boolean and Fixed, as Keras Tuner's oracle handles them; no repeated configuration."""
    hp = keras_tuner.HyperParameters()
    hp.Float("rate", 0.2, 0.8)
    hp.Int("units", 1, 4)
    hp.Choice("act", ["relu", "tanh"])
    hp.Boolean("bn")
    hp.Fixed("bits", 4)

    def score(v):
        return v["rate"] + 0.1 * v["units"] + 0.2 * (v["act"] == "tanh") + 0.1 * v["bn"]

    oracle = BayesFTOracle(objective=objective(), max_trials=12, num_initial_points=3, hyperparameters=hp, seed=3)
    oracle._set_project_dir(str(tmp_path), "p")
    seen = []
    with contextlib.redirect_stdout(io.StringIO()):
        for _ in range(12):
            trial = oracle.create_trial("t0")
            v = trial.hyperparameters.values
            assert 0.2 <= v["rate"] <= 0.8 and v["units"] in (1, 2, 3, 4)
            assert v["act"] in ("relu", "tanh") and v["bn"] in (True, False) and v["bits"] == 4
            oracle.update_trial(trial.trial_id, {"score": score(v)})
            trial.status = "COMPLETED"
            oracle.end_trial(trial)
            seen.append(tuple(sorted(v.items())))
    assert len(set(seen)) == len(seen)
    best = max(seen, key=lambda s: score(dict(s)))
    assert dict(best)["units"] >= 3 and dict(best)["act"] == "tanh"


class SyntheticTuner(keras_tuner.Tuner):
    """A Keras Tuner whose trials measure the noisy objective instead of training."""

    def run_trial(self, trial, seed):
        return {"score": noisy_value([trial.hyperparameters.values[n] for n in NAMES], trial.trial_id, seed)}


def tuner_run(directory, max_trials, overwrite):
    oracle = BayesFTOracle(
        objective=objective(), max_trials=max_trials, num_initial_points=3, hyperparameters=space(), seed=5
    )
    tuner = SyntheticTuner(oracle=oracle, directory=str(directory), project_name="p", overwrite=overwrite)
    with contextlib.redirect_stdout(io.StringIO()):
        tuner.search(seed=5)
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: int(t.trial_id))
    return tuner, [tuple(t.hyperparameters.values[n] for n in NAMES) for t in trials]


def test_resume_from_the_directory_continues_with_the_same_trials(tmp_path):
    _, uninterrupted = tuner_run(tmp_path / "once", 8, overwrite=True)
    _, first_part = tuner_run(tmp_path / "twice", 5, overwrite=True)  # stopped after 5 (2 of them GP trials)
    resumed, whole = tuner_run(tmp_path / "twice", 8, overwrite=False)  # reloaded from its directory
    assert first_part == uninterrupted[:5]
    assert whole == uninterrupted
    assert len(set(whole)) == 8
    assert resumed.oracle.initial_values == {}
