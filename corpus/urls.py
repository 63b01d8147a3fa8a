"""URL normalisation: one key per page, whatever tracking parameters or spelling it was fetched with.

Used twice: cheap in-file skipping of refetched URLs, and global exact dedup by URL.
Rules (conservative: two different pages must never share a key): lowercase scheme and host,
drop `www.`, default ports, the fragment, tracking parameters (utm_*, fbclid, gclid, ...),
a trailing slash, and sort the remaining query parameters. http and https map together.
"""
from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

TRACKING_PARAMS = {"fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "yclid", "igshid",
                   "ref", "ref_src", "cmpid", "ocid", "_ga"}


def host_of(url: str) -> str:
    """Lowercased host without port; '' when the URL has none."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def normalize_url(url: str) -> str:
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:  # e.g. an invalid port: keep the raw string, still a usable key
        return url.strip().lower()
    if host.startswith("www."):
        host = host[4:]
    if port and port not in (80, 443):
        host = f"{host}:{port}"
    query = sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                   if not k.lower().startswith("utm_") and k.lower() not in TRACKING_PARAMS)
    path = parts.path.rstrip("/") or "/"
    return f"//{host}{path}" + (f"?{urlencode(query)}" if query else "")
