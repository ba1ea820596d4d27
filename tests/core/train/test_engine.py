"""The one training loop: budget, stop, OOM, best by metric, checkpoints.

A toy task (one weight, scripted validation values) keeps every rule
visible: which step saved what, and what ``out`` holds at the end.
"""

import threading
from pathlib import Path

import pytest
import torch

from napari_weakseg.core.base.errors import WeaksegError
from napari_weakseg.core.base.events import (
    Finished,
    Plateau,
    Saved,
    Started,
    Step,
)
from napari_weakseg.core.base.events import Validation as Val
from napari_weakseg.core.train import engine
from napari_weakseg.core.train.engine import (
    ACCURACY,
    DICE,
    LOSS,
    Plan,
    Task,
    Tracker,
    last_path,
)


class Toy(Task):
    """w -> w - lr; validation returns the scripted values in turn; save
    writes the step count at which it was called."""

    def __init__(self, values=(), metric=DICE, held_out=True, fail_at=None):
        self.model = torch.nn.Linear(1, 1, bias=False)
        self.optimiser = torch.optim.SGD(self.model.parameters(), lr=0.1)
        self.device = torch.device("cpu")
        self.metric, self.held_out = metric, held_out
        self.values = list(values)
        self.steps = 0
        self.fail_at = fail_at
        self.final_entered_at = None
        self.stop_at = None
        self.stop = threading.Event()

    def loss(self):
        if self.fail_at is not None and self.steps + 1 == self.fail_at:
            raise torch.OutOfMemoryError("simulated")
        self.steps += 1
        if self.stop_at == self.steps:
            self.stop.set()
        return self.model(torch.ones(1, 1)).sum()

    def validate(self):
        return (self.values.pop(0),)

    def save(self, path: Path):
        path.write_text(str(self.steps))

    def enter_final(self):
        self.final_entered_at = self.steps


def drain(gen):
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as fin:
            return events, fin.value


START = Started(0, "cpu", (1, 1, 1), 0, 0, True)


def saved(events, kind):
    return [e.step for e in events if isinstance(e, Saved) and e.kind == kind]


def test_higher_is_better_keeps_the_best_validation(tmp_path):
    out = tmp_path / "m.safetensors"
    task = Toy([0.2, 0.6, 0.4, 0.5])
    events, fin = drain(
        engine.run(task, Plan(8, validations=4), out, START, task.stop)
    )
    assert [e.step for e in events if isinstance(e, Val)] == [2, 4, 6, 8]
    assert all(e.metric == "Dice" for e in events if isinstance(e, Val))
    assert saved(events, "best") == [2, 4]
    assert fin == Finished(8, False, 0.6, str(out), str(last_path(out)))
    assert out.read_text() == "4" and last_path(out).read_text() == "8"


def test_lower_is_better_for_a_loss(tmp_path):
    out = tmp_path / "enc.safetensors"
    task = Toy([3.0, 1.0, 2.0], metric=LOSS)
    events, fin = drain(engine.run(task, Plan(3, val_every=1), out, START))
    assert saved(events, "best") == [1, 2]
    assert fin.best == 1.0 and fin.metric == "loss"
    assert fin.summary() == "best validation loss 1.000"
    assert out.read_text() == "2"


def test_ties_keep_the_first_best():
    track = Tracker(ACCURACY)
    assert [track.add(v, s) for s, v in enumerate([1.0, 1.0, 0.5])] == [
        True,
        False,
        False,
    ]
    assert track.best_step == 0


def test_moving_average_window_ignores_one_lucky_validation():
    track = Tracker(DICE, window=3)
    for step, v in enumerate([0.1, 0.9, 0.1, 0.5, 0.6, 0.7]):
        track.add(v, step)
    assert track.best_step == 5  # mean(0.5, 0.6, 0.7) > mean(0.1, 0.9, 0.1)
    assert track.best == pytest.approx(0.6)
    assert not track.add(float("nan"), 6)  # a NaN never counts


def test_time_budget_ends_the_run_with_a_checkpoint(tmp_path):
    out = tmp_path / "m.safetensors"
    ticks = iter(range(1000))  # one second per call of the clock
    task = Toy([0.5] * 10)
    events, fin = drain(
        engine.run(
            task,
            Plan(100, minutes=0.1, val_every=50),
            out,
            START,
            clock=lambda: float(next(ticks)),
        )
    )
    assert 0 < fin.steps < 10 and not fin.stopped
    # the run ended between validations: one more, then best = that one
    assert saved(events, "best") == [fin.steps] and out.read_text() == str(
        fin.steps
    )
    steps = [e for e in events if isinstance(e, Step)]
    assert steps[-1].eta_s <= 6.0  # never more than the time left


def test_stop_keeps_best_and_an_existing_model_is_protected(tmp_path):
    out = tmp_path / "m.safetensors"
    task = Toy([0.5, 0.7, 0.9])
    task.stop_at = 5
    _, fin = drain(
        engine.run(task, Plan(20, val_every=2), out, START, task.stop)
    )
    # a stop between validations validates once more: step 5 is best
    assert fin.stopped and fin.steps == 5 and fin.best == 0.9
    assert out.read_text() == "5"
    # again, with that model in place: a stopped run must not replace it
    task = Toy([0.95, 0.99])
    task.stop_at = 3
    _, fin = drain(
        engine.run(task, Plan(20, val_every=2), out, START, task.stop)
    )
    assert out.read_text() == "5" and last_path(out).read_text() == "3"
    assert "was kept as it was" in fin.message


def test_no_step_writes_nothing(tmp_path):
    out = tmp_path / "m.safetensors"
    task = Toy()
    task.stop.set()
    events, fin = drain(engine.run(task, Plan(5), out, START, task.stop))
    assert fin.steps == 0 and fin.best_path == ""
    assert not out.exists() and not last_path(out).exists()
    assert events == [START]


def test_out_of_memory_saves_the_last_weights_and_says_so(tmp_path):
    out = tmp_path / "m.safetensors"
    task = Toy([0.5], fail_at=4)
    task.oom_hint = "patch [8, 8, 8] and batch 2"
    with pytest.raises(WeaksegError) as err:
        drain(engine.run(task, Plan(10, val_every=2), out, START))
    assert str(err.value) == (
        "Out of memory with patch [8, 8, 8] and batch 2; try a smaller "
        "patch size or batch size (the last weights are saved in "
        "m.last.safetensors)."
    )
    assert last_path(out).read_text() == "3"
    task = Toy(fail_at=1)
    with pytest.raises(WeaksegError, match=r"batch size\.$"):
        drain(engine.run(task, Plan(10), tmp_path / "n.safetensors", START))
    assert not (tmp_path / "n.last.safetensors").exists()


def test_final_phase_trains_on_and_the_final_weights_are_the_model(tmp_path):
    out = tmp_path / "m.safetensors"
    task = Toy([0.9, 0.1, 0.1])
    plan = Plan(8, validations=3, final_phase=0.25)
    events, fin = drain(engine.run(task, plan, out, START))
    assert task.final_entered_at == 6  # the last quarter of 8 steps
    assert [e.step for e in events if isinstance(e, Val)] == [2, 4, 6]
    assert saved(events, "final") == [8] and out.read_text() == "8"
    assert fin.best == pytest.approx(0.9)


def test_without_held_out_data_the_final_weights_are_the_model(tmp_path):
    out = tmp_path / "m.safetensors"
    task = Toy([0.9, 0.1, 0.1], held_out=False)
    plan = Plan(6, val_every=2, keep_best=False)
    events, _ = drain(engine.run(task, plan, out, START))
    assert saved(events, "final") == [6] and out.read_text() == "6"


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        (Plan(0), "at least 1 \\(got 0\\)"),
        (Plan(5, minutes=0), "more than 0 minutes"),
        (Plan(5, final_phase=1.0), "share in \\[0, 1\\)"),
    ],
)
def test_bad_budgets_are_one_sentence(tmp_path, plan, message):
    with pytest.raises(WeaksegError, match=message):
        drain(engine.run(Toy(), plan, tmp_path / "m.safetensors", START))


def test_patience_ends_a_run_that_stopped_improving(tmp_path):
    out = tmp_path / "m.safetensors"
    task = Toy([0.5, 0.6, 0.6, 0.55, 0.5, 0.9])
    plan = Plan(100, val_every=1, patience=3)
    events, fin = drain(engine.run(task, plan, out, START))
    plateau = [e for e in events if isinstance(e, Plateau)]
    assert plateau == [Plateau(5, 2)]  # best at step 2, none better by 5
    assert fin.steps == 5 and not fin.stopped and fin.best == 0.6
    assert out.read_text() == "2"


def test_patience_then_the_final_phase_in_proportion(tmp_path):
    out = tmp_path / "m.safetensors"
    task = Toy([0.1, 0.5, 0.4, 0.4])
    plan = Plan(100, val_every=1, patience=2, final_phase=0.25)
    events, fin = drain(engine.run(task, plan, out, START))
    # plateau at step 4; a quarter of the run is final: 4 / 3 -> 1 step
    assert task.final_entered_at == 4 and fin.steps == 5
    assert saved(events, "final") == [5] and out.read_text() == "5"
    assert [e.total for e in events if isinstance(e, Step)][-1] == 5


def test_schedules_see_the_share_of_the_time_budget(tmp_path):
    seen = []

    class Sched:
        def step(self):
            seen.append(task.time_share)

    task = Toy([0.5] * 20)
    task.scheduler = Sched()
    ticks = iter(range(0, 10_000, 6))  # 6 s per clock reading
    drain(
        engine.run(
            task,
            Plan(100, minutes=1.0, val_every=50),
            tmp_path / "m.safetensors",
            START,
            clock=lambda: float(next(ticks)),
        )
    )
    assert seen and seen == sorted(seen) and 0 < seen[0] < seen[-1] <= 1.0


def test_patience_must_be_a_positive_number_of_steps(tmp_path):
    with pytest.raises(WeaksegError, match="Patience must be"):
        drain(
            engine.run(
                Toy(), Plan(5, patience=0), tmp_path / "m.safetensors", START
            )
        )
