"""R copies of one network as one stacked network that computes its own gradients.

Every weight gets a leading replica (slot) axis: linear layers become batched matrix products, convolutions
become grouped convolutions. The networks are a fixed handful of layer kinds, so a step is a forward pass that
keeps what each layer's gradient needs (a tape), then the layers' backward formulas in reverse: at batch 5 a
step is a few hundred tiny operations, and autograd's bookkeeping per operation costs as much as the arithmetic.
All weights live in one flat tensor (their gradients in another); Adam (StackAdam) steps each layer's stretch of it
with one fused call as soon as the backward pass has that layer's gradient, while it is still in cache.

Layouts inside a stack of S slots: images (S, N, 14, 14); features (S, N, F); convolution maps (N, S*C, H, W)
in channels-last memory order. Slots are replicas, except in the subnet of a net without weight sharing:
slots 0..R-1 are the left subnets, R..2R-1 the right ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import RunConfig
from ..data import PairSet
from ..models import SiameseNet, equation1_weights, is_weight_shared, mask_from_draws
from .randomness import DropoutLayout

EVAL_CHUNK = 100  # pairs per evaluation forward: small enough to stay in cache (measured best)
SLOT_ALIGN = 16  # floats: 64 bytes


def leaf_layers(module: nn.Module) -> list[nn.Module]:
    """The layers of a sequential network in forward order."""
    return [m for m in module.modules() if not list(m.children())]


# ------------------------------------------------------------------------------------- layers of a stack


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
    """Where a stacked dropout layer finds its draws in a step's (R, D) draws (randomness.py's layout):
    its block starts at `offset`; `side` is the distance from a subnet's left-image block to its right-image
    block (None outside the subnets); `shared`: each slot holds both images of its pairs (weight sharing)."""

    offset: int
    side: int | None = None
    shared: bool = False

    def mask(self, draws: torch.Tensor, x: torch.Tensor, p: float) -> torch.Tensor:
        """The mask for activations x, in x's layout, from draws (R, D) of which row r is replica r's."""
        R, row = draws.shape[0], draws.stride(0)
        start = draws.storage_offset() + self.offset
        if x.dim() == 3:  # features (S, N, U); in the draws a pair's units are contiguous
            U = x.shape[2]
            if self.side is None:
                shape, strides = (R, x.shape[1], U), (row, U, 1)
            elif self.shared:  # N = 2b, image 2i + side
                shape, strides = (R, x.shape[1] // 2, 2, U), (row, U, self.side, 1)
            else:  # S = 2R, slot side * R + r
                shape, strides = (2, R, x.shape[1], U), (self.side, row, U, 1)
            return mask_from_draws(draws.as_strided(shape, strides, start), p).view(x.shape)
        # maps (N, S*C, H, W) in channels-last order: the mask is made in memory order (N, H, W, S, C); in the
        # draws a pair's units are in (C, H, W) order, as the reference model flattens them
        N, SC, H, W = x.shape
        C = SC // R if self.shared else SC // (2 * R)
        U = C * H * W
        if self.shared:
            shape, strides = (N // 2, 2, H, W, R, C), (U, self.side, W, 1, row, H * W)
        else:
            shape, strides = (N, H, W, 2, R, C), (U, W, 1, self.side, row, H * W)
        mask = mask_from_draws(draws.as_strided(shape, strides, start), p)
        return mask.view(N, H, W, SC).permute(0, 3, 1, 2)


class StackedActivation(StackedLayer):
    """LeakyReLU (slope) and/or the dropout that follows it (p), as one layer: one mask, one backward.
    A dropout layer learns where its draws lie from place()."""

    def __init__(self, slope: float | None, p: float):
        self.slope, self.p = slope, p
        self.draw_slot: DrawSlot | None = None

    def place(self, slot: DrawSlot) -> None:
        self.draw_slot = slot

    def forward(self, x, draws, tape):
        y = F.leaky_relu(x, self.slope) if self.slope is not None else x
        mask = None
        if draws is not None and self.p > 0:
            mask = self.draw_slot.mask(draws, x, self.p)
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
            if isinstance(previous, StackedActivation) and previous.p == 0:
                previous.p = first.p
            else:
                layers.append(StackedActivation(None, first.p))
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


class StackedNet:
    """R reference models (one architecture; the loss settings may differ) as one stacked network, trained on
    batches of `batch_size` pairs. Weight sharing is read from the models themselves."""

    def __init__(self, models: list[nn.Module], device: torch.device, batch_size: int):
        self.replicas = len(models)
        self.siamese = isinstance(models[0], SiameseNet)
        self.shared = is_weight_shared(models[0])
        layout = DropoutLayout.of(models[0], batch_size)
        if not self.siamese:
            self.body = StackedSequential([leaf_layers(m.body) for m in models])
            self.parts = [self.body]
            for k, layer in enumerate(self.body.dropouts):
                layer.place(DrawSlot(layout.offset(k)))
        else:
            subnets = [m.left for m in models] + ([] if self.shared else [m.right for m in models])
            self.subnet = StackedSequential([leaf_layers(s) for s in subnets])
            self.combiner = StackedSequential([leaf_layers(m.combiner) for m in models])
            self.parts = [self.subnet, self.combiner]
            n = len(self.subnet.dropouts)  # calls: left subnet's n, right subnet's n, the combiner's
            for k, layer in enumerate(self.subnet.dropouts):
                layer.place(DrawSlot(layout.offset(k), layout.offset(n + k) - layout.offset(k), self.shared))
            for k, layer in enumerate(self.combiner.dropouts):
                layer.place(DrawSlot(layout.offset(2 * n + k)))
        self.dropout_layout = layout
        self.flat = self._gather_weights(device)

    def _gather_weights(self, device: torch.device) -> torch.Tensor:
        """Moves every weight into one flat tensor (its gradient in .grad) and binds each layer to views of both.
        Each weight starts on a 64-byte boundary, and a linear layer's slots each on one too (slot_aligned);
        the padding between them holds zeros with zero gradients, which Adam leaves at zero."""
        weighted = [layer for part in self.parts for layer in part.layers if layer.params]
        places = []
        offset = 0
        for layer in weighted:
            start = offset
            for name in layer.params:
                tensor = getattr(layer, name)
                per_slot = math.prod(tensor.shape[1:])
                slot_stride = aligned(per_slot) if isinstance(layer, StackedLinear) else per_slot
                places.append((layer, name, tensor, offset, slot_stride))
                offset += aligned(tensor.shape[0] * slot_stride)
            layer.span = (start, offset)
        flat = aligned_buffer(offset, device).zero_()
        flat.grad = aligned_buffer(offset, device).zero_()
        binds: dict = {}
        for layer, name, tensor, at, slot_stride in places:
            weights, grads = binds.setdefault(layer, ({}, {}))
            weights[name] = slot_view(flat, tensor.shape, slot_stride, at).copy_(tensor)
            grads[name] = slot_view(flat.grad, tensor.shape, slot_stride, at)
        for layer, (weights, grads) in binds.items():
            layer.bind(weights, grads)
        return flat

    def forward(self, x: torch.Tensor, draws: torch.Tensor | None = None,
                tape: dict | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (R, B, 2, 14, 14) -> output logits (R, B), digit logits (R, B, 2, 10) (left, right) or None.
        Dropout is on when the step's draws (R, D) are given; with `tape` (a dict), keeps what backward() needs."""
        R, B = x.shape[:2]
        tapes = {part: [] for part in ("body", "subnet", "combiner")} if tape is not None else {}
        if tape is not None:
            tape.update(tapes)
        if not self.siamese:
            return self.body.forward(x, draws, tapes.get("body")).squeeze(-1), None
        if self.shared:  # each slot sees both images of its pairs: (R, 2B)
            digits = self.subnet.forward(x.reshape(R, B * 2, 14, 14), draws, tapes.get("subnet"))
            digits = digits.view(R, B, 2, 10)
        else:  # slots 0..R-1 are the left subnets, R..2R-1 the right ones
            digits = self.subnet.forward(x.permute(2, 0, 1, 3, 4).reshape(2 * R, B, 14, 14), draws,
                                         tapes.get("subnet"))
            digits = digits.view(2, R, B, 10).permute(1, 2, 0, 3)
        out = self.combiner.forward(digits.reshape(R, B, 20), draws, tapes.get("combiner"))
        return out.squeeze(-1), digits

    def backward(self, tape: dict, g_out: torch.Tensor, g_digits: torch.Tensor | None,
                 stepped: StackAdam | None = None) -> None:
        """Writes every weight's gradient into .flat.grad, from the gradients of the outputs of forward(); with
        `stepped`, each layer takes its Adam step as soon as its gradient is there."""
        R, B = g_out.shape
        if not self.siamese:
            self.body.backward(g_out.unsqueeze(-1), tape["body"], need_input=False, stepped=stepped)
            return
        g = self.combiner.backward(g_out.unsqueeze(-1), tape["combiner"], need_input=True,
                                   stepped=stepped).view(R, B, 2, 10)
        if g_digits is not None:
            g = g + g_digits
        if self.shared:
            g = g.reshape(R, 2 * B, 10)
        else:
            g = g.permute(2, 0, 1, 3).reshape(2 * R, B, 10)
        self.subnet.backward(g, tape["subnet"], need_input=False, stepped=stepped)

    def replica_parameters(self, r: int) -> list[torch.Tensor]:
        """Replica r's weights in the order of the reference model's parameters()."""
        if not self.siamese:
            return self.body.slot_parameters(r)
        own = self.subnet.slot_parameters(r)
        if not self.shared:
            own += self.subnet.slot_parameters(self.replicas + r)
        return own + self.combiner.slot_parameters(r)


# ------------------------------------------------------------------------------------- Adam, layer by layer


class StackAdam:
    """torch's fused Adam kernel (the reference's settings: betas 0.9, 0.999, eps 1e-8, no weight decay) over
    a stack's flat weights, one layer's stretch at a time. Stepping a layer right after its backward finds its
    weights and gradients in cache (they were just read and written); one pass over every weight after the
    whole backward finds them evicted by the layers behind. Adam is element-wise and every stretch is whole
    64-byte lines (no scalar tail in the kernel), so the update is the one a single call would make. A small
    stack stays in cache anyway and steps in one call after the backward (one dispatch instead of one a layer)."""

    betas, eps = (0.9, 0.999), 1e-8
    BY_LAYER_FROM = 1 << 20  # weights (4 MB; with gradients and moments, half this CPU's 32 MB L3)

    def __init__(self, net: StackedNet, lr: float, lr_on_device: bool = False):
        self.lr = lr  # a plain float: decay() multiplies it as torch's ExponentialLR does
        # a CUDA graph reads the rate from this tensor at each replay, instead of keeping the captured value
        self.lr_tensor = torch.tensor(lr, device=net.flat.device) if lr_on_device else None
        flat = net.flat
        self.weights, self.grads = flat, flat.grad
        self.exp_avg = aligned_buffer(flat.numel(), flat.device).zero_()
        self.exp_avg_sq = aligned_buffer(flat.numel(), flat.device).zero_()
        self.steps = torch.zeros((), dtype=torch.float32, device=flat.device)  # as torch keeps it when fused
        self.by_layer = flat.numel() >= self.BY_LAYER_FROM

    def begin_step(self) -> None:
        self.steps.add_(1)

    def step_layer(self, layer: StackedLayer) -> None:
        self.step_span(*layer.span)

    def step_all(self) -> None:
        self.step_span(0, self.weights.numel())

    def step_span(self, start: int, end: int) -> None:
        part = slice(start, end)
        torch._fused_adam_([self.weights[part]], [self.grads[part]], [self.exp_avg[part]], [self.exp_avg_sq[part]],
                           [], [self.steps], lr=self.lr if self.lr_tensor is None else self.lr_tensor, beta1=self.betas[0], beta2=self.betas[1], weight_decay=0.0,
                           eps=self.eps, amsgrad=False, maximize=False)

    def decay(self, gamma: float) -> None:
        self.lr = self.lr * gamma
        if self.lr_tensor is not None:
            self.lr_tensor.fill_(self.lr)


# ------------------------------------------------------------------------------------- the loss (equation 1)


def loss_weights(configs: list[RunConfig], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per replica, equation 1's weights (w_bce, w_aux), each (R,)."""
    w_bce, w_aux = zip(*(equation1_weights(c.aux_loss, c.alpha) for c in configs))
    return torch.tensor(w_bce, device=device), torch.tensor(w_aux, device=device)


def step_scales(w_bce: torch.Tensor, w_aux: torch.Tensor, any_aux: bool, batch: int):
    """(w_bce / B as (R, 1), w_aux / B as (R, 1, 1, 1) or None) for a batch of B pairs."""
    return w_bce.view(-1, 1) / batch, (w_aux.view(-1, 1, 1, 1) / batch if any_aux else None)


def loss_gradients(out: torch.Tensor, digits: torch.Tensor | None, target: torch.Tensor,
                   onehot: torch.Tensor | None, bce_scale: torch.Tensor, aux_scale: torch.Tensor | None
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gradients of the summed replica losses (equation 1 with per-replica weights) with respect to the output
    logits (R, B) and the digit logits (R, B, 2, 10), with the scales of step_scales. The loss values themselves
    are only reported per epoch, so a step does not compute them (replica_losses does, once an epoch)."""
    g_out = torch.sigmoid(out).sub_(target).mul_(bce_scale)
    if aux_scale is None or digits is None:
        return g_out, None
    g_digits = (digits - digits.amax(3, keepdim=True)).exp_()
    g_digits.div_(g_digits.sum(3, keepdim=True)).sub_(onehot).mul_(aux_scale)  # softmax - onehot
    return g_out, g_digits


def replica_losses(out: torch.Tensor, digits: torch.Tensor | None, target: torch.Tensor, classes: torch.Tensor,
                   w_bce: torch.Tensor, w_aux: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Each replica's training loss (R,) over an epoch, from the logits each pair had when it was trained:
    equation 1 per batch, averaged over the epoch's batches (as the loop engine reports it)."""
    R, n = out.shape
    per_pair = w_bce.unsqueeze(1) * F.binary_cross_entropy_with_logits(out, target, reduction="none")
    if digits is not None:
        shifted = digits - digits.amax(3, keepdim=True)
        log_p = shifted - shifted.exp().sum(3, keepdim=True).log_()
        per_pair = per_pair - w_aux.unsqueeze(1) * log_p.gather(3, classes.unsqueeze(3)).sum((2, 3))
    steps = math.ceil(n / batch_size)
    sums = torch.zeros(R, steps, device=out.device).index_add_(1, torch.arange(n, device=out.device) // batch_size,
                                                                per_pair)
    sizes = torch.full((steps,), float(batch_size), device=out.device)
    sizes[-1] = n - batch_size * (steps - 1)
    return (sums / sizes).mean(1)


@torch.inference_mode()
def train_step(net: StackedNet, optimizer: StackAdam, x: torch.Tensor, target: torch.Tensor,
               onehot: torch.Tensor | None, draws: torch.Tensor | None, bce_scale: torch.Tensor,
               aux_scale: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One Adam step of every replica on its own batch, with its own dropout draws (R, D) or None; returns the
    output logits (R, B) and digit logits (R, B, 2, 10) or None, as computed before the step."""
    tape: dict = {}
    out, digits = net.forward(x, draws, tape)
    g_out, g_digits = loss_gradients(out, digits, target, onehot, bce_scale, aux_scale)
    optimizer.begin_step()
    net.backward(tape, g_out, g_digits, stepped=optimizer if optimizer.by_layer else None)
    if not optimizer.by_layer:
        optimizer.step_all()
    return out, digits


def stack_pairs(sets: list[PairSet], device: torch.device) -> PairSet:
    return PairSet(torch.stack([p.input for p in sets]).to(device), torch.stack([p.classes for p in sets]).to(device),
                   torch.stack([p.target for p in sets]).to(device))


@torch.inference_mode()
def stack_outputs(net: StackedNet, pairs: PairSet) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per replica, the comparison logits (R, n) and the subnets' digit logits (R, n, 2, 10), or None for the
    basic net, in chunks small enough to stay in cache."""
    outs, digit_outs = [], []
    for start in range(0, pairs.target.shape[1], EVAL_CHUNK):
        out, digits = net.forward(pairs.input[:, start:start + EVAL_CHUNK])
        outs.append(out.clone())
        if digits is not None:
            digit_outs.append(digits.clone())
    return torch.cat(outs, 1), (torch.cat(digit_outs, 1) if digit_outs else None)


def accuracies(logits: torch.Tensor, digit_logits: torch.Tensor | None,
               pairs: PairSet) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per replica (R,): comparison accuracy and the subnets' digit accuracy (None for the basic net)."""
    comparison = ((logits > 0).float() == pairs.target).float().mean(1)
    if digit_logits is None:
        return comparison, None
    return comparison, (digit_logits.argmax(3) == pairs.classes).float().mean((1, 2))


def evaluate_stack(net: StackedNet, pairs: PairSet) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per replica (R,): comparison accuracy and the subnets' digit accuracy (None for the basic net)."""
    return accuracies(*stack_outputs(net, pairs), pairs)
