from __future__ import annotations

import launchml


def test_public_names():
    assert set(launchml.__all__) == {
        "STAGES", "Classifier", "Regressor", "ConfigError", "DataError", "InputError",
        "LaunchmlError", "ModelError",
        "Package", "PackageError", "Predictor", "Run", "RunConfig", "RunError",
        "__version__", "fit", "load", "load_package", "run",
    }
    assert launchml.STAGES == ("prepare", "train", "optimize", "evaluate", "deploy")
    assert issubclass(launchml.ConfigError, ValueError)


def test_run_returns_the_run_and_its_predictor(digits_run):
    assert isinstance(digits_run, launchml.Run)
    assert digits_run.metrics["accuracy"] > 0.8
    assert digits_run.config.name == "digits"
    assert list(digits_run.seconds) == list(launchml.STAGES)
    assert digits_run.predictor.labels == [str(i) for i in range(10)]
    assert (digits_run.dir.config).read_text().startswith("# resolved by launchml")


def test_stages_can_be_rerun_alone(digits_run):
    again = launchml.run(digits_run.config, stages=["evaluate"])
    assert again.metrics["accuracy"] == digits_run.metrics["accuracy"]
