"""The ``liccs`` command: one small function per subcommand, each calling the API and nothing else."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Callable, Sequence

from liccs.core.errors import LiccsError

Command = Callable[[argparse.Namespace], int]


def cmd_doctor(args: argparse.Namespace) -> int:
    from liccs.core.doctor import format_checks, run_checks

    checks = run_checks()
    print(format_checks(checks))
    return 0 if all(c.ok or not c.required for c in checks) else 1


def cmd_zoo_list(args: argparse.Namespace) -> int:
    from liccs.zoo import CODECS, codec_names, list_classifiers

    if args.kind in ("codecs", "all"):
        for arch in CODECS.names():
            e = CODECS.get(arch)
            print(f"{arch:<28} q{min(e.qualities)}..q{max(e.qualities)}  metrics {','.join(e.metrics)}  "
                  f"{e.description}")
        if args.verbose:
            print(" ".join(codec_names()))
    if args.kind in ("classifiers", "all"):
        print(" ".join(list_classifiers()))
    return 0


def cmd_zoo_train(args: argparse.Namespace) -> int:
    from liccs.zoo.mini.report import write_report
    from liccs.zoo.mini.zoo_train import export_committed, select, train_zoo

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    members = select(args.only, args.seed)
    walls = {} if args.report_only else train_zoo(members, device=args.device, progress=not args.no_progress)
    if args.export_weights:
        export_committed(args.export_weights.split(","))
    if args.report:
        write_report(members, args.report, walls, eval_images=args.eval_images, progress=not args.no_progress)
        print(f"wrote {args.report}/report.md and {args.report}/manifest.json")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from liccs.jobs.run import run_config

    result = run_config(args.config, quick=args.quick, overrides=args.set, out=args.out, progress=not args.no_progress,
                        executor=args.executor, address=args.address, check_only=args.check)
    if args.check:
        skipped = "".join(f"; skipped {n}: {why}" for n, why in result["skipped"].items())
        print(f"config OK: stages {', '.join(result['stages'])}{skipped}")
        return 0
    for name, reason in result["skipped"].items():
        print(f"skipped {name}: {reason}")
    print(f"wrote {result['out']}/report.html, report.md, manifest.json and tables/ "
          f"({', '.join(f'{k} {v:.0f}s' for k, v in result['seconds'].items())})")
    return 0


def cmd_attack(args: argparse.Namespace) -> int:
    from liccs.jobs.attack import run_attack
    from liccs.jobs.cli_args import attack_job

    print(run_attack(attack_job(args))["table"])
    print(f"wrote one PNG per image, adversarial.pt and attack.json to {args.out}")
    return 0


def cmd_defend(args: argparse.Namespace) -> int:
    from liccs.jobs.cli_args import defend_job
    from liccs.jobs.defend import run_defend

    print(run_defend(defend_job(args))["table"])
    print(f"wrote {args.out}/defense.json")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from liccs.jobs.export import ExportJob, format_table, run_export

    result = run_export(ExportJob.from_args(args))
    for why in result["skipped"]:
        print(f"skipped an unreadable image: {why}")
    print(format_table(result["records"]))
    print(result["report"].table())
    print(f"wrote artifacts/, parity.json, export_report.json and cross_decode.json to {args.out}")
    return 1 if any(r.status == "error" for r in result["records"]) else 0


def cmd_check(args: argparse.Namespace) -> int:
    from liccs.jobs.export import ExportJob, format_table, run_export

    result = run_export(ExportJob.from_args(args))
    for why in result["skipped"]:
        print(f"skipped an unreadable image: {why}")
    records = result["records"]
    print(format_table(records))
    return 0 if all(r.passed for r in records if r.status != "unavailable") else 1


def cmd_encode(args: argparse.Namespace) -> int:
    from liccs.jobs.codec_files import encode_files

    rows, banner = encode_files(args.codec, args.weights, args.engine, args.images, args.out)
    print("\n".join(filter(None, [banner, *(f"{r['file']}: {r['bytes']} bytes, {r['bpp']:.4f} bpp "
                                                f"({r['height']}x{r['width']})" for r in rows)])))
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    from liccs.jobs.codec_files import decode_files

    rows = decode_files(args.codec, args.weights, args.engine, args.files, args.out, args.on_mismatch,
                        args.max_pixels)
    for r in rows:
        note = "" if r["tables_match"] else "  (decoded on OTHER entropy tables than the encoder's: not the image sent)"
        print(f"{r['file']} -> {r['png']}{note}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from liccs.jobs.compare import compare_runs

    res = compare_runs(args.runs, args.out, args.fail_on, args.timing_table, args.fail_on_slower)
    print(res["markdown"])
    if args.out:
        figures = "" if res["regression"].empty else " and figures/"
        print(f"wrote {args.out}/report.md, report.html, tables/{figures}")
    failed = False
    if res["failed"] is not None and len(res["failed"]):
        print(f"liccs compare: --fail-on {args.fail_on} failed by {len(res['failed'])} cell(s)", file=sys.stderr)
        failed = True
    if res["slower"] is not None and len(res["slower"]):
        print(f"liccs compare: --fail-on-slower {args.fail_on_slower:g} failed by {len(res['slower'])} stage(s)",
              file=sys.stderr)
        failed = True
    return 1 if failed else 0


def cmd_reports_status(args: argparse.Namespace) -> int:
    from liccs.jobs.reports import reports_status, status_table
    from liccs.report.tables import to_markdown

    rows = reports_status(args.root)
    print(to_markdown(status_table(rows)) if rows else f"no report folder under {args.root}")
    not_current = [r for r in rows if r.status not in ("current", "stands")]
    stands = sum(r.status == "stands" for r in rows)
    print(f"{len(rows) - len(not_current) - stands} current, {len(not_current)} stale or unknown"
          + (f", {stands} stale but judged to stand" if stands else ""))
    return 1 if args.fail_on_stale and not_current else 0


def cmd_reports_stand(args: argparse.Namespace) -> int:
    from liccs.jobs.reports import STANDING, record_standing

    row = record_standing(args.report, args.why)
    print(f"wrote {args.report}/{STANDING}: {row.status} ({row.why})")
    return 0


def cmd_reports_operators(args: argparse.Namespace) -> int:
    from liccs.jobs.reports import operators_summary
    from liccs.report.tables import to_markdown

    print(to_markdown(operators_summary(args.report, args.stage, args.top)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="liccs", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("doctor", help="what this machine can run")
    s.set_defaults(func=cmd_doctor)

    s = sub.add_parser("zoo", help="the model zoo")
    zsub = s.add_subparsers(dest="zoo_command", required=True)
    z = zsub.add_parser("list", help="registered codecs and classifiers")
    z.add_argument("kind", nargs="?", choices=("codecs", "classifiers", "all"), default="all")
    z.set_defaults(func=cmd_zoo_list)
    z = zsub.add_parser("train", help="train the offline mini zoo (mini-…) into the cache, and report on it")
    z.add_argument("--only", nargs="+", metavar="NAME", help="mini-zoo models to train (default: the full zoo)")
    z.add_argument("--seed", type=int, default=None, help="replace the configs' seed (changes the cache keys)")
    z.add_argument("--device", default="cpu", help="cpu | cuda")
    z.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    z.add_argument("--report", metavar="DIR", help="evaluate the trained models and write a report here")
    z.add_argument("--report-only", action="store_true", help="train nothing; report on what is in the cache")
    z.add_argument("--eval-images", type=int, default=2000,
                   help="class-balanced CIFAR-10 test images for the codec ladders (the classifier uses all 10k)")
    z.add_argument("--export-weights", metavar="NAMES",
                   help="comma-separated models (NAME, or NAME@qN for one quality of a ladder) to write as committed "
                        "fp16 weights (liccs/zoo/weights)")
    z.add_argument("--no-progress", action="store_true")
    z.set_defaults(func=cmd_zoo_train)

    s = sub.add_parser("run", help="the main job: export, parity, profile, attack, transfer, report")
    s.add_argument("config", nargs="?", default="quick-cpu",
                   help="a run config: a TOML file, or a built-in one by name (quick-cpu, paper-a, paper-b, gpu)")
    s.add_argument("--quick", action="store_true", help="apply the config's [quick] overrides (the test variant)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set data.images=4 (repeatable)")
    s.add_argument("--out", default=None, help="report folder (default: the config's run.out)")
    s.add_argument("--executor", choices=("serial", "ray"), default=None,
                   help="where the attack tasks run (default: the config's run.executor, serial)")
    s.add_argument("--address", default=None, metavar="auto|ray://HOST:PORT",
                   help="with --executor ray: the cluster to join (default: start a local Ray instance)")
    s.add_argument("--no-progress", action="store_true")
    s.add_argument("--check", action="store_true",
                   help="check the config (keys, names, engines, attacks, sources, data, each stage's own checks) "
                        "and stop without any work")
    s.set_defaults(func=cmd_run)

    from liccs.jobs.cli_args import add_attack_arguments, add_defend_arguments

    s = sub.add_parser("attack", help="adversarial images against a codec+classifier (or an ensemble of codecs)")
    add_attack_arguments(s)
    s.set_defaults(func=cmd_attack)
    s = sub.add_parser("defend", help="clean and attacked images through a codec with and without the K-way defense")
    add_defend_arguments(s)
    s.set_defaults(func=cmd_defend)

    from liccs.jobs.cli_args import add_export_arguments

    s = sub.add_parser("export", help="codecs x engines -> artifacts, parity.json, export and cross-decode reports")
    add_export_arguments(s)
    s.set_defaults(func=cmd_export)
    s = sub.add_parser("check", help="parity of every engine against PyTorch (exit 1 on a failure)")
    add_export_arguments(s)
    s.set_defaults(func=cmd_check)
    r = sub.add_parser("reports", help="committed report folders").add_subparsers(dest="reports_cmd", required=True)
    s = r.add_parser("status", help="each report folder against the code now: current, stale (with the modules that "
                                    "changed) or unknown")
    s.add_argument("root", nargs="?", default="reports", help="folder of report folders (default: reports)")
    s.add_argument("--fail-on-stale", action="store_true", help="exit 1 when a report is stale or unknown")
    s.set_defaults(func=cmd_reports_status)
    s = r.add_parser("stand", help="record why a stale report's results still stand, pinned to the changed modules as "
                                   "they are now (status then says 'stands' until they change again)")
    s.add_argument("report", help="a stale report folder")
    s.add_argument("--why", required=True, help="what shows the changes leave its results as they are")
    s.set_defaults(func=cmd_reports_stand)
    s = r.add_parser("operators", help="a stage's slowest operators per engine from a report's operator table: time "
                                       "per run, share of the stage, achieved GFLOP/s and fraction of the ceiling")
    s.add_argument("report", help="a report folder (e.g. reports/quick-cpu)")
    s.add_argument("--stage", default="g_s", help="the profiled stage (default g_s)")
    s.add_argument("--top", type=int, default=3, help="operators per engine (default 3)")
    s.set_defaults(func=cmd_reports_operators)
    s = sub.add_parser("compare", help="two or more report folders side by side (the first is the baseline)")
    s.add_argument("runs", nargs="+", help="report folders (liccs run --out ...)")
    s.add_argument("--out", default=None, help="also write the comparison as a report folder (Markdown, HTML, "
                                               "tables, the regression view's figure)")
    s.add_argument("--fail-on", default=None, choices=("verdicts", "results", "any"),
                   help="exit 1 when a verdict changed or a claim is in one run only (verdicts); also a result row in "
                        "one run only or an effect outside the other run's CI (results); also any result cell "
                        "(any). Timing tables never fail it")
    s.add_argument("--timing-table", default=None, metavar="NAME",
                   help="the table of the regression view: per stage x engine, p50 over the baseline's p50, flagged "
                        "outside both runs' spread (p10 or min ... p90, over p50); default latency, skipped with a "
                        "note where a run lacks it")
    s.add_argument("--fail-on-slower", type=float, default=None, metavar="RATIO",
                   help="exit 1 when a stage of the regression view is flagged slower by RATIO or more (e.g. 1.5); "
                        "without it, timings never change the exit status")
    s.set_defaults(func=cmd_compare)
    for name, what in (("encode", "images → .liccs files (one per image) with a deployed codec on an engine"),
                       ("decode", ".liccs files → PNGs with a deployed codec on an engine")):
        s = sub.add_parser(name, help=what)
        s.add_argument("--codec", required=True, help="ARCH@qN: the codec (its weights' fingerprint is in each file)")
        s.add_argument("--weights", default="pretrained", help="pretrained (default) | random | PATH")
        s.add_argument("--engine", default="ort-cpu", help="the engine its networks run on (default ort-cpu)")
        s.add_argument("-o", "--out", required=True, help="output folder")
        if name == "encode":
            s.add_argument("images", nargs="+", help="image files")
            s.set_defaults(func=cmd_encode)
        else:
            s.add_argument("files", nargs="+", help=".liccs files")
            s.add_argument("--on-mismatch", default="raise", choices=("raise", "decode"),
                           help="when this engine picks other entropy tables than the encoder: refuse (default) or "
                                "decode anyway and say so")
            s.add_argument("--max-pixels", type=int, default=None, metavar="N",
                           help="refuse files whose image has more than N pixels (default: $LICCS_MAX_PIXELS, else "
                                "67108864 = 64 megapixels, 8192x8192): a file's header is untrusted input")
            s.set_defaults(func=cmd_decode)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.verbose:  # dependencies' deprecation notices (torch.jit.script's, raised while compressai imports)
        for category in (FutureWarning, DeprecationWarning):
            warnings.filterwarnings("ignore", category=category, module=r"(?!liccs\b)")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return args.func(args)
    except LiccsError as e:
        print(f"liccs: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
