"""Settings -> Jinja2 templates -> config files. Logic lives here, not in the templates."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import jinja2

from callback_api.settings import Settings

# Output file -> template, for every environment.
TEMPLATES: dict[str, str] = {
    "nginx.conf": "nginx.conf.j2",
    "mime.types": "mime.types.j2",
}


def templates_dir_of(settings: Settings) -> Path:
    return Path(__file__).resolve().parent.parent / "templates"


def settings_digest(settings: Settings) -> str:
    """A short hash of everything the render depends on, stamped on each rendered file."""
    return hashlib.sha256(settings.model_dump_json().encode()).hexdigest()[:16]


def _environment(templates_dir: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - the output is an Nginx config, not HTML
        keep_trailing_newline=True,
        trim_blocks=False,
        lstrip_blocks=False,
    )


def render(settings: Settings, templates_dir: Path | None = None) -> dict[str, str]:
    """Render every file of the environment; returns file name -> text."""
    env = _environment(templates_dir or templates_dir_of(settings))
    header = (
        f"# landing: environment {settings.name}, settings {settings_digest(settings)}.\n"
        f"# Rendered by `landing render`; edit the environment file, not this one."
    )
    return {
        name: env.get_template(template).render(s=settings, header=header)
        for name, template in TEMPLATES.items()
    }


def write_rendered(files: dict[str, str], out_dir: Path) -> list[Path]:
    """Write rendered files atomically (temp name, then rename) so Nginx never reads half."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        target = out_dir / name
        scratch = target.with_name(f".{name}.tmp")
        scratch.write_text(text, encoding="utf-8")
        os.replace(scratch, target)
        written.append(target)
    return written
