#!/usr/bin/python3
"""The pit_journal oracle's writer: a process that never loads vigil.

Modes (run with Debian's /usr/bin/python3; LD_LIBRARY_PATH may put another libsqlite3.so.0 in front):
  writer.py --setup DB SEED [MODE]     create the schema and some rows (before the test calls pit_enable), in
                                       journal_mode MODE (default delete)
  writer.py DB SEED COUNT OPTIONS OUT  run COUNT random units of work; OPTIONS is a comma list such as
                                       recursive_triggers=on,trusted_schema=off,avoid=non-utf8-text (AVOIDABLE
                                       below); writes JSON lines to OUT
  writer.py --hash DB [DB ...]         print the canonical content hash of each database (one JSON line each)
  writer.py --diff EXPECTED ACTUAL     print the rows that differ between two databases

OUT holds a header line, then one record per quiet gap after a unit of work:
  {"seq": max(seq) of vigil_pit_log or null, "hash": ..., "tables": {name: hash}, "t0": ms, "t1": ms}
read in one read transaction; t0 is taken just after the unit ended, t1 just before the next one begins (UTC
unix milliseconds). The last line is a summary with the errors seen, each classified as an expected
constraint failure of the workload or not.

Standard library only: the point is a writer that knows nothing of vigil.
"""

import hashlib
import json
import random
import re
import sqlite3
import struct
import sys
import time

SCHEMA = """
CREATE TABLE t_ipk(id INTEGER PRIMARY KEY, name TEXT COLLATE NOCASE UNIQUE, v);
CREATE TABLE t_text(k TEXT PRIMARY KEY, v, n INTEGER);
CREATE TABLE t_wr(a INTEGER, b BLOB, v, PRIMARY KEY(a, b)) WITHOUT ROWID;
CREATE TABLE t_nokey(x, y);
CREATE TABLE t_gen(id INTEGER PRIMARY KEY, a INTEGER, b TEXT,
  g_v AS (typeof(a) || ':' || coalesce(length(b), -1)) VIRTUAL,
  g_s AS (coalesce(a, 0) * 2) STORED);
CREATE TABLE parent(id INTEGER PRIMARY KEY, code TEXT UNIQUE, n INTEGER NOT NULL DEFAULT 0);
CREATE TABLE child(id INTEGER PRIMARY KEY,
  pid INTEGER REFERENCES parent(id) ON DELETE CASCADE ON UPDATE CASCADE,
  pcode TEXT REFERENCES parent(code) ON UPDATE CASCADE ON DELETE SET NULL,
  v);
CREATE TABLE audit(id INTEGER PRIMARY KEY, what TEXT, val);
CREATE TABLE t_part(id INTEGER PRIMARY KEY, email TEXT, active INTEGER, code TEXT, v);
CREATE UNIQUE INDEX t_part_active_email ON t_part(email) WHERE active = 1;
CREATE UNIQUE INDEX t_part_code ON t_part(code COLLATE NOCASE);
CREATE TABLE t_ocr(id INTEGER PRIMARY KEY, tag TEXT UNIQUE ON CONFLICT REPLACE, v);
-- Application triggers that write: another table, and the same row (an update nested in an update).
CREATE TRIGGER app_child_count AFTER INSERT ON child BEGIN
  UPDATE parent SET n = n + 1 WHERE id = NEW.pid;
END;
CREATE TRIGGER app_parent_gone AFTER DELETE ON parent BEGIN
  INSERT INTO audit(what, val) VALUES ('parent deleted', OLD.code);
END;
CREATE TRIGGER app_text_touch AFTER UPDATE OF v ON t_text BEGIN
  UPDATE t_text SET n = coalesce(n, 0) + 1 WHERE k = NEW.k;
END;
"""

# Values that have tripped journals: storage classes, REAL precision, ±Inf, -0.0, NOCASE pairs, BLOBs,
# text that looks like JSON.
SPECIAL = [None, 0, 1, 1.0, 0.1 + 0.2, -0.0, 2**62, float("inf"), float("-inf"), "x", "X", "", b"\x00\xff", b"",
           '{"a": [1, 2.5, null]}', "[]", "null", "1", "ünï", -1, 3.5]
NAMES = ["x", "X", "a", "A", "ab", "AB", "", "{}", None, 7, "é", "É"]
BLOB_KEYS = [b"\x00", b"\x00\xff", b"\xff", b"", b"k"]

# Failures the workload provokes on purpose. Anything else (and anything naming vigil) is a journal fault.
EXPECTED_ERRORS = re.compile(
    r"^(UNIQUE constraint failed: (?!vigil)|FOREIGN KEY constraint failed$|NOT NULL constraint failed: (?!vigil)"
    r"|datatype mismatch$)")


# Cases of the workload that reach a core fault already reported: the test may leave them out (option
# avoid=name+name) so that everything else stays checked until the fault is fixed.
AVOIDABLE = {
    "non-utf8-text": "TEXT that is not valid UTF-8 (upper(), lower() or || of a BLOB make it)",
    "partial-index-entry": "UPDATE OR REPLACE that makes a row enter a partial UNIQUE index",
}
AVOID = set()


def blob_guard(column):
    """A condition keeping BLOBs out of `column` while text that is not UTF-8 is avoided."""
    return f" AND typeof({column}) <> 'blob'" if "non-utf8-text" in AVOID else ""


def now_ms():
    return int(time.time() * 1000)


def quote_name(name):
    return '"' + name.replace('"', '""') + '"'


# ---------------------------------------------------------------- the canonical content hash

def user_tables(conn):
    rows = conn.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'vigil\\_%' ESCAPE '\\' "
        "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name").fetchall()
    return [as_text(r[0]) for r in rows]


def as_text(value):
    return value.decode() if isinstance(value, bytes) else value


def encode_value(kind, value):
    """(storage class, exact bytes): REAL by its IEEE bits, INTEGER as 64-bit, TEXT as its UTF-8 bytes."""
    if kind == b"null":
        return b"N"
    if kind == b"integer":
        return b"I" + struct.pack(">q", value)
    if kind == b"real":
        return b"R" + struct.pack(">d", value)
    tag = b"T" if kind == b"text" else b"B"
    return tag + struct.pack(">I", len(value)) + value


def table_hash(conn, name):
    """Every row (rowid first for rowid tables) in rowid or primary-key order, each value encoded exactly."""
    columns = conn.execute(f"PRAGMA table_xinfo({quote_name(name)})").fetchall()
    columns = [c for c in columns if c[6] in (0, 2, 3)]  # plain, virtual and stored generated columns
    without_rowid = conn.execute("SELECT wr FROM pragma_table_list WHERE name = ? AND schema = 'main'",
                                 (name,)).fetchone()[0]
    selected = ", ".join(f"typeof({quote_name(as_text(c[1]))}), {quote_name(as_text(c[1]))}" for c in columns)
    if without_rowid:
        keys = sorted((c for c in columns if c[5] > 0), key=lambda c: c[5])
        order = ", ".join(quote_name(as_text(c[1])) for c in keys)
        sql = f"SELECT {selected} FROM {quote_name(name)} ORDER BY {order}"
    else:
        sql = f"SELECT typeof(_rowid_), _rowid_, {selected} FROM {quote_name(name)} ORDER BY _rowid_"
    digest = hashlib.sha256(("table " + name + "\n").encode())
    digest.update(repr([as_text(c[1]) for c in columns]).encode())
    rows = 0
    for row in conn.execute(sql):
        digest.update(b"\nrow")
        for i in range(0, len(row), 2):
            digest.update(encode_value(row[i], row[i + 1]))
        rows += 1
    return digest.hexdigest()[:16], rows


def schema_text(conn):
    """The SQL of the user's tables, indexes and triggers (not vigil's, not SQLite's own)."""
    rows = conn.execute(
        "SELECT type, name, sql FROM sqlite_schema WHERE name NOT LIKE 'vigil\\_%' ESCAPE '\\' "
        "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type, name").fetchall()
    return repr([tuple(as_text(v) for v in r) for r in rows])


def content_hash(conn):
    """Hash of the user tables (call inside a read transaction). Returns (hash, {table: hash}, rows)."""
    factory = conn.text_factory
    conn.text_factory = bytes
    try:
        digest = hashlib.sha256(schema_text(conn).encode())
        tables, rows = {}, 0
        for name in user_tables(conn):
            tables[name], count = table_hash(conn, name)
            digest.update(f"{name}={tables[name]}\n".encode())
            rows += count
        return digest.hexdigest(), tables, rows
    finally:
        conn.text_factory = factory


def journal_position(conn):
    """max(seq) of the journal, or None where there is none (a database pit_enable never touched)."""
    try:
        return conn.execute("SELECT max(seq) FROM vigil_pit_log").fetchone()[0]
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):
            return None
        raise


def snapshot(conn):
    conn.execute("BEGIN")
    try:
        seq = journal_position(conn)
        digest, tables, rows = content_hash(conn)
    finally:
        conn.execute("COMMIT")
    return {"seq": seq, "hash": digest, "tables": tables, "rows": rows}


def rows_by_key(conn, name):
    """{rowid or primary key: [(storage class, value)…]} of one table, values exact (REAL as IEEE bits)."""
    columns = [c for c in conn.execute(f"PRAGMA table_xinfo({quote_name(name)})").fetchall() if c[6] in (0, 2, 3)]
    keys = sorted((c for c in columns if c[5] > 0), key=lambda c: c[5])
    without_rowid = conn.execute("SELECT wr FROM pragma_table_list WHERE name = ? AND schema = 'main'",
                                 (name,)).fetchone()[0]
    key_sql = ", ".join(quote_name(as_text(c[1])) for c in keys) if without_rowid else "_rowid_"
    selected = ", ".join(f"typeof({quote_name(as_text(c[1]))}), {quote_name(as_text(c[1]))}" for c in columns)
    rows = {}
    for row in conn.execute(f"SELECT {key_sql}, {selected} FROM {quote_name(name)}"):
        width = len(row) - 2 * len(columns)
        values = [(as_text(row[i]), row[i + 1]) for i in range(width, len(row), 2)]
        rows[repr(row[:width])] = [(k, struct.pack(">d", v).hex() if k == "real" else v) for k, v in values]
    return rows


def diff_mode(expected_path, actual_path):
    """Prints, table by table, the rows that differ between two databases (at most 10 per table)."""
    expected, actual = (sqlite3.connect(f"file:{p}?mode=ro", uri=True) for p in (expected_path, actual_path))
    for conn in (expected, actual):
        conn.text_factory = bytes
    for name in sorted(set(user_tables(expected)) | set(user_tables(actual))):
        want, got = (rows_by_key(c, name) if name in user_tables(c) else {} for c in (expected, actual))
        shown = 0
        for key in sorted(set(want) | set(got)):
            if want.get(key) != got.get(key) and shown < 10:
                print(f"{name} key {key}: expected {want.get(key)}, restored {got.get(key)}")
                shown += 1


def hash_mode(paths):
    for path in paths:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        record = snapshot(conn)
        record["path"] = path
        conn.close()
        print(json.dumps(record), flush=True)


# ---------------------------------------------------------------- setup

def setup_mode(path, seed, journal_mode):
    rng = random.Random(seed)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA journal_mode = {journal_mode}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.executescript(SCHEMA)
    conn.execute("BEGIN")
    for i in range(1, 9):
        conn.execute("INSERT INTO t_ipk(id, name, v) VALUES (?, ?, ?)", (i, f"n{i}", rng.choice(SPECIAL)))
        conn.execute("INSERT INTO t_text(k, v, n) VALUES (?, ?, ?)", (f"k{i}", rng.choice(SPECIAL), i))
        conn.execute("INSERT OR IGNORE INTO t_wr(a, b, v) VALUES (?, ?, ?)",
                     (i % 4, rng.choice(BLOB_KEYS), rng.choice(SPECIAL)))
        conn.execute("INSERT INTO t_nokey(x, y) VALUES (?, ?)", (i % 5, rng.choice(SPECIAL)))
        conn.execute("INSERT INTO t_gen(id, a, b) VALUES (?, ?, ?)", (i, i, f"b{i}"))
        conn.execute("INSERT INTO parent(id, code) VALUES (?, ?)", (i, f"p{i}"))
        conn.execute("INSERT INTO child(pid, pcode, v) VALUES (?, ?, ?)", (i, f"p{i}", i))
        conn.execute("INSERT INTO t_part(id, email, active, code, v) VALUES (?, ?, ?, ?, ?)",
                     (i, f"e{i}", i % 2, f"c{i}", i))
        conn.execute("INSERT INTO t_ocr(id, tag, v) VALUES (?, ?, ?)", (i, f"t{i}", i))
    conn.execute("COMMIT")
    conn.close()


# ---------------------------------------------------------------- the workload

def value(rng):
    roll = rng.random()
    if roll < 0.6:
        return rng.choice(SPECIAL)
    if roll < 0.8:
        return rng.randint(-50, 50)
    if roll < 0.9:
        return rng.random()
    return rng.choice(["abc", "ABC", "Abc", "zz", "0", "1.0"])


def ipk_statement(r):
    i, j, n, v = r.randint(1, 30), r.randint(1, 30), r.choice(NAMES), value(r)
    return r.choice([
        ("INSERT INTO t_ipk(id, name, v) VALUES (?, ?, ?)", (r.choice([i, None]), n, v)),
        ("INSERT OR REPLACE INTO t_ipk(id, name, v) VALUES (?, ?, ?)", (i, n, v)),
        ("REPLACE INTO t_ipk(name, v) VALUES (?, ?)", (n, v)),
        ("INSERT OR IGNORE INTO t_ipk(id, name, v) VALUES (?, ?, ?)", (i, n, v)),
        ("INSERT INTO t_ipk(id, name, v) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET v = excluded.v, "
         "name = excluded.name", (i, n, v)),
        ("INSERT INTO t_ipk(id, name, v) VALUES (?, ?, ?) ON CONFLICT(name) DO NOTHING", (i, n, v)),
        ("INSERT INTO t_ipk(id, name, v) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET v = excluded.v",
         (i, n, v)),
        ("UPDATE OR REPLACE t_ipk SET name = ? WHERE id = ?", (n, i)),
        ("UPDATE t_ipk SET v = ? WHERE id = ?", (v, i)),
        ("UPDATE t_ipk SET id = ? WHERE id = ?", (j, i)),
        ("UPDATE OR REPLACE t_ipk SET id = ? WHERE id = ?", (j, i)),
        ("UPDATE t_ipk SET name = upper(name) WHERE id % 3 = ?" + blob_guard("name"), (i % 3,)),
        ("UPDATE t_ipk SET name = lower(name) WHERE id = ?" + blob_guard("name"), (i,)),
        ("UPDATE t_ipk SET v = CAST(v AS REAL) WHERE typeof(v) = 'integer' AND id % 2 = ?", (i % 2,)),
        ("UPDATE t_ipk SET v = 1 WHERE v = 1.0", ()),
        ("UPDATE t_ipk SET v = NULL WHERE id % 4 = ?", (i % 4,)),
        ("UPDATE t_ipk SET v = 9e999 WHERE id = ?", (i,)),
        ("UPDATE t_ipk SET v = -9e999, name = ? WHERE id = ?", (n, i)),
        ("UPDATE t_ipk SET v = 0.1 + 0.2 WHERE id = ?", (i,)),
        ("UPDATE t_ipk SET v = x'00ff' WHERE id = ?", (i,)),
        ("UPDATE t_ipk SET v = -0.0 WHERE id = ?", (i,)),
        ("DELETE FROM t_ipk WHERE id = ?", (i,)),
        ("INSERT OR REPLACE INTO t_ipk(id, name, v) SELECT (rowid * 7 + ?) % 30 + 1, k, v FROM t_text", (i,)),
        ("UPDATE OR REPLACE t_ipk SET name = ? WHERE id % 5 = ?", (n, i % 5)),
    ])


def text_statement(r):
    k, k2, v, n = r.choice(["k1", "k2", "K1", "k3", "", "1", "x", "X"]), f"k{r.randint(1, 12)}", value(r), value(r)
    key = r.choice([k, k2, 1, 1.0, b"\x00\xff"])
    return r.choice([
        ("INSERT INTO t_text(k, v, n) VALUES (?, ?, ?)", (key, v, n)),
        ("INSERT OR REPLACE INTO t_text(k, v, n) VALUES (?, ?, ?)", (key, v, n)),
        ("INSERT OR IGNORE INTO t_text(k, v) VALUES (?, ?)", (key, v)),
        ("INSERT INTO t_text(k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v", (key, v)),
        ("INSERT INTO t_text(k, v) VALUES (?, ?) ON CONFLICT DO NOTHING", (key, v)),
        ("UPDATE t_text SET v = ? WHERE k = ?", (v, key)),
        ("UPDATE t_text SET k = ? WHERE k = ?", (k2, key)),
        ("UPDATE OR REPLACE t_text SET k = ? WHERE k = ?", (key, k2)),
        ("UPDATE t_text SET n = ? WHERE rowid % 3 = ?", (n, r.randint(0, 2))),
        ("DELETE FROM t_text WHERE k = ?", (key,)),
        ("INSERT OR IGNORE INTO t_text(k, v, n) SELECT coalesce(name, 'nul') || ?, v, id FROM t_ipk "
         "WHERE id % 4 = ?" + blob_guard("name"), (r.choice(["", "-", "+"]), r.randint(0, 3))),
    ])


def without_rowid_statement(r):
    a, b, b2, v = r.randint(0, 3), r.choice(BLOB_KEYS), r.choice(BLOB_KEYS), value(r)
    return r.choice([
        ("INSERT INTO t_wr(a, b, v) VALUES (?, ?, ?)", (a, b, v)),
        ("INSERT OR REPLACE INTO t_wr(a, b, v) VALUES (?, ?, ?)", (r.choice([a, 1.0]), b, v)),
        ("INSERT OR IGNORE INTO t_wr(a, b, v) VALUES (?, ?, ?)", (a, b, v)),
        ("INSERT INTO t_wr(a, b, v) VALUES (?, ?, ?) ON CONFLICT(a, b) DO UPDATE SET v = excluded.v", (a, b, v)),
        ("UPDATE t_wr SET v = ? WHERE a = ?", (v, a)),
        ("UPDATE t_wr SET b = ? WHERE a = ? AND b = ?", (b2, a, b)),
        ("UPDATE OR REPLACE t_wr SET a = ? WHERE b = ?", (a, b)),
        ("DELETE FROM t_wr WHERE a = ? AND b = ?", (a, b)),
        ("INSERT OR IGNORE INTO t_wr(a, b, v) SELECT x % 4, CAST(y AS BLOB), y FROM t_nokey WHERE x IS NOT NULL", ()),
    ])


def nokey_statement(r):
    x, y, rid = r.randint(0, 6), value(r), r.randint(1, 25)
    return r.choice([
        ("INSERT INTO t_nokey(x, y) VALUES (?, ?)", (x, y)),
        ("INSERT OR REPLACE INTO t_nokey(rowid, x, y) VALUES (?, ?, ?)", (rid, x, y)),
        ("UPDATE t_nokey SET y = ? WHERE x = ?", (y, x)),
        ("UPDATE t_nokey SET rowid = ? WHERE rowid = ?", (rid, r.randint(1, 25))),
        ("DELETE FROM t_nokey WHERE x = ?", (x,)),
        ("DELETE FROM t_nokey WHERE rowid = (SELECT max(rowid) FROM t_nokey)", ()),
        ("INSERT INTO t_nokey(x, y) SELECT a, v FROM t_wr WHERE a = ?", (x % 4,)),
        ("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 250) "
         "INSERT INTO t_nokey(x, y) SELECT 7, CASE i % 3 WHEN 0 THEN i WHEN 1 THEN i * 0.5 ELSE x'00' || i END FROM c",
         ()),
        ("UPDATE t_nokey SET y = typeof(y) WHERE x = 7 AND rowid % 2 = ?", (rid % 2,)),
        ("DELETE FROM t_nokey WHERE x = 7 AND rowid % 3 <> ?", (rid % 3,)),
    ])


def generated_statement(r):
    i, a, b = r.randint(1, 15), value(r), value(r)
    return r.choice([
        ("INSERT INTO t_gen(id, a, b) VALUES (?, ?, ?)", (i, a, b)),
        ("INSERT OR REPLACE INTO t_gen(id, a, b) VALUES (?, ?, ?)", (i, a, b)),
        ("UPDATE t_gen SET a = ? WHERE id = ?", (a, i)),
        ("UPDATE t_gen SET b = ?, a = a + 1 WHERE id % 3 = ?", (b, i % 3)),
        ("UPDATE t_gen SET id = ? WHERE id = ?", (r.randint(1, 15), i)),
        ("DELETE FROM t_gen WHERE id = ?", (i,)),
    ])


def family_statement(r):
    p, p2, c, code = r.randint(1, 10), r.randint(1, 10), r.randint(1, 20), f"p{r.randint(1, 10)}"
    return r.choice([
        ("INSERT INTO parent(id, code) VALUES (?, ?)", (p, code)),
        ("INSERT OR IGNORE INTO parent(code) VALUES (?)", (f"p{p}",)),
        ("INSERT OR REPLACE INTO parent(id, code) VALUES (?, ?)", (p, code)),
        ("INSERT INTO parent(id, code) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET code = excluded.code", (p, code)),
        ("UPDATE parent SET id = ? WHERE id = ?", (p2, p)),
        ("UPDATE parent SET code = ? WHERE id = ?", (code + "'", p)),
        ("DELETE FROM parent WHERE id = ?", (p,)),
        ("INSERT INTO child(id, pid, pcode, v) VALUES (?, ?, ?, ?)", (r.choice([c, None]), p, code, value(r))),
        ("INSERT INTO child(pid, pcode, v) SELECT id, code, ? FROM parent WHERE id >= ? ORDER BY id LIMIT 2",
         (value(r), p)),
        ("INSERT INTO child(pid, v) SELECT id, ? FROM parent WHERE id <= ?", (value(r), p)),
        ("INSERT OR REPLACE INTO child(id, pid, pcode, v) VALUES (?, ?, ?, ?)", (c, p, None, value(r))),
        ("UPDATE child SET pid = ? WHERE id = ?", (p, c)),
        ("UPDATE child SET v = ? WHERE pid = ?", (value(r), p)),
        ("DELETE FROM child WHERE id = ?", (c,)),
        ("DELETE FROM audit WHERE id % 2 = ?", (c % 2,)),
    ])


def partial_statement(r):
    entering = "v = 1" if "partial-index-entry" in AVOID else "active = 1"
    i, e, act, code, v = r.randint(1, 15), f"e{r.randint(0, 4)}", r.choice([0, 1, 1, None]), r.choice(
        ["c1", "C1", "c2", "C2", "c3", None]), value(r)
    return r.choice([
        ("INSERT INTO t_part(id, email, active, code, v) VALUES (?, ?, ?, ?, ?)", (i, e, act, code, v)),
        ("INSERT OR REPLACE INTO t_part(id, email, active, code, v) VALUES (?, ?, ?, ?, ?)", (i, e, act, code, v)),
        ("INSERT OR REPLACE INTO t_part(email, active, code, v) VALUES (?, ?, ?, ?)", (e, act, code, v)),
        ("INSERT INTO t_part(email, active, v) VALUES (?, 1, ?) ON CONFLICT(email) WHERE active = 1 "
         "DO UPDATE SET v = excluded.v", (e, v)),
        (f"UPDATE OR REPLACE t_part SET {entering} WHERE id = ?", (i,)),
        ("UPDATE t_part SET active = 0 WHERE id % 2 = ?", (i % 2,)),
        ("UPDATE OR REPLACE t_part SET code = ? WHERE id = ?", (code, i)),
        ("UPDATE OR REPLACE t_part SET email = ? WHERE id = ?", (e, i)),
        ("DELETE FROM t_part WHERE id = ?", (i,)),
    ])


def on_conflict_replace_statement(r):
    i, tag, v = r.randint(1, 15), r.choice(["t1", "t2", "T1", "t3", None, 3, 3.0]), value(r)
    return r.choice([
        ("INSERT INTO t_ocr(id, tag, v) VALUES (?, ?, ?)", (r.choice([i, None]), tag, v)),
        ("INSERT OR IGNORE INTO t_ocr(id, tag, v) VALUES (?, ?, ?)", (i, tag, v)),
        ("INSERT OR ABORT INTO t_ocr(tag, v) VALUES (?, ?)", (tag, v)),
        ("UPDATE t_ocr SET tag = ? WHERE id = ?", (tag, i)),
        ("UPDATE t_ocr SET id = ? WHERE id = ?", (r.randint(1, 15), i)),
        ("UPDATE t_ocr SET v = ? WHERE id % 3 = ?", (v, i % 3)),
        ("DELETE FROM t_ocr WHERE id = ?", (i,)),
    ])


STATEMENTS = [ipk_statement, ipk_statement, text_statement, without_rowid_statement, nokey_statement,
              generated_statement, family_statement, family_statement, partial_statement,
              on_conflict_replace_statement]


class Writer:
    def __init__(self, path, seed, options):
        self.rng = random.Random(seed)
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.conn.execute("PRAGMA foreign_keys = ON")
        for name in ("recursive_triggers", "trusted_schema"):
            self.conn.execute(f"PRAGMA {name} = {options[name]}")
        self.statements = 0
        self.expected = {}
        self.unexpected = []

    def statement(self):
        sql, params = self.rng.choice(STATEMENTS)(self.rng)
        self.statements += 1
        try:
            self.conn.execute(sql, params)
        except sqlite3.DatabaseError as error:
            self.failed(sql, params, error)

    def failed(self, sql, params, error):
        message = str(error)
        if EXPECTED_ERRORS.match(message):
            key = message.split(":")[0]
            self.expected[key] = self.expected.get(key, 0) + 1
        else:
            self.unexpected.append({"sql": sql, "params": repr(params), "error": message})

    def statements_in_txn(self, low, high):
        for _ in range(self.rng.randint(low, high)):
            self.statement()

    def end(self, verb):
        """COMMIT/ROLLBACK unless an error already ended the transaction (it never should)."""
        if self.conn.in_transaction:
            self.conn.execute(verb)
        else:
            self.unexpected.append({"sql": verb, "error": "the transaction had ended before " + verb})

    def unit(self):
        """One unit of work between quiet gaps; returns its kind."""
        roll = self.rng.random()
        if roll < 0.35:
            self.statement()
            return "autocommit"
        if roll < 0.45:
            self.conn.execute("BEGIN")
            self.statements_in_txn(1, 5)
            self.end("ROLLBACK")
            return "rollback"
        if roll < 0.5:
            # A SAVEPOINT outside BEGIN starts the transaction; its RELEASE commits it.
            self.conn.execute("SAVEPOINT outer_txn")
            self.statements_in_txn(1, 4)
            self.savepoints()
            self.end("RELEASE outer_txn")
            return "savepoint transaction"
        self.conn.execute(self.rng.choice(["BEGIN", "BEGIN IMMEDIATE"]))
        self.statements_in_txn(1, 5)
        if roll < 0.65:
            self.savepoints()
            kind = "savepoint"
        else:
            kind = "multi"
        self.statements_in_txn(0, 3)
        self.end("COMMIT")
        return kind

    def savepoints(self):
        self.conn.execute("SAVEPOINT s1")
        self.statements_in_txn(1, 4)
        if self.rng.random() < 0.5:
            self.conn.execute("SAVEPOINT s2")
            self.statements_in_txn(1, 3)
            self.conn.execute(self.rng.choice(["ROLLBACK TO s2", "RELEASE s2"]))
        self.conn.execute("ROLLBACK TO s1")
        self.statements_in_txn(0, 2)
        self.conn.execute("RELEASE s1")


def run_mode(path, seed, count, options, out_path):
    AVOID.update(filter(None, options["avoid"].split("+")))
    writer = Writer(path, seed, options)
    kinds = {}
    with open(out_path, "w") as out:
        header = {"sqlite_version": sqlite3.sqlite_version, "seed": seed, "count": count, "options": options}
        out.write(json.dumps({"header": header}) + "\n")
        t0 = now_ms()
        for i in range(count + 1):
            record = snapshot(writer.conn)
            time.sleep(0.004)  # a quiet gap: later statements get a later `at` (ms resolution)
            record.update(t0=t0, t1=now_ms(), after=i)
            out.write(json.dumps(record) + "\n")
            if i == count:
                break
            kind = writer.unit()
            kinds[kind] = kinds.get(kind, 0) + 1
            t0 = now_ms()
        summary = {"units": kinds, "statements": writer.statements, "expected_errors": writer.expected,
                   "unexpected_errors": writer.unexpected}
        out.write(json.dumps({"summary": summary}) + "\n")
    writer.conn.close()


def parse_options(text):
    options = {"recursive_triggers": "off", "trusted_schema": "on", "avoid": ""}
    for item in filter(None, text.split(",")):
        name, _, setting = item.partition("=")
        avoided = set(filter(None, setting.split("+")))
        if name == "avoid" and avoided <= AVOIDABLE.keys():
            options[name] = setting
        elif name in options and setting in ("on", "off"):
            options[name] = setting
        else:
            sys.exit(f"bad option {item!r}: expected recursive_triggers=on|off, trusted_schema=on|off, "
                     f"avoid=case+case ({', '.join(AVOIDABLE)})")
    return options


def main(argv):
    if len(argv) == 3 and argv[0] == "--diff":
        diff_mode(argv[1], argv[2])
    elif len(argv) >= 2 and argv[0] == "--hash":
        hash_mode(argv[1:])
    elif len(argv) in (3, 4) and argv[0] == "--setup":
        setup_mode(argv[1], int(argv[2]), argv[3] if len(argv) == 4 else "delete")
    elif len(argv) == 5:
        run_mode(argv[0], int(argv[1]), int(argv[2]), parse_options(argv[3]), argv[4])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
