"""``--resume`` through the real recipe CLI on tiny synthetic data: a changed run is refused with the fields
that differ (or continued with ``--allow-config-change``, recording both configs), and broken checkpoint
files give one clear error naming the file."""

from __future__ import annotations

import io
import json
import os

import pytest
import torch

from mi_augment.ssl.train import CheckpointError, ResumeConfigError

from .test_recipes import load_recipe, run_recipe

COMMON = ["--backbone", "small_cnn", "--train-subset", "32", "--cnn-width", "8"]


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """A run stopped after 2 of its 4 steps, its checkpoint at step 2 (copied per test)."""
    out = tmp_path_factory.mktemp("killed")
    assert run_recipe("simclr", out, *COMMON, "--stop-after", "2", "--checkpoint-every", "1") == {}
    return (out / "checkpoint.pt").read_bytes()


@pytest.fixture
def out(tmp_path, killed):
    (tmp_path / "checkpoint.pt").write_bytes(killed)
    return tmp_path


@pytest.mark.parametrize("change,field,old,new", [
    (["--batch-size", "16"], "batch_size", 8, 16),
    (["--augment", "natural"], "augment", "baseline", "natural"),
    (["--lr", "5.0"], "lr", 0.3, 5.0),
    (["--seed", "1"], "seed", 0, 1),
])
def test_resume_refuses_a_changed_setting_and_names_it(out, change, field, old, new):
    with pytest.raises(ResumeConfigError, match=f"{field}: {old!r} -> {new!r}") as info:
        run_recipe("simclr", out, *COMMON, *change, "--resume")
    assert str(out / "checkpoint.pt") in str(info.value)
    assert info.value.fields == {field: (old, new)}
    assert not (out / "results.json").exists()


def test_resume_lists_every_differing_field(out):
    with pytest.raises(ResumeConfigError) as info:
        run_recipe("simclr", out, *COMMON, "--lr", "0.5", "--weight-decay", "0.1", "--resume")
    assert set(info.value.fields) == {"lr", "weight_decay"}
    assert "--allow-config-change lr weight_decay" in str(info.value)


def test_resume_ignores_settings_that_do_not_change_the_run(out):
    result = run_recipe("simclr", out, *COMMON, "--resume", "--checkpoint-every", "7", "--workers", "0")
    assert result["steps"] == 4
    assert "config_changes" not in result and "config_changes" not in json.loads((out / "results.json").read_text())


def test_allowed_change_continues_and_results_record_both_configs(out):
    result = run_recipe("simclr", out, *COMMON, "--lr", "0.1", "--resume", "--allow-config-change", "lr")
    on_disk = json.loads((out / "results.json").read_text())
    assert result["steps"] == on_disk["steps"] == 4
    assert on_disk["config"]["lr"] == 0.1 and on_disk["initial_config"]["lr"] == 0.3
    (change,) = on_disk["config_changes"]
    assert change["at_step"] == 2 and change["changed"] == {"lr": [0.3, 0.1]}
    assert change["previous"]["lr"] == 0.3


def test_allowing_one_field_still_refuses_another(out):
    with pytest.raises(ResumeConfigError) as info:
        run_recipe("simclr", out, *COMMON, "--lr", "0.1", "--seed", "3", "--resume", "--allow-config-change", "lr")
    assert set(info.value.fields) == {"seed"}


def test_help_documents_the_override():
    parser_help = io.StringIO()
    recipe = load_recipe("simclr")
    with pytest.raises(SystemExit) as exit_info:
        import contextlib

        with contextlib.redirect_stdout(parser_help):
            recipe.main(["--help"])
    assert exit_info.value.code == 0
    assert "--allow-config-change" in parser_help.getvalue()


def _saved(ckpt: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(ckpt, buffer)
    return buffer.getvalue()


def _mutate(killed: bytes, edit) -> bytes:
    ckpt = torch.load(io.BytesIO(killed), weights_only=True)
    edit(ckpt)
    return _saved(ckpt)


def _set_step(value):
    return lambda c: c["state"].__setitem__("step", value)


BROKEN = {
    "empty": (lambda k: b"", "not a readable checkpoint"),
    "random bytes": (lambda k: os.urandom(4096), "not a readable checkpoint"),
    "truncated": (lambda k: k[: len(k) // 2], "not a readable checkpoint"),
    "not a dict": (lambda k: _saved([1, 2, 3]), "expected a dict"),
    "model missing": (lambda k: _mutate(k, lambda c: c.pop("model")), "missing key 'model'"),
    "state missing": (lambda k: _mutate(k, lambda c: c.pop("state")), "missing key 'state'"),
    "step missing": (lambda k: _mutate(k, lambda c: c["state"].pop("step")), "missing key 'state.step'"),
    "step huge": (lambda k: _mutate(k, _set_step(10**6)), r"state\.step' must be an int in \[0"),
    "step negative": (lambda k: _mutate(k, _set_step(-5)), r"state\.step' must be an int in \[0"),
    "step float": (lambda k: _mutate(k, _set_step(2.0)), r"state\.step' must be an int"),
    "step string": (lambda k: _mutate(k, _set_step("2")), r"state\.step' must be an int"),
    "state a list": (lambda k: _mutate(k, lambda c: c.__setitem__("state", [2])), "'state' must be a dict"),
    "total_steps string": (lambda k: _mutate(k, lambda c: c.__setitem__("total_steps", "4")), "'total_steps' must"),
    "losses not numbers": (lambda k: _mutate(k, lambda c: c["state"].__setitem__("epoch_losses", ["x"])),
                           "epoch_losses"),
    "wrong weights": (lambda k: _mutate(k, lambda c: c.__setitem__("model", {"w": torch.zeros(2)})),
                      "does not fit this run's model"),
    "pickled code": (lambda k: _pickled_object(), "not a readable checkpoint"),
}


def _pickled_object() -> bytes:
    buffer = io.BytesIO()
    torch.save({"bad": object()}, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_checkpoint_gives_one_clear_error_naming_the_file(out, killed, case):
    make, message = BROKEN[case]
    path = out / "checkpoint.pt"
    path.write_bytes(make(killed))
    with pytest.raises(CheckpointError, match=message) as info:
        run_recipe("simclr", out, *COMMON, "--resume")
    assert str(path) in str(info.value)


def test_a_checkpoint_written_before_the_model_file_flags_resumes(out, killed):
    """Checkpoints from before --illumination-model / --motion-model lack those fields; they ran the shipped
    models, so resuming with the defaults is the same run."""
    def drop(ckpt):
        for field in ("illumination_model", "motion_model"):
            ckpt["config"].pop(field)

    (out / "checkpoint.pt").write_bytes(_mutate(killed, drop))
    assert run_recipe("simclr", out, *COMMON, "--resume")["steps"] == 4
    (out / "checkpoint.pt").write_bytes(_mutate(killed, drop))
    from mi_augment.perturbations import IlluminationModel

    refit = IlluminationModel.uniform().save(out / "refit.json")
    with pytest.raises(ResumeConfigError, match="illumination_model: 'default' -> "):
        run_recipe("simclr", out, *COMMON, "--resume", "--illumination-model", str(refit))


def test_a_changed_resume_keeps_new_buffers_fresh_and_still_refuses_a_missing_parameter():
    """load_model_state with a config change: a module the change adds keeps its initial buffers (an empty
    support queue when MI neighbours start from a baseline checkpoint); a missing weight is still an error."""
    from torch import nn

    from mi_augment.ssl.train.loop import load_model_state

    base = nn.Sequential(nn.Linear(3, 2))
    grown = nn.Sequential(nn.Linear(3, 2))
    grown.register_buffer("queue", torch.full((4,), -1.0))
    state = base.state_dict()
    assert load_model_state(grown, state, new_buffers=True) == ["queue"]
    assert torch.equal(grown[0].weight, base[0].weight) and torch.equal(grown.queue, torch.full((4,), -1.0))
    with pytest.raises(RuntimeError, match="queue"):
        load_model_state(grown, state)  # an unchanged resume takes the checkpoint as it is
    with pytest.raises(RuntimeError, match="missing keys"):
        load_model_state(grown, {"0.weight": state["0.weight"]}, new_buffers=True)
