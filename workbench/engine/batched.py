"""The batched engine: all rounds of one or more configs that share an architecture, trained as one stacked model.

Every weight gets a leading replica (slot) axis: linear layers become batched matrix products, convolutions become
grouped convolutions. Each replica keeps its own pair sets, batch order, initial weights and dropout masks. The loss
is summed over replicas, so each replica's gradient is its own; Adam is element-wise, so one Adam over the stacked
weights is R independent Adams.

The networks are a fixed handful of layer kinds, so the stack computes its own gradients: a step is a forward pass
that keeps what each layer's gradient needs, then the layers' backward formulas in reverse. At batch size 5 a step
is a few hundred tiny operations and autograd's bookkeeping per operation costs as much as the arithmetic. All
weights live in one flat tensor (and their gradients in another), so Adam is one fused call per step.

Layouts inside a stack of S slots: images (S, N, 14, 14); features (S, N, F); convolution maps (N, S*C, H, W)
in channels-last memory order.
"""

from __future__ import annotations

import math
import os
import threading
import time

import torch
import torch.nn.functional as F
from torch import nn

from ..config import RunConfig
from ..data import DigitSource, PairSet, derive_seed, round_pairs
from .base import (CancelFlag, EpochRecord, NeverCancel, OnEpoch, RoundResult, RunResult, device_label,
                   library_versions, resolve_device)
from .loop import batch_order, init_model

INIT_LOCK = threading.Lock()
EVAL_CHUNK = 100  # pairs per evaluation forward: small enough to stay in cache (measured best)


def leaf_layers(module: nn.Module) -> list[nn.Module]:
    """The layers of a sequential network in forward order."""
    return [m for m in module.modules() if not list(m.children())]


# ------------------------------------------------------------------------------------- layers of a stack
# Each layer: forward(x, training, generator, tape) appends what its backward needs to `tape` (a list) when
# training; backward(g, saved, need_input) writes its weights' gradients and returns the input's gradient.


class StackedLinear:
    params = ("weight", "bias")

    def __init__(self, layers: list[nn.Linear]):
        self.weight = torch.stack([m.weight.detach().t() for m in layers])  # (S, in, out)
        self.bias = torch.stack([m.bias.detach() for m in layers]).unsqueeze(1)  # (S, 1, out)

    def forward(self, x, training, generator, tape):
        if tape is not None:
            tape.append((self, x))
        return torch.baddbmm(self.bias, x, self.weight)

    def backward(self, g, x, need_input):
        torch.bmm(x.transpose(1, 2), g, out=self.weight_grad)
        torch.sum(g, 1, keepdim=True, out=self.bias_grad)
        return torch.bmm(g, self.weight.transpose(1, 2)) if need_input else None

    def slot(self, s: int) -> list[torch.Tensor]:
        return [self.weight[s].t(), self.bias[s, 0]]


class StackedConv:
    """S convolutions as one grouped convolution over (N, S*C_in, H, W)."""

    params = ("weight", "bias")

    def __init__(self, layers: list[nn.Conv2d], groups: int):
        self.weight = torch.cat([m.weight.detach() for m in layers])  # (S*out, in, K, K)
        self.bias = torch.cat([m.bias.detach() for m in layers])  # (S*out,)
        self.out_channels, self.groups = layers[0].out_channels, groups

    def forward(self, x, training, generator, tape):
        if tape is not None:
            tape.append((self, x))
        return F.conv2d(x, self.weight, self.bias, groups=self.groups)

    def backward(self, g, x, need_input):
        g_in, g_weight, g_bias = torch.ops.aten.convolution_backward(
            g, x, self.weight, [self.weight.shape[0]], [1, 1], [0, 0], [1, 1], False, [0, 0], self.groups,
            [need_input, True, True])
        self.weight_grad.copy_(g_weight)
        self.bias_grad.copy_(g_bias)
        return g_in

    def slot(self, s: int) -> list[torch.Tensor]:
        c = self.out_channels
        return [self.weight[s * c:(s + 1) * c], self.bias[s * c:(s + 1) * c]]


class StackedActivation:
    """LeakyReLU (slope) and/or the dropout that follows it (p), as one layer: one mask, one backward."""

    params = ()

    def __init__(self, slope: float | None, p: float):
        self.slope, self.p = slope, p

    def forward(self, x, training, generator, tape):
        y = F.leaky_relu(x, self.slope) if self.slope is not None else x
        mask = None
        if training and self.p > 0:
            mask = dropout_mask(x, self.p, generator)
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


class StackedMaxPool:
    params = ()

    def __init__(self, size: int):
        self.size = size

    def forward(self, x, training, generator, tape):
        if tape is None:
            return F.max_pool2d(x, self.size)
        y, indices = F.max_pool2d(x, self.size, return_indices=True)
        tape.append((self, (x, indices)))
        return y

    def backward(self, g, saved, need_input):
        x, indices = saved
        k = [self.size, self.size]
        return torch.ops.aten.max_pool2d_with_indices_backward(g, x, k, k, [0, 0], [1, 1], False, indices)


class StackedToMaps:
    """Images (S, N, H, W) -> maps (N, S*repeat, H, W) in channels-last order (the slots innermost: pooling and
    the grouped convolutions vectorise over them). A first convolution with one input channel and C outputs
    per slot runs faster as a depthwise one over each image repeated C times than as S groups of 1 -> C."""

    params = ()

    def __init__(self, repeat: int):
        self.repeat = repeat

    def forward(self, x, training, generator, tape):
        if tape is not None:
            tape.append((self, None))
        if self.repeat == 1:
            return x.transpose(0, 1).contiguous(memory_format=torch.channels_last)
        S, N, H, W = x.shape
        maps = x.permute(1, 2, 3, 0).unsqueeze(4).expand(N, H, W, S, self.repeat).reshape(N, H, W, S * self.repeat)
        return maps.permute(0, 3, 1, 2)

    def backward(self, g, saved, need_input):
        if not need_input:
            return None
        N, C, H, W = g.shape
        return g.reshape(N, C // self.repeat, self.repeat, H, W).sum(2).transpose(0, 1)


class StackedFlatten:
    """Maps (N, S*C, H, W) -> features (S, N, C*H*W), per slot in nn.Flatten's order; or (S, N, ...) -> (S, N, F)."""

    params = ()

    def __init__(self, slots: int, from_maps: bool):
        self.slots, self.from_maps = slots, from_maps

    def forward(self, x, training, generator, tape):
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


def stacked_layers(slots: list[list[nn.Module]]) -> list:
    """The stack's layers for S copies of one sequential network (Linear, Conv2d, LeakyReLU, Dropout, MaxPool2d,
    Flatten). LeakyReLU then max-pool equals max-pool then LeakyReLU (the activation is increasing): pooling
    first runs the activation on a quarter of the values. A dropout after an activation joins it."""
    S = len(slots)
    layers: list = []
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


def dropout_mask(x: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Keep each unit with probability 1 - p (p rounded to a multiple of 2^-16), scaled by 1 / (1 - p), from
    the stack's own generator: its masks do not depend on whatever else draws from the global one (the app's
    threads, other stacks). Drawing is most of dropout's cost: each 64 random bits make four 16-bit draws, and
    the mask is made with float arithmetic, which vectorises (comparisons and selects on a CPU do not)."""
    levels = round(p * 65536)
    n = x.numel()
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device)
    draws = words.random_(-2 ** 63, None, generator=generator).view(torch.int16)[:n]  # uniform on [-2^15, 2^15)
    # kept (draw >= levels - 2^15) -> 1, dropped -> 0: exact for integers of this size
    mask = draws.to(x.dtype).sub_(levels - 32769).clamp_(0, 1).mul_(65536 / (65536 - levels))
    if x.is_contiguous() or not x.is_contiguous(memory_format=torch.channels_last):
        return mask.view(x.shape)
    return mask.as_strided(x.shape, x.stride())  # x's memory order: element-wise products stay vectorised


class StackedSequential:
    """S copies of one sequential network as one; forward keeps a tape, backward replays it in reverse."""

    def __init__(self, slots: list[list[nn.Module]]):
        self.layers = stacked_layers(slots)
        self.first_weighted = next(i for i, layer in enumerate(self.layers) if layer.params)

    def forward(self, x: torch.Tensor, training: bool, generator: torch.Generator | None = None,
                tape: list | None = None) -> torch.Tensor:
        """x: images (S, N, ...) or features (S, N, F) -> features (S, N, F_out)."""
        for layer in self.layers:
            x = layer.forward(x, training, generator, tape)
        return x

    def backward(self, g: torch.Tensor, tape: list, need_input: bool) -> torch.Tensor | None:
        """Writes every weight's gradient; returns the input's gradient when `need_input`."""
        last = 0 if need_input else self.first_weighted
        for i in range(len(tape) - 1, last - 1, -1):
            layer, saved = tape[i]
            g = layer.backward(g, saved, need_input or i > last)
        return g if need_input else None

    def slot_parameters(self, s: int) -> list[torch.Tensor]:
        """Slot s's weights as views, in the order and shapes of the reference module's parameters()."""
        return [t for layer in self.layers if layer.params for t in layer.slot(s)]


class StackedNet:
    """R reference models (same config but for the loss settings) as one stacked network."""

    def __init__(self, config: RunConfig, models: list[nn.Module], device: torch.device):
        self.replicas = len(models)
        self.siamese = config.is_siamese
        self.shared = config.weight_sharing
        if not self.siamese:
            self.body = StackedSequential([leaf_layers(m.body) for m in models])
            self.parts = [self.body]
        else:
            subnets = [m.left for m in models] + ([] if self.shared else [m.right for m in models])
            self.subnet = StackedSequential([leaf_layers(s) for s in subnets])
            self.combiner = StackedSequential([leaf_layers(m.combiner) for m in models])
            self.parts = [self.subnet, self.combiner]
        self.flat = self._gather_weights(device)

    def _gather_weights(self, device: torch.device) -> torch.Tensor:
        """Moves every weight into one flat tensor (its gradient in .grad) and gives each layer views of both."""
        owners = [(layer, name) for part in self.parts for layer in part.layers for name in layer.params]
        total = sum(getattr(layer, name).numel() for layer, name in owners)
        flat = torch.empty(total, device=device)
        flat.grad = torch.zeros(total, device=device)
        offset = 0
        for layer, name in owners:
            tensor = getattr(layer, name)
            n = tensor.numel()
            view = flat[offset:offset + n].view(tensor.shape)
            view.copy_(tensor)
            setattr(layer, name, view)
            setattr(layer, f"{name}_grad", flat.grad[offset:offset + n].view(tensor.shape))
            offset += n
        return flat

    def parameters(self) -> list[torch.Tensor]:
        """One tensor holding every weight, its gradient in .grad: what the optimizer steps."""
        return [self.flat]

    def forward(self, x: torch.Tensor, training: bool, generator: torch.Generator | None = None,
                tape: dict | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (R, B, 2, 14, 14) -> output logits (R, B), digit logits (R, B, 2, 10) (left, right) or None.
        With `tape` (a dict), keeps what backward() needs."""
        R, B = x.shape[:2]
        tapes = {part: [] for part in ("body", "subnet", "combiner")} if tape is not None else {}
        if tape is not None:
            tape.update(tapes)
        if not self.siamese:
            return self.body.forward(x, training, generator, tapes.get("body")).squeeze(-1), None
        if self.shared:  # each slot sees both images of its pairs: (R, 2B)
            digits = self.subnet.forward(x.reshape(R, B * 2, 14, 14), training, generator, tapes.get("subnet"))
            digits = digits.view(R, B, 2, 10)
        else:  # slots 0..R-1 are the left subnets, R..2R-1 the right ones
            digits = self.subnet.forward(x.permute(2, 0, 1, 3, 4).reshape(2 * R, B, 14, 14), training, generator,
                                         tapes.get("subnet"))
            digits = digits.view(2, R, B, 10).permute(1, 2, 0, 3)
        out = self.combiner.forward(digits.reshape(R, B, 20), training, generator, tapes.get("combiner"))
        return out.squeeze(-1), digits

    def backward(self, tape: dict, g_out: torch.Tensor, g_digits: torch.Tensor | None) -> None:
        """Writes every weight's gradient into .flat.grad, from the gradients of the outputs of forward()."""
        R, B = g_out.shape
        if not self.siamese:
            self.body.backward(g_out.unsqueeze(-1), tape["body"], need_input=False)
            return
        g = self.combiner.backward(g_out.unsqueeze(-1), tape["combiner"], need_input=True).view(R, B, 2, 10)
        if g_digits is not None:
            g = g + g_digits
        if self.shared:
            g = g.reshape(R, 2 * B, 10)
        else:
            g = g.permute(2, 0, 1, 3).reshape(2 * R, B, 10)
        self.subnet.backward(g, tape["subnet"], need_input=False)

    def replica_parameters(self, r: int) -> list[torch.Tensor]:
        """Replica r's weights in the order of the reference model's parameters()."""
        if not self.siamese:
            return self.body.slot_parameters(r)
        own = self.subnet.slot_parameters(r)
        if not self.shared:
            own += self.subnet.slot_parameters(self.replicas + r)
        return own + self.combiner.slot_parameters(r)


def loss_gradients(out: torch.Tensor, digits: torch.Tensor | None, target: torch.Tensor,
                   onehot: torch.Tensor | None, bce_scale: torch.Tensor, aux_scale: torch.Tensor | None
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gradients of the summed replica losses (equation 1 with per-replica weights) with respect to the output
    logits (R, B) and the digit logits (R, B, 2, 10). bce_scale (R, 1) is w_bce / B; aux_scale (R, 1, 1, 1) is
    w_aux / B, or None when no replica of the stack has the auxiliary loss. The loss values themselves are only
    reported per epoch, so a step does not compute them (replica_losses does, once an epoch)."""
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


@torch.no_grad()
def train_step(net: StackedNet, optimizer: torch.optim.Optimizer, x: torch.Tensor, target: torch.Tensor,
               onehot: torch.Tensor | None, bce_scale: torch.Tensor, aux_scale: torch.Tensor | None,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One Adam step of every replica on its own batch (see loss_gradients for the scales); returns the
    output logits (R, B) and digit logits (R, B, 2, 10) or None, as computed before the step."""
    tape: dict = {}
    out, digits = net.forward(x, training=True, generator=generator, tape=tape)
    g_out, g_digits = loss_gradients(out, digits, target, onehot, bce_scale, aux_scale)
    net.backward(tape, g_out, g_digits)
    optimizer.step()
    return out, digits


def loss_weights(configs: list[RunConfig], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per replica, equation 1's weights: (alpha, (1 - alpha) / 2) with the auxiliary loss, else (1, 0)."""
    return (torch.tensor([c.alpha if c.aux_loss else 1.0 for c in configs], device=device),
            torch.tensor([(1 - c.alpha) / 2 if c.aux_loss else 0.0 for c in configs], device=device))


def step_scales(w_bce: torch.Tensor, w_aux: torch.Tensor, any_aux: bool, batch: int):
    """(w_bce / B as (R, 1), w_aux / B as (R, 1, 1, 1) or None) for a batch of B pairs."""
    return w_bce.view(-1, 1) / batch, (w_aux.view(-1, 1, 1, 1) / batch if any_aux else None)


class StepGraph:
    """One training step captured as a CUDA graph: a step is a few hundred tiny kernels, and launching them
    one by one from Python costs more than running them; a replay launches them all at once. Inputs are
    copied into the graph's own tensors; dropout draws from the stack's generator, registered with the graph
    so each replay draws anew. The first steps run eagerly (Adam's state and the libraries' handles must
    exist before a capture); a step that cannot be captured (an older torch) leaves the stack eager."""

    def __init__(self, graph, inputs, outputs):
        self.graph, self.inputs, self.outputs = graph, inputs, outputs

    @classmethod
    def capture(cls, net, optimizer, inputs, scales, generator) -> StepGraph | None:
        static = tuple(None if t is None else t.clone() for t in inputs)
        try:
            graph = torch.cuda.CUDAGraph()
            graph.register_generator_state(generator)
            with torch.cuda.graph(graph):
                outputs = train_step(net, optimizer, *static, *scales, generator)
        except Exception:  # capture not supported here: train eagerly
            torch.cuda.synchronize()
            return None
        return cls(graph, static, outputs)

    def replay(self, inputs):
        for mine, new in zip(self.inputs, inputs):
            if mine is not None:
                mine.copy_(new)
        self.graph.replay()  # a capture only records: this runs the step being captured as well
        return self.outputs


def stack_pairs(sets: list[PairSet], device: torch.device) -> PairSet:
    return PairSet(torch.stack([p.input for p in sets]).to(device), torch.stack([p.classes for p in sets]).to(device),
                   torch.stack([p.target for p in sets]).to(device))


@torch.inference_mode()
def evaluate_stack(net: StackedNet, pairs: PairSet) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per replica (R,): comparison accuracy and the subnets' digit accuracy (None for the basic net)."""
    hits = torch.zeros(pairs.target.shape[0], device=pairs.target.device)
    digit_hits = torch.zeros_like(hits)
    n = pairs.target.shape[1]
    for start in range(0, n, EVAL_CHUNK):
        part = slice(start, start + EVAL_CHUNK)
        out, digits = net.forward(pairs.input[:, part], training=False)
        hits += ((out > 0).float() == pairs.target[:, part]).float().sum(1)
        if digits is not None:
            digit_hits += (digits.argmax(3) == pairs.classes[:, part]).float().sum((1, 2))
    return hits / n, (digit_hits / (2 * n) if net.siamese else None)


def run_stack(runs: list[tuple[int, RunConfig]], source: DigitSource, on_epoch: OnEpoch | None = None,
              cancel: CancelFlag | None = None, validation: int = 0) -> list[RunResult]:
    """Train every round of every (run index, config) in one stack; the configs differ at most in their loss."""
    cancel = cancel or NeverCancel()
    first = runs[0][1]
    assert all(c.architecture_key() == first.architecture_key() for _, c in runs), "one architecture per stack"
    device = resolve_device(first.device)
    started, clock = time.time(), time.perf_counter()
    rounds = first.rounds
    replicas = [(i, config, r) for i, (_, config) in enumerate(runs) for r in range(rounds)]
    R = len(replicas)

    pair_cache: dict[tuple[int, int], tuple[PairSet, ...]] = {}
    for _, config, r in replicas:
        if (config.seed, r) not in pair_cache:
            pair_cache[(config.seed, r)] = round_pairs(source, config.pairs, config.seed, r, validation)
    train, test, *val = (stack_pairs([pair_cache[(c.seed, r)][k] for _, c, r in replicas], device)
                         for k in range(3 if validation else 2))

    with INIT_LOCK:  # initialisation draws from the global generator: one stack at a time
        net = StackedNet(first, [init_model(c, r) for _, c, r in replicas], device)
    generator = torch.Generator(device).manual_seed(
        derive_seed(first.seed, "dropout", tuple((c.aux_loss, c.alpha) for _, c in runs)))
    w_bce, w_aux = loss_weights([c for _, c, _ in replicas], device)
    any_aux = any(c.aux_loss for _, c, _ in replicas)
    scales: dict[int, tuple] = {}  # batch size -> step_scales
    graphs = device.type == "cuda" and os.environ.get("DIGIT_WORKBENCH_CUDA_GRAPHS", "1") != "0"
    optimizer = torch.optim.Adam(net.parameters(), lr=first.lr, fused=True, capturable=graphs)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=first.lr_decay)

    results = [RoundResult(round=r, seed=derive_seed(c.seed, r, "weights"), status="done") for _, c, r in replicas]
    histories: list[list[EpochRecord]] = [[] for _ in runs]
    alive_host = [True] * R  # a replica whose loss went non-finite keeps training its own slots, unreported
    arange = torch.arange(R, device=device).unsqueeze(1)
    n, batch = first.pairs, first.batch_size
    cancelled = False
    for epoch in range(1, first.epochs + 1):
        epoch_started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        order = torch.stack([batch_order(c, r, epoch, n) for _, c, r in replicas]).to(device)  # (R, n)
        x_epoch, t_epoch, c_epoch = train.input[arange, order], train.target[arange, order], train.classes[arange, order]
        onehot = F.one_hot(c_epoch, 10).to(x_epoch.dtype) if any_aux else None
        out_epoch = torch.zeros(R, n, device=device)  # logits as trained: the epoch's loss and train accuracy
        digits_epoch = torch.zeros(R, n, 2, 10, device=device) if any_aux else None
        step_graph = None  # captured afresh each epoch: the learning rate is a constant of the captured step
        for start in range(0, n, batch):
            if cancel.is_set():
                cancelled = True
                break
            part = slice(start, start + batch)
            b = min(batch, n - start)
            if b not in scales:
                scales[b] = step_scales(w_bce, w_aux, any_aux, b)
            inputs = (x_epoch[:, part], t_epoch[:, part], onehot[:, part] if any_aux else None)
            if graphs and step_graph is None and b == batch and (epoch > 1 or start >= 3 * batch):
                step_graph = StepGraph.capture(net, optimizer, inputs, scales[b], generator)
                graphs = step_graph is not None  # a step that cannot be captured trains as it is
            if step_graph is not None and b == batch:
                out, digits = step_graph.replay(inputs)
            else:
                out, digits = train_step(net, optimizer, *inputs, *scales[b], generator)
            out_epoch[:, part] = out
            if any_aux:
                digits_epoch[:, part] = digits
        if cancelled:
            break
        schedule.step()
        train_loss = replica_losses(out_epoch, digits_epoch, t_epoch, c_epoch, w_bce, w_aux, batch).tolist()
        train_acc = ((out_epoch > 0).float() == t_epoch).float().mean(1).tolist()
        test_acc, digit_acc = evaluate_stack(net, test)
        test_acc = test_acc.tolist()
        digit_acc = digit_acc.tolist() if digit_acc is not None else [None] * R
        seconds = time.perf_counter() - epoch_started
        for k, (i, config, r) in enumerate(replicas):
            if not alive_host[k]:
                continue
            if not math.isfinite(train_loss[k]):
                alive_host[k] = False
                results[k].status = "failed"
                results[k].reason = f"round {r}: loss became {train_loss[k]} in epoch {epoch}"
                continue
            rec = EpochRecord(runs[i][0], r, epoch, train_loss[k], train_acc[k], test_acc[k], digit_acc[k], lr,
                              seconds)
            histories[i].append(rec)
            res = results[k]
            res.epochs, res.train_loss, res.train_acc, res.test_acc, res.digit_acc = (
                epoch, train_loss[k], train_acc[k], test_acc[k], digit_acc[k])
            if on_epoch:
                on_epoch(rec)
        if not any(alive_host):
            break

    if val and not cancelled:
        val_acc = evaluate_stack(net, val[0])[0].tolist()
        for k, res in enumerate(results):
            if res.status == "done":
                res.val_acc = val_acc[k]
    wall = time.perf_counter() - clock
    out_results = []
    for i, (_, config) in enumerate(runs):
        mine = [results[k] for k, rep in enumerate(replicas) if rep[0] == i]
        failed = [rr for rr in mine if rr.status == "failed"]
        if cancelled:
            status, reason = "cancelled", ""
            for rr in mine:
                if rr.status == "done":
                    rr.status = "cancelled"
        elif failed:
            status, reason = "failed", "; ".join(rr.reason for rr in failed)
        else:
            status, reason = "done", ""
        out_results.append(RunResult(
            status=status, reason=reason, config=config, rounds=mine, history=histories[i],
            data_source=source.name, device=device_label(device), engine="batched", seed=config.seed,
            wall_time=wall / len(runs), versions=library_versions(), started_at=started))
    return out_results
