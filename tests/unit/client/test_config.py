"""Which server and key the client uses, from arguments down to the credentials file."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from flowyard.client import (
    ClientConfig,
    Profile,
    Profiles,
    load_profiles,
    parse_api_url,
    resolve_config,
    save_profiles,
)
from flowyard.errors import ConfigurationError

LOCAL = "http://127.0.0.1:4280/api"
REMOTE = "https://flowyard.example.com/api"


def write_credentials(home: Path, url: str = LOCAL, key: str = "fy_local_key") -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "credentials").write_text(json.dumps({"api_url": url, "api_key": key}))


def write_profile(home: Path, name: str, url: str, key: str | None, activate: bool = True) -> None:
    profiles = load_profiles(home / "profiles.toml")
    save_profiles(
        profiles.with_profile(Profile(name, url, key), activate=activate), home / "profiles.toml"
    )


def resolve(home: Path, env: dict[str, str] | None = None, **args: str) -> ClientConfig | None:
    return resolve_config(env=env or {}, home=home, **args)


def test_nothing_configured_resolves_to_none(tmp_path: Path) -> None:
    assert resolve(tmp_path / "empty-home") is None


def test_the_credentials_file_of_a_local_server_is_the_last_resort(tmp_path: Path) -> None:
    write_credentials(tmp_path)
    config = resolve(tmp_path)
    assert config is not None
    assert (config.api_url, config.api_key) == (LOCAL, "fy_local_key")
    assert config.source == f"credentials file {tmp_path / 'credentials'}"


def test_the_environment_wins_over_the_credentials_file(tmp_path: Path) -> None:
    write_credentials(tmp_path)
    config = resolve(tmp_path, {"FLOWYARD_API_URL": REMOTE, "FLOWYARD_API_KEY": "fy_env"})
    assert config == ClientConfig(REMOTE, "fy_env", "environment (FLOWYARD_API_URL)")


def test_explicit_arguments_win_over_the_environment(tmp_path: Path) -> None:
    env = {"FLOWYARD_API_URL": REMOTE, "FLOWYARD_API_KEY": "fy_env"}
    config = resolve(tmp_path, env, api_url="http://other:1/api", api_key="fy_arg")
    assert config == ClientConfig("http://other:1/api", "fy_arg", "arguments")


def test_a_stored_key_is_never_sent_to_a_url_configured_elsewhere(tmp_path: Path) -> None:
    write_credentials(tmp_path)
    config = resolve(tmp_path, {"FLOWYARD_API_URL": REMOTE})
    assert config is not None
    assert config.api_url == REMOTE
    assert config.api_key is None


def test_a_stored_key_is_used_when_the_environment_names_the_same_server(tmp_path: Path) -> None:
    write_credentials(tmp_path)
    # Same server, spelled without the /api suffix and with a trailing slash.
    config = resolve(tmp_path, {"FLOWYARD_API_URL": "http://127.0.0.1:4280/"})
    assert config is not None
    assert config.api_key == "fy_local_key"
    assert "key from credentials file" in config.source


def test_an_environment_key_alone_goes_with_the_url_from_a_file(tmp_path: Path) -> None:
    write_credentials(tmp_path)
    config = resolve(tmp_path, {"FLOWYARD_API_KEY": "fy_env"})
    assert config is not None
    assert (config.api_url, config.api_key) == (LOCAL, "fy_env")


def test_the_active_profile_wins_over_the_credentials_file(tmp_path: Path) -> None:
    write_credentials(tmp_path)
    write_profile(tmp_path, "prod", REMOTE, "fy_prod")
    config = resolve(tmp_path)
    assert config is not None
    assert (config.api_url, config.api_key) == (REMOTE, "fy_prod")
    assert config.source.startswith("profile 'prod'")


def test_flowyard_profile_selects_another_profile(tmp_path: Path) -> None:
    write_profile(tmp_path, "prod", REMOTE, "fy_prod")
    write_profile(tmp_path, "staging", "https://staging.example.com", "fy_stg", activate=False)
    config = resolve(tmp_path, {"FLOWYARD_PROFILE": "staging"})
    assert config is not None
    assert (config.api_url, config.api_key) == ("https://staging.example.com", "fy_stg")


def test_an_unknown_flowyard_profile_is_an_error_naming_the_known_ones(tmp_path: Path) -> None:
    write_profile(tmp_path, "prod", REMOTE, "fy_prod")
    with pytest.raises(ConfigurationError, match=r"no profile named 'nope' \(known: prod\)"):
        resolve(tmp_path, {"FLOWYARD_PROFILE": "nope"})


def test_the_settings_file_sits_between_the_environment_and_profiles(tmp_path: Path) -> None:
    write_profile(tmp_path, "prod", REMOTE, "fy_prod")
    (tmp_path / "settings.toml").write_text('api_url = "http://10.0.0.5:4280/api"\n')
    config = resolve(tmp_path)
    assert config is not None
    assert config.api_url == "http://10.0.0.5:4280/api"
    assert config.api_key is None  # the profile's key belongs to the profile's server
    env_config = resolve(tmp_path, {"FLOWYARD_API_URL": REMOTE})
    assert env_config is not None
    assert env_config.api_url == REMOTE


def test_a_malformed_credentials_file_is_an_error_naming_the_file(tmp_path: Path) -> None:
    tmp_path.joinpath("credentials").write_text("{not json")
    with pytest.raises(ConfigurationError, match=r"cannot read credentials from .*credentials"):
        resolve(tmp_path)


def test_a_malformed_url_is_an_error_naming_where_it_came_from(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"expected http\(s\)://.*FLOWYARD_API_URL"):
        resolve(tmp_path, {"FLOWYARD_API_URL": "localhost:4280"})


def test_a_server_bound_to_every_interface_is_reached_on_loopback(tmp_path: Path) -> None:
    write_credentials(tmp_path, url="http://0.0.0.0:4280/api")
    config = resolve(tmp_path)
    assert config is not None
    assert config.api_url == "http://127.0.0.1:4280/api"


def test_the_key_is_not_shown_in_the_config_repr() -> None:
    assert "fy_secret" not in repr(ClientConfig(LOCAL, "fy_secret"))
    assert "fy_secret" not in repr(Profile("p", LOCAL, "fy_secret"))


def test_profiles_are_written_owner_only_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "home" / "profiles.toml"
    profiles = Profiles().with_profile(Profile("prod", REMOTE, 'fy_"quoted"\\key'))
    profiles = profiles.with_profile(Profile("local", LOCAL, None), activate=False)
    save_profiles(profiles, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_profiles(path)
    assert loaded.active == "prod"
    assert dict(loaded.profiles) == dict(profiles.profiles)


def test_rewriting_a_too_open_profiles_file_makes_it_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    path.write_text("")
    path.chmod(0o644)
    save_profiles(Profiles().with_profile(Profile("a", LOCAL, "k")), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_removing_the_active_profile_leaves_none_active() -> None:
    profiles = Profiles().with_profile(Profile("a", LOCAL)).with_profile(Profile("b", REMOTE))
    assert profiles.active == "b"
    after = profiles.without("b")
    assert after.active is None
    assert list(after.profiles) == ["a"]


def test_a_profile_name_must_be_a_simple_word() -> None:
    with pytest.raises(ConfigurationError, match="profile name"):
        Profiles().with_profile(Profile("has space", LOCAL))


def test_an_api_url_without_a_path_means_the_default_api_prefix() -> None:
    assert parse_api_url("http://127.0.0.1:4280").base_url == "http://127.0.0.1:4280/api"
    assert parse_api_url("https://h.example/api/").base_url == "https://h.example/api"
    assert parse_api_url("https://h.example/flowyard/api").base_url == (
        "https://h.example/flowyard/api"
    )


def test_a_unix_socket_url_becomes_a_socket_transport() -> None:
    endpoint = parse_api_url("unix:///run/flowyard/api.sock")
    assert endpoint.uds == "/run/flowyard/api.sock"
    assert endpoint.base_url.endswith("/api")
    with pytest.raises(ConfigurationError, match="absolute path"):
        parse_api_url("unix://relative.sock")
