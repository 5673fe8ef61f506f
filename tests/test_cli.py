"""Tools print user errors as one line and let every other exception keep its traceback."""
import pytest

from segattn.cli import run
from segattn.configure import load_tool_config
from segattn.errors import CheckpointError, ConfigError, SegattnError


def test_user_error_is_one_line(capsys):
    def main(argv):
        raise CheckpointError("x.pth: not a readable checkpoint")

    with pytest.raises(SystemExit) as exit_:
        run(main, [])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "error: x.pth: not a readable checkpoint\n"


@pytest.mark.parametrize("exc", [RuntimeError("CUDA out of memory"), ValueError("shape bug"), OSError("disk")])
def test_other_errors_keep_their_traceback(exc):
    def main(argv):
        raise exc

    with pytest.raises(type(exc)):
        run(main, [])


def test_debug_shows_the_traceback_of_a_user_error():
    def main(argv):
        raise ConfigError("bad")

    with pytest.raises(ConfigError):
        run(main, ["--debug"])


def test_tool_config_checks_head_options_against_the_registry(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  head: {type: ccnet, recurence: 1}\n")
    with pytest.raises(SegattnError, match=r"c.yaml: model.head: head 'ccnet' has no option 'recurence'; "
                                           r"did you mean 'recurrence'\?"):
        load_tool_config(str(path))


def test_a_wrong_override_is_the_command_line_s_mistake_not_the_file_s(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  head: {type: ccnet}\n")
    with pytest.raises(SegattnError, match=r"^command line: model.head: head 'ccnet' has no option 'recurence'"):
        load_tool_config(str(path), ["model.head.recurence=1"])
    path.write_text("model:\n  head: {type: ccnet, recurence: 1}\n")  # the file's own mistake stays the file's
    with pytest.raises(SegattnError, match=r"c.yaml: model.head: head 'ccnet' has no option 'recurence'"):
        load_tool_config(str(path), ["train.max_iters=3"])


def test_a_bare_key_names_its_section_and_yaml_errors_their_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  head: {type: ccnet}\n")
    with pytest.raises(SegattnError, match=r"unknown key 'max_iters'; did you mean 'train.max_iters'\?"):
        load_tool_config(str(path), ["max_iters=10"])
    path.write_text("model:\n  head: {type: ccnet\ntrain:\n  max_iters: 5\n")
    with pytest.raises(SegattnError, match=r"c.yaml: not valid YAML: line 3, column 6: did not find expected"):
        load_tool_config(str(path))
