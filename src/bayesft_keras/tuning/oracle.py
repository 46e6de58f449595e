"""The BayesFT search oracle: Gaussian-process Bayesian optimisation fit for noisy objectives.

`BayesFTOracle` is a Keras Tuner oracle (a `BayesianOptimizationOracle`
subclass, so `keras_tuner.Tuner` and resume work as usual). Its first trial is
a hand-picked point (the centre of every range unless ``initial_values`` says
otherwise), the next ``num_initial_points - 1`` are random, then each trial
maximises the upper confidence bound ``mu + beta * sigma`` of a GP fitted to
the finished trials.

Why not Keras Tuner's GP as it is (issue 12, item 5)? Drift accuracy is noisy
(training seeds, sampled chips: std ~0.015 on values ~0.1-0.3, a good part of
the spread between configurations). Keras Tuner's GP models almost no noise
(``alpha=1e-4`` of the normalised variance) and lets the Matern length scale
go down to 1e-5, so it explains the noise by a length scale shorter than the
distance between trials: the model is flat away from the trials, with a dip
at the luckiest one, and UCB proposes small steps around that trial (the
centre, often, as it is tried first) instead of the edges of the ranges; its
acquisition search (50 L-BFGS-B runs from random starts on that flat surface)
cannot find anything better. See ``benchmarks/bench_oracle_search.py``.

This GP (on hyperparameters scaled to [0, 1] with Keras Tuner's own
``value_to_prob``, so Float, Int, Choice, Boolean and Fixed work as in
Keras Tuner) has:

* the noise learned: ``ConstantKernel * Matern(nu=2.5) + WhiteKernel``, with
  ``alpha`` (as in Keras Tuner) a floor added to the diagonal;
* one length scale per hyperparameter, bounded to ``[0.05, 20]`` (in units of
  the whole range: shorter cannot be told apart from noise with a few dozen
  trials, longer is a constant);
* ``normalize_y`` and several restarts of the likelihood maximisation;
* the acquisition maximised as the `bayesian-optimization` package does:
  10,000 random candidates, then L-BFGS-B from the 10 best;
* the random generators derived from ``seed`` and the trial number, so a
  resumed search proposes the same trials as an uninterrupted one.
"""

import warnings

import numpy as np
import scipy.optimize
from keras_tuner import HyperParameters
from keras_tuner.engine.hyperparameters import Fixed
from keras_tuner.engine.hyperparameters import Float
from keras_tuner.engine.hyperparameters import Int
from keras_tuner.engine.trial import TrialStatus
from keras_tuner.oracles import BayesianOptimizationOracle
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel
from sklearn.gaussian_process.kernels import Matern
from sklearn.gaussian_process.kernels import WhiteKernel
from threadpoolctl import threadpool_limits

# The reference search's UCB factor (bayes_opt's kappa; Keras Tuner's beta is 2.6).
DEFAULT_BETA = 2.576


class BayesFTOracle(BayesianOptimizationOracle):
    """GP-UCB search for noisy objectives, started from a hand-picked point.

    Args:
        objective, max_trials, hyperparameters, tune_new_entries,
        allow_new_entries, max_retries_per_trial, max_consecutive_failed_trials:
            as in `keras_tuner.oracles.BayesianOptimizationOracle`.
        num_initial_points: trials before the GP takes over: the hand-picked one
            and ``num_initial_points - 1`` random ones (default: 3 per
            hyperparameter, at least 3, as in Keras Tuner).
        alpha: added to the diagonal of the GP's kernel matrix (in units of the
            normalised objective's variance): the least noise assumed. The
            noise itself is learned (a `WhiteKernel`).
        beta: UCB exploration factor: the next trial maximises
            ``mu + beta * sigma``.
        seed: seed of the random trials and of the GP/acquisition searches.
        initial_values: ``{name: value}`` for the first trial; hyperparameters
            not named start at the centre of their range (Float: the middle,
            geometric for log sampling; Int: Keras Tuner's middle value) or at
            their default (Choice, Boolean, Fixed).
    """

    # Length scales in units of each hyperparameter's whole range ([0, 1] scaling).
    length_scale_bounds = (0.05, 20.0)
    # Noise variance, in units of the normalised objective's variance.
    noise_level_bounds = (1e-4, 10.0)
    # Signal variance (normalised units).
    constant_value_bounds = (1e-2, 1e2)
    ard = True  # one length scale per hyperparameter (False: one for all)
    learn_noise = True  # False: only ``alpha`` as noise, as in Keras Tuner
    gp_restarts = 5
    num_candidates = 10_000
    num_lbfgs_starts = 10

    def __init__(
        self,
        objective=None,
        max_trials=10,
        num_initial_points=None,
        alpha=1e-4,
        beta=DEFAULT_BETA,
        seed=None,
        hyperparameters=None,
        allow_new_entries=True,
        tune_new_entries=True,
        max_retries_per_trial=0,
        max_consecutive_failed_trials=3,
        initial_values=None,
    ):
        self.initial_values = dict(initial_values or {})
        super().__init__(
            objective=objective,
            max_trials=max_trials,
            num_initial_points=num_initial_points,
            alpha=alpha,
            beta=beta,
            seed=seed,
            hyperparameters=hyperparameters,
            allow_new_entries=allow_new_entries,
            tune_new_entries=tune_new_entries,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )

    # -- the GP ---------------------------------------------------------------

    def _make_gpr(self, dims=1, random_state=None):
        kernel = ConstantKernel(1.0, self.constant_value_bounds) * Matern(
            length_scale=np.full(max(dims, 1), 0.5) if self.ard else 0.5,
            length_scale_bounds=self.length_scale_bounds,
            nu=2.5,
        )
        if self.learn_noise:
            kernel = kernel + WhiteKernel(0.1, self.noise_level_bounds)
        return GaussianProcessRegressor(
            kernel=kernel,
            alpha=self.alpha,
            normalize_y=True,
            n_restarts_optimizer=self.gp_restarts,
            random_state=random_state,
        )

    def _rng(self, trial_id):
        """A generator for one trial, the same whenever (and after whichever resume) it is made."""
        return np.random.RandomState([0 if self.seed is None else int(self.seed), int(trial_id), 12])

    def _vector(self, values):
        """``values`` of a trial as a point of [0, 1]^d (non-fixed hyperparameters, inactive ones at default)."""
        hps = HyperParameters()
        vector = []
        for hp in self.hyperparameters.space:
            hps.merge([hp])
            if isinstance(hp, Fixed):
                continue
            value = values[hp.name] if hps.is_active(hp) and hp.name in values else hp.default
            if hps.is_active(hp) and hp.name in values:
                hps.values[hp.name] = value
            vector.append(hp.value_to_prob(value))
        return vector

    def _vectorize_trials(self):
        """Finished trials as ``x`` in [0, 1]^d and ``y`` to minimise (Keras Tuner's convention)."""
        x, y = [], []
        ongoing = {t.trial_id for t in self.ongoing_trials.values()}
        pending = []
        for trial in self.trials.values():
            if trial.status == TrialStatus.COMPLETED and trial.score is not None and np.isfinite(trial.score):
                x.append(self._vector(trial.hyperparameters.values))
                score = float(trial.score)
                y.append(-score if self.objective.direction == "max" else score)
            elif trial.trial_id in ongoing:
                pending.append(self._vector(trial.hyperparameters.values))
        x, y = np.array(x, dtype=float).reshape(len(x), -1), np.array(y, dtype=float)
        if pending and hasattr(self.gpr, "X_train_"):
            # Running trials (several tuners): a pessimistic guess of their result, so that
            # they are not proposed again.
            pending = np.array(pending, dtype=float)
            mean, std = self.gpr.predict(pending, return_std=True)
            x, y = np.concatenate([x, pending]), np.concatenate([y, mean + std])
        return x, y

    # -- trials -----------------------------------------------------------------

    def populate_space(self, trial_id):
        # Tiny matrices: BLAS threads only cost here (much, on a busy machine).
        with threadpool_limits(limits=1, user_api="blas"):
            return self._populate_space(trial_id)

    def _populate_space(self, trial_id):
        if not self.trials:
            return {"status": TrialStatus.RUNNING, "values": self._initial_trial_values()}
        completed = [t for t in self.trials.values() if t.status == TrialStatus.COMPLETED]
        dims = len(self._nonfixed_space())
        num_initial_points = self.num_initial_points or max(3 * len(self.hyperparameters.space), 3)
        if len(completed) < num_initial_points or dims == 0:
            return self._random_populate_space()
        x, y = self._vectorize_trials()
        if len(y) < 2:
            return self._random_populate_space()

        rng = self._rng(trial_id)
        self.gpr = self._make_gpr(dims, random_state=rng.randint(2**31))
        with warnings.catch_warnings():
            # A length scale or noise level at its bound is an answer here (a flat or a
            # noiseless direction), not a failure: keep sklearn's warning off the terminal.
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.gpr.fit(x, y)

        def lower_bound(points):  # minimised: -(UCB) of the objective
            mean, std = self.gpr.predict(np.atleast_2d(points), return_std=True)
            return mean - self.beta * std

        candidates = rng.uniform(size=(self.num_candidates, dims))
        acq = lower_bound(candidates)
        order = np.argsort(acq)
        points, values = list(candidates[order]), list(acq[order])
        step = 1e-6

        def with_gradient(point):  # the value and its forward-difference gradient, in one GP call
            point = np.clip(point, 0.0, 1.0 - step)
            acq = lower_bound(np.vstack([point, point + step * np.eye(dims)]))
            return float(acq[0]), (acq[1:] - acq[0]) / step

        for start in candidates[order[: self.num_lbfgs_starts]]:
            result = scipy.optimize.minimize(
                with_gradient, start, jac=True, bounds=[(0.0, 1.0)] * dims, method="L-BFGS-B"
            )
            points.append(np.clip(result.x, 0.0, 1.0))
            values.append(float(result.fun))
        # The best point whose values (after rounding Int/Choice) were not tried yet.
        for i in np.argsort(values, kind="stable"):
            proposal = self._vector_to_values(points[i])
            if not self._duplicate(proposal):
                return {"status": TrialStatus.RUNNING, "values": proposal}
        return self._random_populate_space()

    def _initial_trial_values(self):
        hps = HyperParameters()
        for hp in self.hyperparameters.space:
            hps.merge([hp])
            if not hps.is_active(hp):
                continue
            if hp.name in self.initial_values:
                value = self.initial_values[hp.name]
            elif isinstance(hp, Fixed):
                value = hp.value
            elif isinstance(hp, Float) and hp.sampling == "linear" and not hp.step:
                value = (hp.min_value + hp.max_value) / 2
            elif isinstance(hp, (Float, Int)):
                value = hp.prob_to_value(0.5)
            else:  # Choice, Boolean
                value = hp.default
            hps.values[hp.name] = value
        values = dict(hps.values)
        # Named values of hyperparameters the hypermodel has not registered yet.
        values.update({k: v for k, v in self.initial_values.items() if k not in values})
        return values

    # -- state (saved in oracle.json, reloaded on resume) ------------------------

    def get_state(self):
        state = super().get_state()
        state["initial_values"] = self.initial_values
        return state

    def set_state(self, state):
        super().set_state(state)
        self.initial_values = dict(state.get("initial_values", {}))
