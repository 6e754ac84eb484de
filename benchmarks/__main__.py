"""``python -m benchmarks run ...``: the makespan benchmark; ``python -m benchmarks chaos``: kill -9,
transient faults and two runs at once (see benchmarks/README.md).

Other benchmarks run as modules: ``python -m benchmarks.compile_bench``,
``python -m benchmarks.vcenter_bench``, ``python -m benchmarks.sim_start``.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        print("\ncommands:\n  run    makespan: graph schedule vs wave barriers vs sequential (run --help)")
        print("  sim-start  drplan sim start --estate time-to-ready, 1,000-VM modernized estate (--help)")
        print("  chaos  kill -9, transient faults, two runs at once, on a 50-VM plan (chaos --help)")
        return
    if argv[0] == "chaos":
        from benchmarks.chaos import main as chaos

        chaos(argv[1:])
        return
    if argv[0] == "sim-start":
        from benchmarks.sim_start import main as sim_start

        sim_start(argv[1:])
        return
    if argv[0] != "run":
        sys.exit(f"unknown command {argv[0]!r}: use `python -m benchmarks run --help`")
    from benchmarks.run import main as run

    run(argv[1:])


if __name__ == "__main__":
    main()
