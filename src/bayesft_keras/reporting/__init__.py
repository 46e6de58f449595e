"""`report.html`: one self-contained page of a `tune` run directory or a `study` folder.

`write_report(directory)` reads the files a run wrote (never the modules that
wrote them: `tuning` and `study` call this package, so it does not import them)
and writes `directory/report.html`: the results table, the plots as inline
PNG images, the settings and the command that resumes the run. `tune` and
`study` write it when they finish; `bayesft-keras report RUN` writes it again.
"""

from bayesft_keras.reporting.page import REPORT_FILE
from bayesft_keras.reporting.page import build_report
from bayesft_keras.reporting.page import write_report

__all__ = ["REPORT_FILE", "build_report", "write_report"]
