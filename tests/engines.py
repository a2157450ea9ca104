"""What the tests hold two engines to where their floats may round apart (re-pairing, augmentation)."""

from __future__ import annotations

import pytest


def assert_engines_agree(config, source) -> None:
    """The batched engine and the reference loop on one config: each round's test accuracy at most a pair apart,
    its training loss to float rounding."""
    from workbench.engine import run_configs

    (batched,) = run_configs([config], source, engine="batched")
    (loop,) = run_configs([config], source, engine="loop")
    for b, l in zip(batched.rounds, loop.rounds):
        assert b.test_acc == pytest.approx(l.test_acc, abs=0.011)
        assert b.train_loss == pytest.approx(l.train_loss, rel=1e-4)
