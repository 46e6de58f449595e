"""Distributed tuning on Keras Tuner's chief/worker engine, and the `launch` supervisor.

Keras Tuner spreads a search over processes: the chief holds the oracle and
serves it over gRPC, workers ask it for trials, train and score them, and
report back. The parts live in three modules, all re-exported here:

- `bayesft_keras.tuning.cluster`: a process's place in the run (`Cluster`,
  ``--chief HOST:PORT --worker-id ID``, Keras Tuner's environment variables,
  `local_resume`) and the per-trial `mirrored_strategy`.
- `bayesft_keras.tuning.chief_server`: `OracleServers`, the chief's gRPC
  oracle servers (the one module on Keras Tuner internals).
- `bayesft_keras.tuning.launcher`: `launch`, a chief and N workers on this
  machine as subprocesses, their logs (`read_worker_log`) and `lost_trials`.

The run directory must be shared by every process (a network file system when
several hosts take part).
"""

from bayesft_keras.tuning.chief_server import OracleServers
from bayesft_keras.tuning.cluster import CHIEF
from bayesft_keras.tuning.cluster import DISTRIBUTE_CHOICES
from bayesft_keras.tuning.cluster import ENV_ORACLE_IP
from bayesft_keras.tuning.cluster import ENV_ORACLE_PORT
from bayesft_keras.tuning.cluster import ENV_TUNER_ID
from bayesft_keras.tuning.cluster import Cluster
from bayesft_keras.tuning.cluster import check_worker_id
from bayesft_keras.tuning.cluster import local_resume
from bayesft_keras.tuning.cluster import mirrored_strategy
from bayesft_keras.tuning.cluster import parse_address
from bayesft_keras.tuning.launcher import USAGE_ERROR
from bayesft_keras.tuning.launcher import LaunchResult
from bayesft_keras.tuning.launcher import free_port
from bayesft_keras.tuning.launcher import launch
from bayesft_keras.tuning.launcher import lost_trials
from bayesft_keras.tuning.launcher import read_worker_log
from bayesft_keras.tuning.launcher import trial_ended_line
from bayesft_keras.tuning.launcher import trial_started_line
from bayesft_keras.tuning.launcher import tune_command

__all__ = [
    "CHIEF",
    "DISTRIBUTE_CHOICES",
    "ENV_ORACLE_IP",
    "ENV_ORACLE_PORT",
    "ENV_TUNER_ID",
    "USAGE_ERROR",
    "Cluster",
    "LaunchResult",
    "OracleServers",
    "check_worker_id",
    "free_port",
    "launch",
    "local_resume",
    "lost_trials",
    "mirrored_strategy",
    "parse_address",
    "read_worker_log",
    "trial_ended_line",
    "trial_started_line",
    "tune_command",
]
