"""`structkd experiment GRID -s DIR`: a grid of training runs, from one file to a table and plots.

A grid is a Jsonnet (or JSON) object:

    {
      base: "training_configs/distill/base_structural.jsonnet",  // the config every cell trains
      env: { TRAIN_PATH: "...", DEV_PATH: "...", TEST_PATH: "...", STUDENT: "crf" },  // its ext vars
      teacher: { config: "training_configs/ner/bilstm_crf.jsonnet" },  // or { archive: "model.tar.gz" }
      overrides: { gold_fraction: 0.1 },                        // for every cell
      axes: {
        objective: [{ type: "none" }, { type: "structural" }],   // = model.objective
        seed: [1, 2, 3],                                        // = random_seed
        "env.MAX_UNLABELED": ["10000", "50000"],                // an ext var
        "env.UNLABELED_PATH": { gold: "", raw: "unlabeled/pt/*.txt" },  // values with names
        "model.temperature.value": [1, 2],                      // any override path
      },
      exclude: [{ objective: "none", "env.MAX_UNLABELED": "50000" }],  // cells left out
      evaluate: { pt: "pt-test.iob2", da: "da-test.iob2" },    // more data to score each cell on
      threads: 1,                                               // per cell
      metrics: ["test_f1-measure-overall"],                     // the summary's columns
    }

Relative paths in `base`, `teacher` and `env` values are read from the grid file's directory. The
teacher (a config, with its own `overrides`) is trained once into `DIR/teacher/`, with the threads of
all `--jobs`, and reaches every cell as the ext var
`TEACHER`; teacher caches go to `DIR/teacher-cache/`, where a cache built by one cell is read by the
others (a second builder waits for the first). The cells are every combination of the axes' values
but those matching an `exclude` entry (e.g. a gold-only baseline given raw text it cannot use). Every cell is first built (config, vocabulary from a
few sentences, model with its teacher): a grid with a cell that cannot be built is refused before
anything runs, naming the cell. Cells then train as separate `structkd train` processes, `--jobs`
at a time, in `DIR/cells/NAME/`; a cell with a `metrics.json` is done and skipped when the
experiment is run again, a broken one is resumed (`--recover`) or restarted. `--summary-only`
trains nothing and summarizes the cells finished so far, e.g. while the experiment runs.

Several teachers (one per language, for the `multilingual` reader) are named: `teacher: { pt:
{ config: ..., env: { TRAIN_PATH: ... } }, da: { archive: ... } }`; each is trained once into
`DIR/teacher-NAME/`, and `TEACHER` is then a JSON object from name to archive (as an `env` value
that is an object becomes JSON). Each finished cell is scored on every `evaluate` entry, into its
`evaluations.json`; the results name those metrics `NAME_metric`.

Outputs: `results.csv` (a row per cell: its axes, every metric of `metrics.json`, epochs, seconds),
`summary.md` (mean ± std over seeds for each row of the other axes, the best value of each column
in bold, and the difference to the `none` objective paired by seed) and PNG plots: each summary
metric per objective with its seeds' spread, and against every numeric axis.
"""

import copy
import csv
import glob
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from tango.common import Params
from tango.common.exceptions import ConfigurationError

from structkd_plugin.commands.cli import cli
from structkd_plugin.config import check_keys, import_plugins, load_config
from structkd_plugin.file_safety import write_json

# Axis names that stand for an override path.
AXIS_PATHS = {"objective": "model.objective", "seed": "random_seed"}
STATUS_INTERVAL = 60.0


@cli.command("experiment")
@click.argument("grid_file", metavar="GRID", type=click.Path(exists=True, dir_okay=False))
@click.option("-s", "--serialization-dir", required=True, type=click.Path(file_okay=False), help="Where the teacher, cells, results and plots go.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Cells trained at once.")
@click.option(
    "--summary-only",
    is_flag=True,
    help="Train nothing: summarize the cells finished so far (a running or stopped experiment's partial table).",
)
def experiment_command(grid_file: str, serialization_dir: str, jobs: int, summary_only: bool) -> None:
    """Train every cell of the grid GRID and summarize them in a table and plots."""
    import_plugins()
    grid = Grid(Path(grid_file))
    directory = Path(serialization_dir)
    env = dict(grid.env, STRUCTKD_CACHE=str(directory / "teacher-cache"))
    cells = grid.cells()
    if summary_only:
        finished = [cell for cell in cells if (directory / "cells" / grid.cell_name(cell) / "metrics.json").is_file()]
        if not finished:
            raise ConfigurationError(f"no cell of {grid_file} has finished in {directory / 'cells'}")
        heading = f"Partial: {len(finished)} of {len(cells)} cells finished.\n\n" if len(finished) < len(cells) else ""
        click.echo(f"summarizing the {len(finished)} of {len(cells)} cells that have finished", err=True)
        cells = finished
    else:
        heading = ""
        directory.mkdir(parents=True, exist_ok=True)
        if grid.teacher:
            # Every cell's config is checked before the teacher trains, its model once the teacher exists.
            placeholder = "(trained next)" if _is_teacher(grid.teacher) else json.dumps(dict.fromkeys(grid.teacher, "(trained next)"))
            grid.check_cells(cells, {**env, "TEACHER": placeholder}, build_models=False)
        teacher = grid.teacher_archives(directory, env, grid.threads * jobs)
        if teacher is not None:
            env["TEACHER"] = teacher
        grid.check_cells(cells, env)
        run_cells(grid, cells, directory / "cells", env, jobs)
    evaluate_cells(grid, cells, directory / "cells", grid.threads * jobs)
    rows = collect(grid, cells, directory / "cells")
    write_results(rows, directory / "results.csv")
    summary = heading + summarize(grid, rows)
    (directory / "summary.md").write_text(summary, encoding="utf-8")
    plot(grid, rows, directory)
    click.echo(summary)
    click.echo(f"Results in {directory}/results.csv, {directory}/summary.md and {directory}/*.png", err=True)


class Grid:
    """A parsed grid file (see the module docstring)."""

    KEYS = ("base", "env", "teacher", "overrides", "axes", "exclude", "evaluate", "threads", "metrics")

    def __init__(self, path: Path) -> None:
        self.path = path
        spec = load_config(path).as_dict(quiet=True)
        unknown = sorted(set(spec) - set(self.KEYS))
        if unknown:
            raise ConfigurationError(f"{path}: unknown grid keys {unknown}; a grid has {list(self.KEYS)}")
        if "base" not in spec or not spec.get("axes"):
            raise ConfigurationError(f"{path}: a grid needs `base` (a config) and `axes`")
        self.base = self._path(spec["base"])
        self.env = {name: self._value(value) for name, value in (spec.get("env") or {}).items()}
        self.teacher = spec.get("teacher")
        named_teachers = self.teacher and not _is_teacher(self.teacher)
        if named_teachers and not all(isinstance(named, dict) and _is_teacher(named) for named in self.teacher.values()):
            raise ConfigurationError(f"{path}: `teacher` is {{config: ...}} or {{archive: ...}}, or an object of them by name")
        self.evaluations = {name: self._value(data) for name, data in (spec.get("evaluate") or {}).items()}
        # An axis is a list of values, or an object naming its values (for long ones, like paths).
        self.axes: dict[str, list[Any]] = {}
        self.labels: dict[str, dict[str, str]] = {}
        for axis, values in spec["axes"].items():
            if isinstance(values, dict):
                self.labels[axis] = {_key(value): label for label, value in values.items()}
                values = list(values.values())
            if not isinstance(values, list) or not values:
                raise ConfigurationError(f"{path}: axis {axis!r} needs a non-empty list of values, or an object naming them")
            self.axes[axis] = values
        self.exclude: list[dict[str, Any]] = spec.get("exclude") or []
        for entry in self.exclude:
            if not isinstance(entry, dict) or not entry or set(entry) - set(self.axes):
                raise ConfigurationError(f"{path}: each `exclude` entry maps some of the axes {list(self.axes)} to a value, not {entry!r}")
        self.overrides: dict[str, Any] = spec.get("overrides") or {}
        self.threads = int(spec.get("threads", 1))
        self.metrics = spec.get("metrics")

    def _path(self, value: str) -> Path:
        candidate = self.path.parent / value
        return candidate if candidate.exists() else Path(value)

    def _value(self, value: Any) -> str:
        """An ext var's value, where each of its comma-separated parts that names files relative to
        the grid file (a path or a glob) is read from there; an object (e.g. the `multilingual`
        reader's language -> file) becomes JSON, its values read the same way."""
        if isinstance(value, dict):
            return json.dumps({key: self._value(item) for key, item in value.items()})

        def resolved(part: str) -> str:
            relative = part and not Path(part).is_absolute() and glob.glob(str(self.path.parent / part))
            return str(self.path.parent / part) if relative else part

        return ",".join(resolved(part) for part in str(value).split(","))

    def teacher_archives(self, directory: Path, env: dict[str, str], threads: int) -> str | None:
        """The cells' `TEACHER` ext var: the teacher's archive, or for named teachers (one per
        language, say) a JSON object from name to archive. A teacher given by its config is trained
        once, into `directory/teacher` (`directory/teacher-NAME`), with `threads` threads: it trains
        alone, before the cells."""
        if not self.teacher:
            return None
        if _is_teacher(self.teacher):
            return str(self._teacher(self.teacher, directory / "teacher", env, threads))
        return json.dumps({name: str(self._teacher(spec, directory / f"teacher-{name}", env, threads)) for name, spec in self.teacher.items()})

    def _teacher(self, spec: dict[str, Any], run: Path, env: dict[str, str], threads: int) -> Path:
        if "archive" in spec:
            return self._path(spec["archive"])
        if not (run / "model.tar.gz").is_file():
            click.echo(f"training the teacher ({spec['config']}) into {run}", err=True)
            recover = ["--recover"] if (run / "config.json").is_file() else []
            command = [sys.executable, "-m", "structkd_plugin", "train", str(self._path(spec["config"])), "-s", str(run), *recover]
            if spec.get("overrides"):
                command += ["-o", json.dumps(spec["overrides"])]
            teacher_env = {**env, **{name: self._value(value) for name, value in (spec.get("env") or {}).items()}}
            completed = subprocess.run(command, check=False, env={**os.environ, **teacher_env, "OMP_NUM_THREADS": str(threads)})
            if completed.returncode != 0:
                raise click.ClickException(f"training the teacher failed (exit {completed.returncode}); see {run}/out.log")
        return run / "model.tar.gz"

    def cells(self) -> list[dict[str, Any]]:
        """Every combination of the axes' values, in the order of the axes, but those that match all
        the values of an `exclude` entry (compared by name: `"none"` matches `{type: "none"}`, and a
        named value matches its name)."""
        names = list(self.axes)
        combinations = [dict(zip(names, values)) for values in itertools.product(*(self.axes[name] for name in names))]

        def excluded(cell: dict[str, Any]) -> bool:
            return any(all(self.value_name(a, cell[a]) in (self.value_name(a, v), _short(v)) for a, v in entry.items()) for entry in self.exclude)

        return [cell for cell in combinations if not excluded(cell)]

    def cell_setup(self, cell: dict[str, Any], env: dict[str, str]) -> tuple[dict[str, str], dict[str, Any]]:
        """A cell's ext vars and its overrides: the grid's, and the cell's axes (nested, from
        dotted paths)."""
        cell_env, overrides = dict(env), copy.deepcopy(self.overrides)
        for axis, value in cell.items():
            if axis.startswith("env."):
                cell_env[axis[len("env.") :]] = self._value(value)
                continue
            target = overrides
            *parents, last = AXIS_PATHS.get(axis, axis).split(".")
            for part in parents:
                target = target.setdefault(part, {})
            target[last] = value
        return cell_env, overrides

    def check_cells(self, cells: list[dict[str, Any]], env: dict[str, str], build_models: bool = True) -> None:
        """Checks every cell's config (its keys, its dataset reader) and, with `build_models`, builds
        its model on the vocabulary of its training data (the labels must all be there: a teacher's
        are mapped to them) and asks it whether it can train on the cell's datasets; raises naming
        the first cell that fails, before any runs."""
        from structkd_plugin.data import DatasetReader, Vocabulary
        from structkd_plugin.models.model import Model
        from structkd_plugin.training.train import CONFIG_KEYS, dataset_names

        vocabularies: dict[str, Vocabulary] = {}
        for cell in cells:
            cell_env, overrides = self.cell_setup(cell, env)
            try:
                with _environment(cell_env):
                    config = load_config(self.base, json.dumps(overrides))
                    check_keys(config, "the top level of the config", CONFIG_KEYS)
                    reader_params = config["dataset_reader"].as_dict(quiet=True)
                    reader = DatasetReader.from_params(Params(copy.deepcopy(reader_params)))
                    if build_models:
                        key = json.dumps([reader_params, config["train_data_path"]], sort_keys=True)
                        if key not in vocabularies:
                            vocabularies[key] = Vocabulary.from_instances(reader.read(config["train_data_path"]))
                        names = dataset_names(config.as_dict(quiet=True))
                        Model.from_params(config.pop("model"), vocab=vocabularies[key]).check_datasets(names)
            except Exception as error:  # noqa: BLE001 - any failure to build is the cell's
                message = " ".join(str(error).split())
                raise ConfigurationError(f"grid cell {self.cell_name(cell)} cannot be built: {message}") from None

    def value_name(self, axis: str, value: Any) -> str:
        """A file-name-safe name of an axis value: its name in the grid, the type (and arguments) of
        a `{type: ...}` object, or the value itself."""
        label = self.labels.get(axis, {}).get(_key(value))
        return _short(label if label is not None else value)

    def cell_name(self, cell: dict[str, Any]) -> str:
        """A file-name-safe name of a cell from its axis values, e.g. `objective=structural,seed=1`."""
        return ",".join(f"{axis.split('.')[-1]}={self.value_name(axis, value)}" for axis, value in cell.items())


def _is_teacher(spec: Any) -> bool:
    return isinstance(spec, dict) and ("config" in spec or "archive" in spec)


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _short(value: Any) -> str:
    if isinstance(value, dict) and "type" in value:
        # A registered component: its type, then its other arguments (`top_k-k_5`).
        arguments = (f"{key}_{_short(argument)}" for key, argument in sorted(value.items()) if key != "type")
        return "-".join([_short(value["type"]), *arguments])
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_")


@contextmanager
def _environment(values: dict[str, str]):
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_cells(grid: Grid, cells: list[dict[str, Any]], root: Path, env: dict[str, str], jobs: int) -> None:
    """Trains the cells without a `metrics.json`, `jobs` at a time, with a status line per minute."""
    todo = [cell for cell in cells if not (root / grid.cell_name(cell) / "metrics.json").is_file()]
    if len(todo) < len(cells):
        click.echo(f"{len(cells) - len(todo)} of {len(cells)} cells are done already", err=True)
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    durations: list[float] = []
    failed: list[str] = []
    last_status = time.monotonic()
    while todo or running:
        while todo and len(running) < jobs:
            cell = todo.pop(0)
            name = grid.cell_name(cell)
            running[name] = (_start_cell(grid, cell, root / name, env), time.monotonic())
            click.echo(f"started {name}", err=True)
        time.sleep(0.2)
        for name, (process, started) in list(running.items()):
            if process.poll() is None:
                continue
            del running[name]
            if process.returncode == 0:
                durations.append(time.monotonic() - started)
                click.echo(f"finished {name} in {durations[-1]:.0f}s", err=True)
            else:
                failed.append(name)
                click.echo(f"FAILED {name} (exit {process.returncode}); see {root / name}.log (its output) and {root / name}/out.log", err=True)
        if running and time.monotonic() - last_status >= STATUS_INTERVAL:
            last_status = time.monotonic()
            mean = statistics.mean(durations) if durations else None
            eta = f", ETA {mean * (len(todo) + len(running)) / jobs:.0f}s" if mean else ""
            for name in running:
                epochs = len(list((root / name).glob("metrics_epoch_*.json")))
                click.echo(f"  running {name}: {epochs} epoch(s) done", err=True)
            click.echo(f"{len(todo)} cell(s) waiting, {len(running)} running{eta}", err=True)
    if failed:
        raise click.ClickException(f"{len(failed)} cell(s) failed: {', '.join(failed)}; run the experiment again to retry them")


def _start_cell(grid: Grid, cell: dict[str, Any], run: Path, env: dict[str, str]) -> subprocess.Popen:
    cell_env, overrides = grid.cell_setup(cell, env)
    resume = ["--recover"] if (run / "checkpoints").is_dir() and any((run / "checkpoints").iterdir()) else ["-f"]
    command = [sys.executable, "-m", "structkd_plugin", "train", str(grid.base), "-s", str(run), "-o", json.dumps(overrides), *resume]
    run.parent.mkdir(parents=True, exist_ok=True)
    log = open(run.parent / f"{run.name}.log", "w", encoding="utf-8")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(command, env={**os.environ, **cell_env, "OMP_NUM_THREADS": str(grid.threads)}, stdout=log, stderr=log)


def evaluate_cells(grid: Grid, cells: list[dict[str, Any]], root: Path, threads: int) -> None:
    """Scores each cell's archive on the grid's `evaluate` data (e.g. each language's test file),
    into the cell's `evaluations.json`, once."""
    if not grid.evaluations:
        return
    import torch

    from structkd_plugin.archival import load_archive
    from structkd_plugin.training.trainer import InstanceLoader, evaluate

    torch.set_num_threads(threads)
    for cell in cells:
        path = root / grid.cell_name(cell) / "evaluations.json"
        if path.is_file():
            continue
        archive = load_archive(path.parent / "model.tar.gz")
        results = {}
        for name, data in grid.evaluations.items():
            instances = list(archive.validation_dataset_reader.read(data))
            loader = InstanceLoader(instances, archive.model.tensorize, shuffle=False, max_tokens=2000)
            results[name] = evaluate(archive.model, loader, archive.model.device, f"{grid.cell_name(cell)} on {name}")
        write_json(path, results)


def collect(grid: Grid, cells: list[dict[str, Any]], root: Path) -> list[dict[str, Any]]:
    """A row per cell: its axis values (as names), every metric (`NAME_metric` for the `evaluate`
    data), epochs and seconds."""
    rows = []
    for cell in cells:
        metrics = json.loads((root / grid.cell_name(cell) / "metrics.json").read_text(encoding="utf-8"))
        evaluations = root / grid.cell_name(cell) / "evaluations.json"
        if evaluations.is_file():
            for name, scores in json.loads(evaluations.read_text(encoding="utf-8")).items():
                metrics.update({f"{name}_{metric}": value for metric, value in scores.items()})
        row = {axis: grid.value_name(axis, value) for axis, value in cell.items()}
        row.update({name: value for name, value in metrics.items() if isinstance(value, (int, float))})
        row["epochs"] = metrics.get("epoch", -1) + 1
        row["seconds"] = metrics.get("training_duration")
        rows.append(row)
    return rows


def write_results(rows: list[dict[str, Any]], path: Path) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _summary_metrics(grid: Grid, rows: list[dict[str, Any]]) -> list[str]:
    if grid.metrics:
        return list(grid.metrics)
    return [name for name in rows[0] if name.startswith(("test_", "best_validation_"))][:4]


def summarize(grid: Grid, rows: list[dict[str, Any]]) -> str:
    """The markdown table: a row per combination of the non-seed axes, mean ± std over seeds."""
    metrics = _summary_metrics(grid, rows)
    keys = [axis for axis in grid.axes if axis != "seed"]
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    means = {group: {m: statistics.mean(r[m] for r in members if m in r) for m in metrics} for group, members in groups.items()}
    # The best of each column: the lowest loss, the highest of anything else.
    best = {m: (min if "loss" in m else max)(values[m] for values in means.values()) for m in metrics}
    header = [*(k.split(".")[-1] for k in keys), "seeds", *metrics]
    has_baseline = "objective" in grid.axes and any(row.get("objective") == "none" for row in rows)
    if has_baseline:
        header.append(f"{metrics[0]} vs none (paired by seed)")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for group, members in groups.items():
        cells = list(group) + [str(len(members))]
        for m in metrics:
            values = [100 * r[m] if r[m] <= 1 else r[m] for r in members if m in r]
            text = f"{statistics.mean(values):.2f}" + (f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else "")
            cells.append(f"**{text}**" if means[group][m] == best[m] else text)
        if has_baseline:
            cells.append(_paired_difference(group, keys, members, groups, metrics[0]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _paired_difference(group, keys, members, groups, metric) -> str:
    """Mean ± std over seeds of (this row - the `none` row with the same seed and other axes)."""
    baseline_key = tuple("none" if k == "objective" else v for k, v in zip(keys, group))
    if baseline_key == group or baseline_key not in groups:
        return ""
    baseline = {r.get("seed"): r[metric] for r in groups[baseline_key]}
    differences = [100 * (r[metric] - baseline[r.get("seed")]) for r in members if r.get("seed") in baseline]
    if not differences:
        return ""
    return f"{statistics.mean(differences):+.2f}" + (f" ± {statistics.stdev(differences):.2f}" if len(differences) > 1 else "")


def plot(grid: Grid, rows: list[dict[str, Any]], directory: Path) -> None:
    """PNG plots: each summary metric per objective (seeds as points), and against numeric axes;
    a series per combination of the other non-seed axes, so that no axis is averaged away."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for metric in _summary_metrics(grid, rows):
        if "objective" in grid.axes:
            objectives = list(dict.fromkeys(row["objective"] for row in rows))
            series = _series(grid, rows, "objective")
            figure, axis = plt.subplots(figsize=(max(4, 1.2 * len(objectives) * max(1, len(series) / 2)), 3.2))
            width = 0.8 / len(series)
            for s, (label, members) in enumerate(series.items()):
                offset = (s - (len(series) - 1) / 2) * width
                legend = label or None  # on the series' first point only
                for x, objective in enumerate(objectives):
                    values = [row[metric] for row in members if row["objective"] == objective and metric in row]
                    if not values:
                        continue
                    axis.scatter([x + offset] * len(values), values, alpha=0.6, color=f"C{s}", label=legend)
                    legend = None
                    axis.errorbar([x + offset], [statistics.mean(values)], yerr=[statistics.pstdev(values)], fmt="_", color="black", capsize=4)
            # Long names would run into each other side by side.
            slanted = {"rotation": 20, "ha": "right"} if max(map(len, objectives)) > 12 else {}
            axis.set_xticks(range(len(objectives)), objectives, **slanted)
            axis.set_ylabel(metric)
            if len(series) > 1:
                axis.legend(fontsize="small")
            figure.tight_layout()
            figure.savefig(directory / f"{metric}_by_objective.png", dpi=110)
            plt.close(figure)
        for axis_name, values in grid.axes.items():
            if axis_name == "seed" or len(values) < 2 or not all(_number(v) is not None for v in values):
                continue
            figure, axis = plt.subplots(figsize=(5, 3.2))
            for label, members in _series(grid, rows, axis_name).items():
                points: dict[float, list[float]] = {}
                for row in members:
                    if metric in row:
                        points.setdefault(_number(row[axis_name]), []).append(row[metric])
                xs = sorted(points)
                axis.plot(xs, [statistics.mean(points[x]) for x in xs], marker="o", label=label or metric)
            axis.set_xlabel(axis_name)
            axis.set_ylabel(metric)
            axis.legend(fontsize="small")
            figure.tight_layout()
            figure.savefig(directory / f"{metric}_by_{axis_name.split('.')[-1]}.png", dpi=110)
            plt.close(figure)


def _series(grid: Grid, rows: list[dict[str, Any]], plotted: str) -> dict[str, list[dict[str, Any]]]:
    """The rows grouped by the values of every non-seed axis but `plotted`, each group named by
    those values ("crf_chars, structural"; "" when there is no other axis)."""
    others = [axis for axis in grid.axes if axis not in ("seed", plotted)]
    series: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        label = ", ".join(f"{axis.split('.')[-1]}={row[axis]}" if _number(row[axis]) is not None else str(row[axis]) for axis in others)
        series.setdefault(label, []).append(row)
    return series


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
