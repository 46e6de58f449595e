"""Tasks: the kinds of problem BayesFT tunes and scores, looked up by name.

`evaluation/`, `tuning/` and `cli/` find a task here (`get("detection")`) and
call its methods; they never import a task's package. Built-in tasks register
themselves when their module is first imported, which `get` does by module
path on the first lookup of their name.
"""

import importlib

from bayesft_keras.tasks.base import Task
from bayesft_keras.tasks.base import data_options
from bayesft_keras.tasks.base import hypermodel_options

DEFAULT_TASK = "classification"

# Imported on first lookup: this registry sits below the packages that implement tasks.
_BUILTIN_MODULES = {
    "classification": "bayesft_keras.tasks.classification",
    "detection": "bayesft_keras.detection.task",
}
_TASKS = {}


def register(task):
    """Registers a `Task` instance under its `name` (replacing one of the same name); returns it."""
    if not isinstance(task, Task):
        raise TypeError(f"`task` must be a `bayesft_keras.tasks.Task`. Received: task={task!r}")
    if not isinstance(task.name, str) or not task.name:
        raise ValueError(f"A task needs a non-empty string `name`. Received: name={task.name!r}")
    _TASKS[task.name] = task
    return task


def names():
    """The task names: the built-in ones, then those registered since."""
    return tuple(dict.fromkeys([*_BUILTIN_MODULES, *_TASKS]))


def get(name):
    """The registered `Task` called `name`.

    Raises:
        ValueError: no task has that name.
    """
    if name not in _TASKS and name in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[name])
    if name not in _TASKS:
        raise ValueError(f"`task` must be one of {list(names())}. Received: task={name!r}")
    return _TASKS[name]


def for_dataset(dataset, metric=None):
    """The task whose datasets include `dataset`: the default task owns every name no other task claims.

    Raises:
        ValueError: `metric` belongs to another task than `dataset`'s.
    """
    others = [get(name) for name in names() if name != DEFAULT_TASK]
    for task in others:
        if task.owns_dataset(dataset):
            return task
    for task in others:
        task.check_metric(metric, dataset)
    return get(DEFAULT_TASK)


__all__ = [
    "DEFAULT_TASK",
    "Task",
    "data_options",
    "for_dataset",
    "get",
    "hypermodel_options",
    "names",
    "register",
]
