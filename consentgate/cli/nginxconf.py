"""``consentgate nginx-config``: an nginx front for the split deployment.

Most requests after sign-in (MCP tool calls, event streams) need no consent
decision. With ``[upstream] direct_paths`` (for example ``["/mcp"]``) nginx sends
those straight to the upstream and **everything else** to the gate: the gate's own
pages, the authorization, registration and callback endpoints, and any path not
on the allow-list. Failing closed is the layout: a path reaches the upstream
directly only by matching an allow-listed prefix exactly and case-sensitively.

Path tricks cannot route an authorization or a callback around the gate:

* nginx matches locations on the *normalised* path (percent-decoding, ``.`` and
  ``..`` segments resolved, ``//`` merged), so ``/mcp/../authorize`` matches the
  gate's location, never a direct one;
* a direct location still sends a request to the gate when the raw request target
  has anything a normaliser could read another way than the upstream does: any
  ``%`` escape, a ``..``, ``//``, ``;`` or a backslash. Those go through the gate,
  which applies its own path rules (encoded ``?``/``#``, dot segments, overlong and
  full-width slashes are refused on its endpoints), so an odd spelling of a data
  plane path still works, only not at nginx speed.

Pure (text from the configuration, no I/O); only ``nginx-config`` uses it.
"""

from __future__ import annotations

from consentgate.config.model import Config

#: A raw request target with any of these goes to the gate even under a direct path:
#: an escape, a dot-dot, a double slash, a ``;`` parameter, a backslash (``\x5c``,
#: spelled so because nginx's own string escapes would eat ``\\``).
ODD_TARGET = r"(%|\.\.|//|;|\x5c)"


def _host_port(url: str) -> str:
    rest = url.split("://", 1)[1]
    default = "443" if url.startswith("https://") else "80"
    return rest if ":" in rest.rsplit("]", 1)[-1] else f"{rest}:{default}"


def nginx_config(
    config: Config, *, listen: str = "80", server_name: str = "_", gate: str | None = None
) -> str:
    """The nginx ``upstream``, ``map`` and ``server`` blocks (for an ``http {}`` block).

    ``gate``: the gate's ``host:port`` when it is not ``[server] listen`` (a socket
    bound elsewhere, as in the tests)."""
    gate = gate or str(config.server.listen)
    upstream = _host_port(config.upstream.url)
    scheme = "https" if config.upstream.url.startswith("https://") else "http"
    direct = config.upstream.direct_paths
    host = "$host" if config.upstream.host_header == "preserve" else upstream.rsplit(":", 1)[0]
    if config.upstream.host_header != "preserve" and not upstream.endswith((":80", ":443")):
        host = upstream
    proxy = """\
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_buffering off;
        proxy_request_buffering off;
        proxy_read_timeout 1h;"""
    forwarded = """\
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-Host $host;"""
    lines = [
        "# consentgate split deployment, printed by `consentgate nginx-config` (docs/deploy.md).",
        "# The gate must trust this nginx: [server] trusted_proxies must hold its address.",
        "upstream consentgate_gate {",
        f"    server {gate};",
        "    keepalive 32;",
        "}",
    ]
    if direct:
        lines += [
            "upstream consentgate_direct {",
            f"    server {upstream};",
            "    keepalive 32;",
            "}",
            "# Under a direct path, a raw target a normaliser could read differently goes",
            "# to the gate all the same.",
            "map $request_uri $consentgate_data_plane {",
            f"    default {scheme}://consentgate_direct;",
            f'    "~{ODD_TARGET}" http://consentgate_gate;',
            "}",
            "# The Host the upstream expects on a direct request ([upstream] host_header).",
            "map $consentgate_data_plane $consentgate_host {",
            f"    default {host};",
            "    http://consentgate_gate $host;",
            "}",
        ]
    lines += [
        "server {",
        f"    listen {listen};",
        f"    server_name {server_name};",
        "    merge_slashes on;",
        f"    client_max_body_size {config.server.max_body_size};",
        "",
        "    # Everything that is not an allow-listed data-plane path: the gate.",
        "    location / {",
        "        proxy_pass http://consentgate_gate;",
        "        proxy_set_header Host $host;",
        forwarded,
        proxy,
        "    }",
    ]
    for path in direct:
        prefix = path.rstrip("/")
        for match, where in (("=", prefix), ("^~", prefix + "/")):
            lines += [
                "",
                f"    # {where}: the data plane, straight to the upstream (no consent needed).",
                f"    location {match} {where} {{",
                "        proxy_pass $consentgate_data_plane;",
                "        proxy_set_header Host $consentgate_host;",
                *(["        proxy_ssl_server_name on;"] if scheme == "https" else []),
                forwarded,
                proxy,
                "    }",
            ]
    lines.append("}")
    return "\n".join(lines) + "\n"
