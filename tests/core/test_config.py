"""Config loading: TOML plus environment overrides; bad config fails with one clear sentence."""

from __future__ import annotations

import pytest

from broker.config import load_broker_config
from core.config import ConfigError
from node.config import load_node_config

NODE = """
listen = "127.0.0.1:50051"
store = "leeds.sqlite3"
broker_public_keys = ["assertion.pub"]
[authority]
code = "LEEDS"
name = "Leeds"
[tls]
ca = "ca.pem"
cert = "node.pem"
key = "node.key"
"""


def test_node_config_loads_relative_paths_and_env_overrides(tmp_path):
    path = tmp_path / "node.toml"
    path.write_text(NODE)
    config = load_node_config(path, {"SIGNPOST_NODE_LISTEN": "0.0.0.0:6000", "SIGNPOST_NODE_TLS__CA": "/x/ca.pem"})
    assert config.listen == ("0.0.0.0", 6000)
    assert config.store == tmp_path / "leeds.sqlite3"
    assert str(config.tls.ca) == "/x/ca.pem"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (NODE.replace('code = "LEEDS"', 'code = "leeds!"'), "authority.code"),
        (NODE.replace('listen = "127.0.0.1:50051"', 'listen = "nowhere"'), "'listen' must be host:port"),
        (NODE.replace('key = "node.key"', ""), "'tls.key' must be a non-empty string"),
        ("listen = ", "not valid TOML"),
    ],
)
def test_bad_node_config_names_file_and_key(tmp_path, text, message):
    path = tmp_path / "node.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_node_config(path, {})
    assert str(path) in str(caught.value) and message in str(caught.value)


def test_broker_config_numbers_are_checked(tmp_path):
    path = tmp_path / "broker.toml"
    path.write_text(
        'registry = "r.json"\nassertion_key = "k"\nsearch_deadline_seconds = "soon"\n[tls]\nca="a"\ncert="b"\nkey="c"\n'
    )
    with pytest.raises(ConfigError, match="search_deadline_seconds' must be a number"):
        load_broker_config(path, {})
    config = load_broker_config(path, {"SIGNPOST_BROKER_SEARCH_DEADLINE_SECONDS": "1.5"})
    assert config.search_deadline_seconds == 1.5 and config.listen == ("127.0.0.1", 8443)


def test_broker_dispatch_window_must_leave_most_of_the_deadline_to_the_nodes(tmp_path):
    path = tmp_path / "broker.toml"
    path.write_text(
        'registry = "r.json"\nassertion_key = "k"\nsearch_deadline_seconds = 0.2\n'
        'dispatch_window_seconds = 0.1\n[tls]\nca="a"\ncert="b"\nkey="c"\n'
    )
    with pytest.raises(
        ConfigError, match="dispatch_window_seconds' must be at most a quarter of search_deadline_seconds"
    ):
        load_broker_config(path, {})
    config = load_broker_config(path, {"SIGNPOST_BROKER_DISPATCH_WINDOW_SECONDS": "0.05"})
    assert config.dispatch_window_seconds == 0.05
    assert load_broker_config(path, {"SIGNPOST_BROKER_DISPATCH_WINDOW_SECONDS": "0"}).dispatch_window_seconds == 0


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_node_config(tmp_path / "nope.toml", {})


def test_match_thresholds_are_configurable_and_checked(tmp_path):
    path = tmp_path / "node.toml"
    path.write_text(NODE + "[matching]\nmatch_threshold = 0.99\npossible_threshold = 0.5\n")
    config = load_node_config(path, {})
    assert (config.matching.match_threshold, config.matching.possible_threshold) == (0.99, 0.5)
    path.write_text(NODE + "[matching]\nmatch_threshold = 0.4\npossible_threshold = 0.5\n")
    with pytest.raises(ConfigError, match="possible_threshold < match_threshold"):
        load_node_config(path, {})


def test_broker_describe_interval_is_read_from_health(tmp_path):
    path = tmp_path / "broker.toml"
    path.write_text(
        'registry = "r.json"\nassertion_key = "k"\n[health]\ndescribe_interval_seconds = 60\n'
        '[tls]\nca="a"\ncert="b"\nkey="c"\n'
    )
    assert load_broker_config(path, {}).health.describe_interval == 60
    with pytest.raises(ConfigError, match="describe_interval_seconds' must be at least 0"):
        load_broker_config(path, {"SIGNPOST_BROKER_HEALTH__DESCRIBE_INTERVAL_SECONDS": "-1"})
