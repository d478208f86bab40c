"""launchml package docker --out never replaces files it did not write: a file, a folder
with other files (a project, a run folder holding model/) or a context holding the package
itself is refused before anything is deleted."""

from __future__ import annotations

import pytest

from launchml.deploy.docker import MARKER, _check_out, write_context
from launchml.errors import PackageError


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from sklearn.datasets import load_iris

    import launchml

    root = tmp_path_factory.mktemp("dockerout")
    load_iris(as_frame=True).frame.to_csv(root / "iris.csv", index=False)
    return launchml.fit(root / "iris.csv", target="target", model="linear", name="iris",
                        output_dir=str(root / "runs")).dir.root


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


@pytest.mark.slow  # trains a small model (about 7 s on a loaded machine)
def test_a_run_folder_is_refused_and_keeps_its_package(run_dir):
    before = _files(run_dir)
    with pytest.raises(PackageError, match="other files"):
        write_context(run_dir / "model", run_dir)
    assert _files(run_dir) == before  # model/ still holds the package


@pytest.mark.slow
def test_a_project_folder_and_a_file_are_refused(run_dir, tmp_path):
    (tmp_path / "README.md").write_text("my project\n")
    with pytest.raises(PackageError, match="other files"):
        write_context(run_dir / "model", tmp_path)
    assert (tmp_path / "README.md").read_text() == "my project\n"
    with pytest.raises(PackageError, match="is a file"):
        write_context(run_dir / "model", tmp_path / "README.md")


def test_an_earlier_context_is_reused_unless_it_holds_the_package(tmp_path):
    package = tmp_path / "runs" / "iris" / "model"
    context = tmp_path / "docker-iris"
    context.mkdir()
    (context / "Dockerfile").write_text(f"{MARKER}; only what serving imports\n")
    _check_out(context, package)  # rebuilt in place
    _check_out(tmp_path / "new", package)
    (context / "model").mkdir()
    with pytest.raises(PackageError, match="inside the build context"):
        _check_out(context, context / "model")
