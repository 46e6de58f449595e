"""`DriftReport`: the result of a Monte Carlo drift sweep, with its summaries and files.

The report is data plus JSON/CSV; its plot and terminal table are drawn by
`bayesft_keras.evaluation.rendering`.
"""

import csv
import dataclasses
import io
import json
import os

import numpy as np

from bayesft_keras.utils import files

FORMAT = "bayesft-keras/drift-report"
VERSION = 1
# Summary columns, in table and CSV order.
_STAT_COLUMNS = ("mean", "std", "min", "p5", "p50", "p95", "max")


@dataclasses.dataclass(eq=False)
class DriftReport:
    """Per-chip metrics of a drift sweep and everything needed to read them.

    Every chip's metric is kept, so statistics and yields at any threshold can
    be recomputed after the fact.

    Attributes:
        values: the swept parameter values, shape `(V,)`.
        chip_metrics: the metric of every chip, shape `(V, chips)`.
        clean: the metric with device noise off (quantization stays).
        param: the swept noise parameter, e.g. "sigma".
        metric: the metric's name.
        model_name: the label of the model.
        seed: the sweep's seed.
        noise: the serialized device noise model (at its base values).
        bits: the device weight precision (None: full precision).
        threshold: the yield threshold, or None.
        num_examples: how many examples each chip was scored on.
        dataset: the label of the data, or None.
        chip_seeds: the chip seeds, shape `(V, chips)`;
            `bayesft_keras.resample(device_model, seed)` rebuilds a chip.
    """

    values: np.ndarray
    chip_metrics: np.ndarray
    clean: float
    param: str = "sigma"
    metric: str = "accuracy"
    model_name: str = "model"
    seed: int = 0
    noise: dict = None
    bits: int = None
    threshold: float = None
    num_examples: int = None
    dataset: str = None
    chip_seeds: np.ndarray = None

    def __post_init__(self):
        self.values = np.asarray(self.values, dtype="float64").reshape(-1)
        self.chip_metrics = np.asarray(self.chip_metrics, dtype="float64")
        if self.chip_metrics.ndim != 2 or len(self.chip_metrics) != len(self.values):
            raise ValueError(
                "`chip_metrics` must have shape (len(values), chips). Received shape "
                f"{self.chip_metrics.shape} for {len(self.values)} values."
            )
        if self.chip_seeds is not None:
            self.chip_seeds = np.asarray(self.chip_seeds, dtype="int64")
        self.clean = float(self.clean)

    # -- statistics ----------------------------------------------------------

    @property
    def chips(self):
        return self.chip_metrics.shape[1]

    def _offsets(self):
        # Statistics of offsets from each row's minimum: a row of equal chips
        # (e.g. sigma = 0) then has exactly that value as mean and 0 as std.
        low = self.chip_metrics.min(axis=1, keepdims=True)
        return low[:, 0], self.chip_metrics - low

    def mean(self):
        """Mean across chips, per value."""
        low, offsets = self._offsets()
        return low + offsets.mean(axis=1)

    def std(self):
        """Sample standard deviation across chips (0 with a single chip)."""
        if self.chips < 2:
            return np.zeros(len(self.values))
        return self._offsets()[1].std(axis=1, ddof=1)

    def percentile(self, q):
        """The `q`-th percentile across chips (linear interpolation), per value."""
        return np.percentile(self.chip_metrics, q, axis=1)

    def yield_at(self, threshold=None):
        """Fraction of chips whose metric is at or above `threshold`, per value.

        Args:
            threshold: defaults to the report's `threshold`.
        """
        threshold = self.threshold if threshold is None else threshold
        if threshold is None:
            raise ValueError("`threshold` is required: this report has no yield threshold.")
        return (self.chip_metrics >= float(threshold)).mean(axis=1)

    def summary(self):
        """One dict per swept value: value, mean, std, min, p5, p50, p95, max (and yield)."""
        columns = {
            "mean": self.mean(),
            "std": self.std(),
            "min": self.chip_metrics.min(axis=1),
            "p5": self.percentile(5),
            "p50": self.percentile(50),
            "p95": self.percentile(95),
            "max": self.chip_metrics.max(axis=1),
        }
        if self.threshold is not None:
            columns["yield"] = self.yield_at()
        return [
            {self.param: float(value), **{k: float(v[i]) for k, v in columns.items()}}
            for i, value in enumerate(self.values)
        ]

    # -- files ----------------------------------------------------------------

    def to_dict(self):
        return {
            "format": FORMAT,
            "version": VERSION,
            "model_name": self.model_name,
            "dataset": self.dataset,
            "metric": self.metric,
            "param": self.param,
            "noise": self.noise,
            "bits": self.bits,
            "seed": self.seed,
            "chips": self.chips,
            "num_examples": self.num_examples,
            "threshold": self.threshold,
            "clean": self.clean,
            "values": self.values.tolist(),
            "chip_metrics": self.chip_metrics.tolist(),
            "chip_seeds": None if self.chip_seeds is None else self.chip_seeds.tolist(),
            "summary": self.summary(),
        }

    @classmethod
    def from_dict(cls, data):
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError("Not a bayesft-keras drift report (no 'format': "
                             f"{FORMAT!r} entry).")
        if data.get("version") != VERSION:
            raise ValueError(
                f"Unsupported drift report version {data.get('version')!r}; this version of "
                f"bayesft-keras reads version {VERSION}."
            )
        try:
            return cls(
                values=data["values"],
                chip_metrics=data["chip_metrics"],
                clean=data["clean"],
                param=data["param"],
                metric=data["metric"],
                model_name=data["model_name"],
                seed=data["seed"],
                noise=data.get("noise"),
                bits=data.get("bits"),
                threshold=data.get("threshold"),
                num_examples=data.get("num_examples"),
                dataset=data.get("dataset"),
                chip_seeds=data.get("chip_seeds"),
            )
        except KeyError as e:
            raise ValueError(f"Drift report is missing the entry {e.args[0]!r}.") from None

    def to_json(self, path=None):
        """The report as JSON text; also written to `path` if given."""
        text = json.dumps(self.to_dict(), indent=1)
        if path is not None:
            files.write_text(path, text)
        return text

    @classmethod
    def from_json(cls, source):
        """Reads a report from JSON text or from a JSON file path."""
        if isinstance(source, (str, os.PathLike)) and not str(source).lstrip().startswith("{"):
            path = os.fspath(source)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"Report file not found: {path}")
            with open(path, encoding="utf-8") as f:
                source = f.read()
            where = f" in {path}"
        else:
            where = ""
        try:
            data = json.loads(source)
        except json.JSONDecodeError as e:
            raise ValueError(f"Invalid JSON{where}: {e}") from None
        try:
            return cls.from_dict(data)
        except ValueError as e:
            raise ValueError(f"{e}{where}") from None

    def to_csv(self, path=None):
        """The summary as CSV text (one row per value); also written to `path` if given."""
        rows = self.summary()
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        header = list(rows[0])
        writer.writerow(header + ["clean"])
        for row in rows:
            writer.writerow([repr(row[k]) for k in header] + [repr(self.clean)])
        text = buffer.getvalue()
        if path is not None:
            files.write_text(path, text)
        return text

    def plot(self, path, **kwargs):
        """Writes a PNG of the metric against the swept value (see `plot_reports`)."""
        from bayesft_keras.evaluation import rendering

        return rendering.plot_reports([self], path, **kwargs)

    def table(self):
        """The summary as a `rich.table.Table`, for the terminal (all columns but max)."""
        from bayesft_keras.evaluation import rendering

        return rendering.report_table(self)

    def __repr__(self):
        return (
            f"DriftReport(model_name={self.model_name!r}, metric={self.metric!r}, "
            f"param={self.param!r}, values={len(self.values)}, chips={self.chips}, "
            f"clean={self.clean:.4f})"
        )
