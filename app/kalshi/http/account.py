"""The exchange's status and the account's rate limits (the budget requests are paced by)."""

from __future__ import annotations

from app.kalshi.http.base import RestBase, log
from app.kalshi.models import AccountLimits, EndpointCosts, ExchangeStatus
from app.kalshi.ratelimit import RateBudget


class Account(RestBase):
    # ------------------------------------------------------------------ exchange

    async def get_exchange_status(self) -> ExchangeStatus:
        return ExchangeStatus.model_validate(await self._get("/exchange/status"))

    # ------------------------------------------------------------------ account

    async def get_account_limits(self) -> AccountLimits:
        return AccountLimits.model_validate(await self._get("/account/limits"))

    async def get_endpoint_costs(self) -> EndpointCosts:
        return EndpointCosts.model_validate(await self._get("/account/endpoint_costs"))

    async def start(self, *, pace: bool = True) -> RateBudget | None:
        """Read the account's rate limits and endpoint costs; pace requests by them.

        Call once before trading. Returns the budget (None when ``pace`` is False).
        """
        self.limits = await self.get_account_limits()
        if not pace:
            return None
        costs = await self.get_endpoint_costs()
        budget = RateBudget.build(self.limits, costs)
        # the two reads above were not paced: take their tokens now
        if budget.read is not None:
            for path in ("/account/limits", "/account/endpoint_costs"):
                budget.read.tokens -= budget.cost("GET", path)
        self.budget = budget
        log.info(
            "kalshi rate budget: tier %s, reads %d/s (burst %d), writes %d/s (burst %d), "
            "default cost %d",
            self.limits.usage_tier,
            self.limits.read.refill_rate,
            self.limits.read.bucket_capacity,
            self.limits.write.refill_rate,
            self.limits.write.bucket_capacity,
            costs.default_cost,
        )
        return self.budget
