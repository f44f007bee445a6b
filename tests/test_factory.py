"""The standalone app factory and the extension's start-up checks."""
import pytest
from flask import Flask

from ispflow import ISPFlow
from ispflow.config import ConfigError, Settings
from ispflow.standalone import create_app


def test_testing_config_is_applied(database_url):
    assert not create_app({"SECRET_KEY": "x", "ISPFLOW_DATABASE_URL": database_url}).testing
    assert create_app({"TESTING": True, "ISPFLOW_DATABASE_URL": database_url}).testing


def test_blueprint_is_mounted_under_the_default_prefix(app):
    assert app.url_map.bind("localhost").match("/netflow/") == ("ispflow.index", {})


def test_standalone_panel_refuses_to_start_without_a_secret_key(monkeypatch):
    monkeypatch.delenv("ISPFLOW_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="ISPFLOW_SECRET_KEY"):
        create_app()


def test_settings_come_from_prefixed_environment_variables():
    settings = Settings.from_env({"ISPFLOW_URL_PREFIX": "/nf", "ISPFLOW_COLLECTOR_LISTEN": "0.0.0.0:2055, [::]:9995"})
    assert settings.URL_PREFIX == "/nf"
    assert settings.COLLECTOR_LISTEN == ("0.0.0.0:2055", "[::]:9995")


def test_a_hosts_settings_given_as_text_are_read_like_the_environments():
    config = {**Settings().as_flask_config(), "ISPFLOW_COLLECTOR_LISTEN": "0.0.0.0:2055, [::]:9995",
              "ISPFLOW_SPOOL_MAX_BYTES": "4096", "ISPFLOW_DEBUG": "yes"}
    settings = Settings.from_flask(config)
    assert settings == Settings.from_env({"ISPFLOW_COLLECTOR_LISTEN": "0.0.0.0:2055, [::]:9995",
                                          "ISPFLOW_SPOOL_MAX_BYTES": "4096", "ISPFLOW_DEBUG": "yes"})


def test_a_hosts_malformed_setting_fails_with_its_name():
    app = Flask("host")
    app.config["ISPFLOW_SPOOL_MAX_BYTES"] = "lots"
    with pytest.raises(ConfigError, match="ISPFLOW_SPOOL_MAX_BYTES is not valid .* app's configuration"):
        ISPFlow(app)


def test_a_malformed_setting_fails_with_its_name():
    with pytest.raises(ConfigError, match="ISPFLOW_SPOOL_MAX_BYTES"):
        Settings.from_env({"ISPFLOW_SPOOL_MAX_BYTES": "lots"})


def test_a_prefix_without_leading_slash_is_refused():
    app = Flask("host")
    app.config["ISPFLOW_URL_PREFIX"] = "netflow"
    with pytest.raises(ConfigError, match="must start with '/'"):
        ISPFlow(app)


def test_a_non_postgresql_database_url_is_refused():
    app = Flask("host")
    app.config["ISPFLOW_DATABASE_URL"] = "mysql://root@localhost/isp"
    with pytest.raises(ConfigError, match="must point to PostgreSQL"):
        ISPFlow(app)
