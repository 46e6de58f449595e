"""Distributed tuning on Keras Tuner's chief/worker engine, and the `launch` supervisor.

Keras Tuner spreads a search over processes: the chief holds the oracle and
serves it over gRPC, workers ask it for trials, train and score them, and
report back. The parts live in three modules, all re-exported here:

- `bayesft_keras.tuning.cluster`: a process's place in the run (`Cluster`,
  `--chief HOST:PORT --worker-id ID`, Keras Tuner's environment variables,
  `local_resume`) and the per-trial `mirrored_strategy`.
- `bayesft_keras.tuning.chief_server`: `OracleServers`, the chief's gRPC
  oracle servers (the one module on Keras Tuner internals); the run's token,
  checked on every call (`TokenServerInterceptor`) and sent by the workers
  (`ChiefClientInterceptor`, `secure_worker_oracle`); TLS.
- `bayesft_keras.tuning.launcher`: `launch`, a chief and N workers on this
  machine as subprocesses, their logs (`read_worker_log`) and `lost_trials`.

The run directory must be shared by every process (a network file system when
several hosts take part).
"""

from bayesft_keras.tuning.chief_server import ChiefClientInterceptor
from bayesft_keras.tuning.chief_server import ChiefRefused
from bayesft_keras.tuning.chief_server import OracleServers
from bayesft_keras.tuning.chief_server import TokenServerInterceptor
from bayesft_keras.tuning.chief_server import oracle_channel
from bayesft_keras.tuning.chief_server import oracle_stub
from bayesft_keras.tuning.chief_server import secure_worker_oracle
from bayesft_keras.tuning.cluster import CHIEF
from bayesft_keras.tuning.cluster import DISTRIBUTE_CHOICES
from bayesft_keras.tuning.cluster import ENV_CHIEF_TOKEN
from bayesft_keras.tuning.cluster import ENV_ORACLE_IP
from bayesft_keras.tuning.cluster import ENV_ORACLE_PORT
from bayesft_keras.tuning.cluster import ENV_TUNER_ID
from bayesft_keras.tuning.cluster import ChiefSecurity
from bayesft_keras.tuning.cluster import Cluster
from bayesft_keras.tuning.cluster import active_cluster
from bayesft_keras.tuning.cluster import check_token
from bayesft_keras.tuning.cluster import check_worker_id
from bayesft_keras.tuning.cluster import local_resume
from bayesft_keras.tuning.cluster import mirrored_strategy
from bayesft_keras.tuning.cluster import parse_address
from bayesft_keras.tuning.cluster import read_token_file
from bayesft_keras.tuning.launcher import USAGE_ERROR
from bayesft_keras.tuning.launcher import LaunchResult
from bayesft_keras.tuning.launcher import free_port
from bayesft_keras.tuning.launcher import launch
from bayesft_keras.tuning.launcher import lost_trials
from bayesft_keras.tuning.launcher import process_plan
from bayesft_keras.tuning.launcher import read_worker_log
from bayesft_keras.tuning.launcher import trial_ended_line
from bayesft_keras.tuning.launcher import trial_started_line
from bayesft_keras.tuning.launcher import tune_command

__all__ = [
    "CHIEF",
    "DISTRIBUTE_CHOICES",
    "ENV_CHIEF_TOKEN",
    "ENV_ORACLE_IP",
    "ENV_ORACLE_PORT",
    "ENV_TUNER_ID",
    "USAGE_ERROR",
    "ChiefClientInterceptor",
    "ChiefRefused",
    "ChiefSecurity",
    "Cluster",
    "LaunchResult",
    "OracleServers",
    "TokenServerInterceptor",
    "active_cluster",
    "check_token",
    "check_worker_id",
    "free_port",
    "launch",
    "local_resume",
    "lost_trials",
    "mirrored_strategy",
    "oracle_channel",
    "oracle_stub",
    "parse_address",
    "process_plan",
    "read_token_file",
    "read_worker_log",
    "secure_worker_oracle",
    "trial_ended_line",
    "trial_started_line",
    "tune_command",
]
