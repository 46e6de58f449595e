"""A process's place in a distributed search: the chief's address, the worker id, Keras Tuner's environment.

Keras Tuner spreads a search over processes: the chief holds the oracle and
serves it over gRPC (`bayesft_keras.tuning.chief_server`), workers ask it for
trials, train and score them, and report back. A process learns its role from
three environment variables: ``KERASTUNER_TUNER_ID`` ("chief" or the worker's
id), ``KERASTUNER_ORACLE_IP`` and ``KERASTUNER_ORACLE_PORT``. `Cluster` maps
``bayesft-keras tune --chief HOST:PORT --worker-id ID`` onto them.

A run holds one search per method (BayesFT, then each baseline), each with its
own oracle: the chief serves search ``i`` on port ``PORT + i``, so a worker
that moves on to the next search can never reach the oracle of the previous
one.

`mirrored_strategy` gives the per-trial data-parallel training
(`tf.distribute.MirroredStrategy` over the local GPUs) passed to the tuners.
"""

import contextlib
import dataclasses
import os
import re
from pathlib import Path

CHIEF = "chief"
ENV_TUNER_ID = "KERASTUNER_TUNER_ID"
ENV_ORACLE_IP = "KERASTUNER_ORACLE_IP"
ENV_ORACLE_PORT = "KERASTUNER_ORACLE_PORT"
_WORKER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
DISTRIBUTE_CHOICES = ("none", "mirrored")


def parse_address(address):
    """``"HOST:PORT"`` (``"[::1]:PORT"`` for IPv6) -> ``(host, port)``."""
    text = str(address).strip()
    match = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:\s\[\]]+):(\d+)", text)
    if not match:
        raise ValueError(f"`chief` must be HOST:PORT, e.g. 127.0.0.1:8000. Received: chief={address!r}")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 1 <= port <= 65535:
        raise ValueError(f"`chief` port must be in [1, 65535]. Received: chief={address!r}")
    return host, port


def check_worker_id(worker_id):
    """A worker id: letters, digits, '_', '.', '-'; "chief" alone names the chief.

    Keras Tuner takes any id containing "chief" for the chief, so a worker's
    id may not contain it.
    """
    if not isinstance(worker_id, str) or not _WORKER_ID.match(worker_id):
        raise ValueError(
            "`worker_id` must be 'chief' or a name of letters, digits, '_', '.' and '-'. "
            f"Received: worker_id={worker_id!r}"
        )
    if CHIEF in worker_id and worker_id != CHIEF:
        raise ValueError(
            f"`worker_id` may contain 'chief' only as the chief's own id 'chief'. Received: worker_id={worker_id!r}"
        )
    return worker_id


@dataclasses.dataclass(frozen=True)
class Cluster:
    """This process's place in a distributed search.

    Args:
        host: where the chief serves its oracles (the chief binds to it;
            ``0.0.0.0`` listens on every interface).
        port: the port of the first search's oracle; search ``i`` of the run
            uses ``port + i``.
        worker_id: "chief", or this worker's id (unique in the cluster; a
            worker restarted with the same id takes over its trial).
    """

    host: str
    port: int
    worker_id: str

    @classmethod
    def from_flags(cls, chief, worker_id):
        """From ``--chief HOST:PORT --worker-id ID``; None when neither is given."""
        if chief is None and worker_id is None:
            return None
        if chief is None:
            raise ValueError(f"`--worker-id` needs `--chief HOST:PORT`. Received: worker_id={worker_id!r}")
        if worker_id is None:
            raise ValueError(f"`--chief` needs `--worker-id` ('chief' or a worker id). Received: chief={chief!r}")
        host, port = parse_address(chief)
        return cls(host, port, check_worker_id(worker_id))

    @property
    def is_chief(self):
        return self.worker_id == CHIEF

    def port_of(self, search_index):
        port = self.port + int(search_index)
        if port > 65535:
            raise ValueError(f"The chief's port {self.port} leaves no port for search {search_index}.")
        return port

    def environment(self, search_index=0):
        """Keras Tuner's variables for search ``search_index`` of the run."""
        return {
            ENV_TUNER_ID: self.worker_id,
            ENV_ORACLE_IP: self.host,
            ENV_ORACLE_PORT: str(self.port_of(search_index)),
        }

    @contextlib.contextmanager
    def activate(self, search_index=0):
        """Sets the variables while a search's tuner is built and run; restores them after."""
        with _environment(self.environment(search_index)):
            yield self


@contextlib.contextmanager
def _environment(values):
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def local_resume(project_dir):
    """Resumes, in one process, a search last run by a chief.

    Keras Tuner reloads the oracle's state only through the tuner file of the
    process's own id: a chief writes ``chief.json``, a local search reads
    ``tuner0.json``. Running the local search under the chief's id (without an
    oracle address, so not as a chief) picks up every trial the cluster
    finished; trials that were still running are run again.
    """
    if (Path(project_dir) / f"{CHIEF}.json").exists() and ENV_ORACLE_IP not in os.environ:
        with _environment({ENV_TUNER_ID: CHIEF}):
            yield
    else:
        yield


def grpc_host(host):
    """``host`` as gRPC addresses write it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


def mirrored_strategy(name):
    """The `distribution_strategy` for the tuners: None for "none", a MirroredStrategy for "mirrored".

    `tf.distribute.MirroredStrategy` copies each trial's model onto every
    local GPU (every logical CPU device where there is none) and splits each
    batch between them; the batch size stays the global one. TensorFlow
    backend only.
    """
    if name not in DISTRIBUTE_CHOICES:
        raise ValueError(f"`distribute` must be one of {list(DISTRIBUTE_CHOICES)}. Received: distribute={name!r}")
    if name == "none":
        return None
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "`distribute='mirrored'` uses tf.distribute and needs KERAS_BACKEND=tensorflow. "
            f"Received: distribute={name!r} with the {keras.backend.backend()!r} backend."
        )
    import tensorflow as tf

    return tf.distribute.MirroredStrategy()
