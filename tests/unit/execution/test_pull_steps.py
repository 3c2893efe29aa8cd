from __future__ import annotations

from pathlib import PurePosixPath

import pytest
import yaml

from flowyard.execution import steps
from flowyard.execution.steps import (
    GitCloneStep,
    PipInstallRequirementsStep,
    PullStepError,
    SecretReference,
    SetWorkingDirectoryStep,
    parse_pull_steps,
)

PREFECT_YAML = """
pull:
  - prefect.deployments.steps.git_clone:
      id: clone-step
      repository: https://github.com/acme/{{ $REPO_NAME }}.git
      branch: main
      credentials: "{{ prefect.blocks.github-credentials.acme }}"
  - prefect.deployments.steps.pip_install_requirements:
      directory: "{{ clone-step.directory }}"
      requirements_file: requirements.txt
      stream_output: false
  - prefect.deployments.steps.set_working_directory:
      directory: "{{ clone-step.directory }}/flows"
"""


def test_an_existing_prefect_yaml_pull_section_is_accepted_as_is() -> None:
    plan = parse_pull_steps(yaml.safe_load(PREFECT_YAML)["pull"], env={"REPO_NAME": "etl"})
    assert plan.clone == GitCloneStep(
        repository="https://github.com/acme/etl.git",
        branch="main",
        credentials=SecretReference("github-credentials", "acme"),
        step_id="clone-step",
    )
    assert plan.requirements_files == (PurePosixPath("requirements.txt"),)
    assert plan.working_directory == PurePosixPath("flows")


@pytest.mark.parametrize(
    "name",
    [
        "flowyard.deployments.steps.set_working_directory",
        "prefect.deployments.steps.set_working_directory",
        "prefect.deployments.steps.pull.set_working_directory",
        "set_working_directory",
    ],
)
def test_every_spelling_of_a_known_step_resolves_to_it(name: str) -> None:
    plan = parse_pull_steps([{name: {"directory": "src"}}])
    assert plan.steps == (SetWorkingDirectoryStep(PurePosixPath("src")),)


def test_an_unknown_step_is_named_and_the_known_ones_listed() -> None:
    with pytest.raises(PullStepError) as caught:
        parse_pull_steps([{"prefect.deployments.steps.run_shell_script": {"script": "rm -rf /"}}])
    message = str(caught.value)
    assert "'prefect.deployments.steps.run_shell_script'" in message
    assert "flowyard.deployments.steps.git_clone" in message
    assert "flowyard.deployments.steps.pip_install_requirements" in message


def test_a_dotted_path_to_arbitrary_code_is_never_imported() -> None:
    with pytest.raises(PullStepError, match=r"unknown pull step 'os\.system'"):
        parse_pull_steps([{"os.system": {"command": "true"}}])


def test_known_step_names_cover_all_prefixes() -> None:
    names = steps.known_step_names()
    assert "prefect.deployments.steps.git_clone" in names
    assert "flowyard.deployments.steps.pip_install_requirements" in names
    assert "git_clone" in names


def test_an_unset_environment_variable_is_named() -> None:
    with pytest.raises(PullStepError, match=r"pull step 1 \(git_clone\): 'branch': .*\$BRANCH"):
        parse_pull_steps(
            [{"git_clone": {"repository": "https://h/r.git", "branch": "{{ $BRANCH }}"}}]
        )


def test_a_commit_pin_is_the_ref_to_resolve() -> None:
    plan = parse_pull_steps(
        [{"git_clone": {"repository": "https://h/r.git", "commit_sha": "{{ $SHA }}"}}],
        env={"SHA": "0123456789abcdef0123456789abcdef01234567"},
    )
    assert plan.clone is not None
    assert plan.clone.ref == "0123456789abcdef0123456789abcdef01234567"


def test_branch_and_commit_together_are_refused() -> None:
    with pytest.raises(PullStepError, match="either 'branch' or 'commit_sha'"):
        parse_pull_steps([{"git_clone": {"repository": "r", "branch": "b", "commit_sha": "c"}}])


def test_an_access_token_may_be_a_secret_reference_or_a_literal() -> None:
    referenced = parse_pull_steps(
        [{"git_clone": {"repository": "r", "access_token": "{{ prefect.blocks.secret.gh }}"}}]
    ).clone
    literal = parse_pull_steps([{"git_clone": {"repository": "r", "access_token": "tok-1"}}]).clone
    assert referenced is not None
    assert literal is not None
    assert referenced.credentials == SecretReference("secret", "gh")
    assert literal.access_token == "tok-1"
    assert "tok-1" not in repr(literal)


def test_flowyard_secret_references_are_understood() -> None:
    clone = parse_pull_steps(
        [{"git_clone": {"repository": "r", "credentials": "{{ flowyard.secrets.deploy-key }}"}}]
    ).clone
    assert clone is not None
    assert clone.credentials == SecretReference("secret", "deploy-key")


def test_credentials_must_be_a_reference_not_a_literal() -> None:
    with pytest.raises(PullStepError, match="'credentials' must reference a secret"):
        parse_pull_steps([{"git_clone": {"repository": "r", "credentials": "plain"}}])


def test_requirements_default_to_requirements_txt_in_the_current_directory() -> None:
    plan = parse_pull_steps(
        [{"set_working_directory": {"directory": "app"}}, {"pip_install_requirements": None}]
    )
    assert plan.requirements_files == (PurePosixPath("app/requirements.txt"),)


def test_a_step_output_reference_anchors_at_the_step_not_the_current_directory() -> None:
    plan = parse_pull_steps(
        [
            {"git_clone": {"id": "c", "repository": "r"}},
            {"set_working_directory": {"directory": "deep/inside"}},
            {"pip_install_requirements": {"directory": "{{ c.directory }}/deps"}},
        ]
    )
    assert plan.requirements_files == (PurePosixPath("deps/requirements.txt"),)
    assert plan.working_directory == PurePosixPath("deep/inside")


def test_a_later_clone_makes_the_code_root_the_working_directory_again() -> None:
    plan = parse_pull_steps(
        [{"set_working_directory": {"directory": "x"}}, {"git_clone": {"repository": "r"}}]
    )
    assert plan.working_directory == PurePosixPath(".")


@pytest.mark.parametrize(
    ("directory", "reason"),
    [
        ("/opt/prefect/flows", "is absolute"),
        ("../elsewhere", "climbs out"),
        ("a/../../b", "climbs out"),
    ],
)
def test_directories_outside_the_code_are_refused(directory: str, reason: str) -> None:
    with pytest.raises(PullStepError, match=reason):
        parse_pull_steps([{"set_working_directory": {"directory": directory}}])


def test_a_reference_to_a_later_or_unknown_step_is_refused() -> None:
    with pytest.raises(PullStepError, match="'later', which is not an earlier step's id"):
        parse_pull_steps(
            [
                {"set_working_directory": {"directory": "{{ later.directory }}"}},
                {"git_clone": {"id": "later", "repository": "r"}},
            ]
        )


def test_a_run_time_output_cannot_be_used_as_a_path() -> None:
    with pytest.raises(PullStepError, match="only known at run time"):
        parse_pull_steps(
            [
                {"pip_install_requirements": {"id": "pip"}},
                {"set_working_directory": {"directory": "{{ pip.stdout }}"}},
            ]
        )


def test_unsupported_templates_are_refused_by_name() -> None:
    with pytest.raises(PullStepError, match=r"prefect\.variables\.branch"):
        parse_pull_steps(
            [{"git_clone": {"repository": "r", "branch": "{{ prefect.variables.branch }}"}}]
        )


def test_unknown_parameters_are_named_with_the_accepted_ones() -> None:
    with pytest.raises(
        PullStepError, match=r"unknown parameter\(s\) script; accepted: directory, id"
    ):
        parse_pull_steps([{"set_working_directory": {"directory": "x", "script": "y"}}])


def test_submodules_are_refused_rather_than_silently_skipped() -> None:
    with pytest.raises(PullStepError, match="include_submodules"):
        parse_pull_steps([{"git_clone": {"repository": "r", "include_submodules": True}}])


def test_only_one_clone_is_allowed() -> None:
    with pytest.raises(PullStepError, match="only one git_clone"):
        parse_pull_steps([{"git_clone": {"repository": "a"}}, {"git_clone": {"repository": "b"}}])


def test_duplicate_step_ids_are_refused() -> None:
    with pytest.raises(PullStepError, match="'x' is used twice"):
        parse_pull_steps(
            [
                {"git_clone": {"id": "x", "repository": "a"}},
                {"set_working_directory": {"id": "x", "directory": "d"}},
            ]
        )


@pytest.mark.parametrize("item", [{}, {"a": {}, "b": {}}, "git_clone"])
def test_a_step_must_be_a_single_named_mapping(item: object) -> None:
    with pytest.raises(PullStepError, match="exactly one step name"):
        parse_pull_steps([item])  # type: ignore[list-item]


def test_no_pull_section_is_an_empty_plan_rooted_at_the_code() -> None:
    plan = parse_pull_steps(None)
    assert plan.steps == ()
    assert plan.clone is None
    assert plan.working_directory == PurePosixPath(".")


def test_pip_step_parses_into_its_dataclass() -> None:
    plan = parse_pull_steps([{"pip_install_requirements": {"requirements_file": "reqs/prod.txt"}}])
    assert plan.steps == (PipInstallRequirementsStep(PurePosixPath("reqs/prod.txt")),)
