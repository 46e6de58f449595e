"""The networks of a study: variants of a zoo architecture, or of the user's `build_fn`."""

import inspect


class ZooBuilder:
    """Variants of an architecture of the zoo, trained with its recipe."""

    custom = False

    def __init__(self, arch, width, ds):
        from bayesft_keras import architectures
        from bayesft_keras.tuning.recipe import RECIPES

        entry = architectures.get(arch)
        self.name = entry.name
        self.width = width
        self.input_shape = ds.input_shape
        self.num_classes = ds.num_classes
        self.supports_depth = "depth" in entry.options
        self.recipe = RECIPES[self.name]

    def _kwargs(self, variant):
        from bayesft_keras import architectures

        settings = variant.kwargs()
        kwargs = {
            "input_shape": self.input_shape,
            "num_classes": self.num_classes,
            "width": self.width,
        }
        for key in ("normalization", "activation", "depth"):
            if key in settings:
                kwargs[key] = settings[key]
        rate = settings.get("dropout", 0.0)
        # Dropout goes after every hidden layer; dropping the output layer's
        # logits is a different (regularization) choice that the paper tunes apart.
        hidden = [s for s in architectures.sites(self.name, **kwargs) if s != "output"]
        if rate and not hidden:
            raise ValueError(
                f"{self.name} with {settings} has no dropout site besides the output's: "
                "dropout cannot be studied."
            )
        return kwargs, {site: rate for site in hidden}

    def check(self, grid):
        """Validates every variant's settings before anything is trained."""
        from bayesft_keras import architectures

        for variant in grid.all_variants():
            kwargs, _ = self._kwargs(variant)
            architectures.blueprint(self.name, **kwargs)

    def build(self, variant):
        from bayesft_keras import architectures

        kwargs, dropout = self._kwargs(variant)
        return architectures.build(self.name, dropout=dropout, **kwargs)


class FunctionBuilder:
    """Variants from the user's `build_fn(**settings) -> keras.Model`."""

    supports_depth = True
    width = None
    custom = True  # the user's network: its recipe unless it compiles the model itself

    def __init__(self, build_fn):
        from bayesft_keras.tuning.recipe import CUSTOM_RECIPE

        if not callable(build_fn):
            raise ValueError(
                "`build_fn` must be a function (**settings) -> keras.Model. "
                f"Received: build_fn={build_fn!r}"
            )
        self.build_fn = build_fn
        self.name = getattr(build_fn, "__name__", type(build_fn).__name__)
        self.recipe = CUSTOM_RECIPE

    def _accepted(self):
        """The settings the function takes as keywords; None when it takes any (`**kwargs`)."""
        try:
            parameters = inspect.signature(self.build_fn).parameters.values()
        except (TypeError, ValueError):  # no signature to read: pass every setting
            return None
        if any(p.kind == p.VAR_KEYWORD for p in parameters):
            return None
        return {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}

    def check(self, grid):
        """The function must accept the setting of every studied component."""
        accepted = self._accepted()
        if accepted is None:
            return
        missing = [c for c in grid.components if c not in accepted]
        if missing:
            raise ValueError(
                f"`build_fn` {self.name!r} must accept the keyword argument(s) {missing} "
                f"(the settings of the studied components); it accepts {sorted(accepted)}."
            )

    def arguments(self, variant):
        """The variant's settings that the function accepts (all with `**kwargs`)."""
        accepted = self._accepted()
        return {k: v for k, v in variant.kwargs().items() if accepted is None or k in accepted}

    def build(self, variant):
        import keras

        arguments = self.arguments(variant)
        model = self.build_fn(**arguments)
        if not isinstance(model, keras.Model):
            raise ValueError(
                f"`build_fn` must return a keras.Model. It returned {type(model).__name__} "
                f"for {arguments}."
            )
        return model
