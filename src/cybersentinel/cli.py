"""The `cybersentinel` command line. Sub-commands of other modules are registered at the bottom."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="CyberSentinel: detect and block malicious URLs, domains and IP addresses.",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)


@app.callback()
def main() -> None:
    """CyberSentinel command line."""


@app.command()
def predict(
    input: Path = typer.Option(..., "--input", "-i", exists=True, dir_okay=False, help="CSV with a 'url' column"),
    output: Path = typer.Option(..., "--output", "-o", dir_okay=False, help="CSV to write"),
    model_dir: Path = typer.Option(Path("models"), "--model-dir", help="folder with model.json and model.skops"),
    chunk_size: int = typer.Option(50_000, min=1, help="rows scored per chunk (memory stays constant)"),
) -> None:
    """Score every row of INPUT; write it with score, verdict and error columns, in the same order."""
    import pandas as pd

    from cybersentinel.io import atomic_path
    from cybersentinel.models import ModelIntegrityError
    from cybersentinel.scoring import Detector

    try:
        detector = Detector.from_dir(model_dir)
    except (FileNotFoundError, ModelIntegrityError) as exc:
        raise typer.BadParameter(f"cannot load the model: {exc}", param_hint="--model-dir") from exc
    rows = 0
    with atomic_path(output) as tmp:
        try:
            chunks = pd.read_csv(input, chunksize=chunk_size, dtype=str, keep_default_na=False)
            for i, chunk in enumerate(chunks):
                scored = detector.score_frame(chunk)
                scored.to_csv(tmp, mode="w" if i == 0 else "a", header=i == 0, index=False)
                rows += len(scored)
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            raise typer.BadParameter(f"{input}: {exc}", param_hint="--input") from exc
    typer.echo(f"scored {rows:,} rows -> {output}", err=True)

from cybersentinel.intel import feeds_app, intel_app  # noqa: E402

app.add_typer(feeds_app, name="feeds")
app.add_typer(intel_app, name="intel")

from cybersentinel.blocklist import blocklist_app  # noqa: E402

app.add_typer(blocklist_app, name="blocklist")


from cybersentinel.remote import remote_app  # noqa: E402

app.add_typer(remote_app, name="remote")

from cybersentinel.monitor import monitor  # noqa: E402

app.command("monitor")(monitor)

from cybersentinel.service import serve  # noqa: E402

app.command("serve")(serve)

from cybersentinel.etl import etl_app  # noqa: E402

app.add_typer(etl_app, name="etl")
