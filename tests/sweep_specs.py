"""The tiny sweep specs the sweep tests run: a grid of four widths then a range search, sized per test; and one
whose first grid's points share an architecture, so that a worker trains them as one stack."""


def tiny_spec_text(title: str = "tiny", rounds: int = 2, epochs: int = 1, pairs: int = 100, batch_size: int = 20,
                   validation_pairs: int = 40, alpha_trials: int = 2) -> str:
    return f"""
title = "{title}"
validation_pairs = {validation_pairs}
final_rounds = 2

[base]
subnet = "fcn"
hl = 8
c_hl = 4
rounds = {rounds}
epochs = {epochs}
pairs = {pairs}
batch_size = {batch_size}
device = "cpu"

[[stage]]
name = "widths"
grid = {{ hl = [8, 16], c_hl = [4, 8] }}

[[stage]]
name = "alpha"
range = {{ alpha = [0.1, 0.9] }}
trials = {alpha_trials}
"""


STACKING_SPEC = """
title = "stacking"
validation_pairs = 40
final_rounds = 2

[base]
subnet = "fcn"
hl = 8
c_hl = 4
rounds = 2
epochs = 2
pairs = 100
batch_size = 20
device = "cpu"

[[stage]]
name = "loss and pairs"
grid = { alpha = [0.2, 0.8], repair = [false, true] }

[[stage]]
name = "widths"
grid = { hl = [8, 16] }

[[stage]]
name = "alpha"
range = { alpha = [0.1, 0.9] }
trials = 8
"""
