"""Nobody else in the search: the chief's token (and TLS), on loopback, without training.

The chief serves a small oracle (a RandomSearch over one Float) on a free
loopback port. A worker with the run's token fetches a trial and reports it;
a client without the token, or with another, gets UNAUTHENTICATED for each of
the oracle's 7 calls and leaves the oracle as it was (same trials, same
ongoing trials, same end order, same files on disk). The launcher gives every
process the same token in its environment, never on a command line.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import types

import grpc
import keras_tuner as kt
import pytest
from keras_tuner.src import protos
from keras_tuner.src.distribute import oracle_client
from typer.testing import CliRunner

from bayesft_keras.cli import app
from bayesft_keras.tuning import distributed
from bayesft_keras.tuning import launcher as launcher_lib
from bayesft_keras.tuning.cluster import ENV_CHIEF_TOKEN
from bayesft_keras.tuning.cluster import ChiefSecurity

TOKEN = "the-runs-token-" + "a" * 24
WRONG = "not-the-token-" + "b" * 24
HOST = "127.0.0.1"
CALL_TIMEOUT = 20  # seconds: a refused call answers at once
SERVICE = protos.get_service()


def _oracle(directory, max_trials=4):
    hp = kt.HyperParameters()
    hp.Float("rate", 0.0, 1.0)
    oracle = kt.oracles.RandomSearchOracle(
        objective=kt.Objective("score", "max"), max_trials=max_trials, hyperparameters=hp, seed=3
    )
    oracle._set_project_dir(str(directory), "search")
    return oracle


@pytest.fixture
def chief(tmp_path):
    """A chief serving a small oracle with the run's token on a free loopback port: (oracle, port, directory)."""
    directory = tmp_path / "chief"
    oracle = _oracle(directory)
    port = launcher_lib.free_port(HOST)
    with distributed.OracleServers(security=ChiefSecurity(token=TOKEN)) as servers:
        servers.start(oracle, HOST, port)
        yield oracle, port, directory


def _worker(monkeypatch, tmp_path, port, security, worker_id="tuner0"):
    """Keras Tuner's own worker client, on our channel (as `secure_worker_oracle` gives a worker tuner)."""
    monkeypatch.setenv(distributed.ENV_ORACLE_IP, HOST)
    monkeypatch.setenv(distributed.ENV_ORACLE_PORT, str(port))
    monkeypatch.setenv(distributed.ENV_TUNER_ID, worker_id)
    monkeypatch.setattr(oracle_client, "TIMEOUT", CALL_TIMEOUT)
    tuner = types.SimpleNamespace(oracle=oracle_client.OracleClient(_oracle(tmp_path / f"local-{worker_id}")))
    cluster = distributed.Cluster(HOST, port, worker_id, security)
    assert distributed.secure_worker_oracle(tuner, cluster) is tuner
    return tuner.oracle


def _run_one_trial(client, worker_id="tuner0", score=0.7):
    trial = client.create_trial(worker_id)
    client.update_trial(trial.trial_id, {"score": score})
    trial.status = "COMPLETED"
    client.end_trial(trial)
    return trial.trial_id


def _snapshot(oracle, directory):
    """Everything a call could change: the oracle's state, its trials, its tuners, its files."""
    trials = {trial_id: trial.get_state() for trial_id, trial in oracle.trials.items()}
    files = {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}
    return {
        "state": json.dumps(oracle.get_state(), sort_keys=True, default=str),
        "trials": json.dumps(trials, sort_keys=True, default=str),
        "ongoing": {tuner_id: trial.trial_id for tuner_id, trial in oracle.ongoing_trials.items()},
        "end_order": list(oracle.end_order),
        "tuner_ids": sorted(oracle.tuner_ids),
        "files": files,
    }


# -- (a) the right token ------------------------------------------------------------------


def test_a_worker_with_the_token_fetches_a_trial_and_reports_it(chief, monkeypatch, tmp_path):
    oracle, port, _ = chief
    client = _worker(monkeypatch, tmp_path, port, ChiefSecurity(token=TOKEN))
    assert client.get_space().get_config()["space"][0]["config"]["name"] == "rate"
    trial_id = _run_one_trial(client, score=0.7)
    assert oracle.end_order == [trial_id] and not oracle.ongoing_trials
    assert oracle.trials[trial_id].status == "COMPLETED" and oracle.trials[trial_id].score == pytest.approx(0.7)
    assert client.get_trial(trial_id).score == pytest.approx(0.7)
    assert [t.trial_id for t in client.get_best_trials(1)] == [trial_id]


# -- (b) no token, a wrong token: refused, nothing changes ---------------------------------


def _every_call(stub, trial, metadata):
    """Each of the oracle's calls, as an intruder would make it: name -> thunk."""
    made_up = trial.to_proto()
    made_up.status = protos.get_proto().TrialStatus.COMPLETED
    hp = kt.HyperParameters()
    hp.Float("intruder", 0.0, 1.0)
    options = dict(metadata=metadata, timeout=CALL_TIMEOUT)
    return {
        "GetSpace": lambda: stub.GetSpace(SERVICE.GetSpaceRequest(), **options),
        "UpdateSpace": lambda: stub.UpdateSpace(SERVICE.UpdateSpaceRequest(hyperparameters=hp.to_proto()), **options),
        "CreateTrial": lambda: stub.CreateTrial(SERVICE.CreateTrialRequest(tuner_id="intruder"), **options),
        "UpdateTrial": lambda: stub.UpdateTrial(
            SERVICE.UpdateTrialRequest(trial_id=trial.trial_id, metrics={"score": 99.0}, step=0), **options
        ),
        "EndTrial": lambda: stub.EndTrial(SERVICE.EndTrialRequest(trial=made_up), **options),
        "GetTrial": lambda: stub.GetTrial(SERVICE.GetTrialRequest(trial_id=trial.trial_id), **options),
        "GetBestTrials": lambda: stub.GetBestTrials(SERVICE.GetBestTrialsRequest(num_trials=5), **options),
    }


INTRUDERS = {
    "no token": (None, None, "no token"),
    "a wrong token": (WRONG, None, "a wrong token"),
    "the token without its scheme": (None, [("authorization", TOKEN)], "a wrong token"),
    "the token and one more character": (None, [("authorization", f"Bearer {TOKEN}x")], "a wrong token"),
    "the token's prefix": (None, [("authorization", f"Bearer {TOKEN[:-1]}")], "a wrong token"),
    "the token sent twice with another": (
        None, [("authorization", f"Bearer {TOKEN}"), ("authorization", f"Bearer {WRONG}")], "a wrong token"
    ),
    "the token under another key": (None, [("x-token", f"Bearer {TOKEN}")], "no token"),
}


@pytest.mark.parametrize("intruder", list(INTRUDERS))
def test_a_client_without_the_token_is_refused_every_call_and_changes_nothing(
    intruder, chief, monkeypatch, tmp_path, capsys
):
    oracle, port, directory = chief
    worker = _worker(monkeypatch, tmp_path, port, ChiefSecurity(token=TOKEN))
    done = _run_one_trial(worker, score=0.5)  # one trial finished,
    held = worker.create_trial("tuner0")  # one held by a worker
    before = _snapshot(oracle, directory)
    assert before["ongoing"] == {"tuner0": held.trial_id} and before["end_order"] == [done]

    token, metadata, reason = INTRUDERS[intruder]
    stub = distributed.oracle_stub(HOST, port, ChiefSecurity(token=token))
    calls = _every_call(stub, held, metadata)
    servicer = protos.get_service_grpc().OracleServicer
    assert set(calls) == {name for name in vars(servicer) if not name.startswith("_")}  # every call it serves
    for name, call in calls.items():
        with pytest.raises(grpc.RpcError) as refused:
            call()
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, name
        assert refused.value.details() == (
            f"the chief refused /keras_tuner.Oracle/{name}: the call carries {reason} "
            "(--token-file or BAYESFT_CHIEF_TOKEN)"
        )
        if token is not None:  # through our client interceptor: a worker's one-line error
            assert isinstance(refused.value, ValueError)
            assert str(refused.value).startswith(f"The chief at {HOST}:{port} refused this worker: its token is wrong.")

    after = _snapshot(oracle, directory)
    assert after == before  # same trials, same ongoing, same end_order, same files
    assert oracle.trials[held.trial_id].status == "RUNNING" and oracle.get_space().values.keys() == {"rate"}
    log = capsys.readouterr().out
    assert log.count("[chief] refused a call to /keras_tuner.Oracle/") == len(calls)
    assert TOKEN not in log and WRONG not in log

    # The search goes on for the worker with the token.
    held.status = "COMPLETED"
    worker.update_trial(held.trial_id, {"score": 0.25})
    worker.end_trial(held)
    assert oracle.end_order == [done, held.trial_id] and not oracle.ongoing_trials


def test_a_plain_keras_tuner_worker_is_refused_with_a_one_line_message(chief, monkeypatch, tmp_path):
    """A worker without the token, through `secure_worker_oracle`: ChiefRefused, a ValueError (one line)."""
    oracle, port, directory = chief
    before = _snapshot(oracle, directory)
    client = _worker(monkeypatch, tmp_path, port, None)
    with pytest.raises(distributed.ChiefRefused) as refused:
        client.create_trial("tuner0")
    assert str(refused.value) == (
        f"The chief at {HOST}:{port} refused this worker: it sends no token. Give every process of the search "
        "the same --token-file, or the same BAYESFT_CHIEF_TOKEN."
    )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _snapshot(oracle, directory) == before


def test_unknown_calls_are_refused_before_they_are_looked_up(chief):
    _, port, _ = chief
    channel = grpc.insecure_channel(f"{HOST}:{port}")
    nope = channel.unary_unary("/keras_tuner.Oracle/Shutdown")
    with pytest.raises(grpc.RpcError) as refused:
        nope(b"", timeout=CALL_TIMEOUT)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as unknown:
        nope(b"", timeout=CALL_TIMEOUT, metadata=[("authorization", f"Bearer {TOKEN}")])
    assert unknown.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_the_worker_takes_its_token_from_the_environment_without_a_cluster(chief, monkeypatch, tmp_path):
    oracle, port, _ = chief
    monkeypatch.setenv(ENV_CHIEF_TOKEN, TOKEN)
    monkeypatch.setenv(distributed.ENV_ORACLE_IP, HOST)
    monkeypatch.setenv(distributed.ENV_ORACLE_PORT, str(port))
    monkeypatch.setenv(distributed.ENV_TUNER_ID, "tuner0")
    monkeypatch.setattr(oracle_client, "TIMEOUT", CALL_TIMEOUT)
    tuner = types.SimpleNamespace(oracle=oracle_client.OracleClient(_oracle(tmp_path / "local")))
    distributed.secure_worker_oracle(tuner)
    trial_id = _run_one_trial(tuner.oracle, score=0.4)
    assert oracle.end_order == [trial_id]


def test_secure_worker_oracle_leaves_a_chief_or_local_tuner_alone(tmp_path):
    oracle = _oracle(tmp_path)
    tuner = types.SimpleNamespace(oracle=oracle)
    assert distributed.secure_worker_oracle(tuner).oracle is oracle


# -- warnings --------------------------------------------------------------------------------


def _warnings(text):
    return [line for line in text.splitlines() if line.startswith("Warning: ")]


def test_a_chief_without_a_token_works_and_warns_once(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv(ENV_CHIEF_TOKEN, raising=False)
    oracle, port = _oracle(tmp_path / "chief"), launcher_lib.free_port(HOST, 2)
    with distributed.OracleServers() as servers:  # no token anywhere: as `tune --chief` by hand today
        servers.start(oracle, HOST, port)
        servers.start(_oracle(tmp_path / "second"), HOST, port + 1)  # the run's next search: no second warning
        client = _worker(monkeypatch, tmp_path, port, None)
        trial_id = _run_one_trial(client, score=0.9)
    assert oracle.trials[trial_id].score == pytest.approx(0.9)
    assert _warnings(capsys.readouterr().err) == [
        f"Warning: the chief on {HOST}:{port} has no token (--token-file or BAYESFT_CHIEF_TOKEN): anyone who "
        "reaches its port can fetch trials, report made-up scores or end the search."
    ]


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_a_chief_on_every_interface_without_tls_warns(host, tmp_path, capsys):
    port = launcher_lib.free_port(HOST)
    with distributed.OracleServers(security=ChiefSecurity(token=TOKEN)) as servers:
        try:
            servers.start(_oracle(tmp_path), host, port)
        except ValueError:
            pytest.skip(f"this host cannot listen on {host}")
    assert _warnings(capsys.readouterr().err) == [
        f"Warning: the chief listens on every interface ({host}) without TLS: its token and trials cross the "
        "network in clear text; give it --tls-cert and --tls-key, or listen on one address."
    ]


def test_a_chief_with_its_token_on_loopback_says_nothing(chief, capsys):
    assert _warnings(capsys.readouterr().err) == []


# -- TLS ----------------------------------------------------------------------------------------


@pytest.fixture
def certificate(tmp_path):
    """A self-signed certificate for 127.0.0.1 and its key: (cert path, key path)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "chief.crt", tmp_path / "chief.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )
    return cert, key


def test_a_chief_over_tls_serves_workers_that_trust_its_certificate(certificate, monkeypatch, tmp_path, capsys):
    cert, key = certificate
    chief_security = ChiefSecurity.from_flags(True, tls_cert=cert, tls_key=key, environ={ENV_CHIEF_TOKEN: TOKEN})
    worker_security = ChiefSecurity.from_flags(False, tls_ca=cert, environ={ENV_CHIEF_TOKEN: TOKEN})
    assert chief_security.tls and worker_security.tls and chief_security.token == worker_security.token == TOKEN
    oracle, port = _oracle(tmp_path / "chief"), launcher_lib.free_port(HOST)
    with distributed.OracleServers(security=chief_security) as servers:
        servers.start(oracle, "0.0.0.0", port)  # every interface, but over TLS: no warning
        trial_id = _run_one_trial(_worker(monkeypatch, tmp_path, port, worker_security), score=0.3)
        assert oracle.trials[trial_id].score == pytest.approx(0.3)
        before = _snapshot(oracle, tmp_path / "chief")
        plain = protos.get_service_grpc().OracleStub(grpc.insecure_channel(f"{HOST}:{port}"))
        with pytest.raises(grpc.RpcError) as clear_text:  # a client in clear text cannot talk to it
            plain.CreateTrial(SERVICE.CreateTrialRequest(tuner_id="intruder"), timeout=5,
                              metadata=[("authorization", f"Bearer {TOKEN}")])
        assert clear_text.value.code() == grpc.StatusCode.UNAVAILABLE
        no_token = distributed.oracle_stub(HOST, port, ChiefSecurity(roots=worker_security.roots))
        with pytest.raises(grpc.RpcError) as refused:  # over TLS, but without the token
            no_token.CreateTrial(SERVICE.CreateTrialRequest(tuner_id="intruder"), timeout=CALL_TIMEOUT)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert _snapshot(oracle, tmp_path / "chief") == before
    assert _warnings(capsys.readouterr().err) == []


# -- the token and TLS flags -------------------------------------------------------------------------


def _token_file(tmp_path, text, mode=0o600):
    path = tmp_path / "token"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_the_token_file_comes_before_the_environment(tmp_path, capsys):
    path = _token_file(tmp_path, f"  {TOKEN}\n")
    assert ChiefSecurity.from_flags(True, token_file=path, environ={ENV_CHIEF_TOKEN: WRONG}).token == TOKEN
    assert ChiefSecurity.from_flags(False, environ={ENV_CHIEF_TOKEN: WRONG}).token == WRONG
    assert ChiefSecurity.from_flags(True, environ={}).token is None
    assert _warnings(capsys.readouterr().err) == []
    assert TOKEN not in repr(ChiefSecurity(token=TOKEN)) and "token=set" in repr(ChiefSecurity(token=TOKEN))


def test_a_token_file_others_can_read_is_used_with_a_warning(tmp_path, capsys):
    path = _token_file(tmp_path, TOKEN, mode=0o644)
    assert distributed.read_token_file(path) == TOKEN
    assert _warnings(capsys.readouterr().err) == [
        f"Warning: the token file {str(path)!r} can be read by other users (mode -rw-r--r--); "
        f"`chmod 600 {path}` keeps them out of the search."
    ]


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "`token_file` holds no token. Received: token_file='{path}' (empty)"),
        ("  \n", "`token_file` holds no token. Received: token_file='{path}' (empty)"),
        ("short", "`token_file` must be a token of at least 16 printable ASCII characters without spaces"),
        ("has a space in it, far too", "Received: a value of 26 character(s) in token_file='{path}'"),
    ],
)
def test_bad_token_files_are_named_and_never_quoted(content, message, tmp_path):
    path = _token_file(tmp_path, content)
    with pytest.raises(ValueError) as error:
        distributed.read_token_file(path)
    assert message.format(path=path) in str(error.value)
    if content.strip():
        assert content.strip() not in str(error.value)


def test_a_missing_token_file_is_named(tmp_path):
    path = tmp_path / "nosuch"
    with pytest.raises(ValueError, match=re.escape(f"Received: token_file={str(path)!r} (No such file or directory)")):
        distributed.read_token_file(path)


def test_a_bad_token_in_the_environment_is_named_and_never_quoted():
    with pytest.raises(ValueError) as error:
        ChiefSecurity.from_flags(True, environ={ENV_CHIEF_TOKEN: "tiny"})
    assert str(error.value).startswith("`BAYESFT_CHIEF_TOKEN` must be a token of at least 16 printable")
    assert "Received: a value of 4 character(s)" in str(error.value) and "tiny" not in str(error.value)


@pytest.mark.parametrize(
    "is_chief, flags, message",
    [
        (True, {"tls_cert": "c.pem"}, "`tls_cert` needs `tls_key`: the chief serves over TLS with its certificate "
                                      "and its private key. Received: tls_cert='c.pem'"),
        (True, {"tls_key": "k.pem"}, "`tls_key` needs `tls_cert`"),
        (True, {"tls_ca": "ca.pem"}, "`tls_ca` is for workers: the chief serves over TLS with `tls_cert` and "
                                     "`tls_key`. Received: tls_ca='ca.pem' without tls_cert"),
        (False, {"tls_key": "k.pem"}, "`tls_key` is the chief's: a worker trusts `tls_ca` (or the chief's "
                                      "self-signed `tls_cert`). Received: tls_key='k.pem'"),
        (False, {"tls_ca": "nosuch.pem"}, "`tls_ca` must be a readable PEM file. Received: tls_ca='nosuch.pem' "
                                          "(No such file or directory)"),
    ],
)
def test_bad_tls_flags_name_the_flag_and_value(is_chief, flags, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError) as error:
        ChiefSecurity.from_flags(is_chief, environ={}, **flags)
    assert message in str(error.value)


def test_a_certificate_that_is_no_pem_file_is_named(tmp_path):
    path = tmp_path / "cert.txt"
    path.write_text("not a certificate")
    with pytest.raises(ValueError, match=re.escape(f"`tls_ca` must be a PEM file holding a certificate. "
                                                   f"Received: tls_ca={str(path)!r}")):
        ChiefSecurity.from_flags(False, tls_ca=path, environ={})


@pytest.mark.parametrize(
    "args, message",
    [
        (["tune", "--token-file", "{tmp}/nosuch", "--chief", "127.0.0.1:8000", "--worker-id", "chief"],
         r"`token_file` must be a readable file .* Received: token_file='{tmp}/nosuch'"),
        (["tune", "--token-file", "{tmp}/token"], r"`--token-file` is for a distributed search: it needs `--chief"),
        (["tune", "--tls-cert", "c.pem", "--chief", "127.0.0.1:8000", "--worker-id", "chief"],
         r"`tls_cert` needs `tls_key`"),
        (["launch", "--workers", "1", "--token-file", "{tmp}/nosuch"], r"Received: token_file='{tmp}/nosuch'"),
        (["launch", "--workers", "1", "--tls-key", "k.pem"], r"`tls_key` needs `tls_cert`"),
    ],
)
def test_bad_security_flags_exit_with_one_line(args, message, tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_CHIEF_TOKEN, raising=False)
    _token_file(tmp_path, TOKEN)
    args = [a.format(tmp=tmp_path) for a in args] + ["--dir", str(tmp_path / "run")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert re.search(message.format(tmp=re.escape(str(tmp_path))), lines[0]), lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "run" / "logs").exists()  # a launch stops before it starts anything


# -- (c) the launcher gives every process the token ----------------------------------------------


def _plan(tmp_path, environ=None, **kwargs):
    return launcher_lib.process_plan(
        ["--preset", "quick"], tmp_path / "run", 2, "127.0.0.1:7000", environ={} if environ is None else environ,
        **kwargs,
    )


def test_the_launcher_gives_every_process_one_random_token_in_its_environment(tmp_path):
    plan = _plan(tmp_path, environ={"PATH": "/bin", "KERASTUNER_TUNER_ID": "stale"}, gpus=["0", "1"])
    assert list(plan) == ["chief", "tuner0", "tuner1"]
    tokens = {worker_id: env[ENV_CHIEF_TOKEN] for worker_id, (_, env) in plan.items()}
    token = tokens["chief"]
    assert set(tokens.values()) == {token} and len(token) >= 32
    assert distributed.check_token(token) == token
    for worker_id, (command, env) in plan.items():
        assert token not in " ".join(command)
        assert command[-4:] == ["--chief", "127.0.0.1:7000", "--worker-id", worker_id]
        assert "--token-file" not in command and "KERASTUNER_TUNER_ID" not in env and env["PATH"] == "/bin"
    assert [plan[w][1]["CUDA_VISIBLE_DEVICES"] for w in plan] == ["0", "0", "1"]
    again = _plan(tmp_path)
    assert again["chief"][1][ENV_CHIEF_TOKEN] != token  # a new token per launch


def test_the_launcher_keeps_a_token_set_in_its_environment(tmp_path):
    plan = _plan(tmp_path, environ={ENV_CHIEF_TOKEN: TOKEN})
    assert {env[ENV_CHIEF_TOKEN] for _, env in plan.values()} == {TOKEN}


def test_the_launcher_passes_a_token_file_and_the_tls_files(tmp_path):
    path = _token_file(tmp_path, TOKEN)
    plan = _plan(tmp_path, environ={ENV_CHIEF_TOKEN: WRONG}, token_file=path, tls_cert="c.pem", tls_key="k.pem")
    for worker_id, (command, env) in plan.items():
        assert ENV_CHIEF_TOKEN not in env
        assert command[command.index("--token-file") + 1] == str(path)
        if worker_id == "chief":
            assert command[command.index("--tls-cert") + 1].endswith("c.pem") and "--tls-ca" not in command
            assert command[command.index("--tls-key") + 1].endswith("k.pem")
        else:  # a worker trusts the chief's self-signed certificate and never sees its key
            assert command[command.index("--tls-ca") + 1].endswith("c.pem") and "--tls-key" not in command
    with_ca = _plan(tmp_path, tls_cert="c.pem", tls_key="k.pem", tls_ca="ca.pem")
    assert with_ca["tuner1"][0][with_ca["tuner1"][0].index("--tls-ca") + 1].endswith("ca.pem")


STAND_IN = textwrap.dedent(
    """
    import hashlib, os, sys, time
    from pathlib import Path
    run, worker_id = Path(sys.argv[1]), sys.argv[2]
    token = os.environ.get("BAYESFT_CHIEF_TOKEN", "")
    (run / f"token-{worker_id}").write_text(hashlib.sha256(token.encode()).hexdigest())
    if worker_id == "chief":
        while len(list(run.glob("token-tuner*"))) < 2:
            time.sleep(0.05)
    """
)


def test_a_launch_gives_its_processes_the_same_token_and_logs_none(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_CHIEF_TOKEN, raising=False)

    def command(tune_args, directory, chief, worker_id):
        return [sys.executable, "-c", STAND_IN, str(directory), worker_id]

    monkeypatch.setattr(launcher_lib, "tune_command", command)
    result = distributed.launch([], tmp_path, 2, echo=lambda line: None)
    assert result.exit_code == 0 and result.exit_codes == {w: [0] for w in ("chief", "tuner0", "tuner1")}
    seen = {w: (tmp_path / f"token-{w}").read_text() for w in result.exit_codes}
    assert len(set(seen.values())) == 1 and seen["chief"] != hashlib.sha256(b"").hexdigest()
    assert ENV_CHIEF_TOKEN not in os.environ  # this process's environment is left alone


def test_a_launch_on_every_interface_without_tls_warns_on_its_own_stderr(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(ENV_CHIEF_TOKEN, raising=False)
    def command(tune_args, directory, chief, worker_id):
        return [sys.executable, "-c", "pass"]

    monkeypatch.setattr(launcher_lib, "tune_command", command)
    distributed.launch([], tmp_path, 1, host="0.0.0.0", echo=lambda line: None)
    assert _warnings(capsys.readouterr().err) == [
        "Warning: the chief listens on every interface (0.0.0.0) without TLS: its token and trials cross the "
        "network in clear text; give launch --tls-cert and --tls-key, or --host 127.0.0.1."
    ]
