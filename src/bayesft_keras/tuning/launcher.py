"""`launch`: a chief and N workers of a distributed search on this machine, and their logs.

`launch` starts them as subprocesses of `bayesft-keras tune`, logs each into
`RUN/logs/<id>.log`, restarts a worker that dies (Keras Tuner gives a
restarted worker the trial its predecessor held, so the lost trial is run
again), and exits when the chief does. The run directory is shared by every
process: workers save each trial's model there, and the chief, once every
search has ended, reads the best models back and writes the reports.
Trials whose saved state is still RUNNING at the end are lost (`lost_trials`).

Every process of a launch shares one token (`process_plan`): a random one
made for the launch (or `BAYESFT_CHIEF_TOKEN` when it is set, so that
workers started by hand elsewhere can join), passed in that variable, never on
a command line; or the user's `--token-file`, passed to every process.
"""

import dataclasses
import json
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

from bayesft_keras.tuning.cluster import CHIEF
from bayesft_keras.tuning.cluster import ENV_CHIEF_TOKEN
from bayesft_keras.tuning.cluster import ENV_ORACLE_IP
from bayesft_keras.tuning.cluster import ENV_ORACLE_PORT
from bayesft_keras.tuning.cluster import ENV_TUNER_ID
from bayesft_keras.tuning.cluster import ChiefSecurity
from bayesft_keras.tuning.cluster import check_token
from bayesft_keras.tuning.cluster import every_interface
from bayesft_keras.tuning.cluster import grpc_host
from bayesft_keras.utils import checks

USAGE_ERROR = 2  # the CLI's exit code for bad input: starting again would not help

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
    """The trials in a worker's log: `(started, ended)` lists of dicts, in order."""
    started, ended = [], []
    for line in text.splitlines():
        if m := _STARTED.match(line):
            started.append({"worker": m["worker"], "method": m["method"], "trial": m["trial"], "pid": int(m["pid"])})
        elif m := _ENDED.match(line):
            ended.append({"worker": m["worker"], "method": m["method"], "trial": m["trial"], "status": m["status"],
                          "metrics": json.loads(m["json"])})
    return started, ended


# -- launch: a chief and N workers on this machine ----------------------------------


def free_port(host="127.0.0.1", count=1):
    """A port with `count - 1` free ports after it (checked now; may be taken later)."""
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
    env: dict = None
    process: subprocess.Popen = None
    starts: int = 0
    exit_codes: list = dataclasses.field(default_factory=list)

    def start(self):
        self.starts += 1
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "a")
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        if self.starts == 1:
            log.write(f"--- {stamp} {self.worker_id}: {' '.join(self.command)} ---\n")
        else:
            log.write(f"\n--- {stamp} {self.worker_id} restarted (start {self.starts}) ---\n")
        log.flush()
        self.process = subprocess.Popen(
            self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env
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


def process_plan(tune_args, directory, workers, chief_address, *, gpus=None, token_file=None, tls_cert=None,
                 tls_key=None, tls_ca=None, environ=None):
    """`{id: (command, environment)}` of every process of a launch: the chief, then tuner0, tuner1, ...

    The processes share one token: `token_file` (`--token-file` on every
    command line) or, without it, `BAYESFT_CHIEF_TOKEN` in each one's
    environment: the value in `environ` (default: this process's) when it is
    set, else a random token made here. With `tls_cert`/`tls_key` the
    chief serves over TLS and the workers trust `tls_ca` (default: the
    chief's certificate, self-signed). Nothing is started.
    """
    environ = dict(os.environ if environ is None else environ)
    env = dict(environ, PYTHONUNBUFFERED="1")
    for key in (ENV_TUNER_ID, ENV_ORACLE_IP, ENV_ORACLE_PORT, ENV_CHIEF_TOKEN):
        env.pop(key, None)
    chief_args, worker_args = [], []
    if token_file is not None:
        chief_args += ["--token-file", str(Path(token_file).absolute())]
        worker_args += ["--token-file", str(Path(token_file).absolute())]
    elif environ.get(ENV_CHIEF_TOKEN) is not None:
        env[ENV_CHIEF_TOKEN] = check_token(environ[ENV_CHIEF_TOKEN])
    else:
        env[ENV_CHIEF_TOKEN] = secrets.token_urlsafe(32)
    if tls_cert is not None or tls_key is not None:
        chief_args += ["--tls-cert", str(Path(tls_cert).absolute()), "--tls-key", str(Path(tls_key).absolute())]
        worker_args += ["--tls-ca", str(Path(tls_ca if tls_ca is not None else tls_cert).absolute())]
    ids = [CHIEF] + [f"tuner{i}" for i in range(workers)]
    envs = {worker_id: env for worker_id in ids}
    if gpus:
        gpus = [str(g).strip() for g in gpus]
        shared = dict(env, TF_FORCE_GPU_ALLOW_GROWTH="true", XLA_PYTHON_CLIENT_PREALLOCATE="false")
        envs = {worker_id: dict(shared, CUDA_VISIBLE_DEVICES=gpus[max(i - 1, 0) % len(gpus)])
                for i, worker_id in enumerate(ids)}
    return {
        worker_id: (
            tune_command([*tune_args, *(chief_args if worker_id == CHIEF else worker_args)], directory,
                         chief_address, worker_id),
            envs[worker_id],
        )
        for worker_id in ids
    }


def launch(tune_args, directory, workers, *, host="127.0.0.1", port=None, searches=1, restarts=2, gpus=None,
           grace_seconds=60, poll_seconds=0.5, echo=print, token_file=None, tls_cert=None, tls_key=None,
           tls_ca=None):
    """Runs one search as a chief and `workers` workers on this machine; waits for it.

    Args:
        tune_args: the `bayesft-keras tune` options every process gets
            (preset, overrides), without `--dir`, `--chief`, `--worker-id`.
        directory: the run directory; logs go to `directory/logs/<id>.log`.
        workers: how many workers (ids tuner0, tuner1, ...).
        host: the chief's address.
        port: the first oracle port (default: a free one); search `i` of
            the run uses `port + i`.
        searches: how many searches the run holds (BayesFT + baselines), to
            find free ports for all of them.
        restarts: how often a worker that dies is started again with its id
            (it then runs again the trial it held).
        gpus: GPU ids (as CUDA_VISIBLE_DEVICES counts them) to spread the
            workers over, one each in turn; the chief, which trains nothing
            but scores the best models at the end, sees the first. Each
            process then allocates GPU memory as it needs it instead of
            taking it all (TF_FORCE_GPU_ALLOW_GROWTH, XLA_PYTHON_CLIENT_PREALLOCATE).
            None: every process sees what this one sees.
        grace_seconds: how long workers may run on once the chief has ended.
        echo: where progress lines go.
        token_file: a file holding the run's token, given to every process;
            None: a random token per launch (`BAYESFT_CHIEF_TOKEN` when
            set), in the processes' environment (see `process_plan`).
        tls_cert, tls_key: the chief's TLS certificate and private key (PEM):
            it then serves over TLS.
        tls_ca: the certificate the workers check the chief's against
            (default: `tls_cert`, self-signed).

    Returns:
        a `LaunchResult`; its exit code is 0 when the chief and every worker
        ended well, 1 when the search ended with lost trials or a failed
        process, 130 when interrupted.
    """
    checks.integer("workers", workers, minimum=1)
    checks.integer("restarts", restarts, minimum=0)
    # Every file is read now: a bad one stops the launch before any process starts.
    tls = dict(tls_cert=tls_cert, tls_key=tls_key, tls_ca=tls_ca)
    security = ChiefSecurity.from_flags(True, token_file=token_file, **tls)
    ChiefSecurity.from_flags(False, **tls)
    directory = Path(directory)
    logs = directory / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host, searches)
    chief_address = f"{grpc_host(host)}:{port}"
    if every_interface(host) and not security.cert:
        print(f"Warning: the chief listens on every interface ({host}) without TLS: its token and trials cross "
              "the network in clear text; give launch --tls-cert and --tls-key, or --host 127.0.0.1.",
              file=sys.stderr, flush=True)
    plan = process_plan(tune_args, directory, workers, chief_address, gpus=gpus, token_file=token_file, **tls)
    ids = list(plan)
    procs = {
        worker_id: _Process(worker_id, command, logs / f"{worker_id}.log", env=env)
        for worker_id, (command, env) in plan.items()
    }
    echo(f"chief on {chief_address}, {workers} worker(s); logs in {logs}")
    for proc in procs.values():
        proc.start()
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
                    proc.start()
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
    """`{project: [trial ids]}` of trials whose saved state is still RUNNING."""
    lost = {}
    for trial_file in sorted(Path(kt_directory).glob("*/trial_*/trial.json")):
        try:
            state = json.loads(trial_file.read_text())
        except (OSError, ValueError):
            continue
        if state.get("status") == "RUNNING":
            lost.setdefault(trial_file.parent.parent.name, []).append(str(state.get("trial_id")))
    return lost
