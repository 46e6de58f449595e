"""Distributed tuning on Keras Tuner's chief/worker engine, and the `launch` supervisor.

Keras Tuner spreads a search over processes: the chief holds the oracle and
serves it over gRPC, workers ask it for trials, train and score them, and
report back. A process learns its role from three environment variables:
``KERASTUNER_TUNER_ID`` ("chief" or the worker's id), ``KERASTUNER_ORACLE_IP``
and ``KERASTUNER_ORACLE_PORT``. `Cluster` maps ``bayesft-keras tune --chief
HOST:PORT --worker-id ID`` onto them.

A run holds one search per method (BayesFT, then each baseline), each with its
own oracle: the chief serves search ``i`` on port ``PORT + i``, so a worker
that moves on to the next search can never reach the oracle of the previous
one. The run directory must be shared by every process (a network file
system when several hosts take part): workers save each trial's model there,
and the chief, once every search has ended, reads the best models back and
writes the reports, as a search on one machine does.

`launch` starts a chief and N workers on this machine as subprocesses of
``bayesft-keras tune``, logs each into ``RUN/logs/<id>.log``, restarts a
worker that dies (Keras Tuner gives a restarted worker the trial its
predecessor held, so the lost trial is run again), and exits when the chief
does.

`mirrored_strategy` gives the per-trial data-parallel training
(`tf.distribute.MirroredStrategy` over the local GPUs) passed to the tuners.
"""

import contextlib
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

CHIEF = "chief"
ENV_TUNER_ID = "KERASTUNER_TUNER_ID"
ENV_ORACLE_IP = "KERASTUNER_ORACLE_IP"
ENV_ORACLE_PORT = "KERASTUNER_ORACLE_PORT"
_WORKER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
DISTRIBUTE_CHOICES = ("none", "mirrored")
USAGE_ERROR = 2  # the CLI's exit code for bad input: starting again would not help


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


class OracleServers:
    """The chief's part of a run: one Keras Tuner oracle server per search.

    `serve` serves a search's oracle until that search is over: as in
    ``keras_tuner``'s ``oracle_chief.start_server``, once the oracle has told a
    worker the search is over and no worker holds a trial or is still asking
    (checked every ``poll_seconds`` here rather than every 20 s). The server
    then keeps answering, so that a worker restarted late learns at once that
    the search is over and moves on to the next one; `close` (or leaving the
    ``with`` block) stops them all. Keras Tuner's own servicer answers the
    workers; after each finished trial the oracle's state is saved (a worker
    does not save it) and ``on_trial_end(trial)`` runs. SIGTERM ends serving.
    """

    def __init__(self, poll_seconds=0.5):
        self.poll_seconds = poll_seconds
        self._servers = []
        self._stopping = []
        self._previous_handler = None

    def __enter__(self):
        self._previous_handler = _on_sigterm(lambda: self._stopping.append(True))
        return self

    def __exit__(self, *exc):
        self.close()
        _restore_sigterm(self._previous_handler)

    def serve(self, tuner, host, port, on_trial_end=None):
        from concurrent import futures

        import grpc
        from keras_tuner.src import protos
        from keras_tuner.src.distribute import oracle_chief

        class Servicer(oracle_chief.OracleServicer):
            def EndTrial(self, request, context):
                response = super().EndTrial(request, context)
                self.oracle.save()
                if on_trial_end is not None:
                    try:
                        on_trial_end(self.oracle.get_trial(request.trial.trial_id))
                    except Exception as e:  # a log must not stop the search
                        print(f"[chief] after trial {request.trial.trial_id}: {e!r}", flush=True)
                return response

        tuner.save()
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
        servicer = Servicer(tuner.oracle)
        protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
        try:
            bound = server.add_insecure_port(f"{_grpc_host(host)}:{port}")
        except RuntimeError:
            bound = 0
        if not bound:
            raise ValueError(f"The chief cannot listen on {host}:{port} (address in use or not on this host).")
        server.start()
        self._servers.append(server)
        print(f"[chief] serving the oracle of {tuner.project_name!r} on {host}:{port} (pid {os.getpid()})",
              flush=True)
        while not self._stopping:
            if servicer.stop_triggered and oracle_chief.exit_chief(tuner.oracle):
                break
            time.sleep(self.poll_seconds)
        tuner.oracle.save()
        if self._stopping:
            raise KeyboardInterrupt("the chief was asked to stop")

    def close(self):
        for server in self._servers:
            server.stop(grace=1).wait()
        self._servers = []


def _grpc_host(host):
    return f"[{host}]" if ":" in host else host


def _on_sigterm(callback):
    try:
        return signal.signal(signal.SIGTERM, lambda signum, frame: callback())
    except ValueError:  # not the main thread: leave signals alone
        return None


def _restore_sigterm(previous):
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


# -- a worker's log: one line when a trial starts and one when it ends ---------

_STARTED = re.compile(r"^\[(?P<worker>[^\]]+)\] (?P<method>\S+) trial (?P<trial>\S+) started \(pid (?P<pid>\d+)\)")
_ENDED = re.compile(r"^\[(?P<worker>[^\]]+)\] (?P<method>\S+) trial (?P<trial>\S+) (?P<status>[a-z_]+): (?P<json>\{.*\})$")


def trial_started_line(worker_id, method, trial):
    values = json.dumps(trial.hyperparameters.values)
    return f"[{worker_id}] {method} trial {trial.trial_id} started (pid {os.getpid()}): {values}"


def trial_ended_line(worker_id, method, trial, metrics):
    values = json.dumps({k: float(v) for k, v in (metrics or {}).items()})
    return f"[{worker_id}] {method} trial {trial.trial_id} {str(trial.status).lower()}: {values}"


def read_worker_log(text):
    """The trials in a worker's log: ``(started, ended)`` lists of dicts, in order."""
    started, ended = [], []
    for line in text.splitlines():
        if m := _STARTED.match(line):
            started.append({"worker": m["worker"], "method": m["method"], "trial": m["trial"], "pid": int(m["pid"])})
        elif m := _ENDED.match(line):
            ended.append({"worker": m["worker"], "method": m["method"], "trial": m["trial"], "status": m["status"],
                          "metrics": json.loads(m["json"])})
    return started, ended


# -- per-trial data parallelism --------------------------------------------------


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


# -- launch: a chief and N workers on this machine ----------------------------------


def free_port(host="127.0.0.1", count=1):
    """A port with ``count - 1`` free ports after it (checked now; may be taken later)."""
    import socket

    for _ in range(50):
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port + count - 1 <= 65535 and all(_port_free(host, port + i) for i in range(1, count)):
            return port
    raise ValueError(f"No {count} consecutive free ports found on {host}.")


def _port_free(host, port):
    import socket

    with socket.socket() as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


@dataclasses.dataclass
class _Process:
    worker_id: str
    command: list
    log_path: Path
    process: subprocess.Popen = None
    starts: int = 0
    exit_codes: list = dataclasses.field(default_factory=list)

    def start(self, env):
        self.starts += 1
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "a")
        if self.starts > 1:
            log.write(f"\n--- {self.worker_id} restarted (start {self.starts}) ---\n")
            log.flush()
        self.process = subprocess.Popen(
            self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
        log.close()  # the child holds its own descriptor

    def poll(self):
        return None if self.process is None else self.process.poll()

    def stop(self, timeout=20):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclasses.dataclass
class LaunchResult:
    """What `launch` saw: the exit code, per-process exit codes, lost trials."""

    exit_code: int
    exit_codes: dict  # worker id -> every exit code, in order (restarts included)
    lost_trials: dict  # project -> trial ids still RUNNING in the oracle at the end
    logs: Path


def tune_command(tune_args, directory, chief, worker_id):
    """The command line of one process of a launched search."""
    return [
        sys.executable, "-m", "bayesft_keras_cli", "tune", *tune_args,
        "--dir", str(directory), "--chief", chief, "--worker-id", worker_id,
    ]


def launch(tune_args, directory, workers, *, host="127.0.0.1", port=None, searches=1, restarts=2,
           grace_seconds=60, poll_seconds=0.5, echo=print):
    """Runs one search as a chief and ``workers`` workers on this machine; waits for it.

    Args:
        tune_args: the ``bayesft-keras tune`` options every process gets
            (preset, overrides), without ``--dir``, ``--chief``, ``--worker-id``.
        directory: the run directory; logs go to ``directory/logs/<id>.log``.
        workers: how many workers (ids tuner0, tuner1, ...).
        host: the chief's address.
        port: the first oracle port (default: a free one); search ``i`` of
            the run uses ``port + i``.
        searches: how many searches the run holds (BayesFT + baselines), to
            find free ports for all of them.
        restarts: how often a worker that dies is started again with its id
            (it then runs again the trial it held).
        grace_seconds: how long workers may run on once the chief has ended.
        echo: where progress lines go.

    Returns:
        a `LaunchResult`; its exit code is 0 when the chief and every worker
        ended well, 1 when the search ended with lost trials or a failed
        process, 130 when interrupted.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"`workers` must be an integer >= 1. Received: workers={workers!r}")
    if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < 0:
        raise ValueError(f"`restarts` must be an integer >= 0. Received: restarts={restarts!r}")
    directory = Path(directory)
    logs = directory / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host, searches)
    chief_address = f"{_grpc_host(host)}:{port}"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for key in (ENV_TUNER_ID, ENV_ORACLE_IP, ENV_ORACLE_PORT):
        env.pop(key, None)
    ids = [CHIEF] + [f"tuner{i}" for i in range(workers)]
    procs = {
        worker_id: _Process(worker_id, tune_command(tune_args, directory, chief_address, worker_id),
                            logs / f"{worker_id}.log")
        for worker_id in ids
    }
    for proc in procs.values():
        if proc.log_path.exists():
            proc.log_path.unlink()
    echo(f"chief on {chief_address}, {workers} worker(s); logs in {logs}")
    for proc in procs.values():
        proc.start(env)
    chief = procs[CHIEF]
    exit_code = 0
    chief_ended_at = None
    failed = []  # workers that ended badly and were not started again
    finished_seen = 0
    try:
        while True:
            finished = _finished_trials(directory / "trials.csv")
            if finished != finished_seen:
                echo(f"trials finished: {finished}")
                finished_seen = finished
            code = chief.poll()
            if code is not None and chief_ended_at is None:
                chief.exit_codes.append(code)
                chief_ended_at = time.monotonic()
                echo(f"chief ended with exit code {code}")
                if code != 0:
                    exit_code = 1
            for worker_id in ids[1:]:
                proc = procs[worker_id]
                code = proc.poll()
                if code is None or proc.process is None:
                    continue
                proc.exit_codes.append(code)
                proc.process = None
                if code == 0:
                    echo(f"{worker_id} finished")
                elif chief_ended_at is None and proc.starts <= restarts and code != USAGE_ERROR:
                    echo(f"{worker_id} ended with exit code {code}: starting it again (it runs its trial again)")
                    proc.start(env)
                else:
                    echo(f"{worker_id} ended with exit code {code}")
                    failed.append(worker_id)
                    exit_code = 1
            running = [w for w in ids[1:] if procs[w].process is not None]
            if chief_ended_at is not None:
                if not running:
                    break
                if time.monotonic() - chief_ended_at > grace_seconds:
                    echo(f"stopping worker(s) still running after the chief ended: {', '.join(running)}")
                    for w in running:
                        procs[w].stop()
                        procs[w].exit_codes.append(procs[w].process.returncode)
                        procs[w].process = None
                    exit_code = 1
                    break
            elif not running and failed:
                # The chief waits for the trials of workers that could not be
                # started again: they are lost to this launch.
                echo(f"no worker left and the chief waits for the trial(s) of {', '.join(failed)}: stopping it")
                chief.stop()
                chief.exit_codes.append(chief.process.returncode)
                break
            time.sleep(poll_seconds)
    except KeyboardInterrupt:
        echo("interrupted: stopping the chief and the workers")
        for proc in procs.values():
            proc.stop()
        exit_code = 130
    lost = lost_trials(directory / "kt")
    for project, trial_ids in lost.items():
        echo(
            f"trial(s) {', '.join(trial_ids)} of {project!r} did not finish: run the same `bayesft-keras tune` "
            f"options with --dir {directory} (no --chief) to run them again and write the reports"
        )
    if exit_code == 0 and lost:
        exit_code = 1
    return LaunchResult(
        exit_code=exit_code,
        exit_codes={w: list(procs[w].exit_codes) for w in ids},
        lost_trials=lost,
        logs=logs,
    )


def _finished_trials(path):
    try:
        with open(path) as f:
            return max(sum(1 for _ in f) - 1, 0)
    except OSError:
        return 0


def lost_trials(kt_directory):
    """``{project: [trial ids]}`` of trials whose saved state is still RUNNING."""
    lost = {}
    for trial_file in sorted(Path(kt_directory).glob("*/trial_*/trial.json")):
        try:
            state = json.loads(trial_file.read_text())
        except (OSError, ValueError):
            continue
        if state.get("status") == "RUNNING":
            lost.setdefault(trial_file.parent.parent.name, []).append(str(state.get("trial_id")))
    return lost
