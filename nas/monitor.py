"""What every worker of a search does after each training: the report, progress, and ``best/``."""

from __future__ import annotations

import optuna

from nas.atomic import locked
from nas.evaluator import TrainEvaluator
from nas.progress import Progress
from nas.references import load_references
from nas.report import trials_frame, write_report
from nas.run import RunDir, RunRecord, save_best
from nas.search import (LATENCY, RUNG, STATUS, Status, accuracy, best_under_budget,
                        trained_count, trained_network)
from nas.signals import deferred_stops
from nas.verify import run_choice


class TrialMonitor:
    """After each training: the report; after each at the top rung, also progress and the best
    network."""

    def __init__(self, study: optuna.Study, run_dir: RunDir, record: RunRecord,
                 evaluator: TrainEvaluator, top_rung: int) -> None:
        self.study, self.run_dir, self.record, self.evaluator = study, run_dir, record, evaluator
        self.top_rung = top_rung
        self.progress = Progress(f"search <= {record.search.budget_ms:g} ms, trained at the "
                                 "top rung", record.search.trials)
        self._count()

    def on_trial(self, trial: optuna.trial.FrozenTrial) -> None:
        if trial.user_attrs.get(STATUS) not in (Status.TRAINED, Status.FAILED):
            return
        if trial.user_attrs.get(RUNG) != self.top_rung:
            self._report()
            return
        rule = run_choice(self.run_dir, self.record)
        best = best_under_budget(self.study.trials, rule, self.top_rung)
        if best is not None:
            self.progress.note = (f"best {100 * accuracy(best):.2f}% @ "
                                  f"{best.user_attrs[LATENCY]:.2f} ms")
        with deferred_stops():  # a stop comes after the writes, not half-way through
            if trial.user_attrs[STATUS] == Status.TRAINED and self.evaluator.last is not None:
                # save_best keeps it only if it beats the network held: the study's best, or on
                # a machine sharing the study with others, the best trained into this folder.
                save_best(self.run_dir, trained_network(trial), self.evaluator.last.state_dict(),
                          rule)
            self._report()
        self._count()

    def _count(self) -> None:
        """Progress counts the top-rung candidates of every worker of the study."""
        done = min(trained_count(self.study, self.top_rung), self.record.search.trials)
        self.progress.step(max(0, done - self.progress.done))

    def __enter__(self) -> TrialMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.progress.close()
        with deferred_stops():
            self._report()

    def _report(self) -> None:
        with locked(self.run_dir.lock):  # read inside: the last writer has the latest trials
            rule = run_choice(self.run_dir, self.record)
            write_report(self.run_dir, trials_frame(self.study.trials, rule.measured_ms),
                         rule, self.record,
                         references=load_references(self.run_dir.references))
