"""The BayesFT search oracle: Keras Tuner's GP search with the objective's noise modelled.

`BayesFTOracle` is a Keras Tuner oracle (a `BayesianOptimizationOracle`
subclass, so `keras_tuner.Tuner` and resume work as usual). Its first trial is
a hand-picked point (the centre of every range unless `initial_values` says
otherwise), the next `num_initial_points - 1` are random, then each trial
maximises the upper confidence bound `mu + beta * sigma` of a GP fitted to
the finished trials.

Why not Keras Tuner's GP as it is (issue 12, item 5)? Drift accuracy is noisy
(training seeds, sampled chips: std ~0.015 on values ~0.1-0.3, a good part of
the spread between configurations). Keras Tuner's GP assumes almost no noise
(`alpha=1e-4` of the normalised variance), so it must pass through every
noisy score: it picks a length scale shorter than the distance between trials
(down to its bound, 1e-5). The model is then flat away from the trials: either
with a dip at the luckiest trial, and UCB proposes small steps around it (the
centre, often, as it is tried first), or flat everywhere, and the proposals are
as good as random. Learning the noise (a `WhiteKernel`) alone does not stop
this: a Matern kernel with a length scale near 0 *is* white noise, and the
likelihood is as high. What stops it is a floor on the length scale: 0.3 of
each range (about the distance between neighbouring trials of a 20-trial
search in 5 dimensions; a GP cannot learn shorter structure from so few noisy
trials anyway). Measured on synthetic noisy objectives
(`benchmarks/bench_oracle_search.py`); one length scale per hyperparameter,
a learned signal variance and a 10,000-candidate acquisition search (as the
`bayesian-optimization` package does) did not help there, so they are off
(class attributes below).

So the GP is Keras Tuner's (Matern 5/2 on hyperparameters scaled to [0, 1]
with Keras Tuner's `value_to_prob`, so Float, Int, Choice, Boolean and Fixed
work as there; `normalize_y`; 20 restarts of the likelihood maximisation; UCB
maximised by L-BFGS-B from 50 random starts) with:

* length scales of at least 0.3 (in units of each range);
* a `WhiteKernel`: the noise level is learned; `alpha` (as in Keras Tuner)
  is only a floor added to the diagonal;
* `beta` 2.576 by default (the `bayesian-optimization` package's kappa);
* a cheap gradient for L-BFGS-B (finite differences in one GP call) and
  single-threaded BLAS (the matrices are tiny: threads only cost);
* random generators derived from `seed` and the trial number, for the random
  trials and the GP: a resumed search proposes the same trials as an
  uninterrupted one, `seed=0` is kept (Keras Tuner's `Oracle` replaces a seed
  of 0 by a random one) and searches with nearby seeds do not share random
  trials (Keras Tuner's do: the k-th value is drawn with seed `seed + k`);
* no configuration repeated by the GP (Int/Choice rounding): the best
  proposal not tried yet is taken.
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
from keras_tuner.oracles import RandomSearchOracle
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel
from sklearn.gaussian_process.kernels import Matern
from sklearn.gaussian_process.kernels import WhiteKernel
from threadpoolctl import threadpool_limits

from bayesft_keras.tuning.durable import DurableOracleMixin

# The reference search's UCB factor (bayes_opt's kappa; Keras Tuner's beta is 2.6).
DEFAULT_BETA = 2.576


class BayesFTOracle(DurableOracleMixin, BayesianOptimizationOracle):
    """GP-UCB search for noisy objectives, started from a hand-picked point.

    Args:
        objective, max_trials: as in `keras_tuner.oracles.BayesianOptimizationOracle`.
        num_initial_points: trials before the GP takes over: the hand-picked one
            and `num_initial_points - 1` random ones (default: 3 per
            hyperparameter, at least 3, as in Keras Tuner).
        alpha: added to the diagonal of the GP's kernel matrix (in units of the
            normalised objective's variance): the least noise assumed. The
            noise itself is learned (a `WhiteKernel`).
        beta: UCB exploration factor: the next trial maximises
            `mu + beta * sigma`.
        seed: seed of the random trials and of the GP/acquisition searches.
        initial_values: `{name: value}` for the first trial; hyperparameters
            not named start at the centre of their range (Float: the middle,
            geometric for log sampling; Int: Keras Tuner's middle value) or at
            their default (Choice, Boolean, Fixed).
        **kwargs: the other arguments of `BayesianOptimizationOracle`
            (`hyperparameters`, `allow_new_entries`, `tune_new_entries`,
            `max_retries_per_trial`, `max_consecutive_failed_trials`).
    """

    # The GP and its search; a subclass may change them (the benchmark does).
    # Length scales in units of each hyperparameter's whole range ([0, 1] scaling).
    length_scale_bounds = (0.3, 1e5)
    initial_length_scale = 1.0
    ard = False  # True: one length scale per hyperparameter
    learn_noise = True  # False: only `alpha` as noise, as in Keras Tuner
    # Noise variance, in units of the normalised objective's variance.
    noise_level_bounds = (1e-4, 10.0)
    # Signal variance (normalised units): "fixed" at 1 as in Keras Tuner, or bounds to learn it.
    constant_value_bounds = "fixed"
    gp_restarts = 20
    # UCB search: this many random points, then L-BFGS-B from the best `num_lbfgs_starts` of them.
    num_candidates = 50
    num_lbfgs_starts = 50

    def __init__(self, objective=None, max_trials=10, num_initial_points=None, alpha=1e-4, beta=DEFAULT_BETA,
                 seed=None, initial_values=None, **kwargs):
        self.initial_values = dict(initial_values or {})
        super().__init__(
            objective=objective, max_trials=max_trials, num_initial_points=num_initial_points,
            alpha=alpha, beta=beta, seed=seed, **kwargs,
        )
        if seed is not None:  # Keras Tuner's Oracle takes `seed or random.randint(...)`: 0 would be random
            self.seed = self._seed_state = int(seed)

    # -- the GP ---------------------------------------------------------------

    def _make_gpr(self, dims=1, random_state=None):
        kernel = ConstantKernel(1.0, self.constant_value_bounds) * Matern(
            length_scale=np.full(max(dims, 1), self.initial_length_scale) if self.ard else self.initial_length_scale,
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
        """`values` of a trial as a point of [0, 1]^d (non-fixed hyperparameters, inactive ones at default)."""
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
        """Finished trials as `x` in [0, 1]^d and `y` to minimise (Keras Tuner's convention)."""
        x, y = [], []
        ongoing = {t.trial_id for t in self.ongoing_trials.values()}
        pending = []
        # In trial order: a reloaded oracle's `trials` are in the order of a directory listing.
        for trial in sorted(self.trials.values(), key=lambda t: int(t.trial_id)):
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

    def _random_values(self):
        """Uniform in the [0, 1] scaling, from the trial's own generator (not Keras Tuner's `seed + k`).

        Keras Tuner seeds the k-th sampled value with `seed + k`, so searches
        whose seeds differ by the number of hyperparameters try the same random
        trials, one trial apart.
        """
        rng = self._rng(len(self.trials))
        for _ in range(self._max_collisions + 1):
            values = self._vector_to_values(rng.uniform(size=len(self._nonfixed_space())))
            if not self._duplicate(values):
                return values
        return None

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


class DriftRandomSearchOracle(DurableOracleMixin, RandomSearchOracle):
    """Keras Tuner's random search, with the run directory's files written atomically."""
