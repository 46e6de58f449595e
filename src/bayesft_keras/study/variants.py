"""The variant grid of the component study: which build settings each variant changes.

A study compares, per *component* (dropout, normalization, depth,
activation), a few *variants* against one shared *baseline*: no dropout, no
normalization, 3 layers, ReLU. A variant changes exactly one setting of the
baseline, so any difference in drift tolerance is that component's.
"""

import dataclasses
import math
import numbers

COMPONENTS = ("dropout", "normalization", "depth", "activation")

# The baseline every variant is compared to (the paper's plain MLP).
BASELINE = {"dropout": 0.0, "normalization": "none", "depth": 3, "activation": "relu"}

# The values studied per component; each includes the baseline's.
DEFAULT_GRID = {
    "dropout": (0.0, 0.2, 0.5, 0.8),
    "normalization": ("none", "batch", "layer", "group"),
    "depth": (3, 6, 9),
    "activation": ("relu", "tanh", "sigmoid", "gelu", "elu"),
}

# What the BayesFT paper found for each component (MLP on MNIST), for reference.
PAPER_FINDINGS = {
    "dropout": "dropout improves drift tolerance",
    "normalization": "normalization (batch, group, instance, layer) makes it worse",
    "depth": "more layers make it worse",
    "activation": "the choice of activation makes no significant difference",
}

BASELINE_NAME = "baseline"


@dataclasses.dataclass(frozen=True)
class Variant:
    """One network configuration of the study.

    Attributes:
        component: the component it varies, or "baseline" for the shared baseline.
        value: the component's value (the baseline's: None).
        settings: `((setting, value), ...)`: every setting of the
            network, the baseline's with this variant's change.
    """

    component: str
    value: object
    settings: tuple

    @property
    def is_baseline(self):
        return self.component == BASELINE_NAME

    @property
    def name(self):
        """A file-name-safe identifier, unique within its component."""
        if self.is_baseline:
            return BASELINE_NAME
        if self.component == "dropout":
            return f"rate_{self.value:g}"
        if self.component == "depth":
            return f"depth_{self.value}"
        return str(self.value)

    @property
    def label(self):
        """How tables, plots and statements call it."""
        if self.is_baseline:
            return BASELINE_NAME
        return value_label(self.component, self.value)

    def kwargs(self):
        """The settings as a dict."""
        return dict(self.settings)

    def path(self, seed):
        """Where its result for `seed` is stored, relative to the study folder."""
        return f"variants/{self.component}/{self.name}_seed{seed}.json"


def value_label(component, value):
    """A short human label of a component's value, e.g. "dropout 0.5", "batch norm"."""
    if component == "dropout":
        return "no dropout" if value == 0 else f"dropout {value:g}"
    if component == "normalization":
        return "no normalization" if value == "none" else f"{value} norm"
    if component == "depth":
        return f"{value} layers"
    return str(value)


@dataclasses.dataclass(frozen=True)
class Grid:
    """The variants of a study.

    Attributes:
        components: the studied components, in order.
        baseline: the shared baseline `Variant`.
        variants: `{component: [Variant, ...]}`, the baseline excluded.
        baseline_values: `{setting: value}` of the baseline.
        skipped: `{component: reason}` for components left out because
            they do not apply (e.g. depth of a fixed-depth architecture).
    """

    components: tuple
    baseline: Variant
    variants: dict
    baseline_values: dict
    skipped: dict

    def all_variants(self):
        """The baseline, then every component's variants."""
        return [self.baseline] + [v for c in self.components for v in self.variants[c]]

    def baseline_label(self, component):
        """The baseline's label within `component`, e.g. "no dropout (baseline)"."""
        return f"{value_label(component, self.baseline_values[component])} (baseline)"


def parse_components(components):
    """`None` (all), a comma-separated string or a list of names -> a tuple of names."""
    if components is None:
        return None
    if isinstance(components, str):
        names = [c.strip() for c in components.split(",") if c.strip()]
    else:
        try:
            names = list(components)
        except TypeError:
            names = None
        if names is None or not all(isinstance(c, str) for c in names):
            raise ValueError(
                f"`components` must be names from {list(COMPONENTS)} (a list or a comma-separated "
                f"string). Received: components={components!r}"
            )
    unknown = [c for c in names if c not in COMPONENTS]
    if unknown:
        raise ValueError(
            f"Unknown component(s) {unknown}. Valid components: {', '.join(COMPONENTS)}. "
            f"Received: components={components!r}"
        )
    if not names:
        raise ValueError(
            f"`components` is empty; give one or more of {', '.join(COMPONENTS)}. "
            f"Received: components={components!r}"
        )
    return tuple(dict.fromkeys(names))


def check_value(component, value):
    """Validates one value of a component (the build function checks the rest)."""
    if component == "dropout":
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 <= value < 1
        allowed = "a rate in [0, 1)"
    elif component == "depth":
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1
        allowed = "an int >= 1 (dense layers, output included)"
    else:
        ok = isinstance(value, str) and bool(value)
        allowed = "a name (e.g. 'batch')" if component == "normalization" else "a Keras activation name"
    if not ok:
        raise ValueError(f"Each {component} value must be {allowed}. Received: {value!r}")
    if component == "dropout":
        return float(value)
    if component == "depth":
        return int(value)
    return value


def make_grid(components=None, grid=None, baseline=None, supports_depth=True, arch=None):
    """The variants of a study.

    Args:
        components: the components to study (names from `COMPONENTS`, a
            comma-separated string, or None for all that apply).
        grid: `{component: values}` replacing `DEFAULT_GRID`'s values of
            those components; the baseline's value is added when missing.
        baseline: `{setting: value}` replacing `BASELINE`'s values.
        supports_depth: False when the network has a fixed depth: the depth
            component is then skipped when `components` is None and an
            error when asked for.
        arch: the architecture's name, for messages.

    Returns:
        A `Grid`.
    """
    requested = parse_components(components)
    skipped = {}
    depth_reason = (
        f"not applicable to {arch or 'this network'}: only mlp has a depth option (3, 6, 9 "
        "layers); other architectures have a fixed depth"
    )
    if requested is None:
        chosen = COMPONENTS if supports_depth else tuple(c for c in COMPONENTS if c != "depth")
        if not supports_depth:
            skipped["depth"] = depth_reason
    else:
        if "depth" in requested and not supports_depth:
            raise ValueError(f"The depth component is {depth_reason}. Remove it from `components`.")
        chosen = requested
    baseline = dict(baseline or {})
    unknown = sorted(set(baseline) - set(COMPONENTS))
    if unknown:
        raise ValueError(
            f"`baseline` may set {list(COMPONENTS)}. Received unknown keys: {unknown}"
        )
    if "depth" in baseline and not supports_depth:
        raise ValueError(f"`baseline` sets depth, which is {depth_reason}.")
    baseline_values = dict(BASELINE)
    for key, value in baseline.items():
        baseline_values[key] = check_value(key, value)
    grid = dict(grid or {})
    unknown = sorted(set(grid) - set(chosen))
    if unknown:
        raise ValueError(
            f"`grid` sets values of component(s) {unknown} that are not studied "
            f"(studied: {list(chosen)})."
        )

    # Every variant carries all the settings (the baseline's where unchanged),
    # so a run's identity does not depend on which other components are studied.
    keys = [c for c in COMPONENTS if supports_depth or c != "depth"]
    base_settings = tuple((k, baseline_values[k]) for k in keys)
    base = Variant(BASELINE_NAME, None, base_settings)
    variants = {}
    for component in chosen:
        raw = grid.get(component, DEFAULT_GRID[component])
        if isinstance(raw, (str, bytes)) or not hasattr(raw, "__iter__"):
            raise ValueError(
                f"`grid[{component!r}]` must be a list of values. Received: {raw!r}"
            )
        values = [check_value(component, v) for v in raw]
        values = [v for v in dict.fromkeys(values) if v != baseline_values[component]]
        if not values:
            raise ValueError(
                f"`grid[{component!r}]` has no value besides the baseline's "
                f"({baseline_values[component]!r}): nothing to compare. Received: {raw!r}"
            )
        variants[component] = [
            Variant(
                component,
                value,
                tuple((k, value if k == component else baseline_values[k]) for k in keys),
            )
            for value in values
        ]
    return Grid(tuple(chosen), base, variants, baseline_values, skipped)


def parse_sigmas(sigmas):
    """Validates drift strengths: non-negative finite distinct numbers -> a sorted tuple."""
    try:
        values = [float(s) for s in sigmas]
    except (TypeError, ValueError):
        values = None
    if not values or any(not math.isfinite(v) or v < 0 for v in values):
        raise ValueError(
            "`sigmas` must be one or more non-negative finite numbers. "
            f"Received: sigmas={sigmas!r}"
        )
    if len(set(values)) != len(values):
        raise ValueError(f"`sigmas` has repeated values. Received: sigmas={sigmas!r}")
    return tuple(sorted(values))


def parse_seeds(seeds):
    """A count `n` (seeds 0..n-1) or a list of distinct non-negative ints -> a tuple."""
    if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"`seeds` must be >= 1 (the number of seeds). Received: seeds={seeds!r}")
        return tuple(range(int(seeds)))
    try:
        values = list(seeds)
    except TypeError:
        values = None
    if (
        not values
        or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 0 for s in values)
        or len(set(values)) != len(values)
    ):
        raise ValueError(
            "`seeds` must be a count >= 1 or a list of distinct non-negative ints. "
            f"Received: seeds={seeds!r}"
        )
    return tuple(int(s) for s in values)
