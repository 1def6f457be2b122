#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) for the postmark crate's SMTP transport tests.

Listens on 127.0.0.1 on a free port, offers STARTTLS (unless --no-starttls) and AUTH PLAIN/LOGIN
with one user, and refuses mail from unauthenticated sessions. Prints "READY <port>" on stdout once
listening. Each message received is written to --out-dir as NNNN.eml (the raw message) and then
NNNN.json (envelope sender, recipients, whether the session was authenticated and encrypted,
the client's address and port: one port per connection).
Exits when its stdin closes, so it never outlives the test that started it.

Needs aiosmtpd (python3 -m pip install aiosmtpd); the Rust test harness installs it when missing.
"""

import argparse
import asyncio
import json
import os
import ssl
import sys
import threading

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Store:
    """Writes every message to the output directory."""

    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.out_dir, "%04d" % self.count)
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        write_atomically(base + ".eml", raw)
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "authenticated": bool(session.authenticated),
            "encrypted": session.ssl is not None,
            "peer": list(session.peer) if session.peer else None,
        }
        write_atomically(base + ".json", json.dumps(meta).encode("utf-8"))
        return "250 2.0.0 Ok: queued as test-%04d" % self.count


def write_atomically(path, data):
    with open(path + ".tmp", "wb") as out:
        out.write(data)
    os.replace(path + ".tmp", path)


class Authenticator:
    """Accepts exactly one user name and password, with any mechanism."""

    def __init__(self, user, password):
        self.user = user.encode("utf-8")
        self.password = password.encode("utf-8")

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.user
            and auth_data.password == self.password
        )
        return AuthResult(success=ok, handled=False)


def exit_when_stdin_closes(loop, stop):
    def watch():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch, daemon=True).start()


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", required=True, help="where received messages are written")
    parser.add_argument("--user", required=True, help="the one accepted user name")
    parser.add_argument("--password", required=True, help="the one accepted password")
    parser.add_argument("--cert", help="PEM certificate chain for STARTTLS")
    parser.add_argument("--key", help="PEM private key for STARTTLS")
    parser.add_argument("--no-starttls", action="store_true", help="do not offer STARTTLS")
    args = parser.parse_args()

    tls_context = None
    if not args.no_starttls:
        if not (args.cert and args.key):
            parser.error("--cert and --key are needed unless --no-starttls")
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(args.cert, args.key)

    store = Store(args.out_dir)
    authenticator = Authenticator(args.user, args.password)
    loop = asyncio.get_running_loop()

    def factory():
        return SMTP(
            store,
            hostname="localhost",
            tls_context=tls_context,
            require_starttls=tls_context is not None,
            authenticator=authenticator,
            auth_required=True,
            auth_require_tls=tls_context is not None,
            loop=loop,
        )

    server = await loop.create_server(factory, host="127.0.0.1", port=0)
    port = server.sockets[0].getsockname()[1]
    print("READY %d" % port, flush=True)

    stop = asyncio.Event()
    exit_when_stdin_closes(loop, stop)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
