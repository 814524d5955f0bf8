"""config.load merges file, environment and overrides, and rejects every bad value clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from asterisk_recorder import config
from asterisk_recorder.errors import ConfigError
from asterisk_recorder.policy.modes import Mode
from asterisk_recorder.settings import Secret, Settings

GOOD = """\
instance_id = "rec-1"

[ari]
url = "http://10.0.0.1:8088"
password = "ari-secret-pw"
app = "consent"

[ari.servers.pbx2]
url = "https://10.0.0.2:8089"
password = "pbx2-secret-pw"

[agi]
port = 4600
allowed_peers = ["10.0.0.0/24", "::1"]

[database]
dsn = "postgresql://rec:db-secret-pw@db.example/ledger"
connect_timeout = 2.5

[policy]
site_jurisdiction = "us-ca"
unknown_mode = "opt_out"

[flow]
opt_out_key = "#"
input_timeout = 7

[flow.prompts]
languages = ["en", "fr_CA"]
opt_in_accept_after = 4.5

[recording]
directory = "/srv/recordings"
file_format = "wav49"
mixmonitor_options = "bW(2)"
"""


def write(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path | None = None, env: dict[str, str] | None = None,
                overrides: dict[str, object] | None = None) -> list[str]:
    """The problems ConfigError reports for this input (fails if the input loads)."""
    with pytest.raises(ConfigError) as info:
        config.load(path, env=env or {}, overrides=overrides)
    return info.value.problems


def test_defaults_with_password_from_env_load() -> None:
    """With no file, the shipped defaults load once the ARI password comes from the env."""
    settings = config.load(env={"ASTERISK_RECORDER_ARI_PASSWORD": "pw"})

    assert Secret("pw") == settings.ari[0].password
    assert Settings(ari=(settings.ari[0],)) == settings


def test_default_ari_server_without_password_is_a_problem() -> None:
    """An enabled ARI server without password fails and says where to set it."""
    problems = problems_of()

    assert 1 == len(problems)
    assert problems[0].startswith("ari.password: missing")
    assert "[ari] password" in problems[0]
    assert "ASTERISK_RECORDER_ARI_PASSWORD" in problems[0]


def test_disabled_ari_server_needs_no_password() -> None:
    """ari.enabled = false (AGI-only) loads without any password."""
    settings = config.load(env={"ASTERISK_RECORDER_ARI_ENABLED": "false"})

    assert False is settings.ari[0].enabled


def test_toml_file_values_reach_every_section(tmp_path: Path) -> None:
    """Values from the TOML file land in the right dataclasses, converted and normalised."""
    s = config.load(write(tmp_path, GOOD), env={})

    assert "rec-1" == s.instance_id
    assert ["default", "pbx2"] == [a.name for a in s.ari]
    assert "https://10.0.0.2:8089" == s.ari[1].url
    assert "consent-recorder" == s.ari[1].app  # named servers start from the defaults
    assert 4600 == s.agi.port
    assert 2.5 == s.database.connect_timeout
    assert "US-CA" == s.policy.site_jurisdiction
    assert Mode.OPT_OUT == s.policy.unknown_mode
    assert "#" == s.flow.opt_out_key
    assert 7.0 == s.flow.input_timeout
    assert ("en", "fr_CA") == s.flow.prompts.languages
    assert ("/srv/recordings", "wav49", "bW(2)") == (
        s.flow.recording.directory, s.flow.recording.file_format,
        s.flow.recording.mixmonitor_options)


def test_environment_overrides_file_and_overrides_win(tmp_path: Path) -> None:
    """Precedence is file < environment < overrides."""
    path = write(tmp_path, GOOD)
    env = {
        "ASTERISK_RECORDER_AGI_PORT": "4700",
        "ASTERISK_RECORDER_HTTP_PORT": "9000",
        "ASTERISK_RECORDER_FLOW_PROMPTS_LANGUAGES": "de, en_GB ,",
        "ASTERISK_RECORDER_AGI_ENABLED": "no",
        "ASTERISK_RECORDER_ARI_SERVERS_PBX2_APP": "other",
    }
    s = config.load(path, env=env, overrides={"http.port": "9100", "logging.level": "DEBUG"})

    assert 4700 == s.agi.port
    assert 9100 == s.http.port
    assert ("de", "en_GB") == s.flow.prompts.languages
    assert False is s.agi.enabled
    assert "other" == s.ari[1].app
    assert "debug" == s.logging.level


def test_config_path_from_environment(tmp_path: Path) -> None:
    """ASTERISK_RECORDER_CONFIG names the file when no path is given."""
    path = write(tmp_path, GOOD)

    assert 4600 == config.load(env={"ASTERISK_RECORDER_CONFIG": str(path)}).agi.port


def test_named_server_defined_only_in_environment() -> None:
    """ASTERISK_RECORDER_ARI_SERVERS_<NAME>_<KEY> can add a whole server."""
    env = {
        "ASTERISK_RECORDER_ARI_PASSWORD": "a",
        "ASTERISK_RECORDER_ARI_SERVERS_EDGE_URL": "http://10.1.1.1:8088",
        "ASTERISK_RECORDER_ARI_SERVERS_EDGE_PASSWORD": "b",
    }
    s = config.load(env=env)

    assert [("default", "http://127.0.0.1:8088"), ("edge", "http://10.1.1.1:8088")] == [
        (a.name, a.url) for a in s.ari]


def test_reserved_test_variables_are_ignored() -> None:
    """ASTERISK_RECORDER_TEST_DSN and ASTERISK_RECORDER_E2E_* belong to the test suite."""
    env = {"ASTERISK_RECORDER_ARI_PASSWORD": "a", "ASTERISK_RECORDER_TEST_DSN": "x",
           "ASTERISK_RECORDER_E2E_ARI_URL": "y"}

    assert "a" == config.load(env=env).ari[0].password.value


def test_unknown_key_in_file_suggests_the_closest(tmp_path: Path) -> None:
    """A typo'd key is an error naming the file and the closest valid key."""
    path = write(tmp_path, '[ari]\npassword = "pw"\n[agi]\nprot = 4573\n')

    assert [f'agi.prot: unknown key in {path}; did you mean agi.port?'] == problems_of(path)


def test_unknown_section_suggests_the_closest(tmp_path: Path) -> None:
    """A typo'd table name is an error with a suggestion."""
    path = write(tmp_path, '[ari]\npassword = "pw"\n[databse]\ndsn = ""\n')

    assert [f"databse: unknown key in {path}; did you mean database?"] == problems_of(path)


def test_unknown_environment_variable_suggests_the_closest() -> None:
    """An unknown ASTERISK_RECORDER_* variable is an error, with the closest valid name."""
    env = {"ASTERISK_RECORDER_ARI_PASSWORD": "pw", "ASTERISK_RECORDER_DATABSE_DSN": "x"}

    assert ["ASTERISK_RECORDER_DATABSE_DSN: unknown environment variable; did you mean "
            "ASTERISK_RECORDER_DATABASE_DSN?"] == problems_of(env=env)


def test_unknown_override_key_is_an_error() -> None:
    """An override naming no key fails instead of being dropped."""
    problems = problems_of(env={"ASTERISK_RECORDER_ARI_PASSWORD": "pw"},
                           overrides={"agi.prot": 1})

    assert ["agi.prot: unknown configuration key; did you mean agi.port?"] == problems


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[agi]\nport = 70000", "agi.port: 70000 is not a valid port (1-65535)"),
        ("[http]\nport = 0", "http.port: 0 is not a valid port (1-65535)"),
        ('[agi]\nport = "4573"', 'agi.port: expected an integer, got a string "4573"'),
        ("[agi]\nport = 4573.5", "agi.port: expected an integer, got a number 4573.5"),
        ('[agi]\nenabled = "yes"', 'agi.enabled: expected a boolean (true or false), got a '
         'string "yes"'),
        ("[flow]\ninput_timeout = 0", "flow.input_timeout: 0 must be a number of seconds "
         "above 0 and at most 3600"),
        ("[flow]\ninput_timeout = nan", "flow.input_timeout: nan is not a finite number"),
        ("[flow]\nmax_retries = 11", "flow.max_retries: 11 is out of range (0-10)"),
        ('[flow]\nopt_out_key = "12"', 'flow.opt_out_key: "12" is not a DTMF key (one '
         'character of 0-9, * or #)'),
        ('[flow]\nopt_in_accept_key = "A"', 'flow.opt_in_accept_key: "A" is not a DTMF key '
         '(one character of 0-9, * or #)'),
        ('[flow]\nopt_in_accept_key = "3"\nopt_in_decline_key = "3"',
         'flow.opt_in_decline_key: "3" is also flow.opt_in_accept_key; accept and decline '
         'must be different keys'),
        ('[logging]\nlevel = "loud"', 'logging.level: "loud" is not allowed (one of: debug, '
         'info, warning, error, critical)'),
        ('[logging]\nformat = "xml"', 'logging.format: "xml" is not allowed (one of: auto, '
         'json, console)'),
        ('[policy]\nunknown_mode = "maybe"', 'policy.unknown_mode: "maybe" is not a mode '
         '(allowed: never, opt_in, opt_out, announce, none)'),
        ('[policy]\nsite_jurisdiction = "USA-California"', 'policy.site_jurisdiction: '
         '"USA-CALIFORNIA" is not a jurisdiction code (a country such as US, GB, DE, or US-CA)'),
        ('[policy]\ndefault_region = "ZZ"', 'policy.default_region: "ZZ" is not a region '
         'phonenumbers knows (two letters, such as US, GB, DE)'),
        ('[recording]\ndirectory = "recordings"', 'recording.directory: "recordings" must be '
         'an absolute directory'),
        ('[recording]\ndirectory = "/srv/../etc"', 'recording.directory: "/srv/../etc" must '
         "not contain '..'"),
        ('[recording]\ndirectory = "/srv/rec ${X}"', 'recording.directory: "/srv/rec ${X}" '
         "may only contain letters, digits, '/', '.', '_' and '-'"),
        ('[recording]\nfile_format = "mp3"', 'recording.file_format: "mp3" is not allowed '
         '(one of: wav, wav49, gsm, sln, sln16, ulaw, alaw, g722)'),
        ('[ari]\nurl = "ftp://x"', 'ari.url: "ftp://x" is not an http:// or https:// URL '
         'with a host'),
        ('[ari]\nurl = "http://h:8088/ari"', 'ari.url: "http://h:8088/ari" should be the '
         "server's base URL without /ari (it is added)"),
        ('[ari]\napp = "my app"', 'ari.app: "my app" is not a valid Stasis application name '
         "(letters, digits, '.', '_', '-')"),
        ('[flow.prompts]\nlanguages = []', 'flow.prompts.languages: must list at least one '
         'language (e.g. ["en"])'),
        ('[flow.prompts]\nlanguages = ["en", 3]', 'flow.prompts.languages: expected an array '
         'of strings, got an integer 3 in it'),
        ('[flow.prompts]\nopt_in = "../../etc/passwd"', 'flow.prompts.opt_in: '
         '"../../etc/passwd" is not a sound id (letters, digits, \'_\', \'.\', \'/\', \'-\', '
         "starting with a letter, digit or '_'; relative, no '..', no extension; at most 200 "
         "characters)"),
        ('[ledger]\nspool_dir = "spool"', 'ledger.spool_dir: "spool" must be an absolute path '
         '(or empty for the default)'),
        ('[controller]\nresync_action = "retry"', 'controller.resync_action: "retry" is not '
         'allowed (one of: handback, resume)'),
        ('[recording]\nmixmonitor_options = "b,r(/tmp/x)"', 'recording.mixmonitor_options: '
         '"b,r(/tmp/x)" may only contain letters, digits and parentheses, as option letters '
         "with an optional argument such as bW(2) (no commas, pipes, '$', quotes, spaces or "
         "newlines; at most 32 options)"),
        ('[recording]\nmixmonitor_options = "b)W("', 'recording.mixmonitor_options: "b)W(" '
         "may only contain letters, digits and parentheses, as option letters with an optional "
         "argument such as bW(2) (no commas, pipes, '$', quotes, spaces or newlines; at most 32 "
         "options)"),
        ("agi = 3", "agi: expected a table [agi], got an integer"),
        ('[ari.servers.default]\nurl = "http://x"', 'ari.servers.default: the name "default" '
         "is taken by the [ari] table itself"),
    ],
)
def test_each_bad_value_names_key_value_and_what_is_allowed(
    tmp_path: Path, toml: str, expected: str
) -> None:
    """Each bad value gives exactly one message: key, bad value, what is allowed, the file."""
    text = toml if "[ari]" in toml else toml + '\n[ari]\npassword = "pw"\n'
    if "[ari]" in toml and "password" not in toml:
        text = toml.replace("[ari]\n", '[ari]\npassword = "pw"\n')

    path = write(tmp_path, text)
    origin = "" if toml.startswith(("agi = 3", "[ari.servers.default]")) else f" [from {path}]"

    assert [expected + origin] == problems_of(path)


@pytest.mark.parametrize(
    "hostile",
    ["b,r(/tmp/x)", "b|x", "b\nx", "b${EXTEN}", "b'x", 'b"x', "b x", "b\x00", "b;x"],
)
def test_hostile_mixmonitor_options_are_rejected(hostile: str) -> None:
    """mixmonitor_options only takes letters, digits and parentheses; the message is one line."""
    problems = problems_of(env={"ASTERISK_RECORDER_ARI_PASSWORD": "pw",
                                "ASTERISK_RECORDER_RECORDING_MIXMONITOR_OPTIONS": hostile})

    assert 1 == len(problems)
    assert problems[0].startswith("recording.mixmonitor_options: ")
    assert "[from ASTERISK_RECORDER_RECORDING_MIXMONITOR_OPTIONS]" in problems[0]
    assert "\n" not in problems[0]
    assert "\x00" not in problems[0]


def test_bad_environment_values_name_the_variable() -> None:
    """A bad value from the environment names the key and the variable it came from."""
    env = {"ASTERISK_RECORDER_ARI_PASSWORD": "pw", "ASTERISK_RECORDER_AGI_PORT": "http",
           "ASTERISK_RECORDER_HTTP_ENABLED": "maybe"}

    assert [
        'agi.port: "http" is not an integer [from ASTERISK_RECORDER_AGI_PORT]',
        'http.enabled: "maybe" is not a boolean (true/false, 1/0, yes/no, on/off) '
        "[from ASTERISK_RECORDER_HTTP_ENABLED]",
    ] == problems_of(env=env)


def test_all_problems_are_collected_at_once(tmp_path: Path) -> None:
    """Several problems in file and environment are reported together, file first."""
    path = write(tmp_path, "[agi]\nprot = 1\nport = 0\n[http]\nport = 70000\n")
    problems = problems_of(path, env={"ASTERISK_RECORDER_LOGGING_LEVLE": "debug"})

    assert 5 == len(problems)
    assert problems[0].startswith("agi.prot: unknown key")
    assert problems[1].startswith("ASTERISK_RECORDER_LOGGING_LEVLE: unknown environment")
    assert {"agi.port", "http.port", "ari.password"} == {p.split(":")[0] for p in problems[2:]}


def test_bad_toml_syntax_names_file_and_line(tmp_path: Path) -> None:
    """A TOML syntax error is a ConfigError naming the file and the line."""
    path = write(tmp_path, '[ari]\npassword = "pw"\n\n[agi]\nport = = 4573\n')
    problems = problems_of(path)

    assert 1 == len(problems)
    assert problems[0].startswith(f"{path}: invalid TOML: ")
    assert "line 5" in problems[0]


def test_missing_file_is_a_problem(tmp_path: Path) -> None:
    """A config path that does not exist is reported, not silently replaced by defaults."""
    path = tmp_path / "nope.toml"

    assert [f"{path}: configuration file not found"] == problems_of(
        path, env={"ASTERISK_RECORDER_ARI_PASSWORD": "pw"})


def test_named_server_without_password_says_where_to_set_it(tmp_path: Path) -> None:
    """A named server's missing password names its table and its environment variable."""
    path = write(tmp_path, '[ari]\nenabled = false\n[ari.servers.pbx-2]\nurl = "http://h:1"\n')

    assert [
        'ari.servers.pbx-2.password: missing; ARI server "pbx-2" is enabled and needs the '
        'password of ARI user "asterisk-recorder": set [ari.servers.pbx-2] password in the '
        "config file or ASTERISK_RECORDER_ARI_SERVERS_PBX_2_PASSWORD (or set "
        "ari.servers.pbx-2.enabled = false)"
    ] == problems_of(path)


def test_two_servers_with_same_url_and_app_conflict(tmp_path: Path) -> None:
    """Two enabled connections for the same app on one Asterisk would replace each other."""
    path = write(tmp_path, '[ari]\npassword = "a"\n[ari.servers.b]\npassword = "b"\n')

    assert ["ari.servers.b: same url and app as ari; one Stasis app per Asterisk takes one "
            "connection (the second would replace the first)"] == problems_of(path)


def test_agi_and_http_on_same_port_conflict() -> None:
    """AGI and the HTTP endpoint cannot share a port on the same host."""
    env = {"ASTERISK_RECORDER_ARI_PASSWORD": "pw", "ASTERISK_RECORDER_HTTP_PORT": "4573"}

    assert ["http.port: 4573 is also agi.port on 127.0.0.1; the two servers need different "
            "ports [from ASTERISK_RECORDER_HTTP_PORT]"] == problems_of(env=env)


def test_ari_url_with_credentials_is_rejected_without_showing_them() -> None:
    """Credentials in ari.url are refused and the password is masked in the message."""
    problems = problems_of(env={"ASTERISK_RECORDER_ARI_PASSWORD": "pw",
                                "ASTERISK_RECORDER_ARI_URL": "http://u:topsecret9@h:8088"})

    assert 1 == len(problems)
    assert "must not carry credentials" in problems[0]
    assert "topsecret9" not in problems[0]


@pytest.mark.parametrize(
    "dsn", ["mysql://root:hunter2-x@db/x", "hunter2-x", "postgresql://u:hunter2-x@h/db\n"])
def test_bad_dsn_never_shows_the_dsn(dsn: str) -> None:
    """A bad database.dsn is reported without its value."""
    problems = problems_of(env={"ASTERISK_RECORDER_ARI_PASSWORD": "pw",
                                "ASTERISK_RECORDER_DATABASE_DSN": dsn})

    assert 1 == len(problems)
    assert problems[0].startswith("database.dsn: ")
    assert "hunter2" not in problems[0]


def test_secret_of_wrong_type_is_not_shown(tmp_path: Path) -> None:
    """A password given as a number is a type error that does not echo the number."""
    path = write(tmp_path, "[ari]\npassword = 98765432\n[ledger]\ndigest_key = [12345678]\n")
    problems = problems_of(path)

    assert f"ari.password: expected a string, got an integer [from {path}]" in problems
    assert f"ledger.digest_key: expected a string, got an array [from {path}]" in problems
    assert not any("98765432" in p or "12345678" in p for p in problems)


def test_unknown_key_holding_a_secret_does_not_echo_it(tmp_path: Path) -> None:
    """A misspelt password key is reported by name only, never with its value."""
    path = write(tmp_path, '[ari]\npasword = "s3cret-value"\n')
    problems = problems_of(path)

    assert f"ari.pasword: unknown key in {path}; did you mean ari.password?" == problems[0]
    assert not any("s3cret-value" in p for p in problems)


def test_table_file_is_resolved_relative_to_the_config_file(tmp_path: Path) -> None:
    """A relative policy.table_file is found beside the config file and must exist."""
    (tmp_path / "rules.toml").write_text("", encoding="utf-8")
    good = write(tmp_path, '[ari]\npassword = "pw"\n[policy]\ntable_file = "rules.toml"\n')
    bad = write(tmp_path, '[ari]\npassword = "pw"\n[policy]\ntable_file = "gone.toml"\n', "b.toml")

    assert str(tmp_path.resolve() / "rules.toml") == config.load(good, env={}).policy.table_file
    assert [f'policy.table_file: "{tmp_path.resolve() / "gone.toml"}" does not exist or is '
            f"not a file [from {bad}]"] == problems_of(bad)


def test_effective_rendering_round_trips(tmp_path: Path) -> None:
    """render_effective of a secret-free configuration loads back to the same settings."""
    text = GOOD.replace('password = "ari-secret-pw"', "enabled = false").replace(
        'password = "pbx2-secret-pw"', "enabled = false").replace(
        'dsn = "postgresql://rec:db-secret-pw@db.example/ledger"', "")
    settings = config.load(write(tmp_path, text), env={})
    again = config.load(write(tmp_path, config.render_effective(settings), "e.toml"), env={})

    assert settings == again


def test_effective_rendering_masks_secrets(tmp_path: Path) -> None:
    """render_effective shows every key but no password, and only the DSN's password masked."""
    out = config.render_effective(config.load(write(tmp_path, GOOD), env={}))

    assert "secret-pw" not in out
    assert 'dsn = "postgresql://rec:********@db.example/ledger"' in out
    assert 2 == out.count('password = "********"')
    for info in config.schema():  # an unset optional key is shown as a comment (TOML has no null)
        assert f"\n{info.name} = " in out or f"\n# {info.name} = (unset)" in out, info.key


def test_secret_values_lists_every_secret(tmp_path: Path) -> None:
    """secret_values gives every password, the DSN and the DSN's password for log redaction."""
    values = config.secret_values(config.load(write(tmp_path, GOOD), env={}))

    assert {"ari-secret-pw", "pbx2-secret-pw", "db-secret-pw",
            "postgresql://rec:db-secret-pw@db.example/ledger"} == set(values)


def test_every_key_has_help_and_a_unique_environment_variable() -> None:
    """The schema derived from the dataclasses documents every key."""
    keys = config.schema()

    assert [] == [k.key for k in keys if not k.help]
    assert len(keys) == len({k.env for k in keys})


HOSTILE = ["a,b", "a)b", "${EXTEN}", "a|b", "a'b", 'a"b', "a\nb", "a\x00b", "../../etc",
           "x" * 10_000, "a b", "\udcff"]


@pytest.mark.parametrize(
    "key",
    ["recording.mixmonitor_options", "recording.directory", "recording.file_format",
     "flow.prompts.opt_in", "flow.prompts.fallback_language", "flow.prompts.languages",
     "ari.app", "instance_id", "flow.opt_out_key"],
)
def test_hostile_values_never_reach_dialplan_settings(key: str) -> None:
    """Every value that ends up in dialplan, a path or ARI refuses hostile text, in one line."""
    info = {k.key: k for k in config.schema()}[key]
    for hostile in HOSTILE:
        value = f"/x/{hostile}" if key == "recording.directory" else hostile
        problems = problems_of(env={"ASTERISK_RECORDER_ARI_PASSWORD": "pw", info.env: value})

        assert 1 == len(problems), (key, hostile)
        assert problems[0].startswith(f"{key}: ")
        assert "\n" not in problems[0]
        assert "\x00" not in problems[0]
        assert len(problems[0]) < 400


def test_file_that_is_not_utf8_is_a_problem(tmp_path: Path) -> None:
    """A config file with invalid UTF-8 is reported with the byte offset."""
    path = tmp_path / "c.toml"
    path.write_bytes(b'[ari]\npassword = "\xff\xfe"\n')

    assert [f"{path}: not UTF-8 text (byte 18)"] == problems_of(path)


def test_config_path_that_is_a_directory_is_a_problem(tmp_path: Path) -> None:
    """A directory given as the config file is reported, not a traceback."""
    problems = problems_of(tmp_path)

    assert 1 == len(problems)
    assert problems[0].startswith(f"{tmp_path}: cannot read configuration file")


@pytest.mark.parametrize("key", [k.key for k in config.schema()
                                 if k.type in (str, Secret) or k.key.endswith("languages")])
@pytest.mark.parametrize("hostile", ["a\nb", "a\x00b", "x" * 5000])
def test_no_text_value_takes_control_characters_or_10k(key: str, hostile: str) -> None:
    """Every text key refuses newlines, NUL and huge values; secrets are not echoed."""
    env_name = {k.key: k.env for k in config.schema()}[key]
    env = {"ASTERISK_RECORDER_ARI_PASSWORD": "pw", env_name: hostile}
    problems = problems_of(env=env)

    assert 1 == len(problems)
    assert problems[0].startswith(f"{key}: ")
    assert len(problems[0]) < 400


def test_overrides_accept_typed_values_and_secrets() -> None:
    """Programmatic overrides may pass typed values, including a Secret, instead of text."""
    s = config.load(env={}, overrides={"ari.password": Secret("pw"), "agi.port": 4600,
                                       "flow.prompts.languages": ("de",), "http.enabled": False})

    assert (Secret("pw"), 4600, ("de",), False) == (
        s.ari[0].password, s.agi.port, s.flow.prompts.languages, s.http.enabled)


def test_serve_needs_a_dsn_or_the_explicit_embedded_choice() -> None:
    """require_database: an empty DSN is refused unless database.embedded = true."""
    env = {"ASTERISK_RECORDER_ARI_PASSWORD": "pw"}
    with pytest.raises(ConfigError) as info:
        config.load(env=env, require_database=True)
    embedded = config.load(env={**env, "ASTERISK_RECORDER_DATABASE_EMBEDDED": "yes"},
                           require_database=True)

    assert ["database.dsn"] == [p.split(":", 1)[0] for p in info.value.problems]
    assert "database.embedded = true" in info.value.problems[0]
    assert (True, "") == (embedded.database.embedded, embedded.database.dsn.value)
    assert not config.load(env=env).database.embedded  # the demo's load: embedded by default


@pytest.mark.parametrize(("command", "refused"),
                         [("serve", True), ("check-config", True), ("demo", False),
                          ("db", False), ("ledger", False)])
def test_settings_from_args_requires_a_database_for_serve_and_check_config(
    command: str, refused: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """settings_from_args keys the database requirement on the command being run."""
    import argparse

    monkeypatch.setenv("ASTERISK_RECORDER_ARI_PASSWORD", "pw")
    monkeypatch.delenv("ASTERISK_RECORDER_DATABASE_DSN", raising=False)
    monkeypatch.delenv("ASTERISK_RECORDER_CONFIG", raising=False)
    args = argparse.Namespace(command=command, config=None)
    try:
        config.settings_from_args(args)
        problems: list[str] = []
    except ConfigError as exc:
        problems = exc.problems

    assert refused == any(p.startswith("database.dsn: is empty") for p in problems)


def test_removed_pool_settings_are_refused_saying_why(tmp_path: Path) -> None:
    """database.pool_min/pool_max (never used) now fail loading with the reason, not silently."""
    path = write(tmp_path, '[ari]\npassword = "pw"\n[database]\npool_min = 1\npool_max = 4\n')
    reason = ("no longer a setting (the ledger writes through a single connection, in "
              "hash-chain order, so there is no pool to size)")

    assert [f"database.pool_min: {reason}; remove it in {path}",
            f"database.pool_max: {reason}; remove it in {path}"] == problems_of(path)
    assert [f"ASTERISK_RECORDER_DATABASE_POOL_MAX: {reason}; unset it"] == problems_of(
        env={"ASTERISK_RECORDER_ARI_PASSWORD": "pw", "ASTERISK_RECORDER_DATABASE_POOL_MAX": "9"})


def test_allowed_peers_parse_to_networks_and_default_to_loopback(tmp_path: Path) -> None:
    """agi.allowed_peers: addresses and networks become ipaddress networks; default loopback."""
    import ipaddress

    path = write(tmp_path, '[ari]\npassword = "pw"\n[agi]\n'
                           'allowed_peers = ["10.0.0.5", "192.168.10.0/24", "fd00::/8"]\n')
    from_env = config.load(env={"ASTERISK_RECORDER_ARI_PASSWORD": "pw",
                                "ASTERISK_RECORDER_AGI_ALLOWED_PEERS": "10.1.2.3, ::1"})

    assert (ipaddress.ip_network("10.0.0.5/32"), ipaddress.ip_network("192.168.10.0/24"),
            ipaddress.ip_network("fd00::/8")) == config.load(path, env={}).agi.allowed_peers
    assert (ipaddress.ip_network("10.1.2.3/32"), ipaddress.ip_network("::1/128")) \
        == from_env.agi.allowed_peers
    assert (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128")) \
        == config.load(env={"ASTERISK_RECORDER_ARI_PASSWORD": "pw"}).agi.allowed_peers


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('allowed_peers = ["10.0.0.1/8"]', 'agi.allowed_peers: "10.0.0.1/8" has host bits set; '
         "the network is 10.0.0.0/8 (or give the single address 10.0.0.1)"),
        ('allowed_peers = ["pbx.example"]', 'agi.allowed_peers: "pbx.example" is not an IP '
         "address or network such as 127.0.0.1, 10.0.0.0/24 or ::1"),
        ("allowed_peers = []", "agi.allowed_peers: must list at least one address or network "
         "(to run no FastAGI server, set agi.enabled = false)"),
        ("allowed_peers = [10]", "agi.allowed_peers: expected an array of strings, got an "
         "integer 10 in it"),
    ],
)
def test_bad_allowed_peers_are_refused_at_load(tmp_path: Path, toml: str, expected: str) -> None:
    """A peer entry that is not an address or network fails loading, naming it and the file."""
    path = write(tmp_path, f'[ari]\npassword = "pw"\n[agi]\n{toml}\n')

    assert [f"{expected} [from {path}]"] == problems_of(path)


@pytest.mark.parametrize(("value", "expected"),
                         [('"end"', None), ('"End"', None), ("0", 0.0), ("2.5", 2.5), ("3", 3.0)])
def test_opt_in_accept_after_takes_seconds_or_end(
    tmp_path: Path, value: str, expected: float | None
) -> None:
    """flow.prompts.opt_in_accept_after: a number of seconds, or "end" (None)."""
    path = write(tmp_path, f'[ari]\npassword = "pw"\n[flow.prompts]\n'
                           f"opt_in_accept_after = {value}\n")

    assert expected == config.load(path, env={}).flow.prompts.opt_in_accept_after


@pytest.mark.parametrize(
    ("value", "expected"),
    [("-1", '-1 must be a number of seconds from 0 to 3600, or "end"'),
     ('"later"', 'expected a number of seconds or "end", got a string "later"'),
     ("true", 'expected a number of seconds or "end", got a boolean true')],
)
def test_bad_opt_in_accept_after_is_refused(tmp_path: Path, value: str, expected: str) -> None:
    """A negative, textual or boolean opt_in_accept_after fails loading with what is allowed."""
    path = write(tmp_path, f'[ari]\npassword = "pw"\n[flow.prompts]\n'
                           f"opt_in_accept_after = {value}\n")

    assert [f"flow.prompts.opt_in_accept_after: {expected} [from {path}]"] == problems_of(path)


def test_opt_in_accept_after_defaults_to_the_end_of_the_prompt() -> None:
    """Unset, the accept key counts only from the end of the opt-in prompt (None)."""
    settings = config.load(env={"ASTERISK_RECORDER_ARI_PASSWORD": "pw"})

    assert settings.flow.prompts.opt_in_accept_after is None
    assert 'opt_in_accept_after = "end"' in config.render_effective(settings)
