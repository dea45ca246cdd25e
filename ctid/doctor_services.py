"""``ctid doctor``'s checks of the services beside the PBX: the database and the MQTT broker."""

from __future__ import annotations

import asyncio

import aiomqtt

from ctid.doctor import Finding
from ctid.errors import StoreError
from ctid.mqtt.settings import MqttSettings
from ctid.store.engine import make_engine, redact_url, store_url
from ctid.store.migrate import current_revision, head_revision
from ctid.store.settings import StoreSettings


def _check_store(settings: StoreSettings) -> Finding:
    url = store_url(settings)
    where = redact_url(url)
    try:
        engine = make_engine(url)
    except StoreError as err:
        return Finding("store", False, str(err), "fix [store] url")
    try:
        current = current_revision(engine)
    except StoreError as err:
        hint = "check [store] url, the server and its credentials"
        return Finding("store", False, f"{where}: {err}", hint)
    finally:
        engine.dispose()
    if current != head_revision():
        state = "empty" if current is None else f"at revision {current}"
        return Finding("store", False, f"{where}: schema {state}", "run `ctid db upgrade`")
    return Finding("store", True, f"{where} reachable and migrated")


async def check_store(settings: StoreSettings) -> Finding:
    if not settings.enabled:
        return Finding("store", True, "disabled ([store] enabled = false)")
    return await asyncio.to_thread(_check_store, settings)


async def check_mqtt(settings: MqttSettings, patience: float = 5.0) -> Finding:
    if not settings.enabled:
        return Finding("mqtt", True, "disabled ([mqtt] enabled = false)")
    where = f"{settings.host}:{settings.port}"
    password = settings.password.get_secret_value() if settings.password else None
    client = aiomqtt.Client(
        settings.host,
        settings.port,
        username=settings.username,
        password=password,
        timeout=patience,
    )
    try:
        async with asyncio.timeout(patience), client:
            pass
    except (aiomqtt.MqttError, TimeoutError, OSError) as err:
        hint = "check [mqtt] host/port/credentials and that the broker runs"
        return Finding("mqtt", False, f"{where}: {err or type(err).__name__}", hint)
    return Finding("mqtt", True, f"{where} accepted a connection")
