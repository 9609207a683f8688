"""`cybersentinel predict`: score a file or standard input in streaming chunks, every row kept."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO

import typer

from cybersentinel.cli.options import (
    AllowFiles,
    AllowNames,
    BlockFiles,
    FeedbackDb,
    FeedsAlias,
    ModelSha256,
    UseFeedback,
    feeds_dir_or_alias,
    with_feedback,
)

if TYPE_CHECKING:  # `cybersentinel --help` stays free of pyarrow
    import pyarrow as pa


_URI = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]+://")  # two letters at least: `C://x` is a Windows path


def check_model_json(model_dir: Path, param_hint: str = "--model-dir") -> None:
    """Read ``model_dir``'s model.json and its decision policy as the detector will: a file that is not JSON or a
    policy with a wrong value (threshold "high", NaN) stops the command with one line naming the file (status 2)
    instead of a traceback. A missing file is left to the loader's own message."""
    from cybersentinel.core.files import load_manifest
    from cybersentinel.core.retry import one_line
    from cybersentinel.scoring.policy import Policy

    path = Path(model_dir) / "model.json"
    try:
        manifest = load_manifest(model_dir)
        if not isinstance(manifest, dict):
            raise ValueError(f"it holds a JSON {type(manifest).__name__}, not an object")
        Policy.from_manifest(manifest)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise typer.BadParameter(f"cannot load the model: {path}: {one_line(exc)}", param_hint=param_hint) from None
    except TypeError as exc:  # a policy value of the wrong type (threshold "high")
        raise typer.BadParameter(f"cannot load the model: {path}: a decision-policy value has the wrong type "
                                 f"({one_line(exc)})", param_hint=param_hint) from None


def predict(
    input: Annotated[str, typer.Option("--input", "-i", help="CSV (with a header), Parquet, JSON Lines (an object "
                                       "per line), or plain text with one URL, domain or IP per line; '-' reads "
                                       "standard input. Compressed input is refused: decompress it first")] = "-",
    output: Annotated[str, typer.Option("--output", "-o", help="file to write (.csv, .parquet, .jsonl); '-' writes "
                                        "standard output")] = "-",
    input_format: Annotated[str | None, typer.Option(help="csv, parquet, jsonl or text (default: from the file "
                                                     "name, else sniffed from the first line)")] = None,
    output_format: Annotated[str | None, typer.Option(help="csv, parquet or jsonl (default: from the file name, "
                                                      "else csv)")] = None,
    column: Annotated[str, typer.Option("--column", "-c", help="the column (CSV, Parquet) or field (JSON Lines) "
                                        "holding URLs, as text")] = "url",
    model_dir: Annotated[Path, typer.Option(help="folder with model.json and model.skops")] = Path("models"),
    model_sha256: ModelSha256 = None,
    feeds: Annotated[Path | None, typer.Option("--feeds-dir", file_okay=False, help="threat-intel snapshot folder "
                                               "(`cybersentinel feeds refresh`); default: data/feeds when it exists"
                                               )] = None,
    feeds_alias: FeedsAlias = None,
    no_feeds: Annotated[bool, typer.Option("--no-feeds", help="score with the model alone")] = False,
    band: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="width of the 'suspicious' band below the "
                                               "model's threshold (default: the one recorded with the model); "
                                               "'malicious' verdicts stay as recorded")] = None,
    reasons: Annotated[bool, typer.Option("--reasons/--no-reasons", help="explain each score in plain words")] = True,
    allow_names: AllowNames = None,
    allow_files: AllowFiles = None,
    block_files: BlockFiles = None,
    feedback_db: FeedbackDb = None,
    feedback: UseFeedback = True,
    chunk_size: Annotated[int, typer.Option(min=1, help="rows per chunk (memory stays constant)")] = 50_000,
    workers: Annotated[int, typer.Option(min=0, help="scoring processes; 0: one per core")] = 0,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress", help="progress bar on standard "
                                                  "error (default: when it is a terminal)")] = None,
    engine: Annotated[str, typer.Option(help="local (this machine's processes) or dask (a Dask cluster: --input is "
                                        "a file, folder or glob of Parquet/CSV, local or s3://; --output a folder "
                                        "of part-NNNNN.parquet and _manifest.json)")] = "local",
    scheduler: Annotated[str | None, typer.Option(help="--engine dask: the cluster's scheduler (tcp://host:8786); "
                                                  "default: a local cluster of --workers processes")] = None,
    storage_options: Annotated[str | None, typer.Option(help="--engine dask: fsspec storage options as JSON, e.g. "
                                                        "'{\"client_kwargs\": {\"endpoint_url\": \"http://...\"}}' "
                                                        "(default: the AWS variables)")] = None,
    rows_per_partition: Annotated[int, typer.Option(min=1, help="--engine dask: Parquet rows per partition (whole "
                                                    "row groups; each CSV file is one partition)")] = 1_000_000,
) -> None:
    """Score every row: append score, verdict, reasons, matched feeds and error, in input order.

    Rows in = rows out: a row that cannot be read or scored gets an error instead of a score."""
    import itertools
    import os
    import sys
    from contextlib import ExitStack

    from cybersentinel.core.files import EVALUATION_RECORD, ModelIntegrityError, exit_on_sigterm
    from cybersentinel.features.lexical import FeatureDefinitionError
    from cybersentinel.scoring.batch import INPUT_FORMATS, OUTPUT_FORMATS, BatchWriter, format_from_name, score_batches
    from cybersentinel.scoring.detector import Detector
    from cybersentinel.scoring.policy import read_site_list

    for value, allowed, hint in ((input_format, INPUT_FORMATS, "--input-format"),
                                 (output_format, OUTPUT_FORMATS, "--output-format")):
        if value is not None and value not in allowed:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(allowed)}", param_hint=hint)
    if engine not in ("local", "dask"):
        raise typer.BadParameter(f"{engine!r} is not one of local, dask", param_hint="--engine")
    if engine == "local":
        # a URI (s3://, https://) is for --engine dask; locally `s3://key:secret@b/x` was a folder named so
        for value, hint in ((input, "--input"), (output, "--output")):
            if _URI.match(value):
                raise typer.BadParameter(f"{_shown(value)}: a URI; the local engine reads and writes files (give a "
                                         "path, or --engine dask for s3:// and other remote storage)", param_hint=hint)
        if input != "-" and (problem := _not_readable(Path(input))):
            raise typer.BadParameter(f"{_shown(input)}: {problem}", param_hint="--input")
        if input != "-" and output != "-" and Path(input).resolve() == Path(output).resolve():
            raise typer.BadParameter(f"{_shown(output)} is the input: write the output to another file",
                                     param_hint="--output")
    if band is not None and band >= 1.0:  # the option's range is closed; a band of 1 would cover every score
        raise typer.BadParameter(f"a band of {band:g} leaves no score `benign`: give a width below 1",
                                 param_hint="--band")
    check_model_json(model_dir)
    try:
        detector = Detector.from_dir(model_dir, model_sha256, EVALUATION_RECORD)
    except (FileNotFoundError, KeyError, FeatureDefinitionError, ModelIntegrityError) as exc:
        raise typer.BadParameter(f"cannot load the model: {exc}", param_hint="--model-dir") from exc
    if band is not None:
        detector = detector.with_band(band)
    intel = None
    feeds = feeds_dir_or_alias(feeds, feeds_alias)
    feeds = None if no_feeds else feeds or (Path("data/feeds") if Path("data/feeds").is_dir() else None)
    if feeds is not None:
        from cybersentinel.intel.feeds import FeedError, IntelIndex

        try:
            intel = IntelIndex.from_dir(feeds)
        except (FeedError, OSError) as exc:
            raise typer.BadParameter(f"cannot read the feeds: {exc}", param_hint="--feeds-dir") from exc
    try:
        allow = read_site_list(allow_files or [], allow_names or [], "allowlist")
        block = read_site_list(block_files or [], [], "local block list")
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--allow-file/--block-file") from exc
    allow, block = with_feedback(allow, block, feedback, feedback_db)
    if engine == "dask":
        _predict_dask(input, output, model_dir, column, (intel, allow, block), band, reasons, chunk_size,
                      rows_per_partition, scheduler, workers or os.cpu_count() or 1, storage_options)
        return
    decider = detector.decider(intel, allow, block)
    out_format = output_format or (format_from_name(output, OUTPUT_FORMATS) if output != "-" else None)
    if out_format is None and output != "-" and Path(output).suffix:
        raise typer.BadParameter(f"{Path(output).suffix}: not an output format; name the file .csv, .parquet or "
                                 ".jsonl, or give --output-format", param_hint="--output")
    out_format = out_format or "csv"
    rows = errors = 0
    # SIGTERM (kill, timeout, docker stop) unwinds as Ctrl-C does: the workers stop, the temporary output goes
    with exit_on_sigterm(), ExitStack() as stack:
        stream = sys.stdin.buffer if input == "-" else stack.enter_context(open(input, "rb"))  # noqa: SIM115
        try:  # the first batch is read before the output is opened: a bad header, column or encoding writes nothing
            batches = _input_batches(stream, input, input_format, column, chunk_size)
            first = next(batches, None)
        except (ValueError, UnicodeDecodeError, OSError) as exc:
            raise typer.BadParameter(f"{_shown(input)}: {exc}", param_hint="--input") from exc
        batches = itertools.chain([first] if first is not None else [], batches)
        sink = stack.enter_context(_output_sink(output))
        writer = BatchWriter(sink, out_format)
        bar = _progress(stack, sys.stderr.isatty() if progress is None else progress, input)
        # closed first on any way out, so the scoring processes end before the temporary output is removed
        tables = stack.enter_context(closing(_input_errors(
            score_batches(batches, detector, decider, reasons, workers or os.cpu_count() or 1), input)))
        schema = None
        for table in tables:
            schema = table.schema
            writer.write(table)
            rows += table.num_rows
            errors += _error_rows(table)
            bar(rows, stream)
        writer.close(schema)
    typer.echo(_summary(rows, errors, output), err=True)


@contextmanager
def _output_sink(output: str) -> Iterator[BinaryIO]:
    """The output to write: standard output, or a temporary file renamed onto ``output`` if the block succeeds.
    An error making, writing or closing it is `_output_errors`' one line naming ``output``. Errors reading the
    input reach here already as `typer.BadParameter` (`_input_errors`)."""
    import sys

    from cybersentinel.core.files import atomic_path

    with _output_errors(output):
        if output == "-":
            yield sys.stdout.buffer
            return
        with atomic_path(output) as target, open(target, "wb") as sink:
            yield sink


def _error_rows(table: pa.Table) -> int:
    import pyarrow.compute as pc

    return pc.sum(pc.not_equal(table["error"], "")).as_py() or 0


def _summary(rows: int, errors: int, output: str) -> str:
    """What was written; rows that got an error instead of a score are counted apart, so they are not missed."""
    with_errors = f", {errors:,} of them with an error" if errors else ""
    return f"scored {rows:,} rows{with_errors} -> {_shown(output) if output != '-' else 'standard output'}"


def _not_readable(path: Path) -> str | None:
    """Why ``path`` cannot be read as the input, or None: any path that exists and is not a folder can be (a file,
    a FIFO, a process substitution's /dev/fd/63, a device), though `Path.is_file` holds only for the first."""
    if path.is_dir():
        return "a folder, not a file"
    return None if path.exists() else "no such file"


def _input_batches(stream: BinaryIO, input: str, input_format: str | None, column: str, chunk_size: int
                   ) -> Iterator:
    """The input's batches, in the format given, else named by the file's extension, else sniffed from its first
    bytes (Parquet's magic, a CSV header, a JSON object). Compressed input (whatever its name) and text or CSV in
    UTF-16 are refused; Parquet from a stream that cannot seek (standard input, a pipe) is read into memory, as
    Parquet needs random access."""
    from cybersentinel.scoring.batch import (
        INPUT_FORMATS,
        format_from_name,
        read_csv,
        read_head,
        read_jsonl,
        read_parquet,
        read_text,
        refuse_compressed,
        refuse_utf16,
        sniff_format,
    )

    head, stream = read_head(stream)
    refuse_compressed(head)
    in_format = (input_format or (format_from_name(input, INPUT_FORMATS) if input != "-" else None)
                 or sniff_format(head, column))
    if in_format == "parquet":
        return read_parquet(_seekable(stream, input), column, chunk_size)
    refuse_utf16(head)
    readers = {"csv": read_csv, "jsonl": read_jsonl}
    return readers[in_format](stream, column, chunk_size) if in_format in readers else read_text(stream, chunk_size)


def _seekable(stream: BinaryIO, input: str) -> BinaryIO | pa.BufferReader:
    if input != "-" and stream.seekable():
        return stream
    import pyarrow as pa

    return pa.BufferReader(stream.read())


def _input_errors(tables: Iterator[pa.Table], input: str) -> Iterator[pa.Table]:
    """``tables``, an error reading the input as one line naming --input (an error writing is not raised here)."""
    try:
        yield from tables
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise typer.BadParameter(f"{input}: {exc}", param_hint="--input") from exc


@contextmanager
def _output_errors(output: str) -> Iterator[None]:
    """An error making or writing the output file as the command line's one line naming its path (status 2),
    never the input nor the temporary file beside it; on standard output, a bad --output. A reader that left a
    pipe (``| head -1``) is left to Click: it ends quietly with status 1, as the CLI-wide handler does."""
    import errno

    try:
        yield
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            raise
        if output == "-":
            raise typer.BadParameter(f"cannot write the output: {exc}", param_hint="--output") from exc
        # the command line's one line (`app.os_error_text`), naming the output, never its temporary file
        raise OSError(exc.errno, exc.strerror or str(exc), output) from None


def _predict_dask(input: str, output: str, model_dir: Path, column: str, decider_inputs: tuple, band: float | None,
                  reasons: bool, chunk_size: int, rows_per_partition: int, scheduler: str | None, workers: int,
                  storage_options: str | None) -> None:
    """`predict --engine dask`: Dask is imported only here, so the default start-up stays light."""
    import json

    if input == "-" or output == "-":
        raise typer.BadParameter("--engine dask reads files and writes a folder, not standard input or output",
                                 param_hint="--input/--output")
    try:
        options = json.loads(storage_options) if storage_options else {}
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="--storage-options") from exc
    if not isinstance(options, dict):
        raise typer.BadParameter("a JSON object is expected", param_hint="--storage-options")
    try:
        from cybersentinel.model.distributed import DistributedError, close, connect
        from cybersentinel.ops.distributed import score_distributed
    except ImportError as exc:
        raise typer.BadParameter(f"Dask is not installed ({exc}): pip install -e .[dask]",
                                 param_hint="--engine") from exc
    try:
        client, name = connect(scheduler, workers)
    except (DistributedError, OSError) as exc:
        raise typer.BadParameter(f"cannot reach the cluster: {exc}", param_hint="--scheduler") from exc
    try:
        manifest = score_distributed(input, output, model_dir=model_dir, client=client, scheduler_name=name,
                                     column=column, decider_inputs=decider_inputs, band=band, reasons=reasons,
                                     chunk_size=chunk_size, rows_per_piece=rows_per_partition,
                                     storage_options=options)
    except (DistributedError, ValueError, OSError) as exc:
        raise typer.BadParameter(f"{_shown(input)}: {exc}", param_hint="--input") from exc
    finally:
        close(client)
    typer.echo(f"scored {manifest['output_rows']:,} rows in {manifest['partitions']} partitions on {name} -> "
               f"{_shown(output)}", err=True)


def _progress(stack, show: bool, source: str):
    """``update(rows, stream)`` for a rich progress bar on standard error (by bytes read), or a no-op."""
    if not show:
        return lambda rows, stream: None
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    total = Path(source).stat().st_size if source != "-" else None
    columns = (TextColumn("scoring"), BarColumn(), TextColumn("{task.fields[rows]:,} rows"), TransferSpeedColumn(),
               TimeRemainingColumn())
    progress = stack.enter_context(Progress(*columns, transient=True, console=Console(stderr=True)))
    task = progress.add_task("score", total=total, rows=0)

    def update(rows: int, stream) -> None:
        progress.update(task, completed=stream.tell() if total and hasattr(stream, "tell") else None, rows=rows)

    return update


def _shown(path: str) -> str:
    """A path or URI as a message shows it: its user-info hidden, a password with blanks too (the argument is one
    URI, so all of its user-info is known: `mask_password` finds it, `redact` hides it)."""
    from cybersentinel.core.redact import mask_password, redact

    return redact(mask_password(path))
