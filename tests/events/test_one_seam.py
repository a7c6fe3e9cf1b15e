"""Nothing writes a call's, an SMS's or a batch's status, nor an account's balance, but the one
module that owns it: read from the product's source, so a new writer elsewhere fails here."""

import ast
from pathlib import Path

ROOT = Path(__file__).parents[2]
SOURCES = ("api", "shared", "workers")
# The table each seam owns, the column it alone writes, and the module it is.
OWNED = {
    "Call": ("status", "shared/calls/lifecycle.py"),
    "SmsMessage": ("status", "shared/sms/lifecycle.py"),
    "Batch": ("status", "shared/batches/lifecycle.py"),
    "Account": ("credits", "shared/billing/ledger.py"),
}
SEAMS = {module for _, module in OWNED.values()}
# Rows of other tables with a status of their own, outside any lifecycle, and an error that
# names the status it found.
OTHER_STATUSES = {
    ("shared/billing/events.py", "checkout"),
    ("shared/billing/disputes.py", "dispute"),
    ("shared/batches/service.py", "self"),
}
TABLES = {"calls": "Call", "sms_messages": "SmsMessage", "batches": "Batch", "accounts": "Account"}


def _table_of(node: ast.AST) -> str | None:
    """The model an `update(X)...values(...)` or `insert(X)...values(...)` chain writes."""
    while isinstance(node, ast.Call | ast.Attribute):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("update", "insert")
            and node.args
            and isinstance(node.args[0], ast.Name)
        ):
            return node.args[0].id
        node = node.func if isinstance(node, ast.Call) else node.value
    return None


def writers(path: str, source: str) -> list[str]:
    """Where this source writes an owned column outside its seam."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "values"
        ):
            table = _table_of(node.func.value)
            if table in OWNED:
                column, seam = OWNED[table]
                if path != seam and any(k.arg == column for k in node.keywords):
                    found.append(f"{path}:{node.lineno}: {table}.{column} in .values()")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in OWNED:
            column, seam = OWNED[node.func.id]
            if path != seam and any(k.arg == column for k in node.keywords):
                found.append(f"{path}:{node.lineno}: {node.func.id}({column}=...)")
        if isinstance(node, ast.Assign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if (
                    isinstance(target, ast.Attribute)
                    and target.attr in ("status", "credits")
                    and path not in SEAMS
                    and not (
                        isinstance(target.value, ast.Name)
                        and (path, target.value.id) in OTHER_STATUSES
                    )
                ):
                    found.append(f"{path}:{node.lineno}: assigns .{target.attr}")
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = " ".join(node.value.lower().split())
            for table in TABLES:
                if f"update {table} " in text and path != OWNED[TABLES[table]][1]:
                    found.append(f"{path}:{node.lineno}: SQL text updating {table}")
    return found


class TestOneSeam:
    def test_no_status_or_balance_is_written_outside_its_seam(self) -> None:
        found = []
        for top in SOURCES:
            for file in sorted((ROOT / top).rglob("*.py")):
                path = file.relative_to(ROOT).as_posix()
                if "/migrations/" not in path:
                    found += writers(path, file.read_text())
        assert found == []

    def test_the_check_finds_each_kind_of_writer(self) -> None:
        source = """
update(Call).where(Call.id == x).values(status="completed")
session.execute(update(Batch).values(status="paused").returning(Batch.id))
update(Account).values(credits=Account.credits + 1)
SmsMessage(status="queued")
call.status = "canceled"
text("UPDATE calls SET status = 'failed'")
"""
        assert len(writers("shared/elsewhere.py", source)) == 6
        assert writers("shared/calls/lifecycle.py", "update(Call).values(status='queued')") == []
        assert writers("shared/sms/service.py", "update(SmsMessage).values(segments=2)") == []
