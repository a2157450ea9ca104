"""One training step of a stack captured as a CUDA graph.

A step is a few hundred tiny kernels, and launching them one by one from Python costs more than running them;
a replay launches them all at once. Inputs (the batch and its dropout draws) are copied into the graph's own
tensors, so the step draws nothing itself. The first steps run eagerly (Adam's state and the libraries' handles
must exist before a capture); a step that cannot be captured (an older torch) leaves the stack eager.
"""

from __future__ import annotations

import torch

from .stacked import train_step


class StepGraph:
    def __init__(self, graph, inputs, outputs):
        self.graph, self.inputs, self.outputs = graph, inputs, outputs

    @classmethod
    def capture(cls, net, optimizer, inputs, scales) -> StepGraph | None:
        static = tuple(None if t is None else t.clone() for t in inputs)
        try:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                outputs = train_step(net, optimizer, *static, *scales)
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
