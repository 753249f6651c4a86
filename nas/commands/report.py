"""``nas report``: rewrite a run's report, or re-score it for another table or budget.

Re-scoring writes its own files beside the run's (``summary-<fingerprint>.md`` and so on) and
never touches ``best/``: the network that was best during the search keeps its weights.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from nas.arch import Arch
from nas.atomic import locked
from nas.commands.common import lut_info
from nas.identity import check
from nas.latency.predict import LatencyModel
from nas.latency.table import LatencyTable
from nas.report import trials_frame, write_report
from nas.references import load_references
from nas.run import RunDir, RunRecord
from nas.search import ARCH, LATENCY, LATENCY_ERR, made_identity, open_study
from nas.storage import open_storage
from nas.verify import run_choice


def run(args: argparse.Namespace) -> int:
    run_dir = RunDir(args.run)
    record = RunRecord.load(run_dir)
    budget = args.latency_budget or record.search.budget_ms
    table = None if args.lut is None else LatencyTable.load(args.lut, space=record.space_name)
    target = record.target if table is None else table.target
    choice = run_choice(run_dir, record, target, budget)  # measured on that target, if ever
    storage = open_storage(record.storage)
    made = made_identity(storage, record.name)
    if made is not None:  # the study of another run under the same name (a shared server)
        check(made, record.identity(), f"study {record.name!r}")
    frame = trials_frame(open_study(storage, record.name).trials, choice.measured_ms)
    suffix = ""
    references = load_references(run_dir.references)
    if table is not None:
        if references:
            print("reference networks left out: their latencies come from the run's own table")
        references = []
        model = LatencyModel(table, record.model.in_channels, record.model.num_classes)
        predictions = [model.predict(Arch.from_string(a)) if a else None for a in frame[ARCH]]
        frame[LATENCY] = [p.latency_ms if p else None for p in predictions]
        frame[LATENCY_ERR] = [p.error_ms if p else None for p in predictions]
        record = replace(record, target=table.target, lut=lut_info(args.lut, table))
        suffix = f"-{table.target.fingerprint()}"
    if args.latency_budget is not None:
        suffix += f"-{budget:g}ms"
    with locked(run_dir.lock):  # a search may be writing the run's own report
        info = write_report(run_dir, frame, choice, record, suffix, references)
    print(f"wrote {run_dir.summary(suffix)}: {len(info.front)} networks on the front under "
          f"{budget:g} ms")
    return 0
