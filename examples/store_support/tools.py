"""The store's tools: look up an order, start a return. Bound in domain.yaml.

The orders live in a SQLite file, ``$DIALOOP_HOME/store_support/orders.db``, created
with the sample orders below on first use (or by running this file:
``python examples/store_support/tools.py [PATH]``).

A tool says why it cannot do something by raising ``ToolError``: the assistant
shows that message to the customer. Any other exception is a bug: the assistant
apologises and logs it.
"""

from __future__ import annotations

import sqlite3
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

from dialoop.agent.tools import ToolContext, ToolError

# order number, customer email, product, status, ordered, shipped, delivered, carrier
SAMPLE_ORDERS = [
    (4417, "gil@example.com", "Aurora Kettle", "return started", "2025-02-01", "2025-02-02",
     "2025-02-05", "UPS"),
    (5512, "ann@example.com", "Aurora Kettle", "delivered", "2025-02-24", "2025-02-25",
     "2025-03-04", "UPS"),
    (5521, "ben@example.com", "Nimbus Toaster", "shipped", "2025-03-08", "2025-03-10", None,
     "FedEx"),
    (6003, "cara@example.com", "Cirrus Blender", "processing", "2025-03-12", None, None, None),
    (6120, "dan@example.com", "Stratus Lamp", "delivered", "2025-02-15", "2025-02-17",
     "2025-02-20", "USPS"),
    (7001, "eve@example.com", "Aurora Kettle", "cancelled", "2025-03-01", None, None, None),
    (7342, "eve@example.com", "Cumulus Pillow", "delivered", "2025-03-02", "2025-03-03",
     "2025-03-06", "USPS"),
    (8108, "fay@example.com", "Stratus Lamp", "shipped", "2025-03-11", "2025-03-12", None, "UPS"),
    (8850, "fay@example.com", "Cirrus Blender", "delivered", "2025-02-10", "2025-02-11",
     "2025-02-14", "FedEx"),
    (9001, "hal@example.com", "Nimbus Toaster", "processing", "2025-03-13", None, None, None),
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    order_number INTEGER PRIMARY KEY,
    email TEXT NOT NULL,
    product TEXT NOT NULL,
    status TEXT NOT NULL,
    ordered_on TEXT NOT NULL,
    shipped_on TEXT,
    delivered_on TEXT,
    carrier TEXT
);
CREATE TABLE IF NOT EXISTS returns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    order_number INTEGER NOT NULL UNIQUE REFERENCES orders(order_number),
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
"""

SHIPPING_DAYS = {"UPS": 4, "FedEx": 3, "USPS": 5}


def orders_db(context: ToolContext | None) -> Path:
    """The orders file of this dialoop home, created with the sample orders if new."""
    home = context.home if context and context.home else Path.cwd()
    path = Path(home) / "store_support" / "orders.db"
    if not path.exists():
        create_orders_db(path)
    return path


def create_orders_db(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path)) as db, db:
        db.executescript(_SCHEMA)
        db.executemany("INSERT OR IGNORE INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       SAMPLE_ORDERS)
        db.execute("INSERT OR IGNORE INTO returns (order_number, reason) VALUES (4417, 'damaged')")


def lookup_order(order_number: int, *, context: ToolContext) -> dict[str, Any]:
    """The status of an order. Says nothing about the customer (no email, no address)."""
    row = _order(order_number, context)
    result = {k: row[k] for k in ("order_number", "product", "status", "ordered_on",
                                  "shipped_on", "delivered_on", "carrier")}
    if row["status"] == "shipped" and row["carrier"]:
        from datetime import date, timedelta

        shipped = date.fromisoformat(row["shipped_on"])
        result["expected_delivery"] = str(shipped + timedelta(days=SHIPPING_DAYS[row["carrier"]]))
    return result


def start_return(order_number: int, email: str, reason: str, *,
                 context: ToolContext) -> dict[str, Any]:
    """Open a return for a delivered order, once the email proves it is the customer's."""
    row = _order(order_number, context)
    if row["email"].lower() != email.strip().lower():
        raise ToolError(f"The email address {email} does not match order {order_number}; "
                        "please use the address you ordered with.")
    if row["status"] == "return started":
        raise ToolError(f"A return for order {order_number} has already been started.")
    if row["status"] != "delivered":
        raise ToolError(f"Order {order_number} is {row['status']}, not delivered, so it cannot "
                        "be returned yet.")
    with closing(sqlite3.connect(orders_db(context))) as db, db:
        cursor = db.execute("INSERT INTO returns (order_number, reason) VALUES (?, ?)",
                            (order_number, reason))
        db.execute("UPDATE orders SET status = 'return started' WHERE order_number = ?",
                   (order_number,))
        return_id = f"R{cursor.lastrowid:04d}"
    return {"return_id": return_id, "order_number": order_number, "product": row["product"],
            "reason": reason}


def _order(order_number: int, context: ToolContext) -> sqlite3.Row:
    with closing(sqlite3.connect(orders_db(context))) as db:
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT * FROM orders WHERE order_number = ?",
                         (order_number,)).fetchone()
    if row is None:
        raise ToolError(f"There is no order {order_number}; please check the number in your "
                        "confirmation email.")
    return row


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("orders.db")
    create_orders_db(target)
    print(f"Wrote {len(SAMPLE_ORDERS)} sample orders to {target}")
