from __future__ import annotations

from pathlib import Path

import pytest

from flowyard.execution import environments
from flowyard.execution.environments import (
    IndexSettings,
    RequirementError,
    Runtime,
    environment_key,
    normalize_requirement,
    normalize_requirements,
    parse_requirements_text,
)

RUNTIME = Runtime("python3.11", Path("/usr/bin/python3.11"), "3.11.7")


def key(requirements: list[str], **overrides: object) -> str:
    runtime = overrides.get("runtime", RUNTIME)
    index = overrides.get("index", IndexSettings())
    identity = overrides.get("identity", "0.1.0-abc")
    assert isinstance(runtime, Runtime)
    assert isinstance(index, IndexSettings)
    return environment_key(
        runtime, normalize_requirements(requirements), index=index, flowyard_identity=str(identity)
    )


@pytest.mark.parametrize(
    ("written", "normalized"),
    [
        ("Pandas", "pandas"),
        ("  pandas >= 2.0 ", "pandas>=2.0"),
        ("Typing_Extensions==4.*", "typing-extensions==4.*"),
        ("zope.interface", "zope-interface"),
        ("requests[Socks, security] >=2, <3", "requests[security,socks]<3,>=2"),
        ("numpy>=1; python_version  <  '3.12'", "numpy>=1; python_version < '3.12'"),
        ("pkg @ https://example.com/pkg-1.0.tar.gz", "pkg @ https://example.com/pkg-1.0.tar.gz"),
        ("six  # pinned later", "six"),
    ],
)
def test_equivalent_spellings_of_a_requirement_normalize_to_one(
    written: str, normalized: str
) -> None:
    assert normalize_requirement(written) == normalized


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("-r other.txt", "pip options"),
        ("--index-url https://evil.example/simple", "pip options"),
        ("-e .", "pip options"),
        ("./local/package", "not a package requirement"),
        ("/abs/path/pkg.whl", "not a package requirement"),
        ("pkg @ file:///etc/passwd", "file: URLs"),
        ("pkg latest", "not a version specifier"),
        ("pkg==1.0 --hash=sha256:abc", "pip options"),
        ("pkg==1.0:evil", "not a version specifier"),
    ],
)
def test_requirements_that_reach_past_the_index_are_refused_with_the_reason(
    line: str, fragment: str
) -> None:
    with pytest.raises(RequirementError, match=fragment):
        normalize_requirement(line)


def test_requirements_file_text_skips_comments_and_joins_continuations() -> None:
    text = "# tools\nsix==1.17.0\n\nidna \\\n  >=3\nhttpx  # client\n"
    assert parse_requirements_text(text) == ("six==1.17.0", "idna>=3", "httpx")


def test_a_bad_line_in_a_requirements_file_is_reported_with_its_number() -> None:
    with pytest.raises(RequirementError, match=r"reqs.txt, line 3: .*pip options"):
        parse_requirements_text("six\n\n-r base.txt\n", source="reqs.txt")


def test_requirement_order_case_and_duplicates_do_not_change_the_key() -> None:
    assert key(["six", "IDNA>=3"]) == key(["idna >= 3", "six", "Six"])


@pytest.mark.parametrize(
    "change",
    [
        {"runtime": Runtime("python3.11", Path("/usr/bin/python3.11"), "3.11.8")},
        {"runtime": Runtime("python3.12", Path("/usr/bin/python3.11"), "3.11.7")},
        {"identity": "0.2.0-abc"},
        {"index": IndexSettings(index_url="https://pypi.internal/simple")},
        {"index": IndexSettings(extra_index_urls=("https://extra.internal/simple",))},
    ],
)
def test_runtime_flowyard_and_index_changes_give_a_new_key(change: dict[str, object]) -> None:
    assert key(["six"], **change) != key(["six"])


def test_a_different_version_specifier_gives_a_new_key() -> None:
    assert key(["six==1.16"]) != key(["six==1.17"])


def test_index_credentials_are_not_part_of_the_key() -> None:
    first = IndexSettings(index_url="https://user:old-password@pypi.internal/simple")
    second = IndexSettings(index_url="https://user:new-password@pypi.internal/simple")
    assert key(["six"], index=first) == key(["six"], index=second)
    assert "new-password" not in str(second.fingerprint())


def test_index_settings_become_uv_arguments() -> None:
    index = IndexSettings("https://a/simple", ("https://b/simple", "https://c/simple"))
    assert index.uv_arguments() == [
        "--index-url",
        "https://a/simple",
        "--extra-index-url",
        "https://b/simple",
        "--extra-index-url",
        "https://c/simple",
    ]


def test_the_sdk_runtime_requirements_are_the_documented_defaults() -> None:
    assert environments.DEFAULT_SDK_REQUIREMENTS == ("pydantic>=2.7", "httpx>=0.27", "pyyaml")
