"""One gRPC channel to one or several Triton servers, balanced per request.

Shared by the gateway and the bulk scorer. ``TRITON_URL`` may name:

* one server: ``host:port`` (as before);
* a list: ``10.0.0.5:8001,10.0.0.6:8001`` (names are resolved once, at start: a static set);
* a gRPC target: ``dns:///triton-headless:8001`` (a Kubernetes headless Service: every pod's IP),
  ``ipv4:…``/``ipv6:…`` or ``unix:…``.

Why per request: kube-proxy (a ClusterIP Service) balances *connections*; one long-lived channel
pins every request of a gateway to one Triton pod, so pods an autoscaler adds stay idle. With the
``round_robin`` policy the channel keeps a subchannel to every address and spreads requests; a
server that goes away drops out of the rotation (its subchannel is not READY) and comes back when
it is reachable again. DNS is re-resolved when a connection drops; a new pod that breaks no
connection is only found by re-resolving, so the owner recreates the channel every
``max_connection_age_s`` (see :class:`gateway.triton_backend.TritonBackend`).
"""

from __future__ import annotations

import ipaddress
import json
import socket
from dataclasses import dataclass

_SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:")


@dataclass(frozen=True)
class TritonTarget:
    """A parsed ``TRITON_URL``: ``target`` for gRPC, ``endpoints`` as given (for logs and /health)."""

    target: str
    endpoints: tuple[str, ...]


def _split_host_port(item: str, original: str) -> tuple[str, int]:
    for scheme in ("http://", "grpc://"):
        if item.startswith(scheme):
            item = item[len(scheme) :]
    item = item.rstrip("/")
    host, _, port = item.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(
            f"a Triton address must be host:port, a comma-separated list of them, or a gRPC target such as "
            f"dns:///triton-headless:8001; got {original!r}"
        )
    return host, int(port)


def _literal(host: str, port: int) -> tuple[str, str]:
    """(family, "addr:port") for an IP literal or a name resolved now."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ValueError(f"TRITON_URL: cannot resolve {host!r}: {exc.strerror}") from exc
        # IPv4 first: "localhost" may list ::1 first while servers here bind 127.0.0.1.
        infos.sort(key=lambda info: info[0] != socket.AF_INET)
        address = ipaddress.ip_address(infos[0][4][0])
    if address.version == 6:
        return "ipv6", f"[{address}]:{port}"
    return "ipv4", f"{address}:{port}"


def parse_target(url: str) -> TritonTarget:
    """``TRITON_URL`` → a gRPC target string. Raises ValueError with a one-line reason."""
    text = url.strip()
    if text.startswith(_SCHEMES):
        if text.startswith("dns:"):
            # dns:///name:port or dns:name:port; the authority part (dns://server/…) is allowed too.
            _split_host_port(text.split("/")[-1] if "/" in text else text[4:], url)
        return TritonTarget(text, (text,))
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ValueError("TRITON_URL is empty")
    pairs = [_split_host_port(item, url) for item in items]
    endpoints = tuple(f"{h}:{p}" if ":" not in h else f"[{h}]:{p}" for h, p in pairs)
    if len(pairs) == 1:
        return TritonTarget(endpoints[0], endpoints)
    literals = [_literal(h, p) for h, p in pairs]
    families = {family for family, _ in literals}
    if len(families) != 1:
        raise ValueError(f"TRITON_URL mixes IPv4 and IPv6 addresses: {url!r}")
    return TritonTarget(f"{families.pop()}:{','.join(a for _, a in literals)}", endpoints)


def channel_args() -> list[tuple[str, str | int]]:
    """gRPC channel options: tritonclient's message limits, round_robin, short reconnect backoff.

    gRPC backs off reconnects exponentially (1 s, ×1.6 per failed attempt, up to 120 s): after a
    Triton outage of a few seconds the gateway stayed unready for seconds after Triton was back.
    Capped at 1 s, a server rejoins the rotation within about a second whatever the outage lasted.
    ``round_robin`` with a single address behaves like the default ``pick_first``.
    """
    from tritonclient.grpc import KeepAliveOptions
    from tritonclient.grpc._client import MAX_GRPC_MESSAGE_SIZE

    keepalive = KeepAliveOptions()
    # round_robin, wrapped in outlier detection: a server whose calls almost all fail (Triton
    # unloading its models during shutdown, with its port still open) is taken out of the
    # rotation for a few seconds instead of getting every other request. At most half the
    # servers are ever ejected, and ordinary overload (some calls refused) stays below the bar.
    service_config: dict[str, object] = {
        "loadBalancingConfig": [
            {
                "outlier_detection_experimental": {
                    "interval": "0.2s",
                    "baseEjectionTime": "5s",
                    "maxEjectionTime": "30s",
                    "maxEjectionPercent": 50,
                    "failurePercentageEjection": {
                        "threshold": 90,
                        "enforcementPercentage": 100,
                        "minimumHosts": 2,
                        "requestVolume": 5,
                    },
                    "childPolicy": [{"round_robin": {}}],
                }
            }
        ]
    }
    return [
        ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_SIZE),
        ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_SIZE),
        ("grpc.keepalive_time_ms", keepalive.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", keepalive.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", int(keepalive.keepalive_permit_without_calls)),
        ("grpc.http2.max_pings_without_data", keepalive.http2_max_pings_without_data),
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.min_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 1000),
        ("grpc.lb_policy_name", "round_robin"),
        ("grpc.service_config", json.dumps(service_config)),
        # Each channel gets its own subchannels: a channel recreated for re-resolution must open
        # fresh connections, not share (and inherit the pinning of) the old channel's.
        ("grpc.use_local_subchannel_pool", 1),
    ]
