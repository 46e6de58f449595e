"""The chief's oracle servers, on Keras Tuner's own gRPC servicer.

This is the one module of bayesft_keras that imports Keras Tuner internals
(`keras_tuner.src`: the servicer and its protos have no public import path).
Tested on keras-tuner 1.4.8.

Keras Tuner's `oracle_chief.start_server(oracle)` cannot serve here as it
is: it reads its address from the environment, does not check that the port
was bound, blocks until the search is over (checking every 20 s), cannot be
stopped by a signal, does not save the oracle after each trial, and drops its
server when it returns, so that a worker restarted late cannot learn that the
search is over. `OracleServers` does what it does with the same parts (its
`OracleServicer` and `exit_chief`) and adds those.

Nobody else in the search: with the run's token (`cluster.ChiefSecurity`) the
chief's server checks every call with `TokenServerInterceptor` and refuses a
call without the token, or with another, as UNAUTHENTICATED before Keras
Tuner's servicer sees it. Workers send it through `ChiefClientInterceptor` on
their channel: `secure_worker_oracle(tuner)` puts that channel under the
worker's Keras Tuner `OracleClient`. With a certificate the chief serves over
TLS. Without a token, or on every interface without TLS, the chief warns.
"""

import collections
import hashlib
import hmac
import os
import signal
import sys
import time

import grpc

from bayesft_keras.tuning.cluster import ENV_ORACLE_IP
from bayesft_keras.tuning.cluster import ENV_ORACLE_PORT
from bayesft_keras.tuning.cluster import ChiefSecurity
from bayesft_keras.tuning.cluster import active_cluster
from bayesft_keras.tuning.cluster import check_token
from bayesft_keras.tuning.cluster import every_interface
from bayesft_keras.tuning.cluster import grpc_host

TOKEN_METADATA = "authorization"  # the call's metadata key; its value is "Bearer <token>"
_BEARER = "Bearer "
_REFUSALS_LOGGED = 20  # the chief prints its first refusals, then stays quiet


class OracleServers:
    """The chief's part of a run: one Keras Tuner oracle server per search.

    `serve` serves a search's oracle until that search is over: as in
    `keras_tuner`'s `oracle_chief.start_server`, once the oracle has told a
    worker the search is over and no worker holds a trial or is still asking
    (checked every `poll_seconds` here rather than every 20 s). The server
    then keeps answering, so that a worker restarted late learns at once that
    the search is over and moves on to the next one; `close` (or leaving the
    `with` block) stops them all. Keras Tuner's own servicer answers the
    workers; after each finished trial the oracle's state is saved (a worker
    does not save it) and `on_trial_end(trial)` runs. SIGTERM ends serving.

    Args:
        poll_seconds: how often `serve` checks whether the search is over.
        security: a `ChiefSecurity` (the token every call must carry, TLS);
            None: that of the active `Cluster` (`Cluster.activate`), else
            the `BAYESFT_CHIEF_TOKEN` variable's token.
    """

    def __init__(self, poll_seconds=0.5, security=None):
        self.poll_seconds = poll_seconds
        self.security = security
        self._servers = []
        self._stopping = []
        self._previous_handler = None
        self._warned = set()

    def __enter__(self):
        self._previous_handler = _on_sigterm(lambda: self._stopping.append(True))
        return self

    def __exit__(self, *exc):
        self.close()
        _restore_sigterm(self._previous_handler)

    def serve(self, tuner, host, port, on_trial_end=None):
        """Serves `tuner`'s oracle on `host:port` until its search is over (see the class)."""
        from keras_tuner.src.distribute import oracle_chief

        tuner.save()
        servicer = self.start(tuner.oracle, host, port, on_trial_end=on_trial_end)
        print(f"[chief] serving the oracle of {tuner.project_name!r} on {host}:{port} (pid {os.getpid()})",
              flush=True)
        while not self._stopping:
            if servicer.stop_triggered and oracle_chief.exit_chief(tuner.oracle):
                break
            time.sleep(self.poll_seconds)
        tuner.oracle.save()
        if self._stopping:
            raise KeyboardInterrupt("the chief was asked to stop")

    def start(self, oracle, host, port, on_trial_end=None):
        """Starts serving `oracle` on `host:port` and returns at once with its servicer.

        Every call must carry the token of `security` (when it has one); the
        oracle is saved after each finished trial. `close` stops the server.
        """
        from concurrent import futures

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

        security = self._security()
        self._warn(host, port, security)
        interceptors = [TokenServerInterceptor(security.token)] if security.token else None
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=1), interceptors=interceptors)
        servicer = Servicer(oracle)
        protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
        address = f"{grpc_host(host)}:{port}"
        try:
            if security.cert:
                bound = server.add_secure_port(address, grpc.ssl_server_credentials([(security.key, security.cert)]))
            else:
                bound = server.add_insecure_port(address)
        except RuntimeError:
            bound = 0
        if not bound:
            tls = " or its TLS certificate and key do not match" if security.cert else ""
            raise ValueError(f"The chief cannot listen on {host}:{port} (address in use or not on this host{tls}).")
        server.start()
        self._servers.append(server)
        return servicer

    def _security(self):
        if self.security is not None:
            return self.security
        cluster = active_cluster()
        if cluster is not None:
            return cluster.security or ChiefSecurity()
        return ChiefSecurity.from_flags(is_chief=True)  # BAYESFT_CHIEF_TOKEN, if set

    def _warn(self, host, port, security):
        """One line on stderr, once per kind: a chief without a token; on every interface without TLS."""
        if not security.token and "token" not in self._warned:
            self._warned.add("token")
            print(
                f"Warning: the chief on {host}:{port} has no token (--token-file or BAYESFT_CHIEF_TOKEN): anyone "
                "who reaches its port can fetch trials, report made-up scores or end the search.",
                file=sys.stderr, flush=True,
            )
        if every_interface(host) and not security.cert and "interface" not in self._warned:
            self._warned.add("interface")
            print(
                f"Warning: the chief listens on every interface ({host}) without TLS: its token and trials cross "
                "the network in clear text; give it --tls-cert and --tls-key, or listen on one address.",
                file=sys.stderr, flush=True,
            )

    def close(self):
        for server in self._servers:
            server.stop(grace=1).wait()
        self._servers = []


# -- the token: checked by the chief on every call, sent by the workers ----------------------


def _digest(value):
    return hashlib.sha256(value if isinstance(value, bytes) else str(value).encode("utf-8", "replace")).digest()


class TokenServerInterceptor(grpc.ServerInterceptor):
    """Lets through only the calls that carry `token`; refuses the others as UNAUTHENTICATED.

    A refused call never reaches the servicer (nor is its request read), so it
    changes nothing in the oracle. The comparison takes the same time whatever
    the token sent (`hmac.compare_digest` of SHA-256 digests).
    """

    def __init__(self, token):
        self._expected = _digest(_BEARER + token)
        self._refusals = 0

    def intercept_service(self, continuation, handler_call_details):
        sent = [value for key, value in (handler_call_details.invocation_metadata or ()) if key == TOKEN_METADATA]
        if len(sent) == 1 and hmac.compare_digest(_digest(sent[0]), self._expected):
            return continuation(handler_call_details)
        reason = "a wrong token" if sent else "no token"
        return self._refusal(handler_call_details.method, reason, continuation(handler_call_details))

    def _refusal(self, method, reason, handler):
        message = f"the chief refused {method}: the call carries {reason} (--token-file or BAYESFT_CHIEF_TOKEN)"

        def refuse(request, context):
            self._refusals += 1
            if self._refusals <= _REFUSALS_LOGGED:
                more = "; further refusals are not logged" if self._refusals == _REFUSALS_LOGGED else ""
                print(f"[chief] refused a call to {method} from {context.peer()}: {reason}{more}", flush=True)
            context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

        def refuse_stream(request, context):
            refuse(request, context)
            yield  # never reached: makes this a generator

        if handler is not None and handler.response_streaming:
            make = grpc.stream_stream_rpc_method_handler if handler.request_streaming else \
                grpc.unary_stream_rpc_method_handler
            return make(refuse_stream)
        if handler is not None and handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(refuse)
        return grpc.unary_unary_rpc_method_handler(refuse)  # raw request bytes: nothing is parsed


class ChiefRefused(ValueError, grpc.RpcError):
    """The chief refused a worker's call (UNAUTHENTICATED): its token is missing or wrong."""

    def __init__(self, message, details=""):
        super().__init__(message)
        self._details = details

    def code(self):
        return grpc.StatusCode.UNAUTHENTICATED

    def details(self):
        return self._details


class _CallDetails(
    collections.namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready",
                                            "compression")),
    grpc.ClientCallDetails,
):
    pass


class ChiefClientInterceptor(
    grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor,
):
    """Adds `token` (when there is one) to every call to the chief; a refusal raises `ChiefRefused`."""

    def __init__(self, token=None, address="the chief"):
        if token is not None:
            check_token(token)
        self._metadata = ((TOKEN_METADATA, _BEARER + token),) if token else ()
        self._address = address
        self._sends = "its token is wrong" if token else "it sends no token"

    def _details(self, details):
        return _CallDetails(
            details.method, details.timeout, tuple(details.metadata or ()) + self._metadata,
            details.credentials, getattr(details, "wait_for_ready", None), getattr(details, "compression", None),
        )

    def _checked(self, call):
        if call.code() == grpc.StatusCode.UNAUTHENTICATED:
            raise ChiefRefused(
                f"The chief at {self._address} refused this worker: {self._sends}. Give every process of the "
                "search the same --token-file, or the same BAYESFT_CHIEF_TOKEN.",
                call.details(),
            )
        return call

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return self._checked(continuation(self._details(client_call_details), request))

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return self._checked(continuation(self._details(client_call_details), request_iterator))

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details), request_iterator)


def oracle_channel(host, port, security=None):
    """A channel to the chief's oracle server at `host:port`: over TLS when `security` has
    trusted roots, every call carrying its token."""
    security = security or ChiefSecurity()
    target = f"{grpc_host(host)}:{port}"
    if security.roots:
        channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=security.roots))
    else:
        channel = grpc.insecure_channel(target)
    return grpc.intercept_channel(channel, ChiefClientInterceptor(security.token, address=f"{host}:{port}"))


def oracle_stub(host, port, security=None):
    """Keras Tuner's `OracleStub` over `oracle_channel`."""
    from keras_tuner.src import protos

    return protos.get_service_grpc().OracleStub(oracle_channel(host, port, security))


def secure_worker_oracle(tuner, cluster=None):
    """Puts a worker tuner's calls to the chief on `oracle_channel`: the run's token, TLS.

    Keras Tuner's worker tuner talks to the chief through an `OracleClient`
    whose stub is on a plain channel without metadata; this replaces the stub
    (the client makes no call before). Call it once the tuner is built, in the
    block of `cluster.activate(index)`. `cluster` defaults to the active
    one; without one, the token is that of `BAYESFT_CHIEF_TOKEN`. A tuner
    that is not a worker's is left as it is. Returns `tuner`.
    """
    from keras_tuner.src.distribute import oracle_client

    if not isinstance(getattr(tuner, "oracle", None), oracle_client.OracleClient):
        return tuner
    cluster = cluster or active_cluster()
    if cluster is not None:
        security = cluster.security or ChiefSecurity()
    else:
        security = ChiefSecurity.from_flags(is_chief=False)
    host, port = os.environ[ENV_ORACLE_IP], os.environ[ENV_ORACLE_PORT]
    tuner.oracle.stub = oracle_stub(host, port, security)
    return tuner


def _on_sigterm(callback):
    try:
        return signal.signal(signal.SIGTERM, lambda signum, frame: callback())
    except ValueError:  # not the main thread: leave signals alone
        return None


def _restore_sigterm(previous):
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)
