"""The bench's commands of `clipgate`: `demo`, `bench perf`, `bench quality`, `bench protect`, `bench scale` and `bench provenance`. clipgate.cli
installs them (with its error handling and settings), so this module never imports the kernel's
CLI."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bench.demo import run_demo
from bench.perf import run_perf
from bench.protect import run_protect
from bench.provenance import TRANSFORMS, provenance_table, run_provenance
from bench.quality.run import run_quality, table
from bench.scale import run_scale
from clipgate.settings import Settings


def _json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _positive_counts(option: str, value: str, example: str) -> list[int]:
    """A comma-separated option of whole numbers >= 1 ("" is none); BadParameter otherwise."""
    try:
        counts = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        counts = [0]
    if any(c < 1 for c in counts):
        raise typer.BadParameter(f"{option} {value!r}: positive whole numbers, e.g. {example}")
    return counts


def _frame_counts(value: str) -> list[int]:
    """--frames: comma-separated catalogue sizes (1e5, 100000); bad input is exit code 2."""
    try:
        sizes = [int(float(f)) for f in value.split(",") if f.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 100:
        raise typer.BadParameter(f"--frames {value!r}: sizes of at least 100 frames, e.g. 1e5")
    return sizes


@contextmanager
def _stage_bars() -> Iterator[Callable[[str, int, int], None]]:
    """A progress bar on stderr for each stage a bench run reports, gone when it ends: yields the
    run's `progress(stage, done, total)`."""
    with Progress(transient=True, console=Console(stderr=True)) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        yield progress


def _bench_settings(settings: Settings, data_dir: Path, **update: Any) -> Settings:
    """A bench's settings: its own data directory and embedded database (never the
    operator's), no broker."""
    return settings.model_copy(update={"data_dir": data_dir, "database_url": None,
                                       "broker_url": None, **update})


def install(app: typer.Typer, *, handles_errors: Callable, setup: Callable[..., Any]) -> None:
    """Add `demo` and `bench perf|quality|protect|scale|provenance` to app."""
    bench_app = typer.Typer(help="Benchmarks that print numbers.", no_args_is_help=True)
    app.add_typer(bench_app, name="bench")

    @app.command()
    @handles_errors
    def demo(
        out: Annotated[Path, typer.Option(help="Folder for the report and clips.")] = Path("demo-out"),
    ) -> None:
        """The main job: register sample works, generate and gate a dozen clips, sign and verify the
        releases, and write an HTML + JSON report."""
        settings = setup()
        console = Console()
        where = "embedded PostgreSQL" if settings.embedded else "configured PostgreSQL"
        console.print(f"clipgate demo: data in {settings.data_dir} ({where})")
        with console.status("starting") as status:
            report = run_demo(settings, out, progress=lambda msg: status.update(msg))
        table = Table(title="clipgate demo")
        for col in ("#", "prompt", "verdict", "matched work", "reused (truth)", "verify"):
            table.add_column(col)
        colours = {"release": "green", "block": "red", "review": "yellow"}
        for i, c in enumerate(report["clips"], 1):
            matched = ", ".join(m["title"] for m in c["check"]["matches"]) or "-"
            verify_state = c["verification"]["state"] if c["verification"] else "-"
            table.add_row(str(i), c["prompt"], f"[{colours[c['verdict']]}]{c['verdict']}[/]",
                          matched, ", ".join(c["reused"]) or "-", verify_state)
        console.print(table)
        counts = report["counts"]
        console.print(f"released {counts['release']}, blocked {counts['block']}, "
                      f"held for review {counts['review']} in {report['seconds']} s")
        if report["tamper_test"]:
            console.print(f"tampered signed copy verifies: {report['tamper_test']['state']}")
        for w in report["warnings"]:
            console.print(f"[yellow]warning:[/] {w}")
        console.print(f"report: {(out / 'index.html').resolve()}  (JSON: {out / 'report.json'})")

    @bench_app.command("perf")
    @handles_errors
    def bench_perf(
        works: Annotated[int, typer.Option(help="Protected works in the bench index.")] = 1000,
        runs: Annotated[int, typer.Option(help="Timed runs; the median is reported.")] = 3,
        device: Annotated[str | None, typer.Option(
            help="Where the gate runs (CLIP embedding and index search): cpu, cuda or auto.")] = None,
        data_dir: Annotated[Path | None, typer.Option(help="Bench data (kept between runs).")] = None,
        seconds: Annotated[float, typer.Option(help="Length of the generated clip.")] = 10.0,
        backend: Annotated[str, typer.Option(
            help="Generator of the clip: procedural, or diffusers (CLIPGATE_DIFFUSERS_MODEL_DIR) "
                 "for the gate-to-generation GPU-seconds ratio.")] = "procedural",
    ) -> None:
        """Time each gate stage on a 10 s 640x360 clip against an index of >= 1,000 works; print JSON."""
        settings = setup()
        logging.getLogger("index.registry").setLevel(logging.WARNING)  # a line per synthetic work is noise
        bench_settings = _bench_settings(settings, data_dir or settings.data_dir / "bench",
                                         clip_device=device or settings.clip_device)
        with Progress(transient=True, console=Console(stderr=True)) as bar:
            task = bar.add_task("registering bench works", total=works)
            result = run_perf(bench_settings, works=works, runs=runs, seconds=seconds,
                              backend=backend,
                              progress=lambda done, total: bar.update(task, completed=done))
        _json(result)

    @bench_app.command("protect")
    @handles_errors
    def bench_protect(
        frames: Annotated[str, typer.Option(
            help="Frames in the synthetic catalogue (1e4, 100000, ...).")] = "1e4",
        runs: Annotated[int, typer.Option(help="Works registered and timed.")] = 3,
        data_dir: Annotated[Path | None, typer.Option(help="Bench data (kept between runs).")] = None,
    ) -> None:
        """Time to protect: from POST /v1/works returning in an API process until a check in
        another process matches the work, over a synthetic catalogue of --frames frames; JSON."""
        settings = setup()
        logging.getLogger("index.registry").setLevel(logging.WARNING)
        sizes = _frame_counts(frames)
        if len(sizes) != 1:
            raise typer.BadParameter(f"--frames {frames!r}: one size (bench scale takes several)")
        size = sizes[0]
        bench_settings = _bench_settings(
            settings, data_dir or settings.data_dir / f"bench-protect-{size}", index_poll_s=0.0)
        with Progress(transient=True, console=Console(stderr=True)) as bar:
            task = bar.add_task("seeding synthetic frames", total=size)
            result = run_protect(bench_settings, frames=size, runs=runs,
                                 progress=lambda done, total: bar.update(task, completed=done))
        _json(result)

    @bench_app.command("scale")
    @handles_errors
    def bench_scale(
        frames: Annotated[str, typer.Option(
            help="Catalogue sizes, comma-separated (1e5,1e6,1e7 or 100000,...).")] = "1e4,1e5",
        backend: Annotated[str, typer.Option(help="faiss or milvus.")] = "faiss",
        milvus_uri: Annotated[str, typer.Option(
            help="Milvus server (http://host:19530); unset: milvus-lite in a temporary folder.")
        ] = "",
        compress_from: Annotated[int | None, typer.Option(
            help="FAISS: compress from this many frames (default CLIPGATE_FAISS_COMPRESS_FROM).")
        ] = None,
        clips: Annotated[int, typer.Option(help="10-frame clips searched per size.")] = 50,
        max_rss_gb: Annotated[float, typer.Option(help="Stop a size past this resident memory.")
                              ] = 8.0,
        nprobe: Annotated[str, typer.Option(
            help="FAISS compressed: also search with these lists' counts, comma-separated "
                 "(one build; the first figures stay CLIPGATE_FAISS_NPROBE's).")] = "",
        threads: Annotated[str, typer.Option(
            help="Also time each search on these thread counts, comma-separated (e.g. 1,2); "
                 "the first figures use the gate's own choice.")] = "",
        keep: Annotated[Path | None, typer.Option(
            help="FAISS: keep each built index (and the exact answers) in this folder, and "
                 "reuse it in a later run of the same size and settings instead of building "
                 "again (10M frames: about 6 GB a size).")] = None,
    ) -> None:
        """Memory, bytes per frame, build time, search p50/p99 of a 10-frame clip and recall@10
        against exact search of the float-descriptor index at each size; print JSON."""
        settings = setup()
        sizes = _frame_counts(frames)
        if backend not in ("faiss", "milvus"):
            raise typer.BadParameter(f"--backend {backend!r}: faiss or milvus")
        nprobes = _positive_counts("--nprobe", nprobe, "64,128")
        thread_counts = _positive_counts("--threads", threads, "1,2")
        update: dict[str, Any] = {}
        if compress_from is not None:
            update["faiss_compress_from"] = compress_from
        update["milvus_uri"] = milvus_uri
        console = Console(stderr=True)
        _json(run_scale(settings.model_copy(update=update), frames=sizes, backend=backend,
                        clips=clips, max_rss_gb=max_rss_gb, nprobes=nprobes,
                        threads=thread_counts, keep=keep, progress=console.print))

    @bench_app.command("provenance")
    @handles_errors
    def bench_provenance(
        clips: Annotated[int, typer.Option(help="Clips released, each copied every way.")] = 50,
        negatives: Annotated[int, typer.Option(help="Clips never released, looked up.")] = 200,
        seconds: Annotated[float, typer.Option(help="Length of each generated clip.")] = 10.0,
        transforms: Annotated[str, typer.Option(
            help=f"Comma-separated, from {', '.join(TRANSFORMS)}.")] = ",".join(TRANSFORMS),
        data_dir: Annotated[Path | None, typer.Option(
            help="Bench data; default: a new folder per run (earlier runs' releases would match "
                 "this run's clips).")] = None,
    ) -> None:
        """Recovery of copies without their manifest: release --clips generated clips, copy each
        (stripped, re-encoded, scaled, cropped, retimed, cut, mirrored, captioned), look each
        copy up by watermark, by fingerprint and both, and --negatives never-released clips.
        JSON on stdout, a table on stderr."""
        settings = setup()
        logging.getLogger("index.registry").setLevel(logging.WARNING)
        names = tuple(t.strip() for t in transforms.split(",") if t.strip())
        unknown = sorted(set(names) - set(TRANSFORMS))
        if clips < 1 or negatives < 0 or seconds < 3 or unknown or not names:
            raise typer.BadParameter(
                f"--clips >= 1, --negatives >= 0, --seconds >= 3, --transforms from "
                f"{', '.join(TRANSFORMS)}" + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
        base = settings.data_dir / "bench-provenance"
        base.mkdir(parents=True, exist_ok=True)
        run_dir = data_dir or Path(tempfile.mkdtemp(prefix="run-", dir=base))
        bench_settings = _bench_settings(settings, run_dir)
        with _stage_bars() as progress:
            result = run_provenance(bench_settings, clips=clips, negatives=negatives,
                                    seconds=seconds, transforms=names, progress=progress)
        shutil.rmtree(bench_settings.release_dir, ignore_errors=True)  # the signed clips
        result["data_dir"] = str(run_dir)
        _json(result)
        typer.echo(provenance_table(result), err=True)

    @bench_app.command("quality")
    @handles_errors
    def bench_quality(
        quick: Annotated[bool, typer.Option(help="A handful of works and queries, no download.")] = False,
        per_family: Annotated[int, typer.Option(help="Queries per transformation family.")] = 10,
        per_pair: Annotated[int, typer.Option(help="Queries per pair of families.")] = 4,
        negatives: Annotated[int, typer.Option(help="Queries made only of unregistered media.")] = 300,
        seed: Annotated[int, typer.Option(help="Seed of the query plan.")] = 0,
        ablations: Annotated[bool, typer.Option(
            help="Also score clipgate with each signal switched off, and pHash alone.")] = True,
        data_dir: Annotated[Path | None, typer.Option(help="Bench data (kept between runs).")] = None,
        other_models: Annotated[str | None, typer.Option(
            help="SSCD models also scored, as rows clipgate-MODEL (comma-separated, or 'none'); "
            "default: the model not configured (none with --quick).")] = None,
        dump: Annotated[Path | None, typer.Option(
            help="Write each query's search results here (pickle), to study scoring offline.")
        ] = None,
        clips: Annotated[Path | None, typer.Option(
            help="Keep the rendered query clips here, and reuse them on a later run of the same "
            "plan and corpus: a matcher change is then measured without rendering again.")
        ] = None,
    ) -> None:
        """Match quality on a dev corpus of real media (fetched once into the user cache): µAP, recall
        at 0.5% false positives, segment AP, recall per family, gate time, against the threatexchange
        PDQ baseline, pHash alone and each signal switched off. JSON on stdout, a table on stderr."""
        settings = setup()
        logging.getLogger("index.registry").setLevel(logging.WARNING)
        bench_settings = _bench_settings(settings, data_dir or settings.data_dir / (
            "bench-quality-quick" if quick else "bench-quality"))
        with _stage_bars() as progress:
            others = None if other_models is None else tuple(
                m.strip() for m in other_models.split(",") if m.strip() and m.strip() != "none")
            result = run_quality(bench_settings, quick=quick, per_family=per_family,
                                 per_pair=per_pair, negatives=negatives, seed=seed,
                                 ablations=ablations, other_models=others, dump=dump,
                                 clips=clips, progress=progress)
        _json(result)
        typer.echo(table(result), err=True)
