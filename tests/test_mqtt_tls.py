"""MQTT over TLS with a password, against a private mosquitto with a TLS listener.

Certificates come from the ``openssl`` command (a throw-away CA and a broker certificate for
``localhost``); the broker accepts only TLS and only the user in its password file.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import aiomqtt
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr, ValidationError
from structlog.testing import capture_logs

from ctid.errors import ConfigError
from ctid.mqtt.publisher import DISCONNECT_TIMEOUT_S, MqttPublisher, bounded_session
from ctid.mqtt.settings import MqttSettings
from ctid.mqtt.tls import tls_context
from tests.test_mqtt import MOSQUITTO, _body, mosquitto, receive, running, until

OPENSSL = shutil.which("openssl")
USER, PASSWORD = "ctid", "s3cret-mqtt"


def _openssl(command: str, cwd: Path) -> None:
    assert OPENSSL is not None
    subprocess.run([OPENSSL, *shlex.split(command)], cwd=cwd, check=True, capture_output=True)


def _new_ca(directory: Path, name: str) -> None:
    """ca.pem and ca.key in ``directory``: a self-signed CA called ``name``."""
    _openssl(
        f"req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN={name}' -keyout ca.key -out ca.pem",
        cwd=directory,
    )


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    """ca.pem, and server.pem/server.key signed by it for CN/SAN localhost."""
    if OPENSSL is None:
        pytest.skip("openssl is not installed (Debian package openssl)")
    _new_ca(tmp_path, "ctid test CA")
    _openssl(
        "req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr",
        cwd=tmp_path,
    )
    (tmp_path / "san.ext").write_text("subjectAltName=DNS:localhost\n")
    _openssl(
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2"
        " -extfile san.ext -out server.pem",
        cwd=tmp_path,
    )
    return tmp_path


@pytest.fixture
def tls_broker(pki: Path) -> tuple[int, Path]:
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed: run scripts/ensure-mosquitto.sh")
    passwd = shutil.which("mosquitto_passwd")
    if passwd is None:
        pytest.skip("mosquitto_passwd is not installed (Debian package mosquitto)")
    subprocess.run([passwd, "-c", "-b", str(pki / "passwd"), USER, PASSWORD], check=True)
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]
    conf = pki / "mosquitto.conf"
    # Started as root, mosquitto would drop to its own user, which cannot read the tmp files.
    stay = "user root\n" if os.geteuid() == 0 else ""
    conf.write_text(
        stay + f"listener {port} 127.0.0.1\n"
        f"cafile {pki / 'ca.pem'}\ncertfile {pki / 'server.pem'}\nkeyfile {pki / 'server.key'}\n"
        f"allow_anonymous false\npassword_file {pki / 'passwd'}\npersistence false\n"
    )
    return port, conf


def _tls_settings(port: int, ca: Path, **extra: object) -> MqttSettings:
    fields: dict[str, object] = {
        "enabled": True,
        "host": "localhost",
        "port": port,
        "topic_prefix": "tls",
        "tls": True,
        "ca_file": ca,
        "username": USER,
        "password": SecretStr(PASSWORD),
        "backoff_initial": 0.05,
        "backoff_max": 0.2,
    }
    fields.update(extra)
    return MqttSettings.model_validate(fields)


def _subscriber(port: int, ca: Path) -> contextlib.AbstractAsyncContextManager[aiomqtt.Client]:
    context = ssl.create_default_context(cafile=str(ca))
    client = aiomqtt.Client(
        "localhost", port, username=USER, password=PASSWORD, tls_context=context, timeout=5
    )
    # aiomqtt alone can wait forever for a TLS goodbye; ctid's bound applies to the test too.
    return bounded_session(client, DISCONNECT_TIMEOUT_S)


@pytest.mark.mqtt
@pytest.mark.asyncio
async def test_messages_reach_a_tls_broker_that_requires_a_password(
    tls_broker: tuple[int, Path], pki: Path
) -> None:
    port, conf = tls_broker
    publisher = MqttPublisher(_tls_settings(port, pki / "ca.pem"), "hq", CollectorRegistry())
    with mosquitto(port, conf):
        async with _subscriber(port, pki / "ca.pem") as sub:
            await sub.subscribe("tls/hq/call/#", qos=1)
            async with running(publisher):
                publisher.offer("call/ended", {"n": 1})
                got = await receive(sub, 1, within=15)
    assert [_body(m)["n"] for m in got] == [1]
    assert publisher.published == 1


@pytest.mark.mqtt
@pytest.mark.asyncio
# paho-mqtt leaves the socket of a failed TLS handshake to the garbage collector.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_broker_certificate_from_another_ca_is_refused(
    tls_broker: tuple[int, Path], pki: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    port, conf = tls_broker
    other = tmp_path_factory.mktemp("other-ca")
    _new_ca(other, "other CA")
    publisher = MqttPublisher(_tls_settings(port, other / "ca.pem"), "hq", CollectorRegistry())
    with mosquitto(port, conf), capture_logs() as logs:
        publisher.offer("call/ended", {"n": 1})
        async with running(publisher):
            await until(lambda: any(e["event"] == "mqtt_unavailable" for e in logs))
    assert publisher.published == 0
    assert publisher.depth() == 1  # kept for when the trust problem is fixed
    failure = next(e for e in logs if e["event"] == "mqtt_unavailable")
    assert "certificate" in failure["error"].lower()


@pytest.mark.mqtt
@pytest.mark.asyncio
async def test_a_wrong_password_is_not_connected(tls_broker: tuple[int, Path], pki: Path) -> None:
    port, conf = tls_broker
    settings = _tls_settings(port, pki / "ca.pem", password=SecretStr("wrong"))
    publisher = MqttPublisher(settings, "hq", CollectorRegistry())
    with mosquitto(port, conf), capture_logs() as logs:
        async with running(publisher):
            await until(lambda: any(e["event"] == "mqtt_unavailable" for e in logs))
    assert publisher.published == 0
    assert all(PASSWORD not in str(e) and "wrong" not in str(e) for e in logs)


def test_an_unreadable_ca_file_is_one_config_error(tmp_path: Path) -> None:
    settings = MqttSettings(tls=True, ca_file=tmp_path / "missing.pem")
    with pytest.raises(ConfigError, match=r"^mqtt.ca_file: .*missing\.pem: No such file"):
        tls_context(settings)


def test_certificate_files_without_tls_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="need tls = true"):
        MqttSettings(ca_file=tmp_path / "ca.pem")
    with pytest.raises(ValidationError, match="go together"):
        MqttSettings(tls=True, cert_file=tmp_path / "client.pem")


def test_without_tls_there_is_no_context() -> None:
    assert tls_context(MqttSettings()) is None
