"""The chief's oracle servers, on Keras Tuner's own gRPC servicer.

This is the one module of bayesft_keras that imports Keras Tuner internals
(``keras_tuner.src``: the servicer and its protos have no public import path).
Tested on keras-tuner 1.4.8.

Keras Tuner's ``oracle_chief.start_server(oracle)`` cannot serve here as it
is: it reads its address from the environment, does not check that the port
was bound, blocks until the search is over (checking every 20 s), cannot be
stopped by a signal, does not save the oracle after each trial, and drops its
server when it returns, so that a worker restarted late cannot learn that the
search is over. `OracleServers` does what it does with the same parts (its
`OracleServicer` and `exit_chief`) and adds those.
"""

import os
import signal
import time

from bayesft_keras.tuning.cluster import grpc_host


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
            bound = server.add_insecure_port(f"{grpc_host(host)}:{port}")
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


def _on_sigterm(callback):
    try:
        return signal.signal(signal.SIGTERM, lambda signum, frame: callback())
    except ValueError:  # not the main thread: leave signals alone
        return None


def _restore_sigterm(previous):
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)
