#!/usr/bin/env python3
"""The relay load's generator: N messages of about L octets over S
connections at once (one process each), STARTTLS on every connection and
AUTH PLAIN when USER and PASSWORD are given. The same messages go to
Postfix and to ptt.

usage: relay_clients.py PORT N S L FROM TO [USER PASSWORD]
prints: sent K errors E seconds T
"""
import multiprocessing
import smtplib
import ssl
import sys
import time

port, n, s, size = (int(a) for a in sys.argv[1:5])
sender, to = sys.argv[5], sys.argv[6]
user = sys.argv[7] if len(sys.argv) > 8 else None
password = sys.argv[8] if len(sys.argv) > 8 else None


def worker(k, count, out):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    body = ("x" * 70 + "\r\n") * max(1, size // 72)
    sent = errors = 0
    c = smtplib.SMTP("127.0.0.1", port, timeout=300)
    c.ehlo("load%d.test" % k)
    c.starttls(context=ctx)
    c.ehlo("load%d.test" % k)
    if user:
        c.login(user, password)
    for i in range(count):
        msg = (
            "From: %s\r\nTo: %s\r\nSubject: load %d-%d\r\nMessage-ID: <%d.%d@load.test>\r\n"
            "Date: Mon, 7 Dec 2026 10:00:00 +0000\r\n\r\n%s" % (sender, to, k, i, k, i, body)
        )
        try:
            c.sendmail(sender, [to], msg)
            sent += 1
        except smtplib.SMTPException:
            errors += 1
    c.quit()
    out.put((sent, errors))


if __name__ == "__main__":
    out = multiprocessing.Queue()
    per = [n // s + (1 if k < n % s else 0) for k in range(s)]
    t0 = time.time()
    procs = [multiprocessing.Process(target=worker, args=(k, per[k], out)) for k in range(s)]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    print("sent %d errors %d seconds %.2f" % (sum(r[0] for r in results), sum(r[1] for r in results), time.time() - t0))
