"""Does telling cheaper rungs PRUNED change what the sampler draws? (issue 25, item 7)

Since cheaper-rung trainings are told PRUNED (so that ``study.best_trials`` and optuna-dashboard
show the report's front), the sampler reads them through `nas.search.sampler_view`, as COMPLETE
with their values, as they were told before. This runs the same seeded two-rung searches (fake
scores and latencies: the large space's blocks, kernels summed) at this checkout and at
``--before`` (a commit that told them COMPLETE, default 467cf45), each in its own process, and
records the hash of the sequence of architectures drawn. Equal hashes: the sampler drew the same
candidates in the same order, so search quality is unchanged by construction.
Run: ``.venv/bin/python benchmarks/sampler_view.py``; about a minute.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from record import ROOT, append

DRAW = """
import hashlib, json, sys, tempfile
sys.path.insert(0, "tests")
from conftest import LARGE_SPACE
from test_search import BlockCountLatency, FakeEvaluator
from nas.config import SearchConfig
from nas.search import ARCH, make_sampler, open_study, search
from nas.space import load_space
out = {}
for sampler in ("tpe", "nsga2"):
    db = tempfile.mkdtemp() + "/s.db"
    study = open_study(f"sqlite:///{db}", "s", make_sampler(sampler, 0))
    config = SearchConfig(budget_ms=16, trials=6, eta=3, bands=2, rung_epochs=(0.25,),
                          sampler=sampler)
    search(study, load_space(LARGE_SPACE), BlockCountLatency(), FakeEvaluator(), config,
           (0.25, 2.0))
    archs = "|".join(t.user_attrs.get(ARCH, "") for t in study.trials)
    out[sampler] = {"trials": len(study.trials),
                    "archs_sha256": hashlib.sha256(archs.encode()).hexdigest()[:16]}
print(json.dumps(out))
"""


def _draws(tree: Path) -> dict[str, dict[str, object]]:
    """The searches' draws with the package and tests of ``tree``."""
    done = subprocess.run([sys.executable, "-c", DRAW], cwd=tree, capture_output=True,
                          text=True, check=True, env={"PYTHONPATH": str(tree)})
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="467cf45")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(old), args.before],
                       cwd=ROOT, check=True)
        try:
            before = _draws(old)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT,
                           check=True)
    after = _draws(ROOT)
    for sampler in after:
        line = append("sampler_view", {"sampler": sampler, "before_commit": args.before,
                                       "before": before[sampler], "after": after[sampler],
                                       "same_draws": before[sampler] == after[sampler]},
                      threads=1)
        print(f"{sampler}: {line['before']} before, {line['after']} now: "
              f"{'the same draws' if line['same_draws'] else 'DIFFERENT draws'}")


if __name__ == "__main__":
    main()
