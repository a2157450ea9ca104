"""R copies of one network as one stacked network (layers.py) that computes its own gradients: its forward
pass, its backward pass, one training step, and its evaluation.

All weights live in one flat tensor (their gradients in another); Adam (adam.py) steps each layer's stretch
of it as soon as the backward pass has that layer's gradient, while it is still in cache. Slots are replicas,
except in the subnet of a net without weight sharing: slots 0..R-1 are the left subnets, R..2R-1 the right ones.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from workbench.engine.adam import StackAdam
from workbench.engine.layers import (DrawSlot, StackedLinear, StackedSequential, aligned, aligned_buffer, leaf_layers,
                                     slot_view)
from workbench.engine.loss import loss_gradients
from workbench.paper.data import PairSet
from workbench.paper.models import SiameseNet, dropout_rate, is_weight_shared
from workbench.paper.randomness import DropoutLayout
from workbench.paper.verdict import says_first_le_second

EVAL_CHUNK = 100  # pairs per evaluation forward: small enough to stay in cache (measured best)


class StackedNet:
    """R reference models (one architecture; config.REPLICA_FIELDS may differ) as one stacked network, trained on
    batches of `batch_size` pairs. Weight sharing is read from the models themselves."""

    def __init__(self, models: list[nn.Module], device: torch.device, batch_size: int):
        self.replicas = len(models)
        self.siamese = isinstance(models[0], SiameseNet)
        self.shared = is_weight_shared(models[0])
        # a replica without dropout takes draws it leaves unused (its mask is all ones): the others' layout
        layout = DropoutLayout.of(max(models, key=dropout_rate), batch_size)
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
    comparison = (says_first_le_second(logits).float() == pairs.target).float().mean(1)
    if digit_logits is None:
        return comparison, None
    return comparison, (digit_logits.argmax(3) == pairs.classes).float().mean((1, 2))


def evaluate_stack(net: StackedNet, pairs: PairSet) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per replica (R,): comparison accuracy and the subnets' digit accuracy (None for the basic net)."""
    return accuracies(*stack_outputs(net, pairs), pairs)
