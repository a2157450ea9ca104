"""The network's answer, said once. The net outputs the logit of P(first digit ≤ second) (protocol: target 1 when
the first is at most the second); it says "first ≤ second" where that logit is above 0, or, from a probability,
above even odds. Numbers, numpy arrays and torch tensors alike: the engine, the analysis views, the playground
and `predict` all ask here."""

from __future__ import annotations

ANSWERS = {True: "first ≤ second", False: "first > second"}


def says_first_le_second(output, probability: bool = False):
    """Where the net says the first digit is at most the second: its logit above 0, or its probability (with
    `probability`) above 0.5. An elementwise boolean for an array or tensor."""
    return output > (0.5 if probability else 0)


def verdict_text(prob: float) -> str:
    """What the net says of one pair, from its probability."""
    return ANSWERS[bool(says_first_le_second(prob, probability=True))]
