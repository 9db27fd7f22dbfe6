"""Where the project keeps its local state (git-ignored): embedded warehouse, Airflow home."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SQL_DIR = PROJECT_ROOT / "include" / "sql"


def local_dir() -> Path:
    """The git-ignored folder for local state; ``MSADS_HOME`` moves it (tests use this)."""
    from include.msads_capi.settings import load

    return load().home


def display(path: Path) -> str:
    """A path as people should read it: relative to the project when inside it."""
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)
