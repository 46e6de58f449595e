"""A process's place in a distributed search: the chief's address, the worker id, Keras Tuner's environment.

Keras Tuner spreads a search over processes: the chief holds the oracle and
serves it over gRPC (`bayesft_keras.tuning.chief_server`), workers ask it for
trials, train and score them, and report back. A process learns its role from
three environment variables: `KERASTUNER_TUNER_ID` ("chief" or the worker's
id), `KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT`. `Cluster` maps
`bayesft-keras tune --chief HOST:PORT --worker-id ID` onto them.

A run holds one search per method (BayesFT, then each baseline), each with its
own oracle: the chief serves search `i` on port `PORT + i`, so a worker
that moves on to the next search can never reach the oracle of the previous
one.

Nobody else takes part (`ChiefSecurity`): the chief accepts a call only with
the run's token, a shared secret every process reads from
`--token-file PATH` or, without it, from the `BAYESFT_CHIEF_TOKEN`
variable (`launch` sets a random one per launch). With `--tls-cert` and
`--tls-key` the chief serves over TLS; workers then trust `--tls-ca` (or,
without it, `--tls-cert`: a self-signed chief certificate).

`mirrored_strategy` gives the per-trial data-parallel training
(`tf.distribute.MirroredStrategy` over the local GPUs) passed to the tuners.
"""

import contextlib
import dataclasses
import os
import re
import stat
import sys
from pathlib import Path

CHIEF = "chief"
ENV_TUNER_ID = "KERASTUNER_TUNER_ID"
ENV_ORACLE_IP = "KERASTUNER_ORACLE_IP"
ENV_ORACLE_PORT = "KERASTUNER_ORACLE_PORT"
ENV_CHIEF_TOKEN = "BAYESFT_CHIEF_TOKEN"  # the run's shared secret, when no --token-file is given
TOKEN_MIN_LENGTH = 16
_TOKEN = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII without spaces: a gRPC metadata value
_WORKER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
DISTRIBUTE_CHOICES = ("none", "mirrored")


def parse_address(address):
    """`"HOST:PORT"` (`"[::1]:PORT"` for IPv6) -> `(host, port)`."""
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
class ChiefSecurity:
    """Who may talk to the chief: the run's token and the TLS files.

    Args:
        token: the shared secret every call to the chief carries (None: the
            chief takes calls from anyone who reaches its port).
        cert, key: the chief's certificate chain and private key (PEM bytes):
            it serves over TLS.
        roots: a worker's trusted certificates (PEM bytes): it connects over
            TLS and checks the chief's certificate against them.
    """

    token: str = dataclasses.field(default=None, repr=False)
    cert: bytes = dataclasses.field(default=None, repr=False)
    key: bytes = dataclasses.field(default=None, repr=False)
    roots: bytes = dataclasses.field(default=None, repr=False)

    def __repr__(self):
        parts = [f"token={'set' if self.token else None}", f"tls={self.tls}"]
        return f"ChiefSecurity({', '.join(parts)})"

    @property
    def tls(self):
        return bool(self.cert or self.roots)

    @classmethod
    def from_flags(cls, is_chief, token_file=None, tls_cert=None, tls_key=None, tls_ca=None, environ=None):
        """From `--token-file` (else `BAYESFT_CHIEF_TOKEN`) and `--tls-cert/--tls-key/--tls-ca`.

        The chief serves over TLS when given `--tls-cert` and `--tls-key`
        (both or neither); a worker connects over TLS when given `--tls-ca`
        or, for a self-signed chief certificate, `--tls-cert` alone.
        """
        environ = os.environ if environ is None else environ
        if token_file is not None:
            token = read_token_file(token_file)
        elif environ.get(ENV_CHIEF_TOKEN) is not None:
            token = check_token(environ[ENV_CHIEF_TOKEN], ENV_CHIEF_TOKEN)
        else:
            token = None
        if is_chief:
            if (tls_cert is None) != (tls_key is None):
                given, missing = ("tls_cert", "tls_key") if tls_key is None else ("tls_key", "tls_cert")
                value = tls_cert if tls_key is None else tls_key
                raise ValueError(
                    f"`{given}` needs `{missing}`: the chief serves over TLS with its certificate and its "
                    f"private key. Received: {given}={str(value)!r}"
                )
            if tls_ca is not None and tls_cert is None:
                raise ValueError(
                    "`tls_ca` is for workers: the chief serves over TLS with `tls_cert` and `tls_key`. "
                    f"Received: tls_ca={str(tls_ca)!r} without tls_cert"
                )
            cert = _read_pem("tls_cert", tls_cert, "CERTIFICATE") if tls_cert is not None else None
            key = _read_pem("tls_key", tls_key, "PRIVATE KEY") if tls_key is not None else None
            return cls(token=token, cert=cert, key=key)
        if tls_key is not None and tls_ca is None and tls_cert is None:
            raise ValueError(
                "`tls_key` is the chief's: a worker trusts `tls_ca` (or the chief's self-signed `tls_cert`). "
                f"Received: tls_key={str(tls_key)!r}"
            )
        trusted, name = (tls_ca, "tls_ca") if tls_ca is not None else (tls_cert, "tls_cert")
        roots = _read_pem(name, trusted, "CERTIFICATE") if trusted is not None else None
        return cls(token=token, roots=roots)


def check_token(token, name=ENV_CHIEF_TOKEN):
    """A token: at least `TOKEN_MIN_LENGTH` printable ASCII characters, no spaces. Never quoted in messages."""
    if not isinstance(token, str) or len(token) < TOKEN_MIN_LENGTH or not _TOKEN.match(token):
        length = len(token) if isinstance(token, str) else type(token).__name__
        raise ValueError(
            f"`{name}` must be a token of at least {TOKEN_MIN_LENGTH} printable ASCII characters without spaces "
            f"(e.g. `python -c \"import secrets; print(secrets.token_urlsafe(32))\"`). Received: a value of "
            f"{length} character(s)"
        )
    return token


def read_token_file(path):
    """The token in `path` (surrounding whitespace stripped); warns when other users can read the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii").strip()
        mode = path.stat().st_mode
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
        raise ValueError(
            f"`token_file` must be a readable file holding the run's token. Received: token_file={str(path)!r} "
            f"({reason})"
        ) from None
    if not text:
        raise ValueError(f"`token_file` holds no token. Received: token_file={str(path)!r} (empty)")
    try:
        check_token(text, "token_file")
    except ValueError as e:
        raise ValueError(f"{e} in token_file={str(path)!r}") from None
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        print(
            f"Warning: the token file {str(path)!r} can be read by other users (mode {stat.filemode(mode)}); "
            f"`chmod 600 {path}` keeps them out of the search.",
            file=sys.stderr, flush=True,
        )
    return text


def _read_pem(name, path, kind):
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ValueError(
            f"`{name}` must be a readable PEM file. Received: {name}={str(path)!r} ({e.strerror or e})"
        ) from None
    if b"-----BEGIN " not in data or kind.encode() not in data:
        raise ValueError(f"`{name}` must be a PEM file holding a {kind.lower()}. Received: {name}={str(path)!r}")
    return data


_ACTIVE = []  # the clusters whose `activate` block is running, innermost last


def active_cluster():
    """The `Cluster` whose `activate` block is running (innermost), or None."""
    return _ACTIVE[-1] if _ACTIVE else None


@dataclasses.dataclass(frozen=True)
class Cluster:
    """This process's place in a distributed search.

    Args:
        host: where the chief serves its oracles (the chief binds to it;
            `0.0.0.0` listens on every interface).
        port: the port of the first search's oracle; search `i` of the run
            uses `port + i`.
        worker_id: "chief", or this worker's id (unique in the cluster; a
            worker restarted with the same id takes over its trial).
        security: a `ChiefSecurity` (the token, TLS); None: no token, no TLS.
    """

    host: str
    port: int
    worker_id: str
    security: ChiefSecurity = None

    @classmethod
    def from_flags(cls, chief, worker_id, token_file=None, tls_cert=None, tls_key=None, tls_ca=None):
        """From `--chief HOST:PORT --worker-id ID` and the security flags; None when neither is given.

        The token comes from `token_file` or, without it, from the
        `BAYESFT_CHIEF_TOKEN` variable (see `ChiefSecurity.from_flags`).
        """
        security_flags = {"token_file": token_file, "tls_cert": tls_cert, "tls_key": tls_key, "tls_ca": tls_ca}
        if chief is None and worker_id is None:
            for name, value in security_flags.items():
                if value is not None:
                    raise ValueError(
                        f"`--{name.replace('_', '-')}` is for a distributed search: it needs `--chief HOST:PORT` "
                        f"and `--worker-id`. Received: {name}={str(value)!r}"
                    )
            return None
        if chief is None:
            raise ValueError(f"`--worker-id` needs `--chief HOST:PORT`. Received: worker_id={worker_id!r}")
        if worker_id is None:
            raise ValueError(f"`--chief` needs `--worker-id` ('chief' or a worker id). Received: chief={chief!r}")
        host, port = parse_address(chief)
        worker_id = check_worker_id(worker_id)
        security = ChiefSecurity.from_flags(worker_id == CHIEF, **security_flags)
        return cls(host, port, worker_id, security)

    @property
    def is_chief(self):
        return self.worker_id == CHIEF

    def port_of(self, search_index):
        port = self.port + int(search_index)
        if port > 65535:
            raise ValueError(f"The chief's port {self.port} leaves no port for search {search_index}.")
        return port

    def environment(self, search_index=0):
        """Keras Tuner's variables for search `search_index` of the run."""
        return {
            ENV_TUNER_ID: self.worker_id,
            ENV_ORACLE_IP: self.host,
            ENV_ORACLE_PORT: str(self.port_of(search_index)),
        }

    @contextlib.contextmanager
    def activate(self, search_index=0):
        """Sets the variables while a search's tuner is built and run; restores them after."""
        with _environment(self.environment(search_index)):
            _ACTIVE.append(self)
            try:
                yield self
            finally:
                _ACTIVE.remove(self)


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
    process's own id: a chief writes `chief.json`, a local search reads
    `tuner0.json`. Running the local search under the chief's id (without an
    oracle address, so not as a chief) picks up every trial the cluster
    finished; trials that were still running are run again.
    """
    if (Path(project_dir) / f"{CHIEF}.json").exists() and ENV_ORACLE_IP not in os.environ:
        with _environment({ENV_TUNER_ID: CHIEF}):
            yield
    else:
        yield


def grpc_host(host):
    """`host` as gRPC addresses write it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


def every_interface(host):
    """Whether a server bound to `host` listens on every interface (0.0.0.0, ::, an empty host)."""
    return host.strip("[]") in ("", "0.0.0.0", "::", "0:0:0:0:0:0:0:0")


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
