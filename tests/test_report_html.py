"""RUN/report.html: its sections, tables and inline PNGs; `bayesft-keras report`; headless Chromium.

Most tests build the page from a small run directory written by hand (the
files `tune` writes, with numbers chosen so that every cell can be checked);
the slow ones run a real tiny `tune` and `study`.
"""

import base64
import csv
import fcntl
import html.parser
import io
import json
import os
import select
import shlex
import shutil
import subprocess
import time

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from bayesft_keras.cli import app
from bayesft_keras.evaluation.report import DriftReport
from bayesft_keras.reporting import build_report
from bayesft_keras.reporting import commands
from bayesft_keras.reporting import markdown
from bayesft_keras.reporting import run_page
from bayesft_keras.reporting import write_report
from bayesft_keras.tuning.config import TuneConfig

SIGMAS = [0.0, 0.4, 0.8, 1.2]
# Chips of each method's best model at each sigma (test split).
BAYESFT_CHIPS = [[0.95] * 4, [0.9, 0.85, 0.92, 0.88], [0.70, 0.80, 0.90, 0.60], [0.3, 0.4, 0.2, 0.5]]
NO_DROPOUT_CHIPS = [[0.90] * 4, [0.8, 0.85, 0.75, 0.8], [0.5, 0.6, 0.7, 0.8], [0.2, 0.1, 0.3, 0.2]]
TRIALS = [
    # method, trial, dropout_fc1, dropout_fc2, drift_accuracy, clean_accuracy
    ("bayesft", 0, 0.5, 0.5, 0.70, 0.93),
    ("bayesft", 1, 0.6, 0.3, 0.65, 0.90),
    ("bayesft", 2, 0.35, 0.45, 0.80, 0.95),
    ("bayesft", 3, 0.2, 0.7, 0.75, 0.94),
    ("no_dropout", 0, 0.0, 0.0, 0.60, 0.91),
]
SECTION_IDS = [anchor for anchor, _ in run_page.SECTIONS]
# Images of the hand-made run: drift curves, progress, one per searched rate (2), clean vs drift.
IMAGES = 5


def _write_run(directory):
    config = TuneConfig().replace(
        name="tiny", arch="mlp", width=0.25, dataset="digits", sigma=0.8, chips=4, trials=4,
        baselines=["no_dropout"], report_chips=4, epochs=2,
    )
    (directory / "reports").mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    for method, title, chips, clean in (
        ("bayesft", "BayesFT (GP Bayesian optimisation)", BAYESFT_CHIPS, 0.95),
        ("no_dropout", "no dropout", NO_DROPOUT_CHIPS, 0.90),
    ):
        report = DriftReport(values=SIGMAS, chip_metrics=chips, clean=clean, model_name=title,
                             num_examples=360, dataset="digits")
        report.to_json(directory / "reports" / f"{method}.json")
    with open(directory / "trials.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "trial", "dropout_fc1", "dropout_fc2", "drift_accuracy", "clean_accuracy",
                         "unconstrained_drift_accuracy", "accuracy_sigma_0.00"])
        for method, trial, fc1, fc2, drift, clean in TRIALS:
            writer.writerow([method, trial, fc1, fc2, drift, clean, drift, clean])
    (directory / "summary.md").write_text(
        "# BayesFT search: tiny\n\nA line with <script>alert(1)</script> and `code`.\n\n"
        "| method | drift |\n|---|---|\n| BayesFT | 0.75 |\n"
    )
    return directory


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return _write_run(tmp_path_factory.mktemp("report") / "run")


@pytest.fixture(scope="module")
def report_path(run_dir):
    """RUN/report.html of the hand-made run, drawn once (its figures take a few seconds)."""
    return write_report(run_dir, chance=0.1)


class _Page(html.parser.HTMLParser):
    """What the tests read of a page: sections, images, table rows, links and scripts."""

    def __init__(self, text):
        super().__init__()
        self.sections, self.images, self.rows, self.urls, self.tags = [], [], [], [], []
        self._row = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "section":
            self.sections.append(attrs.get("id"))
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        for key in ("src", "href"):
            if key in attrs:
                self.urls.append(attrs[key])
        if tag == "tr":
            self._row = []

    def handle_endtag(self, tag):
        if tag == "tr" and self._row is not None:
            self.rows.append(" | ".join(c.strip() for c in self._row if c.strip()))
            self._row = None

    def handle_data(self, data):
        if self._row is not None:
            self._row.append(data)


def _png(src):
    assert src.startswith("data:image/png;base64,"), src[:40]
    data = base64.b64decode(src.split(",", 1)[1], validate=True)
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _row(page, first_cell):
    """The cells of the page's first table row that starts with `first_cell`."""
    rows = [r.split(" | ") for r in page.rows if r.split(" | ")[0] == first_cell]
    assert rows, page.rows
    return rows[0]


def test_the_page_has_every_section_and_its_images_decode_as_png(report_path):
    page = _Page(report_path.read_text())
    assert [s for s in page.sections if s in SECTION_IDS] == SECTION_IDS
    assert len(page.images) == IMAGES
    for src in page.images:
        image = _png(src)
        assert image.format == "PNG" and image.width >= 500 and image.height >= 400
        pixels = np.asarray(image.convert("RGB"), dtype=float)
        assert pixels.std() > 10  # drawn, not blank
    # Self-contained: no script, no style sheet or image from elsewhere, only in-page links.
    assert "script" not in page.tags and "link" not in page.tags
    assert all(u.startswith("data:image/png;base64,") or u.startswith("#") for u in page.urls), page.urls


def test_the_table_holds_clean_accuracy_accuracy_at_sigma_and_yield(run_dir, report_path):
    page = _Page(report_path.read_text())
    # Default yield threshold: 90 % of the best clean accuracy (0.95), rounded down: 0.85.
    header = _row(page, "method")
    assert header[:5] == ["method", "clean accuracy", "accuracy at σ = 0.8", "p5–p95 of chips", "yield (≥ 0.85)"]
    bayesft = _row(page, "BayesFT (GP Bayesian optimisation)")
    chips = np.array(BAYESFT_CHIPS[2])
    assert bayesft[1:3] == ["0.9500", f"{chips.mean():.4f}"]
    assert bayesft[3] == f"{np.percentile(chips, 5):.3f}–{np.percentile(chips, 95):.3f}"
    assert bayesft[4:] == ["25%", "0.8000", "4"]  # 1 of 4 chips >= 0.85; best of 4 trials
    assert _row(page, "no dropout")[1:] == ["0.9000", "0.6500", "0.515–0.785", "0%", "0.6000", "1"]
    # BayesFT's best trial (2) and its rates.
    assert _row(page, "dropout_fc1") == ["dropout_fc1", "0.350"]
    assert _row(page, "dropout_fc2") == ["dropout_fc2", "0.450"]
    other = _Page(build_report(run_dir, yield_threshold=0.75))
    assert _row(other, "method")[4] == "yield (≥ 0.75)"
    assert _row(other, "BayesFT (GP Bayesian optimisation)")[4] == "50%"
    assert _row(other, "no dropout")[4] == "25%"


def test_summary_md_is_shown_escaped(report_path):
    text = report_path.read_text()
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<code>code</code>" in text
    assert markdown.to_html("| a | b |\n|---|---:|\n| x | 1.5 |\n").count("<tr>") == 2


def test_resume_command_passes_every_tune_flag_of_a_setting(run_dir):
    import typer.main

    command = typer.main.get_command(app).commands["tune"]
    fields = set(TuneConfig().to_dict())
    flags = {p.name: p.opts[0] for p in command.params if p.name in fields}
    assert flags == commands.TUNE_FLAGS  # a new flag of `tune` must be in the resume command
    config = json.loads((run_dir / "config.json").read_text())
    words = shlex.split(commands.tune_command(config, run_dir))
    assert words[:6] == ["bayesft-keras", "tune", "--preset", "tiny", "--dir", str(run_dir)]
    given = dict(zip(words[6::2], words[7::2]))
    assert given["--trials"] == "4" and given["--sigma"] == "0.8" and given["--width"] == "0.25"
    assert given["--bits"] == "none" and given["--init"] == "default" and given["--baselines"] == "no_dropout"



def test_write_report_writes_report_html(run_dir, report_path):
    assert report_path == run_dir / "report.html"
    text = report_path.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert f"--dir {run_dir}" in text  # the resume command


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"yield_threshold": 1.5}, r"`yield_threshold` must be in \[0, 1\]. Received: yield_threshold=1.5"),
        ({"chance": -0.1}, r"`chance` must be in \[0, 1\]. Received: chance=-0.1"),
    ],
)
def test_bad_arguments_are_named(run_dir, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_report(run_dir, **kwargs)


def test_not_a_run_or_an_unfinished_one_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="Run directory not found: '.*nowhere'"):
        build_report(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="not a run directory of `bayesft-keras tune` or `study`"):
        build_report(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(TuneConfig().to_dict()))
    with pytest.raises(ValueError, match="has not finished its search .* --dir"):
        build_report(tmp_path)


def _one_line_error(result):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_cli_report_writes_the_page_and_refuses_bad_directories(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "report.html").unlink(missing_ok=True)
    result = CliRunner().invoke(app, ["report", str(copy)])
    assert result.exit_code == 0, result.output
    assert f"Wrote {copy / 'report.html'}" in result.stdout
    page = _Page((copy / "report.html").read_text())
    assert len(page.images) == IMAGES
    assert "nowhere" in _one_line_error(CliRunner().invoke(app, ["report", str(tmp_path / "nowhere")]))
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.json").write_text(json.dumps(TuneConfig().to_dict()))
    assert "has not finished" in _one_line_error(CliRunner().invoke(app, ["report", str(unfinished)]))
    bad = _one_line_error(CliRunner().invoke(app, ["report", str(run_dir), "--yield-threshold", "2"]))
    assert "yield_threshold=2.0" in bad


# -- headless Chromium ---------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")


class _Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (no WebSocket client needed):
    loads a page at a window size, then reports its console errors, images and a screenshot."""

    def __init__(self, profile):
        # Above fd 4 (bash reads fds over 9, dash does not), so that the shell's `3<&N 4>&M` never overwrites one end with the other.
        self._to_r, self._to_w = (_high(fd) for fd in os.pipe())
        self._from_r, self._from_w = (_high(fd) for fd in os.pipe())
        args = [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
            f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank",
        ]
        # The protocol reads commands on fd 3 and writes answers on fd 4.
        self.process = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" 3<&{self._to_r} 4>&{self._from_w}', CHROMIUM, *args],
            pass_fds=(self._to_r, self._from_w), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(self._to_r)
        os.close(self._from_w)
        self._buffer, self._id, self.events = b"", 0, []

    def call(self, method, session=None, timeout=60, **params):
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_w, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._next(timeout)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, event, timeout=60):
        while not any(e.get("method") == event for e in self.events):
            self.events.append(self._next(timeout))

    def _next(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._from_r], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError("Chromium did not answer")
            chunk = os.read(self._from_r, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def load(self, url, width, height):
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            self.call(f"{domain}.enable", session)
        self.call("Emulation.setDeviceMetricsOverride", session, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        self.events.clear()
        self.call("Page.navigate", session, url=url)
        self.wait_for("Page.loadEventFired")
        state = self.call("Runtime.evaluate", session, returnByValue=True, expression="""JSON.stringify({
            images: Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.getBoundingClientRect().width]),
            rows: document.querySelectorAll("table tbody tr").length,
            scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth})""")
        shot = self.call("Page.captureScreenshot", session, format="png")["data"]
        errors = [e for e in self.events if e.get("method") in ("Runtime.consoleAPICalled", "Runtime.exceptionThrown")
                  or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] in ("error", "warning"))]
        return json.loads(state["result"]["value"]), Image.open(io.BytesIO(base64.b64decode(shot))), errors

    def close(self):
        try:
            self.call("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_w)
        os.close(self._from_r)


def _high(fd):
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return high


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    browser = _Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield browser
    browser.close()


@needs_chromium
def test_chromium_sees_console_errors_and_broken_images(browser, tmp_path):
    # The check below is only worth something if it catches these.
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><p>x</p><img src="missing.png"><script>console.error("boom")</script>')
    state, _, errors = browser.load(bad.as_uri(), 800, 600)
    assert errors and state["images"][0][1] == 0


@needs_chromium
@pytest.mark.parametrize("width, height", [(1366, 900), (1024, 768)])
def test_the_page_loads_in_chromium_with_no_error_and_shows_table_and_images(browser, report_path, width, height):
    state, shot, errors = browser.load(report_path.as_uri(), width, height)
    assert errors == []
    assert len(state["images"]) == IMAGES
    assert all(complete and natural >= 500 and 0 < shown <= width for complete, natural, shown in state["images"])
    assert state["rows"] >= 4  # the results table (2 methods) and the best trial's rates (2)
    assert state["scrollWidth"] <= state["innerWidth"]  # nothing wider than the window: no sideways scroll
    assert shot.size == (width, height)
    pixels = np.asarray(shot.convert("RGB")).reshape(-1, 3)
    assert pixels.std() > 10
    # The table is on the first screen: its header cells (#f0f2f5) and the best row (#eef6ee).
    for colour in ((0xF0, 0xF2, 0xF5), (0xEE, 0xF6, 0xEE)):
        assert np.any(np.all(pixels == colour, axis=1)), colour


@needs_chromium
def test_the_screenshot_shows_the_plots(browser, report_path):
    _, shot, errors = browser.load(report_path.as_uri(), 1366, 4200)  # tall enough for every figure
    assert errors == []
    pixels = np.asarray(shot.convert("RGB"), dtype=int).reshape(-1, 3)
    # matplotlib's C0 blue and C1 orange (the two methods) are only in the plots, not in the page's style.
    for colour in ((31, 119, 180), (255, 127, 14)):
        assert np.sum(np.all(np.abs(pixels - colour) <= 3, axis=1)) > 500, colour


# -- real runs -------------------------------------------------------------------------------------

TINY_PRESET = """
[model]
arch = "mlp"
width = 0.25
[objective]
sigma = 0.8
chips = 3
[search]
trials = 2
initial_points = 1
baselines = ["no_dropout"]
[training]
epochs = 1
batch_size = 64
[report]
report_sigmas = [0.0, 1.5, 4]
report_chips = 3
"""


@pytest.mark.slow
def test_tune_writes_the_page_and_its_resume_command_resumes(tmp_path):
    preset = tmp_path / "tiny.toml"
    preset.write_text(TINY_PRESET)
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["tune", "--preset", str(preset), "--dir", str(run), "--quiet"])
    assert result.exit_code == 0, result.output
    page = _Page((run / "report.html").read_text())
    assert [s for s in page.sections if s in SECTION_IDS] == SECTION_IDS
    # drift curves, progress, one per dropout site of the mlp (3), clean vs drift
    assert len(page.images) == 6
    for src in page.images:
        assert _png(src).format == "PNG"
    assert _row(page, "BayesFT (GP Bayesian optimisation)")[-1] == "2"
    assert _row(page, "no dropout")[-1] == "1"
    # The command the page gives resumes the run (same settings: nothing is trained again).
    trials = (run / "trials.csv").read_text()
    config = json.loads((run / "config.json").read_text())
    words = shlex.split(commands.tune_command(config, run))
    words[words.index("--preset") + 1] = str(preset)  # a preset file outside tuners/: its path
    again = CliRunner().invoke(app, words[1:] + ["--quiet"])
    assert again.exit_code == 0, again.output
    assert (run / "trials.csv").read_text() == trials


@pytest.mark.slow
def test_study_writes_its_page(tmp_path):
    from bayesft_keras.study import run_study

    out = tmp_path / "study"
    result = run_study(components="dropout", seeds=1, sigmas=(0.0, 1.0), chips=2, epochs=1,
                       grid={"dropout": [0.5]}, out=out, verbose=0)
    assert result.files["report"] == os.fspath(out / "report.html")
    text = (out / "report.html").read_text()
    page = _Page(text)
    assert {"findings", "table", "plots", "settings", "resume"} <= set(page.sections)
    assert len(page.images) == 1 and _png(page.images[0]).width >= 500
    assert _row(page, "dropout")[1] == "no dropout (baseline)"
    # Its resume command reads every finished run back.
    study = json.loads((out / "study.json").read_text())
    again = CliRunner().invoke(app, shlex.split(commands.study_command(study, out))[1:] + ["--quiet"])
    assert again.exit_code == 0, again.output
    assert "0 runs trained, 2 reused" in again.stdout
