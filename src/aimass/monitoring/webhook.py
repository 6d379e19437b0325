"""Alert webhooks: Alertmanager webhook (version 4) bodies, retried, deduplicated, SSRF-checked.

A target is checked before every request and on every redirect (followed by
hand, at most ``MAX_REDIRECTS``): its host is resolved and every address it
resolves to must be public (not loopback, private, link-local such as the cloud
metadata address 169.254.169.254, reserved, multicast or unspecified), unless the
host or the address is on the admin's allow-list (``AIMASS_ALERT_ALLOW_HOSTS``).
A delivery is retried with exponential backoff on connection errors, 5xx and
429; the same (fingerprint, status) is sent once.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from aimass.errors import Forbidden, InvalidInput

if TYPE_CHECKING:  # httpx is imported where a webhook is sent, not at the server's start
    import httpx

log = logging.getLogger("aimass.monitoring")

MAX_REDIRECTS = 5
NEVER = "0001-01-01T00:00:00Z"


class DeliveryFailed(Exception):
    """A webhook did not accept an alert after every retry."""


def fingerprint(labels: Mapping[str, str]) -> str:
    """A stable id of an alert from its labels (16 hex digits, as Alertmanager's)."""
    text = json.dumps(dict(sorted(labels.items())), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def alertmanager_body(
    alerts: Iterable[Mapping[str, Any]], receiver: str = "aimass", external_url: str = ""
) -> dict[str, Any]:
    """The Alertmanager webhook (version 4) document for ``alerts`` (one group)."""
    items = []
    for alert in alerts:
        labels = {str(k): str(v) for k, v in alert["labels"].items()}
        items.append(
            {
                "status": alert["status"],
                "labels": labels,
                "annotations": {str(k): str(v) for k, v in alert.get("annotations", {}).items()},
                "startsAt": alert["startsAt"],
                "endsAt": alert.get("endsAt") or NEVER,
                "generatorURL": alert.get("generatorURL", ""),
                "fingerprint": alert.get("fingerprint") or fingerprint(labels),
            }
        )
    common = dict(set.intersection(*(set(a["labels"].items()) for a in items))) if items else {}
    annotations = (
        dict(set.intersection(*(set(a["annotations"].items()) for a in items))) if items else {}
    )
    group = {"alertname": common["alertname"]} if "alertname" in common else {}
    return {
        "version": "4",
        "groupKey": "{}:" + json.dumps(group, sort_keys=True),
        "truncatedAlerts": 0,
        "status": "firing" if any(a["status"] == "firing" for a in items) else "resolved",
        "receiver": receiver,
        "groupLabels": group,
        "commonLabels": common,
        "commonAnnotations": annotations,
        "externalURL": external_url,
        "alerts": items,
    }


def _refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


class TargetPolicy:
    """Which webhook URLs may be called: http(s), and public addresses unless allowed."""

    def __init__(
        self,
        allowed: Iterable[str] = (),
        resolve: Callable[[str], list[str]] | None = None,
    ) -> None:
        self.allowed = {a.strip().lower() for a in allowed if a.strip()}
        self._resolve = resolve or _resolve

    def check(self, url: str) -> None:
        """Raise Forbidden unless ``url`` may be called now (its host resolved here)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInput("a webhook URL must be http:// or https:// with a host")
        host = parts.hostname.lower()
        if host in self.allowed:
            return
        try:
            addresses = self._resolve(host)
        except OSError:
            raise InvalidInput(f"the webhook host {host!r} does not resolve") from None
        for text in addresses:
            address = ipaddress.ip_address(text.split("%")[0])
            if _refused(address) and str(address) not in self.allowed:
                raise Forbidden(
                    f"webhook target {host!r} resolves to {address}, an internal address; "
                    "an admin may allow it (AIMASS_ALERT_ALLOW_HOSTS)"
                )


def _resolve(host: str) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None)})


class WebhookSink:
    """An ``AlertSink`` that POSTs Alertmanager v4 bodies to one URL."""

    def __init__(
        self,
        url: str,
        policy: TargetPolicy | None = None,
        *,
        name: str = "webhook",
        retries: int = 4,
        backoff_s: float = 0.5,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self.policy = policy or TargetPolicy()
        self.retries = retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self._transport = transport
        self._sent: dict[str, str] = {}
        self._lock = threading.Lock()
        self.attempts = 0

    def send(self, alert: Mapping[str, Any]) -> None:
        """Deliver one alert (its Alertmanager fields); a repeat of its last status is skipped."""
        labels = {str(k): str(v) for k, v in alert["labels"].items()}
        key = alert.get("fingerprint") or fingerprint(labels)
        with self._lock:
            if self._sent.get(key) == alert["status"]:
                return
        self.deliver(alertmanager_body([{**alert, "fingerprint": key}]))
        with self._lock:
            self._sent[key] = alert["status"]

    def deliver(self, body: Mapping[str, Any]) -> None:
        """POST ``body``, retrying with backoff; raise DeliveryFailed after the last try."""
        import httpx

        delay = self.backoff_s
        last = "no attempt"
        for attempt in range(1, self.retries + 1):
            self.attempts += 1
            try:
                status = self._post(body)
            except (Forbidden, InvalidInput):
                raise
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}"
            else:
                if status < 300:
                    return
                last = f"HTTP {status}"
                if status < 500 and status != 429:
                    break
            if attempt < self.retries:
                time.sleep(delay)
                delay *= 2
        raise DeliveryFailed(f"webhook {self.name!r} did not accept the alert: {last}")

    def _post(self, body: Mapping[str, Any]) -> int:
        import httpx

        url = self.url
        with httpx.Client(
            timeout=self.timeout_s, follow_redirects=False, transport=self._transport
        ) as http:
            for _ in range(MAX_REDIRECTS + 1):
                self.policy.check(url)
                response = http.post(url, json=body)
                if response.is_redirect and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    continue
                return response.status_code
        raise InvalidInput(f"the webhook redirected more than {MAX_REDIRECTS} times")
