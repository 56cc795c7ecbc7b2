"""The API fuzz cases (tests/api_fuzz.py) on SQLite."""

import itertools
import shutil
from collections.abc import Iterator

import pytest

from api_fuzz import *  # noqa: F403  (the shared cases)
from api_fuzz import Backend, seed_template


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Backend:
    d = tmp_path_factory.mktemp("fuzzdb")
    template = d / "template.db"
    seed_template(f"sqlite:///{template}")
    counter = itertools.count()

    def copy() -> Iterator[str]:
        path = d / f"case{next(counter)}.db"
        shutil.copyfile(template, path)
        try:
            yield f"sqlite:///{path}"
        finally:
            path.unlink(missing_ok=True)

    return Backend(copy)
