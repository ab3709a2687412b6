"""Order groups: a group cancels its orders once fills pass its limit."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import quote

from app.kalshi.http.base import RestBase
from app.kalshi.http.orders import positive_count
from app.kalshi.http.retry import IDEMPOTENT


class OrderGroups(RestBase):
    # ------------------------------------------------------------------ order groups

    async def create_order_group(self, contracts_limit: int | Decimal | str) -> str:
        """POST /portfolio/order_groups/create: a group that cancels its orders once fills
        pass ``contracts_limit`` in a rolling 15-second window. Returns its id."""
        data = await self.request("POST", "/portfolio/order_groups/create",
                                  json={"contracts_limit_fp": positive_count(contracts_limit,
                                                                     "contracts_limit")})
        return str(data["order_group_id"])

    async def get_order_groups(self) -> list[dict[str, Any]]:
        data = await self._get("/portfolio/order_groups")
        return list(data.get("order_groups") or [])

    async def get_order_group(self, order_group_id: str) -> dict[str, Any]:
        return await self._get(f"/portfolio/order_groups/{quote(order_group_id, safe='')}")

    async def trigger_order_group(self, order_group_id: str) -> None:
        """Cancel every order of the group and refuse new ones until it is reset."""
        await self.request("PUT", f"/portfolio/order_groups/{quote(order_group_id, safe='')}"
                           "/trigger", json={}, safety=IDEMPOTENT)

    async def reset_order_group(self, order_group_id: str) -> None:
        await self.request("PUT", f"/portfolio/order_groups/{quote(order_group_id, safe='')}"
                           "/reset", json={}, safety=IDEMPOTENT)

    async def set_order_group_limit(self, order_group_id: str,
                                    contracts_limit: int | Decimal | str) -> None:
        await self.request("PUT", f"/portfolio/order_groups/{quote(order_group_id, safe='')}"
                           "/limit", json={"contracts_limit_fp": positive_count(contracts_limit,
                                                                        "contracts_limit")},
                           safety=IDEMPOTENT)

    async def delete_order_group(self, order_group_id: str) -> None:
        await self.request("DELETE", f"/portfolio/order_groups/{quote(order_group_id, safe='')}")
