"""How `bayesft-keras ... --help` reads: Typer's layout, less what misleads a new user.

Typer (0.29) prints a type after every option, `<bool>` after a flag too (`--help`
included), though a flag takes no value; and it writes a required argument
`{model}` in the usage line, where click, the POSIX usage convention and every
other command line write `MODEL`. `Command` and `Group` print neither. `tune`'s
options default to None because the preset decides: `PresetDefaultsCommand`
shows the preset's values instead of nothing.
"""

import typer
from typer.core import TyperCommand
from typer.core import TyperGroup


def _untyped_flag(param):
    # Typer's rich help prints the metavar, else the type, in the type column: an empty
    # metavar leaves it blank. Click's parser never reads a flag's metavar.
    if getattr(param, "is_flag", False) and param.metavar is None:
        param.metavar = ""


def _usage_name(argument):
    """An argument in the usage line as click writes it: `MODEL`, `[MODEL]`, `FILES...`."""
    name = argument.metavar or argument.name.upper()
    if not argument.required:
        name = f"[{name}]"
    if argument.nargs != 1:
        name += "..."
    return name


class _HelpLayout:
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for param in self.params:
            _untyped_flag(param)

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)  # made on first use
        if option is not None:
            _untyped_flag(option)
        return option


class Command(_HelpLayout, TyperCommand):
    """A command whose help prints no type after a flag, and `MODEL` for a required argument."""

    def collect_usage_pieces(self, ctx):
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                pieces.append(_usage_name(param))
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces


class Group(_HelpLayout, TyperGroup):
    """The command group: no type after its flags (`--help`, `--version`)."""


class App(typer.Typer):
    """`typer.Typer` whose commands are `Command`s unless they name their own class."""

    def __init__(self, **kwargs):
        kwargs.setdefault("cls", Group)
        super().__init__(**kwargs)

    def command(self, name=None, *, cls=None, **kwargs):
        return super().command(name, cls=cls or Command, **kwargs)


def _shown(value):
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value) or "none"
    return str(value)


def preset_defaults(fields):
    """`{field: text}`: each field's value in the preset each task starts from, for `--help`.

    A field that every such preset leaves unset (None) is left out. The text reads
    e.g. `from the preset; quick: 8, detection-quick: 4`, or `from the preset; quick and
    detection-quick: 20` when they agree.
    """
    from bayesft_keras import tasks
    from bayesft_keras.tuning.config import load_preset

    presets = {}
    for task in tasks.names():
        name = tasks.get(task).default_preset
        presets.setdefault(name, load_preset(name))
    texts = {}
    for field in fields:
        values = {name: getattr(config, field) for name, config in presets.items()}
        if all(v is None for v in values.values()):
            continue
        shown = {name: _shown(v) for name, v in values.items()}
        if len(set(shown.values())) == 1:
            texts[field] = f"from the preset; {' and '.join(shown)}: {next(iter(shown.values()))}"
        else:
            texts[field] = "from the preset; " + ", ".join(f"{n}: {v}" for n, v in shown.items())
    return texts


class PresetDefaultsCommand(Command):
    """`tune`: an option named like a `TuneConfig` field and left unset takes the preset's value.

    Its help shows that value (`[default: (from the preset; quick: 8, ...)]`) instead of no
    default at all. The presets are read when the help is printed, never when the command runs.
    The option that picks the task (and so the preset) is left alone.
    """

    def format_help(self, ctx, formatter):
        import dataclasses

        from bayesft_keras.tuning.config import TuneConfig

        fields = {f.name for f in dataclasses.fields(TuneConfig)} - {"task", "name"}
        unset = [
            p for p in self.params
            if p.param_type_name == "option" and p.name in fields and p.default is None and not isinstance(p.show_default, str)
        ]
        texts = preset_defaults([p.name for p in unset])
        for param in unset:
            if param.name in texts:
                param.show_default = texts[param.name]
        return super().format_help(ctx, formatter)
