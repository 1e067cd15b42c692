"""Instructions per recorded reading, counted by valgrind: a figure other load cannot move.

Rates and CPU times move with whatever else the machine is doing, by a factor of two on a busy
one, so a change worth 5% cannot be seen in them. ``valgrind --tool=callgrind`` counts the
instructions a process executes instead, the same for the same code and inputs however busy the
machine is. This runs the write path in process (authentication by API key, ``record``, the
answer, the commit: what ``POST /api/v1/readings`` does without HTTP) for a new woman at 6 ppm,
``--warm`` times and then ``--readings`` times, and prints the instructions per reading of the
second part. Each REF (a git commit; default: the working tree) is exported and measured in its
own process, in parallel, against one throwaway PostgreSQL database, so the REFs must share its
schema. PostgreSQL's own work is not counted. ``--ceiling`` adds the same request's statements
sent by hand (``ceiling_app.py``) through SQLAlchemy Core and through psycopg, in process too.

    python bench/bench_instructions.py [REF ...] [--ceiling] [--readings 30] [--warm 10]

Under valgrind Python runs about fifty times slower: two REFs take about three minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

HERE = Path(__file__).resolve().parent
# The stacks ``--ceiling`` adds: driver, and whether the rows go in combined statements.
STACKS = ("core", "raw", "core_combined", "raw_combined")


def _app_reading() -> Callable[[], None]:
    """One reading recorded in process by the tree in ``BENCH_APP_ROOT``."""
    from bench_ingest import Women, body

    import app.main  # noqa: F401  (the app's listeners, as when it serves)
    from app.config import Settings
    from app.db import make_engine, make_sessionmaker, utcnow
    from app.identity import service as identity
    from app.readings import service
    from app.readings.schemas import ReadingCreate

    url, api_key = os.environ["BENCH_INSTRUCTIONS_URL"], os.environ["BENCH_INSTRUCTIONS_KEY"]
    settings = Settings(database_url=url, log_level="WARNING")
    factory = make_sessionmaker(make_engine(url))
    women = Women(random.randrange(0, 50_000_000))

    def one() -> None:
        with factory() as session:
            principal = identity.principal_for_api_key(session, api_key)
            request = ReadingCreate.model_validate(body(women.next(), utcnow()))
            recorded = service.record(
                session, principal=principal, body=request, settings=settings, now=utcnow()
            )
            service.to_read(session, recorded.reading).model_dump_json()
            session.commit()

    return one


def _ceiling_reading(stack: str) -> Callable[[], None]:
    """One reading's statements sent by hand (``ceiling_app.py``): ``core`` through SQLAlchemy
    Core, ``raw`` through psycopg's async connection (one event loop, as a server has); with
    ``_combined``, in that module's four combined statements."""
    os.environ["CEILING_DATABASE_URL"] = common.libpq_url(os.environ["BENCH_INSTRUCTIONS_URL"])
    import ceiling_app
    from bench_ingest import Women, body

    from app.db import utcnow
    from app.readings.schemas import ReadingCreate

    api_key = os.environ["BENCH_INSTRUCTIONS_KEY"]
    women = Women(random.randrange(0, 50_000_000))
    loop = asyncio.new_event_loop()

    def one() -> None:
        request = ReadingCreate.model_validate(body(women.next(), utcnow()))
        driver, _, combined = stack.partition("_")
        shape = "combined" if combined else "one_by_one"
        if driver == "core":
            answer = ceiling_app.record_with_core(shape, request, api_key)
        else:
            answer = loop.run_until_complete(
                ceiling_app.CONNECTIONS[shape].record(request, api_key)
            )
        answer.model_dump_json()

    return one


def _measured(stack: str, warm: int, readings: int) -> None:
    """The process valgrind counts: ``warm`` readings, a marker, ``readings`` readings, a
    marker (callgrind dumps its counts at each call of getppid)."""
    one = _app_reading() if stack == "app" else _ceiling_reading(stack)
    for _ in range(warm):
        one()
    os.getppid()
    for _ in range(readings):
        one()
    os.getppid()


def _instructions(
    tree: Path, url: str, api_key: str, *, warm: int, readings: int, stack: str = "app"
) -> int:
    """Instructions per reading of ``stack`` (``app``: the source tree ``tree``)."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "callgrind.out"
        env = {
            **os.environ,
            "BENCH_APP_ROOT": str(tree),
            "BENCH_INSTRUCTIONS_URL": url,
            "BENCH_INSTRUCTIONS_KEY": api_key,
        }
        command = ["valgrind", "--tool=callgrind", "--dump-before=getppid"]
        command += [f"--callgrind-out-file={out}", sys.executable, __file__, "--measured", stack]
        command += ["--warm", str(warm), "--readings", str(readings)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"the measured process failed:\n{done.stderr[-3000:]}")
        dumps = sorted(Path(folder).glob("callgrind.out.*"))
        if len(dumps) != 2:  # the two markers, and nothing else calling getppid
            raise RuntimeError(f"expected 2 callgrind dumps, found {len(dumps)}")
        found = re.search(r"^(?:summary|totals): (\d+)", dumps[1].read_text(), re.MULTILINE)
        if found is None:
            raise RuntimeError("callgrind's dump has no total")
        return int(found.group(1)) // readings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("refs", nargs="*", help="git commits (default: the working tree)")
    parser.add_argument("--readings", type=int, default=30)
    parser.add_argument("--warm", type=int, default=10)
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="also the same rows sent by hand: ceiling_app's shapes through Core and psycopg",
    )
    parser.add_argument("--measured", choices=("app", *STACKS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measured:
        _measured(args.measured, args.warm, args.readings)
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as folder, common.throwaway_database() as url:
        trees = {ref: common.export_tree(ref, Path(folder)) for ref in args.refs} or {
            "working tree": HERE.parent
        }
        world = common.seed(url)
        print(f"machine: {common.machine(url)}")
        runs = [(ref, tree, "app") for ref, tree in trees.items()]
        if args.ceiling:  # the stacks do not depend on the tree: this checkout's bench/
            runs += [(f"by hand, {stack}", HERE.parent, stack) for stack in STACKS]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            counts = {
                name: pool.submit(
                    _instructions,
                    tree,
                    url,
                    world.api_key,
                    warm=args.warm,
                    readings=args.readings,
                    stack=stack,
                )
                for name, tree, stack in runs
            }
            for ref, count in counts.items():
                print(
                    f"{ref:>22}: {count.result() / 1e6:.2f} million instructions per reading "
                    f"({args.readings} readings after {args.warm})"
                )


if __name__ == "__main__":
    main()
