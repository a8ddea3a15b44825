"""Transport security for every hop: TLS, mutual TLS and bearer-token auth.

Servers: `--tls-cert/--tls-key` serve TLS, `--tls-client-ca` also demands a
client certificate signed by that CA, `--auth-token-file` (or the
SEEDBENCH_AUTH_TOKEN environment variable) demands `authorization: Bearer
<token>` on every call but health checks, checked by `TokenAuth` before any
work. Clients: `--tls-ca` verifies the server, `--tls-cert/--tls-key` present a
client certificate, `--auth-token-file` sends the token. The token and keys are
never logged nor put in an error message. Torch-free: the evaluator uses it too.
"""

from __future__ import annotations

import argparse
import hmac
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import grpc

log = logging.getLogger(__name__)
TOKEN_ENV = "SEEDBENCH_AUTH_TOKEN"
OPEN_METHODS_PREFIX = "/grpc.health.v1.Health/"  # probes (kubelet, launcher) need no token


class SecurityError(ValueError):
    """Unusable security material; the message names the option and file, never the content."""


def _read(path: str, option: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SecurityError(f"{option} {path}: cannot read ({exc.strerror or exc})") from None
    if not data.strip():
        raise SecurityError(f"{option} {path}: the file is empty")
    return data


def load_token(path: str | None, env: str = TOKEN_ENV) -> str | None:
    """The bearer token from --auth-token-file, else the environment; None: no auth."""
    if path:
        raw = _read(path, "--auth-token-file").decode("utf-8", "replace").strip()
    else:
        raw = os.environ.get(env, "").strip()
    if raw and any(c.isspace() or not c.isprintable() for c in raw):
        raise SecurityError("--auth-token-file: the token must be one printable word")
    return raw or None


def add_server_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("transport security (docs/reliability.md)")
    g.add_argument("--tls-cert", metavar="FILE", help="serve TLS with this PEM certificate chain")
    g.add_argument("--tls-key", metavar="FILE", help="the certificate's PEM private key")
    g.add_argument("--tls-client-ca", metavar="FILE",
                   help="mutual TLS: require client certificates signed by this CA")
    g.add_argument("--auth-token-file", metavar="FILE",
                   help=f"require this bearer token on every call but health (else ${TOKEN_ENV})")


def add_client_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("transport security (docs/reliability.md)")
    g.add_argument("--tls-ca", metavar="FILE",
                   help="connect with TLS, trusting servers signed by this CA")
    g.add_argument("--tls-cert", metavar="FILE", help="mutual TLS: this client certificate")
    g.add_argument("--tls-key", metavar="FILE", help="mutual TLS: the client certificate's key")
    g.add_argument("--auth-token-file", metavar="FILE",
                   help=f"send this bearer token (else ${TOKEN_ENV})")


@dataclass(frozen=True)
class ServerSecurity:
    cert: bytes | None = None
    key: bytes | None = None
    client_ca: bytes | None = None
    token: str | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ServerSecurity:
        cert, key, ca = args.tls_cert, args.tls_key, args.tls_client_ca
        if bool(cert) != bool(key):
            raise SecurityError("--tls-cert and --tls-key go together")
        if ca and not cert:
            raise SecurityError("--tls-client-ca needs --tls-cert and --tls-key")
        return cls(cert=_read(cert, "--tls-cert") if cert else None,
                   key=_read(key, "--tls-key") if key else None,
                   client_ca=_read(ca, "--tls-client-ca") if ca else None,
                   token=load_token(args.auth_token_file))

    def __repr__(self) -> str:  # never the key or token
        return f"ServerSecurity({self.describe()})"

    def describe(self) -> str:
        parts = ["mutual TLS" if self.client_ca else "TLS" if self.cert else "plaintext"]
        parts.append("token auth" if self.token else "no auth")
        return ", ".join(parts)

    def bind(self, server: grpc.aio.Server, address: str) -> int:
        if not self.cert:
            return server.add_insecure_port(address)
        creds = grpc.ssl_server_credentials(
            [(self.key, self.cert)], root_certificates=self.client_ca,
            require_client_auth=bool(self.client_ca))
        return server.add_secure_port(address, creds)

    def interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        return [TokenAuth(self.token)] if self.token else []


def _deny(message: str) -> grpc.RpcMethodHandler:
    async def abort(request, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return grpc.unary_unary_rpc_method_handler(abort)


class TokenAuth(grpc.aio.ServerInterceptor):
    """Refuse (UNAUTHENTICATED) a call without the right bearer token before any work."""

    def __init__(self, token: str):
        self._expected = f"Bearer {token}".encode()

    async def intercept_service(self, continuation, details: grpc.HandlerCallDetails):
        if details.method.startswith(OPEN_METHODS_PREFIX):
            return await continuation(details)
        sent = next((v for k, v in details.invocation_metadata or () if k == "authorization"), None)
        if sent is not None and hmac.compare_digest(
                sent.encode() if isinstance(sent, str) else sent, self._expected):
            return await continuation(details)
        why = "no bearer token" if sent is None else "wrong bearer token"
        log.warning("refused %s: %s", details.method, why)
        return _deny(f"{why} (the server requires --auth-token-file)")


@dataclass(frozen=True)
class ClientSecurity:
    ca: bytes | None = None
    cert: bytes | None = None
    key: bytes | None = None
    token: str | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ClientSecurity:
        ca, cert, key = (getattr(args, n, None) for n in ("tls_ca", "tls_cert", "tls_key"))
        if bool(cert) != bool(key):
            raise SecurityError("--tls-cert and --tls-key go together")
        if cert and not ca:
            raise SecurityError("--tls-cert (mutual TLS) needs --tls-ca")
        return cls(ca=_read(ca, "--tls-ca") if ca else None,
                   cert=_read(cert, "--tls-cert") if cert else None,
                   key=_read(key, "--tls-key") if key else None,
                   token=load_token(getattr(args, "auth_token_file", None)))

    def __repr__(self) -> str:
        return f"ClientSecurity(tls={bool(self.ca)}, client_cert={bool(self.cert)}, " \
               f"token={bool(self.token)})"

    def _credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(root_certificates=self.ca, private_key=self.key,
                                            certificate_chain=self.cert)

    def aio_channel(self, target: str, options=()) -> grpc.aio.Channel:
        interceptors = [_TokenHeader(self.token)] if self.token else None
        if self.ca:
            return grpc.aio.secure_channel(target, self._credentials(), options=list(options),
                                           interceptors=interceptors)
        return grpc.aio.insecure_channel(target, options=list(options), interceptors=interceptors)

    def channel(self, target: str, options=()) -> grpc.Channel:
        """A blocking channel (health checks: no token needed)."""
        if self.ca:
            return grpc.secure_channel(target, self._credentials(), options=list(options))
        return grpc.insecure_channel(target, options=list(options))


PLAIN = ClientSecurity()


class _TokenHeader(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, token: str):
        self._header = ("authorization", f"Bearer {token}")

    async def intercept_unary_unary(self, continuation, details, request):
        metadata = [*(details.metadata or ()), self._header]
        return await continuation(details._replace(metadata=metadata), request)


def explain(target: str, code: grpc.StatusCode | None, details: str,
            security: ClientSecurity = PLAIN) -> str | None:
    """One line naming what failed when a call never got past TLS or auth; None otherwise."""
    d = (details or "").lower()
    if code == grpc.StatusCode.UNAUTHENTICATED:
        sent = "a token that the server refused" if security.token else "no token"
        return (f"{target} refused the call: authentication failed (sent {sent}; "
                f"--auth-token-file / ${TOKEN_ENV})")
    if "certificate_verify_failed" in d or "certificate verify failed" in d:
        return f"TLS handshake with {target} failed: certificate not trusted (--tls-ca)"
    if "wrong_version_number" in d or "packet_length_too_long" in d:
        return (f"TLS handshake with {target} failed: the server speaks plaintext "
                f"(drop --tls-ca, or start the server with --tls-cert/--tls-key)")
    if "certificate_required" in d or "peer did not return a certificate" in d or (
            "handshake" in d and security.ca and not security.cert):
        return (f"TLS handshake with {target} failed: the server requires a client "
                f"certificate (--tls-cert/--tls-key)")
    if "handshake" in d or "ssl" in d:
        return f"TLS handshake with {target} failed (--tls-ca, --tls-cert, --tls-key)"
    if "socket closed" in d or "connection reset" in d or "end of tcp stream" in d:
        if not security.ca:
            return (f"{target} closed the connection: the server may require TLS "
                    f"(--tls-ca FILE)")
        if not security.cert:
            return (f"TLS handshake with {target} failed: the server may require a client "
                    f"certificate (--tls-cert/--tls-key)")
        return (f"TLS handshake with {target} failed: the server refused the client "
                f"certificate (--tls-cert/--tls-key)")
    return None
