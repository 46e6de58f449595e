"""The searches of a run: BayesFT's, then the baselines', as functions that make their tuners.

`run_search` (`tuning.search`) runs them in this order; a distributed search serves search
`i` on port `PORT + i`.
"""

import dataclasses

import keras_tuner


def fixed_rates(hypermodel, rate):
    """Hyperparameters that pin every dropout site of a hypermodel to one rate
    (and the extended space's recipe values to the recipe's own)."""
    recipe = hypermodel.recipe_values() if hasattr(hypermodel, "recipe_values") else {}
    hp = keras_tuner.HyperParameters()
    for name in hypermodel.hyperparameter_names():
        hp.Fixed(name, float(recipe.get(name, rate)))
    return hp


def initial_values(config, hypermodel):
    """The hand-picked first trial: `config.initial_rates` (one per site, in order) or the
    centre of every range, and the recipe's own values of an extended space."""
    values = dict(hypermodel.recipe_values()) if hasattr(hypermodel, "recipe_values") else {}
    if config.initial_rates is not None:
        names = hypermodel.hyperparameter_names()[: len(hypermodel.sites)]
        if len(config.initial_rates) != len(names):
            raise ValueError(
                f"`initial_rates` needs one rate per dropout site of {config.arch} "
                f"({', '.join(hypermodel.sites)}). Received: initial_rates={list(config.initial_rates)}"
            )
        values.update(zip(names, (float(r) for r in config.initial_rates)))
    return values


def tuners(run, common):
    """method -> a function making its tuner: BayesFT's search, then the baselines', in this order
    (a distributed search serves search i on port PORT+i)."""
    return {**_bayesft_search(run, common), **_baseline_searches(run, common)}


def _bayesft_search(run, common):
    from bayesft_keras.tuning.tuner import BayesFTTuner

    config, hypermodel = run.config, run.hypermodel
    return {
        "bayesft": lambda: BayesFTTuner(
            hypermodel,
            max_trials=config.trials,
            num_initial_points=config.initial_points,
            initial_values=initial_values(config, hypermodel),
            project_name="bayesft",
            method="bayesft",
            trials_at_once=config.trials_at_once,
            **common,
        )
    }


# The baselines built from the search's own hypermodels; a task's other baselines are its own.
_SEARCH_BASELINES = ("random", "uniform", "no_dropout", "noise_injection")


def _baseline_searches(run, common):
    from bayesft_keras.tuning.tuner import BayesFTTuner
    from bayesft_keras.tuning.tuner import DriftRandomSearch

    config, hypermodel = run.config, run.hypermodel

    def one_trial(method, model, rate, **options):
        return lambda: DriftRandomSearch(
            model,
            max_trials=1,
            hyperparameters=fixed_rates(model, rate),
            tune_new_entries=False,
            project_name=method,
            method=method,
            **dict(common, **options),
        )

    tuners = {}
    if "random" in config.baselines:
        tuners["random"] = lambda: DriftRandomSearch(
            hypermodel, max_trials=config.trials, project_name="random", method="random",
            trials_at_once=config.trials_at_once, **common)
    for method, rate in (("uniform", config.uniform_rate), ("no_dropout", 0.0)):
        if method in config.baselines:
            tuners[method] = one_trial(method, hypermodel, rate)
    if run.injection_hypermodel is not None:
        tuners["noise_injection"] = lambda: BayesFTTuner(
            run.injection_hypermodel,
            max_trials=config.trials,
            num_initial_points=min(config.initial_points, config.trials),
            hyperparameters=fixed_rates(hypermodel, 0.0),
            project_name="noise_injection",
            method="noise_injection",
            **common,
        )
    # The task's own baselines (the paper's, for classification: bayesft_keras.baselines): one
    # trial each, no dropout, the authors' settings; each scored by its own metric (FTNA decodes
    # its codewords).
    for method in run.task.baselines:
        if method not in config.baselines or method in _SEARCH_BASELINES:
            continue
        model = run.task.baseline_hypermodel(config, run.ds, method)
        model.initial_weights = run.warm_start  # FTNA's 7-output head keeps its initialization
        run.method_metrics[method] = model.metric()
        objective = dataclasses.replace(run.objective, metric=run.method_metrics[method])
        tuners[method] = one_trial(method, model, 0.0, objective_spec=objective)
    return tuners
