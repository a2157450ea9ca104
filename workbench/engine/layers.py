"""The layers of a stack: S copies of one layer as one, each computing its own gradients.

Every weight gets a leading replica (slot) axis: linear layers become batched matrix products, convolutions
become grouped convolutions. The networks are a fixed handful of layer kinds, so a step is a forward pass that
keeps what each layer's gradient needs (a tape), then the layers' backward formulas in reverse: at batch 5 a
step is a few hundred tiny operations, and autograd's bookkeeping per operation costs as much as the arithmetic.

Layouts inside a stack of S slots: images (S, N, 14, 14); features (S, N, F); convolution maps (N, S*C, H, W)
in channels-last memory order.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from workbench.paper.models import mask_from_draws, mask_terms

if TYPE_CHECKING:
    from workbench.engine.adam import StackAdam

SLOT_ALIGN = 16  # floats: 64 bytes


def leaf_layers(module: nn.Module) -> list[nn.Module]:
    """The layers of a sequential network in forward order."""
    return [m for m in module.modules() if not list(m.children())]


class StackedLayer:
    """One layer of a stack. forward(x, draws, tape) puts on `tape` (when given) what backward needs;
    backward(g, saved, need_input) writes its weights' gradients into `grads` and returns the input's gradient
    (None when not `need_input`). A layer with weights names them in `params`; bind() moves them into views of
    the stack's flat weight tensor and hands the layer the matching views of the flat gradient."""

    params: tuple[str, ...] = ()
    grads: dict[str, torch.Tensor]
    span: tuple[int, int]  # where its weights lie in the stack's flat tensor, padding included (bind time)

    def bind(self, weights: dict[str, torch.Tensor], grads: dict[str, torch.Tensor]) -> None:
        for name, view in weights.items():
            setattr(self, name, view)
        self.grads = grads

    def forward(self, x, draws, tape):
        raise NotImplementedError

    def backward(self, g, saved, need_input):
        raise NotImplementedError


def aligned(n: int) -> int:
    """n floats rounded up to whole 64-byte lines."""
    return -(-n // SLOT_ALIGN) * SLOT_ALIGN


def aligned_buffer(n: int, device: torch.device) -> torch.Tensor:
    """An empty flat tensor of n floats that starts on a 64-byte boundary."""
    buffer = torch.empty(n + SLOT_ALIGN, device=device)
    start = (-buffer.data_ptr() // buffer.element_size()) % SLOT_ALIGN
    return buffer[start:start + n]


def slot_view(buffer: torch.Tensor, shape: tuple[int, ...], slot_stride: int, at: int = 0) -> torch.Tensor:
    """A (S, ...) view of a flat buffer from `at` on, slot s starting at s * slot_stride, each slot contiguous."""
    inner = [math.prod(shape[i + 1:]) for i in range(1, len(shape))]
    return buffer.as_strided(shape, (slot_stride, *inner), buffer.storage_offset() + at)


def slot_aligned(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """An empty (S, ...) tensor whose every slot starts on a 64-byte boundary. A batched matrix product rounds
    a slot differently when its output or its second operand starts elsewhere (another kernel path), so
    without this a replica's numbers would depend on its slot's position, that is on its stack-mates."""
    stride = aligned(math.prod(shape[1:]))
    return slot_view(aligned_buffer(shape[0] * stride, device), shape, stride)


def is_slot_aligned(t: torch.Tensor) -> bool:
    return t.stride(0) % SLOT_ALIGN == 0 and t.data_ptr() % (SLOT_ALIGN * t.element_size()) == 0


class StackedLinear(StackedLayer):
    """S linear layers as batched matrix products; every operand whose alignment matters is slot-aligned.
    Its outputs live in buffers kept per shape and reused each step (a step's tape is spent before the next)."""

    params = ("weight", "bias")

    def __init__(self, layers: list[nn.Linear]):
        self.weight = torch.stack([m.weight.detach().t() for m in layers])  # (S, in, out)
        self.bias = torch.stack([m.bias.detach() for m in layers]).unsqueeze(1)  # (S, 1, out)
        self.buffers: dict[tuple, torch.Tensor] = {}

    def buffer(self, role: str, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        key = (role, *shape)
        if key not in self.buffers:
            self.buffers[key] = slot_aligned(shape, device)
        return self.buffers[key]

    def forward(self, x, draws, tape):
        S, N, _ = x.shape
        if tape is None:  # evaluation: its outputs are kept by the caller, so they get fresh memory
            return torch.baddbmm(self.bias, x, self.weight, out=slot_aligned((S, N, self.weight.shape[2]), x.device))
        tape.append((self, x))
        return torch.baddbmm(self.bias, x, self.weight, out=self.buffer("out", (S, N, self.weight.shape[2]), x.device))

    def backward(self, g, x, need_input):
        if not is_slot_aligned(g):
            g = self.buffer("g", tuple(g.shape), g.device).copy_(g)
        torch.bmm(x.transpose(1, 2), g, out=self.grads["weight"])
        torch.sum(g, 1, keepdim=True, out=self.grads["bias"])
        if not need_input:
            return None
        return torch.bmm(g, self.weight.transpose(1, 2), out=self.buffer("g_in", tuple(x.shape), g.device))

    def slot(self, s: int) -> list[torch.Tensor]:
        return [self.weight[s].t(), self.bias[s, 0]]


class StackedConv(StackedLayer):
    """S convolutions as one grouped convolution over (N, S*C_in, H, W)."""

    params = ("weight", "bias")

    def __init__(self, layers: list[nn.Conv2d], groups: int):
        self.weight = torch.cat([m.weight.detach() for m in layers])  # (S*out, in, K, K)
        self.bias = torch.cat([m.bias.detach() for m in layers])  # (S*out,)
        self.out_channels, self.groups = layers[0].out_channels, groups

    def forward(self, x, draws, tape):
        if tape is not None:
            tape.append((self, x))
        return F.conv2d(x, self.weight, self.bias, groups=self.groups)

    def backward(self, g, x, need_input):
        g_in, g_weight, g_bias = torch.ops.aten.convolution_backward(
            g, x, self.weight, [self.weight.shape[0]], [1, 1], [0, 0], [1, 1], False, [0, 0], self.groups,
            [need_input, True, True])
        self.grads["weight"].copy_(g_weight)
        self.grads["bias"].copy_(g_bias)
        return g_in

    def slot(self, s: int) -> list[torch.Tensor]:
        c = self.out_channels
        return [self.weight[s * c:(s + 1) * c], self.bias[s * c:(s + 1) * c]]


@dataclass(frozen=True)
class DrawSlot:
    """Where a stacked dropout layer finds its draws in a step's (R, D) draws (paper/randomness.py's layout):
    its block starts at `offset`; `side` is the distance from a subnet's left-image block to its right-image
    block (None outside the subnets); `shared`: each slot holds both images of its pairs (weight sharing)."""

    offset: int
    side: int | None = None
    shared: bool = False

    def mask(self, draws: torch.Tensor, x: torch.Tensor, p: float | tuple[float, ...]) -> torch.Tensor:
        """The mask for activations x, in x's layout, from draws (R, D) of which row r is replica r's, with
        rate p (or replica r's p[r])."""
        R, row = draws.shape[0], draws.stride(0)
        start = draws.storage_offset() + self.offset
        if x.dim() == 3:  # features (S, N, U); in the draws a pair's units are contiguous
            U = x.shape[2]
            axis = 0
            if self.side is None:
                shape, strides = (R, x.shape[1], U), (row, U, 1)
            elif self.shared:  # N = 2b, image 2i + side
                shape, strides = (R, x.shape[1] // 2, 2, U), (row, U, self.side, 1)
            else:  # S = 2R, slot side * R + r
                shape, strides, axis = (2, R, x.shape[1], U), (self.side, row, U, 1), 1
            return mask_from_draws(draws.as_strided(shape, strides, start),
                                   rates_along(p, axis, len(shape), draws.device)).view(x.shape)
        # maps (N, S*C, H, W) in channels-last order: the mask is made in memory order (N, H, W, S, C); in the
        # draws a pair's units are in (C, H, W) order, as the reference model flattens them
        N, SC, H, W = x.shape
        C = SC // R if self.shared else SC // (2 * R)
        U = C * H * W
        if self.shared:
            shape, strides = (N // 2, 2, H, W, R, C), (U, self.side, W, 1, row, H * W)
        else:
            shape, strides = (N, H, W, 2, R, C), (U, W, 1, self.side, row, H * W)
        mask = mask_from_draws(draws.as_strided(shape, strides, start), rates_along(p, 4, len(shape), draws.device))
        return mask.view(N, H, W, SC).permute(0, 3, 1, 2)


def rates_along(p: float | tuple[float, ...], axis: int, dims: int, device: torch.device):
    """Dropout rates as mask_from_draws takes them: one rate as it is; replicas' rates as float32 terms that
    broadcast along the replica axis of `dims`-dimensional draws."""
    if isinstance(p, float) or len(set(p)) == 1:
        return p if isinstance(p, float) else p[0]
    return replica_terms(tuple(p), axis, dims, device)


@functools.lru_cache(maxsize=256)  # made before a CUDA graph is captured, and replayed by it
def replica_terms(p: tuple[float, ...], axis: int, dims: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    shape = [1] * dims
    shape[axis] = len(p)
    return tuple(torch.tensor(column, dtype=torch.float32, device=device).view(shape)
                 for column in zip(*(mask_terms(rate) for rate in p)))


class StackedActivation(StackedLayer):
    """LeakyReLU (slope) and/or the dropout that follows it (p, the largest of its slots' `rates`), as one
    layer: one mask, one backward. A dropout layer learns where its draws lie from place()."""

    def __init__(self, slope: float | None, p: float, rates: tuple[float, ...] = ()):
        self.slope, self.p, self.rates = slope, p, rates
        self.draw_slot: DrawSlot | None = None

    def place(self, slot: DrawSlot) -> None:
        self.draw_slot = slot

    def forward(self, x, draws, tape):
        y = F.leaky_relu(x, self.slope) if self.slope is not None else x
        mask = None
        if draws is not None and self.p > 0:
            mask = self.draw_slot.mask(draws, x, self.rates[:draws.shape[0]])  # slot r < R is replica r
            y = y * mask
        if tape is not None:
            tape.append((self, (x, mask)))
        return y

    def backward(self, g, saved, need_input):
        x, mask = saved
        if mask is not None:
            g = g * mask
        if self.slope is not None:
            g = torch.ops.aten.leaky_relu_backward(g, x, self.slope, False)
        return g


class StackedMaxPool(StackedLayer):
    def __init__(self, size: int):
        self.size = size

    def forward(self, x, draws, tape):
        if tape is None:
            return F.max_pool2d(x, self.size)
        y, indices = F.max_pool2d(x, self.size, return_indices=True)
        tape.append((self, (x, indices)))
        return y

    def backward(self, g, saved, need_input):
        x, indices = saved
        k = [self.size, self.size]
        return torch.ops.aten.max_pool2d_with_indices_backward(g, x, k, k, [0, 0], [1, 1], False, indices)


class StackedToMaps(StackedLayer):
    """Images (S, N, H, W) -> maps (N, S*repeat, H, W) in channels-last order (the slots innermost: pooling and
    the grouped convolutions vectorise over them). A first convolution with one input channel and C outputs
    per slot runs faster as a depthwise one over each image repeated C times than as S groups of 1 -> C."""

    def __init__(self, repeat: int):
        self.repeat = repeat

    def forward(self, x, draws, tape):
        if tape is not None:
            tape.append((self, None))
        if self.repeat == 1:
            return x.transpose(0, 1).contiguous(memory_format=torch.channels_last)
        # slots innermost first, then each repeated: twice as fast as one copy from a broadcast (stride 0) view
        maps = x.permute(1, 2, 3, 0).contiguous().repeat_interleave(self.repeat, dim=3)
        return maps.permute(0, 3, 1, 2)

    def backward(self, g, saved, need_input):
        if not need_input:
            return None
        N, C, H, W = g.shape
        return g.reshape(N, C // self.repeat, self.repeat, H, W).sum(2).transpose(0, 1)


class StackedFlatten(StackedLayer):
    """Maps (N, S*C, H, W) -> features (S, N, C*H*W), per slot in nn.Flatten's order; or (S, N, ...) -> (S, N, F)."""

    def __init__(self, slots: int, from_maps: bool):
        self.slots, self.from_maps = slots, from_maps

    def forward(self, x, draws, tape):
        if tape is not None:
            tape.append((self, x.shape))
        if self.from_maps:
            return x.reshape(x.shape[0], self.slots, -1).transpose(0, 1)
        return x.reshape(x.shape[0], x.shape[1], -1)

    def backward(self, g, shape, need_input):
        if not need_input:
            return None
        if self.from_maps:  # one copy, straight into channels-last order (its channel axis splits into S x C)
            N, SC, H, W = shape
            maps = torch.empty(shape, device=g.device, dtype=g.dtype, memory_format=torch.channels_last)
            maps.view(N, self.slots, SC // self.slots, H, W).copy_(
                g.reshape(self.slots, N, SC // self.slots, H, W).transpose(0, 1))
            return maps
        return g.reshape(shape)


def stacked_layers(slots: list[list[nn.Module]]) -> list[StackedLayer]:
    """The stack's layers for S copies of one sequential network (Linear, Conv2d, LeakyReLU, Dropout, MaxPool2d,
    Flatten). LeakyReLU then max-pool equals max-pool then LeakyReLU (the activation is increasing): pooling
    first runs the activation on a quarter of the values. A dropout after an activation joins it."""
    S = len(slots)
    layers: list[StackedLayer] = []
    maps = False  # True while values are convolution maps (N, S*C, H, W)
    for group in zip(*slots):
        first = group[0]
        previous = layers[-1] if layers else None
        if isinstance(first, nn.Linear):
            layers.append(StackedLinear(list(group)))
        elif isinstance(first, nn.Conv2d):
            depthwise = not maps and first.in_channels == 1
            if not maps:
                layers.append(StackedToMaps(first.out_channels if depthwise else 1))
                maps = True
            layers.append(StackedConv(list(group), S * first.out_channels if depthwise else S))
        elif isinstance(first, nn.LeakyReLU):
            layers.append(StackedActivation(first.negative_slope, 0.0))
        elif isinstance(first, nn.Dropout):
            rates = tuple(m.p for m in group)
            if isinstance(previous, StackedActivation) and previous.p == 0:
                previous.p, previous.rates = max(rates), rates
            else:
                layers.append(StackedActivation(None, max(rates), rates))
        elif isinstance(first, nn.MaxPool2d):
            pool = StackedMaxPool(first.kernel_size)
            if isinstance(previous, StackedActivation) and previous.p == 0 and previous.slope is not None:
                layers.insert(len(layers) - 1, pool)
            else:
                layers.append(pool)
        elif isinstance(first, nn.Flatten):
            layers.append(StackedFlatten(S, maps))
            maps = False
        else:
            raise TypeError(f"no stacked form for {type(first).__name__}")
    return layers


class StackedSequential:
    """S copies of one sequential network as one; forward keeps a tape, backward replays it in reverse."""

    def __init__(self, slots: list[list[nn.Module]]):
        self.layers = stacked_layers(slots)
        self.first_weighted = next(i for i, layer in enumerate(self.layers) if layer.params)
        self.dropouts = [layer for layer in self.layers if isinstance(layer, StackedActivation) and layer.p > 0]

    def forward(self, x: torch.Tensor, draws: torch.Tensor | None = None, tape: list | None = None) -> torch.Tensor:
        """x: images (S, N, ...) or features (S, N, F) -> features (S, N, F_out)."""
        for layer in self.layers:
            x = layer.forward(x, draws, tape)
        return x

    def backward(self, g: torch.Tensor, tape: list, need_input: bool,
                 stepped: StackAdam | None = None) -> torch.Tensor | None:
        """Writes every weight's gradient, and hands each weighted layer to `stepped` once its gradient (and the
        gradient of its input, which needs its old weights) is computed; returns the input's gradient when
        `need_input`."""
        last = 0 if need_input else self.first_weighted
        for i in range(len(tape) - 1, last - 1, -1):
            layer, saved = tape[i]
            g = layer.backward(g, saved, need_input or i > last)
            if stepped is not None and layer.params:
                stepped.step_layer(layer)
        return g if need_input else None

    def slot_parameters(self, s: int) -> list[torch.Tensor]:
        """Slot s's weights as views, in the order and shapes of the reference module's parameters()."""
        return [t for layer in self.layers if layer.params for t in layer.slot(s)]
