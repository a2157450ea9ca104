"""digit-workbench: weight sharing and auxiliary losses on the MNIST digit-comparison task.

The packages are layers, each importing only those below it (docs/architecture.md; the import-linter contracts in
pyproject.toml hold them): cli and tui; sweep; training; export, analysis, records; engine; paper; and format,
fsutil, procs beneath all.

Imports sit at the top of every module, so the graph a reader sees is the real one. The one exception: an import
of a library in DEFERRED (or of a workbench module that imports one) may wait inside the function that needs it,
so that a command or a screen that does not need the library starts without paying for it.
tests/test_architecture.py holds every module to this.
"""

__version__ = "0.4.0"  # pyproject.toml and CHANGELOG.md say the same (tests/test_readme.py)

DEFERRED = {
    "torch": "about 1.5 s and 300 MB: the commands that only read records (runs, compare, export, presets) and the "
             "app's first screen never train",
    "torchvision": "only `data download` fetches full MNIST with it",
    "matplotlib": "about 0.5 s: only figures (plot, the compare screen's export, report pictures) draw with it",
    "scipy": "about 0.3 s: only the paired tests use its t distribution",
    "optuna": "about 1 s: only a sweep's workers and its screen search with it",
    "mlflow": "several seconds: only --track and export --mlflow send runs with it",
    "PIL": "only `predict` reads a picture file, and `export --tensorboard` hands its figures over as pixels",
    "tensorboardX": "about 1.5 s: only `export --tensorboard` writes event files with it",
    "textual": "only the app draws screens; the headless commands never import it",
}
