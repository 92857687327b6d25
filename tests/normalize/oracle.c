/* Test-owned oracle for tests/normalize.rs: prints SQLite's own sqlite3_normalized_sql() for each statement.
 *
 * Input (stdin): NUL-separated records. The first record is a setup script run with sqlite3_exec on an
 * in-memory database (so the statements can be prepared against real tables); each later record is one
 * statement. With the single argument "keywords" it prints SQLite's keyword list instead, one a line.
 *
 * Output (stdout), per statement: "OK\0<sqlite3_sql>\0<sqlite3_normalized_sql>\0", or "ERR\0<message>\0\0"
 * when the statement does not prepare or holds more than one statement. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sqlite3.h"

static char *read_all(size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, stdin)) > 0) {
        n += got;
        if (n == cap) buf = realloc(buf, (cap *= 2) + 1);
    }
    if (!buf) exit(2);
    buf[n] = 0;
    *len = n;
    return buf;
}

static void emit(const char *a, const char *b, const char *c) {
    fwrite(a, 1, strlen(a) + 1, stdout);
    fwrite(b, 1, strlen(b) + 1, stdout);
    fwrite(c, 1, strlen(c) + 1, stdout);
}

/* Whether the text after the first statement holds another one (whitespace and comments do not). */
static int holds_a_statement(sqlite3 *db, const char *tail) {
    sqlite3_stmt *next = 0;
    int rc = sqlite3_prepare_v2(db, tail, -1, &next, 0);
    sqlite3_finalize(next);
    return rc != SQLITE_OK || next != 0;
}

static void normalize_one(sqlite3 *db, const char *sql) {
    sqlite3_stmt *stmt = 0;
    const char *tail = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, &tail) != SQLITE_OK) {
        emit("ERR", sqlite3_errmsg(db), "");
    } else if (stmt == 0) {
        emit("ERR", "no statement", "");
    } else if (holds_a_statement(db, tail)) {
        emit("ERR", "more than one statement", "");
    } else {
        const char *normalized = sqlite3_normalized_sql(stmt);
        emit("OK", sqlite3_sql(stmt), normalized ? normalized : "(null)");
    }
    sqlite3_finalize(stmt);
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "keywords") == 0) {
        for (int i = 0; i < sqlite3_keyword_count(); i++) {
            const char *name;
            int len;
            sqlite3_keyword_name(i, &name, &len);
            printf("%.*s\n", len, name);
        }
        return 0;
    }
    size_t len;
    char *input = read_all(&len);
    sqlite3 *db;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK) return 2;
    char *err = 0;
    if (sqlite3_exec(db, input, 0, 0, &err) != SQLITE_OK) {
        fprintf(stderr, "setup script failed: %s\n", err ? err : "?");
        return 2;
    }
    for (size_t at = strlen(input) + 1; at < len; at += strlen(input + at) + 1) {
        normalize_one(db, input + at);
    }
    sqlite3_close(db);
    return 0;
}
