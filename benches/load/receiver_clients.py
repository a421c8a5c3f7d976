#!/usr/bin/env python3
"""N concurrent sessions at ptt's receiver, as Internet MTAs make them:
each from its own loopback address (127.0.0.2 onward, SOURCES of them, so
that no address exceeds the receiver's per-address limit), EHLO and
STARTTLS, all open at once, then one message each to TO, then QUIT.

usage: receiver_clients.py PORT N TO [SOURCES [HOST]]
SOURCES 0: no source address is chosen (for a HOST other than 127.0.0.1,
such as the smoltcp receiver on a TAP device).
prints: sessions N ok K errors E connect_s A send_s S, then one line per
distinct error.
"""
import smtplib
import ssl
import sys
import threading
import time
from collections import Counter

port, n, to = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
sources = int(sys.argv[4]) if len(sys.argv) > 4 else 100
host = sys.argv[5] if len(sys.argv) > 5 else "127.0.0.1"
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
        source = ("127.0.0.%d" % (2 + k % sources), 0) if sources else None
        s = smtplib.SMTP(host, port, timeout=300, source_address=source)
        s.ehlo("mta%d.sender.test" % k)
        s.starttls(context=ctx)
        s.ehlo("mta%d.sender.test" % k)
    except Exception as e:
        fail("connect: %s %s" % (type(e).__name__, e))
        s = None
    try:
        barrier.wait(timeout=600)
    except threading.BrokenBarrierError:
        pass
    if s is None:
        return
    try:
        msg = "From: sender%d@sender.test\r\nTo: %s\r\nSubject: load %d\r\n\r\nhello %d\r\n" % (k, to, k, k)
        s.sendmail("sender%d@sender.test" % k, [to], msg)
        s.quit()
        with lock:
            ok[0] += 1
    except Exception as e:
        fail("send: %s %s" % (type(e).__name__, e))


threads = [threading.Thread(target=client, args=(k,)) for k in range(n)]
t0 = time.time()
for t in threads:
    t.start()
barrier.wait(timeout=600)
t1 = time.time()
for t in threads:
    t.join()
t2 = time.time()
print("sessions %d ok %d errors %d connect_s %.1f send_s %.1f" % (n, ok[0], sum(errors.values()), t1 - t0, t2 - t1))
for why, count in errors.most_common():
    print("%6d %s" % (count, why))
