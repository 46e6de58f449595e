"""Writing RUN/report.html: the page of whichever run a folder holds."""

from pathlib import Path

from bayesft_keras.reporting import run_page
from bayesft_keras.reporting import study_page
from bayesft_keras.reporting.runs import StudyRun
from bayesft_keras.reporting.runs import read_run
from bayesft_keras.utils import checks
from bayesft_keras.utils import files

REPORT_FILE = "report.html"


def build_report(directory, chance=None, yield_threshold=None):
    """The HTML text of the page of `directory` (a `tune` run directory or a `study` folder).

    Args:
        directory: the run directory or study folder.
        chance: the score of guessing (1 / classes) drawn as the plots'
            chance line; None draws none (a study's plots carry their own).
        yield_threshold: the accuracy a chip needs to count in a search's
            yield, in [0, 1]; None: the reports' own threshold, else 90 % of
            the best clean accuracy.

    Raises:
        FileNotFoundError: no such folder.
        ValueError: not a run, an unfinished one, or a bad argument.
    """
    if chance is not None:
        chance = checks.in_range("chance", chance, 0, 1)
    if yield_threshold is not None:
        yield_threshold = checks.in_range("yield_threshold", yield_threshold, 0, 1)
    run = read_run(directory)
    if isinstance(run, StudyRun):
        return study_page.page(run)
    return run_page.page(run, chance=chance, threshold=yield_threshold)


def write_report(directory, chance=None, yield_threshold=None):
    """Writes `directory/report.html` (atomically) and returns its path; see `build_report`."""
    text = build_report(directory, chance=chance, yield_threshold=yield_threshold)
    path = Path(directory) / REPORT_FILE
    files.write_text(path, text)
    return path
