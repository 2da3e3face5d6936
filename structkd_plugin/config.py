"""Reading training configs, importing plugins, and explaining configuration mistakes.

A config is Jsonnet read by tango's `Params.from_file`: `std.extVar("X")` reads the environment
variable `X`, and `--overrides` is a JSON (or Jsonnet) snippet whose keys replace the config's
(dotted keys such as `"trainer.num_epochs"` reach inside a block; a nested object replaces the whole
block it names).

Components are built from the config by tango's `from_params`, whose own error messages are terse
or, for an unknown registered name, crash while importing every module it can find. Building inside
`explained_configuration_errors()` gives one clear message instead: the unknown name with the
available names and the closest match, or the misspelled key with the component it was given to.
`building(component)` turns a constructor's `TypeError`/`ValueError` (a value it refuses) into such a
message too, and `check_keys` checks the keys of blocks that are read by hand.
"""

import ast
import difflib
import importlib
import inspect
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import Any

from tango.common import FromParams, Params, Registrable
from tango.common.exceptions import ConfigurationError
from tango.common.params import parse_overrides
from tango.common.util import import_module_and_submodules

__all__ = [
    "PLUGINS_FILE",
    "ConfigurationError",
    "apply_overrides",
    "building",
    "check_keys",
    "check_registered_name",
    "explained_configuration_errors",
    "import_plugins",
    "import_structkd_registrations",
    "load_config",
]

PLUGINS_FILE = ".structkd_plugins"
"""A file in the current directory listing plugin modules to import, one per line."""

# The packages whose modules register structkd's own readers, embedders and models.
_STRUCTKD_PACKAGES = (
    "structkd_plugin.data",
    "structkd_plugin.modules",
    "structkd_plugin.models",
    "structkd_plugin.distillation",
)


def load_config(path: str | PathLike, overrides: str | None = None) -> Params:
    """Reads the Jsonnet (or JSON) config at `path` and applies `overrides` to it.

    Raises `ConfigurationError` with a one-line message for a missing file, a Jsonnet error (an
    unset `std.extVar` names the variable) and overrides that do not fit the config.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigurationError(f"config file {path} does not exist")
    try:
        config = Params.from_file(path)
    except RuntimeError as error:  # what the Jsonnet evaluator raises
        raise ConfigurationError(_explain_jsonnet_error(str(error), path, None)) from None
    return apply_overrides(config, overrides)


def apply_overrides(config: Params, overrides: str | None) -> Params:
    """Returns `config` with `overrides` (a JSON or Jsonnet snippet) merged in, as AllenNLP does:
    a nested block merges into the config's block of the same name (`{"trainer": {"num_epochs":
    3}}` changes one key), a dotted key names one value (`{"trainer.num_epochs": 3}`), and any
    other value replaces what was there."""
    if not overrides:
        return config
    try:
        parsed = parse_overrides(overrides)
    except RuntimeError as error:
        raise ConfigurationError(_explain_jsonnet_error(str(error), None, overrides)) from None
    return Params(_merged(config.as_dict(quiet=True), _undotted(parsed)))


def _undotted(overrides: dict[str, Any]) -> dict[str, Any]:
    """`{"a.b": 1}` as `{"a": {"b": 1}}`, recursively."""
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        value = _undotted(value) if isinstance(value, dict) else value
        *parents, last = key.split(".")
        target = nested
        for parent in parents:
            target = target.setdefault(parent, {})
        target[last] = _merged(target[last], value) if isinstance(target.get(last), dict) and isinstance(value, dict) else value
    return nested


def _merged(original: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(original)
    for key, value in overrides.items():
        both_blocks = isinstance(value, dict) and isinstance(original.get(key), dict)
        merged[key] = _merged(original[key], value) if both_blocks else value
    return merged


def _explain_jsonnet_error(message: str, path: Path | None, overrides: str | None) -> str:
    first_line = message.strip().splitlines()[0] if message.strip() else "unknown Jsonnet error"
    missing = re.match(r"external variable is not defined: (\S+)", first_line)
    # The evaluator names the snippet "" (the location line starts with ":") for the overrides.
    in_overrides = overrides and re.search(r"^\s*:\d", message, re.MULTILINE)
    source = "--overrides" if in_overrides or path is None else str(path)
    if missing:
        return (
            f"{source} uses std.extVar('{missing.group(1)}'), but the environment variable "
            f"{missing.group(1)} is not set"
        )
    location = next((line.strip() for line in message.splitlines()[1:] if line.strip()), "")
    return f"cannot evaluate {source}: {first_line}" + (f" (at {location})" if location else "")


def import_structkd_registrations() -> None:
    """Imports every module of structkd that registers a component (readers, embedders, models),
    and tango's torch optimizers and learning rate schedulers."""
    importlib.import_module("tango.integrations.torch")
    for package in _STRUCTKD_PACKAGES:
        import_module_and_submodules(package)


def import_plugins(include_packages: Iterable[str] = ()) -> None:
    """Imports structkd's own registrations, then each module (and its submodules) named in
    `include_packages` and in a `.structkd_plugins` file in the current directory (one module per
    line; blank lines and `#` comments are skipped).

    A plugin that cannot be imported raises `ConfigurationError` naming it.
    """
    import_structkd_registrations()
    plugins = list(include_packages)
    plugins_file = Path(PLUGINS_FILE)
    if plugins_file.is_file():
        for line in plugins_file.read_text(encoding="utf-8").splitlines():
            module = line.split("#", 1)[0].strip()
            if module:
                plugins.append(module)
    for module in plugins:
        try:
            import_module_and_submodules(module)
        except ModuleNotFoundError as error:
            raise ConfigurationError(f"cannot import plugin module '{module}': {error}") from None


@contextmanager
def explained_configuration_errors() -> Iterator[None]:
    """Within this block, building components from a config raises `ConfigurationError`s with one
    clear message, and unknown registered names fail at once.

    Tango, on meeting a name that is not registered, imports every module it can find (all of its
    integrations, every `*.py` file in the current directory) hoping to find it; we never want
    that: plugins are imported explicitly by `import_plugins`. So that search is switched off here.
    """
    search_modules = Registrable.__dict__["search_modules"]
    Registrable.search_modules = classmethod(lambda cls, name: None)
    try:
        yield
    except ConfigurationError as error:
        raise ConfigurationError(_explain(error)) from None
    finally:
        Registrable.search_modules = search_modules


@contextmanager
def building(component: str) -> Iterator[None]:
    """Reports a plain `TypeError` or `ValueError` raised while `component` is built from its
    config block (a value of the wrong type, a constructor refusing a value) as a
    `ConfigurationError` naming the component. Subclasses of those errors, such as `DataError`,
    already say what is wrong and pass through unchanged."""
    try:
        yield
    except (TypeError, ValueError) as error:
        if type(error) not in (TypeError, ValueError):
            raise
        # Tango prefixes the arguments of errors inside a `Union` with its own context; the
        # constructor's message is the last one.
        message = error.args[-1] if error.args else error
        raise ConfigurationError(f"cannot build the {component} from the config: {message}") from error


_UNKNOWN_NAME = re.compile(
    r"^'(?P<name>.*)' not in acceptable choices for (?P<where>\S+): (?P<choices>\[.*?\])\. ", re.DOTALL
)
_EXTRA_KEYS = re.compile(r"^Extra parameters passed to (?P<component>\S+): (?P<extra>\{.*\})$", re.DOTALL)


def _explain(error: ConfigurationError) -> str:
    """The clearest message for `error`: tango wraps the error of a failed `Union` member in
    'Failed to construct argument ...' errors, so the most specific one is searched along the
    chain of causes."""
    chain: list[BaseException] = []
    cause: BaseException | None = error
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__
    for link in chain:
        message = str(link)
        unknown_name = _UNKNOWN_NAME.match(message)
        extra_keys = _EXTRA_KEYS.match(message)
        try:  # the names and keys are Python literals in tango's messages
            if unknown_name:
                choices = ast.literal_eval(unknown_name["choices"])
                return _explain_unknown_name(unknown_name["name"], unknown_name["where"], choices)
            if extra_keys:
                return _explain_extra_keys(extra_keys["component"], ast.literal_eval(extra_keys["extra"]))
        except (ValueError, SyntaxError):  # not quite the expected message: keep tango's
            continue
    # Otherwise tango's message, completed by the innermost cause's when it adds something. Tango
    # prefixes the arguments of errors inside a `Union` with its own context; the last is the cause's.
    innermost = chain[-1]
    detail = (
        str(innermost.args[-1]) if innermost.args and not isinstance(innermost, ConfigurationError) else str(innermost)
    )
    if innermost is error or detail in str(error):
        return str(error)
    return f"{error}: {detail}"


def check_registered_name(base: type[Registrable], name: str, where: str) -> None:
    """Raises `ConfigurationError` if `name` is not registered with `base`, listing the available
    names and the closest one; `where` says where the name came from (e.g. "--use-reader")."""
    if name not in base.list_available():
        raise ConfigurationError(_explain_unknown_name(name, where, base.list_available()))


def _explain_unknown_name(name: str, where: str, available: list[str]) -> str:
    message = f"unknown name '{name}' for {where}"
    closest = difflib.get_close_matches(name, available, n=1, cutoff=0.5)
    message += f"; did you mean '{closest[0]}'?" if closest else "."
    return (
        message + f" Available names: {', '.join(sorted(available))}. (A plugin's names need "
        f"--include-package MODULE or a line in {PLUGINS_FILE}.)"
    )


def check_keys(params: Params, where: str, accepted: Iterable[str]) -> None:
    """Raises `ConfigurationError` if `params` has a key outside `accepted`, naming the key, `where`
    it is (e.g. "the data_loader block") and the closest accepted key."""
    unknown = [key for key in params if key not in accepted]
    if unknown:
        raise ConfigurationError(_unknown_keys_message(where, unknown, list(accepted)))


def _explain_extra_keys(component: str, extra: dict) -> str:
    return _unknown_keys_message(f"the config of {component}", list(extra), _accepted_keys(component))


def _unknown_keys_message(where: str, keys: list[str], accepted: list[str]) -> str:
    message = f"unknown key{'s' if len(keys) > 1 else ''} {', '.join(repr(key) for key in keys)} in {where}"
    suggestions = []
    for key in keys:
        closest = difflib.get_close_matches(key, accepted, n=1, cutoff=0.6)
        if closest:
            suggestions.append(f"'{closest[0]}' instead of '{key}'")
    if suggestions:
        message += f"; did you mean {', '.join(suggestions)}?"
    return message


def _accepted_keys(component: str) -> list[str]:
    """The arguments of every constructor of the classes named `component`: their `__init__`, and
    the classmethods registered as their constructors (a few extras, like `vocab`, come along)."""
    constructors = [cls.__init__ for cls in _subclasses(FromParams) if cls.__name__ == component]
    for registry in Registrable._registry.values():
        for cls, constructor_name in registry.values():
            if getattr(cls, "__name__", None) == component:
                constructors.append(getattr(cls, constructor_name) if constructor_name else cls.__init__)
    accepted = []
    for constructor in constructors:
        try:
            parameters = inspect.signature(constructor).parameters
        except (TypeError, ValueError):  # a constructor implemented in C
            continue
        for name, parameter in parameters.items():
            variadic = parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
            if name not in ("self", "cls") and not variadic and name not in accepted:
                accepted.append(name)
    return accepted


def _subclasses(cls: type) -> set[type]:
    found = set()
    pending = [cls]
    while pending:
        for subclass in pending.pop().__subclasses__():
            if subclass not in found:
                found.add(subclass)
                pending.append(subclass)
    return found
