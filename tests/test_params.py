from pathlib import Path

import pytest

from sail.params import (
    PROFILES,
    ParameterError,
    boolean,
    check_parameters,
    existing_path,
    fraction,
    non_negative_int,
    one_of,
    path_or_empty,
    positive_float,
    positive_int,
)


def test_valid_parameters_come_back_as_a_namespace(tmp_path):
    p = check_parameters(
        "tiny",
        lm_steps=(20, positive_int),
        warmup=(0, non_negative_int),
        lr=(3e-4, positive_float),
        keep=(0.5, fraction),
        engine=("hf", one_of("hf", "lmdeploy")),
        data=(str(tmp_path), existing_path),
        checkpoint=("", path_or_empty),
        train_vision=(False, boolean),
    )
    assert (p.profile, p.lm_steps, p.lr, p.engine, p.checkpoint, p.train_vision) == ("tiny", 20, 3e-4, "hf", "", False)


def test_every_bad_parameter_is_named_in_one_error():
    with pytest.raises(ParameterError) as err:
        check_parameters(
            "huge",
            lm_steps=(-3, positive_int),
            keep=(0.5, fraction),
            lr=(0, positive_float),
            train_vision=("no", boolean),
        )
    assert str(err.value) == (
        "bad notebook parameters: lm_steps=-3 (expected a positive integer); "
        "lr=0 (expected a positive number); "
        "train_vision='no' (expected True or False); "
        "profile='huge' (expected one of tiny, small, full)"
    )


def test_parameter_error_is_a_value_error():
    assert issubclass(ParameterError, ValueError)


@pytest.mark.parametrize("profile", PROFILES)
def test_known_profiles_pass(profile):
    assert check_parameters(profile).profile == profile


@pytest.mark.parametrize(
    "rule, good, bad",
    [
        (positive_int, [1, 10**9], [0, -1, 1.0, True, "3", None]),
        (non_negative_int, [0, 5], [-1, 0.0, False]),
        (positive_float, [1e-8, 2, 0.5], [0, -0.1, float("inf"), float("nan"), True, "1e-4"]),
        (fraction, [0, 0.0, 0.3, 1], [-0.01, 1.01, float("nan"), "0.5"]),
        (one_of("hf", "lmdeploy"), ["hf", "lmdeploy"], ["HF", "", None]),
    ],
)
def test_rules(rule, good, bad):
    assert all(rule.accepts(v) for v in good)
    assert not any(rule.accepts(v) for v in bad)


def test_path_rules(tmp_path):
    missing = tmp_path / "nope"
    assert existing_path.accepts(tmp_path) and existing_path.accepts(str(tmp_path))
    assert not existing_path.accepts(missing) and not existing_path.accepts("")
    assert path_or_empty.accepts("") and path_or_empty.accepts(None) and path_or_empty.accepts(tmp_path)
    assert not path_or_empty.accepts(str(missing))


def test_missing_path_message_shows_the_path():
    placeholder = "/path/to/InternViT-300M-448px"
    with pytest.raises(ParameterError, match=rf"vision_checkpoint='{placeholder}' \(expected an existing path"):
        check_parameters("small", vision_checkpoint=(placeholder, path_or_empty))


def test_relative_paths_are_checked_from_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    assert check_parameters("tiny", data=("data", existing_path)).data == "data"
    assert not existing_path.accepts(Path("../" + tmp_path.name + "/missing"))
