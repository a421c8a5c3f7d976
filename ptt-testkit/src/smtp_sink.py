# An aiosmtpd sink for ptt's tests: stores every accepted message as
# N.eml (the DATA exactly as received) and N.json (envelope and session facts),
# then prints "READY <port>" once it listens.
#
# usage: smtp_sink.py DIR PORT [CERT KEY [implicit]]
import asyncio
import json
import os
import ssl
import sys

from aiosmtpd.controller import Controller


class Store:
    def __init__(self, root, implicit):
        self.root = root
        self.implicit = implicit
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.root, "%06d" % self.count)
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        with open(base + ".eml.tmp", "wb") as f:
            f.write(data)
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "mail_options": envelope.mail_options,
            "helo": session.host_name,
            # aiosmtpd records TLS in session.ssl only after STARTTLS.
            "tls": self.implicit or session.ssl is not None,
        }
        with open(base + ".json.tmp", "w") as f:
            json.dump(meta, f)
        os.rename(base + ".json.tmp", base + ".json")
        os.rename(base + ".eml.tmp", base + ".eml")
        return "250 2.0.0 stored as %06d" % self.count


def main():
    root, port = sys.argv[1], int(sys.argv[2])
    context = None
    implicit = len(sys.argv) > 5 and sys.argv[5] == "implicit"
    if len(sys.argv) > 4:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(sys.argv[3], sys.argv[4])
    kwargs = {}
    if context is not None and implicit:
        kwargs["ssl_context"] = context
    elif context is not None:
        kwargs["tls_context"] = context
    controller = Controller(
        Store(root, implicit),
        hostname="127.0.0.1",
        port=port,
        ident="aiosmtpd ptt-testkit sink",
        server_hostname="sink.test",
        data_size_limit=64 * 1024 * 1024,
        enable_SMTPUTF8=True,
        **kwargs,
    )
    controller.start()
    print("READY %d" % port, flush=True)
    try:
        sys.stdin.read()  # runs until the test closes our stdin or kills us
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
