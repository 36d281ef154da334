"""Settings and the `run` command's argument handling."""

from __future__ import annotations

import argparse

import pytest

from autoscaler.app import register, settings_from_args
from autoscaler.errors import InputError


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["run", *argv])


def test_flags_override_environment_over_defaults(monkeypatch):
    monkeypatch.setenv("IAS_NAMESPACES", "a, b")
    monkeypatch.setenv("IAS_LEASE_DURATION", "20")
    settings = settings_from_args(_parse(["--lease-duration", "30", "--no-leader-elect"]))
    assert settings.namespace_list == ["a", "b"]
    assert settings.lease_duration == 30.0 and settings.leader_elect is False
    assert settings.renew_deadline == 10.0 and settings.health_port == 8081
    assert callable(_parse([]).handler)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--renew-deadline", "20"], "renew_deadline (20.0s) must be less than lease_duration"),
        (["--health-port", "70000"], "--health-port"),
        (["--log-format", "xml"], "--log-format"),
        (["--tls-cert-file", "tls.crt"], "tls_cert_file and tls_key_file must be given together"),
        (["--external-metrics-port", "-2"], "--external-metrics-port"),
    ],
)
def test_bad_settings_name_the_flag(argv, needle):
    with pytest.raises(InputError) as err:
        settings_from_args(_parse(argv))
    assert needle in str(err.value)
