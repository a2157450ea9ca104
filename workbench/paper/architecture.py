"""The networks' sizes from a config alone, without torch (Table I): feature-map sides, OC, and the number of
weights, which the form shows as you toggle and the results, export and `presets` carry. models.py builds the
same networks; a test holds weight_count to the built model's parameters for every preset and many configs."""

from __future__ import annotations

from workbench.paper.config import RunConfig

IMAGE_SIDE = 14  # MNIST's 28x28, average-pooled 2x2
DIGITS = 10


def conv1_side(k: int) -> int:
    """Side of the first convolution's maps (K, no padding) on a 14x14 image: the CNN's widest activations."""
    return IMAGE_SIDE - k + 1


def cnn_side(k: int) -> int:
    """Side of the feature map after conv K, max-pool 2, conv K (no padding)."""
    return conv1_side(k) // 2 - k + 1


def cnn_oc(bc: int, k: int) -> int:
    """OC of Table I: the flattened size of the second convolution's output."""
    return 2 * bc * cnn_side(k) ** 2


def linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def hidden_stack(n_in: int, width: int, depth: int) -> int:
    """`depth` hidden layers of `width`, the first taking `n_in` features."""
    return sum(linear(n_in if i == 0 else width, width) for i in range(depth))


def convolution_weights(config: RunConfig) -> int:
    """The weights and biases of one subnet's two convolutions (0 but for the CNN)."""
    if config.subnet != "cnn":
        return 0
    bc, k = config.bc, config.k
    return (bc * k * k + bc) + (bc * 2 * bc * k * k + 2 * bc)


def subnet_weights(config: RunConfig) -> int:
    """One subnet of a Siamese net: a 14x14 image to 10 digit logits."""
    n_in = IMAGE_SIDE ** 2 if config.subnet == "fcn" else cnn_oc(config.bc, config.k)
    return convolution_weights(config) + hidden_stack(n_in, config.hl, config.kl) + linear(config.hl, DIGITS)


def weight_count(config: RunConfig) -> int:
    """Trainable weights (and biases) of the config's network; a shared subnet counts once."""
    if config.subnet == "basic":
        return hidden_stack(2 * IMAGE_SIDE ** 2, config.hl, config.kl) + linear(config.hl, 1)
    combiner = hidden_stack(2 * DIGITS, config.c_hl, config.c_kl) + linear(config.c_hl if config.c_kl else 2 * DIGITS, 1)
    return subnet_weights(config) * (1 if config.weight_sharing else 2) + combiner


def sharing_saves(config: RunConfig) -> int:
    """Weights that weight sharing saves this config (0 for the basic net, which has one input path)."""
    return 0 if config.subnet == "basic" else subnet_weights(config)
