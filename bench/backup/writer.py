"""A steady writer for the backup benchmark: one small commit every 5 ms on its own connection, recording
how long each commit took, until the file named by argv[2] exists; prints commits, p99 and max in ms."""
import os
import sqlite3
import sys
import time

db, stop = sys.argv[1], sys.argv[2]
conn = sqlite3.connect(db, timeout=60, isolation_level=None)
conn.execute("CREATE TABLE IF NOT EXISTS bench_writer(id INTEGER PRIMARY KEY, at REAL)")
latencies = []
while not os.path.exists(stop):
    started = time.perf_counter()
    conn.execute("INSERT INTO bench_writer(at) VALUES (?)", (started,))
    latencies.append((time.perf_counter() - started) * 1000)
    time.sleep(0.005)
latencies.sort()
p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else 0
print(f"{len(latencies)} {p99:.1f} {latencies[-1] if latencies else 0:.1f}")
