"""The reference engine: one round, one model, one plain PyTorch training loop at a time."""

from __future__ import annotations

import time

import torch

from workbench.engine.base import (CancelFlag, EpochRecord, NeverCancel, OnEpoch, RoundResult, RunResult, device_label,
                                   digit_figure, finite, flag_divergence, kept_weights, library_versions,
                                   predictions_of, resolve_device)
from workbench.engine.loss import pair_loss
from workbench.engine.state import OnStates, RoundState, Taking, loop_state, restore_loop
from workbench.paper.config import RunConfig
from workbench.paper.data import DigitSource, PairSet, augmented, repaired, round_pairs
from workbench.paper.randomness import (DropoutLayout, DropoutStream, StepDraws, attach_draws, batch_order, init_model,
                                        weights_seed)
from workbench.paper.verdict import says_first_le_second


@torch.no_grad()
def evaluate(model: torch.nn.Module, pairs: PairSet) -> tuple[float, float | None]:
    """(comparison accuracy, digit accuracy of both subnets or None) in eval mode."""
    model.eval()
    out, digits = model(pairs.input)
    acc = (says_first_le_second(out).float() == pairs.target).float().mean().item()
    if digits is None:
        return acc, None
    left, right = digits
    hits = (left.argmax(1) == pairs.classes[:, 0]).float().mean() + (right.argmax(1) == pairs.classes[:, 1]).float().mean()
    return acc, (hits / 2).item()


def train_round(config: RunConfig, source: DigitSource, round_index: int, device: torch.device, run: int,
                on_epoch: OnEpoch, cancel: CancelFlag, validation: int = 0, start: RoundState | None = None,
                on_states: OnStates | None = None) -> RoundResult:
    """One round from its initial weights, or from `start` (its state after an earlier epoch); `on_states` sees
    its state after each epoch."""
    sets = [p.to(device) for p in round_pairs(source, config.pairs, config.seed, round_index, validation)]
    round_train, test = sets[0], sets[1]
    model = init_model(config, round_index).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    if start is not None:
        restore_loop(model, optimizer, start)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_decay)
    result = RoundResult(round=round_index, seed=weights_seed(config.seed, round_index), status="done")
    layout = DropoutLayout.of(model, config.batch_size)
    stream = DropoutStream([(config.seed, round_index)], layout, device)
    step_draws = StepDraws(layout)
    attach_draws(model, step_draws)
    taking = Taking(config.epochs)
    for epoch in range(start.epoch + 1 if start else 1, config.epochs + 1):
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        model.train()
        train = repaired(round_train, config.seed, round_index, epoch) if config.repair else round_train
        train = augmented(train, config, round_index, epoch)
        order = batch_order(config, round_index, epoch, len(train)).to(device)
        stream.start_epoch(epoch)
        trained = epoch_steps(model, optimizer, config, train, order, stream, step_draws, cancel)
        if trained is None:
            result.status = "cancelled"
            return result
        loss_sum, hits, steps = trained
        schedule.step()
        train_loss = (loss_sum / steps).item()
        if not finite(train_loss):
            result.status, result.reason = "failed", f"round {round_index}: loss became {train_loss} in epoch {epoch}"
            return result
        train_acc = hits.item() / len(train)
        test_acc, digit_acc = evaluate(model, test)
        digit_acc = digit_figure(config, digit_acc)
        result.epochs = epoch
        result.train_loss, result.train_acc, result.test_acc, result.digit_acc = train_loss, train_acc, test_acc, digit_acc
        on_epoch(EpochRecord(run, round_index, epoch, train_loss, train_acc, test_acc, digit_acc, lr,
                             time.perf_counter() - started))
        if on_states is not None and taking.due(epoch):
            taking.take(on_states, lambda: [(run, round_index, loop_state(model, optimizer, epoch))])
    flag_divergence(config, result)
    if validation and result.status == "done":
        result.val_acc = evaluate(model, sets[2])[0]
    elif result.status == "done":
        with torch.no_grad():
            model.eval()
            out, digits = model(test.input)
            result.predictions = predictions_of(out, None if digits is None else torch.stack(digits, 1), test.input,
                                                test.target, test.classes, config.aux_loss)
        result.weights = kept_weights(model.named_parameters())
    return result


def epoch_steps(model, optimizer, config: RunConfig, train: PairSet, order: torch.Tensor, stream: DropoutStream,
                step_draws: StepDraws, cancel: CancelFlag) -> tuple[torch.Tensor, torch.Tensor, int] | None:
    """One epoch's Adam steps in the epoch's order: (summed loss, hits, steps), or None when cancelled part-way."""
    device = train.input.device
    loss_sum = torch.zeros((), device=device)
    hits = torch.zeros((), device=device)
    steps = 0
    for step, first in enumerate(range(0, len(train), config.batch_size)):
        if cancel.is_set():
            return None
        draws = stream.step(step)
        if draws is not None:
            step_draws.start(draws[0])
        idx = order[first:first + config.batch_size]
        out, digits = model(train.input[idx])
        loss = pair_loss(out, digits, train.target[idx], train.classes[idx], config.aux_loss, config.alpha)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach()
        hits += (says_first_le_second(out.detach()).float() == train.target[idx]).sum()
        steps += 1
    return loss_sum, hits, steps


def run_loop(config: RunConfig, run: int, source: DigitSource, on_epoch: OnEpoch | None = None,
             cancel: CancelFlag | None = None, validation: int = 0, start: dict[int, RoundState] | None = None,
             on_states: OnStates | None = None) -> RunResult:
    """Train one config's rounds one after another (each from its state in `start`, where it has one); records
    carry `run`, the config's index in the caller's list."""
    cancel = cancel or NeverCancel()
    device = resolve_device(config.device)
    history: list[EpochRecord] = []

    def record(rec: EpochRecord) -> None:
        history.append(rec)
        if on_epoch:
            on_epoch(rec)

    started = time.time()
    clock = time.perf_counter()
    rounds: list[RoundResult] = []
    status, reason = "done", ""
    for r in range(config.rounds):
        if cancel.is_set():
            status = "cancelled"
            break
        rr = train_round(config, source, r, device, run, record, cancel, validation, (start or {}).get(r), on_states)
        rounds.append(rr)
        if rr.status != "done":
            status, reason = rr.status, rr.reason
            break
    return RunResult(status=status, reason=reason, config=config, rounds=rounds, history=history,
                     data_source=source.name, device=device_label(device), engine="loop", seed=config.seed,
                     wall_time=time.perf_counter() - clock, versions=library_versions(), started_at=started)
