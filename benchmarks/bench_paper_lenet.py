"""LeNet-5 / MNIST: the BayesFT authors' procedure and bayesft-keras side by side, on real digits.

"theirs" is `reference_torch` (their PyTorch code re-implemented on NumPy arrays); "ours" is
the package's public API: `run_search(TuneConfig)` with the lenet5-mnist preset's values
for the search, `BayesFTHyperModel` + `evaluate_drift` for the drift curve. Both sides get
the same arrays: `bayesft_keras.data.load("mnist5k", seed)` (3,500 train / 500 validation /
1,000 test real MNIST digits): they train on train, the search objective is measured on
validation, and the winner is re-scored on fresh chips on validation and on test.

(a) no-dropout LeNet-5 drift curve on test: --curve-sigmas sigmas in [0, 1.5] x --curve-chips
    chips, for --curve-seeds training seeds per side (data split --data-seed).
(b) the search at --sigma with --chips chips, --trials trials (1 hand-picked + 3 random + GP),
    for --search-seeds seeds per side; the data split of search seed s is load(seed=s) on both
    sides (run_search ties the split to its seed). Ours runs every --spaces search space
    ("paper", "extended") that TuneConfig supports.
(c) wall time per trial (train / score) and of the drift curves. Threads: --torch-threads
    (default 1: on the shared, loaded 2-core machine torch with 2 threads trained ~10x
    slower) and --tf-threads (default: TensorFlow's own); the load average is recorded.

    PYTHONPATH=src nice -n 10 python benchmarks/bench_paper_lenet.py --out runs/paper_lenet.json
    # smoke test:
    PYTHONPATH=src python benchmarks/bench_paper_lenet.py --epochs 2 --trials 3 --curve-seeds 1 \
        --search-seeds 1 --curve-sigmas 4 --curve-chips 3 --chips 5 --out /tmp/smoke.json

Ours, per search seed s: TuneConfig seed s seeds the split, Keras, the oracle and the chips;
report_sigmas is (sigma, sigma, 1), so each trial is scored at sigma only (as theirs, no
7-point curve per trial). Fresh chips for the re-score: seed s + 10007 (validation) and
s + 20011 (test), both sides; the drift curves use chip seed 1000 + training seed.
"""

import argparse
import dataclasses
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reference_torch as ref  # noqa: E402  (its own directory)

CURVE_SIGMA_MAX = 1.5
REPORT_AT = (0.5, 0.8, 1.0, 1.5)
VAL_RESCORE_OFFSET = 10007
TEST_RESCORE_OFFSET = 20011
CURVE_CHIP_OFFSET = 1000


# -- helpers ---------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=256, help="both sides (their MNIST loader used 2048)")
    p.add_argument("--curve-sigmas", type=int, default=31, help="number of sigmas in [0, 1.5]")
    p.add_argument("--curve-chips", type=int, default=20)
    p.add_argument("--curve-seeds", type=int, default=3, help="training seeds per side; 0 skips (a)")
    p.add_argument("--data-seed", type=int, default=0, help="split of the drift-curve part")
    p.add_argument("--sigma", type=float, default=1.5, help="objective sigma")
    p.add_argument("--chips", type=int, default=30, help="objective chips")
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--search-seeds", type=int, default=3, help="searches per side; 0 skips (b)")
    p.add_argument("--spaces", default="paper,extended", help="our search spaces (comma-separated)")
    p.add_argument("--sides", default="theirs,ours")
    p.add_argument("--baselines", default="ftna,awp",
                   help="the paper's baselines (ours, bayesft_keras.baselines) in (a), beside no dropout; 'none' for none")
    p.add_argument("--init", default=None, help="our init (torch|he|glorot), when TuneConfig has it")
    p.add_argument("--init-scale", type=float, default=None)
    p.add_argument("--torch-threads", type=int, default=1,
                   help="theirs: torch.set_num_threads (1: on a loaded 2-core machine 2 threads ran ~10x slower)")
    p.add_argument("--tf-threads", type=int, default=0,
                   help="ours (TensorFlow backend): intra- and inter-op threads; 0 keeps TensorFlow's default")
    p.add_argument("--no-epoch-validation", action="store_true",
                   help="theirs: skip the per-epoch validation pass of their training loop")
    p.add_argument("--workdir", default=None, help="keep our run directories here (default: a temp dir)")
    p.add_argument("--out", required=True, help="JSON of all raw numbers")
    p.add_argument("--png", default=None, help="drift-curve plot (default: --out with .png)")
    p.add_argument("--verbose", type=int, default=1)
    return p.parse_args(argv)


def log(args, *msg):
    if args.verbose:
        print(*msg, flush=True)


def config_fields():
    from bayesft_keras.tuning.config import TuneConfig

    return {f.name for f in dataclasses.fields(TuneConfig)}


def base_config(args, seed, space=None):
    """The lenet5-mnist preset with the benchmark's budgets (and our optional settings)."""
    from bayesft_keras.tuning.config import load_preset

    fields = config_fields()
    overrides = dict(
        dataset="mnist5k", trials=args.trials, initial_points=min(4, args.trials), baselines=(),
        epochs=args.epochs, batch_size=args.batch_size, sigma=args.sigma, chips=args.chips,
        report_sigmas=(args.sigma, args.sigma, 1), report_chips=args.chips, seed=seed,
    )
    if space is not None and "search_space" in fields:
        overrides["search_space"] = space
    for name, value in (("init", args.init), ("init_scale", args.init_scale)):
        if value is not None:
            if name not in fields:
                raise SystemExit(f"--{name.replace('_', '-')}: TuneConfig has no field {name!r} yet")
            overrides[name] = value
    return load_preset("lenet5-mnist").replace(**overrides)


def our_recipe(config):
    """The recipe fields of a config that matter for the comparison (for the JSON)."""
    keys = ("epochs", "batch_size", "learning_rate", "clipvalue", "weight_decay", "rate_range",
            "output_rate_range", "initial_points", "init", "init_scale", "search_space", "sigma", "chips")
    d = config.to_dict()
    return {k: d[k] for k in keys if k in d}


def stats(values):
    v = np.asarray(values, dtype=float)
    return {
        "mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else None,
        "min": float(v.min()), "max": float(v.max()), "n": int(len(v)),
    }


def curve_summary(chip_metrics):
    """chip_metrics: (seeds, sigmas, chips) -> mean over seeds, spread and combined error per sigma.

    error^2 = (seed-to-seed variance of the per-seed means) / n_seeds + MC variance of the
    mean, where the MC variance = mean over seeds of (chip variance / chips), / n_seeds.
    With one seed the seed term is unknown and left out (``seed_std`` None).
    """
    a = np.asarray(chip_metrics, dtype=float)
    n_seeds, _, chips = a.shape
    per_seed = a.mean(axis=2)
    mean = per_seed.mean(axis=0)
    seed_var = per_seed.var(axis=0, ddof=1) if n_seeds > 1 else np.zeros_like(mean)
    chip_var = a.var(axis=2, ddof=1) if chips > 1 else np.zeros_like(per_seed)
    mc_var = chip_var.mean(axis=0) / chips / n_seeds
    return {
        "mean": mean, "per_seed": per_seed, "seed_std": np.sqrt(seed_var) if n_seeds > 1 else None,
        "mc_var": mc_var, "error": np.sqrt(seed_var / n_seeds + mc_var),
        "min": per_seed.min(axis=0), "max": per_seed.max(axis=0),
    }


def jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# -- (a) drift curves --------------------------------------------------------------


def theirs_curve(args, ds, sigmas, seed):
    import torch

    torch.manual_seed(seed)
    train_dl, valid_dl = ref.loaders(ds.x_train, ds.y_train, ds.x_val, ds.y_val, args.batch_size)
    start = time.perf_counter()
    model = ref.train((0.0,) * 5, train_dl, valid_dl, epochs=args.epochs,
                      epoch_validation=not args.no_epoch_validation)
    trained = time.perf_counter()
    chip_metrics, clean = ref.drift_curve(model, ds.x_test, ds.y_test, sigmas, args.curve_chips,
                                          seed=CURVE_CHIP_OFFSET + seed)
    return chip_metrics, clean, trained - start, time.perf_counter() - trained


def ours_curve(args, ds, sigmas, seed, baseline=None):
    import keras
    import keras_tuner

    from bayesft_keras.evaluation import evaluate_drift
    from bayesft_keras.tasks.classification import zoo_hypermodel  # the hypermodel run_search builds

    config = base_config(args, seed, space="paper")
    keras.utils.set_random_seed(seed)
    hypermodel = zoo_hypermodel(config, ds, baseline=baseline)  # baseline: "ftna", "awp" or None
    hp = keras_tuner.HyperParameters()
    for name in hypermodel.hyperparameter_names():
        if name.startswith("dropout_"):
            hp.Fixed(name, 0.0)
    start = time.perf_counter()
    model = hypermodel.build(hp)
    hypermodel.fit(hp, model, ds.x_train, ds.y_train, verbose=0)
    trained = time.perf_counter()
    metric = hypermodel.metric() if baseline else "accuracy"  # FTNA: nearest-codeword accuracy
    report = evaluate_drift(model, (ds.x_test, ds.y_test), sigmas=list(sigmas), chips=args.curve_chips,
                            seed=CURVE_CHIP_OFFSET + seed, metric=metric, progress=False)
    return report.chip_metrics, report.clean, trained - start, time.perf_counter() - trained


def run_curves(args, sides):
    from bayesft_keras import data

    ds = data.load("mnist5k", seed=args.data_seed)
    sigmas = np.round(np.linspace(0.0, CURVE_SIGMA_MAX, args.curve_sigmas), 10)
    out = {"sigmas": sigmas, "data_seed": args.data_seed, "chips": args.curve_chips, "test_size": len(ds.y_test)}
    fns = {"theirs": theirs_curve, "ours": ours_curve}
    baselines = [b for b in args.baselines.split(",") if b and b != "none"] if "ours" in sides else []
    for b in baselines:
        fns[f"ours-{b}"] = lambda args, ds, sigmas, seed, b=b: ours_curve(args, ds, sigmas, seed, baseline=b)
    for side in list(sides) + [f"ours-{b}" for b in baselines]:
        runs = []
        for seed in range(args.curve_seeds):
            chip_metrics, clean, train_s, curve_s = fns[side](args, ds, sigmas, seed)
            runs.append({"seed": seed, "chip_metrics": np.asarray(chip_metrics), "clean": float(clean),
                         "train_s": train_s, "curve_s": curve_s})
            log(args, f"(a) {side} seed {seed}: clean {clean:.4f}, at sigma 1.5 "
                      f"{np.asarray(chip_metrics)[-1].mean():.4f}; train {train_s:.1f} s, curve {curve_s:.1f} s")
        out[side] = {"runs": runs, "summary": curve_summary([r["chip_metrics"] for r in runs])}
    return out


# -- (b) searches ------------------------------------------------------------------


def theirs_search(args, ds, seed):
    trials = args.trials
    init_points = min(3, trials - 1)
    r = ref.run_search(ds.x_train, ds.y_train, ds.x_val, ds.y_val, seed, sigma=args.sigma, chips=args.chips,
                       init_points=init_points, n_iter=trials - 1 - init_points, epochs=args.epochs,
                       batch_size=args.batch_size, epoch_validation=not args.no_epoch_validation,
                       verbose=args.verbose > 1)
    model = ref.load_best(r["best"])
    val_fresh, _ = ref.drift_curve(model, ds.x_val, ds.y_val, [args.sigma], args.chips,
                                   seed=seed + VAL_RESCORE_OFFSET)
    test_fresh, clean_test = ref.drift_curve(model, ds.x_test, ds.y_test, [args.sigma], args.chips,
                                             seed=seed + TEST_RESCORE_OFFSET)
    return {
        "seed": seed, "best_val": r["best"]["score"], "best_params": r["best"]["params"],
        "val_fresh": float(val_fresh.mean()), "test": float(test_fresh.mean()), "clean_test": float(clean_test),
        "trials": r["trials"], "wall_s": r["wall_s"],
        "train_s": [t["train_s"] for t in r["trials"]], "score_s": [t["score_s"] for t in r["trials"]],
        "total_s": [t["total_s"] for t in r["trials"]],
    }


def ours_search(args, ds, seed, space, workdir):
    import csv

    import keras

    from bayesft_keras.evaluation import evaluate_drift
    from bayesft_keras.tuning.search import run_search

    config = base_config(args, seed, space=space)
    directory = Path(workdir) / f"ours-{space}-seed{seed}"
    if directory.exists():
        shutil.rmtree(directory)
    start = time.perf_counter()
    result = run_search(config, directory, verbose=0)
    wall = time.perf_counter() - start
    best = result.best
    model = keras.models.load_model(directory / "best_model.keras")
    val_fresh = evaluate_drift(model, (ds.x_val, ds.y_val), sigmas=[args.sigma], chips=args.chips,
                               seed=seed + VAL_RESCORE_OFFSET, progress=False)
    test_fresh = evaluate_drift(model, (ds.x_test, ds.y_test), sigmas=[args.sigma], chips=args.chips,
                                seed=seed + TEST_RESCORE_OFFSET, progress=False)
    with open(directory / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    timings = [best.timings[k] for k in sorted(best.timings, key=lambda k: int(k) if k.isdigit() else k)]
    return {
        "seed": seed, "space": space, "config": our_recipe(config),
        "best_val": best.validation_score, "best_params": best.hyperparameters,
        "val_fresh": float(val_fresh.mean()[0]), "test": float(test_fresh.mean()[0]),
        "test_same_chip_seeds": float(best.report.mean()[0]), "clean_test": float(test_fresh.clean),
        "trials": rows, "wall_s": wall,
        "train_s": [t["train"] for t in timings], "score_s": [t["score"] for t in timings],
        "total_s": [t.get("total", float("nan")) for t in timings],
    }


def run_searches(args, sides, spaces, workdir):
    from bayesft_keras import data

    out = {}
    for seed in range(args.search_seeds):
        ds = data.load("mnist5k", seed=seed)
        if "theirs" in sides:
            r = theirs_search(args, ds, seed)
            out.setdefault("theirs", []).append(r)
            log(args, f"(b) theirs seed {seed}: best val {r['best_val']:.4f}, fresh val {r['val_fresh']:.4f}, "
                      f"test {r['test']:.4f}; {np.mean(r['total_s']):.1f} s/trial")
        if "ours" in sides:
            for space in spaces:
                r = ours_search(args, ds, seed, space, workdir)
                out.setdefault(f"ours-{space}", []).append(r)
                log(args, f"(b) ours-{space} seed {seed}: best val {r['best_val']:.4f}, fresh val "
                          f"{r['val_fresh']:.4f}, test {r['test']:.4f}; {np.mean(r['total_s']):.1f} s/trial")
    summary = {}
    for key, runs in out.items():
        summary[key] = {
            name: stats([r[name] for r in runs]) for name in ("best_val", "val_fresh", "test", "clean_test")
        }
        summary[key]["winners_curse_val"] = stats([r["best_val"] - r["val_fresh"] for r in runs])
        for name in ("train_s", "score_s", "total_s"):
            summary[key][f"{name}_per_trial"] = stats(np.concatenate([r[name] for r in runs]))
    return {"runs": out, "summary": summary}


# -- output ------------------------------------------------------------------------


def fmt(x, digits=4):
    return "   -  " if x is None else f"{x:.{digits}f}"


def print_tables(args, result):
    curves = result.get("curves")
    if curves and "theirs" in curves and "ours" in curves:
        sig = np.asarray(curves["sigmas"])
        t, o = curves["theirs"]["summary"], curves["ours"]["summary"]
        n = args.curve_seeds
        print(f"\n(a) no-dropout LeNet-5, test split, {args.curve_chips} chips, {n} training seed(s) per side")
        print("sigma | theirs mean (seed min-max) +- err | ours mean (seed min-max) +- err | ours/theirs | agree (2x err)")
        for s in REPORT_AT:
            i = int(np.argmin(np.abs(sig - s)))
            if abs(sig[i] - s) > 1e-6:
                continue
            diff = o["mean"][i] - t["mean"][i]
            err = math.hypot(o["error"][i], t["error"][i])
            agree = abs(diff) <= 2 * err
            print(f" {s:4.2f} | {t['mean'][i]:.4f} ({t['min'][i]:.3f}-{t['max'][i]:.3f}) +- {t['error'][i]:.4f} | "
                  f"{o['mean'][i]:.4f} ({o['min'][i]:.3f}-{o['max'][i]:.3f}) +- {o['error'][i]:.4f} | "
                  f"{o['mean'][i] / t['mean'][i]:.3f} | {'yes' if agree else 'NO'} "
                  f"(diff {diff:+.4f}, 2x err {2 * err:.4f})")
        if n < 2:
            print("  (one seed: the error is the Monte Carlo error only; the seed-to-seed spread is unknown)")
        others = [k for k in curves if k.startswith("ours-")]
        if others:
            print(f"\n(a') the paper's baselines (ours), test split, mean (seed min-max) over {n} seed(s)")
            print("sigma | " + " | ".join(["no dropout (ours)"] + others))
            for s in REPORT_AT:
                i = int(np.argmin(np.abs(sig - s)))
                if abs(sig[i] - s) > 1e-6:
                    continue
                cells = [curves[k]["summary"] for k in ["ours"] + others]
                print(f" {s:4.2f} | " + " | ".join(
                    f"{c['mean'][i]:.4f} ({c['min'][i]:.3f}-{c['max'][i]:.3f})" for c in cells))
    searches = result.get("searches")
    if searches:
        sm = searches["summary"]
        print(f"\n(b) search at sigma {args.sigma}, {args.chips} chips, {args.trials} trials, "
              f"{args.search_seeds} seed(s) per side")
        print("side | best val mean (std, min-max) | fresh chips val | test | clean test | winner's curse (val) "
              "| s/trial (train + score)")
        for key, s in sm.items():
            print(f"{key} | {fmt(s['best_val']['mean'])} ({fmt(s['best_val']['std'], 3)}, "
                  f"{s['best_val']['min']:.3f}-{s['best_val']['max']:.3f}) | {fmt(s['val_fresh']['mean'])} | "
                  f"{fmt(s['test']['mean'])} | {fmt(s['clean_test']['mean'])} | "
                  f"{fmt(s['winners_curse_val']['mean'])} | {s['total_s_per_trial']['mean']:.1f} "
                  f"({s['train_s_per_trial']['mean']:.1f} + {s['score_s_per_trial']['mean']:.1f})")
        if "theirs" in sm:
            base = sm["theirs"]
            for key, s in sm.items():
                if key == "theirs":
                    continue
                print(f"ratio {key}/theirs: best val {s['best_val']['mean'] / base['best_val']['mean']:.3f}, "
                      f"test {s['test']['mean'] / base['test']['mean']:.3f}, s/trial "
                      f"{s['total_s_per_trial']['mean'] / base['total_s_per_trial']['mean']:.3f}")
    if curves:
        print("\n(c) drift-curve time (one model, "
              f"{len(curves['sigmas'])} sigmas x {args.curve_chips} chips on {curves.get('test_size')} images):")
        for side in ("theirs", "ours"):
            if side in curves:
                runs = curves[side]["runs"]
                print(f"  {side}: curve {np.mean([r['curve_s'] for r in runs]):.1f} s, "
                      f"training {np.mean([r['train_s'] for r in runs]):.1f} s")


def plot_curves(curves, path, args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sig = np.asarray(curves["sigmas"])
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    sides = [("theirs", "authors' PyTorch procedure", "C0"), ("ours", "bayesft-keras", "C1")]
    sides += [(k, f"bayesft-keras {k[5:].upper()}", f"C{2 + i}") for i, k in enumerate(
        k for k in curves if isinstance(k, str) and k.startswith("ours-"))]
    for side, label, color in sides:
        if side not in curves:
            continue
        s = curves[side]["summary"]
        ax.plot(sig, s["mean"], color=color, marker=".", label=f"{label} (mean of {args.curve_seeds} seeds)")
        ax.fill_between(sig, s["min"], s["max"], color=color, alpha=0.2, label=f"{label}: seed min-max")
    ax.set_xlabel("drift sigma (w' = w * exp(N(0, sigma^2)))")
    ax.set_ylabel(f"test accuracy (mean of {args.curve_chips} chips)")
    ax.set_title("LeNet-5 on mnist5k without dropout: drift tolerance, authors' code vs bayesft-keras"
                 + (" (+ the paper's baselines)" if len(sides) > 2 else ""))
    ax.title.set_fontsize(9)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.torch_threads)
    import keras

    if args.tf_threads and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.tf_threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.tf_threads)
    sides = [s for s in args.sides.split(",") if s]
    fields = config_fields()
    spaces = [s for s in args.spaces.split(",") if s]
    skipped_spaces = []
    if "search_space" not in fields:
        skipped_spaces = [s for s in spaces if s != "paper"]
        spaces = ["paper"]
        if skipped_spaces:
            print(f"TuneConfig has no `search_space` yet: running our 'paper' space only "
                  f"(skipped {skipped_spaces})")
    workdir = args.workdir or tempfile.mkdtemp(prefix="bench_paper_lenet_")
    Path(workdir).mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "bench_paper_lenet", "args": vars(args), "spaces": spaces, "skipped_spaces": skipped_spaces,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                    "tf_threads": args.tf_threads or "default",
                    "keras": keras.__version__, "keras_backend": keras.backend.backend(),
                    "bayes_opt": ref.BAYES_OPT_VERSION, "loadavg_start": os.getloadavg()},
        "our_config_paper": our_recipe(base_config(args, 0, space="paper")),
    }
    start = time.perf_counter()
    try:
        if args.curve_seeds > 0:
            result["curves"] = run_curves(args, sides)
        if args.search_seeds > 0:
            result["searches"] = run_searches(args, sides, spaces, workdir)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    result["machine"]["loadavg_end"] = os.getloadavg()
    result["wall_s"] = time.perf_counter() - start
    print_tables(args, result)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(jsonable(result), indent=1))
    print(f"\nraw numbers: {out}")
    if "curves" in result:
        png = Path(args.png) if args.png else out.with_suffix(".png")
        plot_curves(result["curves"], png, args)
        print(f"drift curves: {png}")
    print(f"total wall time {result['wall_s']:.0f} s; load average start {result['machine']['loadavg_start'][0]:.2f}, "
          f"end {result['machine']['loadavg_end'][0]:.2f}")


if __name__ == "__main__":
    main()
