#!/usr/bin/env python3
"""The receiver load's generator: the message in FILE sent N times over S
connections at once (one process each), STARTTLS on every connection, to
HOST:PORT. The same bytes go to every receiver compared.

usage: receiver_load_clients.py HOST PORT N S FROM TO FILE
prints: sent K errors E seconds T, then one line per distinct error.
"""
import multiprocessing
import smtplib
import ssl
import sys
import time
from collections import Counter

host, port, n, s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
sender, to, path = sys.argv[5], sys.argv[6], sys.argv[7]
with open(path, "rb") as f:
    message = f.read()


def worker(k, count, out):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    sent, errors = 0, Counter()
    try:
        c = smtplib.SMTP(host, port, timeout=300)
        c.ehlo("load%d.sender.test" % k)
        c.starttls(context=ctx)
        c.ehlo("load%d.sender.test" % k)
        for _ in range(count):
            try:
                c.sendmail(sender, [to], message)
                sent += 1
            except smtplib.SMTPResponseException as e:
                errors["%d %s" % (e.smtp_code, e.smtp_error[:60])] += 1
        c.quit()
    except Exception as e:
        errors["%s %s" % (type(e).__name__, e)] += 1
    out.put((sent, errors))


out = multiprocessing.Queue()
counts = [n // s + (1 if k < n % s else 0) for k in range(s)]
t0 = time.time()
procs = [multiprocessing.Process(target=worker, args=(k, counts[k], out)) for k in range(s)]
for p in procs:
    p.start()
results = [out.get() for _ in procs]
for p in procs:
    p.join()
t = time.time() - t0
sent = sum(r[0] for r in results)
errors = sum((r[1] for r in results), Counter())
print("sent %d errors %d seconds %.2f" % (sent, sum(errors.values()), t))
for why, count in errors.most_common():
    print("%6d %s" % (count, why))
