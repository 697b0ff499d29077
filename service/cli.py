"""Command line: `activelabel serve` and `activelabel demo`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from service.core.settings import get_settings

app = typer.Typer(
    help="Active-learning labeling with Label Studio.", no_args_is_help=True, add_completion=False
)


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Run the HTTP API (configured by ACTIVELABEL_* variables)."""
    import uvicorn

    from service.api.app import create_app

    logging.basicConfig(level=log_level.upper())
    uvicorn.run(create_app(get_settings()), host=host, port=port, log_level=log_level)


@app.command()
def demo(
    images: Annotated[
        int, typer.Option(min=50, max=60000, help="Fashion-MNIST images in the pool")
    ] = 3000,
    k: Annotated[int, typer.Option(min=1, max=1000, help="images chosen for the round")] = 20,
    seed_per_class: Annotated[int, typer.Option(min=1, max=100, help="seed labels per class")] = 5,
    data_dir: Annotated[Path, typer.Option(help="where the demo keeps its state")] = Path(".demo"),
    port: Annotated[int, typer.Option(help="service port (0 = any free port)")] = 8000,
    label_studio_port: Annotated[
        int, typer.Option(help="Label Studio port (0 = any free port)")
    ] = 8080,
    wait: Annotated[bool, typer.Option(help="stay up until interrupted")] = True,
) -> None:
    """One round on Fashion-MNIST: local Label Studio, seeded model, top-K pushed."""
    from service.demo import DemoOptions, run_demo

    logging.basicConfig(level=logging.WARNING)
    run_demo(
        DemoOptions(
            images=images,
            k=k,
            seed_per_class=seed_per_class,
            data_dir=data_dir,
            port=port,
            label_studio_port=label_studio_port,
            wait=wait,
        ),
        get_settings(),
    )


if __name__ == "__main__":
    app()
