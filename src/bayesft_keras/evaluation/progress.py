"""One progress adapter for long loops: a rich bar on stderr, a callback, or nothing."""


class progress:
    """Context manager yielding `advance(n)` for `progress` (bool or callable)."""

    def __init__(self, progress, total, description):
        self.progress, self.total, self.description = progress, total, description
        self.done = 0
        self._bar = None

    def __enter__(self):
        if callable(self.progress):
            def advance(n):
                self.done += n
                self.progress(self.done, self.total)

            return advance
        if self.progress:
            from rich.console import Console
            from rich.progress import Progress

            self._bar = Progress(console=Console(stderr=True))
            self._bar.start()
            task = self._bar.add_task(self.description, total=self.total)
            return lambda n: self._bar.advance(task, n)
        return lambda n: None

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.stop()
        return False
