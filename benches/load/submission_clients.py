#!/usr/bin/env python3
"""N concurrent submission sessions against ptt: each connects with
implicit TLS, authenticates (AUTH PLAIN), waits until all N are
authenticated and open at once, then sends one message and quits.

usage: submission_clients.py PORT USER PASSWORD N [TO]
prints: sessions N ok K errors E auth_s A send_s S, then one line per
distinct error.
"""
import smtplib
import ssl
import sys
import threading
import time
from collections import Counter

port, user, password, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
to = sys.argv[5] if len(sys.argv) > 5 else user
threading.stack_size(256 * 1024)
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
barrier = threading.Barrier(n + 1)
ok, errors, lock = [0], Counter(), threading.Lock()


def fail(why):
    with lock:
        errors[why] += 1


def client(k):
    s = None
    try:
        s = smtplib.SMTP_SSL("127.0.0.1", port, context=ctx, timeout=300)
        s.ehlo("load%d.test" % k)
        s.user, s.password = user, password
        s.auth("PLAIN", s.auth_plain)
    except Exception as e:
        fail("connect/auth: %s" % type(e).__name__)
        barrier.abort()
        return
    try:
        barrier.wait(timeout=600)
    except threading.BrokenBarrierError:
        fail("barrier broken")
        return
    try:
        s.sendmail(user, [to], "From: %s\r\nTo: %s\r\nSubject: load %d\r\n\r\n%s\r\n" % (user, to, k, "x" * 2000))
        s.quit()
        with lock:
            ok[0] += 1
    except Exception as e:
        fail("send: %s %s" % (type(e).__name__, str(e)[:80]))


start = time.time()
threads = [threading.Thread(target=client, args=(k,)) for k in range(n)]
for t in threads:
    t.start()
try:
    barrier.wait(timeout=600)
except threading.BrokenBarrierError:
    pass
authed = time.time()
for t in threads:
    t.join()
done = time.time()
print("sessions %d ok %d errors %d auth_s %.1f send_s %.1f" % (n, ok[0], sum(errors.values()), authed - start, done - authed))
for why, count in errors.most_common():
    print("  %d x %s" % (count, why))
