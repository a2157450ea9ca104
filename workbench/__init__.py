"""digit-workbench: weight sharing and auxiliary losses on the MNIST digit-comparison task."""

__version__ = "0.1.0"
