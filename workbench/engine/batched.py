"""The batched engine: all rounds of one or more configs that share an architecture, trained as one stacked model.

Every weight gets a leading replica (slot) axis: linear layers become batched matrix products, convolutions become
grouped convolutions. Each replica keeps its own pair sets, batch order, initial weights and dropout masks. The loss
is summed over replicas, so each replica's gradient is its own; Adam is element-wise, so one Adam over the stacked
weights is R independent Adams.

Layouts inside a stack of S slots: images (S, N, 14, 14); features (S, N, F); convolution maps (N, S*C, H, W).
"""

from __future__ import annotations

import math
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
EVAL_CHUNK = 250  # pairs per evaluation forward: bounds the memory of wide CNN stacks


def leaf_layers(module: nn.Module) -> list[nn.Module]:
    """The layers of a sequential network in forward order."""
    return [m for m in module.modules() if not list(m.children())]


class StackedSequential:
    """S copies of one sequential network (Linear, Conv2d, LeakyReLU, Dropout, MaxPool2d, Flatten) as one."""

    def __init__(self, slots: list[list[nn.Module]], device: torch.device):
        self.slots = len(slots)
        self.ops: list[tuple] = []
        self.params: list[torch.Tensor] = []
        for layers in zip(*slots):
            first = layers[0]
            if isinstance(first, nn.Linear):
                weight = torch.stack([m.weight.detach().t() for m in layers])  # (S, in, out)
                bias = torch.stack([m.bias.detach() for m in layers]).unsqueeze(1)  # (S, 1, out)
                self.ops.append(("linear", self._param(weight, device), self._param(bias, device)))
            elif isinstance(first, nn.Conv2d):
                weight = torch.cat([m.weight.detach() for m in layers])  # (S*out, in, K, K)
                bias = torch.cat([m.bias.detach() for m in layers])  # (S*out,)
                self.ops.append(("conv", self._param(weight, device), self._param(bias, device), first.out_channels))
            elif isinstance(first, nn.LeakyReLU):
                self.ops.append(("leaky_relu", first.negative_slope))
            elif isinstance(first, nn.Dropout):
                self.ops.append(("dropout", first.p))
            elif isinstance(first, nn.MaxPool2d):
                self.ops.append(("max_pool", first.kernel_size))
            elif isinstance(first, nn.Flatten):
                self.ops.append(("flatten",))
            else:
                raise TypeError(f"no stacked form for {type(first).__name__}")
        self.ops = pool_before_activation(self.ops)

    def _param(self, tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
        p = tensor.clone().to(device).requires_grad_(True)
        self.params.append(p)
        return p

    def forward(self, x: torch.Tensor, training: bool, generator: torch.Generator | None = None) -> torch.Tensor:
        """x: images (S, N, ...) or features (S, N, F) -> features (S, N, F_out)."""
        conv_layout = False  # True while x is (N, S*C, H, W)
        for op in self.ops:
            kind = op[0]
            if kind == "linear":
                x = torch.baddbmm(op[2], x, op[1])
            elif kind == "conv":
                if not conv_layout:  # (S, N, H, W), one input channel -> (N, S, H, W)
                    # channels-last puts the slots innermost: pooling and grouped convolution vectorise over them
                    x = x.transpose(0, 1).contiguous(memory_format=torch.channels_last)
                    conv_layout = True
                x = F.conv2d(x, op[1], op[2], groups=self.slots)
            elif kind == "leaky_relu":
                x = F.leaky_relu(x, op[1])
            elif kind == "dropout":
                if training and op[1] > 0:
                    x = x * dropout_mask(x, op[1], generator)
            elif kind == "max_pool":
                x = F.max_pool2d(x, op[1])
            elif kind == "flatten":
                if conv_layout:  # (N, S*C, H, W) -> (S, N, C*H*W): per slot, the order nn.Flatten gives
                    x = x.reshape(x.shape[0], self.slots, -1).transpose(0, 1)
                    conv_layout = False
                else:
                    x = x.reshape(x.shape[0], x.shape[1], -1)
        return x

    def slot_parameters(self, s: int) -> list[torch.Tensor]:
        """Slot s's weights as views, in the order and shapes of the reference module's parameters()."""
        out = []
        for op in self.ops:
            if op[0] == "linear":
                out += [op[1][s].t(), op[2][s, 0]]
            elif op[0] == "conv":
                c = op[3]
                out += [op[1][s * c:(s + 1) * c], op[2][s * c:(s + 1) * c]]
        return out


def pool_before_activation(ops: list[tuple]) -> list[tuple]:
    """LeakyReLU then max-pool equals max-pool then LeakyReLU (the activation is increasing): pooling first
    runs the activation on a quarter of the values."""
    ops = list(ops)
    for i in range(len(ops) - 1):
        if ops[i][0] == "leaky_relu" and ops[i + 1][0] == "max_pool":
            ops[i], ops[i + 1] = ops[i + 1], ops[i]
    return ops


def dropout_mask(x: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Keep each unit with probability 1 - p, scaled by 1 / (1 - p), from the stack's own generator: its masks
    do not depend on whatever else draws from the global one (the app's threads, other stacks)."""
    keep = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype).ge_(p)
    return keep.mul_(1.0 / (1.0 - p))


class StackedNet:
    """R reference models (same config but for the loss settings) as one stacked network."""

    def __init__(self, config: RunConfig, models: list[nn.Module], device: torch.device):
        self.replicas = len(models)
        self.siamese = config.is_siamese
        self.shared = config.weight_sharing
        if not self.siamese:
            self.body = StackedSequential([leaf_layers(m.body) for m in models], device)
            self.parts = [self.body]
            return
        subnets = [m.left for m in models] + ([] if self.shared else [m.right for m in models])
        self.subnet = StackedSequential([leaf_layers(s) for s in subnets], device)
        self.combiner = StackedSequential([leaf_layers(m.combiner) for m in models], device)
        self.parts = [self.subnet, self.combiner]

    def parameters(self) -> list[torch.Tensor]:
        return [p for part in self.parts for p in part.params]

    def forward(self, x: torch.Tensor, training: bool, generator: torch.Generator | None = None):
        """x (R, B, 2, 14, 14) -> output logits (R, B), digit logits (R, B, 10) x 2 or None."""
        R, B = x.shape[:2]
        if not self.siamese:
            return self.body.forward(x, training, generator).squeeze(-1), None
        if self.shared:
            digits = self.subnet.forward(x.reshape(R, B * 2, 14, 14), training, generator).view(R, B, 2, 10)
            left, right = digits[:, :, 0], digits[:, :, 1]
            combined = digits.view(R, B, 20)
        else:  # slots 0..R-1 are the left subnets, R..2R-1 the right ones
            digits = self.subnet.forward(x.permute(2, 0, 1, 3, 4).reshape(2 * R, B, 14, 14), training, generator)
            left, right = digits[:R], digits[R:]
            combined = torch.cat([left, right], dim=2)
        return self.combiner.forward(combined, training, generator).squeeze(-1), (left, right)

    def replica_parameters(self, r: int) -> list[torch.Tensor]:
        """Replica r's weights in the order of the reference model's parameters()."""
        if not self.siamese:
            return self.body.slot_parameters(r)
        own = self.subnet.slot_parameters(r)
        if not self.shared:
            own += self.subnet.slot_parameters(self.replicas + r)
        return own + self.combiner.slot_parameters(r)


def replica_losses(out: torch.Tensor, digits, target: torch.Tensor, classes: torch.Tensor,
                   w_bce: torch.Tensor, w_aux: torch.Tensor, any_aux: bool) -> torch.Tensor:
    """Each replica's loss (R,): w_bce * BCE + w_aux * (CE_left + CE_right), equation 1 with per-replica weights."""
    R, B = out.shape
    loss = w_bce * F.binary_cross_entropy_with_logits(out, target, reduction="none").mean(1)
    if any_aux and digits is not None:
        left, right = digits
        ce = (F.cross_entropy(left.reshape(R * B, 10), classes[:, :, 0].reshape(-1), reduction="none")
              + F.cross_entropy(right.reshape(R * B, 10), classes[:, :, 1].reshape(-1), reduction="none"))
        loss = loss + w_aux * ce.view(R, B).mean(1)
    return loss


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
            classes = pairs.classes[:, part]
            digit_hits += (digits[0].argmax(2) == classes[:, :, 0]).float().sum(1)
            digit_hits += (digits[1].argmax(2) == classes[:, :, 1]).float().sum(1)
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
    w_bce = torch.tensor([c.alpha if c.aux_loss else 1.0 for _, c, _ in replicas], device=device)
    w_aux = torch.tensor([(1 - c.alpha) / 2 if c.aux_loss else 0.0 for _, c, _ in replicas], device=device)
    any_aux = any(c.aux_loss for _, c, _ in replicas)
    optimizer = torch.optim.Adam(net.parameters(), lr=first.lr, fused=device.type == "cpu" or None)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=first.lr_decay)

    results = [RoundResult(round=r, seed=derive_seed(c.seed, r, "weights"), status="done") for _, c, r in replicas]
    histories: list[list[EpochRecord]] = [[] for _ in runs]
    alive = torch.ones(R, dtype=torch.bool, device=device)
    alive_host = [True] * R
    all_alive = True
    arange = torch.arange(R, device=device).unsqueeze(1)
    n, batch = first.pairs, first.batch_size
    cancelled = False
    for epoch in range(1, first.epochs + 1):
        epoch_started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        order = torch.stack([batch_order(c, r, epoch, n) for _, c, r in replicas]).to(device)  # (R, n)
        x_epoch, t_epoch, c_epoch = train.input[arange, order], train.target[arange, order], train.classes[arange, order]
        loss_sum = torch.zeros(R, device=device)
        hits = torch.zeros(R, device=device)
        steps = 0
        for start in range(0, n, batch):
            if cancel.is_set():
                cancelled = True
                break
            part = slice(start, start + batch)
            out, digits = net.forward(x_epoch[:, part], training=True, generator=generator)
            losses = replica_losses(out, digits, t_epoch[:, part], c_epoch[:, part], w_bce, w_aux, any_aux)
            if not all_alive:  # a failed replica keeps its own (non-finite) weights; its loss no longer counts
                losses = torch.where(alive, losses, torch.zeros_like(losses))
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()
            optimizer.step()
            loss_sum += losses.detach()
            hits += ((out.detach() > 0).float() == t_epoch[:, part]).sum(1)
            steps += 1
        if cancelled:
            break
        schedule.step()
        train_loss = (loss_sum / steps).tolist()
        train_acc = (hits / n).tolist()
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
        alive = torch.tensor(alive_host, device=device)
        all_alive = all(alive_host)
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
