"""TLS contexts presenting a connection's client certificate (mutual TLS).

A connection's certificate and key live in the vault as PEM text, but ``ssl`` loads a
certificate chain only from files. So the PEM is written to a private temporary file
(created with mode 0600 in a directory only this user can read, as ``mkstemp`` does),
loaded, and removed at once — in ``finally``, so a refused key leaves no file behind.

One context per certificate, cached by a digest of what it was built from: a connection
reloaded every TTL reuses its context, and the transports' connection pools key on the
context object (aiohttp's ``ConnectionKey`` holds the ``ssl`` context), so a kept-alive
connection opened with one connection's certificate is never used for another's request.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import ssl
import tempfile
from collections import OrderedDict

__all__ = ["ClientCertificateError", "client_tls_context"]

#: contexts kept (one per distinct certificate in use); the oldest unused go first
MAX_CONTEXTS = 1024

_contexts: OrderedDict[bytes, ssl.SSLContext] = OrderedDict()


class ClientCertificateError(ValueError):
    """The certificate or key cannot be loaded; the message never holds either."""


def client_tls_context(cert: str, key: str, *, password: str | None = None,
                       ca: str | None = None) -> ssl.SSLContext:
    """A verifying client context (system CAs, plus ``ca`` when given; HTTP/1.1 by ALPN as
    the transports speak) that presents ``cert`` with ``key`` (PEM texts)."""
    digest = hashlib.sha256(
        "\0".join((cert, key, password or "", ca or "")).encode()).digest()
    context = _contexts.get(digest)
    if context is not None:
        _contexts.move_to_end(digest)
        return context
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    if ca:
        try:
            context.load_verify_locations(cadata=ca)
        except (ssl.SSLError, ValueError):
            raise ClientCertificateError("the CA certificate is not a PEM certificate") from None
    fd, path = tempfile.mkstemp(prefix="pw-client-", suffix=".pem")
    try:
        # mkstemp creates it 0600 (owner only); key first, then the chain
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(key.strip() + "\n" + cert.strip() + "\n")
        # a passphrase of "" (never None): an encrypted key fails instead of prompting
        context.load_cert_chain(path, password=password or "")
    except (ssl.SSLError, ValueError, OSError):
        raise ClientCertificateError(
            "the client certificate and key cannot be loaded (PEM certificate and matching "
            "private key expected; a key with a passphrase needs its password)") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    _contexts[digest] = context
    while len(_contexts) > MAX_CONTEXTS:
        _contexts.popitem(last=False)
    return context
