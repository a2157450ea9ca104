"""CUDA graphs for a stack's training: all the full steps of an epoch as one graph, or one step as one.

A step is a few hundred tiny kernels, and launching them one by one from Python costs more than running them.
The first epoch captures one step (after a few eager steps: the libraries' handles must exist before a capture)
and replays it with each step's inputs. From the second epoch on, all the full steps of an epoch are one graph,
captured once and replayed every epoch: the epoch's batches (in each replica's order) and their dropout draws
are copied into the program's own buffers first, and Adam reads its learning rate from a device tensor, so
nothing in the graph changes from one epoch to the next. The same program runs eagerly where there is no
graph (the CPU tests run it so). Whatever cannot be captured (an older torch) trains as it is.
"""

from __future__ import annotations

import torch

from workbench.engine.adam import StackAdam
from workbench.engine.stacked import StackedNet, train_step


def captured(body):
    """(graph, what body returned) with body's CUDA work recorded, not run; (None, None) where it cannot be
    captured. The capture has a stream of its own that other threads' CUDA work does not disturb: stacks may
    train side by side on one GPU, one thread each (scheduler.on_streams), and torch's default capture stream
    is shared."""
    try:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=torch.cuda.Stream(), capture_error_mode="thread_local"):
            result = body()
    except Exception:  # capture not supported here: the caller trains eagerly
        torch.cuda.synchronize()
        return None, None
    return graph, result


def fill(buffers: tuple, inputs: tuple) -> None:
    """Copies inputs into a graph's own buffers (None stays None: no aux loss, no dropout)."""
    for mine, new in zip(buffers, inputs):
        if mine is not None:
            mine.copy_(new)


class StepGraph:
    def __init__(self, graph, inputs, outputs):
        self.graph, self.inputs, self.outputs = graph, inputs, outputs

    @classmethod
    def capture(cls, net, optimizer, inputs, scales) -> StepGraph | None:
        static = tuple(None if t is None else t.clone() for t in inputs)
        graph, outputs = captured(lambda: train_step(net, optimizer, *static, *scales))
        return None if graph is None else cls(graph, static, outputs)

    def replay(self, inputs):
        fill(self.inputs, inputs)
        self.graph.replay()  # a capture only records: this runs the step being captured as well
        return self.outputs


class EpochProgram:
    """The `steps` full steps of an epoch (batches of `batch` pairs) as one function of fixed buffers: inputs
    x (R, n, 2, 14, 14), target (R, n), onehot (R, n, 2, 10) or None and draws (R, steps, D) or None; outputs
    the logits of every pair as trained (R, n) and, with `keep_digits`, the digit logits (R, n, 2, 10).
    Each step is train_step on the same slices the step-by-step loop hands it, so the numbers are the same."""

    def __init__(self, net: StackedNet, optimizer: StackAdam, inputs: tuple, steps: int, batch: int, scales: tuple,
                 keep_digits: bool):
        self.net, self.optimizer, self.steps, self.batch, self.scales = net, optimizer, steps, batch, scales
        self.inputs = tuple(None if t is None else torch.empty_like(t) for t in inputs)
        x = inputs[0]
        self.out = torch.empty(x.shape[0], steps * batch, device=x.device)
        self.digits = torch.empty(x.shape[0], steps * batch, 2, 10, device=x.device) if keep_digits else None
        self.graph = None

    def body(self) -> None:
        x, target, onehot, draws = self.inputs
        for step in range(self.steps):
            part = slice(step * self.batch, (step + 1) * self.batch)
            out, digits = train_step(self.net, self.optimizer, x[:, part], target[:, part],
                                     None if onehot is None else onehot[:, part],
                                     None if draws is None else draws[:, step], *self.scales)
            self.out[:, part].copy_(out)
            if self.digits is not None:
                self.digits[:, part].copy_(digits)

    def capture(self) -> bool:
        """Records the epoch as one CUDA graph (nothing runs yet); False where that cannot be done."""
        self.graph, _ = captured(self.body)
        return self.graph is not None

    def run(self, inputs: tuple) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Trains the epoch's full steps on `inputs` (shaped as at construction); the outputs are the program's
        own buffers, overwritten by the next run."""
        fill(self.inputs, inputs)
        if self.graph is not None:
            self.graph.replay()
        else:
            self.body()
        return self.out, self.digits
