"""MX hosts for ptt's relay tests: several aiosmtpd listeners, one per
loopback address, each with a behaviour, storing what they accept as JSON.

argv[1]: a JSON file: {"root": DIR, "port": N, "hosts": [{"ip": "127.0.0.3",
"behaviour": "accept" | "tempfail_once" | "reject_rcpt" | "reject_data" |
"by_address" (refuses local parts starting with "gone", greylists once those
starting with "slow", takes the rest),
"cert": PEM or null, "key": PEM or null, "auth": "USER:PASSWORD" or null},
...]}; a host with "auth" takes mail only after AUTH (under TLS).
"""

import json
import os
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def authenticator_for(expected):
    user, password = expected.split(":", 1)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        return AuthResult(success=ok)

    return authenticator


class Host:
    def __init__(self, root, ip, behaviour):
        self.dir = os.path.join(root, ip)
        os.makedirs(self.dir, exist_ok=True)
        self.behaviour = behaviour
        self.seen = set()
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.behaviour == "reject_rcpt":
            return "550 5.1.1 <%s>: no such user here" % address
        local = address.split("@")[0].lower()
        if self.behaviour == "by_address" and local.startswith("gone"):
            return "550 5.1.1 <%s>: no such user here" % address
        slow = self.behaviour == "by_address" and local.startswith("slow")
        if (self.behaviour == "tempfail_once" or slow) and address not in self.seen:
            self.seen.add(address)
            return "451 4.3.0 greylisted, come back later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 ok"

    async def handle_DATA(self, server, session, envelope):
        if self.behaviour == "reject_data":
            return "554 5.7.1 message refused by policy"
        self.count += 1
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "peer": session.peer[0],
            "helo": session.host_name,
            "tls": session.ssl is not None,
            "authenticated": bool(getattr(session, "authenticated", False)),
            "data": envelope.original_content.decode("utf-8", "replace"),
        }
        path = os.path.join(self.dir, "%04d.json" % self.count)
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 2.0.0 stored"


def main():
    with open(sys.argv[1]) as f:
        config = json.load(f)
    controllers = []
    for h in config["hosts"]:
        kwargs = {}
        if h.get("cert"):
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(h["cert"], h["key"])
            kwargs["tls_context"] = context
        if h.get("auth"):
            kwargs["authenticator"] = authenticator_for(h["auth"])
            kwargs["auth_required"] = True
            kwargs["auth_require_tls"] = True
        c = Controller(
            Host(config["root"], h["ip"], h["behaviour"]),
            hostname=h["ip"],
            port=config["port"],
            server_hostname="mx",
            **kwargs,
        )
        c.start()
        controllers.append(c)
    print("READY", flush=True)
    try:
        sys.stdin.read()
    finally:
        for c in controllers:
            c.stop()


if __name__ == "__main__":
    main()
