-- vigil demo database: a small online shop with a realistic shape (foreign keys, indexes, a view, a
-- trigger) and a history of deletions that left free pages behind.
-- Deterministic: the same file content every time. Used by `vigil demo PATH`, or directly:
--   sqlite3 demo.db < sql/demo.sql
PRAGMA foreign_keys = ON;
BEGIN;
CREATE TABLE customers(
  id INTEGER PRIMARY KEY,
  email TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  country TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE TABLE products(
  id INTEGER PRIMARY KEY,
  sku TEXT NOT NULL UNIQUE,
  title TEXT NOT NULL,
  price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
  description TEXT
);
CREATE TABLE orders(
  id INTEGER PRIMARY KEY,
  customer_id INTEGER NOT NULL REFERENCES customers(id),
  status TEXT NOT NULL,
  placed_at TEXT NOT NULL,
  total_cents INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE order_items(
  order_id INTEGER NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
  product_id INTEGER NOT NULL REFERENCES products(id),
  quantity INTEGER NOT NULL,
  price_cents INTEGER NOT NULL,
  PRIMARY KEY (order_id, product_id)
) WITHOUT ROWID;
CREATE INDEX orders_by_customer ON orders(customer_id, placed_at);
CREATE INDEX order_items_by_product ON order_items(product_id);
CREATE VIEW order_totals AS
  SELECT o.id, o.customer_id, sum(i.quantity * i.price_cents) AS total_cents
  FROM orders o JOIN order_items i ON i.order_id = o.id GROUP BY o.id;
CREATE TRIGGER orders_total AFTER INSERT ON order_items BEGIN
  UPDATE orders SET total_cents = total_cents + NEW.quantity * NEW.price_cents WHERE id = NEW.order_id;
END;

WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
INSERT INTO customers(id, email, name, country, created_at)
SELECT i, 'customer' || i || '@example.com', 'Customer ' || i,
       CASE i % 5 WHEN 0 THEN 'DE' WHEN 1 THEN 'FR' WHEN 2 THEN 'US' WHEN 3 THEN 'JP' ELSE 'BR' END,
       strftime('%Y-%m-%dT%H:%M:%SZ', '2024-01-01', '+' || (i * 3) || ' hours')
FROM n;

WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
INSERT INTO products(id, sku, title, price_cents, description)
SELECT i, printf('SKU-%05d', i), 'Product ' || i, 199 + (i * 7919) % 20000,
       substr('A sturdy, well-made item for everyday use. Ships in recycled packaging. ', 1 + i % 20)
       || printf('%.*c', 100 + i % 300, 'x')
FROM n;

WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
INSERT INTO orders(id, customer_id, status, placed_at)
SELECT i, 1 + (i * 7) % 2000,
       CASE WHEN i % 17 = 0 THEN 'cancelled' WHEN i % 5 = 0 THEN 'shipped' ELSE 'delivered' END,
       strftime('%Y-%m-%dT%H:%M:%SZ', '2024-06-01', '+' || (i * 37) || ' minutes')
FROM n;

WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60000)
INSERT INTO order_items(order_id, product_id, quantity, price_cents)
SELECT 1 + (i - 1) / 3, 1 + ((i * 131) + (i / 3) * 17) % 300, 1 + i % 4,
       199 + ((1 + ((i * 131) + (i / 3) * 17) % 300) * 7919) % 20000
FROM n;

-- An archival job removed the oldest orders and every cancelled one: their pages went to the freelist.
DELETE FROM orders WHERE id <= 9000 OR status = 'cancelled';
COMMIT;
